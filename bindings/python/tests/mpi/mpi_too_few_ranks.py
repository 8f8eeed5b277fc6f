"""With one rank (mpirun -n 1), Pool() raises a RuntimeError saying how to run it, and
available() is False."""
from mproc import mpi

if __name__ == "__main__":
    assert not mpi.available()
    try:
        mpi.Pool()
    except RuntimeError as e:
        assert "at least 2 MPI ranks" in str(e) and "mpirun" in str(e), e
    else:
        raise AssertionError("Pool() made with one rank")
    print("ok")
