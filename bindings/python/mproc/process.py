"""Processes: multiprocessing.Process and friends on mproc_process_*."""
import itertools
import os
import signal
import sys
import threading
import weakref

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


class BaseProcess:
    """multiprocessing.Process: run `target(*args, **kwargs)` (or an overridden run()) in a child."""

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
        self.authkey = _current_process.authkey

    def run(self):
        if self._target:
            self._target(*self._args, **self._kwargs)

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
                arg = b"P" + _core.dumps(self)
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
            self._exitcode = self.exitcode
            _mproc.mproc_process_free(self._handle)
            self._handle = None
        _children.discard(self)
        self._closed = True

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
        if self._child_self:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._handle is None:
            status = "initial"
        else:
            code = self.exitcode
            status = "started" if code is None else "stopped"
        info = [type(self).__name__, "name=%r" % self._name]
        if self._pid is not None or self._child_self:
            info.append("pid=%s" % self.pid)
        info.append("parent=%s" % self._parent_pid)
        info.append(status)
        if status == "stopped":
            code = self.exitcode
            if code is not None and code < 0:
                try:
                    code = signal.Signals(-code).name
                except ValueError:
                    pass
            info.append("exitcode=%s" % code)
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




class Process(BaseProcess):
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
        self.authkey = os.urandom(32)

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

    def is_alive(self):
        try:
            os.kill(self._pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

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
