"""Pool maps of issue 20: chunks pickled whole, imap's input read by a feeder thread, and
the standard library's semantics kept (each case beside multiprocessing where they must agree)."""
import concurrent.futures
import itertools
import multiprocessing
import os
import pickle
import threading

import pytest

import mproc
import helpers


@pytest.fixture
def std_pool():
    p = multiprocessing.get_context("fork").Pool(2)
    yield p
    p.terminate()
    p.join()


def outcomes(it, limit=100):
    """What an iterator gives: values, and the names of the exceptions it raised, to its end."""
    out = []
    for _ in range(limit):
        try:
            out.append(next(it))
        except StopIteration:
            return out
        except Exception as e:
            out.append(type(e).__name__)
    pytest.fail("the iterator did not end")


def broken_input(n):
    for i in range(n):
        yield i
    raise KeyError("input broke")


@pytest.mark.parametrize("chunksize", [1, 4])
def test_imap_input_error_is_raised_at_the_chunk_that_hit_it(pool, std_pool, chunksize):
    # multiprocessing raises in place of the chunk being read, whose items are not run
    want = outcomes(std_pool.imap(helpers.square, broken_input(10), chunksize))
    got = outcomes(pool.imap(helpers.square, broken_input(10), chunksize))
    assert got == want
    assert got[-1] == "KeyError" and len(got) == (11 if chunksize == 1 else 9)


@pytest.mark.parametrize("chunksize", [1, 3])
def test_imap_failed_chunk_as_multiprocessing(pool, std_pool, chunksize):
    # chunksize 1: each failed item raises and the iteration goes on; a failed chunk of more
    # items raises once and ends the iteration
    def run(p):
        return outcomes(p.imap(helpers.fail, range(7), chunksize))
    assert run(pool) == run(std_pool)


def test_imap_item_that_cannot_be_pickled_fails_alone(pool):
    lock = threading.Lock()
    it = pool.imap(helpers.square, [1, lock, 3])
    assert next(it) == 1
    with pytest.raises(pickle.PicklingError, match="lock"):
        next(it)
    assert next(it) == 9
    with pytest.raises(StopIteration):
        next(it)


def test_imap_unordered_gives_later_results_while_an_early_item_runs(pool, tmp_path):
    flag = str(tmp_path / "go")
    items = [(x, flag) for x in range(40)]
    it = pool.imap_unordered(helpers.wait_file_if_zero, items, max_inflight=8)
    # item 0 waits until most others came (a few may sit queued behind it on its worker);
    # their batches were submitted after item 0's, so the iterator did not wait for it
    got = [it.next(timeout=60) for _ in range(30)]
    assert 0 not in got
    open(flag, "w").close()
    got += list(it)
    assert sorted(got) == list(range(40))


def test_imap_loop_left_with_break_loses_nothing(pool):
    it = pool.imap(helpers.square, range(100), chunksize=7)
    first = []
    for v in it:
        first.append(v)
        if len(first) == 10:
            break
    assert first + list(it) == [x * x for x in range(100)]


def test_imap_timeout_then_result(pool, tmp_path):
    flag = str(tmp_path / "go")
    it = pool.imap(helpers.wait_file_if_zero, [(0, flag), (1, flag)])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.05)
    open(flag, "w").close()
    assert it.next(timeout=60) == 0 and it.next(timeout=60) == 1


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map_async_and_starmap_async_callbacks(pool, chunksize):
    seen = []
    r = pool.map_async(helpers.square, range(100), chunksize, callback=seen.append)
    assert r.get(timeout=60) == [x * x for x in range(100)]
    assert seen == [[x * x for x in range(100)]]  # the callback ran before get() returned
    assert r.ready() and r.successful()
    r = pool.starmap_async(helpers.add, [(i, 1) for i in range(50)], chunksize)
    assert r.get(timeout=60) == [i + 1 for i in range(50)]


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_async_error_callback(pool, chunksize):
    errors = []
    r = pool.map_async(helpers.fail, range(10), chunksize, error_callback=errors.append)
    with pytest.raises(ValueError, match="bad value"):
        r.get(timeout=60)
    assert not r.successful()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_map_raises_only_after_every_chunk_ran(pool, tmp_path):
    # as multiprocessing's map: the failure comes once all chunks are done
    paths = [str(tmp_path / ("f%d" % i)) for i in range(40)]
    paths[3] += "bad"
    with pytest.raises(ValueError, match="bad item"):
        pool.map(helpers.touch_or_fail, paths, chunksize=4)
    assert all(os.path.exists(p) for p in paths if not p.endswith("bad"))


