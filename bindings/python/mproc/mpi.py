"""mproc's Pool across machines, over MPI: rank 0 of the job is the caller, ranks 1..N-1 are the
workers. It is mproc.Pool (same class, same C pool) with the "mpi" backend of libmproc-mpi as its
transport: same calls, results, errors, callbacks, progress, stats and lazy imap.

    mpirun -n 4 python3 -m mproc.mpi script.py [args]     # rank 0 runs script.py as __main__

or, without -m, a script run on every rank (plain `mpirun -n 4 python3 script.py`): on ranks
>= 1, Pool() (or serve()) becomes the worker loop and ends the process when rank 0's program
ends, so the code after it runs on rank 0 only. docs/mpi.md has the details.

How it runs: libmproc-mpi (loaded with ctypes; no mpi4py) starts MPI and hands its transport to
the core inside mproc._mproc. On rank 0 the transport is registered there as the "mpi" backend
and Pool makes its C pool on it; tasks travel as the local pool's pickled bytes, named by the
binding's registered trampolines ("mproc.python.task", ...). On a worker rank the same core
serves the transport and runs those names as the ctypes trampolines below, which call
mproc._worker.run_task as a local worker does.

What differs from local workers (a rank is not a child that can be killed and replaced: killing
one ends the MPI job):
  - task_timeout is enforced on the rank: a SIGALRM timer interrupts the task's Python code with
    TaskTimeoutError (per task, or per chunk of a map); code that never returns to Python (a C
    call that blocks SIGALRM or retries on EINTR) runs to its end.
  - cancel() and terminate() fail the results at once; a task already running on a rank runs to
    its end and its result is dropped.
  - one MPI pool at a time (libmproc-mpi's backend); maxtasksperchild is accepted and ignored.
  - stats(): "pid" is the rank's process (on its host), "rank" its MPI rank; "restarts" stays 0.
  - a rank that dies ends the job (Open MPI); rank 0 then prints, per worker rank, the task it
    was running (function and item) and whether it died.
"""
import atexit
import ctypes
import os
import signal
import sys
import threading
import traceback
import weakref

from . import _core
from . import _mproc
from . import _worker
from . import pool as _pool
from .pool import ApplyResult, AsyncResult, MapResult, IMapIterator, RUN  # noqa: F401

__all__ = ["Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator", "available",
           "serve", "rank", "size", "TimeoutError"]

TimeoutError = _core.TimeoutError
_SONAME = "libmproc-mpi.so.0"
_LABEL = "\x7fmproc-task:%s\x7f"   # read by libmproc-mpi's report (kLabelMark in mpi.cpp)


# ---- libmproc-mpi and the core, through ctypes ---------------------------------------------
class _Transport(ctypes.Structure):
    """mproc_transport_t (mproc/backend.h): only passed between the two libraries."""
    _fields_ = [("size", ctypes.c_size_t), ("name", ctypes.c_char_p), ("self", ctypes.c_void_p),
                ("nworkers", ctypes.c_int), ("send", ctypes.c_void_p), ("recv", ctypes.c_void_p),
                ("release", ctypes.c_void_p)]


_lock = threading.Lock()
_lib = None          # libmproc-mpi
_core_lib = None     # the core inside mproc._mproc (the one pool.py's pools live in)
_transport = None    # this rank's _Transport, after _start()
_started = False
_registered = False  # rank 0: "mpi" registered in the core
_serving = False
_finished = False


def _load():
    """libmproc-mpi: $MPROC_MPI_LIBRARY, the build tree's (mproc/_mpi_build.py, written by
    bindings/python/mpi.cmake), the installed one on the loader's path, else one in the lib
    directory of the prefix this package is installed in. ImportError says what to install."""
    global _lib, _core_lib
    if _lib is not None:
        return _lib
    paths = [os.environ.get("MPROC_MPI_LIBRARY")]
    try:
        from . import _mpi_build
        paths.append(_mpi_build.LIBRARY)
    except ImportError:
        pass
    paths.append(_SONAME)
    paths += _beside_package()
    errors = []
    for path in filter(None, paths):
        try:
            core_dep = os.path.join(os.path.dirname(path), "libmproc.so.0")
            if os.path.dirname(path) and os.path.exists(core_dep):
                ctypes.CDLL(core_dep)  # its libmproc, where the loader would not look
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise ImportError("mproc.mpi needs libmproc-mpi (Debian: apt install libmproc-mpi0; it "
                          "is built with mproc when MPI is found): " + "; ".join(errors))
    _global_libmpi()
    core = ctypes.CDLL(_mproc.__file__)  # the loaded extension itself: its core, not a copy
    for f in ("mproc_mpi_start", "mproc_mpi_transport", "mproc_mpi_finalize", "mproc_mpi_rank",
              "mproc_mpi_size", "mproc_mpi_worker_pid"):
        getattr(lib, f).restype = ctypes.c_int
    lib.mproc_mpi_start.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.mproc_mpi_transport.argtypes = [ctypes.POINTER(_Transport)]
    lib.mproc_mpi_worker_pid.argtypes = [ctypes.c_int]
    core.mproc_backend_register.argtypes = [ctypes.POINTER(_Transport)]
    core.mproc_backend_unregister.argtypes = [ctypes.c_char_p]
    core.mproc_backend_serve.argtypes = [ctypes.POINTER(_Transport), ctypes.c_int,
                                         ctypes.c_void_p]
    core.mproc_task_register.argtypes = [ctypes.c_char_p, _TASK_FN]
    core.mproc_init_register.argtypes = [ctypes.c_char_p, _TASK_FN]
    core.mproc_task_return.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    core.mproc_task_fail_bytes.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                           ctypes.c_size_t]
    core.mproc_last_error.restype = ctypes.c_char_p
    core.mproc_strerror.restype = ctypes.c_char_p
    _core_lib = core
    _lib = lib
    return lib


