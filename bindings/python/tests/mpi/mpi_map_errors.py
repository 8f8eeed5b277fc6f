"""map gives results in order at any chunksize; an item that raises fails the map with its
exception, the remote traceback text as __cause__; map_async calls its error_callback."""
from mproc import mpi


def square(x):
    return x * x


def picky(x):
    if x == 13:
        raise ZeroDivisionError("thirteen")
    return x


def main():
    with mpi.Pool() as pool:
        for cs in (None, 1, 3, 1000):
            assert pool.map(square, range(100), cs) == [x * x for x in range(100)], cs
        assert pool.map(square, []) == []
        assert pool.map(square, iter(range(10))) == [x * x for x in range(10)]
        try:
            pool.map(picky, range(40), chunksize=4)
        except ZeroDivisionError as e:
            tb = str(e.__cause__)
            assert "thirteen" in str(e), e
            assert "Traceback" in tb and "in picky" in tb and "ZeroDivisionError" in tb, tb
        else:
            raise AssertionError("no exception")
        errs = []
        r = pool.map_async(picky, range(40), error_callback=errs.append)
        r.wait(30)
        assert r.ready() and not r.successful()
        try:
            r.get()
        except ZeroDivisionError:
            pass
        assert len(errs) == 1 and isinstance(errs[0], ZeroDivisionError)
        # the pool still works after a failed map
        assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