def test_map_async_chunked_cancel(pool):
    r = pool.map_async(helpers.sleep_forever, range(4), chunksize=2)
    assert r.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        r.get(timeout=60)
    assert r.cancelled()
    assert pool.map(helpers.square, range(6), chunksize=2) == [0, 1, 4, 9, 16, 25]


def test_join_waits_for_a_chunked_map_async_callback(pool):
    done = []
    event = threading.Event()

    def slow_callback(v):
        event.wait(0.2)
        done.append(len(v))
    pool.map_async(helpers.square, range(64), chunksize=8, callback=slow_callback)
    pool.close()
    pool.join()
    assert done == [64]


def test_chunked_map_after_close_raises(pool):
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(helpers.square, range(10), chunksize=3)
    with pytest.raises(ValueError, match="Pool not running"):
        pool.imap(helpers.square, range(10), chunksize=3)
    pool.join()


def test_map_of_large_items_in_chunks(pool):
    blobs = [bytes([i]) * (3 << 20) for i in range(6)]   # 3 MiB each: larger than the rings
    assert pool.map(len, blobs, chunksize=2) == [3 << 20] * 6
    assert list(pool.imap(len, iter(blobs), chunksize=2)) == [3 << 20] * 6


def test_imap_window_bounds_what_is_taken(pool):
    taken = []

    def counted():
        for i in itertools.count():
            taken.append(i)
            yield i
    it = pool.imap(helpers.square, counted(), chunksize=5, max_inflight=20)
    assert [next(it) for _ in range(12)] == [x * x for x in range(12)]
    # at most max_inflight taken and not read back, plus the chunk being given out
    assert len(taken) <= 12 + 20 + 5


@pytest.mark.parametrize("n,chunksize", [(10, 3), (1000, 7), (64, None)])
def test_map_async_then_close_completes(pool, n, chunksize):
    # as multiprocessing: work submitted before close() runs to its end
    r = pool.map_async(helpers.square, range(n), chunksize)
    s = pool.starmap_async(helpers.add, [(i, i) for i in range(n)], chunksize)
    pool.close()
    assert r.get(timeout=60) == [x * x for x in range(n)]
    assert s.get(timeout=60) == [2 * x for x in range(n)]
    pool.join()


def test_chunks_go_through_oob_when_it_is_there(monkeypatch):
    # mproc._oob (large pickle-5 buffers through shared memory) plugs in at pool._chunk_bytes
    # and _worker.run_task; a stand-in module that marks what it carried (ints + 1000) shows
    # the chunks take that way, and that what it cannot send goes the plain way
    import sys
    import types
    fake = types.ModuleType("mproc._oob")
    sent = []

    def dumps(obj):
        if any(callable(x) for x in obj):
            raise TypeError("not this one")
        sent.append(len(obj))
        return b"OOB:" + pickle.dumps(obj, 5)

    def loads(buf):
        buf = bytes(buf)
        assert buf[:4] == b"OOB:"
        return [x + 1000 for x in pickle.loads(buf[4:])]
    fake.dumps, fake.loads = dumps, loads
    fake.arena_of = lambda coords: None  # no data arena: the buffers go in the task's bytes
    monkeypatch.setitem(sys.modules, "mproc._oob", fake)
    monkeypatch.setattr(mproc, "_oob", fake, raising=False)
    monkeypatch.setattr(mproc.pool, "_oob_dumps", fake.dumps)
    monkeypatch.setattr(mproc.pool, "_arena_of", lambda pool: (None, bytes(16)))
    monkeypatch.setattr(mproc._worker, "_oob", fake)
    with mproc.get_context("fork").Pool(2) as p:   # fork: the workers have the stand-in
        assert p.map(helpers.square, range(50), chunksize=5) == \
            [(x + 1000) ** 2 for x in range(50)]
        assert list(p.imap(helpers.ident, range(20), chunksize=3)) == \
            [x + 1000 for x in range(20)]
        d = __import__("decimal").Decimal
        assert p.map(callable, [len, d(1), d(2)], chunksize=2) == [True, False, False]
    assert sum(sent) == 50 + 20 + 1   # [d(2)] was sent by _oob; [len, d(1)] the plain way
    # (a chunk of plain ints or floats has no buffers: it is packed, _oob is not asked)