def _beside_package():
    """Where `cmake --install --prefix P` put libmproc-mpi relative to this package (P/lib or
    P/lib/<multiarch>, when P is not on the loader's path)."""
    import sysconfig
    out, d = [], os.path.dirname(os.path.abspath(__file__))
    while os.path.dirname(d) != d:
        d = os.path.dirname(d)
        if os.path.basename(d).startswith("lib"):
            out.append(os.path.join(d, _SONAME))
            arch = sysconfig.get_config_var("MULTIARCH")
            if arch:
                out.append(os.path.join(d, arch, _SONAME))
    return out


def _global_libmpi():
    """Make the MPI library that libmproc-mpi loaded global, as mpi4py does: Open MPI's plugins,
    opened by MPI_Init, may look for its symbols there (ctypes loaded it RTLD_LOCAL)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/libmpi.so" in line}
    except OSError:
        return
    for path in paths:
        try:
            ctypes.CDLL(path, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD | os.RTLD_NOW)
        except OSError:
            pass


def _check(rc, what):
    if rc < 0:
        detail = _core_lib.mproc_strerror(rc).decode(errors="replace")
        raise _core.MprocError("mproc.mpi: %s failed: %s" % (what, detail))
    return rc


def _start():
    """Start MPI (unless the program did, e.g. with mpi4py) and take this rank's transport;
    on rank 0 register it as the core's "mpi" backend. Once; later calls return at once."""
    global _started, _transport, _registered
    with _lock:
        if _started:
            return
        if _finished:
            raise ValueError("mproc.mpi: MPI was finalized (the program is ending)")
        lib = _load()
        _check(lib.mproc_mpi_start(None, None), "starting MPI")
        _started = True
        atexit.register(_at_exit)
        if lib.mproc_mpi_rank() == 0 and lib.mproc_mpi_size() < 2:
            return
        t = _Transport()
        _check(lib.mproc_mpi_transport(ctypes.byref(t)), "taking the MPI transport")
        _transport = t
        if lib.mproc_mpi_rank() == 0:
            _check(_core_lib.mproc_backend_register(ctypes.byref(t)), "registering the backend")
            _registered = True


def available():
    """True when libmproc-mpi loads and the job has at least 2 ranks (a Pool can be made here).
    Starts MPI (a lone process becomes a 1-rank job: False)."""
    try:
        _start()
    except (ImportError, _core.MprocError):
        return False
    return _lib.mproc_mpi_size() >= 2


def rank():
    """This process's rank in MPI_COMM_WORLD (starts MPI)."""
    _start()
    return _lib.mproc_mpi_rank()


def size():
    """The number of ranks of the job (starts MPI)."""
    _start()
    return _lib.mproc_mpi_size()


def _at_exit():
    """Rank 0: end the MPI pool, take "mpi" out of the core, release the worker ranks. A worker
    rank that never served answers rank 0's release here. Then MPI is finalized (if mproc
    started it)."""
    global _finished, _registered
    if _finished or not _started or _serving:
        return
    _finished = True
    if _registered:
        p = _current()
        if p is not None:
            try:
                p._free()
            except Exception:
                pass
        _core_lib.mproc_backend_unregister(b"mpi")
        _registered = False
    _lib.mproc_mpi_finalize()


# ---- what a task is wrapped in -------------------------------------------------------------
def _fname(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) \
        or type(fn).__qualname__
    return str(name).replace("\x7f", "?")[:80]


