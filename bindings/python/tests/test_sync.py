"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier (and owner death)."""
import os
import signal
import threading

import pytest

import mproc
import helpers


def test_lock_basics():
    lock = mproc.Lock()
    assert lock.acquire()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    with lock:
        pass
    with pytest.raises(ValueError):
        lock.release()


def test_rlock_recursion_and_foreign_release():
    r = mproc.RLock()
    with r:
        with r:
            pass
    with pytest.raises(AssertionError):
        r.release()


def test_lock_guards_counter_across_processes(ctx):
    counter = mproc.Value("i", 0, lock=False) if ctx.get_start_method() == "fork" \
        else mproc.Value("i", 0)
    lock = mproc.Lock()
    ps = [ctx.Process(target=helpers.locked_increments, args=(counter, lock, 500))
          for _ in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    assert [p.exitcode for p in ps] == [0, 0, 0]
    assert counter.value == 1500


def test_owner_death_is_reported_and_recoverable(ctx):
    lock = mproc.Lock()
    started = mproc.Event()
    p = ctx.Process(target=helpers.hold_lock_and_die, args=(lock, started))
    p.start()
    assert started.wait(60)
    p.join()
    with pytest.raises(mproc.OwnerDeadError):
        lock.acquire()
    lock.release()  # the caller held it: recovered
    assert lock.acquire(timeout=5)
    lock.release()


def test_semaphores():
    s = mproc.Semaphore(2)
    assert s.acquire() and s.acquire()
    assert s.acquire(False) is False
    assert s.get_value() == 0
    s.release()
    s.release()
    s.release()  # plain semaphores go above their start value
    assert s.get_value() == 3
    b = mproc.BoundedSemaphore(1)
    b.acquire()
    b.release()
    with pytest.raises(ValueError):
        b.release()


def test_event_across_processes(ctx):
    ev = mproc.Event()
    assert not ev.is_set() and ev.wait(0.01) is False
    p = ctx.Process(target=helpers.set_event, args=(ev,))
    p.start()
    assert ev.wait(60)
    p.join()
    ev.clear()
    assert not ev.is_set()


def test_condition_notify_across_processes():
    cond = mproc.Condition()
    flag = mproc.Value("i", 0)
    with cond:
        p = mproc.Process(target=helpers.notify_after_set, args=(cond, flag))
        p.start()
        assert cond.wait_for(lambda: flag.value == 1, timeout=60)
    p.join()
    with pytest.raises(RuntimeError):
        cond.notify()
    with cond:
        assert cond.wait(0.01) is False


def test_barrier_across_processes(ctx):
    b = mproc.Barrier(3)
    ps = [ctx.Process(target=helpers.barrier_wait, args=(b,)) for _ in range(2)]
    for p in ps:
        p.start()
    idx = b.wait(timeout=60)
    for p in ps:
        p.join()
    assert 0 <= idx < 3 and [p.exitcode for p in ps] == [0, 0]
    assert b.parties == 3 and not b.broken


def test_barrier_action_timeout_and_abort():
    ran = []
    b = mproc.Barrier(1, action=lambda: ran.append(1))
    assert b.wait() == 0 and ran == [1]
    b2 = mproc.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b2.wait(timeout=0.05)
    assert b2.broken
    b2.reset()
    b2.abort()
    with pytest.raises(threading.BrokenBarrierError):
        b2.wait()


def test_lock_in_pool_initargs_and_tasks():
    lock = mproc.Lock()
    counter = mproc.Value("i", 0)
    for method in ("fork", "forkserver"):
        with mproc.get_context(method).Pool(2) as pool:
            assert pool.apply(helpers.add_in_pool, (counter,)) >= 1
    assert counter.value == 2
    assert lock.acquire(False)
    lock.release()


def test_lock_acquire_arguments():
    lock = mproc.Lock()
    assert lock.acquire(True, None) is True
    assert lock.acquire(block=False) is False
    assert lock.acquire(True, 0.01) is False
    assert lock.acquire(timeout=-1) is False  # a negative timeout tries once
    with pytest.raises(TypeError):
        lock.acquire(bogus=1)
    with pytest.raises(TypeError):
        lock.acquire(True, None, 3)
    lock.release()
    assert not lock._is_owned()


def test_blocking_acquire_lets_ctrl_c_through():
    lock = mproc.Lock()
    held, done = threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            done.wait(60)
    t = threading.Thread(target=holder)
    t.start()
    held.wait(60)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            lock.acquire()
        assert t.is_alive()  # interrupted, not woken by a release
    finally:
        signal.signal(signal.SIGINT, old)
        done.set()
        t.join()
    assert lock.acquire(timeout=5)
    lock.release()
