"""What mproc adds to multiprocessing: lazy bounded imap, progress, stats, cancel, Ctrl-C, nested
pools, lambdas, ProcessPoolExecutor, Manager, leased shared memory; and task failures that the
C pool sees as failures."""
import concurrent.futures as cf
import itertools
import os
import pickle
import pty
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mproc
import helpers
from mproc import shared_memory

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))


def run_script(tmp_path, body, **kw):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True,
                          **kw)


# ---- task failures ----------------------------------------------------------------------------
def test_python_exception_is_a_task_failure(pool):
    errors = []
    done = threading.Event()
    r = pool.apply_async(helpers.fail, (1,), error_callback=lambda e: (errors.append(e), done.set()))
    with pytest.raises(ValueError, match="bad value 1") as ei:
        r.get()
    assert not r.successful()
    assert isinstance(ei.value.__cause__, mproc.RemoteTraceback)
    assert "in fail" in str(ei.value.__cause__)
    done.wait()
    assert isinstance(errors[0], ValueError)
    with pytest.raises(ValueError, match="bad value 3"):
        pool.map(helpers.fail, [3])
    it = pool.imap(helpers.fail, [4, 5])
    with pytest.raises(ValueError, match="bad value 4"):
        next(it)
    with pytest.raises(ValueError, match="bad value 5"):
        next(it)
    with pytest.raises(RuntimeError, match="Unpicklable"):
        pool.apply(helpers.raise_unpicklable, (1,))
    assert pool.apply(helpers.square, (3,)) == 9


def test_forkserver_restarted_after_its_death(tmp_path):
    out = run_script(tmp_path, """
        import os, signal
        import mproc, helpers
        ctx = mproc.get_context("forkserver")
        def run(code):
            p = ctx.Process(target=helpers.exit_with, args=(code,))
            p.start(); p.join()
            return p.exitcode
        assert run(3) == 3
        me = os.getpid()
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(st[1]) == me and st[0] != "Z":
                    kids.append(int(d))
        assert kids, "no forkserver helper found"
        for k in kids:
            os.kill(k, signal.SIGKILL)
        assert run(4) == 4
        with ctx.Pool(1) as p:
            assert p.apply(helpers.square, (5,)) == 25
        print("ok")
    """)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


# ---- lazy, bounded imap -----------------------------------------------------------------------
def counted(taken):
    for i in itertools.count():
        taken.append(i)
        yield i


@pytest.mark.parametrize("unordered", [False, True])
def test_imap_endless_generator_is_read_lazily(pool, unordered):
    taken = []
    f = pool.imap_unordered if unordered else pool.imap
    it = f(helpers.square, counted(taken), max_inflight=8)
    got = [next(it) for _ in range(20)]
    if unordered:
        assert len(set(got)) == 20
    else:
        assert got == [x * x for x in range(20)]
    # at most max_inflight items are taken and not read back (plus one chunk being filled)
    assert len(taken) <= 20 + 8 + 1


def test_imap_input_error_after_earlier_results(pool):
    def gen():
        yield 1
        yield 2
        raise KeyError("input broke")
    it = pool.imap(helpers.square, gen())
    assert next(it) == 1
    assert next(it) == 4
    with pytest.raises(KeyError, match="input broke"):
        next(it)


@pytest.mark.parametrize("how", ["close", "terminate"])
def test_imap_half_consumed_then_close_or_terminate(pool, how):
    it = pool.imap(helpers.square, itertools.count(), max_inflight=4)
    assert [next(it) for _ in range(3)] == [0, 1, 4]
    getattr(pool, how)()
    pool.join()
    # the items already taken give their results (closed) or fail (terminated); then the
    # iterator reports that the input was cut, once, and ends
    values, errors = [], []
    for _ in range(100):
        try:
            values.append(it.next(timeout=60))
        except StopIteration:
            break
        except (ValueError, mproc.ProcessError) as e:
            errors.append(e)
    else:
        pytest.fail("the iterator did not end")
    assert errors
    if how == "close":
        assert values == [x * x for x in range(3, 3 + len(values))]
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
    else:
        assert all(v in [x * x for x in range(3, 100)] for v in values)


