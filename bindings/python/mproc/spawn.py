"""The 'spawn' start method (multiprocessing.spawn): a fresh interpreter runs the process.

The parent execs sys.executable (or set_executable's) through the C core's spawn start method,
so the child is supervised as any other (exit codes, signals, daemons). The child runs
spawn_main(), whose guard receives from the parent the standard library's preparation data
(sys.path, cwd, argv, the main module, which is imported as __mp_main__) and the pickled
process object, then runs it as the standard library's spawn does.
"""
import io
import os
import pickle
import sys

from . import _core
from . import _mproc

__all__ = ["get_executable", "set_executable", "spawn_main", "freeze_support", "is_forking"]

_executable = None
_FROZEN_FLAG = "--mproc-spawn"


def set_executable(exe):
    global _executable
    _executable = os.fsdecode(exe) if exe is not None else None


def get_executable():
    return _executable or sys.executable


def is_forking(argv):
    """True when argv is the command line of a spawned child of a frozen program."""
    return len(argv) >= 2 and argv[1] == _FROZEN_FLAG


def freeze_support():
    """In a frozen program (sys.frozen), run the spawned child's process and exit; elsewhere
    nothing, as multiprocessing.freeze_support."""
    if getattr(sys, "frozen", False) and is_forking(sys.argv):
        spawn_main()
        sys.exit(1)  # not reached: spawn_main exits


def _command_line():
    if getattr(sys, "frozen", False):
        return [get_executable(), _FROZEN_FLAG]
    import multiprocessing.util as util
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.path.insert(0, %r); from mproc.spawn import spawn_main; "
            "spawn_main()" % pkg_parent)
    return [get_executable()] + util._args_from_interpreter_flags() + ["-c", code]


class _Spawning:
    """Stands for the standard library's Popen object while a process is pickled: collects the
    fds the child gets at the same numbers (a Connection's), as popen_spawn_posix does."""

    def __init__(self, fds):
        self.fds = fds  # None: nothing can be passed (a pool's workers)

    @staticmethod
    def DupFd(fd):
        # The child gets the fd at the same number (popen_spawn_posix._DupFd).
        from multiprocessing.popen_spawn_posix import _DupFd
        return _DupFd(fd)

    def duplicate_for_child(self, fd):
        if self.fds is None:
            raise TypeError("a Pipe connection cannot be passed to a pool's spawned workers")
        self.fds.append(fd)
        return fd


class _ForkingPickler(pickle.Pickler):
    """pickle with the standard library's ForkingPickler reducers as well (its Connection,
    socket and the like are registered there only): what a child's start sends."""
    from multiprocessing.reduction import ForkingPickler as _fp
    import collections as _collections
    import copyreg as _copyreg
    dispatch_table = _collections.ChainMap(_fp._extra_reducers, _copyreg.dispatch_table)
    del _fp, _collections, _copyreg


def dumps_for_child(obj):
    """The bytes of obj for a child's start (forkserver, spawn): the standard library's reducers
    apply (a standard Connection's fd is passed, not its number copied); _core.dumps
    (cloudpickle for lambdas and closures) when plain pickle cannot."""
    buf = io.BytesIO()
    try:
        _ForkingPickler(buf, _core.PROTOCOL).dump(obj)
    except (pickle.PicklingError, AttributeError, TypeError):
        return _core.dumps(obj)
    return buf.getvalue()


def _preparation(name, *objs, fds=None):
    """The standard library's preparation data, then each object pickled, as one byte string;
    the fds to pass are appended to `fds`."""
    from multiprocessing import context as std_context
    from multiprocessing import spawn as std_spawn
    buf = io.BytesIO()
    # While it is set, the standard library's objects (its authkey) agree to be pickled.
    std_context.set_spawning_popen(_Spawning(fds))
    try:
        pickle.dump(std_spawn.get_preparation_data(name), buf, _core.PROTOCOL)
        for obj in objs:
            buf.write(dumps_for_child(obj))
    finally:
        std_context.set_spawning_popen(None)
    return buf.getvalue()


def _prepare_child(f):
    """In the child: read the preparation data from file f and apply it (sys.path, cwd, argv,
    the main module as __mp_main__)."""
    from multiprocessing import process as std_process
    from multiprocessing import spawn as std_spawn
    os.environ.pop("MPROC_SPAWN_FD", None)  # unset in C already; os.environ has its own copy
    std_current = std_process.current_process()
    std_current._inheriting = True  # a main module that starts processes unguarded fails
    try:
        std_spawn.prepare(pickle.load(f))
    finally:
        del std_current._inheriting
    _core._fix_std_streams()


def new_process(proc):
    """A C process handle (not started) that will run `proc` in a fresh interpreter."""
    fds = []
    arg = _preparation(proc._name, proc, fds=fds)
    return _mproc.py_spawn_process_new(arg, proc._name[:255], int(proc._daemonic), _command_line(),
                                    sorted(set(fds)))


def pool_init_bytes(initializer, initargs):
    """The pool's initializer bytes for spawned workers (read by _worker.init_worker)."""
    objs = () if initializer is None else ((initializer, tuple(initargs)),)
    return b"S" + _preparation("PoolWorker", *objs)


def new_pool(processes, code, maxtasksperchild, task_timeout, init):
    """_mproc.py_pool_new for spawned workers (same arguments)."""
    return _mproc.py_spawn_pool_new(processes, maxtasksperchild, task_timeout, init, _command_line())


def start(handle):
    _mproc.py_spawn_process_start(handle)


def spawn_main():
    """Entry point of a spawned interpreter: receive the process from the parent and run it.
    Does nothing in an interpreter that mproc did not spawn."""
    _mproc.py_spawn_guard()


def _child_main(arg):
    """Called by the C guard with the parent's bytes; returns the exit code."""
    try:
        f = io.BytesIO(arg)
        _prepare_child(f)
        proc = pickle.load(f)
    except BaseException:
        import traceback
        traceback.print_exc()
        _core._flush_std_streams()
        return 1
    code = proc._bootstrap()
    try:
        import atexit
        atexit._run_exitfuncs()  # as the interpreter's exit in the standard library's child
    except Exception:
        pass
    return code
