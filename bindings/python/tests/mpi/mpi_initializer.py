"""The initializer runs once on each worker rank of the pool before its tasks; a failing one
fails the pool's tasks with PoolInitError instead of hanging."""
import os

import mproc
from mproc import mpi

STATE = {}


def init(tag):
    STATE["tag"] = tag
    STATE["pid"] = os.getpid()


def read(_):
    return STATE.get("tag"), STATE.get("pid")


def bad_init():
    raise OSError("no such resource")


def main():
    with mpi.Pool(initializer=init, initargs=("ready",)) as pool:
        seen = pool.map(read, range(40), chunksize=1)
        assert all(tag == "ready" for tag, _ in seen), seen
        assert len({pid for _, pid in seen}) >= 1
    with mpi.Pool(initializer=bad_init) as pool:
        try:
            pool.map(read, range(10), chunksize=1)
        except mproc.PoolInitError as e:
            assert "no such resource" in str(e), e
        else:
            raise AssertionError("no PoolInitError")


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
