"""concurrent.futures.ProcessPoolExecutor on the mproc pool. The futures are real
concurrent.futures.Future objects (wait() and as_completed() work on them). Unlike the standard
executor, a worker's death fails only the future of the task it ran (WorkerDiedError); the
executor goes on with a new worker. Cancelling a future whose task is running kills that
task's worker (it is replaced)."""
import concurrent.futures as _cf
import itertools
import threading

from concurrent.futures.process import BrokenProcessPool

from . import _core
from . import pool as _pool

__all__ = ["ProcessPoolExecutor"]


def _process_chunk(fn, chunk):
    return [fn(*args) for args in chunk]


class WorkerDiedError(_core.WorkerDiedError, BrokenProcessPool):
    """The worker running the task died: what a future of this executor raises. Also a
    BrokenProcessPool, which code written for the standard executor catches (there the whole
    executor breaks; here only this future fails and the executor goes on)."""


def _executor_error(e):
    if isinstance(e, _core.WorkerDiedError) and not isinstance(e, BrokenProcessPool):
        new = WorkerDiedError(*e.args)
        new.__dict__.update(e.__dict__)  # mproc_code
        new.__cause__ = e.__cause__
        return new
    return e


def _mproc_context(ctx):
    """mproc's context for mp_context: an mproc context, or the standard library's (or any
    object with get_start_method()) mapped to mproc's context of the same start method."""
    if ctx is None:
        return None
    from . import context
    if isinstance(ctx, context.BaseContext):
        return ctx
    return context._default_context.get_context(ctx.get_start_method())


class ProcessPoolExecutor(_cf.Executor):
    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(),
                 *, max_tasks_per_child=None):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = _pool.Pool(max_workers, initializer, initargs, max_tasks_per_child,
                                context=_mproc_context(mp_context))
        self._lock = threading.Lock()
        self._futures = set()      # not done yet
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut = _cf.Future()
            self._futures.add(fut)

        def done(value, ok):
            with self._lock:
                self._futures.discard(fut)
            if not fut.set_running_or_notify_cancel():
                return               # cancelled meanwhile
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(_executor_error(value))
        try:
            res = self._pool.apply_async(fn, args, kwargs, callback=lambda v: done(v, True),
                                         error_callback=lambda e: done(e, False))
        except BaseException:
            with self._lock:
                self._futures.discard(fut)
            raise

        def on_done(f):
            if f.cancelled():
                res.cancel()         # drops a queued task, kills the worker of a running one
        fut.add_done_callback(on_done)
        return fut

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        it = zip(*iterables)
        chunks = iter(lambda: list(itertools.islice(it, chunksize)), [])
        results = super().map(_pool_partial(fn), chunks, timeout=timeout)
        return itertools.chain.from_iterable(results)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True
            pending = list(self._futures) if cancel_futures else []
        for f in pending:
            f.cancel()
        self._pool.close()
        if wait:
            self._pool.join()


class _pool_partial:
    """fn over a chunk of argument tuples (picklable: a module-level class)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, chunk):
        return _process_chunk(self.fn, chunk)
