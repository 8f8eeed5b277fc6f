#!/usr/bin/env python3
"""Python multiprocessing peers for bench_queue.c, which runs this script and prints ratios.

usage: bench_queue.py queue|simplequeue SIZE COUNT PRODUCERS   -> prints messages per second
       bench_queue.py pipe_rtt COUNT                            -> prints microseconds per round trip
"""
import multiprocessing as mp
import sys
import time


def produce(q, payload, n):
    for _ in range(n):
        q.put(payload)


def consume(q, n):
    for _ in range(n):
        q.get()


def queue_rate(kind, size, count, producers):
    q = mp.Queue() if kind == "queue" else mp.SimpleQueue()
    payload = b"x" * size
    per = count // producers
    ps = [mp.Process(target=produce, args=(q, payload, per)) for _ in range(producers)]
    cs = [mp.Process(target=consume, args=(q, per)) for _ in range(producers)]
    t0 = time.perf_counter()
    for p in cs + ps:
        p.start()
    for p in ps + cs:
        p.join()
    return per * producers / (time.perf_counter() - t0)


def echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def pipe_rtt(count):
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b, count))
    p.start()
    msg = b"12345678"
    t0 = time.perf_counter()
    for _ in range(count):
        a.send_bytes(msg)
        a.recv_bytes()
    dt = time.perf_counter() - t0
    p.join()
    return dt / count * 1e6


if __name__ == "__main__":
    mp.set_start_method("fork")
    if sys.argv[1] == "pipe_rtt":
        print(f"{pipe_rtt(int(sys.argv[2])):.3f}")
    else:
        print(f"{queue_rate(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])):.1f}")