class _Call:
    """A task's function as sent to the ranks: its label (found in the message by rank 0's
    report) and the task timeout, armed on the rank at the first call of a task or chunk.
    Without a timeout the rank unpickles the bare function: no extra call per item."""
    __slots__ = ("label", "timeout", "fn")

    def __init__(self, label, timeout, fn):
        self.label = label      # first: it lands near the start of the pickled message
        self.timeout = timeout
        self.fn = fn

    def __reduce__(self):
        return (_call, (self.label, self.timeout, self.fn))

    def __call__(self, *args, **kwargs):
        if self.timeout and _in_task and not _armed:
            _arm(self.timeout)
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return repr(self.fn)


def _call(label, timeout, fn):
    return _Call(label, timeout, fn) if timeout else fn


# ---- the pool (rank 0) ---------------------------------------------------------------------
_pool_ref = None


def _current():
    return _pool_ref() if _pool_ref is not None else None


class Pool(_pool.Pool):
    """mproc.Pool whose workers are the MPI ranks 1..processes (processes=None: every rank but
    0). Made on a worker rank, it serves rank 0 instead and ends the process (see serve()).
    task_timeout interrupts a task on its rank (see the module's doc); maxtasksperchild and
    context are accepted and have no effect."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, task_timeout=None, backend=None):
        self._state = None
        self._h = None
        if backend not in (None, "mpi"):
            raise ValueError("mproc.mpi.Pool runs on the 'mpi' backend, not %r" % (backend,))
        _start()
        if _lib.mproc_mpi_rank() != 0:
            serve()        # a script run on every rank: this rank is a worker from here on
        nranks = _lib.mproc_mpi_size()
        if nranks < 2:
            raise RuntimeError(
                "mproc.mpi.Pool needs at least 2 MPI ranks (rank 0 calls, ranks 1.. work); this "
                "job has %d. Run it as: mpirun -n 3 %s -m mproc.mpi SCRIPT.py"
                % (nranks, os.path.basename(sys.executable or "python3")))
        if processes is None:
            processes = nranks - 1
        if isinstance(processes, int) and processes > nranks - 1:
            raise ValueError("Pool(processes=%d) needs %d MPI ranks; the job has %d (mpirun -n %d)"
                             % (processes, processes + 1, nranks, processes + 1))
        self._task_timeout = task_timeout
        super().__init__(processes, initializer, initargs, maxtasksperchild, context,
                         task_timeout=task_timeout)

    def _new_handle(self, processes, initializer, initargs, maxtasksperchild, context,
                    task_timeout):
        global _pool_ref
        prev = _current()
        if prev is not None and prev._h is not None:
            if prev._state == RUN:
                raise RuntimeError("an mproc.mpi pool is open already (one MPI pool at a time): "
                                   "close and join it, or terminate it, first")
            _mproc.py_pool_join(prev._h, -1.0)  # closed: its work ends first; then "mpi" is free
        init = b"" if initializer is None else b"P" + _core.dumps((initializer, tuple(initargs)))
        h = _mproc.py_pool_new(processes, 0, 0, 0.0, init, "mpi")
        _pool_ref = weakref.ref(self)
        return h

    def _wrap(self, func, task_timeout):
        t = task_timeout or self._task_timeout  # None or 0: the pool's, as the local pool
        if t is not None and not t > 0:
            raise ValueError("task_timeout must be positive or None")
        return _Call(_LABEL % _fname(func), float(t or 0.0), func)

    def apply(self, func, args=(), kwds={}, *, task_timeout=None):
        return super().apply(self._wrap(func, task_timeout), args, kwds)

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None, *,
                    task_timeout=None):
        return super().apply_async(self._wrap(func, task_timeout), args, kwds, callback,
                                   error_callback)

    def _map_async(self, func, iterable, star, chunksize, callback, error_callback, task_timeout,
                   progress=False):
        return super()._map_async(self._wrap(func, task_timeout), iterable, star, chunksize,
                                  callback, error_callback, None, progress)

    def _imap(self, func, iterable, chunksize, ordered, task_timeout, max_inflight, progress):
        return super()._imap(self._wrap(func, task_timeout), iterable, chunksize, ordered, None,
                             max_inflight, progress)

    def terminate(self):
        """Fail what is pending now (tasks running on ranks run to their end, unseen) and wait
        until the pool has let go of the ranks, so that the next pool can have them."""
        super().terminate()
        if self._h is not None:
            _mproc.py_pool_join(self._h, -1.0)

    def stats(self):
        """Per worker rank: pid (on the rank's host), rank, tasks (chunks) done, busy seconds,
        restarts (0) and last_exit (None: a rank is never replaced)."""
        out = super().stats()
        for i, s in enumerate(out):
            s["pid"] = max(_lib.mproc_mpi_worker_pid(i), 0)
            s["rank"] = i + 1
            s["last_exit"] = None
        return out


# ---- worker ranks --------------------------------------------------------------------------
_TASK_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p)
_in_task = False
_armed = False


def _arm(seconds):
    global _armed
    _armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _on_alarm(signum, frame):
    if _in_task and _armed:
        raise _core.TaskTimeoutError(
            "the task ran longer than its task_timeout on MPI rank %d and was interrupted"
            % _lib.mproc_mpi_rank())


def _run(ctx, arg, n, fail_bytes):
    """One task on this rank: the local worker's run_task on the bytes, its result handed to the
    core; a Python exception is the task's failure (its bytes, when fail_bytes)."""
    global _in_task, _armed
    try:
        data = ctypes.string_at(arg, n) if n else b""
        _in_task, _armed = True, False
        try:
            out = _worker.run_task(data)
        except BaseException as e:  # the alarm can land just after the task's own code
            out = _worker.encode_error(e)
        finally:
            _in_task = False
            if _armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                _armed = False
        if fail_bytes and out[:1] == b"\x01":
            return _core_lib.mproc_task_fail_bytes(ctx, _core.E.ETASKFAILED, out, len(out))
        return _core_lib.mproc_task_return(ctx, out, len(out))
    except BaseException as e:  # never let an exception out of a ctypes callback
        text = ("".join(traceback.format_exception(type(e), e, e.__traceback__))).encode()
        return _core_lib.mproc_task_fail_bytes(ctx, _core.E.ETASKFAILED, text, len(text))


def _task(ctx, arg, n, payload):
    return _run(ctx, arg, n, True)


def _task_apply(ctx, arg, n, payload):
    return _run(ctx, arg, n, False)


def _pool_init(ctx, arg, n, payload):
    """A pool starts on this rank: run its initializer (b"P" + pickle((init, args))) if any."""
    try:
        data = ctypes.string_at(arg, n) if n else b""
        if data[:1] == b"P":
            init, initargs = _core.loads(data[1:])
            try:
                init(*initargs)
            finally:
                _core._flush_std_streams()
        return 0
    except BaseException as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__)).encode()
        _core_lib.mproc_task_fail(ctypes.c_void_p(ctx), ctypes.c_int(_core.E.EINITFAILED), b"%s",
                                  ctypes.c_char_p(text))
        return _core.E.EINITFAILED


