"""mproc's Pool across machines, over MPI (mpi4py): rank 0 of MPI.COMM_WORLD is the caller,
ranks 1..N-1 are the workers. Same calls, results and errors as mproc.Pool / multiprocessing.Pool.

    mpirun -n 4 python3 -m mproc.mpi script.py [args]     # rank 0 runs script.py as __main__

or, without -m, a script run on every rank (plain `mpirun -n 4 python3 script.py`): on ranks
>= 1, Pool() (or serve()) becomes the worker loop and ends the process when rank 0's program
ends, so the code after it runs on rank 0 only. docs/mpi.md has the details.

Protocol (point to point on COMM_WORLD, tags _TAG_WORK and _TAG_DONE; no collective call):
  rank 0 -> worker  ("T", [(tid, kind, fn blob, payload), ...])  a batch of tasks, run in order
                    ("I", pool id, pickle((initializer, initargs)))  a pool starts: run it once
                    ("X",)                                      rank 0's program ended: exit
  worker -> rank 0  ("H", pid, host)                            once, when serving starts
                    ("R", [(tid, result bytes), ...], seconds)   results, in order of running
                    ("E", pool id, error bytes)                 the initializer failed
                    ("B",)                                      answer to "X": leaving
Tasks: kind "A" payload pickle((func, args, kwargs)); "M"/"S" a chunk of map/starmap, payload
pickle(list of items), fn blob pickle(func) (cached by the worker). Result bytes are those of
mproc's local pool (_worker.py): b"\\0" + pickle(value) or b"\\1" + pickle((exc, traceback)).

Rank 0 keeps a few batches in flight per worker (more for short tasks, from the workers' timing
of their batches), sends with isend and collects results on one thread that polls with
exponential backoff (Open MPI's blocking receive spins a core).
"""
import atexit
import collections
import itertools
import os
import pickle
import signal
import socket
import sys
import threading
import time
import weakref

from . import _core
from . import _worker
from ._worker import _decode

__all__ = ["Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator", "available",
           "serve", "rank", "size", "TimeoutError"]

TimeoutError = _core.TimeoutError

_TAG_WORK = 0x6d70       # rank 0 -> workers (0x6d70: "mp")
_TAG_DONE = 0x6d71       # workers -> rank 0
_BACKOFF_MAX = float(os.environ.get("MPROC_MPI_BACKOFF", "0.001"))  # longest idle poll sleep
_FLUSH_AFTER = 0.002     # a worker sends results at least this often while it has work
_TARGET_BATCH = 0.005    # seconds of work to keep queued on each worker rank
_CAP_MIN, _CAP_MAX = 2, 256

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
_MPI = None
_hub = None
_hub_lock = threading.Lock()
_serving = False
_exit_sent = False


def _mpi():
    """mpi4py's MPI module (importing it initializes MPI), or ImportError with what to do."""
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError("mproc.mpi needs mpi4py (Debian: apt install python3-mpi4py; "
                              "else pip install mpi4py): " + str(e)) from e
        _MPI = MPI
    return _MPI


def available():
    """True when mpi4py imports and the job has at least 2 ranks (a Pool can be made here).
    Initializes MPI (a lone process becomes a 1-rank job: False)."""
    try:
        return _mpi().COMM_WORLD.Get_size() >= 2
    except ImportError:
        return False


def rank():
    return _mpi().COMM_WORLD.Get_rank()


def size():
    return _mpi().COMM_WORLD.Get_size()


class _Backoff:
    """Sleeps between polls: none at first, then doubling up to _BACKOFF_MAX (a few ms of
    latency at most on an idle link, little CPU taken from the workers sharing the cores)."""

    def __init__(self):
        self.delay = 0.0

    def reset(self):
        self.delay = 0.0

    def sleep(self):
        if self.delay == 0.0:
            self.delay = 1e-5
            time.sleep(0)
            return
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, _BACKOFF_MAX)


