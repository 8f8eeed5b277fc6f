"""cancel() and terminate() on MPI ranks: the results fail at once (CancelledError, as the local
pool's), the running task finishes on its rank unseen, and the ranks serve the next pool."""
import concurrent.futures
import time

from mproc import mpi


def nap(x):
    time.sleep(x)
    return x


def main():
    with mpi.Pool() as pool:
        r = pool.apply_async(nap, (2.0,))
        time.sleep(0.2)                  # running on a rank by now
        assert r.cancel() and r.cancelled()
        try:
            r.get(10)
        except concurrent.futures.CancelledError:
            pass
        else:
            raise AssertionError("no CancelledError")
        m = pool.map_async(nap, [1.0] * 8, chunksize=1)
        assert m.cancel()
        try:
            m.get(10)
        except concurrent.futures.CancelledError:
            pass
        else:
            raise AssertionError("no CancelledError for the map")
        done = pool.apply_async(abs, (-3,))
        assert done.get(10) == 3 and not done.cancel()   # a ready result is not cancelled
        assert pool.apply(nap, (0.0,)) == 0.0            # the pool goes on
        pending = pool.apply_async(nap, (1.0,))
    # __exit__ terminated the pool: the pending result has failed
    try:
        pending.get(10)
    except Exception as e:
        assert not isinstance(e, AssertionError)
    else:
        raise AssertionError("a result of a terminated pool succeeded")
    with mpi.Pool() as pool:               # the ranks serve the next pool (late results dropped)
        assert pool.map(abs, range(-20, 0), chunksize=1) == list(range(20, 0, -1))


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