def test_imap_dropped_half_consumed_does_not_block_the_pool(pool):
    it = pool.imap(helpers.square, itertools.count(), max_inflight=4)
    assert next(it) == 0
    del it
    assert pool.map(helpers.square, range(5)) == [0, 1, 4, 9, 16]
    pool.close()
    pool.join()


# ---- progress ---------------------------------------------------------------------------------
def test_progress_callable(pool):
    seen = []
    assert pool.map(helpers.square, range(10), progress=lambda d, t: seen.append((d, t))) == \
        [x * x for x in range(10)]
    assert seen[-1] == (10, 10)
    assert all(t == 10 for _, t in seen)
    seen.clear()
    assert pool.starmap(helpers.add, [(1, 2)] * 4, progress=lambda d, t: seen.append((d, t))) == \
        [3] * 4
    assert seen[-1] == (4, 4)
    seen.clear()
    assert list(pool.imap(helpers.square, range(6), progress=lambda d, t: seen.append((d, t)))) \
        == [x * x for x in range(6)]
    assert seen[-1] == (6, 6)
    seen.clear()
    assert sorted(pool.imap_unordered(helpers.square, iter(range(5)),
                                      progress=lambda d, t: seen.append((d, t)))) == \
        [0, 1, 4, 9, 16]
    assert seen[-1] == (5, 5)


def test_progress_true_without_a_terminal_is_quiet(pool, capfd):
    assert pool.map(helpers.square, range(5), progress=True) == [0, 1, 4, 9, 16]
    assert capfd.readouterr().err == ""


def test_progress_bar_on_a_terminal(tmp_path):
    script = tmp_path / "bar.py"
    script.write_text(textwrap.dedent("""
        import mproc, helpers
        with mproc.Pool(2) as p:
            assert p.map(helpers.sleep_then, range(10), progress=True) == list(range(10))
    """))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(script)], env=ENV, stderr=slave,
                            stdout=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait() == 0, out
    assert b"10/10" in out


# ---- stats and worker death -------------------------------------------------------------------
def test_stats_and_worker_death_message(pool):
    pool.map(helpers.square, range(10), chunksize=1)
    st = pool.stats()
    assert len(st) == 2
    assert set(st[0]) == {"pid", "tasks", "busy_seconds", "restarts", "last_exit"}
    assert sum(s["tasks"] for s in st) >= 10
    with pytest.raises(mproc.WorkerDiedError) as ei:
        pool.apply(helpers.kill_self, (0,))
    msg = str(ei.value)
    assert "worker" in msg and "pid" in msg and "SIGKILL" in msg
    assert pool.apply(helpers.square, (4,)) == 16
    st = pool.stats()
    while sum(s["restarts"] for s in st) == 0:   # the dead worker is replaced in the background
        time.sleep(0.01)
        st = pool.stats()
    assert sum(s["restarts"] for s in st) == 1
    assert any(s["last_exit"] == -signal.SIGKILL for s in st)


