"""Seed example 4: errors inside pooled functions, handled there or re-raised in the caller."""
import os

import mproc as multiprocessing


def safe_divide(pair):
    a, b = pair
    try:
        return a / b
    except ZeroDivisionError:
        return "Cannot divide by zero"


def crash(code):
    os._exit(code)


def divide(pair):
    a, b = pair
    return a / b


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print(pool.map(safe_divide, [(10, 1), (10, 2), (10, 0), (10, 4)]))
        try:
            pool.map(divide, [(1, 1), (1, 0)])
        except ZeroDivisionError as e:
            print(f"Caught an error from a worker: {type(e).__name__}: {e}")
        # Beyond multiprocessing: a worker that dies fails its task instead of hanging the pool.
        try:
            pool.apply(crash, (3,))
        except multiprocessing.WorkerDiedError as e:
            print(f"Worker died: {e}")
