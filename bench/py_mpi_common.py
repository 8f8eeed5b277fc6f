"""Workload of bench_mpi.py, shared by its per-backend scripts (py_mpi_*.py): small tasks
submitted one by one (chunksize 1) and a chunked map of squares. Prints one JSON line."""
import json
import os
import sys
import time

SCALE = float(os.environ.get("MPROC_BENCH_SCALE", "1"))
N_TASKS = int(2000 * SCALE)
N_MAP = int(1000000 * SCALE)


def inc(x):
    return x + 1


def square(x):
    return x * x


def best(fn, reps=3):
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def run(submit, get, map_list, workers):
    """submit(fn, x) -> handle, get(handle) -> value, map_list(fn, data, chunksize) -> list."""
    [get(h) for h in [submit(inc, i) for i in range(100)]]   # warm up: ranks, imports
    expect = list(range(1, N_TASKS + 1))

    def tasks():
        hs = [submit(inc, i) for i in range(N_TASKS)]
        assert [get(h) for h in hs] == expect
    data = list(range(N_MAP))
    cs = -(-N_MAP // (4 * workers))       # multiprocessing's default chunksize

    def chunked():
        out = map_list(square, data, cs)
        assert len(out) == N_MAP and out[-1] == (N_MAP - 1) ** 2
    t_tasks = best(tasks)
    t_map = best(chunked)
    print(json.dumps({"workers": workers, "tasks_per_s": N_TASKS / t_tasks,
                      "items_per_s": N_MAP / t_map}))
    sys.stdout.flush()
