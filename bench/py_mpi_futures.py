"""bench_mpi.py's mpi4py.futures side: mpirun -n N python3 -m mpi4py.futures py_mpi_futures.py"""
from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

import py_mpi_common as w

if __name__ == "__main__":
    with MPIPoolExecutor() as ex:
        workers = MPI.COMM_WORLD.Get_size() - 1
        w.run(ex.submit, lambda f: f.result(),
              lambda fn, data, cs: list(ex.map(fn, data, chunksize=cs)), workers)