@pytest.mark.parametrize("ordered", [True, False])
def test_imap_returns_at_once_and_a_thread_reads_the_input(pool, std_pool, ordered):
    """As multiprocessing's imap (its task thread reads the input): imap() returns before the
    input gives anything, and an input that waits for the caller's results works (each item is
    put by the caller after the result of the one before)."""
    import queue

    def run(p):
        q = queue.Queue()

        def feed():
            while True:
                x = q.get(timeout=30)  # Empty: the input was read by the caller's own thread
                if x is None:
                    return
                yield x
        it = (p.imap if ordered else p.imap_unordered)(helpers.square, feed())
        out = []
        for x in (3, 4, 5):
            q.put(x)  # only now: imap() returned without reading
            out.append(it.next(timeout=30))
        q.put(None)
        out.extend(it)
        return out
    assert run(std_pool) == [9, 16, 25]
    assert run(pool) == [9, 16, 25]


def test_imap_input_that_is_not_iterable_raises_at_next(pool, std_pool):
    # multiprocessing calls iter() in its task thread: the error comes from next()
    for p in (std_pool, pool):
        it = p.imap(helpers.square, 5)
        with pytest.raises(TypeError):
            it.next(timeout=30)


def test_abandoned_imap_ends_its_feeder(pool):
    """An iterator dropped before its input ends is freed, and its feeder thread ends (the
    no_leaks fixture checks the thread)."""
    import gc
    import weakref
    it = pool.imap(helpers.square, itertools.count(), max_inflight=8)
    assert [next(it) for _ in range(3)] == [0, 1, 4]
    ref = weakref.ref(it)
    del it
    import time
    deadline = time.monotonic() + 30
    while ref() is not None and time.monotonic() < deadline:  # the feeder may hold it a moment
        gc.collect()
        time.sleep(0.01)
    assert ref() is None


def _exact(values):
    """Each value with its type, a float by its bits (NaN payloads, -0.0)."""
    import struct
    return [(type(x), struct.pack("<d", x) if type(x) is float else x) for x in values]


NUMBER_INPUTS = {
    "ints": [0, 1, -1, 2 ** 63 - 1, -2 ** 63, 255, 256, 10 ** 12],
    "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e-310],
    "big int": [1, 2 ** 63, 3],                 # does not fit: pickled
    "bools": [True, False, 1, 0],               # bool is not int: pickled
    "int enum": [1, __import__("signal").SIGTERM, 2],
    "mixed": [1, 2.5, 3],
    "tuple of ints": (4, 5, 6, 7),
}


