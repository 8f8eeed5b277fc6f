"""Pool: the multiprocessing API plus worker death, task timeouts and stats."""
import gc
import multiprocessing.pool
import os
import re
import signal
import threading
import time
import weakref

import pytest

import mproc
import helpers


def test_apply_and_apply_async(pool):
    assert pool.apply(helpers.add, (2, 3)) == 5
    assert pool.apply(helpers.add, (), {"a": 1, "b": 2}) == 3
    r = pool.apply_async(helpers.square, (9,))
    assert r.get() == 81
    assert r.ready() and r.successful()


def test_map_starmap_and_chunksize(pool):
    assert pool.map(helpers.square, range(20)) == [x * x for x in range(20)]
    assert pool.map(helpers.square, range(20), chunksize=7) == [x * x for x in range(20)]
    assert pool.map(helpers.square, []) == []
    assert pool.map(helpers.square, (x for x in range(5))) == [0, 1, 4, 9, 16]
    assert pool.starmap(helpers.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.starmap_async(helpers.add, [(5, 5)]).get() == [10]
    with pytest.raises(ValueError):
        pool.map(helpers.square, [1], chunksize=0)


def test_imap_ordered_and_unordered(pool):
    assert list(pool.imap(helpers.square, range(10))) == [x * x for x in range(10)]
    assert list(pool.imap(helpers.square, range(10), chunksize=3)) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(helpers.square, range(10))) == [x * x for x in range(10)]
    it = pool.imap(helpers.square, [3])
    assert it.next(timeout=30) == 9
    with pytest.raises(StopIteration):
        next(it)


def test_exception_is_reraised_with_remote_traceback(pool):
    with pytest.raises(ValueError, match="bad value 4") as ei:
        pool.apply(helpers.fail, (4,))
    cause = ei.value.__cause__
    assert isinstance(cause, mproc.RemoteTraceback)
    assert "helpers.py" in str(cause) and "in fail" in str(cause)
    r = pool.apply_async(helpers.fail, (5,))
    with pytest.raises(ValueError, match="bad value 5"):
        r.get()
    assert not r.successful()


def test_map_raises_the_failing_items_exception(pool):
    with pytest.raises(ValueError, match="bad value"):
        pool.map(helpers.fail, [1, 2, 3])
    it = pool.imap(helpers.fail, [1])
    with pytest.raises(ValueError):
        next(it)


def test_unpicklable_exception_becomes_runtime_error_with_traceback(pool):
    with pytest.raises(RuntimeError, match="Unpicklable") as ei:
        pool.apply(helpers.raise_unpicklable, (1,))
    assert "raise_unpicklable" in str(ei.value.__cause__)


def test_pool_that_used_a_callback_is_freed_after_close_and_join(ctx):
    pool = ctx.Pool(2)
    assert pool.apply_async(helpers.square, (2,), callback=lambda v: None).get() == 4
    pool.close()
    pool.join()
    assert "mproc-pool-callbacks" not in [t.name for t in threading.enumerate()]
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None


def test_executor_is_freed_after_shutdown():
    ex = mproc.ProcessPoolExecutor(2)
    assert ex.submit(helpers.square, 3).result() == 9
    ex.shutdown()
    ref = weakref.ref(ex._pool)
    del ex
    gc.collect()
    assert ref() is None


def test_callbacks_run_before_get_returns(pool):
    got, errs = [], []
    r1 = pool.apply_async(helpers.square, (4,), callback=got.append)
    r2 = pool.apply_async(helpers.fail, (1,), error_callback=errs.append)
    r3 = pool.map_async(helpers.square, [1, 2], callback=got.append)
    assert r1.get() == 16
    r2.wait()
    r3.get()
    assert 16 in got and [1, 4] in got
    assert len(errs) == 1 and isinstance(errs[0], ValueError)
    # callbacks run on a Python thread of the pool, not the caller's
    names = []
    pool.apply_async(helpers.ident, (0,), callback=lambda v: names.append(
        threading.current_thread().name)).get()
    assert names == ["mproc-pool-callbacks"]


def test_callbacks_done_after_close_join():
    results = []
    pool = mproc.Pool(2)
    for i in range(20):
        pool.apply_async(helpers.square, (i,), callback=results.append)
    pool.close()
    pool.join()
    assert sorted(results) == sorted(i * i for i in range(20))


def test_async_get_timeout_raises_timeout_error(pool):
    r = pool.apply_async(helpers.sleep_forever, (None,))
    with pytest.raises(mproc.TimeoutError):
        r.get(timeout=0.05)
    assert not r.ready()
    with pytest.raises(ValueError):
        r.successful()


