"""task_timeout on MPI ranks: a task over it fails with TaskTimeoutError (a
multiprocessing.TimeoutError) and its rank goes on serving; per pool and per call, for apply,
map (per chunk) and imap; tasks within it are not touched."""
import multiprocessing
import time

import mproc
from mproc import mpi


def nap(x):
    time.sleep(x)
    return x


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def expect_timeout(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except mproc.TaskTimeoutError as e:
        assert isinstance(e, multiprocessing.TimeoutError)
        assert "task_timeout" in str(e) and "rank" in str(e), e
        return
    raise AssertionError("no TaskTimeoutError")


def main():
    with mpi.Pool(task_timeout=0.5) as pool:
        expect_timeout(pool.apply, nap, (30,))          # blocked in a system call
        expect_timeout(pool.apply, spin, (30,))         # busy in Python code
        assert pool.apply(nap, (0.01,)) == 0.01          # the rank serves on
        assert pool.apply(nap, (1.0,), task_timeout=5) == 1.0  # per call beats the pool's
        r = pool.apply_async(nap, (30,))
        expect_timeout(r.get, 20)
        expect_timeout(pool.map, nap, [0.0, 0.0, 30, 0.0], chunksize=2)
    with mpi.Pool() as pool:
        it = pool.imap(nap, [0.0, 30, 0.0], task_timeout=0.5)
        assert next(it) == 0.0
        expect_timeout(next, it)
        assert next(it) == 0.0
        assert pool.map(nap, [0.01] * 4, chunksize=1) == [0.01] * 4   # no timeout here


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