@pytest.mark.parametrize("name", sorted(NUMBER_INPUTS))
def test_chunks_of_numbers_give_what_pickle_gives(pool, std_pool, name):
    """Chunks of exact ints or floats travel packed (not pickled), both ways: the values and
    their types are the standard library's."""
    data = NUMBER_INPUTS[name]
    want = std_pool.map(helpers.ident, data, 2)
    assert _exact(want) == _exact(data)
    for cs in (1, 2, None):
        assert _exact(pool.map(helpers.ident, data, cs)) == _exact(want)
        assert _exact(pool.imap(helpers.ident, data, 3)) == _exact(want)
        assert _exact(pool.map_async(helpers.ident, data, cs).get(30)) == _exact(want)
    # results of another type than the input's: bools stay bools, big squares big ints
    assert _exact(pool.map(callable, data, 2)) == _exact(std_pool.map(callable, data, 2))
    if name in ("ints", "big int"):
        want = std_pool.map(helpers.square, data, 3)
        assert _exact(pool.map(helpers.square, data, 3)) == _exact(want)


def test_a_range_is_sent_in_ranges_with_the_same_results(pool, std_pool):
    for r in (range(0), range(7), range(10, -10, -3), range(2 ** 64, 2 ** 64 + 9, 2)):
        want = std_pool.map(helpers.square, r, 2)
        assert pool.map(helpers.square, r, 2) == want
        assert list(pool.imap(helpers.square, r, 4)) == want
        assert sorted(pool.imap_unordered(helpers.square, r, 3)) == sorted(want)
    with pytest.raises(TypeError):  # as multiprocessing: an int is not a tuple of arguments
        pool.starmap(helpers.add, range(4), 2)
    with pytest.raises(TypeError):
        std_pool.starmap(helpers.add, range(4), 2)


def test_packed_chunks_whose_results_change_type_or_raise(pool, std_pool):
    # A packed chunk's results are packed as they come until one is not an exact int (or float,
    # after a float): from there the chunk's results are a list, the ones before made again.
    data = list(range(2000))
    for cs in (None, 1, 3, 100, 1000):
        want = std_pool.map(helpers.type_changes, data, cs)
        assert _exact(pool.map(helpers.type_changes, data, cs)) == _exact(want)
        assert _exact(list(pool.imap(helpers.type_changes, data, cs or 1))) == _exact(want)
    with pytest.raises(ValueError, match="item 500"):
        pool.map(helpers.fail_at_500, data, 1000)
    with pytest.raises(ValueError, match="item 500"):
        std_pool.map(helpers.fail_at_500, data, 1000)


Pair = __import__("collections").namedtuple("Pair", "a b")
TUPLE_INPUTS = {
    "int pairs": [(i, -i) for i in range(7)] + [(2 ** 63 - 1, -2 ** 63)],
    "int and float": [(1, 0.5), (2, -0.0), (3, float("nan")), (4, float("inf"))],
    "one float": [(1.5,), (-0.0,), (1e-310,)],
    "arity 16": [tuple(range(i, i + 16)) for i in range(3)],
    "arity 17": [tuple(range(i, i + 17)) for i in range(3)],      # pickled
    "arities differ": [(1, 2), (3, 4, 5), (6, 7)],                # pickled
    "types differ": [(1, 2), (3.0, 4), (5, 6)],                   # pickled
    "bool": [(1, 2), (True, 3)],                                  # pickled
    "big int": [(1, 2), (2 ** 64, 3)],                            # pickled
    "lists": [[1, 2], [3, 4]],                                    # pickled
    "namedtuple": [Pair(1, 2), Pair(3, 4)],                       # pickled
    "empty tuples": [(), ()],                                     # pickled
    "tuple of tuples": ((1, 2), (3, 4), (5, 6)),
}


@pytest.mark.parametrize("name", sorted(TUPLE_INPUTS))
def test_starmap_chunks_of_number_tuples_give_what_pickle_gives(pool, std_pool, name):
    """starmap's chunks of tuples of exact ints or floats travel packed: the function gets the
    arguments, of the types, the standard library gives it; anything else is pickled."""
    data = TUPLE_INPUTS[name]
    want = std_pool.starmap(helpers.args_of, data, 2)
    for cs in (1, 2, None):
        assert pool.starmap(helpers.args_of, data, cs) == want
        assert pool.starmap_async(helpers.args_of, data, cs).get(30) == want
    if all(len(t) == 2 for t in data):
        want = std_pool.starmap(helpers.add, data, 3)
        assert _exact(pool.starmap(helpers.add, data, 3)) == _exact(want)


