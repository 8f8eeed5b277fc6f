#!/usr/bin/env python3
"""mproc's Python package against the standard multiprocessing, in one run; prints ratios.

usage: PYTHONPATH=build/bindings/python /usr/bin/python3 bench/bench_python.py [scale] [--map | --bigdata]
(each case alternates mproc and multiprocessing, best of ROUNDS rounds of best-of-3 runs)
Targets (issue 6): Pool.apply round trip >= 5x, Queue of small objects >= 3x, Lock >= 2x,
Value increments under lock >= 5x, each measured in one process and in two processes at once
(the tutorial's shared counter). Issue 18: a spawned Process's start+join faster than the
standard library's spawn (> 1x). Numbers are measured, never assumed. Issue 8: the parent's
memory growth while imap runs over generated items and the reader is slower than the workers
(mproc keeps at most max_inflight items taken and not read back; Python's Pool.imap feeds the
workers as fast as its pipe takes them and keeps every result the reader has not taken yet).
Issue 20 (`--map`: only these rows): every Pool method at chunksize 1, the default and large
chunks over small items, many apply_async, each beside the standard library in the same run, as
throughput ratios (target 2x); then maps over other kinds of items users map over (strings,
string results, tuple results, dicts both ways; default chunks; never slower). Issue 20 (`--bigdata`: only these rows): Pool.map over 64 arrays of 8 MiB
(numpy) returning their sums, and returning the arrays; Queue and Pipe of 8 MiB numpy arrays, a
child sending to its parent; each beside the standard library and beside a memcpy of the same
bytes; targets: the map of sums >= 5x, Queue >= 10x the standard library and >= 0.3x memcpy."""
import multiprocessing as std
import re
import resource
import subprocess
import sys
import time

import mproc

_ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SCALE = float(_ARGS[0]) if _ARGS and sys.argv[1] != "--imap" else 1.0
ROUNDS = 3


def ident(x):
    return x


def best(fn, n, reps=3):
    """Best time per operation (seconds) over reps runs of n operations."""
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(n)
        t = min(t, (time.perf_counter() - t0) / n)
    return t


def pool_apply(mod):
    with mod.Pool(2) as pool:
        pool.apply(ident, (0,))
        return best(lambda n: [pool.apply(ident, (i,)) for i in range(n)], int(2000 * SCALE))


def noop():
    pass


def spawn_start_join(mod):
    ctx = mod.get_context("spawn")

    def run(n):
        for _ in range(n):
            p = ctx.Process(target=noop)
            p.start()
            p.join()
    return best(run, max(3, int(10 * SCALE)), reps=2)


def consume(q, n):
    for _ in range(n):
        q.get()


def queue_small(mod):
    n = int(20000 * SCALE)
    q = mod.Queue()

    def run(n):
        p = mod.Process(target=consume, args=(q, n))
        p.start()
        for i in range(n):
            q.put(("item", i))
        p.join()
    return best(run, n)


def lock_cycle(mod):
    lock = mod.Lock()

    def run(n):
        for _ in range(n):
            lock.acquire()
            lock.release()
    return best(run, int(200000 * SCALE))


def value_under_lock(mod):
    v = mod.Value("i", 0)

    def run(n):
        for _ in range(n):
            with v.get_lock():
                v.value += 1
    return best(run, int(100000 * SCALE))


def _lock_loop(lock, n):
    for _ in range(n):
        lock.acquire()
        lock.release()


