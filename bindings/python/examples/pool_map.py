"""Seed example 2: Pool.map of squares (five one-second tasks on three workers: about 2 s)."""
import time

import mproc as multiprocessing


def square(n):
    time.sleep(1)
    return n * n


if __name__ == "__main__":
    with multiprocessing.Pool(3) as pool:
        results = pool.map(square, [1, 2, 3, 4, 5])
    print(f"Squares: {results}")