_TRAMPOLINES = ((b"mproc.python.pool_init", _TASK_FN(_pool_init)),
                (b"mproc.python.task", _TASK_FN(_task)),
                (b"mproc.python.task_apply", _TASK_FN(_task_apply)))


def serve():
    """On ranks >= 1: run tasks sent by rank 0 until rank 0's program ends, then exit the
    process (SystemExit(0)). On rank 0: return at once."""
    global _serving
    _start()
    if _lib.mproc_mpi_rank() == 0:
        return
    if _serving:
        raise RuntimeError("mproc.mpi: a task on a worker rank cannot make an MPI pool")
    _serving = True
    core = _core_lib
    for name, fn in _TRAMPOLINES:
        reg = core.mproc_init_register if name.endswith(b"init") else core.mproc_task_register
        _check(reg(name, fn), "registering %s" % name.decode())
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, _on_alarm)
    # The GIL is released while the core waits for tasks (a ctypes call): the trampolines take it.
    rc = core.mproc_backend_serve(ctypes.byref(_transport), _lib.mproc_mpi_rank() - 1, None)
    if rc < 0:
        sys.stderr.write("mproc.mpi: worker rank %d: %s\n"
                         % (_lib.mproc_mpi_rank(), core.mproc_last_error().decode(errors="replace")))
    _lib.mproc_mpi_finalize()
    _core._flush_std_streams()
    raise SystemExit(0 if rc >= 0 else 1)


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
    _start()  # on every rank at once: MPI starts together
    sys.argv = [target] + args
    if is_module:
        sys.path.insert(0, os.getcwd())
    else:
        sys.path[0] = os.path.dirname(os.path.realpath(target))
    if _lib.mproc_mpi_rank() != 0:
        try:
            _load_main_for_worker(target, is_module)
        except BaseException:
            sys.stderr.write("mproc.mpi: rank %d could not load %s (its tasks naming __main__ "
                             "will fail):\n%s" % (_lib.mproc_mpi_rank(), target,
                                                  traceback.format_exc()))
        serve()
        return 0
    import runpy
    if is_module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(target, run_name="__main__")
    return 0


if __name__ == "__main__":
    # Run as `-m mproc.mpi`, this file is __main__ and not mproc.mpi: hand over to the module
    # proper, so that the program's pools and this launcher share one state.
    from mproc import mpi as _self
    sys.exit(_self.main())
