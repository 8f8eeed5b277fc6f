"""Every blocking call lets signals through (PEP 475): while it waits, a signal runs the Python
handler; an exception of the handler (an alarm's, KeyboardInterrupt) ends the call, otherwise
the wait goes on with the time it had left. Real signals: setitimer's SIGALRM and a SIGINT sent
with os.kill while the main thread is blocked."""
import os
import queue
import signal
import threading
import time

import pytest

import mproc
from mproc import connection

T = 30.0  # any wait here gives up after T: a call deaf to signals fails instead of hanging


class Alarm(Exception):
    pass


def _after(go, fn):
    """A child process that runs fn once go is set."""
    def body():
        if go.wait(T):
            fn()
    p = mproc.Process(target=body)
    p.start()
    return p


def _joiner(*procs):
    def cleanup():
        for p in procs:
            p.join(T)
            assert p.exitcode is not None
    return cleanup


def _wait_go(go):
    return go.wait(T)


# Each case: make(go) -> (call, expected, cleanup). call() blocks until a helper process, which
# waits for `go`, satisfies it; then it returns `expected`. cleanup() (after go is set) joins
# what the case started.
def queue_get(go):
    q = mproc.Queue()
    return (lambda: q.get(timeout=T)), "x", _joiner(_after(go, lambda: q.put("x")))


def queue_put_full(go):
    q = mproc.Queue(maxsize=1)
    q.put(0)
    return (lambda: q.put(1, timeout=T)), None, _joiner(_after(go, q.get))


def simple_queue_get(go):
    q = mproc.SimpleQueue()
    return q.get, "x", _joiner(_after(go, lambda: q.put("x")))


def joinable_queue_join(go):
    q = mproc.JoinableQueue()
    q.put(1)

    def done():
        q.get()
        q.task_done()
    return q.join, None, _joiner(_after(go, done))


def conn_recv(go):
    a, b = mproc.Pipe()
    return a.recv, "x", _joiner(_after(go, lambda: b.send("x")))


def conn_recv_bytes(go):
    a, b = mproc.Pipe()
    return a.recv_bytes, b"x", _joiner(_after(go, lambda: b.send_bytes(b"x")))


def conn_poll(go):
    a, b = mproc.Pipe()
    return (lambda: a.poll(T)), True, _joiner(_after(go, lambda: b.send("x")))


def connection_wait(go):
    a, b = mproc.Pipe()
    return (lambda: connection.wait([a], T) == [a]), True, _joiner(_after(go, lambda: b.send(1)))


def event_wait(go):
    e = mproc.Event()
    return (lambda: e.wait(T)), True, _joiner(_after(go, e.set))


def semaphore_acquire(go):
    s = mproc.Semaphore(0)
    return (lambda: s.acquire(timeout=T)), True, _joiner(_after(go, s.release))


def bounded_semaphore_acquire(go):
    s = mproc.BoundedSemaphore(1)
    s.acquire()
    return (lambda: s.acquire(timeout=T)), True, _joiner(_after(go, s.release))


def _held_by_child(lock, go):
    held = mproc.Event()

    def body():
        with lock:
            held.set()
            go.wait(T)
    p = mproc.Process(target=body)
    p.start()
    assert held.wait(T)
    return p


def lock_acquire(go):
    lock = mproc.Lock()
    return (lambda: lock.acquire(timeout=T)), True, _joiner(_held_by_child(lock, go))


def rlock_acquire(go):
    lock = mproc.RLock()
    return (lambda: lock.acquire(timeout=T)), True, _joiner(_held_by_child(lock, go))


def condition_wait(go):
    cond = mproc.Condition()

    def call():
        with cond:
            return cond.wait(T)

    def notify():
        with cond:
            cond.notify()
    return call, True, _joiner(_after(go, notify))


def condition_wait_for(go):
    cond, flag = mproc.Condition(), mproc.Value("i", 0, lock=False)

    def call():
        with cond:
            return cond.wait_for(lambda: flag.value == 1, T)

    def set_flag():
        with cond:
            flag.value = 1
            cond.notify_all()
    return call, True, _joiner(_after(go, set_flag))


def barrier_wait(go):
    b = mproc.Barrier(2)

    def other():
        try:
            b.wait(T)
        except threading.BrokenBarrierError:
            pass  # the caller's wait raised and broke it
    return (lambda: b.wait(T) in (0, 1)), True, _joiner(_after(go, other))


def process_join(go):
    p = mproc.Process(target=_wait_go, args=(go,))
    p.start()
    return (lambda: (p.join(T), p.exitcode)[1]), 0, _joiner(p)


def _pool_case(run):
    def make(go):
        pool = mproc.Pool(1)

        def cleanup():
            pool.terminate()
            pool.join()
        return (lambda: run(pool, go)), True, cleanup
    make.__name__ = run.__name__
    return make


@_pool_case
def pool_apply(pool, go):
    return pool.apply(_wait_go, (go,))


@_pool_case
def async_result_get(pool, go):
    return pool.apply_async(_wait_go, (go,)).get(T)


@_pool_case
def async_result_wait(pool, go):
    r = pool.apply_async(_wait_go, (go,))
    r.wait(T)
    return r.ready()


