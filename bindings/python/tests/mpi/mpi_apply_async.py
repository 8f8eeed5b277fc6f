"""apply_async: callback and error_callback run once per result, get(timeout) raises
multiprocessing.TimeoutError while the task runs, wait/ready/successful as multiprocessing."""
import multiprocessing
import threading
import time

from mproc import mpi


def slow(x, delay):
    time.sleep(delay)
    return x


def fail(x):
    raise ValueError("bad %d" % x)


def main():
    got, errors = [], []
    done = threading.Event()
    with mpi.Pool() as pool:
        r = pool.apply_async(slow, (1, 1.0))
        try:
            r.get(timeout=0.05)
        except multiprocessing.TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError")
        assert not r.ready()
        try:
            r.successful()
        except ValueError:
            pass
        else:
            raise AssertionError("successful() before ready")
        r.wait()
        assert r.ready() and r.successful() and r.get() == 1

        results = [pool.apply_async(slow, (i, 0.0), callback=got.append) for i in range(50)]
        bad = pool.apply_async(fail, (7,), error_callback=errors.append)
        assert [x.get(10) for x in results] == list(range(50))
        bad.wait(10)
        assert not bad.successful()
        pool.close()
        pool.join()
        assert sorted(got) == list(range(50)), got
        assert len(errors) == 1 and isinstance(errors[0], ValueError), errors
        assert "bad 7" in str(errors[0])


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
