"""The job of mpi_worker_killed.py: item 7 kills its own worker rank (SIGKILL) mid-map."""
import os
import signal
import time

from mproc import mpi


def maybe_die(x):
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return x


if __name__ == "__main__":
    with mpi.Pool() as pool:
        pool.map(maybe_die, range(40), chunksize=1)
    print("map finished: the killed rank went unnoticed")
