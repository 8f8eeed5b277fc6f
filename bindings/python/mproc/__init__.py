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

__all__ = [
    "Process", "current_process", "parent_process", "active_children", "cpu_count",
    "get_context", "get_start_method", "set_start_method", "get_all_start_methods", "Pool",
    "ProcessError", "BufferTooShort", "TimeoutError", "AuthenticationError", "WorkerDiedError",
    "TaskTimeoutError", "OwnerDeadError", "PoolInitError", "freeze_support", "Manager",
    "ProcessPoolExecutor",
]

try:  # queues, pipes, locks and shared memory: present when the core has them
    from ._ipc_exports import *  # noqa: F401,F403
    from ._ipc_exports import __all__ as _ipc_all
    __all__ += _ipc_all
except ImportError as _e:  # pragma: no cover
    if getattr(_e, "name", None) != __name__ + "._ipc_exports":
        raise


def __getattr__(name):
    # Pools and executors are imported on first use: a spawned child starts faster without them.
    import importlib
    if name == "Pool":
        return importlib.import_module(__name__ + ".pool").Pool
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