def _fname(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# ---- rank 0: the hub (one per process, shared by its pools) -------------------------------
class _Task:
    __slots__ = ("tid", "owner", "index", "msg", "fname", "start", "count", "maxrank")

    def __init__(self, tid, owner, index, msg, fname, start, count, maxrank):
        self.tid = tid
        self.maxrank = maxrank  # the pool's ranks are 1..maxrank
        self.owner = owner      # the result object told when it comes back
        self.index = index      # chunk number within a map (0 for apply)
        self.msg = msg          # (tid, kind, fn blob, payload) as sent
        self.fname = fname
        self.start = start      # first item of the chunk (None for apply)
        self.count = count

    def describe(self):
        if self.start is None:
            return "%s() (%s)" % (self.fname, self.owner._what)
        if self.count == 1:
            return "%s() item %d of %s" % (self.fname, self.start, self.owner._what)
        return "%s() items %d..%d (chunk %d) of %s" % (
            self.fname, self.start, self.start + self.count - 1, self.index, self.owner._what)


class _Hub:
    """Rank 0's side: a backlog of tasks, the tasks in flight per worker rank, and the thread
    that receives results (and sends the backlog as workers free up)."""

    def __init__(self):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.size = self.comm.Get_size()
        self.lock = threading.Lock()          # all state below, and every MPI call
        self.cond = threading.Condition(self.lock)
        self.backlog = collections.deque()
        self.inflight = {r: collections.OrderedDict() for r in range(1, self.size)}
        self.cap = 8                           # tasks in flight per rank, adapted to task length
        self.sends = []                        # isend requests not known complete
        self.info = {}                         # rank -> (pid, host)
        self.tids = itertools.count(1)
        self.stopping = False
        self.host = socket.gethostname()
        self.thread = threading.Thread(target=self._loop, name="mproc-mpi-results", daemon=True)
        self.thread.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    # -- sending (caller threads and the result thread), lock held -------------------------
    def _isend(self, msg, dest):
        self.sends.append(self.comm.isend(msg, dest=dest, tag=_TAG_WORK))
        if len(self.sends) > 64:
            self.sends = [r for r in self.sends if not r.Test()]

    def _dispatch(self):
        """Send backlog tasks, in order, to the ranks with room, spread evenly over them (a
        task goes to a rank of its pool only)."""
        backlog, cap = self.backlog, self.cap
        sent = True
        while backlog and sent:
            sent = False
            room = [r for r, fl in self.inflight.items() if len(fl) < cap]
            if not room:
                break
            share = -(-len(backlog) // len(room))
            for r in sorted(room, key=lambda r: len(self.inflight[r])):
                fl = self.inflight[r]
                batch = []
                while backlog and len(batch) < share and len(fl) < cap \
                        and backlog[0].maxrank >= r:
                    t = backlog.popleft()
                    fl[t.tid] = t
                    batch.append(t.msg)
                if batch:
                    self._isend(("T", batch), r)
                    sent = True
                if not backlog:
                    break
        self.cond.notify_all()

    def submit(self, tasks):
        with self.lock:
            if self.stopping:
                raise ValueError("Pool not running (the MPI job is ending)")
            self.backlog.extend(tasks)
            self._dispatch()

    def control(self, msg, ranks):
        with self.lock:
            for r in ranks:
                self._isend(msg, r)

    def drop(self, owner):
        """Forget the backlog of a terminated pool (tasks in flight run to their end)."""
        with self.lock:
            self.backlog = collections.deque(t for t in self.backlog if t.owner._pool is not owner)

    def new_tid(self):
        return next(self.tids)

    # -- the result thread ----------------------------------------------------------------
    def _busy(self):
        return any(self.inflight.values())

    def _loop(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # for the main thread
        MPI = self.MPI
        comm = self.comm
        status = MPI.Status()
        backoff = _Backoff()
        while True:
            with self.lock:
                if not self.stopping and not self._busy() and not self.sends:
                    backoff.reset()    # work that comes after a pause is polled for at once
                    while not self.stopping and not self._busy() and not self.sends:
                        self.cond.wait()
                if self.stopping and not self._busy():
                    return
                msg = None
                if comm.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG_DONE, status=status):
                    src = status.Get_source()
                    msg = comm.recv(source=src, tag=_TAG_DONE)
                elif self.sends and not self._busy():
                    self.sends = [r for r in self.sends if not r.Test()]
            if msg is None:
                backoff.sleep()
                continue
            backoff.reset()
            try:
                self._handle(src, msg)
            except Exception:  # never lose the thread: later results would hang their callers
                import traceback
                traceback.print_exc()

    def _handle(self, src, msg):
        kind = msg[0]
        if kind == "R":
            _, results, seconds = msg
            done = []
            with self.lock:
                fl = self.inflight[src]
                for tid, data in results:
                    t = fl.pop(tid, None)
                    if t is not None:
                        done.append((t, data))
                if results:
                    # room for ~_TARGET_BATCH seconds of work per rank, from this batch's speed
                    per_task = max(seconds / len(results), 1e-7)
                    cap = int(_TARGET_BATCH / per_task)
                    self.cap = max(_CAP_MIN, min(_CAP_MAX, (self.cap + cap) // 2 or 1))
                self._dispatch()
            for t, data in done:
                t.owner._set(t, data)
        elif kind == "H":
            self.info[src] = (msg[1], msg[2])
        elif kind == "E":
            _, pool_id, data = msg
            pool = _live_pools.get(pool_id)
            if pool is not None:
                pool._init_failed(src, data)

    # -- the end --------------------------------------------------------------------------
    def shutdown(self):
        """At exit of rank 0: every worker rank leaves its loop (the job can then finalize)."""
        with self.lock:
            self.stopping = True
            self.backlog.clear()
            for fl in self.inflight.values():
                fl.clear()
            for r in range(1, self.size):
                self._isend(("X",), r)
            self.cond.notify_all()
        self.thread.join()
        # Take every message still coming (a worker blocked sending a large result would hold
        # up MPI_Finalize) until each serving rank said goodbye. A rank that never served gets
        # a second to show up.
        MPI, comm = self.MPI, self.comm
        status = MPI.Status()
        serving = set(self.info)
        byes = set()
        backoff = _Backoff()
        t_end = time.monotonic() + 1.0
        while not serving <= byes or (len(serving) < self.size - 1 and time.monotonic() < t_end):
            if comm.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG_DONE, status=status):
                src = status.Get_source()
                msg = comm.recv(source=src, tag=_TAG_DONE)
                if msg[0] == "H":
                    serving.add(src)
                elif msg[0] == "B":
                    byes.add(src)
                backoff.reset()
            else:
                backoff.sleep()
        MPI.Request.Waitall(self.sends)
        self.sends = []

    def report(self):
        """Lines naming, per worker rank, the tasks it held (the first one is the running one)
        and whether it is gone (known for ranks on this host only)."""
        lines = []
        for r in range(1, self.size):
            fl = list(self.inflight[r].values())
            pid, host = self.info.get(r, (None, None))
            where = "rank %d" % r
            if pid is not None:
                where += " (pid %d on %s)" % (pid, host)
            gone = pid is not None and host == self.host and not _alive(pid)
            if not fl:
                if gone:
                    lines.append("%s has died while idle" % where)
                continue
            run = fl[0].describe()
            more = ""
            if len(fl) > 1:
                more = "; %d more queued on it, up to %s" % (len(fl) - 1, fl[-1].describe())
            if gone:
                lines.append("%s has DIED while running task %s%s" % (where, run, more))
            else:
                lines.append("%s was running task %s%s" % (where, run, more))
        return lines

    def _on_sigterm(self, signum, frame):
        # mpirun sends SIGTERM to every rank left once one has died (Open MPI 4.1): say what
        # each worker rank was doing, as mpirun's own message only names the rank.
        try:
            lines = ["mproc.mpi: rank 0: the job is being torn down (SIGTERM): a rank died or "
                     "the job was cancelled"]
            try:
                lines += ["mproc.mpi: " + s for s in self.report()]
            except Exception as e:  # state changed under us: say so rather than nothing
                lines.append("mproc.mpi: (no report: %r)" % e)
            os.write(2, ("\n".join(lines) + "\n").encode(errors="replace"))
        finally:
            os._exit(128 + signum)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _get_hub():
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = _Hub()
        return _hub


def _at_exit():
    """Rank 0's program ended: release the workers (they exit their loop)."""
    global _exit_sent
    if _exit_sent or _serving or _MPI is None:
        return
    MPI = _MPI
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    comm = MPI.COMM_WORLD
    if comm.Get_rank() != 0 or comm.Get_size() < 2:
        return
    _exit_sent = True
    for p in list(_live_pools.values()):
        try:
            p.terminate()
        except Exception:
            pass
    _get_hub().shutdown()


atexit.register(_at_exit)


# ---- results ------------------------------------------------------------------------------
_ids = itertools.count(1)        # numbers results in reports ("map #3")
_pool_ids = itertools.count(1)
_live_pools = weakref.WeakValueDictionary()


class ApplyResult:
    """multiprocessing.pool.AsyncResult."""

    def __init__(self, pool, callback=None, error_callback=None, what=None):
        self._pool = pool
        self._callback = callback
        self._error_callback = error_callback
        self._event = threading.Event()
        self._ok = None
        self._value = None
        self._what = what or "apply #%d" % next(_ids)

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._ok

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._ok:
            return self._value
        raise self._value

    def _set(self, task, data):
        if self._event.is_set():
            return
        ok, value = _decode(data)
        self._finish(ok, value)

    def _finish(self, ok, value):
        """Set the outcome, run the callback (on the result thread, as multiprocessing), wake
        get(). Once only."""
        with self._pool._lock:
            if self._event.is_set():
                return
            self._ok, self._value = ok, value
        try:
            if ok and self._callback is not None:
                self._callback(value)
            elif not ok and self._error_callback is not None:
                self._error_callback(value)
        except Exception:
            import traceback
            traceback.print_exc()
        self._event.set()
        self._pool._done(self)


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of map_async / starmap_async: ready when every chunk is back, or at the
    first chunk that failed (as multiprocessing)."""

    def __init__(self, pool, nchunks, callback, error_callback, what):
        super().__init__(pool, callback, error_callback, what)
        self._chunks = [None] * nchunks
        self._left = nchunks
        if nchunks == 0:
            self._finish(True, [])

    def _set(self, task, data):
        if self._event.is_set():
            return
        ok, value = _decode(data)
        if not ok:
            self._finish(False, value)
            return
        self._chunks[task.index] = value
        self._left -= 1
        if self._left == 0:
            self._finish(True, list(itertools.chain.from_iterable(self._chunks)))


class IMapIterator:
    """Results of imap (in order) or imap_unordered (as they come). The input is read on a
    thread of its own, at most max_inflight chunks ahead of the reader: endless input is fine.
    A chunk that failed raises its exception once, in its place."""

    def __init__(self, pool, ordered, what, max_inflight):
        self._pool = pool
        self._ordered = ordered
        self._what = what
        self._cond = threading.Condition(threading.Lock())
        self._ready = {}                       # chunk index -> (ok, list or exception)
        self._queue = collections.deque()      # unordered: (ok, list or exception)
        self._items = collections.deque()      # values of the chunk being read
        self._next = 0                         # ordered: next chunk index to give
        self._nchunks = None                   # known once the input ended
        self._taken = 0                        # chunks given to the reader
        self._sent = 0
        self._max = max_inflight
        self._error = None                     # of the input itself
        self._closed_early = None

    def __iter__(self):
        return self

    def _set(self, task, data):
        ok, value = _decode(data)
        with self._cond:
            if self._ordered:
                self._ready[task.index] = (ok, value)
            else:
                self._queue.append((ok, value))
            self._cond.notify_all()
        self._pool._chunk_done(self)

    def _ended(self, nchunks, error=None, closed=None):
        with self._cond:
            self._nchunks = nchunks
            self._error = error
            self._closed_early = closed
            self._cond.notify_all()
        self._pool._chunk_done(self)

    def _fail_all(self, exc):
        with self._cond:
            self._nchunks = self._nchunks if self._nchunks is not None else self._sent
            for i in range(self._next, self._sent):
                self._ready.setdefault(i, (False, exc))
            while len(self._queue) + self._taken < self._sent:
                self._queue.append((False, exc))
            self._cond.notify_all()

    def _room(self, timeout=None):
        """The feeder waits here while max_inflight chunks are out and not yet read."""
        with self._cond:
            while self._sent - self._taken >= self._max and self._pool._state != TERMINATE:
                self._cond.wait(timeout)

    def next(self, timeout=None):
        if self._items:
            return self._items.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                got = None
                if self._ordered and self._next in self._ready:
                    got = self._ready.pop(self._next)
                    self._next += 1
                elif not self._ordered and self._queue:
                    got = self._queue.popleft()
                if got is not None:
                    self._taken += 1
                    self._cond.notify_all()
                    break
                if self._nchunks is not None and self._taken >= self._nchunks:
                    err, self._error = self._error, None
                    if err is not None:
                        raise err
                    closed, self._closed_early = self._closed_early, None
                    if closed is not None:
                        raise closed
                    raise StopIteration
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)
        ok, value = got
        if not ok:
            raise value
        self._items.extend(value)
        if not self._items:
            return self.next(timeout)
        return self._items.popleft()

    __next__ = next


# ---- the pool ------------------------------------------------------------------------------
class Pool:
    """multiprocessing.Pool whose workers are the MPI ranks 1..processes of COMM_WORLD.
    processes=None: every rank but 0. maxtasksperchild and context are accepted and have no
    effect (ranks are not replaced). terminate() drops queued tasks; a task running on a rank runs to its
    end (its result is dropped)."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None):
        self._state = None
        MPI = _mpi()
        comm = MPI.COMM_WORLD
        nranks = comm.Get_size()
        if comm.Get_rank() != 0:
            serve()        # a script run on every rank: this rank is a worker from here on
        if nranks < 2:
            raise RuntimeError(
                "mproc.mpi.Pool needs at least 2 MPI ranks (rank 0 calls, ranks 1.. work); this "
                "job has %d. Run it as: mpirun -n 3 %s -m mproc.mpi SCRIPT.py"
                % (nranks, os.path.basename(sys.executable or "python3")))
        if processes is None:
            processes = nranks - 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if processes > nranks - 1:
            raise ValueError("Pool(processes=%d) needs %d MPI ranks; the job has %d (mpirun -n %d)"
                             % (processes, processes + 1, nranks, processes + 1))
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._hub = _get_hub()
        self._ranks = list(range(1, processes + 1))
        self._processes = processes
        self._id = next(_pool_ids)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0                  # results and imaps not finished
        self._results = set()
        self._init_error = None
        self._state = RUN
        _live_pools[self._id] = self
        if initializer is not None:
            blob = _core.dumps((initializer, tuple(initargs)))
            self._hub.control(("I", self._id, blob), self._ranks)

    # -- bookkeeping --------------------------------------------------------------------------
    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")
        if self._init_error is not None:
            raise self._init_error

    def _track(self, res):
        with self._lock:
            self._pending += 1
            self._results.add(res)
        return res

    def _done(self, res):
        with self._lock:
            if res in self._results:
                self._results.discard(res)
                self._pending -= 1
                self._idle.notify_all()

    def _chunk_done(self, it):
        with it._cond:
            finished = it._nchunks is not None and (
                len(it._ready) + it._next if it._ordered else len(it._queue) + it._taken
            ) >= it._nchunks
        if finished:
            self._done(it)

    def _init_failed(self, src, data):
        ok, exc = _decode(data)
        err = _core.PoolInitError("the pool's initializer failed on MPI rank %d: %s" % (src, exc))
        err.__cause__ = exc.__cause__ if isinstance(exc, BaseException) else None
        self._init_error = err
        self._fail_pending(err)

    def _fail_pending(self, err):
        self._hub.drop(self)
        with self._lock:
            pending = list(self._results)
        for res in pending:
            if isinstance(res, IMapIterator):
                res._fail_all(err)
                self._done(res)
            else:
                res._finish(False, err)

    def _task(self, owner, index, kind, fnblob, payload, fname, start, count):
        tid = self._hub.new_tid()
        return _Task(tid, owner, index, (tid, kind, fnblob, payload), fname, start, count,
                     self._processes)

    # -- apply --------------------------------------------------------------------------------
    def apply(self, func, args=(), kwds={}):
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        self._check_running()
        payload = _core.dumps((func, tuple(args), dict(kwds)))
        res = self._track(ApplyResult(self, callback, error_callback))
        self._hub.submit([self._task(res, 0, "A", None, payload, _fname(func), None, 1)])
        return res

    # -- map ----------------------------------------------------------------------------------
    def _chunksize(self, n, chunksize):
        if chunksize is None:
            chunksize, extra = divmod(n, len(self._ranks) * 4)
            if extra:
                chunksize += 1
        if chunksize < 1:
            if n == 0:
                return 1
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        return chunksize

    def _map_async(self, func, iterable, kind, chunksize, callback, error_callback):
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        n = len(iterable)
        cs = self._chunksize(n, chunksize)
        fnblob = _core.dumps(func)
        fname = _fname(func)
        what = "%s #%d" % ("starmap" if kind == "S" else "map", next(_ids))
        starts = range(0, n, cs)
        res = MapResult(self, len(starts), callback, error_callback, what)
        if not starts:
            return res
        self._track(res)
        dumps = _core.dumps
        seq = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
        # Chunks go out while the next ones are pickled: one per rank at once, then in
        # growing groups (few messages for small chunks, no wait for big ones).
        tasks, size, group = [], 0, len(self._ranks)
        for i, s in enumerate(starts):
            payload = dumps(seq[s:s + cs])
            tasks.append(self._task(res, i, kind, fnblob, payload, fname, s, min(cs, n - s)))
            size += len(payload)
            if len(tasks) >= group or size >= 1 << 18:
                self._hub.submit(tasks)
                tasks, size, group = [], 0, min(group * 2, 64)
        if tasks:
            self._hub.submit(tasks)
        return res

    def map(self, func, iterable, chunksize=None):
        return self._map_async(func, iterable, "M", chunksize, None, None).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, "M", chunksize, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        return self._map_async(func, iterable, "S", chunksize, None, None).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, "S", chunksize, callback, error_callback)

    # -- imap ---------------------------------------------------------------------------------
    def _imap(self, func, iterable, chunksize, ordered, max_inflight):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        if max_inflight is None:
            max_inflight = 8 * len(self._ranks)
        fnblob = _core.dumps(func)
        what = "%s #%d" % ("imap" if ordered else "imap_unordered", next(_ids))
        it = self._track(IMapIterator(self, ordered, what, max_inflight))
        fname = _fname(func)
        feeder = threading.Thread(target=self._feed,
                                  args=(it, iter(iterable), chunksize, fnblob, fname),
                                  name="mproc-mpi-imap-input", daemon=True)
        feeder.start()
        return it

    def _feed(self, it, source, chunksize, fnblob, fname):
        """Read the input of an imap chunk by chunk, never more than max_inflight ahead."""
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # for the main thread
        i = start = 0
        error = closed = None
        try:
            while True:
                it._room()
                if self._state == TERMINATE:
                    closed = _core.ProcessError("Pool terminated before the input of this imap "
                                                "was read to its end")
                    break
                chunk = list(itertools.islice(source, chunksize))
                if not chunk:
                    break
                task = self._task(it, i, "M", fnblob, _core.dumps(chunk), fname, start,
                                  len(chunk))
                with it._cond:
                    it._sent += 1
                self._hub.submit([task])
                i += 1
                start += len(chunk)
        except BaseException as e:
            error = e
        it._ended(i, error, closed)

    def imap(self, func, iterable, chunksize=1, *, max_inflight=None):
        return self._imap(func, iterable, chunksize, True, max_inflight)

    def imap_unordered(self, func, iterable, chunksize=1, *, max_inflight=None):
        return self._imap(func, iterable, chunksize, False, max_inflight)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self):
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self):
        if self._state is None or self._state == TERMINATE:
            return
        self._state = TERMINATE
        self._fail_pending(_core.ProcessError("Pool terminated before the task finished"))
        _live_pools.pop(self._id, None)

    def join(self):
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        with self._idle:
            while self._pending > 0 and self._state != TERMINATE:
                self._idle.wait()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __del__(self):
        if getattr(self, "_state", None) in (RUN, CLOSE):
            try:
                self.terminate()
            except Exception:
                pass

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return "<%s.%s state=%s pool_size=%d>" % (type(self).__module__, type(self).__qualname__,
                                                   self._state, self._processes)


