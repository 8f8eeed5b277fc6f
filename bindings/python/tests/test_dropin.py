"""mproc as a drop-in (issue 19): the standard library's view inside mproc's children, Process
as a standard BaseProcess, reprs and identities as the standard library's, the names programs
import."""
import logging
import multiprocessing
import multiprocessing.process
import os
import re
import threading
import weakref

import pytest

import mproc

METHODS = ["fork", "forkserver", "spawn"]


def _report(q):
    std, par = multiprocessing.current_process(), multiprocessing.parent_process()
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    q.put({"std_name": std.name, "std_pid": std.pid, "pid": os.getpid(),
           "std_parent": par and par.pid, "ppid": os.getppid(),
           "mproc_parent": mproc.parent_process() and mproc.parent_process().pid,
           "log_name": rec.processName,
           "main_native": threading.main_thread().native_id,
           "native": threading.get_native_id(),
           "repr": repr(mproc.current_process()),
           "authkey": bytes(multiprocessing.current_process().authkey)})


def _grandchild(q):
    p = mproc.Process(target=_report, args=(q,), name="grand")
    p.start()
    p.join()


@pytest.mark.parametrize("method", METHODS)
def test_standard_module_sees_the_child(method):
    ctx = mproc.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_report, args=(q,), name="kid")
    p.start()
    r = q.get(timeout=60)
    p.join(30)
    assert r["std_name"] == r["log_name"] == "kid"
    assert r["std_pid"] == r["pid"] == p.pid
    assert r["std_parent"] == r["mproc_parent"] == os.getpid()
    assert r["main_native"] == r["native"] != threading.get_native_id()
    assert "pid=" not in r["repr"] and re.match(r"<\w+Process name='kid' parent=%d started>"
                                                % os.getpid(), r["repr"])
    assert r["authkey"] == bytes(multiprocessing.current_process().authkey)


@pytest.mark.parametrize("method", METHODS)
def test_parent_process_in_a_grandchild(method):
    ctx = mproc.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_grandchild, args=(q,))
    p.start()
    r = q.get(timeout=60)
    p.join(30)
    assert r["std_name"] == "grand"
    assert r["mproc_parent"] == r["std_parent"] == r["ppid"] == p.pid


class _Target:
    def __call__(self):
        pass


def test_process_is_a_standard_base_process():
    p = mproc.Process(target=int)
    assert isinstance(p, multiprocessing.process.BaseProcess)
    assert isinstance(p, multiprocessing.Process)
    assert p._popen is None
    assert isinstance(mproc.get_context("spawn").Process(), multiprocessing.process.BaseProcess)
    t = _Target()
    ref = weakref.ref(t)
    p = mproc.Process(target=t, args=([1],), kwargs={"a": 2})
    p.start()
    del t
    assert ref() is None                         # start() dropped target, args and kwargs
    assert not hasattr(p, "_args") and not hasattr(p, "_kwargs")
    multiprocessing.Process.kill(p)              # the standard methods work on it
    multiprocessing.Process.join(p, 30)
    assert p.exitcode == -9 and not multiprocessing.Process.is_alive(p)
    assert "exitcode=-SIGKILL" in repr(p)
    p.close()


def test_authkey_is_the_standard_librarys():
    assert mproc.current_process().authkey == multiprocessing.current_process().authkey
    p = mproc.Process(target=int)
    assert isinstance(p.authkey, multiprocessing.process.AuthenticationString)
    assert p.authkey == multiprocessing.current_process().authkey
    p.authkey = b"other"
    assert p.authkey == b"other"


