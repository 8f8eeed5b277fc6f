"""Run without -m (mpirun -n 3 python3 mpi_plain.py): every rank runs the script, Pool() on
ranks >= 1 serves and ends there; two pools in turn use the same worker ranks."""
from mproc import mpi


def rank_of(_):
    return mpi.rank()


if __name__ == "__main__":
    with mpi.Pool() as pool:
        assert mpi.rank() == 0
        assert set(pool.map(rank_of, range(64), chunksize=1)) <= {1, 2}
    with mpi.Pool(processes=1) as pool:       # only rank 1
        assert set(pool.map(rank_of, range(16), chunksize=1)) == {1}
    print("ok")
