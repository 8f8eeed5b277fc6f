"""Python multiprocessing.Pool numbers for bench_pool.c. Usage: py_pool.py WHAT SCALE
WHAT: apply (us per round trip), map (M items/s), map1 (M items/s, chunksize 1), cpu (speedup)."""
import multiprocessing as mp
import sys
import time


def inc(x):
    return x + 1


def square(x):
    return x * x


def burn(n):
    acc = 0
    for i in range(n):
        acc += i % 7
    return acc


if __name__ == "__main__":
    what, scale = sys.argv[1], float(sys.argv[2])
    with mp.Pool(2) as pool:
        if what == "apply":
            n = int(2000 * scale) + 100
            for _ in range(50):
                pool.apply(inc, (1,))
            t0 = time.perf_counter()
            for _ in range(n):
                pool.apply(inc, (1,))
            print((time.perf_counter() - t0) / n * 1e6)
        elif what == "map":
            n = int(1000000 * scale)
            data = list(range(n))
            t0 = time.perf_counter()
            pool.map(square, data)
            print(n / (time.perf_counter() - t0) / 1e6)
        elif what == "map1":
            n = int(1000000 * scale) // 40
            data = list(range(n))
            t0 = time.perf_counter()
            pool.map(square, data, chunksize=1)
            print(n / (time.perf_counter() - t0) / 1e6)
        elif what == "cpu":
            work = [int(2000000 * scale) + 100] * 8
            t0 = time.perf_counter()
            for w in work:
                burn(w)
            serial = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(burn, work, chunksize=1)
            print(serial / (time.perf_counter() - t0))