def test_packed_tuples_in_a_worker_that_raises_or_returns_other_types(pool, std_pool):
    data = [(i, 1) for i in range(3000)]
    for fn in (helpers.add, helpers.args_of):
        assert pool.starmap(fn, data, 1000) == std_pool.starmap(fn, data, 1000)
    with pytest.raises(ZeroDivisionError):
        pool.starmap(divmod, [(i, 1 if i != 2500 else 0) for i in range(3000)], 1000)


def test_packed_number_helpers_refuse_what_they_cannot_read():
    from mproc import _mproc
    blob = _mproc.py_pack_numbers([1, 2, 3], b"xy")
    assert blob[:3] == b"xyq"
    assert _mproc.py_unpack_numbers(blob, 2) == [1, 2, 3]
    assert _mproc.py_pack_numbers([1, 2, 3], b"", 1, 2)[1:] == _mproc.py_pack_numbers([2])[1:]
    assert _mproc.py_pack_numbers([1, 2, 3], b"", 2, 1) is None   # an empty window
    for bad, at in ((blob, 0), (blob, 99), (blob, -1), (blob[:-1], 2), (b"", 0)):
        with pytest.raises(ValueError):
            _mproc.py_unpack_numbers(bad, at)
    rows = _mproc.py_pack_tuples([(1, 2.5), (3, 4.5)], b"", 0, 2)
    assert rows[:4] == b"T\x02qd"
    assert _mproc.py_starmap_packed(helpers.args_of, rows, b"") == \
        [helpers.args_of(1, 2.5), helpers.args_of(3, 4.5)]
    assert _mproc.py_starmap_packed(helpers.add, rows, b"h")[:2] == b"hd"
    for bad in (b"", b"T", b"T\x00", b"T\x02q", b"T\x02qx" + bytes(16), rows[:-1],
                b"X" + rows[1:]):
        with pytest.raises(ValueError):
            _mproc.py_starmap_packed(helpers.add, bad, b"")


def _arena_allocator():
    """The interpreter's pymalloc arena allocator (ctx, alloc, free), read through its C API."""
    import ctypes

    class Alloc(ctypes.Structure):
        _fields_ = [("ctx", ctypes.c_void_p), ("alloc", ctypes.c_void_p),
                    ("free", ctypes.c_void_p)]
    a = Alloc()
    ctypes.pythonapi.PyObject_GetArenaAllocator(ctypes.byref(a))
    return a.ctx, a.alloc, a.free


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _huge_kib():
    """Anonymous memory of this process in transparent huge pages (KiB)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def _thp_on_advice():
    """Whether this process gets a huge page for memory advised MADV_HUGEPAGE (probed: a setting
    that allows it may still find no free 2 MiB page)."""
    import mmap
    if os.environ.get("PYTHONMALLOC", "").startswith("malloc") or \
            os.environ.get("MPROC_HUGE_ARENAS") == "0" or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    m = mmap.mmap(-1, 4 << 20)
    try:
        m.madvise(mmap.MADV_HUGEPAGE)
        before = _huge_kib()
        for i in range(0, 4 << 20, 4096):
            m[i] = 1
        return _huge_kib() - before >= 2048
    finally:
        m.close()


def test_large_results_made_in_huge_page_arenas_give_their_memory_back():
    """unpack_numbers makes a large chunk's objects with pymalloc's arenas taken from huge-page
    regions, then gives the interpreter its own allocator back; the objects' memory goes back to
    the system when they are freed, as any arena's."""
    from mproc import _mproc
    before = _arena_allocator()
    blob = _mproc.py_pack_numbers(list(range(10 ** 6)), b"") + b""
    floats = _mproc.py_pack_numbers([i / 2 for i in range(10 ** 5)], b"")
    import gc
    gc.collect()
    base, huge = _rss(), _huge_kib()
    thp = _thp_on_advice()
    pymalloc = not os.environ.get("PYTHONMALLOC", "").startswith("malloc")
    import tracemalloc
    for _ in range(3):
        xs = _mproc.py_unpack_numbers(blob, 0)
        assert _arena_allocator() == before
        if thp:  # the ints' 32 MB are in huge pages (most of them, at least)
            assert _huge_kib() - huge >= 16 << 10
        assert len(xs) == 10 ** 6 and xs[0] == 0 and xs[-1] == 10 ** 6 - 1 and sum(xs) == \
            10 ** 6 * (10 ** 6 - 1) // 2
        grown = _rss() - base
        if pymalloc:  # (malloc reuses what the list made above had)
            assert grown > 30 << 20  # 10^6 ints (32 bytes each) and the list
        del xs
        assert _mproc.py_unpack_numbers(floats, 0) == [i / 2 for i in range(10 ** 5)]
        gc.collect()
        # the ints' 32 MB are gone (the allocator may keep the list's 8 MB for reuse;
        # tracemalloc keeps its own records of them)
        if pymalloc and not tracemalloc.is_tracing():
            assert _rss() - base < 16 << 20, "the arenas' memory was not given back"


