"""The pytest suite's leak check (../conftest.py) for the MPI scripts, on rank 0: after a first
pool has started what lives as long as the process (MPI's connections to the ranks), a
snapshot; at the end, no child process, thread, fd or /dev/shm name may be left over."""
import contextlib
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import _warm_up, snapshot, wait_clean  # noqa: E402

from mproc import mpi  # noqa: E402


@contextlib.contextmanager
def clean(local=False):
    """local=True: the test uses local pools too; what they start for the process's life (the
    supervisor thread, the forkserver) is started first, as the pytest suite does."""
    if local:
        _warm_up()
    with mpi.Pool() as pool:
        pool.map(abs, range(-8, 0), chunksize=1)  # every rank reached once
    del pool
    gc.collect()
    before = snapshot()
    yield
    gc.collect()
    left = wait_clean(before)
    assert not left, "the test left behind: %r" % left
