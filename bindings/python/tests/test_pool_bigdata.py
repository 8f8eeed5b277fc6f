"""Large Pool arguments and results by reference through the pool's data arena (issue 20):
numpy arrays and other large buffers are copied once into shared memory, the worker's arrays
are views of it, and large results come back the same way. Every case checks the values against
what the task computes, and that the arena's extents all went back (nothing held) afterwards."""
import gc
import os
import pickle
import signal
import time

import pytest

import mproc
from mproc import _oob
from mproc import pool as pool_mod

np = pytest.importorskip("numpy")

MB = 1 << 20


def total(a):
    return float(a.sum())


def total2(a, b):
    return float(a.sum() + b.sum())


def twice(a):
    return a * 2


def same(a):
    return a


def make(n, value):
    return np.full(n, value, dtype=np.float64)


def add_inplace(a):
    a += 1  # the worker's view of its argument is writable; the caller's array is not touched
    return float(a[0])


def fail_with(a):
    raise ValueError("bad array of %d" % a.size)


def die(a):
    os.kill(os.getpid(), signal.SIGKILL)


def flags(a):
    return (a.flags.writeable, a.flags.c_contiguous, a.dtype.str, a.shape)


def length(b):
    return len(b), bytes(b[:3]), bytes(b[-3:])


def arena_held(p):
    """Extents of the pool's arena held by anyone (or in flight): 0 once every task is done and
    nothing of the results is kept."""
    arena = p.__dict__.get("_oob_arena", (None,))[0]
    assert arena is not None, "the pool made no arena"
    gc.collect()
    deadline = time.monotonic() + 5
    while arena.stats()[0] and time.monotonic() < deadline:  # a worker frees its view after
        time.sleep(0.01)                                        # it sent the result
    return arena.stats()[0]