def test_reprs_as_the_standard_library():
    ev = mproc.Event()
    assert repr(ev) == "<Event at %#x unset>" % id(ev)
    ev.set()
    assert repr(ev) == "<Event at %#x set>" % id(ev)
    lock = mproc.Lock()
    with lock:
        assert repr(lock) == "<Lock(owner=MainProcess)>"
    assert re.match(r"<Condition\(<RLock\(\w+, \w+\)>, \w+\)>$", repr(mproc.Condition()))
    assert repr(mproc.Semaphore(2)) == "<Semaphore(value=2)>"
    assert repr(mproc.BoundedSemaphore(3)) == "<BoundedSemaphore(value=3, maxvalue=3)>"
    b = mproc.Barrier(2)
    assert repr(b) == "<mproc.synchronize.Barrier at %#x: waiters=0/2>" % id(b)


def test_get_lock_returns_the_lock_given():
    lock = mproc.RLock()
    v = mproc.Value("i", 1, lock=lock)
    a = mproc.Array("d", 3, lock=lock)
    assert v.get_lock() is lock and a.get_lock() is lock
    with v.get_lock():
        v.value += 1
    assert v.value == 2
    plain = mproc.Value("i", 0)
    assert plain.get_lock() is plain.get_lock()


def test_all_matches_multiprocessing():
    assert set(multiprocessing.__all__) <= set(mproc.__all__)
    for name in mproc.__all__:
        assert hasattr(mproc, name), name


def test_modules_programs_import():
    from mproc import util, managers, dummy, heap, reduction
    from mproc.connection import Listener, Client, AuthenticationError, BufferTooShort  # noqa
    import mproc.dummy.connection  # noqa: F401
    assert util.get_logger() is multiprocessing.util.get_logger()
    assert callable(util.Finalize) and callable(util.log_to_stderr)
    assert managers.SyncManager is multiprocessing.managers.SyncManager
    assert heap.BufferWrapper is multiprocessing.heap.BufferWrapper
    with dummy.Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    assert callable(reduction.send_handle) and callable(mproc.set_executable)
    mproc.freeze_support()
    assert mproc.get_logger() is multiprocessing.get_logger()


def _start_manager_in_child(q):
    m = multiprocessing.Manager()  # shut down by the child's finalizers when it ends
    q.put(m._process.pid)


def test_child_runs_the_standard_finalizers():
    q = mproc.Queue()
    p = mproc.Process(target=_start_manager_in_child, args=(q,))
    p.start()
    server = q.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server, 0)  # the manager's server is gone with the child


def _hold_and_die(lock, started):
    lock.acquire()
    started.set()
    os._exit(0)


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Condition", "Value"])
def test_with_lock_after_the_holder_died_leaves_no_trap(kind):
    obj = {"Lock": mproc.Lock, "RLock": mproc.RLock, "Condition": mproc.Condition,
           "Value": lambda: mproc.Value("i", 0)}[kind]()
    lock = obj.get_lock() if kind == "Value" else obj._lock if kind == "Condition" else obj
    started = mproc.Event()
    p = mproc.Process(target=_hold_and_die, args=(lock, started))
    p.start()
    assert started.wait(60)
    p.join(30)
    ran = []
    with pytest.raises(mproc.OwnerDeadError, match="lock is released"):
        with obj:
            ran.append(1)
    assert not ran and not lock._is_owned()
    with obj:                        # free: the next with-block runs
        ran.append(2)
    assert ran == [2]
    # acquire() keeps the lock for the caller to repair the state (documented).
    p = mproc.Process(target=_hold_and_die, args=(lock, started))
    p.start()
    p.join(30)
    with pytest.raises(mproc.OwnerDeadError, match="holds it now"):
        lock.acquire()
    assert lock._is_owned()
    lock.release()


def test_messages_name_no_c_function():
    lock = mproc.Lock()
    started = mproc.Event()
    p = mproc.Process(target=_hold_and_die, args=(lock, started))
    p.start()
    p.join(30)
    with pytest.raises(mproc.OwnerDeadError) as e:
        lock.acquire()
    lock.release()
    with pytest.raises(FileNotFoundError) as e2:
        mproc.shared_memory.SharedMemory("no-such-block")
    for err in (e.value, e2.value):
        assert "mproc_" not in str(err) and not re.search(r"-\d{3,}", str(err)), str(err)


