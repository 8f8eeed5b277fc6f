"""Python's multiprocessing.Process start+join of a no-op child; prints seconds per process.
Usage: py_process.py METHOD N"""
import multiprocessing as mp
import sys
import time


def noop():
    pass


if __name__ == "__main__":
    method, n = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context(method)
    p = ctx.Process(target=noop)  # warm-up (forkserver start)
    p.start()
    p.join()
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    print((time.perf_counter() - t0) / n)
