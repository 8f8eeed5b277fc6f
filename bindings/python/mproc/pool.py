"""Pools: multiprocessing.Pool on mproc_pool_*, plus what multiprocessing lacks: a worker that
dies fails only its task (WorkerDiedError) instead of hanging the pool, per-task timeouts
(TaskTimeoutError), per-worker statistics (Pool.stats()), lazy bounded imap, progress bars,
AsyncResult.cancel() and Ctrl-C that reaches the caller while it waits."""
import collections
import concurrent.futures
import importlib
import io
import itertools
import os
import pickle
import sys
import threading
import time
import warnings
import weakref
import _signal
from _signal import SIGINT as _SIGINT, default_int_handler as _default_int_handler, \
    getsignal as _getsignal  # the C function: signal.getsignal converts to enums (slow)
from threading import get_ident as _get_ident, main_thread as _main_thread

from . import _core
from . import _mproc
from . import _start
from . import _worker

_OTHER_SIGNALS = tuple(s for s in _signal.valid_signals()
                       if s not in (_SIGINT, _signal.SIGKILL, _signal.SIGSTOP))
_NO_HANDLER = frozenset((_signal.SIG_DFL, _signal.SIG_IGN, None))

__all__ = ["Pool", "ApplyResult", "AsyncResult", "MapResult", "IMapIterator", "ThreadPool"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
_pending_inits = _worker._pending_inits  # initializers of fork pools (the zygote snapshot holds them)
_pools = weakref.WeakSet()
_cookies = itertools.count(1)
_STOP = -1


# The result bytes' decoder is beside their encoder, in _worker (mproc.mpi needs it too).
_rebuild_error = _worker._rebuild_error
_decode = _worker._decode
_pack_numbers = _mproc.py_pack_numbers
_pack_tuples = _mproc.py_pack_tuples
_pack_strs = _mproc.py_pack_strs


def _pool_error(e, cancelled=False):
    """An exception of the C pool, in Python's terms."""
    code = _core.code_of(e)
    if cancelled and code == _core.E.ECANCELED:
        return concurrent.futures.CancelledError(str(e))
    if code == _core.E.ECLOSED:
        return ValueError("Pool not running")
    if code == _core.E.ETIMEDOUT:
        return _core.TaskTimeoutError(str(e))
    return e



def _call_back(pool, callback, error_callback, ok, value):
    """A result's callback (or error_callback) as the standard library's result handler runs
    it: one at a time per pool (callbacks may share state without a lock, as they may with
    multiprocessing's single result thread), and an exception it raises is printed, not raised
    into the pool's thread."""
    if not (callback or error_callback):
        return
    with pool._cb_serial:
        try:
            if ok and callback:
                callback(value)
            elif not ok and error_callback:
                error_callback(value)
        except Exception:
            import traceback
            traceback.print_exc()

class ApplyResult:
    """multiprocessing.pool.AsyncResult."""

    def __init__(self, pool, callback, error_callback):
        self._pool = pool
        self._callback = callback
        self._error_callback = error_callback
        self._h = None
        self._outcome = None
        self._cb_done = threading.Event() if (callback or error_callback) else None
        self._cancelled = False
        self._feed = None

    def ready(self):
        # As multiprocessing's ApplyResult._set, which runs the callback before it sets the
        # event: with a callback, ready only once the callback has run.
        if self._cb_done is not None:
            return self._cb_done.is_set()
        return bool(_mproc.mproc_async_ready(self._h))

    def _c_ready(self):
        """The pool has the outcome (the callback may not have run yet)."""
        return bool(_mproc.mproc_async_ready(self._h))

    def _is_done(self):
        return self._h is not None and self.ready()

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._result()[0]

    def wait(self, timeout=None):
        if not _mproc.py_async_wait(self._h, -1.0 if timeout is None else max(0.0, timeout)):
            return
        if self._cb_done is not None and threading.current_thread() is not self._pool._cb_thread:
            self._cb_done.wait(timeout)

    def get(self, timeout=None):
        if self._outcome is None and self._cb_done is None and type(self) is ApplyResult:
            # One call waits and takes the bytes (the common case: no callbacks).
            try:
                data = _mproc.py_async_get(self._h, -1.0 if timeout is None else
                                        max(0.0, timeout))
            except Exception as e:
                if _core.code_of(e) == _core.E.EAGAIN:
                    raise _core.TimeoutError from None
                self._outcome = (False, _pool_error(e, self._cancelled))
            else:
                self._outcome = _decode(data)
        else:
            self.wait(timeout)
            # The callback thread itself (a callback that reads its own result) does not wait
            # for the callback it runs: the outcome is there.
            if not (self.ready() or (self._cb_done is not None and self._c_ready() and
                                     threading.current_thread() is self._pool._cb_thread)):
                raise _core.TimeoutError
        ok, value = self._result()
        if ok:
            return value
        raise value

    def cancel(self):
        """Cancel the task (or every task of a map): a queued one is dropped, a running one has
        its worker killed and replaced. get() then raises concurrent.futures.CancelledError.
        False when the result was ready already."""
        if self._c_ready():
            return False
        self._cancelled = True
        _mproc.mproc_async_cancel(self._h)
        return True

    def cancelled(self):
        return self._cancelled

    def _fetch(self):
        try:
            return _decode(_mproc.py_async_get(self._h, 0.0))
        except Exception as e:
            return False, _pool_error(e, self._cancelled)

    def _result(self):
        if self._outcome is None:
            self._outcome = self._fetch()
        return self._outcome

    def _run_callbacks(self):
        try:
            _call_back(self._pool, self._callback, self._error_callback, *self._result())
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
            _mproc.py_async_get(self._h, 0.0)
        except Exception as e:
            if _core.code_of(e) in (_core.E.ECLOSED, _core.E.ECANCELED, _core.E.EINITFAILED):
                return False, _pool_error(e, self._cancelled)
        values = []
        for item in _mproc.py_async_items(self._h):
            if isinstance(item, tuple):
                code, msg = item
                exc = _core.MprocError(msg)
                exc.mproc_code = code
                cls = _core._ERRMAP.get(code)
                if cls is not None:
                    exc = cls(msg)
                    exc.mproc_code = code
                return False, _pool_error(exc, self._cancelled)
            ok, value = _decode(item)
            if not ok:
                return False, value
            values.append(value)
        return True, values


class _Failed:
    """A failed chunk's exception, kept in an iterator's queue of results in its place."""
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc


# A lazy map keeps at most this many bytes of pickled input in the pool at once (beside
# max_inflight), so that the default window stays small for big items.
_INFLIGHT_BYTES = 64 << 20


class _PipelinedMapResult(MapResult):
    """map_async/starmap_async with chunks: a thread of the result waits for the chunks in
    order and unpickles each one's results while later chunks still run (multiprocessing's
    result thread does the same), then runs the callback. get() and wait() wait for it."""

    def __init__(self, pool, it, callback, error_callback):
        ApplyResult.__init__(self, pool, callback, error_callback)
        self._cb_done = None
        self._it = it
        it._lock = threading.Lock()
        self._event = threading.Event()
        with pool._cb_cond:
            self._cookie = next(_cookies)
            pool._pending[self._cookie] = self
        pool._results[self._cookie] = self
        try:
            threading.Thread(target=self._drive, name="mproc-pool-map", daemon=True).start()
        except BaseException:  # no thread: nothing will end this map, so join() must not wait
            it._cancel()
            with pool._cb_cond:
                pool._pending.pop(self._cookie, None)
                pool._cb_cond.notify_all()
            raise

    def _drive(self):
        try:
            self._outcome = (True, self._it._all())
        except BaseException as e:
            if self._cancelled:
                e = concurrent.futures.CancelledError("canceled")
            self._outcome = (False, e)
        self._it = None
        try:
            _call_back(self._pool, self._callback, self._error_callback, *self._outcome)
        finally:
            self._event.set()
            pool, self._pool = self._pool, None
            with pool._cb_cond:
                pool._pending.pop(self._cookie, None)
                pool._cb_cond.notify_all()

    def ready(self):
        return self._event.is_set()

    def _is_done(self):
        return self._event.is_set()

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def _result(self):
        return self._outcome

    def cancel(self):
        it = self._it
        if self.ready() or it is None:
            return False
        self._cancelled = True
        it._cancel()
        return True


def _pack_chunk(star, seq, head, start, stop):
    """seq[start:stop] packed (starmap: tuples of numbers; map: numbers, else ASCII strings),
    or None when it is not all of one such kind (then it is pickled)."""
    if star:
        return _pack_tuples(seq, head, start, stop)
    data = _pack_numbers(seq, head, start, stop)
    return _pack_strs(seq, head, start, stop) if data is None else data


class _Packed:
    """A chunk of a list or tuple already packed (IMapIterator._read_chunk)."""
    __slots__ = ("data", "n")

    def __init__(self, data, n):
        self.data, self.n = data, n

    def __len__(self):
        return self.n


class IMapIterator:
    """Results of imap (in order) or imap_unordered (as they complete).

    The input is read by a feeder thread of the iterator (as multiprocessing's task thread
    reads it: imap() returns at once, and an input that blocks, or that waits for the caller's
    results, works), a chunk at a time while at most max_inflight items are taken and not read
    back. A whole chunk is pickled at once (one pickle of the list of its items; the function
    once per batch, not per item) and chunks go to the pool in batches, each one C map job: a
    batch leaves when it is full, when the pool has nothing left to run, or when the reader
    waits for it. No Python runs on the pool's threads, so the dispatcher never waits for the
    GIL (a lazy input read there, an item at a time, made imap slower than the standard
    library's by up to 100x). A map (eager) has its input in a list: the caller's thread
    submits all of it, and no feeder runs.

    As multiprocessing: an exception of the input ends the input; it is raised in place of the
    chunk that hit it (after the results of the chunks before it), then the iteration ends. An
    item that cannot be pickled fails its chunk and the input goes on. A failed chunk raises its
    task's exception; with chunksize > 1 the iteration then ends, as the standard library's.
    Pool.close() sends the rest of an input of known length (len()) to the pool first, so every
    result comes, as multiprocessing's. When the pool is terminated, or closed before an input
    of unknown length (a generator, maybe endless) ends, the results of the items already taken
    come, then next() raises ProcessError (terminated) or ValueError (closed) once, then
    StopIteration."""

    def __init__(self, pool, func, iterable, chunksize, ordered, task_timeout, max_inflight,
                 progress, star=False, eager=False):
        self._pool = pool
        self._lock = None        # taken around freeing a batch when another thread may cancel it
        self._batches = collections.deque()  # [handle or _Failed, chunk sizes, bytes], oldest first
        self._ready = collections.deque()    # chunks' lists of values (or _Failed) not given yet
        self._cur = _EMPTY       # an iterator over the list being given out
        self._it = None
        blob = _core.dumps(func)
        tail = len(blob).to_bytes(4, "little") + blob
        self._head = (b"K" if star else b"L") + tail
        self._oob_head = (b"k" if star else b"l") + tail  # the chunk's pickle made by _oob
        self._num_head = b"N" + tail  # a chunk of numbers (or of tuples of numbers), packed
        self._star = star
        # A list, tuple or range is cut in slices (a C copy, not an item at a time); a range's
        # chunks are ranges (a few bytes of pickle instead of one int per item; the worker
        # iterates one to the same ints).
        self._range = iterable if type(iterable) in (list, tuple, range) else None
        self._rpos = 0
        self._it = iter(iterable) if eager else _NOT_STARTED
        self._src = None if eager else iterable  # iter() of it runs in the feeder, as Python's
        self._cs = chunksize
        self._ordered = ordered
        self._t = float(task_timeout or 0.0)
        nw = pool._processes
        self._bound = max_inflight or 4 * nw * max(chunksize, 32)
        self._per_batch = max(1, self._bound // chunksize // 4)  # chunks per C job
        if eager:  # a map: all of the input goes to the pool now, in about 4 batches
            self._bound = None
        self._taken = 0          # items taken from the input whose results are not decoded yet
        self._bytes = 0          # pickled input of the batches in the pool
        self._end = None         # the exception to raise once when the results run out
        self._dead = False
        self._done = 0
        # A map has its input in memory and must be submitted whole before close() (as
        # multiprocessing's): no byte budget then.
        self._max_bytes = float("inf") if eager else _INFLIGHT_BYTES
        try:
            total = len(iterable)
        except TypeError:
            total = None
        self._sized = total is not None  # a finite input close() may read to its end
        self._progress = _Progress(progress, total) if progress else None
        self._cond = None        # lazy: guards what the feeder and the reader share
        self._pend, self._pend_sizes, self._pend_bytes = [], [], 0  # read, not yet submitted
        self._waiting = False    # the reader waits for the feeder
        pool._results[next(_cookies)] = self
        if eager:
            self._fill()
            return
        self._cond = self._lock = threading.Condition()  # an RLock: __del__ may run under it
        self._feeder = threading.Thread(target=_feed_loop, args=(weakref.ref(self), self._cond),
                                        name="mproc-imap-feeder", daemon=True)
        self._feeder.start()

    # -- input: the feeder thread (lazy) -----------------------------------------------------
    def _feed_state(self):
        """"go" (read a chunk), "wait" (the window is full) or "stop". Under _cond."""
        if self._dead or self._it is None or self._pool is None:
            return "stop"
        pool = self._pool
        if pool._state != RUN or pool._h is None or self._bound is None:
            return "go"
        if self._pend and (self._waiting or self._pool_idle()):
            self._flush()
            if self._it is None:
                return "stop"
        if self._taken and (self._taken + self._cs > self._bound
                            or self._bytes + self._pend_bytes >= self._max_bytes):
            return "wait"
        return "go"

    def _pool_idle(self):
        """Everything submitted has finished (the pool would wait for the feeder)."""
        if not self._batches:
            return True
        h = self._batches[-1][0]
        return h is None or isinstance(h, _Failed) or bool(_mproc.mproc_async_ready(h))

    def _stopped_error(self):
        return (ValueError("Pool closed before the input of this imap was read to its end")
                if self._pool is not None and self._pool._state == CLOSE else
                _core.ProcessError("Pool terminated before the input of this imap was read "
                                   "to its end"))

    def _feed_one(self):
        """Read, pickle and queue one chunk (feeder thread, without _cond while it reads: the
        input may block). False when the feeder is done."""
        cond, cs = self._cond, self._cs
        src, pool = self._it, self._pool
        if src is None or pool is None:
            return False
        chunk, err, data = None, None, None
        if pool._state != RUN or pool._h is None:
            # The pool stopped: only an error if the input had more (or read items are left).
            try:
                more = self._more(iter(self._src) if src is _NOT_STARTED else src)
            except Exception:
                more = True
            with cond:
                if self._it is not None and not self._dead:
                    more = more or bool(self._pend)
                    self._drop_pending()
                    self._cut(self._stopped_error() if more else None)
                cond.notify_all()
            return False
        try:
            if src is _NOT_STARTED:
                src = iter(self._src)
                with cond:
                    if self._it is _NOT_STARTED:
                        self._it, self._src = src, None
            chunk = self._read_chunk(src)
        except Exception as e:
            err = e
        if chunk:
            try:
                data = self._encode(chunk)
            except Exception as e:  # this chunk fails; the input goes on
                data = _Failed(e)
        with cond:
            try:
                if self._dead or self._it is None:
                    return False
                if pool._state != RUN or pool._h is None:
                    self._drop_pending()
                    self._cut(self._stopped_error())  # the chunk just read is not sent
                    return False
                if err is not None or not chunk:
                    # The input ended (or raised: in place of this chunk, as multiprocessing).
                    if self._flush():
                        self._cut(err)
                    return False
                if isinstance(data, _Failed):
                    if not self._flush():
                        return False
                    self._taken += len(chunk)
                    self._batches.append([data, [len(chunk)], 0])
                    return True
                self._pend.append(data)
                self._pend_sizes.append(len(chunk))
                self._pend_bytes += _chunk_weight(data)
                self._taken += len(chunk)
                if (len(self._pend) >= self._per_batch or self._waiting
                        or self._pend_bytes >= self._max_bytes / 4 or self._pool_idle()):
                    return self._flush()
                return True
            finally:
                cond.notify_all()

    def _flush(self):
        """Submit the chunks read and not yet sent, as one batch (under _cond). False when the
        pool refused them (the input is cut)."""
        if not self._pend:
            return True
        items, sizes, nbytes = self._pend, self._pend_sizes, self._pend_bytes
        self._pend, self._pend_sizes, self._pend_bytes = [], [], 0
        self._taken -= sum(sizes)  # _submit counts them again
        return self._submit(items, sizes, nbytes)

    def _drop_pending(self):
        self._taken -= sum(self._pend_sizes)
        self._pend, self._pend_sizes, self._pend_bytes = [], [], 0

    def _wait_feed(self, timeout):
        """The reader has nothing submitted left to read: submit what the feeder has read, or
        wait for it. False once the input is done."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        cond = self._cond
        with cond:
            while True:
                if self._batches or self._dead:
                    return True
                if self._pend:
                    self._flush()
                    return True
                if self._it is None:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _core.TimeoutError
                self._waiting = True
                try:
                    cond.notify_all()
                    cond.wait(left)
                finally:
                    self._waiting = False

    # -- input: a map (eager), in the caller's thread -----------------------------------------
    def _fill(self):
        """Take chunks from the input and submit them in batches while the window has room."""
        cs = self._cs
        while self._it is not None:
            room = float("inf") if self._bound is None else self._bound - self._taken
            if self._taken and self._bound is not None and (
                    room < min(self._bound, self._per_batch * cs)
                    or self._bytes >= self._max_bytes):
                return
            if self._pool._state != RUN or self._pool._h is None:
                self._cut(ValueError("Pool closed before the input of this imap was read to "
                                     "its end") if self._pool._state == CLOSE else
                          _core.ProcessError("Pool terminated before the input of this imap "
                                             "was read to its end"), check=True)
                return
            items, sizes, nbytes = [], [], 0
            it = self._it
            while len(items) < self._per_batch and (not items or room >= cs) \
                    and nbytes < self._max_bytes / 4:
                try:
                    chunk = self._read_chunk(it)
                except Exception as e:
                    self._submit(items, sizes, nbytes)
                    self._cut(e)  # in place of this chunk, as multiprocessing
                    return
                if not chunk:
                    self._it = None
                    break
                room -= len(chunk)
                try:
                    data = self._encode(chunk)
                except Exception as e:  # this chunk fails; the input goes on
                    self._submit(items, sizes, nbytes)
                    items, sizes, nbytes = [], [], 0
                    self._taken += len(chunk)
                    self._batches.append([_Failed(e), [len(chunk)], 0])
                    continue
                items.append(data)
                sizes.append(len(chunk))
                nbytes += _chunk_weight(data)
            if not self._submit(items, sizes, nbytes):
                return

    def _submit(self, items, sizes, nbytes):
        if not items:
            return True
        try:
            h, _ = _mproc.py_pool_map_async(self._pool._h, items, 1, self._t,
                                         1 if self._ordered else 2, None, 0, False)
        except Exception as e:
            e = _pool_error(e)
            if isinstance(e, ValueError):
                e = ValueError("Pool closed before the input of this imap was read to its end")
            self._cut(e)
            return False
        self._batches.append([h, sizes, nbytes])
        self._taken += sum(sizes)
        self._bytes += nbytes
        return True

    def _encode(self, chunk):
        """The task bytes of one chunk: exact ints or floats (for starmap, tuples of them) or
        ASCII strings packed (_worker's "N", a third of pickle's time at each end, the same
        values back), anything else pickled."""
        if type(chunk) is _Packed:
            return chunk.data
        data = _pack_chunk(self._star, chunk, self._num_head, 0, len(chunk))
        return _chunk_bytes(self, chunk) if data is None else data

    def _read_chunk(self, it):
        """The next chunk of the input: a list, or a slice of a list, tuple or range."""
        r = self._range
        if r is None:
            return list(itertools.islice(it, self._cs))
        if type(r) is not range:
            # numbers packed straight from the list: no slice of it made first
            stop = min(self._rpos + self._cs, len(r))
            data = _pack_chunk(self._star, r, self._num_head, self._rpos, stop)
            if data is not None:
                chunk = _Packed(data, stop - self._rpos)
                self._rpos = stop
                return chunk
        chunk = r[self._rpos:self._rpos + self._cs]
        self._rpos += len(chunk)
        return chunk

    def _more(self, it):
        """Whether the input has more (reads an item of an iterator)."""
        if self._range is not None:
            return self._rpos < len(self._range)
        return next(it, _cut_marker) is not _cut_marker

    def _cut(self, exc, check=False):
        """The input ends here; exc is raised once after the results of what was taken."""
        if check:  # the pool stopped: only an error if the input had more
            try:
                more = self._more(self._it)
            except Exception:
                more = True
            if not more:
                exc = None
        self._it = None
        self._end = exc

    # -- results ---------------------------------------------------------------------------
    def _take(self, entry, data):
        """Queue the decoded results of one chunk of batch entry (index, bytes)."""
        index, blob = data
        n = entry[1][index] if index < len(entry[1]) else self._cs
        self._untake(n)
        if type(blob) is list:  # packed numbers, unpacked by py_async_next
            self._ready.append(blob)
            return
        ok, value = _decode(blob)
        if ok:
            self._ready.append(value)
        else:
            self._ready.append(_Failed(value))

    def _untake(self, n):
        """n items' results are decoded: room in the window (the feeder may go on)."""
        cond = self._cond
        if cond is None:
            self._taken -= n
            return
        with cond:
            self._taken -= n
            cond.notify_all()

    def _release(self, entry):
        h = entry[0]
        if self._lock is None:
            self._bytes -= entry[2]
            if h is not None and not isinstance(h, _Failed):
                entry[0] = None
                _mproc.mproc_async_free(h)
            return
        with self._lock:
            self._bytes -= entry[2]
            entry[2] = 0
            h = entry[0]
            if h is not None and not isinstance(h, _Failed):
                entry[0] = None
                _mproc.mproc_async_free(h)
            if self._cond is not None:
                self._cond.notify_all()

    def _cancel(self):
        with self._lock:
            for entry in list(self._batches):
                h = entry[0]
                if h is not None and not isinstance(h, _Failed):
                    _mproc.mproc_async_cancel(h)

    def _next_of(self, entry, timeout):
        """One result of a batch: True (queued), False (the batch is done), or raises
        TimeoutError when timeout passed first."""
        h = entry[0]
        if isinstance(h, _Failed):
            if entry[1]:
                self._untake(entry[1].pop())
                self._ready.append(h)
                return True
            return False
        try:
            data = _mproc.py_async_next(h, timeout, True)  # packed numbers as a list
        except Exception as e:
            code = _core.code_of(e)
            if code == _core.E.EAGAIN:
                raise _core.TimeoutError from None
            if code == _core.E.EITEREND:
                return False
            self._untake(self._cs)  # the chunk's index is not known: count a whole one
            self._ready.append(_Failed(_pool_error(e)))
            return True
        self._take(entry, data)
        return True

    def _collect(self, timeout):
        """Wait for at least one chunk's results (or the end of a batch)."""
        if self._ordered:
            entry = self._batches[0]
            if not self._next_of(entry, -1.0 if timeout is None else max(0.0, timeout)):
                self._batches.popleft()
                self._release(entry)
            return
        # Unordered: whichever batch has a result; wait on the oldest in short slices while
        # newer ones exist (no C call waits for any of several jobs' next item).
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        slice_ = 0.0005
        while True:
            for entry in list(self._batches):
                try:
                    got = self._next_of(entry, 0.0)
                except _core.TimeoutError:
                    continue
                if not got:
                    self._batches.remove(entry)
                    self._release(entry)
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise _core.TimeoutError
            # One batch: wait on it, unless the feeder may still add one that finishes first.
            alone = len(self._batches) == 1 and (self._cond is None or self._it is None)
            wait = -1.0 if alone else slice_
            if left is not None:
                wait = left if wait < 0 else min(wait, left)
            entry = self._batches[0]
            try:
                got = self._next_of(entry, wait)
            except _core.TimeoutError:
                slice_ = min(slice_ * 2, 0.002)  # a newer batch may finish first: look often
                continue
            if not got:
                self._batches.popleft()
                self._release(entry)
            return

    def _all(self):
        """The list of every result, in order (a blocking map), or the failure of the lowest
        failing chunk once every chunk has ended (as multiprocessing's map waits for all)."""
        out, err = [], None
        extend, nxt = out.extend, _mproc.py_async_next
        try:
            while self._batches:
                entry = self._batches[0]
                h = entry[0]
                if isinstance(h, _Failed):
                    err = err or h.exc
                else:
                    while True:
                        try:
                            _, blob = nxt(h, -1.0, True)
                        except Exception as e:
                            if _core.code_of(e) == _core.E.EITEREND:
                                break
                            err = err or _pool_error(e)
                            continue
                        if type(blob) is list:  # packed numbers (see _take)
                            if err is None:
                                extend(blob)
                            continue
                        ok, value = _decode(blob)
                        if ok:
                            if err is None:
                                extend(value)
                        elif err is None:
                            err = value
                self._batches.popleft()
                self._release(entry)
                if self._it is not None:
                    self._fill()
            if err is None and self._end is not None:
                err = self._end
        finally:
            self._stop()
        if err is not None:
            raise err
        return out

    def next(self, timeout=None):
        while True:
            v = next(self._cur, _EMPTY)
            if v is not _EMPTY:
                if self._progress is not None:
                    self._done += 1
                    self._progress.update(self._done, self._progress._total)
                return v
            if self._ready:
                v = self._ready.popleft()
                if type(v) is _Failed:
                    if self._progress is not None:
                        self._done += 1
                    if self._cs > 1:  # multiprocessing's chunked imap ends at an error
                        self._stop()
                    raise v.exc
                self._cur = iter(v)
                continue
            if self._dead:
                raise StopIteration
            if self._batches:
                self._collect(timeout)
                if self._cond is None:
                    self._fill()
                continue
            if self._cond is not None:
                if self._wait_feed(timeout):
                    continue
            else:
                self._fill()
                if self._batches:
                    continue
            end, self._end = self._end, None
            self._stop()
            if end is not None:
                raise end
            raise StopIteration

    def __iter__(self):
        # A for loop takes each chunk's values here without a next() call per value (yield
        # from the chunk's list iterator: no Python per value); the state stays in that list
        # iterator, so a loop left with break, or next() calls between, lose nothing.
        return self if self._progress is not None else self._values()

    def _values(self):
        nxt = self.next
        while True:
            yield from self._cur
            try:
                v = nxt()
            except StopIteration:
                return
            yield v

    __next__ = next

    def _stop(self):
        if self._dead:
            return
        cond = self._cond
        if cond is not None:
            cond.acquire()  # the feeder submits under it: nothing is submitted after this
        try:
            self._dead = True
            self._it = self._src = None
            self._drop_pending()
            self._ready.clear()
            self._cur = _EMPTY
            while self._batches:
                self._release(self._batches.popleft())
            self._pool = None
            if cond is not None:
                cond.notify_all()  # the feeder ends
        finally:
            if cond is not None:
                cond.release()
        if self._progress is not None:
            self._progress.update(self._done, self._done)
            self._progress.close()

    def _is_done(self):
        """Every result is in (as multiprocessing's, which leaves _cache then): the input is read
        to its end and each batch in the pool has finished, whether read back or not."""
        if self._dead:
            return True
        if self._lock is None:
            return self._batches_done()
        with self._lock:  # a map's thread frees its batches' handles under it
            return self._batches_done()

    def _batches_done(self):
        return self._it is None and not self._pend and all(e[0] is None or isinstance(e[0], _Failed) or
                                        _mproc.mproc_async_ready(e[0])
                                        for e in list(self._batches))

    def __del__(self):
        if _mproc is None:
            return
        try:
            cond = getattr(self, "_cond", None)
            if cond is not None:  # the feeder ends (it holds this iterator weakly)
                with cond:
                    self._dead = True
                    cond.notify_all()
            for entry in getattr(self, "_batches", ()):
                self._release(entry)
            self._batches.clear()
        except Exception:
            pass


_cut_marker = object()
_EMPTY = iter(())  # an exhausted iterator; also next()'s default meaning "none left"
_NOT_STARTED = object()  # an imap's input before the feeder called iter() on it


def _feed_loop(ref, cond):
    """An imap's feeder thread: reads the input a chunk at a time while the window has room.
    It holds the iterator weakly while it waits, so an abandoned iterator is freed (its
    __del__ ends the feeder); the pool's close() and terminate() wake it."""
    try:
        while True:
            with cond:
                while True:
                    it = ref()
                    if it is None:
                        return
                    state = it._feed_state()
                    if state == "go":
                        break
                    if state == "stop":
                        return
                    it = None
                    cond.wait()
            try:
                if not it._feed_one():
                    return
            except BaseException as e:  # not expected: the reader must not wait forever
                with cond:
                    if not it._dead and it._it is not None:
                        it._drop_pending()
                        it._cut(e)
                    cond.notify_all()
                return
            it = None
    finally:
        it = None

# ---- out-of-band buffers: where mproc._oob plugs in ---------------------------------------------
# A task is pickled with protocol 5 (_core.PROTOCOL). Its large buffers (numpy arrays,
# bytearrays, pickle.PickleBuffer: _oob.THRESHOLD bytes and more, contiguous) go by reference
# through the pool's data arena: shared memory of the pool's process that its workers map too
# (bindings/python/src/arena.c). Each is copied once into it, the worker's arrays are views of
# it, and the worker's large results come back the same way (run_task, result tag 2). Such a
# task is tagged in lower case ("a", "m", "s", "l", "k") and carries the arena's coordinates, so
# that the worker has it for its results even when the arguments are small. Without an arena
# (mproc.mpi's ranks may run on other hosts; no memfd) the buffers follow the pickle in the
# task's bytes (_oob.dumps), and without _oob the task is a plain pickle, as it always was.
try:
    from . import _oob
    from ._oob import dumps as _oob_dumps
except ImportError:
    _oob = _oob_dumps = None


def _arena_of(pool):
    """The pool's data arena and its coordinates, made on first use: (None, NO_ARENA) when it
    has none."""
    a = pool.__dict__.get("_oob_arena")
    if a is None:
        a = (None, _oob.NO_ARENA)
        # local workers only: a backend's worker (an MPI rank) may be on another host
        if type(pool)._new_handle is Pool._new_handle and pool._h is not None:
            try:
                arena = _oob.arena_new()
                a = (arena, _oob.coords(arena))
            except Exception:
                pass
        pool._oob_arena = a
    return a


def _retire_arena(pool):
    """The pool is freed: no more extents from its arena (the objects that use some keep the
    memory mapped until they go)."""
    a = pool.__dict__.pop("_oob_arena", None)
    if a is not None and a[0] is not None:
        a[0].retire()


def _chunk_bytes(it, chunk):
    """The task bytes of one chunk of an imap or a map."""
    if _oob is not None:
        arena, where = _arena_of(it._pool)
        try:
            if arena is not None:
                return it._oob_head + where + _oob.dumps_to(chunk, arena)
            return it._oob_head + where + _oob_dumps(chunk)
        except Exception:
            pass  # what _oob cannot send (a lambda needs cloudpickle; no room): the plain way
    # Pickled after the head in one buffer: for large items, head + dumps() costs a second
    # copy of the whole chunk (measured: twice the time for 64 MiB of arrays).
    f = io.BytesIO()
    f.write(it._head)
    try:
        pickle.Pickler(f, _core.PROTOCOL).dump(chunk)
    except (pickle.PicklingError, AttributeError, TypeError):
        return it._head + _core.dumps(chunk)  # cloudpickle, or the error that names the object
    return f.getvalue()


def _chunk_weight(data):
    """Bytes of input a chunk's task bytes stand for (the arena's buffers they reference too)."""
    if _oob is None or data[:1] not in (b"l", b"k"):
        return len(data)
    at = 21 + int.from_bytes(data[1:5], "little")  # tag, length of fn, fn, arena (_worker)
    return at + _oob.weight(memoryview(data)[at:])


def _apply_bytes(pool, func, args, kwds):
    """The task bytes of apply/apply_async."""
    if _oob is not None:
        arena, where = _arena_of(pool)
        if arena is not None:
            try:
                return b"a" + where + _oob.dumps_to((func, tuple(args), dict(kwds)), arena)
            except Exception:
                pass
    return b"A" + _core.dumps((func, tuple(args), dict(kwds)))


def _item_bytes(pool, blob, star, iterable):
    """The task bytes of each item of a map with chunks of one item (pool._items). Each item is
    pickled as it always was; only one with a large buffer is pickled again, into the arena."""
    head = (b"S" if star else b"M") + len(blob).to_bytes(4, "little") + blob
    dumps = _core.dumps
    arena = None if _oob is None else _arena_of(pool)[0]
    if arena is None:
        return [head + dumps(x) for x in iterable]
    ohead = (b"s" if star else b"m") + head[1:] + _oob.coords(arena)
    big = []
    threshold = _oob.THRESHOLD

    def probe(pb):  # keeps every buffer in band, and notes a large one
        if not big and memoryview(pb).nbytes >= threshold:
            big.append(True)
        return True

    plain, to, out = pickle.dumps, _oob.dumps_to, []
    for x in iterable:
        try:
            data = plain(x, _core.PROTOCOL, buffer_callback=probe)
        except Exception:
            data = None
        if big:
            del big[:]
            try:
                data = to(x, arena)
            except Exception:
                pass  # no room in the arena: in band
        # the lower-case tag also when small: the worker's large results use the arena
        out.append(ohead + data if data is not None else head + dumps(x))
    return out


class Pool:
    """multiprocessing.Pool. Extra keywords: task_timeout (seconds per task, or per chunk of a
    map): a task over it fails with TaskTimeoutError and its worker is replaced; backend:
    "local" (the default, or the MPROC_POOL_BACKEND environment variable) or "mpi" (an
    mproc.mpi.Pool over MPI ranks, see docs/mpi.md)."""

    def __new__(cls, *args, backend=None, **kwargs):
        backend = backend or os.environ.get("MPROC_POOL_BACKEND") or "local"
        if backend == "mpi":
            # The pool over MPI ranks (docs/mpi.md): a subclass in mproc.mpi, which imports this
            # module; loaded by name on first use, so the import graph stays one-way.
            return super().__new__(importlib.import_module(__package__ + ".mpi").Pool)
        if backend != "local":
            raise ValueError("backend must be 'local' or 'mpi', not %r" % (backend,))
        return super().__new__(cls)

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, task_timeout=None, backend=None):
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
        self._h = self._new_handle(processes, initializer, initargs, maxtasksperchild, context,
                                   task_timeout)
        self._processes = processes
        self._state = RUN
        self._cb_lock = threading.Lock()
        self._cb_cond = threading.Condition(self._cb_lock)
        self._cb_serial = threading.RLock()  # callbacks run one at a time (_call_back)
        self._cbq = None
        self._cb_thread = None
        self._pending = {}
        self._feeds = []       # C payloads of maps (input, progress) the pool may still call
        self._results = weakref.WeakValueDictionary()  # what _cache shows
        self._owner = os.getpid()
        _pools.add(self)

    def _new_handle(self, processes, initializer, initargs, maxtasksperchild, context,
                    task_timeout):
        """The C pool of local workers (mproc.mpi.Pool makes one over MPI ranks instead)."""
        method = context._method() if context is not None else _start._default_method()
        code = _start._prepare(method)
        # Worker identities as multiprocessing's: (parent's identity..., N) with N from the
        # process counter, one number per worker slot; the name as ForkPoolWorker-N.
        from . import process as _process
        ids = [next(_process._counter) for _ in range(processes)]
        prefix = _process.current_process()._identity
        kind = {_core.METHODS["fork"]: "Fork", _core.METHODS["forkserver"]: "ForkServer",
                _core.METHODS["spawn"]: "Spawn"}.get(code, "Fork") + "PoolWorker"
        self._worker_names = [(prefix + (n,), kind + "-" + ":".join(map(str, prefix + (n,))))
                              for n in ids]
        key = None
        new_pool = _mproc.py_pool_new
        if code == _core.METHODS["spawn"]:
            from . import spawn
            new_pool, init = spawn.new_pool, spawn.pool_init_bytes(initializer, initargs)
        elif initializer is None:
            init = b""
        elif code == _core.METHODS["fork"]:
            key = id(self)
            _pending_inits[key] = (initializer, tuple(initargs))
            init = b"F" + key.to_bytes(8, "little")
        else:
            init = b"P" + _core.dumps((initializer, tuple(initargs)))
        head = _core.dumps((prefix, ids[0], kind))
        init = b"I" + len(head).to_bytes(4, "little") + head + init
        try:
            return new_pool(processes, code, maxtasksperchild or 0, float(task_timeout or 0.0),
                            init)
        finally:
            if key is not None:
                _pending_inits.pop(key, None)

    # -- the standard library's internals that programs read -------------------------------
    @property
    def _pool(self):
        """multiprocessing's list of workers: objects with pid, name, _identity, is_alive()."""
        if self._h is None:
            return []
        names = getattr(self, "_worker_names", [])
        return [_PoolWorker(st[0], *(names[i] if i < len(names) else
                                     ((i + 1,), "PoolWorker-%d" % (i + 1))))
                for i, st in enumerate(_mproc.py_pool_stats(self._h))]

    @property
    def _cache(self):
        """multiprocessing's {job: result} of the results not ready yet."""
        out = {}
        for k, r in list(self._results.items()):
            try:
                if not r._is_done():
                    out[k] = r
            except Exception:
                pass
        return out

    # -- submission ------------------------------------------------------------------------
    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _callbacks(self):
        """The completion queue and its thread, made on first use of a callback."""
        if self._cbq is None:
            self._cbq = _mproc.py_cbq_new()
            self._cb_thread = threading.Thread(target=_callback_loop,
                                               args=(self._cbq, self._pending, self._cb_cond),
                                               name="mproc-pool-callbacks", daemon=True)
            self._cb_thread.start()
        return self._cbq

    def _keep(self, feed):
        """Keep a map's C payload until the pool no longer calls it (or the pool is freed)."""
        if feed is None:
            return
        self._feeds = [f for f in self._feeds if not _mproc.py_feed_state(f)[2]]
        self._feeds.append(feed)

    def _submit(self, res, submit):
        self._results[next(_cookies)] = res
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
        data = _apply_bytes(self, func, args, kwds)
        try:
            if (not task_timeout and _getsignal(_SIGINT) is _default_int_handler
                    and _get_ident() == _main_thread().ident
                    and _NO_HANDLER.issuperset(map(_getsignal, _OTHER_SIGNALS))):
                # The fast path: this thread does the dispatcher's work while it waits; Ctrl-C
                # raises KeyboardInterrupt (see mproc_py_pool_apply_block in bindings/python/src/helpers.c). Only
                # SIGINT can cut that wait short, so no other signal may have a Python handler.
                out = _mproc.py_pool_apply_block(self._h, data)
            else:  # waits in slices: any signal handler runs and the wait goes on
                out = _mproc.py_pool_apply(self._h, data, float(task_timeout or 0.0))
        except Exception as e:
            raise _pool_error(e) from None
        ok, value = _decode(out)
        if ok:
            return value
        raise value

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None, *,
                    task_timeout=None):
        if self._state != RUN:
            raise ValueError("Pool not running")
        data = _apply_bytes(self, func, args, kwds)
        res = ApplyResult(self, callback, error_callback)
        t = float(task_timeout or 0.0)
        if res._cb_done is None:
            try:
                res._h = _mproc.py_pool_apply_async(self._h, data, t, None, 0)
            except Exception as e:
                raise _pool_error(e) from None
            self._results[next(_cookies)] = res
            return res
        return self._submit(res, lambda q, c: _mproc.py_pool_apply_async(self._h, data, t, q, c))

    def _items(self, func, iterable, star):
        return _item_bytes(self, _core.dumps(func), star, iterable)

    def _map_async(self, func, iterable, star, chunksize, callback, error_callback, task_timeout,
                   progress=False):
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        p = bool(progress)
        data = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        cs = chunksize or -(-len(data) // (4 * self._processes)) or 1
        if cs > 1 and not p:
            # Chunks go to the pool in a few batches, and each chunk's results are unpickled as
            # they come while later chunks run (by a thread of the result, as multiprocessing's
            # result thread), instead of all unpickling at the end.
            it = IMapIterator(self, func, data, cs, True, task_timeout, max(1, len(data)), None,
                              star, eager=True)
            return _PipelinedMapResult(self, it, callback, error_callback)
        # Chunks of one item (or with progress, counted per item): one C map job over the items'
        # pickles, chunked by the core.
        res = MapResult(self, callback, error_callback)
        items = self._items(func, data, star)
        res._total = len(items)
        t = float(task_timeout or 0.0)

        def submit(q, c):
            h, feed = _mproc.py_pool_map_async(self._h, items, cs, t, 0, q, c, p)
            res._feed = feed
            self._keep(feed)
            return h
        return self._submit(res, submit)

    def _wait_map(self, res, progress):
        """get() of a blocking map, drawing progress while it waits."""
        if progress and res._feed is not None:
            bar = _Progress(progress, res._total)
            try:
                while not res.ready():
                    res.wait(0.1)
                    done, total, _ = _mproc.py_feed_state(res._feed)
                    bar.update(done, total or res._total)
                bar.update(res._total, res._total)
            finally:
                bar.close()
        return res.get()

    def map(self, func, iterable, chunksize=None, *, task_timeout=None, progress=None):
        """multiprocessing's map. progress=True draws a progress bar on stderr when it is a
        terminal; progress=callable is called as callable(done, total) while the map runs."""
        res = self._map_async(func, iterable, False, chunksize, None, None, task_timeout, progress)
        return self._wait_map(res, progress)

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None, *,
                  task_timeout=None):
        return self._map_async(func, iterable, False, chunksize, callback, error_callback,
                               task_timeout)

    def starmap(self, func, iterable, chunksize=None, *, task_timeout=None, progress=None):
        res = self._map_async(func, iterable, True, chunksize, None, None, task_timeout, progress)
        return self._wait_map(res, progress)

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None,
                      *, task_timeout=None):
        return self._map_async(func, iterable, True, chunksize, callback, error_callback,
                               task_timeout)

    def _imap(self, func, iterable, chunksize, ordered, task_timeout, max_inflight, progress):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        if max_inflight is not None and max_inflight < 1:
            raise ValueError("max_inflight must be 1+ or None")
        return IMapIterator(self, func, iterable, chunksize, ordered, task_timeout, max_inflight,
                            progress)

    def imap(self, func, iterable, chunksize=1, *, task_timeout=None, max_inflight=None,
             progress=None):
        """Results in order, the input read lazily with at most max_inflight items (default
        4 x workers x max(chunksize, 32)) taken and not yet read back, and at most 64 MiB of
        pickled input in the pool: an endless generator is fine."""
        return self._imap(func, iterable, chunksize, True, task_timeout, max_inflight, progress)

    def imap_unordered(self, func, iterable, chunksize=1, *, task_timeout=None,
                       max_inflight=None, progress=None):
        return self._imap(func, iterable, chunksize, False, task_timeout, max_inflight, progress)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self):
        if self._state == RUN:
            # The rest of an imap's input of known length (a list, a range) goes to the pool
            # now, as multiprocessing's task thread sends all of it before the pool ends:
            # close(); join(); list(it) gives every result. An input of unknown length (a
            # generator, maybe endless) is cut instead (the iterator says so once).
            feeders = []
            for r in list(self._results.values()):
                if not isinstance(r, IMapIterator) or r._cond is None or r._dead:
                    continue
                with r._cond:
                    if r._sized and r._it is not None:
                        r._bound, r._max_bytes = None, float("inf")
                        feeders.append(r._feeder)
                    else:  # what the feeder has read goes to the pool; the rest is cut
                        r._flush()
                    r._cond.notify_all()
            for t in feeders:
                if t is not threading.current_thread():
                    t.join()
            self._state = CLOSE
            _mproc.mproc_pool_close(self._h)
            self._wake_feeders()

    def terminate(self):
        if self._h is None:
            return
        self._state = TERMINATE
        _mproc.mproc_pool_terminate(self._h)
        self._wake_feeders()

    def _wake_feeders(self):
        """The pool stopped: imap feeders waiting for room see it and end."""
        for r in list(self._results.values()):
            cond = getattr(r, "_cond", None)
            if cond is not None:
                with cond:
                    cond.notify_all()

    def join(self):
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        _mproc.py_pool_join(self._h, -1.0)
        self._drain_callbacks()
        self._stop_callbacks()  # no result can come any more: as Python's join, end the thread

    def _drain_callbacks(self):
        """Wait until every callback of a finished result has run (as Python's join does)."""
        me = threading.current_thread()
        if me is self._cb_thread or me.name == "mproc-pool-map":
            return
        with self._cb_cond:
            while self._pending:
                self._cb_cond.wait()

    def stats(self):
        """Per worker slot: pid, tasks (chunks) done, busy seconds, restarts, last exit code
        of a replaced worker (-signal when killed)."""
        keys = ("pid", "tasks", "busy_seconds", "restarts", "last_exit")
        return [dict(zip(keys, s)) for s in _mproc.py_pool_stats(self._h)]

    def _free(self):
        h, self._h = self._h, None
        if h is None or os.getpid() != self._owner:
            return
        self._state = TERMINATE
        self._wake_feeders()
        _mproc.mproc_pool_free(h)  # terminates, joins; pending results fail (callbacks fire)
        _retire_arena(self)
        self._feeds = []           # the dispatcher is gone: nothing calls them any more
        self._stop_callbacks()

    def _stop_callbacks(self):
        t, self._cb_thread = self._cb_thread, None
        if t is not None:
            _mproc.py_cbq_push(self._cbq, _STOP)
            if threading.current_thread() is not t:
                t.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_h", None) is None or _mproc is None:
            return
        if self._state == RUN:  # as multiprocessing's
            _warn("unclosed running multiprocessing pool %r" % (self,), ResourceWarning,
                  source=self)
        try:
            self._free()
        except Exception:
            pass

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return "<%s.%s state=%s pool_size=%d>" % (type(self).__module__, type(self).__qualname__,
                                                   self._state, self._processes)