def arrays(n, size=2 * MB):
    return [np.full(size // 8, float(i)) for i in range(n)]


@pytest.fixture(params=["fork", "forkserver", "spawn"])
def any_pool(request):
    p = mproc.get_context(request.param).Pool(2)
    yield p
    p.terminate()
    p.join()


@pytest.mark.parametrize("chunksize", [None, 1, 3])
def test_map_of_arrays(any_pool, chunksize):
    xs = arrays(8)
    assert any_pool.map(total, xs, chunksize) == [float(a.sum()) for a in xs]
    assert arena_held(any_pool) == 0


def test_every_method(pool):
    xs = arrays(6)
    want = [float(a.sum()) for a in xs]
    assert pool.map_async(total, xs).get(30) == want
    assert list(pool.imap(total, xs)) == want
    assert list(pool.imap(total, xs, chunksize=4)) == want
    assert sorted(pool.imap_unordered(total, xs, chunksize=2)) == sorted(want)
    pairs = list(zip(xs, xs[::-1]))
    assert pool.starmap(total2, pairs) == [float(a.sum() + b.sum()) for a, b in pairs]
    assert pool.starmap_async(total2, pairs, 1).get(30) == [float(a.sum() + b.sum())
                                                           for a, b in pairs]
    assert pool.apply(total, (xs[1],)) == want[1]
    assert pool.apply_async(total2, (xs[2], xs[3])).get(30) == want[2] + want[3]
    assert arena_held(pool) == 0


def test_large_results_come_back_as_arrays_that_own_their_memory(pool):
    xs = arrays(5)
    got = pool.map(twice, xs, 2)
    for a, g in zip(xs, got):
        assert isinstance(g, np.ndarray) and g.dtype == a.dtype and g.shape == a.shape
        assert np.array_equal(g, a * 2)
        assert g.flags.writeable
    got[0][:] = 7  # ours to write
    assert float(got[0][-1]) == 7.0 and float(xs[0][-1]) == 0.0
    big = pool.apply(make, (8 * MB, 3.5))  # small arguments, a 64 MiB result
    assert big.shape == (8 * MB,) and float(big[0]) == 3.5 and float(big[-1]) == 3.5
    del got, big, g
    assert arena_held(pool) == 0


def test_results_kept_after_the_pool_is_gone():
    p = mproc.Pool(2)
    got = p.map(same, arrays(3), 1)
    one = p.apply(make, (MB, 9.0))
    p.terminate()
    p.join()
    del p
    gc.collect()
    assert [float(g[-1]) for g in got] == [0.0, 1.0, 2.0]
    assert float(one.sum()) == 9.0 * MB
    got[1][:] = 5
    assert float(got[1].sum()) == 5.0 * got[1].size


def test_the_worker_gets_a_copy(pool):
    a = np.zeros(MB // 8)
    assert pool.apply(add_inplace, (a,)) == 1.0
    assert pool.map(add_inplace, [a, a], 1) == [1.0, 1.0]
    assert float(a.sum()) == 0.0
    assert arena_held(pool) == 0


def test_buffers_that_stay_in_band(pool):
    base = np.arange(MB, dtype=np.float64)
    cases = [base[::2],                       # not contiguous: pickled in band
             np.asfortranarray(base.reshape(512, 2048)),  # Fortran order: out of band
             np.zeros(0), np.zeros((0, 5)),   # 0 bytes
             np.arange(10),                   # small
             base.astype(np.int16)]
    for a in cases:
        got = pool.apply(same, (a,))
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    got = pool.map(same, cases, 1)
    assert all(np.array_equal(g, a) and g.shape == a.shape for g, a in zip(got, cases))
    assert pool.apply(flags, (cases[1],)) == (True, False, cases[1].dtype.str, (512, 2048))
    del got
    assert arena_held(pool) == 0


def test_read_only_arrays(pool):
    a = np.arange(MB // 4, dtype=np.int32)
    a.setflags(write=False)
    assert pool.apply(total, (a,)) == float(a.sum())
    got = pool.apply(same, (a,))
    assert np.array_equal(got, a)
    assert pool.map(total, [a, a, a], 2) == [float(a.sum())] * 3
    del got
    assert arena_held(pool) == 0


def test_bytes_like_objects(pool):
    blob = bytearray(os.urandom(3 * MB))
    assert pool.apply(length, (blob,)) == (len(blob), bytes(blob[:3]), bytes(blob[-3:]))
    back = pool.apply(same, (blob,))
    assert type(back) is bytearray and back == blob
    raw = bytes(blob)
    back = pool.map(same, [raw, raw], 1)
    assert all(type(b) is bytes and b == raw for b in back)
    pb = pool.apply(length, (pickle.PickleBuffer(blob),))
    assert pb == (len(blob), bytes(blob[:3]), bytes(blob[-3:]))
    del back
    assert arena_held(pool) == 0


def test_task_exception_frees_the_arguments(pool):
    xs = arrays(4)
    with pytest.raises(ValueError, match="bad array of 262144"):
        pool.map(fail_with, xs, 2)
    with pytest.raises(ValueError):
        pool.apply(fail_with, (xs[0],))
    assert arena_held(pool) == 0


def test_worker_killed_while_holding_an_argument(pool):
    xs = arrays(2)
    with pytest.raises(mproc.WorkerDiedError):
        pool.apply(die, (xs[0],))
    arena = pool._oob_arena[0]
    assert arena.stats()[0] == 1  # the dead worker's argument
    # The next extent the arena cannot find free is made after freeing those of dead holders.
    assert pool.map(total, arrays(2, 4 * MB), 1) == [0.0, float(MB // 2)]
    assert arena_held(pool) == 0


def test_unread_results_and_terminate_leave_nothing():
    # The fixture checks /dev/shm, fds, threads and children after the test.
    p = mproc.Pool(2)
    r = p.apply_async(make, (4 * MB, 1.0))
    r.wait(30)
    it = p.imap(same, arrays(20), chunksize=2)
    next(it)
    p.terminate()
    p.join()
    del p, r, it


def test_without_an_arena_the_plain_path(pool, monkeypatch):
    monkeypatch.setattr(pool_mod, "_arena_of", lambda p: (None, _oob.NO_ARENA))
    xs = arrays(4)
    assert pool.map(total, xs) == [float(a.sum()) for a in xs]
    assert pool.map(total, xs, 1) == [float(a.sum()) for a in xs]
    assert float(pool.apply(twice, (xs[1],))[-1]) == 2.0
    monkeypatch.setattr(pool_mod, "_oob", None)
    assert pool.map(total, xs) == [float(a.sum()) for a in xs]
    assert pool.map(total, xs, 1) == [float(a.sum()) for a in xs]
    assert float(pool.apply(twice, (xs[1],))[-1]) == 2.0


def test_same_results_as_multiprocessing(pool):
    import multiprocessing
    xs = arrays(4) + [np.arange(12).reshape(3, 4), np.zeros(0), np.arange(MB)[::3]]
    with multiprocessing.get_context("fork").Pool(2) as sp:
        want = sp.map(same, xs)
        got = pool.map(same, xs)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert type(g) is type(w) and g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g, w) and g.flags.writeable == w.flags.writeable
        assert pool.map(total, xs) == sp.map(total, xs)
        assert pool.apply(make, (MB, 2.0)).tolist() == sp.apply(make, (MB, 2.0)).tolist()
    del got, g
    assert arena_held(pool) == 0


NOT_DUMPABLE = r"""
import ctypes, sys
import numpy as np
import mproc

def total(a):
    return float(a.sum())

if __name__ == "__main__":
    assert ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE 0
    xs = [np.full(2 << 17, float(i)) for i in range(4)]
    with mproc.Pool(2) as p:
        assert p.map(total, xs) == [float(a.sum()) for a in xs]
        assert float(p.apply(total, (xs[3],))) == float(xs[3].sum())
        assert p.__dict__["_oob_arena"][0] is None  # no arena: the workers could not open it
    print("ok")
"""


def test_a_process_that_is_not_dumpable_maps_without_an_arena(tmp_path):
    # Workers open the arena through /proc/<pid>/fd, which a process that is not dumpable
    # forbids: its pool sends the data through the rings instead, and gets the same results.
    import subprocess
    import sys
    script = tmp_path / "not_dumpable.py"
    script.write_text(NOT_DUMPABLE)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


FORK_HELD = {}  # what the forked child reads: inherited, not pickled


def child_checks_its_copy(wrote, go):
    got = FORK_HELD["got"]
    if float(got[0]) != 7.0 or float(got[-1]) != 7.0:
        raise SystemExit(1)
    got[:] = 3.0  # the child's own copy
    wrote.set()
    if not go.wait(30):
        raise SystemExit(2)
    # The parent wrote its array, freed it and took another result in the same memory.
    if float(got.min()) != 3.0 or float(got.max()) != 3.0:
        raise SystemExit(3)


def test_a_result_is_private_after_fork(pool):
    # A result over an arena extent is the parent's own memory, also for a child forked after
    # it came: as with multiprocessing, where the fork copies the parent's memory.
    got = pool.apply(make, (MB // 8 * 4, 7.0))
    assert got.base is not None  # a view of its arena extent, not memory of its own
    ctx = mproc.get_context("fork")
    wrote, go = ctx.Event(), ctx.Event()
    FORK_HELD["got"] = got
    p = ctx.Process(target=child_checks_its_copy, args=(wrote, go))
    try:
        p.start()
        assert wrote.wait(30)
        assert float(got.min()) == 7.0 and float(got.max()) == 7.0  # not the child's writes
        got[:] = 5.0  # ours: the child must not see them
        del FORK_HELD["got"]
        del got
        gc.collect()
        again = pool.apply(make, (MB // 8 * 4, 9.0))  # reuses the freed extent's memory
        go.set()
        p.join(30)
        assert p.exitcode == 0
        assert float(again.min()) == 9.0 and float(again.max()) == 9.0
        del again
    finally:
        FORK_HELD.clear()
        go.set()
        if p.is_alive():
            p.join(30)
    assert arena_held(pool) == 0
