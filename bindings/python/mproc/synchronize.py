"""Locks and friends across processes (mproc_lock/sem/cond/event/barrier: futexes in shared
memory). Shared with children made by fork by inheritance; pickled (forkserver children, pool
initargs and tasks) as a token the other process attaches while this one holds the object.

Beyond multiprocessing: when the holder of a Lock/RLock dies, the next acquire() raises
OwnerDeadError *with the lock held*: repair the protected state, then release(). `with lock:`
(and `with condition:`, `with value:`) raises OwnerDeadError too, but with the lock released
and the block not run: its __exit__ would not run, so nothing else could release it."""
import threading

from . import _core
from . import _mproc

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"]


def _timeout(block, timeout):
    if not block:
        return 0.0
    return -1.0 if timeout is None else max(0.0, float(timeout))


def _attach(cls, token, *extra):
    obj = cls.__new__(cls)
    obj._attach(token, *extra)
    return obj


class _Handle:
    _free = None
    _export = None
    _attach_fn = None

    def _own(self, h, owned=True):
        self._h = h
        self._owned = owned

    def _attach(self, token):
        self._own(type(self)._attach_fn(token))

    def __reduce__(self):
        return _attach, (type(self), type(self)._export(self._h))

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and getattr(self, "_owned", False) and _mproc is not None:
            try:
                type(self)._free(h)
            except Exception:
                pass


class Lock(_mproc.LockBase):
    """acquire, release, __enter__ and __exit__ are C methods of _mproc.LockBase (the hot path);
    a release by a thread that does not hold the lock raises ValueError (RLock: AssertionError),
    as multiprocessing's does."""

    def __init__(self, *, ctx=None):
        self._own(_mproc.mproc_lock_new())

    def _attach(self, token):
        self._own(_mproc.mproc_lock_attach(token))

    def __reduce__(self):
        return _attach, (type(self), _mproc.mproc_lock_export(self._h))

    def _is_owned(self):
        return bool(_mproc.mproc_lock_owned(self._h))

    def __repr__(self):
        # The standard library's form. Whether another process or thread holds it cannot be
        # asked without trying to take it (which would change it): "unknown", the standard
        # library's word when it cannot tell.
        return "<%s(owner=%s)>" % (type(self).__name__, _owner_name(self))


def _owner_name(lock):
    try:
        if not lock._is_owned():
            return "unknown"
    except Exception:
        return "unknown"
    from . import process
    name = process.current_process().name
    if threading.current_thread().name != "MainThread":
        name += "|" + threading.current_thread().name
    return name


class RLock(Lock):
    def __init__(self, *, ctx=None):
        self._own(_mproc.mproc_rlock_new())

    def __repr__(self):
        return "<%s(%s, unknown)>" % (type(self).__name__, _owner_name(self))


def _lock_from_handle(h, owner=None):
    """A Lock/RLock object for a lock owned by another object (get_lock()); it keeps `owner`
    (what frees the lock) alive."""
    cls = RLock if _mproc.mproc_lock_is_recursive(h) else Lock
    obj = cls.__new__(cls)
    obj._own(h, False)
    obj._owner = owner
    return obj