@pytest.mark.parametrize("fn", [helpers.die, helpers.kill_self])
def test_worker_death_fails_only_its_task(pool, fn):
    with pytest.raises(mproc.WorkerDiedError):
        pool.apply(fn, (0,))
    assert isinstance(mproc.WorkerDiedError("x"), mproc.ProcessError)
    # the pool goes on with a replacement worker
    assert pool.map(helpers.square, range(6)) == [0, 1, 4, 9, 16, 25]
    assert sum(s["restarts"] for s in pool.stats()) >= 1


def test_worker_killed_from_outside_mid_task(pool, tmp_path):
    fifo = str(tmp_path / "started")
    os.mkfifo(fifo)
    r = pool.apply_async(helpers.report_pid_then_sleep, (fifo,))
    with open(fifo) as f:  # returns once the task runs and names its worker
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(mproc.WorkerDiedError):
        r.get(timeout=60)
    assert pool.apply(helpers.square, (3,)) == 9
    assert any(s["last_exit"] == -signal.SIGKILL for s in pool.stats())


def test_task_timeout_kills_and_replaces_worker():
    with mproc.Pool(1, task_timeout=0.2) as pool:
        with pytest.raises(mproc.TaskTimeoutError):
            pool.apply(helpers.sleep_forever, (None,))
        assert issubclass(mproc.TaskTimeoutError, mproc.TimeoutError)
        assert pool.apply(helpers.square, (5,)) == 25
        stats = pool.stats()
        assert stats[0]["restarts"] == 1 and stats[0]["last_exit"] == -signal.SIGKILL


def test_per_call_task_timeout(pool):
    with pytest.raises(mproc.TaskTimeoutError):
        pool.apply_async(helpers.sleep_forever, (None,), task_timeout=0.1).get()
    with pytest.raises(mproc.TaskTimeoutError):
        pool.map(helpers.sleep_forever, [1], task_timeout=0.1)


def test_closed_pool_raises_value_error():
    pool = mproc.Pool(1)
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply(helpers.square, (1,))
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map_async(helpers.square, [1])
    pool.join()


def test_context_manager_terminates():
    with mproc.Pool(2) as pool:
        r = pool.apply_async(helpers.sleep_forever, (None,))
    with pytest.raises(Exception):
        r.get(timeout=60)
    pool.join()


def test_initializer_runs_in_each_worker(request):
    for method in ("fork", "forkserver"):
        with mproc.get_context(method).Pool(2, initializer=helpers.init_state,
                                            initargs=("ready",)) as pool:
            assert pool.map(helpers.read_state, range(4)) == [("ready", i) for i in range(4)]


def test_failing_initializer_raises_instead_of_looping():
    pool = mproc.Pool(1, initializer=helpers.bad_init)
    with pytest.raises(mproc.PoolInitError, match="init broke"):
        pool.apply(helpers.square, (1,))
    pool.terminate()
    pool.join()


def test_maxtasksperchild_replaces_workers():
    with mproc.Pool(1, maxtasksperchild=1) as pool:
        pids = {pool.apply(helpers.pid_of) for _ in range(3)}
    assert len(pids) == 3


def test_stats_shape(pool):
    pool.map(helpers.square, range(8))
    st = pool.stats()
    assert len(st) == 2
    assert sum(s["tasks"] for s in st) >= 1
    assert all(s["pid"] > 0 for s in st)


def test_worker_identity():
    with mproc.Pool(1) as pool:
        name, ppid = pool.apply(_name_and_parent)
    assert re.fullmatch(r"(Fork|ForkServer|Spawn)PoolWorker-\d+", name) and ppid == os.getpid()


@pytest.mark.parametrize("method,kind", [("fork", "ForkPoolWorker"),
                                         ("forkserver", "ForkServerPoolWorker")])
def test_worker_identity_as_multiprocessing(method, kind):
    # (N,) and <Kind>PoolWorker-N, in mproc's and multiprocessing's current_process(): programs
    # pick a device or a seed with current_process()._identity[0]
    with mproc.get_context(method).Pool(2) as pool:
        seen = set(pool.map(helpers.identity_of_worker, range(40), chunksize=1))
        workers = pool._pool
        mine = set(pool.map(_mproc_identity, range(40), chunksize=1))
    assert len(seen) == 2 and seen == mine
    for identity, name in seen:
        assert len(identity) == 1 and identity[0] >= 1
        assert name == "%s-%d" % (kind, identity[0])
    assert sorted(w.name for w in workers) == sorted(name for _, name in seen)