# ---- worker ranks ---------------------------------------------------------------------------
_fn_cache = (None, None)


def _run(kind, fnblob, payload):
    """Result bytes of one task (the format of mproc's local pool)."""
    global _fn_cache
    try:
        if kind == "A":
            fn, args, kwargs = pickle.loads(payload)
            value = fn(*args, **kwargs)
        else:
            if fnblob != _fn_cache[0]:
                _fn_cache = (fnblob, pickle.loads(fnblob))
            fn = _fn_cache[1]
            items = pickle.loads(payload)
            value = [fn(*x) for x in items] if kind == "S" else [fn(x) for x in items]
        try:
            return b"\x00" + pickle.dumps(value, _core.PROTOCOL)
        except Exception as e:
            return _worker.encode_error(_core.MaybeEncodingError(e, value))
    except BaseException as e:
        return _worker.encode_error(e)


def _on_sigterm_worker(signum, frame):
    # Rank 0 reports which local ranks are gone when the job is torn down: leave it a moment
    # to see that this one is still alive, then go.
    time.sleep(0.3)
    os._exit(128 + signum)


def serve():
    """On ranks >= 1: run tasks sent by rank 0 until rank 0's program ends, then exit the
    process (SystemExit(0)). On rank 0: return at once."""
    global _serving
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    if comm.Get_rank() == 0:
        return
    if _serving:
        raise RuntimeError("mproc.mpi: a task on a worker rank cannot make an MPI pool")
    _serve_loop(comm, MPI)
    raise SystemExit(0)


