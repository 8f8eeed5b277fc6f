"""Start methods and contexts (multiprocessing.context): BaseContext, DefaultContext and the
fixed contexts ForkContext, ForkServerContext and SpawnContext, each offering everything the
package offers, bound to its start method, as the standard library's do."""
from . import _core
from . import _mproc
from . import _start
from . import process

__all__ = ["BaseContext", "DefaultContext", "ForkContext", "ForkServerContext", "SpawnContext",
           "ForkProcess", "ForkServerProcess", "SpawnProcess", "Process"]

# The start-method state lives in _start (process and pool need it too).
_default_method = _start._default_method
_prepare = _start._prepare


ProcessError = _core.ProcessError
BufferTooShort = _core.BufferTooShort
TimeoutError = _core.TimeoutError
AuthenticationError = _core.AuthenticationError
Process = process.Process


class BaseContext:
    ProcessError = _core.ProcessError
    BufferTooShort = _core.BufferTooShort
    TimeoutError = _core.TimeoutError
    AuthenticationError = _core.AuthenticationError
    WorkerDiedError = _core.WorkerDiedError
    TaskTimeoutError = _core.TaskTimeoutError
    OwnerDeadError = _core.OwnerDeadError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self):
        return _mproc.mproc_cpu_count()

    def Manager(self):
        """A started SyncManager (multiprocessing.managers); its proxies work in mproc's
        processes and pools. Its server process is started by the standard library: with fork
        for the fork context, with spawn otherwise (forkserver: a clean interpreter as well)."""
        from . import managers
        m = managers.SyncManager(ctx=_std_context_for(self.get_start_method()))
        m.start()
        return m

    def Pipe(self, duplex=True):
        from .connection import Pipe
        return Pipe(duplex)

    def Lock(self):
        from .synchronize import Lock
        return Lock(ctx=self.get_context())

    def RLock(self):
        from .synchronize import RLock
        return RLock(ctx=self.get_context())

    def Condition(self, lock=None):
        from .synchronize import Condition
        return Condition(lock, ctx=self.get_context())

    def Semaphore(self, value=1):
        from .synchronize import Semaphore
        return Semaphore(value, ctx=self.get_context())

    def BoundedSemaphore(self, value=1):
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value, ctx=self.get_context())

    def Event(self):
        from .synchronize import Event
        return Event(ctx=self.get_context())

    def Barrier(self, parties, action=None, timeout=None):
        from .synchronize import Barrier
        return Barrier(parties, action, timeout, ctx=self.get_context())

    def Queue(self, maxsize=0):
        from .queues import Queue
        return Queue(maxsize, ctx=self.get_context())

    def JoinableQueue(self, maxsize=0):
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self.get_context())

    def SimpleQueue(self):
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self.get_context())

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, **kw):
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self.get_context(), **kw)

    def RawValue(self, typecode_or_type, *args):
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type, size_or_initializer):
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type, *args, lock=True):
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type, size_or_initializer, *, lock=True):
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self.get_context())

    def freeze_support(self):
        from . import spawn
        spawn.freeze_support()

    def get_logger(self):
        from . import util
        return util.get_logger()

    def log_to_stderr(self, level=None):
        from . import util
        return util.log_to_stderr(level)

    def allow_connection_pickling(self):
        # As the standard library's: importing the connection module registers its reducers.
        from . import connection  # noqa: F401

    def set_executable(self, executable):
        from . import spawn
        spawn.set_executable(executable)

    def set_forkserver_preload(self, module_names):
        """Modules the forkserver's children should find imported: imported here, before the
        forkserver helper is forked from this process (a hint, as in the standard library)."""
        for name in module_names:
            try:
                __import__(name)
            except ImportError:
                pass

    def get_context(self, method=None):
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError("cannot find context for %r" % (method,)) from None
        ctx._check_available()
        return ctx

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self):
        # multiprocessing's order on Linux first, then any other method of the C core.
        order = ["fork", "spawn", "forkserver"]
        return sorted(_core.METHODS, key=lambda m: order.index(m) if m in order else len(order))

    @property
    def reducer(self):
        """The module that reduces objects for other processes (mproc.reduction)."""
        return globals().get("reduction") or _reduction()

    @reducer.setter
    def reducer(self, reduction):
        globals()["reduction"] = reduction

    def _check_available(self):
        pass

    def _method(self):
        return self.get_start_method()


def _reduction():
    from . import reduction
    return reduction


def _std_context_for(method):
    import multiprocessing
    return multiprocessing.get_context("fork" if method == "fork" else "spawn")


class DefaultContext(BaseContext):
    """The package's functions: the start method is the one set by set_start_method (or
    MPROC_START_METHOD, else fork); get_context() is that method's fixed context."""
    Process = process.Process
    _name = None

    def __init__(self, context=None):
        self._default_context = context

    def get_context(self, method=None):
        if method is None:
            return _concrete_contexts[_default_method()]
        return super().get_context(method)

    def get_start_method(self, allow_none=False):
        if _start._chosen is None and allow_none:
            return None
        return _default_method()

    def set_start_method(self, method, force=False):
        if _start._chosen is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            _start._chosen = None
            _mproc.mproc_set_start_method(_core.METHODS[_default_method()])
            return
        code = _prepare(method)
        _mproc.mproc_set_start_method(code)
        _start._chosen = method


class ForkProcess(process.Process):
    _start_method = "fork"


class ForkServerProcess(process.Process):
    _start_method = "forkserver"


class SpawnProcess(process.Process):
    _start_method = "spawn"


ForkserverProcess = ForkServerProcess  # the name of earlier versions (pickled by reference)


class ForkContext(BaseContext):
    _name = "fork"
    Process = ForkProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


_concrete_contexts = {"fork": ForkContext(), "spawn": SpawnContext(),
                      "forkserver": ForkServerContext()}


def _other_context(method):
    """The context of a start method of the C core beyond the standard three."""
    name = method.capitalize()
    proc = type(name + "Process", (process.Process,), {"_start_method": method})
    globals()[proc.__name__] = proc  # picklable by reference (forkserver children)
    return type(name + "Context", (BaseContext,), {"_name": method, "Process": proc})()


for _m in _core.METHODS:
    if _m not in _concrete_contexts:
        _concrete_contexts[_m] = _other_context(_m)
del _m
_concrete = _concrete_contexts
_default_context = DefaultContext(_concrete_contexts["fork"])
