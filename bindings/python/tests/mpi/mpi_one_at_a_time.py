"""One MPI pool at a time: a second while the first runs is refused with a clear error; after
close() (its work done, join() or not) or terminate(), the next one has the ranks."""
from mproc import mpi


def main():
    first = mpi.Pool()
    try:
        mpi.Pool()
    except RuntimeError as e:
        assert "one MPI pool at a time" in str(e), e
    else:
        raise AssertionError("a second pool was made while the first runs")
    r = first.map_async(abs, range(-50, 0), chunksize=1)
    first.close()
    with mpi.Pool(1) as second:            # waits for the first's work, not refused
        assert r.get(10) == list(range(50, 0, -1))
        assert second.apply(abs, (-1,)) == 1
    first.join()
    with mpi.Pool() as third:
        assert third.apply(abs, (-2,)) == 2
    try:
        mpi.Pool(3)
    except ValueError as e:
        assert "needs 4 MPI ranks" in str(e), e
    else:
        raise AssertionError("Pool(3) made on 2 worker ranks")


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