class Semaphore(_Handle):
    _free = staticmethod(_mproc.mproc_sem_free)
    _export = staticmethod(_mproc.mproc_sem_export)
    _attach_fn = staticmethod(_mproc.mproc_sem_attach)
    _new = staticmethod(_mproc.mproc_sem_new)

    def __init__(self, value=1, *, ctx=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._own(type(self)._new(value))
        self._maxvalue = value

    def _attach(self, token, maxvalue=None):
        self._own(type(self)._attach_fn(token))
        self._maxvalue = maxvalue

    def __reduce__(self):
        return _attach, (type(self), type(self)._export(self._h), self._maxvalue)

    @property
    def _semlock(self):
        # multiprocessing.queues.Queue (concurrent.futures' call queue, built on a context's
        # BoundedSemaphore) asks `_sem._semlock._is_zero()`.
        return _SemLockView(self)

    def acquire(self, block=True, timeout=None):
        return _mproc.py_sem_acquire(self._h, _timeout(block, timeout))

    def release(self):
        try:
            _mproc.mproc_sem_release(self._h)
        except ValueError:
            raise ValueError("semaphore or lock released too many times") from None

    def get_value(self):
        return _mproc.mproc_sem_get_value(self._h) or 0

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<%s(value=%s)>" % (type(self).__name__, self.get_value())


class _SemLockView:
    """The queries of the standard library's _multiprocessing.SemLock on a Semaphore."""

    def __init__(self, sem):
        self._sem = sem

    def _is_zero(self):
        return self._sem.get_value() == 0

    def _get_value(self):
        return self._sem.get_value()

    @property
    def maxvalue(self):
        return self._sem._maxvalue


class BoundedSemaphore(Semaphore):
    _new = staticmethod(_mproc.mproc_bounded_sem_new)

    def __repr__(self):
        return "<%s(value=%s, maxvalue=%s)>" % (type(self).__name__, self.get_value(),
                                                "unknown" if self._maxvalue is None
                                                else self._maxvalue)


class Condition(_Handle):
    _free = staticmethod(_mproc.mproc_cond_free)
    _export = staticmethod(_mproc.mproc_cond_export)
    _attach_fn = staticmethod(_mproc.mproc_cond_attach)

    def __init__(self, lock=None, *, ctx=None):
        self._own(_mproc.mproc_cond_new(lock._h if lock is not None else None))

    @property
    def _lock(self):
        lk = self.__dict__.get("_lockobj")
        if lk is None:
            lk = self._lockobj = _lock_from_handle(_mproc.mproc_cond_get_lock(self._h))
        return lk

    def acquire(self, block=True, timeout=None):
        return self._lock.acquire(block, timeout)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self._lock.__enter__()  # a dead holder: released, OwnerDeadError (as Lock's)

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        # The standard library's form; the number of sleepers is not asked of the core.
        return "<%s(%r, unknown)>" % (type(self).__name__, self._lock)

    def wait(self, timeout=None):
        try:
            return _mproc.py_cond_wait(self._h, -1.0 if timeout is None else max(0.0, timeout))
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.ENOTOWNER:
                raise RuntimeError("cannot wait on un-acquired lock") from None
            raise

    def wait_for(self, predicate, timeout=None):
        import time
        result = predicate()
        endtime = None if timeout is None else time.monotonic() + timeout
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
                self.wait(waittime)
            else:
                self.wait()
            result = predicate()
        return result

    def notify(self, n=1):
        try:
            _mproc.mproc_cond_notify(self._h, n)
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.ENOTOWNER:
                raise RuntimeError("cannot notify on un-acquired lock") from None
            raise

    def notify_all(self):
        try:
            _mproc.mproc_cond_notify_all(self._h)
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.ENOTOWNER:
                raise RuntimeError("cannot notify on un-acquired lock") from None
            raise


class Event(_Handle):
    _free = staticmethod(_mproc.mproc_event_free)
    _export = staticmethod(_mproc.mproc_event_export)
    _attach_fn = staticmethod(_mproc.mproc_event_attach)

    def __init__(self, *, ctx=None):
        self._own(_mproc.mproc_event_new())

    def is_set(self):
        return bool(_mproc.mproc_event_is_set(self._h))

    def set(self):
        _mproc.mproc_event_set(self._h)

    def clear(self):
        _mproc.mproc_event_clear(self._h)

    def wait(self, timeout=None):
        return _mproc.py_event_wait(self._h, -1.0 if timeout is None else max(0.0, timeout))

    def __repr__(self):
        return "<%s at %#x %s>" % (type(self).__qualname__, id(self),
                                   "set" if self.is_set() else "unset")


class Barrier(_Handle):
    _free = staticmethod(_mproc.mproc_barrier_free)
    _export = staticmethod(_mproc.mproc_barrier_export)

    def __init__(self, parties, action=None, timeout=None, *, ctx=None):
        if action is not None and not callable(action):
            raise TypeError("action must be callable")
        self._action = action  # kept alive: the C barrier calls it through a pointer
        self._default_timeout = timeout
        self._own(_mproc.py_barrier_new(parties, action))

    def _attach(self, token, action, timeout):
        self._action = action
        self._default_timeout = timeout
        self._own(_mproc.py_barrier_attach(token, action))

    def __reduce__(self):
        return _attach, (type(self), _mproc.mproc_barrier_export(self._h), self._action,
                         self._default_timeout)

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._default_timeout
        try:
            return _mproc.py_barrier_wait(self._h, -1.0 if timeout is None else timeout)
        except _core.TimeoutError:
            raise threading.BrokenBarrierError from None

    def reset(self):
        _mproc.mproc_barrier_reset(self._h)

    def abort(self):
        _mproc.mproc_barrier_abort(self._h)

    @property
    def parties(self):
        return _mproc.mproc_barrier_parties(self._h)

    @property
    def n_waiting(self):
        return _mproc.mproc_barrier_n_waiting(self._h) or 0

    @property
    def broken(self):
        return bool(_mproc.mproc_barrier_broken(self._h))

    def __repr__(self):
        if self.broken:
            return "<%s.%s at %#x: broken>" % (type(self).__module__, type(self).__qualname__,
                                              id(self))
        return "<%s.%s at %#x: waiters=%d/%d>" % (type(self).__module__, type(self).__qualname__,
                                                 id(self), self.n_waiting, self.parties)