def _value_loop(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def two_processes(mod, target, make, check):
    """The same loop in two processes at once (the tutorial's shared counter): time per
    operation over both."""
    obj = make(mod)

    def run(n):
        ps = [mod.Process(target=target, args=(obj, n)) for _ in range(2)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        check(obj, n)
    return best(lambda n: run(n // 2), int(100000 * SCALE))


def lock_contended(mod):
    return two_processes(mod, _lock_loop, lambda m: m.Lock(), lambda o, n: None)


def value_contended(mod):
    def check(v, n):
        total, v.value = v.value, 0
        assert total == 2 * n, (total, 2 * n)   # the lock must have held
    return two_processes(mod, _value_loop, lambda m: m.Value("i", 0), check)


def _rss():
    """The resident set size now, in bytes (/proc/self/statm: pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def imap_child(modname, n):
    """Run in a fresh interpreter: imap over n generated items with a consumer slower than the
    workers (a 20 ms pause every 10000 results); print the parent's RSS growth (MiB) over the
    loop, sampled every 1000 results, and the count. ru_maxrss cannot tell it: its high-water
    mark was often set before the loop (imports, the pool's start), which printed 0.0."""
    mod = mproc if modname == "mproc" else std
    with mod.Pool(2) as pool:
        base = peak = _rss()
        count = 0
        for _ in pool.imap(ident, (("x" * 64, i) for i in range(n)), chunksize=256):
            count += 1
            if count % 1000 == 0:
                peak = max(peak, _rss())
                if count % 10000 == 0:
                    time.sleep(0.02)
        peak = max(peak, _rss())
    print((peak - base) / float(1 << 20), count)


def imap_memory():
    n = int(1000000 * SCALE)
    out = {}
    for name in ("mproc", "python"):
        r = subprocess.run([sys.executable, __file__, "--imap", name, str(n)], capture_output=True,
                           text=True, check=True)
        got, count = r.stdout.split()
        assert int(count) == n, (name, count)
        out[name] = float(got)
    print("%-32s %12s %12s" % ("imap of %d items, slow reader" % n, "mproc MiB", "python MiB"))
    print("%-32s %12.1f %12.1f" % ("parent RSS growth (sampled)", out["mproc"], out["python"]))


# ---- Pool map rows (issue 20): every Pool method beside the standard library, same run --------
# Small items: N_SMALL for chunksize 1 (the standard library takes 40-70 us an item there) and
# N_BIG for the default and large chunks (large: 8 chunks over the input, as 10^6 / 125000).
N_SMALL = int(100000 * SCALE)
N_BIG = int(1000000 * SCALE)


def add(a, b):
    return a + b


def _drain(it):
    n = 0
    for _ in it:
        n += 1
    return n


def _map_case(method, chunks):
    """(label, items, run(pool, data)) of one Pool method at chunksize 1 / default / large."""
    n = N_SMALL if chunks == "1" else N_BIG
    cs = {"1": 1, "default": None, "large": max(1, n // 8)}[chunks]
    kw = {} if cs is None else {"chunksize": cs}
    star = method.startswith("starmap")
    fn = add if star else ident
    runs = {
        "map": lambda p, d: p.map(fn, d, **kw),
        "map_async": lambda p, d: p.map_async(fn, d, **kw).get(),
        "starmap": lambda p, d: p.starmap(fn, d, **kw),
        "starmap_async": lambda p, d: p.starmap_async(fn, d, **kw).get(),
        "imap": lambda p, d: _drain(p.imap(fn, d, **kw)),
        "imap_unordered": lambda p, d: _drain(p.imap_unordered(fn, d, **kw)),
    }
    label = "%s cs=%s" % (method, "1 (default)" if method.startswith("imap") and cs == 1
                          else chunks if cs is None or chunks == "1" else cs)
    return label, n, star, runs[method]


def _pair(x):
    return (x, x * 2)


def _record(x):
    return {"id": x, "name": "n%d" % x}


def _get_id(r):
    return r["id"]


# Other kinds of items users map over (default chunks, 10^6 items; no target but "never
# slower"): (label, function, the input made from range(n))
OBJECT_ROWS = [
    ("map(len, strs)", len, lambda n: ["s%d" % i for i in range(n)]),
    ("map(str, ints)", str, lambda n: list(range(n))),
    ("map(pair, ints) -> tuples", _pair, lambda n: list(range(n))),
    ("map(record, ints) -> dicts", _record, lambda n: list(range(n // 4))),
    ("map(get_id, dicts)", _get_id, lambda n: [_record(i) for i in range(n // 4)]),
]


def _apply_many(p, d):
    rs = [p.apply_async(ident, (x,)) for x in d]
    for r in rs:
        r.get()


def _array_sum(a):
    return float(a.sum())


def map_rows():
    """Items per second of each Pool method, mproc and multiprocessing alternating, best of
    ROUNDS; ratio = mproc's throughput over the standard library's."""
    cases = []
    for method in ("map", "map_async", "starmap", "starmap_async", "imap", "imap_unordered"):
        # imap's default chunksize is 1, as multiprocessing's: its cs=1 row is the default one
        for chunks in ("1", "large") if method.startswith("imap") else ("1", "default", "large"):
            cases.append(_map_case(method, chunks))
    cases.append(("apply_async x %d" % (N_SMALL // 5), N_SMALL // 5, False, _apply_many))
    rows = [a[len("--rows="):] for a in sys.argv[1:] if a.startswith("--rows=")]
    if rows:  # --rows=REGEX: only the rows whose label matches (a quicker run while working)
        cases = [c for c in cases if re.search(rows[0], c[0])]
    print("%-32s %9s %12s %12s %8s %8s" % ("Pool method (small items)", "items", "mproc s",
                                           "python s", "ratio", "target"))
    with mproc.Pool(2) as mp, std.Pool(2) as sp:
        mp.map(ident, range(100))
        sp.map(ident, range(100))
        data = {}
        for label, n, star, run in cases:
            key = (n, star)
            if key not in data:
                data[key] = [(i, i) for i in range(n)] if star else list(range(n))
            d = data[key]
            a = b = float("inf")
            for _ in range(ROUNDS):
                for name, p in (("mproc", mp), ("python", sp)):
                    t0 = time.perf_counter()
                    run(p, d)
                    t = time.perf_counter() - t0
                    if name == "mproc":
                        a = min(a, t)
                    else:
                        b = min(b, t)
            print("%-32s %9d %12.3f %12.3f %7.2fx %7.0fx %s" % (label, n, a, b, b / a, 2,
                                                               "ok" if b / a >= 2 else "BELOW"),
                  flush=True)
        objects = [r for r in OBJECT_ROWS if not rows or re.search(rows[0], r[0])]
        for label, fn, make in objects:
            d = make(N_BIG)
            a = b = float("inf")
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                mp.map(fn, d)
                a = min(a, time.perf_counter() - t0)
                t0 = time.perf_counter()
                sp.map(fn, d)
                b = min(b, time.perf_counter() - t0)
            print("%-32s %9d %12.3f %12.3f %7.2fx %8s %s" % (label, len(d), a, b, b / a, "1x",
                                                            "ok" if b / a >= 1 else "BELOW"),
                  flush=True)


def big_arrays(rows=2):
    """Pool.map over 64 arrays of 8 MiB (numpy), returning their sums (target >= 5x), and the
    same arrays through the pool and back (map of the identity): each beside the standard
    library in the same run and beside a memcpy of the bytes that cross (the arrays once, or in
    and out), both pools of 2 workers started as each library starts them by default."""
    try:
        import numpy
    except ImportError:
        print("%-32s %s" % ("map over 64 x 8 MiB arrays", "skipped: python3-numpy not installed"))
        return
    n = max(2, int(64 * min(SCALE, 1.0)))
    arrays = [numpy.full(1 << 20, float(i)) for i in range(n)]   # 2^20 float64 = 8 MiB
    want = [float(a.sum()) for a in arrays]
    dsts = [numpy.empty_like(a) for a in arrays]

    def copy_all():
        t0 = time.perf_counter()
        for a, d in zip(arrays, dsts):
            numpy.copyto(d, a)
        return time.perf_counter() - t0
    copy_all()
    print("%-40s %8s %9s %9s %8s %9s %7s" % ("Pool.map, %d arrays of 8 MiB" % n, "mproc s",
                                            "python s", "memcpy s", "x python", "x memcpy",
                                            "target"))
    for label, fn, check, crossings, target in (
            ("sums (a.sum() of each)", _array_sum, lambda got: got == want, 1, 5),
            ("the arrays back (identity)", ident,
             lambda got: all(g.shape == a.shape and g[0] == a[0] and g[-1] == a[-1]
                             for g, a in zip(got, arrays)), 2, None))[:rows]:
        ts = {"mproc": [], "python": []}
        mc = float("inf")
        with mproc.Pool(2) as mp, std.Pool(2) as sp:
            for _ in range(ROUNDS + 1):  # the first round warms both up (and is not counted)
                for name, p in (("mproc", mp), ("python", sp)):
                    t0 = time.perf_counter()
                    got = p.map(fn, arrays)
                    ts[name].append(time.perf_counter() - t0)
                    assert check(got)
                    del got
                mc = min(mc, crossings * copy_all())
        a, b = sorted(ts["mproc"][1:]), sorted(ts["python"][1:])
        ma, mb = a[len(a) // 2], b[len(b) // 2]
        ok = "" if target is None else ("%dx %s" % (target, "ok" if mb / ma >= target
                                                    else "BELOW"))
        print("%-40s %8.3f %9.3f %9.3f %7.2fx %8.2fx %s" % (label, ma, mb, mc, mb / ma, mc / ma,
                                                           ok))
        print("%-40s %s / %s" % ("  (every round: mproc / python)",
                                 " ".join("%.3f" % t for t in ts["mproc"][1:]),
                                 " ".join("%.3f" % t for t in ts["python"][1:])), flush=True)


# ---- issue 20: large data (numpy arrays through Queue and Pipe) ------------------------------
BIG = 8 << 20  # bytes per array


def _send_arrays(chan, go, rounds, n, via_pipe):
    import numpy as np
    a = np.ones(BIG // 8, dtype=np.float64)
    send = chan.send if via_pipe else chan.put
    for _ in range(rounds):
        go.get()
        for _ in range(n):
            send(a)
    if via_pipe:
        chan.close()


def big_transfer(mod, via_pipe, n, maxsize=0):
    """Seconds per array, a child sending n arrays of BIG bytes to this process, from the
    parent's "go" to its last get: the best of three rounds after one to warm up (the queue's
    shared memory is then reused, as in a long-running program)."""
    if via_pipe:
        rx, tx = mod.Pipe(duplex=False)
        recv = rx.recv
    else:
        tx = mod.Queue(maxsize)
        recv = tx.get
    go = mod.Queue()
    p = mod.Process(target=_send_arrays, args=(tx, go, 4, n, via_pipe))
    p.start()
    t = float("inf")
    for r in range(4):
        t0 = time.perf_counter()
        go.put(1)
        for _ in range(n):
            a = recv()
        if r:
            t = min(t, (time.perf_counter() - t0) / n)
        assert a.nbytes == BIG and a[-1] == 1.0
        del a
    p.join()
    if via_pipe:
        rx.close()
        tx.close()
    return t


def memcpy_time(ndst):
    """Seconds per np.copyto of BIG bytes into ndst destinations in turn: 1 keeps it in the
    CPU's cache (on this host's large L3), 4 streams through memory as a queue's messages do."""
    import numpy as np
    src = np.ones(BIG // 8)
    dsts = [np.empty_like(src) for _ in range(ndst)]
    for d in dsts:
        np.copyto(d, src)

    def run(n):
        for i in range(n):
            np.copyto(dsts[i % ndst], src)
    return best(run, 20)


def big_data():
    try:
        import numpy  # noqa: F401  (python3-numpy, installed by scripts/deps.sh)
    except ImportError:
        print("numpy is not installed: the large-data rows are skipped")
        return
    big_arrays()
    n = max(4, int(8 * SCALE))
    hot, cold = memcpy_time(1), memcpy_time(4)
    gb = lambda t: BIG / t / 1e9  # noqa: E731
    print("memcpy of 8 MiB: %.2f GB/s in cache, %.2f GB/s through 4 buffers (the x memcpy "
          "column)" % (gb(hot), gb(cold)))
    print("%-34s %10s %11s %8s %9s" % ("8 MiB numpy arrays", "mproc GB/s", "python GB/s",
                                        "x python", "x memcpy"))
    for name, via_pipe, maxsize in (("Queue, child -> parent", False, 0),
                                    ("Queue(maxsize=4), child -> parent", False, 4),
                                    ("Pipe, child -> parent", True, 0)):
        a = b = float("inf")
        for _ in range(ROUNDS):
            a = min(a, big_transfer(mproc, via_pipe, n, maxsize))
            b = min(b, big_transfer(std, via_pipe, n, maxsize))
        cold = min(cold, memcpy_time(4))
        ok = "ok" if b / a >= 10 and cold / a >= 0.3 else "BELOW"
        print("%-34s %10.2f %11.2f %7.1fx %8.2fx %s" % (name, gb(a), gb(b), b / a, cold / a,
                                                       ok if not via_pipe else ""))


def main():
    cases = [("Pool.apply round trip", pool_apply, 5), ("Queue put+get, small objects",
             queue_small, 3), ("Lock acquire+release", lock_cycle, 2),
             ("Value += 1 under get_lock()", value_under_lock, 5),
             ("Lock, 2 processes at once", lock_contended, 2),
             ("Value += 1 locked, 2 processes", value_contended, 5),
             ("Process start+join, spawn", spawn_start_join, 1)]
    print("%-32s %12s %12s %8s %8s" % ("case", "mproc us", "python us", "ratio", "target"))
    for name, fn, target in cases:
        # Alternate the two, best of ROUNDS each: a burst of load on a shared machine then
        # slows both sides of a ratio, not one.
        a = b = float("inf")
        for _ in range(ROUNDS):
            a = min(a, fn(mproc) * 1e6)
            b = min(b, fn(std) * 1e6)
        print("%-32s %12.3f %12.3f %7.2fx %7.0fx %s" % (name, a, b, b / a, target,
                                                          "ok" if b / a >= target else "BELOW"))
    imap_memory()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--imap"]:
        imap_child(sys.argv[2], int(sys.argv[3]))
    elif "--bigdata" in sys.argv[1:]:
        big_data()
    elif "--map" in sys.argv[1:]:   # only the Pool map rows and the imap memory row
        map_rows()
        if not any(a.startswith("--rows=") for a in sys.argv[1:]):
            imap_memory()
    else:
        main()
        map_rows()
        big_data()
