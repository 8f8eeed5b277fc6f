"""mproc: a drop-in for Python's multiprocessing on the mproc native runtime.

    import mproc as multiprocessing

Processes, pools, queues, pipes, locks and shared values with multiprocessing's names and
exceptions; beyond it: a pool worker that dies fails only its task (WorkerDiedError), per-task
timeouts (Pool(task_timeout=...)), Pool.stats(), atomic integer operations on Value, and a lock
whose holder died raises OwnerDeadError to the next owner instead of deadlocking.
"""
import atexit as _atexit

from . import _core
from . import _mproc
from . import context as _context
from .process import Process, current_process, parent_process, active_children
from ._core import (ProcessError, BufferTooShort, TimeoutError, AuthenticationError,
                    WorkerDiedError, TaskTimeoutError, OwnerDeadError, PoolInitError, MprocError,
                    RemoteTraceback)

__version__ = _mproc.mproc_version_string()

_ctx = _context._default_context
cpu_count = _ctx.cpu_count
get_context = _ctx.get_context
get_start_method = _ctx.get_start_method
set_start_method = _ctx.set_start_method
get_all_start_methods = _ctx.get_all_start_methods
freeze_support = _ctx.freeze_support
set_executable = _ctx.set_executable
set_forkserver_preload = _ctx.set_forkserver_preload
allow_connection_pickling = _ctx.allow_connection_pickling
log_to_stderr = _ctx.log_to_stderr
get_logger = _ctx.get_logger
Manager = _ctx.Manager

# multiprocessing.__all__, then mproc's own names.
__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort",
    "Condition", "Event", "JoinableQueue", "Lock", "Manager", "Pipe", "Pool", "Process",
    "ProcessError", "Queue", "RLock", "RawArray", "RawValue", "Semaphore", "SimpleQueue",
    "TimeoutError", "Value", "active_children", "allow_connection_pickling", "cpu_count",
    "current_process", "freeze_support", "get_all_start_methods", "get_context", "get_logger",
    "get_start_method", "log_to_stderr", "parent_process", "reducer", "set_executable",
    "set_forkserver_preload", "set_start_method",
    "WorkerDiedError", "TaskTimeoutError", "OwnerDeadError", "PoolInitError",
    "ProcessPoolExecutor",
]

# The standard module's send_handle/recv_handle learn mproc's Connections (see reduction.py).
from . import reduction as _reduction  # noqa: E402

try:  # queues, pipes, locks and shared memory: present when the core has them
    from ._ipc_exports import *  # noqa: F401,F403
    from ._ipc_exports import __all__ as _ipc_all
    __all__ += [n for n in _ipc_all if n not in __all__]
except ImportError as _e:  # pragma: no cover
    if getattr(_e, "name", None) != __name__ + "._ipc_exports":
        raise


def __getattr__(name):
    # Pools and executors are imported on first use: a spawned child starts faster without them.
    import importlib
    if name == "Pool":
        return importlib.import_module(__name__ + ".pool").Pool
    if name == "reducer":  # multiprocessing.reducer: the context's reduction module
        return _ctx.reducer
    if name in ("util", "managers", "dummy", "heap", "reduction", "pool", "spawn"):
        return importlib.import_module(__name__ + "." + name)
    if name in ("ProcessPoolExecutor", "futures"):
        futures = importlib.import_module(__name__ + ".futures")
        return futures if name == "futures" else futures.ProcessPoolExecutor
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _exit_function():
    """At exit, as multiprocessing: pools terminated, daemonic children terminated, the other
    children joined; then the runtime is shut down (forkserver, supervisor)."""
    import sys
    from . import process
    pool = sys.modules.get(__name__ + ".pool")
    if pool is not None:
        pool._terminate_all()
    process._exit_children()
    _mproc.mproc_shutdown()


_atexit.register(_exit_function)