def _serve_loop(comm, MPI):
    global _serving
    _serving = True
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm_worker)
    comm.send(("H", os.getpid(), socket.gethostname()), dest=0, tag=_TAG_DONE)
    todo = collections.deque()
    out = []
    busy = 0.0
    first = 0.0
    backoff = _Backoff()
    clock = time.perf_counter
    iprobe, recv, send = comm.Iprobe, comm.recv, comm.send

    def flush():
        nonlocal out, busy
        _worker._flush()
        send(("R", out, busy), dest=0, tag=_TAG_DONE)
        out = []
        busy = 0.0

    while True:
        if not todo:
            if out:
                flush()
            while not iprobe(source=0, tag=_TAG_WORK):
                backoff.sleep()
            backoff.reset()
        while iprobe(source=0, tag=_TAG_WORK):
            msg = recv(source=0, tag=_TAG_WORK)
            kind = msg[0]
            if kind == "T":
                todo.extend(msg[1])
            elif kind == "I":
                _run_initializer(comm, msg[1], msg[2])
            elif kind == "X":
                _worker._flush()
                send(("B",), dest=0, tag=_TAG_DONE)
                return
        if not todo:
            continue
        tid, kind, fnblob, payload = todo.popleft()
        t0 = clock()
        if not out:
            first = t0
        data = _run(kind, fnblob, payload)
        t1 = clock()
        busy += t1 - t0
        out.append((tid, data))
        if t1 - first >= _FLUSH_AFTER:
            flush()


