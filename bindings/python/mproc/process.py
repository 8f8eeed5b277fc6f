"""Processes: multiprocessing.Process and friends on mproc_process_*."""
import itertools
import os
import signal
import sys
import threading
import weakref
from multiprocessing import context as _std_context
from multiprocessing import process as _std_process

from . import _core
from . import _mproc
from . import _start

__all__ = ["Process", "current_process", "parent_process", "active_children"]

# Objects of processes being started with fork: the child finds itself here (its memory is a copy
# of the parent's at the fork), so fork needs no pickling, as in Python.
_forking = {}
_children = set()
_counter = itertools.count(1)


def _default_method():
    return _start._default_method()


class _Popen:
    """Stands for the standard library's Popen object (`Process._popen`), so that the standard
    BaseProcess's methods called on an mproc process (multiprocessing.Process.kill(p)) work."""

    def __init__(self, proc):
        self._proc = proc

    @property
    def pid(self):
        return self._proc._pid

    @property
    def sentinel(self):
        return self._proc.sentinel

    @property
    def returncode(self):
        return self.poll()

    def poll(self, flag=None):
        return self._proc.exitcode

    def wait(self, timeout=None):
        self._proc.join(timeout)
        return self._proc.exitcode

    def terminate(self):
        self._proc.terminate()

    def kill(self):
        self._proc.kill()

    def close(self):
        self._proc._free_handle()


