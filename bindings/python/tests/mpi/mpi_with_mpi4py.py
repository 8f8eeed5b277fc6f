"""A program that uses mpi4py itself (optional: mproc.mpi does not need it), run on every rank
without -m: mpi4py starts MPI at its import, mproc.mpi uses that MPI, the pool's traffic stays
on its own communicator beside the program's, and tasks on the ranks may call mpi4py too."""
from mpi4py import MPI

from mproc import mpi


def rank_of(_):
    return MPI.COMM_WORLD.Get_rank()


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    with mpi.Pool() as pool:             # ranks 1 and 2 serve here, and end
        assert comm.Get_rank() == mpi.rank() == 0 and comm.Get_size() == mpi.size() == 3
        assert set(pool.map(rank_of, range(32), chunksize=1)) <= {1, 2}
    print("ok")
