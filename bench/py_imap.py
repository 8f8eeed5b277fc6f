"""Python Pool.imap over N generated items: prints the parent's peak RSS growth (KiB) and the time.
Usage: py_imap.py N"""
import multiprocessing as mp
import resource
import sys
import time


def square(x):
    return x * x


def gen(n):
    for i in range(n):
        yield i


if __name__ == "__main__":
    n = int(sys.argv[1])
    with mp.Pool(2) as pool:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        count = 0
        for _ in pool.imap(square, gen(n), chunksize=1000):
            count += 1
            if count % 1000 == 0:
                time.sleep(0.0005)  # the consumer's own work
        secs = time.perf_counter() - t0
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(grew, secs)