def _mproc_identity(x):
    p = mproc.current_process()
    return p._identity, p.name


def test_pool_internals_that_programs_read(pool):
    assert pool._processes == 2
    workers = pool._pool
    assert len(workers) == 2 and all(w.pid > 0 and w.is_alive() for w in workers)
    assert {w.pid for w in workers} == set(pool.map(helpers.pid_of, range(20), chunksize=1))
    r = pool.apply_async(helpers.sleep_then, (1, 0.5))
    assert r in pool._cache.values()
    assert r.get(timeout=60) == 1
    assert r not in pool._cache.values()


def _fail_on_5(x):
    if x == 5:
        raise ZeroDivisionError(x)
    return x


def test_imap_leaves_cache_once_its_results_are_in(pool):
    """multiprocessing drops an imap from _cache when its last result arrives, whether the
    caller read it all or not (CPython's Doc/includes/mp_pool.py asserts this)."""
    it = pool.imap(_fail_on_5, range(10))
    got = []
    for _ in range(10):  # ten next() calls, the sixth raises; no eleventh
        try:
            got.append(next(it))
        except ZeroDivisionError:
            got.append("error")
    assert got == [0, 1, 2, 3, 4, "error", 6, 7, 8, 9]
    assert it in pool._cache.values() or not pool._cache  # the last batch may still be running
    deadline = time.monotonic() + 30
    while pool._cache and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pool._cache
    with pytest.raises(ZeroDivisionError):
        list(pool.imap(_fail_on_5, range(10)))  # abandoned at its error
    # an input that fits in the imap's window (a longer one is read lazily, as it is consumed)
    small = pool.imap(helpers.square, range(200), chunksize=50)
    assert next(small) == 0
    while pool._cache and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pool._cache  # every result is in, though 199 are not read yet
    assert list(small) == [x * x for x in range(1, 200)]


def test_unclosed_pool_warns_as_multiprocessing():
    p = mproc.Pool(1)
    with pytest.warns(ResourceWarning, match="unclosed running multiprocessing pool"):
        del p
        gc.collect()


def test_maybe_encoding_error_is_multiprocessings(pool):
    with pytest.raises(multiprocessing.pool.MaybeEncodingError, match="Error sending result"):
        pool.apply(threading.Lock)
    with pytest.raises(multiprocessing.pool.MaybeEncodingError):
        pool.apply_async(threading.Lock).get(timeout=60)
    with pytest.raises(multiprocessing.pool.MaybeEncodingError):
        pool.starmap(threading.Lock, [(), ()], chunksize=2)


def test_remote_traceback_is_multiprocessings(pool):
    with pytest.raises(ValueError) as ei:
        pool.apply(helpers.fail, (1,))
    cause = ei.value.__cause__
    assert isinstance(cause, multiprocessing.pool.RemoteTraceback)
    assert isinstance(cause, mproc.RemoteTraceback)
    assert str(cause).startswith('\n"""\n') and "in fail" in str(cause)


def test_thread_pool_is_multiprocessings():
    assert mproc.pool.ThreadPool is multiprocessing.pool.ThreadPool
    tp = mproc.pool.ThreadPool(2)
    try:
        assert tp.map(helpers.square, range(5)) == [0, 1, 4, 9, 16]
    finally:
        tp.close()
        tp.join()


def _name_and_parent():
    return mproc.current_process().name, mproc.parent_process().pid


def test_lambda_and_closure_with_cloudpickle():
    pytest.importorskip("cloudpickle", reason="python3-cloudpickle is not installed")
    k = 3
    with mproc.Pool(2) as pool:
        assert pool.map(lambda x: x * k, [1, 2]) == [3, 6]


def test_lambda_without_cloudpickle_names_the_object(monkeypatch):
    import pickle
    from mproc import _core
    monkeypatch.setattr(_core, "_cloudpickle", None)
    with mproc.Pool(1) as pool:
        with pytest.raises(pickle.PicklingError, match="lambda"):
            pool.apply(lambda: 1)


def test_other_threads_run_while_map_blocks(pool):
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    pool.map(helpers.square, range(200), chunksize=1)
    r = pool.apply_async(helpers.sleep_forever, (None,))
    n0 = len(ticks)
    while len(ticks) < n0 + 5:  # the ticker progresses while we wait for the result
        r.wait(0.01)
    stop.set()
    t.join()


