"""bench_mpi.py's local side: mproc.Pool(WORKERS) on this machine, no MPI.
usage: py_mpi_local.py WORKERS"""
import sys

import mproc

import py_mpi_common as w

if __name__ == "__main__":
    workers = int(sys.argv[1])
    with mproc.Pool(workers) as pool:
        w.run(lambda fn, x: pool.apply_async(fn, (x,)), lambda r: r.get(), pool.map, workers)
