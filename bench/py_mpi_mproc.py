"""bench_mpi.py's mproc.mpi side: mpirun -n N python3 -m mproc.mpi py_mpi_mproc.py"""
from mproc import mpi

import py_mpi_common as w

if __name__ == "__main__":
    with mpi.Pool() as pool:
        w.run(lambda fn, x: pool.apply_async(fn, (x,)), lambda r: r.get(), pool.map,
              pool._processes)
