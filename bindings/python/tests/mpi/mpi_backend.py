"""The backend is an option: mproc.Pool(backend="mpi") and MPROC_POOL_BACKEND=mpi give an MPI
pool, the same program otherwise unchanged; backend="local" the local one."""
import os

import mproc
from mproc import mpi


def inc(x):
    return x + 1


if __name__ == "__main__":
    with mproc.Pool(backend="mpi") as pool:
        assert isinstance(pool, mpi.Pool), pool
        assert pool.map(inc, range(10)) == list(range(1, 11))
    os.environ["MPROC_POOL_BACKEND"] = "mpi"
    with mproc.Pool() as pool:
        assert isinstance(pool, mpi.Pool), pool
        assert pool.apply(inc, (1,)) == 2
    with mproc.Pool(2, backend="local") as pool:
        assert not isinstance(pool, mpi.Pool), pool
        assert pool.apply(inc, (1,)) == 2
    try:
        mproc.Pool(backend="carrier-pigeon")
    except ValueError:
        pass
    else:
        raise AssertionError("unknown backend accepted")
    print("ok")
