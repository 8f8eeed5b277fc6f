"""Private glue between the C ABI (_mproc) and the package: exceptions, error codes, pickling."""
import multiprocessing as _std
import os
import pickle
import queue as _queue
import sys
import threading as _threading

from . import _mproc

# ---- exceptions ------------------------------------------------------------------------------
# The standard library's classes, so that `except multiprocessing.TimeoutError` catches ours.
ProcessError = _std.ProcessError
BufferTooShort = _std.BufferTooShort
TimeoutError = _std.TimeoutError
AuthenticationError = _std.AuthenticationError


class MprocError(RuntimeError):
    """An mproc call failed; `mproc_code` is its MPROC_E* code."""


class WorkerDiedError(ProcessError):
    """The pool worker running the task died (killed, crashed or os._exit) before finishing it."""


class TaskTimeoutError(TimeoutError):
    """The task ran longer than its task_timeout; its worker was killed and replaced."""


class OwnerDeadError(MprocError):
    """The previous holder of the lock died holding it. The caller now holds the lock: repair the
    protected state, then release it as usual."""


class PoolInitError(ProcessError):
    """The pool's initializer failed in a worker: the pool accepts no more work."""


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in another process (the __cause__)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


CODES = _mproc.py_error_codes()
E = type("E", (), {k[len("MPROC_"):]: v for k, v in CODES.items()})

_ERRMAP = {
    E.ETIMEDOUT: TimeoutError,
    E.EWORKERDIED: WorkerDiedError,
    E.EOWNERDEAD: OwnerDeadError,
    E.EEMPTY: _queue.Empty,
    E.EFULL: _queue.Full,
    E.EBROKEN: _threading.BrokenBarrierError,
    E.EINITFAILED: PoolInitError,
    E.EINVAL: ValueError,
    E.ERANGE: ValueError,
    E.ENOMEM: MemoryError,
    E.EINTR: InterruptedError,
    E.EEXIST: FileExistsError,
    E.ENOENT: FileNotFoundError,
    E.EACCES: PermissionError,
    E.EPERM: PermissionError,
    E.EPIPE: BrokenPipeError,
    E.ECANCELED: _std.ProcessError,
}
_mproc.py_set_error_map(_ERRMAP, MprocError)

# The forkserver's children run Python: it must be forked by a thread holding the GIL, which
# the core cannot do by itself. _mproc restarts it (fork hooks applied) when a start finds it gone.
_mproc.mproc_set_forkserver_autorestart(0)


def code_of(exc):
    return getattr(exc, "mproc_code", 0)


def __getattr__(name):
    # Imported on first use: a spawned child starts faster without multiprocessing.pool.
    if name == "MaybeEncodingError":  # a result that cannot be pickled
        from multiprocessing.pool import MaybeEncodingError
        return MaybeEncodingError
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# ---- pickling --------------------------------------------------------------------------------
_cloudpickle = False  # not imported yet (it costs a spawned child ~25 ms): see _cloudpickle_mod


def _cloudpickle_mod():
    """Debian's python3-cloudpickle, for lambdas, closures and functions of __main__, or None."""
    global _cloudpickle
    if _cloudpickle is False:
        try:
            import cloudpickle
            _cloudpickle = cloudpickle
        except ImportError:  # pragma: no cover - depends on the machine
            _cloudpickle = None
    return _cloudpickle

PROTOCOL = pickle.HIGHEST_PROTOCOL
loads = pickle.loads


def dumps(obj):
    """pickle.dumps, falling back to cloudpickle for what plain pickle refuses (lambdas,
    closures, nested functions). When neither can, the exception is of plain pickle's type (as
    the standard library raises: TypeError for a lock, AttributeError for a local function) and
    a PicklingError, its message first, then which object could not be sent."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        if _cloudpickle_mod() is None:
            raise _pickle_error(e, obj, " (install python3-cloudpickle to send lambdas and "
                                        "closures)") from e
        try:
            return _cloudpickle.dumps(obj, PROTOCOL)
        except Exception as e2:
            raise _pickle_error(e, obj, "") from e2


class UnpicklableTypeError(TypeError, pickle.PicklingError):
    """An object pickle refuses with TypeError (a lock, a socket): the standard library raises
    TypeError; a PicklingError too, as mproc raised before."""


class UnpicklableAttributeError(AttributeError, pickle.PicklingError):
    """A function pickle cannot find by name (a local one): AttributeError, as the standard
    library raises; a PicklingError too."""


_PICKLE_ERRORS = {TypeError: UnpicklableTypeError, AttributeError: UnpicklableAttributeError}


def _pickle_error(e, obj, hint):
    what = repr(obj)
    if len(what) > 200:
        what = what[:200] + "..."
    msg = "%s (sending %s to another process)%s" % (e, what, hint)
    return _PICKLE_ERRORS.get(type(e), pickle.PicklingError)(msg)


# Start methods: names as Python's, values the C core's mproc_start_method_t. Taken from the C
# enum (MPROC_START_<NAME>, DEFAULT aside), so that a method added there is known here.
METHODS = dict(sorted(((k[len("MPROC_START_"):].lower(), v) for k, v in vars(_mproc).items()
                      if k.startswith("MPROC_START_") and k != "MPROC_START_DEFAULT"),
                     key=lambda kv: kv[1]))


def pid_alive(pid):
    """True while a process of that pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _flush_std_streams():
    for s in (sys.stdout, sys.stderr):
        try:
            if s is not None:
                s.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _fix_std_streams():
    """A forkserver child has only fds 0-2 of the helper: streams of the program that wrapped
    other fds (a test runner's capture) are rebound to fds 1 and 2."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        s = getattr(sys, name)
        try:
            os.fstat(s.fileno())
            continue
        except Exception:
            pass
        try:
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))
        except OSError:
            pass
