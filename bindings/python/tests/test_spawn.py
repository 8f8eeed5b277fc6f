"""The 'spawn' start method: fresh interpreters, the main module as __mp_main__, shared objects,
pools and executors, supervision, and a parent full of busy threads."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mproc
from mproc import shared_memory

SPAWN = mproc.get_context("spawn")
_lock = threading.Lock()  # held by a parent thread most of the time; children take their own


def run_script(tmp_path, body, *args, timeout=120):
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)] + list(args), cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=timeout)


def test_main_module_is_mp_main_with_its_own_globals(tmp_path):
    (tmp_path / "extra").mkdir()
    r = run_script(tmp_path, """
        import os, sys
        import mproc
        X = 1

        def report(q):
            import __main__
            q.put((report.__module__, __main__.__name__, X, os.getcwd(), sys.argv[1:],
                   "extra" in sys.path[0], mproc.current_process().name))

        if __name__ == "__main__":
            sys.path.insert(0, "extra")
            ctx = mproc.get_context("spawn")
            q = ctx.Queue()
            for x in (2, 3):
                X = x  # changed after a first spawn: never seen (the module runs afresh)
                p = ctx.Process(target=report, args=(q,), name="child%d" % x)
                p.start()
                print(q.get(timeout=60))
                p.join()
                print(p.exitcode)
        """, "a1", "b2")
    assert r.returncode == 0, r.stderr
    cwd = os.path.realpath(str(tmp_path))
    lines = r.stdout.splitlines()
    assert lines[0] == repr(("__mp_main__", "__mp_main__", 1, cwd, ["a1", "b2"], True, "child2"))
    assert lines[2] == repr(("__mp_main__", "__mp_main__", 1, cwd, ["a1", "b2"], True, "child3"))
    assert lines[1] == lines[3] == "0"


def test_unguarded_main_module_fails_in_the_child_not_a_fork_bomb(tmp_path):
    r = run_script(tmp_path, """
        import mproc
        def f():
            pass
        p = mproc.get_context("spawn").Process(target=f)
        p.start()
        p.join()
        print("exitcode", p.exitcode)
        """)
    # The program's own process ends; its child failed while importing the main module.
    assert r.stdout.count("exitcode 1") == 1, (r.stdout, r.stderr)
    assert "bootstrapping phase" in r.stderr


def sleep_forever():
    while True:
        time.sleep(1)


def exit_with(code):
    sys.exit(code)


def child_info(q):
    q.put((os.getpid(), os.getppid(), mproc.current_process().name,
           mproc.parent_process().pid, mproc.current_process().daemon))


def test_supervision_exit_codes_signals_daemon():
    for code in (0, 3, 255):
        p = SPAWN.Process(target=exit_with, args=(code,))
        p.start()
        p.join()
        assert p.exitcode == code
    p = SPAWN.Process(target=sleep_forever)
    p.start()
    assert p.is_alive()
    p.join(0.05)
    assert p.exitcode is None
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM
    p = SPAWN.Process(target=sleep_forever, daemon=True)
    p.start()
    assert p in mproc.active_children()
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    q = SPAWN.Queue()
    p = SPAWN.Process(target=child_info, args=(q,), name="info", daemon=True)
    p.start()
    pid, ppid, name, parent, daemon = q.get(timeout=60)
    p.join()
    assert (pid, ppid, name, parent, daemon) == (p.pid, os.getpid(), "info", os.getpid(), True)


def use_everything(q, jq, sq, lock, rlock, sem, bsem, ev, cond, barrier, val, arr, shm_name,
                   conn):
    with lock:
        val.value += 1
    with rlock:
        with rlock:
            arr[1] = 42.5
    sem.release()
    bsem.acquire()
    bsem.release()
    block = shared_memory.SharedMemory(name=shm_name)
    block.buf[:5] = b"hello"
    block.close()
    conn.send(conn.recv() + " back")
    conn.close()
    q.put("queue")
    jq.put("joinable")
    sq.put("simple")
    assert ev.wait(60)
    with cond:
        cond.notify_all()
    barrier.wait(60)


def test_every_shared_object_in_a_spawned_child():
    q, jq, sq = SPAWN.Queue(), SPAWN.JoinableQueue(), SPAWN.SimpleQueue()
    lock, rlock = SPAWN.Lock(), SPAWN.RLock()
    sem, bsem = SPAWN.Semaphore(0), SPAWN.BoundedSemaphore(1)
    ev, cond, barrier = SPAWN.Event(), SPAWN.Condition(), SPAWN.Barrier(2)
    val, arr = SPAWN.Value("i", 41), SPAWN.Array("d", 3)
    block = shared_memory.SharedMemory(create=True, size=64)
    mine, theirs = SPAWN.Pipe()
    try:
        with cond:
            p = SPAWN.Process(target=use_everything, args=(
                q, jq, sq, lock, rlock, sem, bsem, ev, cond, barrier, val, arr, block.name,
                theirs))
            p.start()
            theirs.close()
            mine.send("pipe")
            assert mine.recv() == "pipe back"
            with pytest.raises(EOFError):
                mine.recv()  # the child closed its end, the parent's copy is closed
            assert sem.acquire(timeout=60)
            assert q.get(timeout=60) == "queue"
            assert jq.get(timeout=60) == "joinable"
            jq.task_done()
            assert sq.get() == "simple"
            assert val.value == 42 and arr[1] == 42.5
            assert bytes(block.buf[:5]) == b"hello"
            ev.set()
            assert cond.wait(60)
        barrier.wait(60)
        p.join(60)
        assert p.exitcode == 0
    finally:
        mine.close()
        block.unlink()  # (mproc's SharedMemory unlinks before it closes)
        block.close()


G = 1


def square_plus_global(x):
    return x * x + G


def set_global(v):
    global G
    G = v


def die(x):
    os._exit(7)


def test_pool_and_executor():
    with SPAWN.Pool(2, initializer=set_global, initargs=(100,)) as pool:
        assert pool.map(square_plus_global, range(10)) == [x * x + 100 for x in range(10)]
        assert pool.apply(os.getpid) != os.getpid()
        with pytest.raises(mproc.WorkerDiedError):
            pool.apply(die, (1,))
        assert pool.map(square_plus_global, range(4), chunksize=1) == [100, 101, 104, 109]
        a, b = SPAWN.Pipe()
        with pytest.raises(Exception, match="Connection"):
            pool.apply(exit_with, (b,))  # fds reach a process's child only
        a.close()
        b.close()
    with mproc.ProcessPoolExecutor(2, mp_context=SPAWN) as ex:
        assert list(ex.map(square_plus_global, range(5))) == [1, 2, 5, 10, 17]


def take_lock_and_allocate(x):
    with _lock:
        data = [bytes(1000) for _ in range(100)]
    return x + len(data)


def test_parent_with_busy_threads_never_hangs():
    stop = threading.Event()

    def hold_lock():
        while not stop.is_set():
            with _lock:
                time.sleep(0.001)

    def allocate():
        while not stop.is_set():
            [bytearray(4096) for _ in range(64)]

    def spin():
        while not stop.is_set():
            pass

    threads = [threading.Thread(target=f) for f in [hold_lock, allocate] + [spin] * 6]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            ps = [SPAWN.Process(target=take_lock_and_allocate, args=(i,)) for i in range(3)]
            for p in ps:
                p.start()
            for p in ps:
                p.join(120)
                assert p.exitcode == 0
            with SPAWN.Pool(2) as pool:
                assert pool.map(take_lock_and_allocate, range(4)) == [100, 101, 102, 103]
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_set_executable_and_freeze_support():
    mproc.freeze_support()  # not frozen: nothing happens
    try:
        mproc.set_executable("/nonexistent/python")
        p = SPAWN.Process(target=exit_with, args=(0,))
        with pytest.raises(FileNotFoundError):
            p.start()
        mproc.set_executable(sys.executable)
        p = SPAWN.Process(target=exit_with, args=(4,))
        p.start()
        p.join()
        assert p.exitcode == 4
    finally:
        mproc.set_executable(None)


def test_start_method_from_the_environment(tmp_path):
    env = dict(os.environ, MPROC_START_METHOD="spawn")
    path = tmp_path / "m.py"
    path.write_text("import mproc\nprint(mproc.get_start_method())\n")
    r = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.strip() == "spawn", r.stderr
