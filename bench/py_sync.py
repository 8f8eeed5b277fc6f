"""Python multiprocessing peers for bench_sync.c. Usage: py_sync.py WHAT SCALE
lock: ns per uncontended acquire+release; contended: M locked increments/s from two processes
(Value with get_lock); pingpong: us per Condition round trip between two processes."""
import multiprocessing as mp
import sys
import time


def inc(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def pong(cond, state, rounds):
    with cond:
        for _ in range(rounds):
            cond.wait_for(lambda: state.value == 1)
            state.value = 2
            cond.notify()


if __name__ == "__main__":
    what, scale = sys.argv[1], float(sys.argv[2])
    if what == "lock":
        n = int(1e6 * scale) + 1000
        lock = mp.Lock()
        t0 = time.perf_counter()
        for _ in range(n):
            lock.acquire()
            lock.release()
        print((time.perf_counter() - t0) / n * 1e9)
    elif what == "contended":
        n = int(1e5 * scale) + 1000
        v = mp.Value("l", 0)
        ps = [mp.Process(target=inc, args=(v, n)) for _ in range(2)]
        t0 = time.perf_counter()
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        print(2 * n / (time.perf_counter() - t0) / 1e6)
    elif what == "pingpong":
        rounds = int(5000 * scale) + 100
        cond, state = mp.Condition(), mp.Value("i", 0, lock=False)
        p = mp.Process(target=pong, args=(cond, state, rounds))
        p.start()
        t0 = time.perf_counter()
        with cond:
            for _ in range(rounds):
                state.value = 1
                cond.notify()
                cond.wait_for(lambda: state.value == 2)
        secs = time.perf_counter() - t0
        p.join()
        print(secs / rounds * 1e6)