class BaseProcess(_std_process.BaseProcess):
    """multiprocessing.Process: run `target(*args, **kwargs)` (or an overridden run()) in a child.
    A subclass of the standard library's BaseProcess (isinstance checks, its methods called on
    it), with the standard attributes (_identity, _config, _parent_pid, _popen, _target...)."""

    _start_method = None  # None: the context's default

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={}, *, daemon=None):
        assert group is None, "group argument must be None for now"
        count = next(_counter)
        self._identity = _current_process._identity + (count,)
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or type(self).__name__ + "-" + ":".join(str(i) for i in self._identity)
        self._daemonic = _current_process.daemon if daemon is None else bool(daemon)
        self._handle = None
        self._pid = None
        self._closed = False
        self._exitcode = None
        self._child_self = False
        self._authkey = bytes(_current_process.authkey)
        self._config = {"semprefix": "/mp"}  # the standard SemLock names use it

    def run(self):
        if self._target:
            self._target(*self._args, **self._kwargs)

    @property
    def _popen(self):
        return None if self._handle is None else _Popen(self)

    @_popen.setter
    def _popen(self, value):
        if value is not None:
            raise AttributeError("_popen of an mproc process is set by start()")
        self._free_handle()

    @property
    def authkey(self):
        return _std_process.AuthenticationString(self._authkey)

    @authkey.setter
    def authkey(self, authkey):
        self._authkey = bytes(authkey)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        self._check_closed()
        assert self._handle is None and not self._child_self, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), \
            "can only start a process object created by current process"
        _cleanup()
        method = self._start_method or _start._default_method()
        code = _start._prepare(method)
        key = None
        if code == _core.METHODS["spawn"]:
            from . import spawn
            new, start = (lambda: spawn.new_process(self)), spawn.start
        else:
            if code == _core.METHODS["fork"]:
                key = id(self)
                arg = b"F" + key.to_bytes(8, "little")
                _forking[key] = self
            else:
                arg = b"P" + _forkserver_dumps(self)
            new = lambda: _mproc.py_process_new(arg, self._name[:255], int(self._daemonic), code)
            start = _mproc.py_process_start
        try:
            h = new()
            try:
                start(h)
            except BaseException:
                _mproc.mproc_process_free(h)
                raise
        finally:
            if key is not None:
                _forking.pop(key, None)
        self._handle = h
        self._pid = _mproc.mproc_process_pid(h)
        _children.add(self)
        # As the standard library: the child has them; the parent drops them (a target that
        # refers to the process object makes no cycle, and a weakref to the target dies).
        del self._target, self._args, self._kwargs

    def join(self, timeout=None):
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        assert self._handle is not None, "can only join a started process"
        if not _mproc.py_process_join(self._handle, -1.0 if timeout is None else max(0.0, timeout)):
            return
        _children.discard(self)

    def is_alive(self):
        self._check_closed()
        if self._child_self:
            return True
        assert self._parent_pid == os.getpid(), "can only test a child process"
        if self._handle is None:
            return False
        alive = bool(_mproc.mproc_process_is_alive(self._handle))
        if not alive:
            _children.discard(self)
        return alive

    def terminate(self):
        self._check_closed()
        if self._handle is not None:
            _mproc.mproc_process_terminate(self._handle)

    def kill(self):
        self._check_closed()
        if self._handle is not None:
            _mproc.mproc_process_kill(self._handle)

    def close(self):
        if self._closed:
            return
        if self._handle is not None:
            if _mproc.mproc_process_is_alive(self._handle):
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            self._free_handle()
        _children.discard(self)
        self._closed = True

    def _free_handle(self):
        if self._handle is not None:
            self._exitcode = self.exitcode
            h, self._handle = self._handle, None
            _mproc.mproc_process_free(h)

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    # -- attributes ------------------------------------------------------------------------
    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        assert isinstance(name, str), "name must be a string"
        self._name = name

    @property
    def daemon(self):
        return self._daemonic

    @daemon.setter
    def daemon(self, daemonic):
        assert self._handle is None, "process has already started"
        self._daemonic = bool(daemonic)

    @property
    def pid(self):
        if self._child_self:
            return os.getpid()
        return self._pid

    ident = pid

    @property
    def exitcode(self):
        self._check_closed()
        if self._handle is None:
            return self._exitcode
        try:
            return _mproc.mproc_process_exitcode(self._handle)
        except _core.MprocError as e:
            if _core.code_of(e) in (_core.E.ERUNNING, _core.E.ENOTSTARTED):
                return None
            raise

    @property
    def sentinel(self):
        self._check_closed()
        if self._handle is None:
            raise ValueError("process not started")
        return _mproc.mproc_process_sentinel(self._handle)

    def __repr__(self):
        # The standard library's form: pid= only in the parent of a started process.
        exitcode = None
        if self is _current_process:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._handle is None:
            status = "initial"
        else:
            exitcode = self.exitcode
            status = "started" if exitcode is None else "stopped"
        info = [type(self).__name__, "name=%r" % self._name]
        if self._handle is not None:
            info.append("pid=%s" % self._pid)
        info.append("parent=%s" % self._parent_pid)
        info.append(status)
        if exitcode is not None:
            info.append("exitcode=%s" % _std_process._exitcode_to_name.get(exitcode, exitcode))
        if self._daemonic:
            info.append("daemon")
        return "<%s>" % " ".join(info)

    # -- pickling (forkserver/spawn children get a copy without the parent's handle) ---------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def __del__(self):
        h = getattr(self, "_handle", None)
        if h is None or _mproc is None:
            return
        try:
            if not _mproc.mproc_process_is_alive(h):
                _mproc.mproc_process_free(h)
        except Exception:
            pass

    # -- in the child ----------------------------------------------------------------------
    def _bootstrap(self):
        global _current_process, _parent_process, _children, _counter
        exitcode = 1
        try:
            _children = set()
            _counter = itertools.count(1)
            _parent_process = _ParentProcess(self._parent_name, self._parent_pid)
            _current_process = self
            self._handle = None  # the parent's, not ours
            self._child_self = True
            _std_state(self, _parent_process)
            try:
                if sys.stdin is not None:
                    sys.stdin.close()
                    sys.stdin = open(os.devnull)
            except (OSError, ValueError):
                pass
            try:
                self.run()
                exitcode = 0
            finally:
                _exit_children()
                _std_exit()
        except SystemExit as e:
            if e.code is None:
                exitcode = 0
            elif isinstance(e.code, int):
                exitcode = e.code
            else:
                sys.stderr.write(str(e.code) + "\n")
                exitcode = 1
        except BaseException:
            exitcode = 1
            import traceback
            sys.stderr.write("Process %s:\n" % self.name)
            traceback.print_exc()
        finally:
            try:
                threading._shutdown()
            except Exception:
                pass
            _flush_std_streams()
        return exitcode




class Process(BaseProcess, _std_context.Process):
    """A subclass of multiprocessing.Process too (isinstance(p, multiprocessing.Process))."""
    _start_method = None


class _ForkserverSpawning:
    """Stands for the standard library's Popen while a forkserver child's process object is
    pickled: the standard library's objects agree to be pickled (a Queue, an authkey), and an fd
    they hold (a standard Connection's, through DupFd) goes through the standard resource
    sharer, as when the standard library pickles one outside a start. The forkserver's request
    carries no fds, so an fd asked for without DupFd (an mproc Pipe connection, which needs its
    fds at the same numbers) is refused after the pickling (TypeError)."""

    def __init__(self):
        self.unshared = []

    def duplicate_for_child(self, fd):
        self.unshared.append(fd)
        return fd

    def DupFd(self, fd):
        from multiprocessing import resource_sharer
        self.unshared.remove(fd)
        return resource_sharer.DupFd(fd)


