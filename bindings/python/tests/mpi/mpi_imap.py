"""imap gives results in input order whatever order the ranks finish in; a failing chunk
raises in its place and the iteration goes on; an endless input is read lazily."""
import itertools
import time

from mproc import mpi


def late_for_small(x):
    time.sleep(0.002 * (20 - x) if x < 20 else 0)
    return x


def picky(x):
    if x == 5:
        raise ValueError("five")
    return x


def main():
    with mpi.Pool() as pool:
        assert list(pool.imap(late_for_small, range(40))) == list(range(40))
        assert list(pool.imap(late_for_small, range(40), chunksize=7)) == list(range(40))
        it = pool.imap(picky, range(10))
        out = []
        while True:
            try:
                out.append(next(it))
            except ValueError as e:
                out.append(str(e))
            except StopIteration:
                break
        assert out == [0, 1, 2, 3, 4, "five", 6, 7, 8, 9], out
        endless = pool.imap(abs, itertools.count(), chunksize=5)
        assert [next(endless) for _ in range(100)] == list(range(100))


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