def test_executor_worker_death_is_a_broken_process_pool():
    from concurrent.futures.process import BrokenProcessPool
    with mproc.ProcessPoolExecutor(1) as ex:
        dead = ex.submit(os._exit, 3)
        err = dead.exception(timeout=60)
        assert isinstance(err, BrokenProcessPool) and isinstance(err, mproc.WorkerDiedError)
        assert ex.submit(abs, -4).result(timeout=60) == 4   # only that future failed


def test_unpicklable_argument_raises_what_the_standard_library_raises():
    import pickle
    lock = threading.Lock()
    q = mproc.Queue()
    with pytest.raises(TypeError, match="cannot pickle") as e:
        q.put(lock)
    assert isinstance(e.value, pickle.PicklingError)   # as mproc raised before
    with mproc.Pool(1) as pool:
        with pytest.raises(TypeError, match="cannot pickle"):
            pool.apply(len, (lock,))


def test_queue_empty_and_full_carry_no_text():
    import queue
    q = mproc.Queue(1)
    with pytest.raises(queue.Empty) as e:
        q.get(timeout=0.01)
    assert e.value.args == ()
    q.put(1)
    with pytest.raises(queue.Full) as e:
        q.put(2, timeout=0.01)
    assert e.value.args == ()


def _recv_fd_and_write(conn):
    from multiprocessing.reduction import recv_handle  # the standard function
    fd = recv_handle(conn)
    os.write(fd, b"via fd")
    os.close(fd)
    conn.send("done")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fd_passing_over_an_mproc_pipe(method):
    from multiprocessing.reduction import send_handle as std_send_handle
    from mproc import reduction
    ctx = mproc.get_context(method)
    a, b = ctx.Pipe()
    p = ctx.Process(target=_recv_fd_and_write, args=(b,))
    p.start()
    r, w = os.pipe()
    try:
        std_send_handle(a, w, p.pid)                   # the standard helper
        assert a.poll(60) and a.recv() == "done"       # messages still flow on the pipe
        assert os.read(r, 100) == b"via fd"
    finally:
        os.close(w)
    p.join(30)
    # mproc's own, in this process (both ends here).
    reduction.send_handle(a, r, os.getpid())
    r2 = reduction.recv_handle(b)
    assert os.path.sameopenfile(r, r2)
    for fd in (r, r2):
        os.close(fd)
    a.close()
    b.close()


def _failing_initializer():
    raise ValueError("boom")


def test_pool_init_error_shows_no_internal_code():
    with mproc.Pool(1, initializer=_failing_initializer) as pool:
        with pytest.raises(mproc.PoolInitError) as e:
            pool.apply(abs, (1,))
    text = str(e.value)
    assert "boom" in text and not re.search(r"-30\d\d", text) and "mproc_" not in text


def _worker_view(_):
    std = multiprocessing.current_process()
    return (std.name == mproc.current_process().name, multiprocessing.parent_process().pid,
            threading.main_thread().native_id == threading.get_native_id())


@pytest.mark.parametrize("method", METHODS)
def test_standard_module_sees_a_pool_worker(method):
    with mproc.get_context(method).Pool(2) as pool:
        for same_name, parent, native in pool.map(_worker_view, range(4)):
            assert same_name and parent == os.getpid() and native


def _use_standard_objects(q):
    lock = multiprocessing.Lock()            # the standard library's, in an mproc child
    sq = multiprocessing.Queue()
    with lock:
        sq.put("std")
    q.put(sq.get(timeout=30))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_standard_objects_work_in_an_mproc_child(method):
    ctx = mproc.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_use_standard_objects, args=(q,))
    p.start()
    assert q.get(timeout=60) == "std"
    p.join(30)
    assert p.exitcode == 0
