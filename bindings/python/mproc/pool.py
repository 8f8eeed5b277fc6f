"""Pools: multiprocessing.Pool on mproc_pool_*, plus what multiprocessing lacks: a worker that
dies fails only its task (WorkerDiedError) instead of hanging the pool, per-task timeouts
(TaskTimeoutError) and per-worker statistics (Pool.stats())."""
import itertools
import os
import sys
import threading
import weakref

from . import _core
from . import _mproc

__all__ = ["Pool", "ApplyResult", "AsyncResult", "MapResult", "IMapIterator", "ThreadPool"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
_pending_inits = {}            # initializers of fork pools: the zygote snapshot holds them
_pools = weakref.WeakSet()
_cookies = itertools.count(1)
_STOP = -1


def _rebuild_error(payload):
    """The exception of a task, with the remote traceback as its cause (as multiprocessing)."""
    blob, tb = _core.loads(payload)
    exc = None
    if blob is not None:
        try:
            exc = _core.loads(blob)
        except Exception:
            pass
    if not isinstance(exc, BaseException):
        last = tb.strip().splitlines()[-1] if tb.strip() else "unknown error"
        exc = RuntimeError("remote exception that cannot be rebuilt here: " + last)
    exc.__cause__ = _core.RemoteTraceback('\n"""\n%s"""' % tb)
    return exc


def _decode(data):
    """(True, value) or (False, exception) from a tagged result."""
    if not data:
        return False, RuntimeError("empty result from a worker")
    mv = memoryview(data)
    if mv[0] == 0:
        try:
            return True, _core.loads(mv[1:])
        except Exception as e:
            return False, e
    return False, _rebuild_error(mv[1:])


def _pool_error(e):
    """An exception of the C pool, in Python's terms."""
    code = _core.code_of(e)
    if code == _core.E.ECLOSED:
        return ValueError("Pool not running")
    if code == _core.E.ETIMEDOUT:
        return _core.TaskTimeoutError(str(e))
    return e


class ApplyResult:
    """multiprocessing.pool.AsyncResult."""

    def __init__(self, pool, callback, error_callback):
        self._pool = pool
        self._callback = callback
        self._error_callback = error_callback
        self._h = None
        self._outcome = None
        self._cb_done = threading.Event() if (callback or error_callback) else None

    def ready(self):
        return bool(_mproc.mproc_async_ready(self._h))

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._result()[0]

    def wait(self, timeout=None):
        try:
            _mproc.mproc_async_wait(self._h, -1.0 if timeout is None else max(0.0, timeout))
        except _core.MprocError as e:
            if _core.code_of(e) != _core.E.EAGAIN:
                raise
            return
        if self._cb_done is not None and threading.current_thread() is not self._pool._cb_thread:
            self._cb_done.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise _core.TimeoutError
        ok, value = self._result()
        if ok:
            return value
        raise value

    def _fetch(self):
        try:
            return _decode(_mproc.async_get(self._h, 0.0))
        except Exception as e:
            return False, _pool_error(e)

    def _result(self):
        if self._outcome is None:
            self._outcome = self._fetch()
        return self._outcome

    def _run_callbacks(self):
        try:
            ok, value = self._result()
            if ok and self._callback:
                self._callback(value)
            elif not ok and self._error_callback:
                self._error_callback(value)
        except Exception:
            import traceback
            traceback.print_exc()
        finally:
            self._cb_done.set()

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and _mproc is not None:
            try:
                _mproc.mproc_async_free(h)
            except Exception:
                pass


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    def _fetch(self):
        try:
            _mproc.async_get(self._h, 0.0)
        except Exception as e:
            if _core.code_of(e) in (_core.E.ECLOSED, _core.E.ECANCELED, _core.E.EINITFAILED):
                return False, _pool_error(e)
        values = []
        for item in _mproc.async_items(self._h):
            if isinstance(item, tuple):
                code, msg = item
                exc = _core.MprocError(msg)
                exc.mproc_code = code
                cls = _core._ERRMAP.get(code)
                if cls is not None:
                    exc = cls(msg)
                    exc.mproc_code = code
                return False, _pool_error(exc)
            ok, value = _decode(item)
            if not ok:
                return False, value
            values.append(value)
        if self._star_chunks:
            values = list(itertools.chain.from_iterable(values))
        return True, values


class IMapIterator:
    """Results of imap (in order) or imap_unordered (as they complete)."""

    def __init__(self, pool, h):
        self._pool = pool
        self._h = h

    def __iter__(self):
        return self

    def next(self, timeout=None):
        try:
            _, data = _mproc.async_next(self._h, -1.0 if timeout is None else max(0.0, timeout))
        except Exception as e:
            code = _core.code_of(e)
            if code == _core.E.EITEREND:
                raise StopIteration from None
            if code == _core.E.EAGAIN:
                raise _core.TimeoutError from None
            raise _pool_error(e) from None
        ok, value = _decode(data)
        if ok:
            return value
        raise value

    __next__ = next

    def __del__(self):
        h = getattr(self, "_h", None)
        if h is not None and _mproc is not None:
            try:
                _mproc.mproc_async_free(h)
            except Exception:
                pass


class Pool:
    """multiprocessing.Pool. Extra keyword: task_timeout (seconds per task, or per chunk of a
    map): a task over it fails with TaskTimeoutError and its worker is replaced."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, task_timeout=None):
        self._state = None
        self._h = None
        if processes is None:
            processes = _mproc.mproc_cpu_count()
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if task_timeout is not None and task_timeout <= 0:
            raise ValueError("task_timeout must be positive or None")
        from . import context as _context
        method = context._method() if context is not None else _context._default_method()
        code = _context._prepare(method)
        key = None
        if initializer is None:
            init = b""
        elif code == _core.METHODS["fork"]:
            key = id(self)
            _pending_inits[key] = (initializer, tuple(initargs))
            init = b"F" + key.to_bytes(8, "little")
        else:
            init = b"P" + _core.dumps((initializer, tuple(initargs)))
        try:
            self._h = _mproc.pool_new(processes, code, maxtasksperchild or 0,
                                      float(task_timeout or 0.0), init)
        finally:
            if key is not None:
                _pending_inits.pop(key, None)
        self._processes = processes
        self._state = RUN
        self._cb_lock = threading.Lock()
        self._cb_cond = threading.Condition(self._cb_lock)
        self._cbq = None
        self._cb_thread = None
        self._pending = {}
        self._owner = os.getpid()
        _pools.add(self)

    # -- submission ------------------------------------------------------------------------
    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _callbacks(self):
        """The completion queue and its thread, made on first use of a callback."""
        if self._cbq is None:
            self._cbq = _mproc.cbq_new()
            self._cb_thread = threading.Thread(target=_callback_loop,
                                               args=(self._cbq, self._pending, self._cb_cond),
                                               name="mproc-pool-callbacks", daemon=True)
            self._cb_thread.start()
        return self._cbq

    def _submit(self, res, submit):
        if res._cb_done is None:
            try:
                res._h = submit(None, 0)
            except Exception as e:
                raise _pool_error(e) from None
            return res
        with self._cb_lock:
            q = self._callbacks()
            cookie = next(_cookies)
            try:
                res._h = submit(q, cookie)
            except Exception as e:
                raise _pool_error(e) from None
            self._pending[cookie] = res
        return res

    def apply(self, func, args=(), kwds={}, *, task_timeout=None):
        self._check_running()
        data = b"A" + _core.dumps((func, tuple(args), dict(kwds)))
        try:
            out = _mproc.pool_apply(self._h, data, float(task_timeout or 0.0))
        except Exception as e:
            raise _pool_error(e) from None
        ok, value = _decode(out)
        if ok:
            return value
        raise value

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None, *,
                    task_timeout=None):
        self._check_running()
        data = b"A" + _core.dumps((func, tuple(args), dict(kwds)))
        res = ApplyResult(self, callback, error_callback)
        t = float(task_timeout or 0.0)
        return self._submit(res, lambda q, c: _mproc.pool_apply_async(self._h, data, t, q, c))

    def _items(self, func, iterable, star):
        blob = _core.dumps(func)
        head = (b"S" if star else b"M") + len(blob).to_bytes(4, "little") + blob
        dumps = _core.dumps
        return [head + dumps(x) for x in iterable]

    def _map_async(self, func, iterable, star, chunksize, callback, error_callback, task_timeout):
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        items = self._items(func, iterable, star)
        res = MapResult(self, callback, error_callback)
        res._star_chunks = False
        t = float(task_timeout or 0.0)
        cs = chunksize or 0
        return self._submit(res, lambda q, c: _mproc.pool_map_async(self._h, items, cs, t, 0, q, c))

    def map(self, func, iterable, chunksize=None, *, task_timeout=None):
        return self._map_async(func, iterable, False, chunksize, None, None, task_timeout).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None, *,
                  task_timeout=None):
        return self._map_async(func, iterable, False, chunksize, callback, error_callback,
                               task_timeout)

    def starmap(self, func, iterable, chunksize=None, *, task_timeout=None):
        return self._map_async(func, iterable, True, chunksize, None, None, task_timeout).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None,
                      *, task_timeout=None):
        return self._map_async(func, iterable, True, chunksize, callback, error_callback,
                               task_timeout)

    def _imap(self, func, iterable, chunksize, mode, task_timeout):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        items = self._items(func, iterable, False)
        try:
            h = _mproc.pool_map_async(self._h, items, chunksize, float(task_timeout or 0.0), mode,
                                      None, 0)
        except Exception as e:
            raise _pool_error(e) from None
        return IMapIterator(self, h)

    def imap(self, func, iterable, chunksize=1, *, task_timeout=None):
        return self._imap(func, iterable, chunksize, 1, task_timeout)

    def imap_unordered(self, func, iterable, chunksize=1, *, task_timeout=None):
        return self._imap(func, iterable, chunksize, 2, task_timeout)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self):
        if self._state == RUN:
            self._state = CLOSE
            _mproc.mproc_pool_close(self._h)

    def terminate(self):
        if self._h is None:
            return
        self._state = TERMINATE
        _mproc.mproc_pool_terminate(self._h)

    def join(self):
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        _mproc.mproc_pool_join(self._h, -1.0)
        self._drain_callbacks()

    def _drain_callbacks(self):
        """Wait until every callback of a finished result has run (as Python's join does)."""
        if self._cb_thread is None or threading.current_thread() is self._cb_thread:
            return
        with self._cb_cond:
            while self._pending:
                self._cb_cond.wait()

    def stats(self):
        """Per worker slot: pid, tasks (chunks) done, busy seconds, restarts, last exit code
        of a replaced worker (-signal when killed)."""
        keys = ("pid", "tasks", "busy_seconds", "restarts", "last_exit")
        return [dict(zip(keys, s)) for s in _mproc.pool_stats(self._h)]

    def _free(self):
        h, self._h = self._h, None
        if h is None or os.getpid() != self._owner:
            return
        self._state = TERMINATE
        _mproc.mproc_pool_free(h)  # terminates, joins; pending results fail (callbacks fire)
        if self._cb_thread is not None:
            _mproc.cbq_push(self._cbq, _STOP)
            if threading.current_thread() is not self._cb_thread:
                self._cb_thread.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __del__(self):
        if getattr(self, "_h", None) is None or _mproc is None:
            return
        try:
            self._free()
        except Exception:
            pass

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return "<%s.%s state=%s pool_size=%d>" % (type(self).__module__, type(self).__qualname__,
                                                   self._state, self._processes)


def _callback_loop(q, pending, cond):
    """The pool's callback thread: runs callback/error_callback of finished results in order
    of completion (the dispatcher thread only queued their cookies)."""
    while True:
        cookie = _mproc.cbq_pop(q, -1.0)
        if cookie is None:
            continue
        if cookie == _STOP:
            return
        with cond:
            res = pending.get(cookie)
        if res is not None:
            res._run_callbacks()
        with cond:
            pending.pop(cookie, None)
            cond.notify_all()


def ThreadPool(processes=None, initializer=None, initargs=()):
    from multiprocessing.pool import ThreadPool as _TP
    return _TP(processes, initializer, initargs)


def _terminate_all():
    for p in list(_pools):
        try:
            p._free()
        except Exception:
            pass