def _run_initializer(comm, pool_id, blob):
    try:
        init, initargs = pickle.loads(blob)
        init(*initargs)
    except BaseException as e:
        comm.send(("E", pool_id, _worker.encode_error(e)), dest=0, tag=_TAG_DONE)
    finally:
        _worker._flush()


# ---- python3 -m mproc.mpi script.py [args] ----------------------------------------------------
_USAGE = """usage: python3 -m mproc.mpi SCRIPT.py [ARG ...]
       python3 -m mproc.mpi -m MODULE [ARG ...]
Run under mpirun (mpirun -n 3 python3 -m mproc.mpi SCRIPT.py): rank 0 runs the program, the other
ranks are the workers of its mproc.mpi pools."""


def _load_main_for_worker(target, is_module):
    """What multiprocessing's spawn does: run the program as __mp_main__ (its
    `if __name__ == "__main__"` block does not run) and alias it as __main__, so that functions
    pickled by reference as __main__.f are found."""
    import runpy
    import types
    if is_module:
        content = runpy.run_module(target, run_name="__mp_main__", alter_sys=True)
    else:
        content = runpy.run_path(target, run_name="__mp_main__")
    main = types.ModuleType("__mp_main__")
    main.__dict__.update(content)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    is_module = argv[0] == "-m"
    if is_module:
        if len(argv) < 2:
            print(_USAGE, file=sys.stderr)
            return 2
        target, args = argv[1], argv[2:]
    else:
        target, args = argv[0], argv[1:]
        if not os.path.exists(target):
            print("mproc.mpi: no such file: %s" % target, file=sys.stderr)
            return 2
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    if is_module:
        sys.argv = [target] + args
        sys.path.insert(0, os.getcwd())
    else:
        sys.argv = [target] + args
        sys.path[0] = os.path.dirname(os.path.realpath(target))
    if comm.Get_rank() != 0:
        try:
            _load_main_for_worker(target, is_module)
        except BaseException:
            import traceback
            sys.stderr.write("mproc.mpi: rank %d could not load %s (its tasks naming __main__ "
                             "will fail):\n%s" % (comm.Get_rank(), target,
                                                  traceback.format_exc()))
        _serve_loop(comm, MPI)
        return 0
    import runpy
    if is_module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target, run_name="__main__")
    return 0


if __name__ == "__main__":
    # Run as `-m mproc.mpi`, this file is __main__ and not mproc.mpi: hand over to the module
    # proper, so that the pools of the program and this launcher share one hub.
    from mproc import mpi as _self
    sys.exit(_self.main())