@_pool_case
def pool_map(pool, go):
    return pool.map(_wait_go, [go]) == [True]


@_pool_case
def pool_imap_next(pool, go):
    return next(pool.imap(_wait_go, [go]))


@_pool_case
def pool_join(pool, go):
    pool.apply_async(_wait_go, (go,))
    pool.close()
    pool.join()
    return True


def executor_result(go):
    ex = mproc.ProcessPoolExecutor(1)
    f = ex.submit(_wait_go, go)
    return (lambda: f.result(T)), True, ex.shutdown


CASES = [queue_get, queue_put_full, simple_queue_get, joinable_queue_join, conn_recv,
         conn_recv_bytes, conn_poll, connection_wait, event_wait, semaphore_acquire,
         bounded_semaphore_acquire, lock_acquire, rlock_acquire, condition_wait,
         condition_wait_for, barrier_wait, process_join, pool_apply, async_result_get,
         async_result_wait, pool_map, pool_imap_next, pool_join, executor_result]


class _alarm:
    """SIGALRM from setitimer after `first` seconds (then every `every`) to `handler`."""

    def __init__(self, handler, first=0.2, every=0.0):
        self.handler, self.first, self.every = handler, first, every

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, self.handler)
        signal.setitimer(signal.ITIMER_REAL, self.first, self.every)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_raising_handler_ends_the_wait(case):
    go = mproc.Event()
    call, _, cleanup = case(go)

    def handler(sig, frame):
        raise Alarm
    try:
        with _alarm(handler), pytest.raises(Alarm):
            call()  # nothing satisfies it: only the alarm's exception ends it before T
    finally:
        go.set()
        cleanup()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_handler_runs_while_blocked_and_the_wait_goes_on(case):
    go = mproc.Event()
    call, expected, cleanup = case(go)
    ran = []

    def handler(sig, frame):  # the helper satisfies the wait only after this ran
        ran.append(sig)
        go.set()
    try:
        with _alarm(handler):
            assert call() == expected
        assert ran == [signal.SIGALRM]
    finally:
        go.set()
        cleanup()


def _sigint_when_blocked():
    """A thread that sends SIGINT to this process once its main thread sleeps (blocked)."""
    def run():
        stat = "/proc/self/task/%d/stat" % os.getpid()
        while True:
            with open(stat) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "S":
                    break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_sigint_raises_keyboard_interrupt(case):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    go = mproc.Event()
    call, _, cleanup = case(go)
    t = None
    try:
        with pytest.raises(KeyboardInterrupt):
            t = _sigint_when_blocked()
            call()
    finally:
        if t is not None:
            t.join()
        go.set()
        cleanup()


# A wait with a timeout that signals keep interrupting (handlers that do not raise) ends when
# its own time is up: neither cut short nor restarted by each signal.
TIMED = {
    "queue_get": (lambda o: o.get(timeout=0.5), mproc.Queue, queue.Empty),
    "queue_put_full": (lambda o: o.put(1, timeout=0.5), lambda: _full_queue(), queue.Full),
    "event_wait": (lambda o: o.wait(0.5), mproc.Event, False),
    "semaphore_acquire": (lambda o: o.acquire(timeout=0.5), lambda: mproc.Semaphore(0), False),
    "conn_poll": (lambda o: o[0].poll(0.5), mproc.Pipe, False),
    "condition_wait": (lambda o: _cond_wait(o, 0.5), mproc.Condition, False),
    "barrier_wait": (lambda o: o.wait(0.5), lambda: mproc.Barrier(2),
                     __import__("threading").BrokenBarrierError),
}


def _full_queue():
    q = mproc.Queue(maxsize=1)
    q.put(0)
    return q


def _cond_wait(cond, t):
    with cond:
        return cond.wait(t)


@pytest.mark.parametrize("name", sorted(TIMED))
def test_timeout_is_kept_across_signals(name):
    call, make, outcome = TIMED[name]
    obj = make()
    ran = []
    t0 = time.monotonic()
    with _alarm(lambda sig, frame: ran.append(sig), first=0.05, every=0.05):
        if isinstance(outcome, type):
            with pytest.raises(outcome):
                call(obj)
        else:
            assert call(obj) is outcome
    assert time.monotonic() - t0 >= 0.5  # not cut short by the signals
    assert len(ran) >= 2


class _Boom(Exception):
    pass


def _raise_boom(signum, frame):
    raise _Boom()


def test_pipe_send_bytes_waiting_for_room_lets_a_handler_raise():
    """send_bytes waits for room in slices: a signal handler runs and its exception comes out
    of the send, and nothing of that message was sent (the pipe carries on)."""
    import signal
    rx, tx = mproc.Pipe(duplex=False)
    old = signal.signal(signal.SIGALRM, _raise_boom)
    try:
        tx.send_bytes(b"f" * 200_000)  # most of the ring
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_Boom):
            tx.send_bytes(b"x" * 100_000)  # fits the ring: waits for room for all of it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert rx.recv_bytes() == b"f" * 200_000
    assert not rx.poll(0.1)
    tx.send_bytes(b"after")
    assert rx.recv_bytes() == b"after"
    rx.close()
    tx.close()