def _forkserver_dumps(obj):
    from .spawn import dumps_for_child
    popen = _ForkserverSpawning()
    _std_context.set_spawning_popen(popen)
    try:
        data = dumps_for_child(obj)
    finally:
        _std_context.set_spawning_popen(None)
    if popen.unshared:
        raise TypeError("a Pipe connection cannot be passed to a forkserver child (its fds "
                        "cannot go with the request): use a Queue, or the fork or spawn method")
    return data


def _std_state(current, parent):
    """The standard module's view of this process, as its own children set it: current and
    parent process (logging's processName, libraries that ask multiprocessing), no children of
    the parent's, and the main thread's native id."""
    _std_process._current_process = current
    _std_process._parent_process = parent
    _std_process._children = set()
    _std_process._process_counter = itertools.count(1)
    main = threading.main_thread()
    if threading.current_thread() is main and hasattr(main, "_set_native_id"):
        main._set_native_id()


def _std_exit():
    """What the standard library's child runs after run(): its finalizers (a Manager started in
    this child is shut down) and its children joined. The child leaves with _exit() later, so
    atexit handlers do not run this."""
    try:
        import multiprocessing.util as util
        util._exit_function()
    except Exception:
        pass


# In _core: spawn's child calls them too.
_flush_std_streams = _core._flush_std_streams
_fix_std_streams = _core._fix_std_streams


def _child_main(arg):
    """Entry point of a child (called by the C trampoline after PyOS_AfterFork_Child)."""
    try:
        _std_after_fork()
        if arg[:1] == b"F":
            obj = _forking[int.from_bytes(arg[1:9], "little")]
        else:
            _fix_std_streams()
            obj = _core.loads(arg[1:])
        _forking.clear()
    except BaseException:
        import traceback
        traceback.print_exc()
        _flush_std_streams()
        return 1
    return obj._bootstrap()


class _MainProcess(BaseProcess):
    def __init__(self):
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None
        self._daemonic = False
        self._handle = None
        self._pid = None
        self._closed = False
        self._exitcode = None
        self._child_self = True
        self._target = None
        self._config = {"semprefix": "/mp"}
        # The standard library's key: a Listener/Client or Manager of either module agrees.
        self._authkey = bytes(_std_process.current_process().authkey)

    @property
    def authkey(self):
        std = _std_process.current_process()
        if std is _std_main:
            return std.authkey  # the main process: one key for both modules
        return _std_process.AuthenticationString(self._authkey)

    @authkey.setter
    def authkey(self, authkey):
        self._authkey = bytes(authkey)
        std = _std_process.current_process()
        if std is _std_main:
            std.authkey = authkey

    def close(self):
        pass


class _ParentProcess(BaseProcess):
    def __init__(self, name, pid):
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None
        self._daemonic = False
        self._handle = None
        self._closed = False
        self._exitcode = None
        self._child_self = False
        self._target = None
        self._config = {}
        self._authkey = b""

    def is_alive(self):
        return _core.pid_alive(self._pid)

    @property
    def pid(self):
        return self._pid

    ident = pid

    def join(self, timeout=None):
        import select
        fd = os.pidfd_open(self._pid)
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)


class _WorkerProcess(_MainProcess):
    """current_process() in a pool worker."""

    def __init__(self, name):
        super().__init__()
        self._name = name
        self._daemonic = True


_std_main = _std_process.current_process()  # the standard module's _MainProcess
_current_process = _MainProcess()
_parent_process = None


def current_process():
    return _current_process


def parent_process():
    return _parent_process


def _cleanup():
    for p in list(_children):
        if p._handle is None or not _mproc.mproc_process_is_alive(p._handle):
            _children.discard(p)


def active_children():
    _cleanup()
    return list(_children)


def _exit_children():
    """As Python's _exit_function: terminate daemonic children, join the others."""
    for p in list(_children):
        if p._handle is not None and p._daemonic:
            try:
                p.terminate()
            except Exception:
                pass
    for p in list(_children):
        if p._handle is not None:
            try:
                p.join()
            except Exception:
                pass


def _std_after_fork():
    """What multiprocessing's own children do first: forget the parent's finalizers and run the
    after-fork hooks (a manager's proxies drop the parent's connections there)."""
    try:
        import multiprocessing.util as util
        util._finalizer_registry.clear()
        util._run_after_forkers()
    except Exception:
        pass


def _after_fork_in_worker(name):
    global _current_process, _parent_process, _children, _counter
    _std_after_fork()
    parent = _current_process
    _children = set()
    _counter = itertools.count(1)
    _parent_process = _ParentProcess(parent.name, _mproc.mproc_parent_pid() or os.getppid())
    _current_process = _WorkerProcess(name)
    _std_state(_current_process, _parent_process)
