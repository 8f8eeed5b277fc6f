"""apply runs on a worker rank (not rank 0) and gives back the value; exceptions come back."""
import os

from mpi4py import MPI

from mproc import mpi


def where(x):
    return x * 2, MPI.COMM_WORLD.Get_rank(), os.getpid()


def fail(msg):
    raise KeyError(msg)


if __name__ == "__main__":
    with mpi.Pool() as pool:
        value, rank, pid = pool.apply(where, (21,))
        assert value == 42 and rank in (1, 2) and pid != os.getpid(), (value, rank, pid)
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(sorted, ([3, 1, 2],), {"reverse": True}) == [3, 2, 1]
        try:
            pool.apply(fail, ("boom",))
        except KeyError as e:
            assert "boom" in str(e) and "fail" in str(e.__cause__), e.__cause__
        else:
            raise AssertionError("no exception")
    print("ok")
