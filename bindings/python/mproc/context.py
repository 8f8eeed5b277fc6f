"""Start methods and contexts (multiprocessing.get_context and friends)."""
from . import _core
from . import _mproc
from . import _start
from . import process

# The start-method state lives in _start (process and pool need it too).
_default_method = _start._default_method
_prepare = _start._prepare


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

    @staticmethod
    def cpu_count():
        return _mproc.mproc_cpu_count()

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, **kw):
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild, context=self, **kw)

    # Shared objects, as multiprocessing's contexts offer them (the same for every method).
    def _ipc(name):
        def make(self, *args, **kwargs):
            from . import _ipc_exports
            return getattr(_ipc_exports, name)(*args, **kwargs)
        make.__name__ = name
        return make

    for _n in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
               "Value", "Array", "RawValue", "RawArray", "Queue", "SimpleQueue", "JoinableQueue",
               "Pipe"):
        locals()[_n] = _ipc(_n)
    del _n, _ipc

    def get_context(self, method=None):
        if method is None:
            return self if self._name is not None else _default_context
        try:
            return _concrete[method]
        except KeyError:
            raise ValueError("cannot find context for %r" % (method,)) from None

    def get_all_start_methods(self):
        # multiprocessing's order on Linux first, then any other method of the C core.
        order = ["fork", "spawn", "forkserver"]
        return sorted(_core.METHODS, key=lambda m: order.index(m) if m in order else len(order))

    def freeze_support(self):
        from . import spawn
        spawn.freeze_support()

    def set_executable(self, executable):
        from . import spawn
        spawn.set_executable(executable)

    def set_forkserver_preload(self, module_names):
        for name in module_names:
            try:
                __import__(name)
            except ImportError:
                pass

    def allow_connection_pickling(self):
        pass

    def log_to_stderr(self, level=None):
        import multiprocessing.util as util
        return util.log_to_stderr(level)

    def get_logger(self):
        import multiprocessing.util as util
        return util.get_logger()

    def _method(self):
        return self._name or _default_method()

    def Manager(self):
        import multiprocessing
        return multiprocessing.Manager()


class DefaultContext(BaseContext):
    _name = None
    Process = process.Process

    def get_start_method(self, allow_none=False):
        if _start._chosen is None and allow_none:
            return None
        return _default_method()

    def set_start_method(self, method, force=False):
        if _start._chosen is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            _start._chosen = None
            _mproc.mproc_set_start_method(_core.METHODS["fork"])
            return
        code = _prepare(method)
        _mproc.mproc_set_start_method(code)
        _start._chosen = method


def _concrete_context(method):
    proc = type(method.capitalize() + "Process", (process.Process,), {"_start_method": method})
    globals()[proc.__name__] = proc  # picklable by reference (forkserver children)

    class Ctx(BaseContext):
        _name = method
        Process = proc

        def get_start_method(self, allow_none=False):
            return self._name

        def set_start_method(self, method, force=False):
            raise RuntimeError("cannot set the start method of a fixed context")

    Ctx.__name__ = method.capitalize() + "Context"
    return Ctx()


_concrete = {m: _concrete_context(m) for m in _core.METHODS}
_default_context = DefaultContext()
