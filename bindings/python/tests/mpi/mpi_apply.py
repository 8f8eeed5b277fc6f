"""apply runs on a worker rank (not rank 0) and gives back the value; exceptions come back;
stats() names each rank's pid and the tasks it ran."""
import os

from mproc import mpi


def where(x):
    return x * 2, mpi.rank(), os.getpid()


def fail(msg):
    raise KeyError(msg)


def main():
    with mpi.Pool() as pool:
        value, rank, pid = pool.apply(where, (21,))
        assert value == 42 and rank in (1, 2) and pid != os.getpid(), (value, rank, pid)
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(sorted, ([3, 1, 2],), {"reverse": True}) == [3, 2, 1]
        try:
            pool.apply(fail, ("boom",))
        except KeyError as e:
            assert "boom" in str(e) and "fail" in str(e.__cause__), e.__cause__
        else:
            raise AssertionError("no exception")
        stats = pool.stats()
        assert [s["rank"] for s in stats] == [1, 2], stats
        assert pid in {s["pid"] for s in stats}, (pid, stats)
        assert sum(s["tasks"] for s in stats) == 4, stats


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