class _UnpacksInAThread:
    """Unpickling it runs Python code that makes another thread unpack a large chunk (its own
    scope of huge-page arenas, begun and ended inside this one's)."""

    def __init__(self, blob):
        self.blob = blob

    def __reduce__(self):
        return (_unpack_in_a_thread, (self.blob,))


def _unpack_in_a_thread(blob):
    from mproc import _mproc
    out = []
    t = threading.Thread(target=lambda: out.append(len(_mproc.py_unpack_numbers(blob, 0))))
    t.start()
    t.join()
    return out[0]


def test_loads_of_large_pickles_as_pickle_and_gives_the_allocator_back():
    from mproc import _mproc
    before = _arena_allocator()
    big = [("k%d" % i, i, float(i)) for i in range(60000)]
    data = pickle.dumps(big, 5)
    assert len(data) > 256 << 10
    assert _mproc.py_loads(data) == big
    assert _mproc.py_loads(memoryview(data)) == big
    assert _mproc.py_loads(pickle.dumps(3)) == 3
    assert _arena_allocator() == before
    # a buffer out of band, as mproc._oob passes them
    bufs = []
    raw = pickle.dumps(pickle.PickleBuffer(bytearray(b"xyz")), 5, buffer_callback=bufs.append)
    assert bytes(_mproc.py_loads(raw, [b.raw() for b in bufs])) == b"xyz"
    with pytest.raises(pickle.UnpicklingError):
        _mproc.py_loads(data[:len(data) // 2])
    assert _arena_allocator() == before
    # Python code inside the loads, another thread's scope inside this one
    blob = _mproc.py_pack_numbers(list(range(50000)), b"")
    many = [_UnpacksInAThread(blob)] * 2 + list(range(60000))
    got = _mproc.py_loads(pickle.dumps(many, 5))
    assert got[:2] == [50000, 50000] and got[2:] == list(range(60000))
    assert _arena_allocator() == before


STR_INPUTS = {
    "ascii": ["a", "", "bc", "x" * 1000, "\x00\x7f", " \t\n"],
    "non-ascii": ["a", "d\u00e9f", "\u4e2d", "\U0001f600"],           # pickled
    "surrogate": ["a", "\ud800"],                                       # pickled
    "subclass": ["a", helpers.Text("b")],                               # pickled
    "mixed": ["a", 1, "c"],                                             # pickled
    "bytes": [b"a", b"b"],                                              # pickled
    "tuple": ("p", "q", "r"),
}


@pytest.mark.parametrize("name", sorted(STR_INPUTS))
def test_chunks_of_strings_give_what_pickle_gives(pool, std_pool, name):
    """Chunks of exact ASCII strings travel packed both ways; the functions get, and the caller
    gets back, what the standard library gives (types included)."""
    data = STR_INPUTS[name]
    fns = [helpers.typed, helpers.ident, str.upper if name == "ascii" else repr]
    if name != "mixed":
        fns.append(len)
    for fn in fns:
        want = std_pool.map(fn, data, 2)
        for cs in (1, 2, None):
            assert pool.map(fn, data, cs) == want
            assert list(pool.imap(fn, data, 3)) == want
        assert [type(x) for x in pool.map(fn, data)] == [type(x) for x in want]


def test_packed_results_of_strings_and_tuples_as_pickle_gives(pool, std_pool):
    data = list(range(3000))
    for fn in (str, helpers.pair_of, helpers.typed):
        for cs in (None, 1000):
            assert pool.map(fn, data, cs) == std_pool.map(fn, data, cs)
    big = [2 ** 70, 1, 2]  # a pair that does not fit: pickled
    assert pool.map(helpers.pair_of, big) == std_pool.map(helpers.pair_of, big)
    floats = [0.5, -0.0, float("inf")]
    assert _exact(x for t in pool.map(helpers.pair_of, floats) for x in t) == \
        _exact(x for t in std_pool.map(helpers.pair_of, floats) for x in t)


def test_packed_strings_and_tuples_refused_when_malformed():
    from mproc import _mproc
    s = _mproc.py_pack_strs(["ab", "", "c"], b"h", 0, 3)
    assert s[:2] == b"hU"
    assert _mproc.py_unpack_numbers(s, 1) == ["ab", "", "c"]
    assert _mproc.py_pack_strs(["ab", "\u00e9"], b"", 0, 2) is None
    assert _mproc.py_pack_strs(["ab", "c"], b"", 1, 1) is None
    t = _mproc.py_pack_tuples([(1, 2.5)], b"", 0, 1)
    assert _mproc.py_unpack_numbers(t, 0) == [(1, 2.5)]
    for bad in (s[:-1], s + b"x", s[:5], b"hU\xff\xff\xff\xff", s.replace(b"ab", b"\xc3\xa9")):
        with pytest.raises(ValueError):
            _mproc.py_unpack_numbers(bad, 1)
    for bad in (t[:-1], t + b"x", b"T\x00", b"T\x01x" + bytes(8), b"T\x11" + b"q" * 17):
        with pytest.raises(ValueError):
            _mproc.py_unpack_numbers(bad, 0)


_GATE = {}


def _block_in_loads():
    """Unpickled inside a large loads: holds that loads (and its scope) open until released."""
    _GATE["inside"].set()
    _GATE["release"].wait(30)
    return "unblocked"


class _BlocksLoads:
    def __reduce__(self):
        return (_block_in_loads, ())


def test_a_child_forked_inside_another_threads_scope_gets_the_interpreters_allocator():
    if os.environ.get("MPROC_HUGE_ARENAS") == "0":
        pytest.skip("huge-page arenas turned off")
    from mproc import _mproc
    before = _arena_allocator()
    _GATE["inside"], _GATE["release"] = threading.Event(), threading.Event()
    data = pickle.dumps([_BlocksLoads()] + list(range(10 ** 6, 10 ** 6 + 60000)), 5)
    assert len(data) > 256 << 10  # a scope is begun
    out = []
    t = threading.Thread(target=lambda: out.append(_mproc.py_loads(data)))
    t.start()
    try:
        assert _GATE["inside"].wait(30)
        assert _arena_allocator() != before  # the other thread's scope is open
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: that thread and its scope are not here
            ok = _arena_allocator() == before and len(_mproc.py_unpack_numbers(
                _mproc.py_pack_numbers(list(range(50000)), b""), 0)) == 50000 and \
                _arena_allocator() == before
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        assert got == b"1"
    finally:
        _GATE["release"].set()
        t.join()
    assert out[0][0] == "unblocked" and out[0][1:] == list(range(10 ** 6, 10 ** 6 + 60000))
    assert _arena_allocator() == before
