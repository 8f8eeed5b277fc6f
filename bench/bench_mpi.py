#!/usr/bin/env python3
"""mproc.mpi's pool against mpi4py.futures' MPIPoolExecutor and mproc's local pool, in one run.

usage: PYTHONPATH=build/bindings/python /usr/bin/python3 bench/bench_mpi.py [scale [rounds]]
For N in 2, 3 ranks (N-1 workers): small tasks submitted one by one (apply_async / submit,
chunksize 1: tasks/s) and a chunked map of squares (1e6 x scale items, multiprocessing's default
chunksize for N-1 workers: items/s). Local pool: mproc.Pool(N-1), no MPI. Targets (issue 9):
small tasks >= 2x mpi4py.futures, chunked map >= 1x mpi4py.futures.
The three run in turn, rounds times (default 3), and the best of each is kept: on shared cores
a single run of each says more about the neighbours than about the pools.
MPROC_MPIRUN overrides the mpirun command (default: mpirun --allow-run-as-root --oversubscribe).
The C component (libmproc-mpi) runs too when its benchmark is built (MPROC_MPI_BENCH, default
build/bench/mpi_bench): a map of 20000 small tasks with chunksize 1 and a map of 1e6 squares with
default chunks, from C, on the same ranks and on a local pool. Target: C small tasks >= 10x
mpi4py.futures."""
import json
import os
import shlex
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable


def run(cmd, scale):
    env = dict(os.environ, MPROC_BENCH_SCALE=str(scale))
    p = subprocess.run(cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=600)
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    sys.stderr.write("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return None


def run_c(cmd):
    p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=600)
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    if "small_tasks_per_s" not in out:
        sys.stderr.write("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
        return None
    return {"tasks_per_s": out["small_tasks_per_s"], "items_per_s": out["map_var_items_per_s"]}


def best(a, b):
    if not a or not b:
        return a or b
    return {k: max(a[k], b[k]) for k in a}


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    mpirun = os.environ.get("MPROC_MPIRUN")
    if mpirun:
        mpirun = shlex.split(mpirun)
    elif shutil.which("mpirun"):
        mpirun = [shutil.which("mpirun"), "--allow-run-as-root", "--oversubscribe"]
    else:
        sys.exit("bench_mpi: mpirun not found (Debian: apt install openmpi-bin python3-mpi4py)")
    cbench = os.environ.get("MPROC_MPI_BENCH",
                            os.path.join(HERE, "..", "build", "bench", "mpi_bench"))
    if not os.access(cbench, os.X_OK):
        cbench = None
    rows, crows = [], []
    for n in (2, 3):
        fut = mpi = loc = cmpi = cloc = None
        for _ in range(rounds):
            if cbench:
                cmpi = best(cmpi, run_c(mpirun + ["-n", str(n), cbench, "mpi"]))
                cloc = best(cloc, run_c([cbench, "local", str(n - 1)]))
            fut = best(fut, run(mpirun + ["-n", str(n), PY, "-m", "mpi4py.futures",
                                          "py_mpi_futures.py"], scale))
            mpi = best(mpi, run(mpirun + ["-n", str(n), PY, "-m", "mproc.mpi",
                                          "py_mpi_mproc.py"], scale))
            loc = best(loc, run([PY, "py_mpi_local.py", str(n - 1)], scale))
        rows.append((n, fut, mpi, loc))
        crows.append((n, fut, cmpi, cloc))

    def cell(d, key, div):
        return "%9.1f" % (d[key] / div) if d else "   failed"

    def ratio(a, b, key):
        return "%6.2fx" % (a[key] / b[key]) if a and b else "    - "

    def table(title, rows):
        print(title)
        for n, fut, mpi, loc in rows:
            for what, key, div in (("small tasks (k/s)", "tasks_per_s", 1e3),
                                   ("chunked map (M/s)", "items_per_s", 1e6)):
                print("%5d  %s    %s    %s    %s      %s    %s" % (
                    n, what, cell(fut, key, div), cell(mpi, key, div), cell(loc, key, div),
                    ratio(mpi, fut, key), ratio(mpi, loc, key)))
    table("ranks  what                 mpi4py.futures    mproc.mpi  mproc local  "
          "mpi/futures  mpi/local", rows)
    if cbench:
        table("from C (libmproc-mpi)    mpi4py.futures    mproc-mpi    C local   "
              "mpi/futures  mpi/local", crows)
        print("target: C small tasks mpi/futures >= 10x")
    print("targets: small tasks mpi/futures >= 2x, chunked map mpi/futures >= 1x "
          "(%d tasks, %d map items; best of %d rounds)" % (int(2000 * scale), int(1e6 * scale),
                                                          rounds))


if __name__ == "__main__":
    main()