# ---- cancel -----------------------------------------------------------------------------------
def test_cancel_running_and_queued(ctx, tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with ctx.Pool(1) as pool:
        running = pool.apply_async(helpers.report_pid_then_sleep, (fifo,))
        queued = pool.apply_async(helpers.square, (3,))
        assert queued.cancel()
        with pytest.raises(cf.CancelledError):
            queued.get(timeout=60)
        with open(fifo) as f:   # the task runs now
            pid = int(f.read())
        assert pool.stats()[0]["pid"] == pid
        assert running.cancel()
        with pytest.raises(cf.CancelledError):
            running.get()
        assert not running.successful() and running.cancelled()
        assert pool.apply(helpers.square, (4,)) == 16   # a new worker took the slot
        st = pool.stats()[0]
        assert st["pid"] != pid and st["restarts"] == 1, st
        done = pool.apply_async(helpers.square, (2,))
        assert done.get() == 4
        assert not done.cancel()


# ---- Ctrl-C -----------------------------------------------------------------------------------
def group_members(pgid):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(st[3]) == pgid:
            found.append((int(d), st[0]))
    return found


def interrupt_when(proc, ready):
    """Wait until ready() (the program reached the blocking call), send SIGINT to its process
    group as a terminal's Ctrl-C would, and return (exit status, stderr). The group is killed if
    the program outlives the test."""
    try:
        while not ready():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.stderr.read()
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, err


def assert_group_gone(pgid, tries=300):
    """No process of the group is left (the workers' ends are reaped by their new parent)."""
    left = group_members(pgid)
    for _ in range(tries):
        if not left:
            break
        time.sleep(0.1)
        left = group_members(pgid)
    assert left == []


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_ctrl_c_during_map(tmp_path, method):
    started = tmp_path / "started"
    script = tmp_path / "ctrlc.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, mproc, helpers
        # as started from a terminal, even when the test runs where SIGINT is ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with mproc.get_context(%r).Pool(2) as pool:
            pool.map(helpers.append_pid_then_sleep, [sys.argv[1]] * 4, chunksize=1)
    """ % method))
    proc = subprocess.Popen([sys.executable, str(script), str(started)], env=ENV,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    rc, err = interrupt_when(
        proc, lambda: started.exists() and len(started.read_text().split()) >= 2)
    assert rc in (-signal.SIGINT, 1, 130), err
    assert "KeyboardInterrupt" in err
    assert "pool.map" in err
    assert_group_gone(proc.pid)


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_ctrl_c_during_apply(tmp_path, method):
    # Pool.apply's fast path waits in one piece: the binding's SIGINT handler interrupts it
    started = tmp_path / "started"
    script = tmp_path / "ctrlc_apply.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, mproc, helpers
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with mproc.get_context(%r).Pool(2) as pool:
            assert pool.apply(helpers.square, (3,)) == 9
            pool.apply(helpers.append_pid_then_sleep, (sys.argv[1],))
    """ % method))
    proc = subprocess.Popen([sys.executable, str(script), str(started)], env=ENV,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    rc, err = interrupt_when(proc, lambda: started.exists() and started.read_text().strip())
    assert rc in (-signal.SIGINT, 1, 130), err
    assert "KeyboardInterrupt" in err and "pool.apply" in err
    assert_group_gone(proc.pid)


def test_ctrl_c_during_process_join(tmp_path):
    script = tmp_path / "ctrlc_join.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, time, mproc
        signal.signal(signal.SIGINT, signal.default_int_handler)
        def sleeper():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("child ready", flush=True)
            time.sleep(60)
        if __name__ == "__main__":
            p = mproc.Process(target=sleeper, daemon=True)
            p.start()
            p.join()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def child_ready():  # called once: it returns True
        assert proc.stdout.readline().strip() == "child ready"
        time.sleep(0.2)  # the parent is in join() by now (if not, it is interrupted in start)
        return True
    rc, err = interrupt_when(proc, child_ready)
    assert rc in (-signal.SIGINT, 1, 130), err
    assert "KeyboardInterrupt" in err
    assert_group_gone(proc.pid, tries=100)  # the daemon child goes with its parent


# ---- nested pools and processes ---------------------------------------------------------------
def test_pool_and_process_inside_pool_workers(pool):
    assert pool.apply(helpers.nested_pool_map, (1,)) == [0, 1, 4, 9]
    assert pool.apply(helpers.nested_pool_map, (2,)) == [[0, 1, 4, 9], [0, 1, 4, 9]]
    assert pool.map(helpers.nested_process_exitcode, [3, 5]) == [3, 5]


# ---- lambdas and closures ---------------------------------------------------------------------
def test_lambdas_and_closures(pool):
    k = 3

    def times_k(x):
        return x * k
    assert pool.map(lambda x: x * 2, range(5)) == [0, 2, 4, 6, 8]
    assert pool.map(times_k, range(4)) == [0, 3, 6, 9]
    assert list(pool.imap(lambda x: -x, range(3))) == [0, -1, -2]
    assert pool.apply(lambda a, b: a - b, (5, 2)) == 3
    assert pool.apply_async(times_k, (2,)).get() == 6


def test_object_that_cannot_cross_names_it(pool):
    # TypeError, as the standard library raises for a lock; the message names the object.
    lock = threading.Lock()
    with pytest.raises(TypeError, match="lock"):
        pool.apply(helpers.ident, (lock,))
    with pytest.raises(TypeError, match="lock"):
        pool.map(helpers.ident, [1, lock])
    with pytest.raises(TypeError, match="lock"):
        list(pool.imap(helpers.ident, [1, lock]))
    with pytest.raises(mproc.pool._core.MaybeEncodingError):
        pool.apply(threading.Lock)
    assert pool.apply(helpers.square, (2,)) == 4


# ---- ProcessPoolExecutor ----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_executor(method):
    assert mproc.ProcessPoolExecutor is mproc.futures.ProcessPoolExecutor
    with mproc.ProcessPoolExecutor(2, mp_context=mproc.get_context(method)) as ex:
        f = ex.submit(helpers.add, 2, b=3)
        assert isinstance(f, cf.Future)
        assert f.result() == 5
        fs = [ex.submit(helpers.square, i) for i in range(8)]
        assert sorted(x.result() for x in cf.as_completed(fs)) == [i * i for i in range(8)]
        done, not_done = cf.wait(fs, return_when=cf.ALL_COMPLETED)
        assert len(done) == 8 and not not_done
        assert list(ex.map(helpers.add, range(5), range(5))) == [0, 2, 4, 6, 8]
        assert list(ex.map(helpers.square, range(10), chunksize=3, timeout=60)) == \
            [i * i for i in range(10)]
        bad = ex.submit(helpers.fail, 1)
        with pytest.raises(ValueError):
            bad.result()
        dead = ex.submit(helpers.kill_self, 0)
        ok = ex.submit(helpers.square, 7)
        with pytest.raises(mproc.WorkerDiedError):
            dead.result()
        assert ok.result() == 49
        assert ex.submit(helpers.square, 8).result() == 64   # not broken
    with pytest.raises(RuntimeError):
        ex.submit(helpers.square, 1)


def test_executor_map_timeout_and_shutdown_cancel(tmp_path):
    ex = mproc.ProcessPoolExecutor(1)
    with pytest.raises(cf.TimeoutError):
        list(ex.map(helpers.sleep_then, [1, 2], [20, 20], timeout=0.2))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    blocker = ex.submit(helpers.report_pid_then_sleep, fifo)
    with open(fifo) as f:
        f.read()
    queued = [ex.submit(helpers.square, i) for i in range(3)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert blocker.cancelled()


def test_executor_cancel_kills_running_task(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with mproc.ProcessPoolExecutor(1) as ex:
        f = ex.submit(helpers.report_pid_then_sleep, fifo)
        with open(fifo) as r:
            r.read()
        assert f.cancel()
        assert ex.submit(helpers.square, 3).result() == 9


# ---- Manager ----------------------------------------------------------------------------------
def test_manager(ctx):
    with mproc.Manager() as m:
        d = m.dict()
        ps = [ctx.Process(target=helpers.fill_managed, args=(d, i, i * i)) for i in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        assert dict(d) == {0: 0, 1: 1, 2: 4}
        lst = m.list([1, 2])
        with ctx.Pool(2) as pool:
            pool.starmap(helpers.fill_managed, [(d, "a", 1), (d, "b", 2)])
            assert pool.apply(len, (lst,)) == 2
        assert d["a"] == 1 and d["b"] == 2


# ---- leased shared memory ---------------------------------------------------------------------
def shm_path(name):
    return "/dev/shm/" + name.lstrip("/")  # SharedMemory.name is the file's name (mproc-...)


def test_leased_shared_memory_follows_its_users(ctx, tmp_path):
    m = shared_memory.SharedMemory(create=True, size=64, lease=True)
    m.buf[:5] = b"hello"
    path = shm_path(m.name)
    assert os.path.exists(path)
    # an attacher killed by SIGKILL does not keep the block alive, nor removes it
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    p = ctx.Process(target=helpers.attach_shm_then_sleep, args=(m.name, fifo))
    p.start()
    with open(fifo) as f:
        assert f.read() == "attached"
    p.kill()
    p.join()
    assert os.path.exists(path)
    with ctx.Pool(1) as pool:
        assert pool.apply(helpers.attach_shm_and_close, (m.name,)) == b"hello"
    # the creator closes while another user still has it: the name stays
    other = shared_memory.SharedMemory(m.name)
    m.close()
    assert os.path.exists(path)
    assert bytes(other.buf[:5]) == b"hello"
    other.close()
    assert not os.path.exists(path)
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(m.name)
