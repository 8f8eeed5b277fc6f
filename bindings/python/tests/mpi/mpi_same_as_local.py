"""The same checks on a local pool and on an MPI pool give the same results and raise the same
exceptions: the MPI pool is the local pool's code on another transport."""
import concurrent.futures
import multiprocessing
import multiprocessing.pool
import threading
import time

import mproc
from mproc import mpi


def fail(x):
    raise KeyError("bad %r" % (x,))


def unpicklable(x):
    return threading.Lock()


def nap(x):
    time.sleep(x)
    return x


def bad_init():
    raise OSError("no such resource")


def raises(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc_type.__name__, fn))


def check(make):
    with make() as pool:
        e = raises(KeyError, pool.apply, fail, (1,))
        assert isinstance(e.__cause__, mproc.RemoteTraceback) and "in fail" in str(e.__cause__)
        e = raises(KeyError, pool.map, fail, range(4))
        raises(multiprocessing.pool.MaybeEncodingError, pool.apply, unpicklable, (1,))
        raises(ValueError, pool.map, abs, range(4), 0)
        raises(multiprocessing.TimeoutError, pool.apply_async(nap, (1.0,)).get, 0.01)
        it = pool.imap_unordered(nap, [1.0])
        raises(multiprocessing.TimeoutError, it.next, 0.01)
        assert it.next(10) == 1.0
        raises(StopIteration, it.next)
        raises(mproc.TaskTimeoutError, pool.apply, nap, (30,), task_timeout=0.3)
        r = pool.apply_async(nap, (1.0,))
        r.cancel()
        raises(concurrent.futures.CancelledError, r.get, 10)
        assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert set(pool.stats()[0]) >= {"busy_seconds", "last_exit", "pid", "restarts", "tasks"}
        raises(ValueError, pool.join)          # still running
        pool.close()
        raises(ValueError, pool.apply, abs, (1,))
        raises(ValueError, pool.map_async, abs, [1])
        pool.join()
    with make(initializer=bad_init) as pool:
        e = raises(mproc.PoolInitError, pool.map, abs, range(4))
        assert "no such resource" in str(e), e
    return True


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean(local=True):
        assert check(lambda **kw: mproc.Pool(2, backend="local", **kw))
        assert check(lambda **kw: mpi.Pool(**kw))
    print("ok")
