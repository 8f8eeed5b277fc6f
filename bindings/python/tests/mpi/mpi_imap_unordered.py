"""imap_unordered gives every result once, in order of completion; next(timeout) raises
multiprocessing.TimeoutError."""
import multiprocessing
import time

from mproc import mpi


def nap(x):
    time.sleep(x)
    return x


def main():
    with mpi.Pool() as pool:
        got = list(pool.imap_unordered(abs, range(-200, 0), chunksize=9))
        assert sorted(got) == list(range(1, 201)), got
        it = pool.imap_unordered(nap, [3.0, 0.01])
        assert it.next(timeout=10) == 0.01       # the short one first
        try:
            it.next(timeout=0.05)
        except multiprocessing.TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError")
        assert it.next(timeout=10) == 3.0


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