@pytest.fixture
def default_sigint():
    """SIGINT raises KeyboardInterrupt, as in a program started from a terminal."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_during_apply_raises_keyboard_interrupt(pool, default_sigint):
    go, done = mproc.Event(), mproc.Event()
    with pytest.raises(KeyboardInterrupt):
        pool.apply(helpers.signal_then_wait, (os.getpid(), go, done, 1))
    assert not done.is_set()  # raised while the task still waits: the wait was interrupted
    go.set()
    assert done.wait(60)
    assert pool.apply(helpers.square, (3,)) == 9  # the pool goes on


def test_apply_goes_on_after_a_sigint_handler_that_returns(pool):
    go, done = mproc.Event(), mproc.Event()
    seen = []

    def handler(signum, frame):
        seen.append(signum)
        go.set()
    old = signal.signal(signal.SIGINT, handler)
    try:
        assert pool.apply(helpers.signal_then_wait, (os.getpid(), go, done, 5)) == 5
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen == [signal.SIGINT] and done.is_set()


def test_apply_from_other_threads(pool, default_sigint):
    out = []
    ts = [threading.Thread(target=lambda i=i: out.append(pool.apply(helpers.square, (i,))))
          for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(out) == [0, 1, 4, 9]
    assert pool.apply(helpers.add, (2, 3)) == 5  # and from the main thread again


@pytest.mark.parametrize("ordered", [True, False])
def test_close_then_join_gives_every_imap_result(pool, ordered):
    """multiprocessing's idiom: close() and join() before reading an imap over a list or range;
    every result comes (an input longer than the imap's window is sent at close())."""
    n = 3000
    it = (pool.imap if ordered else pool.imap_unordered)(helpers.square, range(n))
    first = next(it)
    pool.close()
    pool.join()
    rest = list(it)
    if ordered:
        assert [first] + rest == [x * x for x in range(n)]
    else:
        assert sorted([first] + rest) == [x * x for x in range(n)]


def test_close_cuts_an_input_of_unknown_length(pool):
    """A generator may be endless: close() does not read it to its end (multiprocessing's join
    would wait forever); the items taken give their results, then ValueError once."""
    import itertools
    it = pool.imap(helpers.square, itertools.count(), max_inflight=4)
    assert next(it) == 0
    pool.close()
    pool.join()
    with pytest.raises(ValueError):
        while True:
            it.next(timeout=60)


def test_callbacks_run_one_at_a_time(pool):
    """As with multiprocessing's single result thread, callbacks of different results never
    overlap, so they may share state without a lock."""
    active, most, seen = [0], [0], []

    def cb(value):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.01)
        seen.append(value)
        active[0] -= 1

    rs = [pool.map_async(helpers.square, range(40), chunksize=10, callback=cb) for _ in range(4)]
    rs += [pool.apply_async(helpers.square, (i,), callback=cb) for i in range(8)]
    for r in rs:
        r.wait(60)
    pool.close()
    pool.join()
    assert len(seen) == 12
    assert most[0] == 1


@pytest.mark.parametrize("kind", ["apply_async", "map_async cs=1", "map_async chunks",
                                  "error_callback"])
def test_result_is_ready_only_after_its_callback_ran(pool, kind):
    """As multiprocessing's ApplyResult._set (the callback runs, then the event is set): ready()
    and successful() report the result only once its callback has run, and the callback sees
    ready() False."""
    seen, gate, bound = [], threading.Event(), threading.Event()

    def cb(value):
        bound.wait(30)  # r is assigned
        seen.append(("in callback, ready", r.ready()))
        gate.wait(30)  # held: the worker's result is in, the callback has not finished
        seen.append(("done", value))

    if kind == "apply_async":
        r = pool.apply_async(helpers.square, (3,), callback=cb)
    elif kind == "map_async cs=1":
        r = pool.map_async(helpers.square, [1, 2], chunksize=1, callback=cb)
    elif kind == "map_async chunks":
        r = pool.map_async(helpers.square, range(10), chunksize=5, callback=cb)
    else:
        r = pool.apply_async(helpers.fail, (1,), error_callback=cb)
    bound.set()
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert seen == [("in callback, ready", False)]
        for _ in range(20):  # the callback is held: the result must not look ready meanwhile
            assert not r.ready()
            time.sleep(0.005)
        with pytest.raises(ValueError):
            r.successful()
        with pytest.raises(multiprocessing.TimeoutError):
            r.get(timeout=0.01)
    finally:
        gate.set()
    r.wait(30)
    assert r.ready()
    assert seen[-1][0] == "done"
    if kind == "error_callback":
        assert not r.successful()
    else:
        assert r.successful()