class _Progress:
    """progress=True: a bar on stderr when it is a terminal (tqdm when importable, else a short
    built-in one); progress=callable: callable(done, total), total None while unknown."""

    def __init__(self, progress, total):
        self._fn = None
        self._bar = None
        self._last = None
        self._total = total
        if callable(progress):
            self._fn = progress
        elif progress and sys.stderr is not None and sys.stderr.isatty():
            try:
                import tqdm
                self._bar = tqdm.tqdm(total=total, file=sys.stderr)
            except ImportError:
                self._fn = self._draw

    def _draw(self, done, total):
        if total:
            n = int(30 * done / total)
            sys.stderr.write("\r[%s%s] %d/%d" % ("#" * n, "." * (30 - n), done, total))
        else:
            sys.stderr.write("\r%d done" % done)
        sys.stderr.flush()

    def update(self, done, total):
        if (done, total) == self._last:
            return
        self._last = (done, total)
        if self._bar is not None:
            if total and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)
        elif self._fn is not None:
            self._fn(done, total)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._fn == self._draw and self._last is not None:
            sys.stderr.write("\n")
            self._last = None


def _callback_loop(q, pending, cond):
    """The pool's callback thread: runs callback/error_callback of finished results in order
    of completion (the dispatcher thread only queued their cookies)."""
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())  # for the main thread
    while True:
        cookie = _mproc.py_cbq_pop(q, -1.0)
        if cookie is None:
            continue
        if cookie == _STOP:
            return
        with cond:
            res = pending.get(cookie)
        if res is not None:
            res._run_callbacks()
        res = None  # not kept while the thread waits: it holds the pool alive
        with cond:
            pending.pop(cookie, None)
            cond.notify_all()


class _PoolWorker:
    """An entry of Pool._pool: a worker slot's current process, as multiprocessing lists them."""

    daemon = True

    def __init__(self, pid, identity, name):
        self.pid = self.ident = pid
        self._identity = identity
        self.name = name

    def is_alive(self):
        return bool(self.pid) and _core.pid_alive(self.pid)

    @property
    def exitcode(self):
        return None if self.is_alive() else 0

    def __repr__(self):
        return "<%s name=%r pid=%d daemon>" % (type(self).__name__, self.name, self.pid)


def __getattr__(name):
    # The standard library's ThreadPool (threads need nothing of mproc), imported on first use.
    if name == "ThreadPool":
        from multiprocessing.pool import ThreadPool
        return ThreadPool
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _terminate_all():
    for p in list(_pools):
        try:
            p._free()
        except Exception:
            pass
