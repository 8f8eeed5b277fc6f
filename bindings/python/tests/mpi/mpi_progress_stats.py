"""map's progress callback and imap's progress see every item; stats() counts each rank's
chunks and busy time and names its pid; an imap over an endless input stays lazy."""
import itertools
import os
import time

from mproc import mpi


def work(x):
    time.sleep(0.002)
    return x * x, os.getpid()


def main():
    with mpi.Pool() as pool:
        seen = []
        out = pool.map(work, range(30), chunksize=1, progress=lambda d, t: seen.append((d, t)))
        assert [v for v, _ in out] == [x * x for x in range(30)]
        assert seen and seen[-1] == (30, 30), seen
        assert all(t == 30 for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        pids = {p for _, p in out}
        stats = pool.stats()
        assert [s["rank"] for s in stats] == [1, 2], stats
        assert {s["pid"] for s in stats} >= pids, (pids, stats)
        assert sum(s["tasks"] for s in stats) == 30, stats
        assert all(s["busy_seconds"] > 0 for s in stats if s["tasks"]), stats
        assert all(s["restarts"] == 0 for s in stats), stats

        ticks = []
        it = pool.imap(work, range(10), progress=lambda d, t: ticks.append((d, t)))
        assert [v for v, _ in it] == [x * x for x in range(10)]
        assert ticks and ticks[-1] == (10, 10), ticks

        taken = []

        def numbers():
            for i in itertools.count():
                taken.append(i)
                yield i
        it = pool.imap(abs, numbers(), max_inflight=8)
        assert [next(it) for _ in range(20)] == list(range(20))
        time.sleep(0.2)
        assert len(taken) <= 20 + 8 + 1, len(taken)   # read lazily, never far ahead


if __name__ == "__main__":
    import leakcheck
    with leakcheck.clean():
        main()
    print("ok")
