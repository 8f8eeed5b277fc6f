"""Start methods: their table (the C core's mproc_start_method_t), the default one and what a
method needs before its first use. Below process, pool and context, which all ask it (context
was that place once, and process/pool imported it back: an import cycle)."""
import os
import threading

from . import _core
from . import _mproc

_lock = threading.Lock()
_chosen = None                 # the method set by set_start_method, or None
_forkserver_pid = None         # pid that started the forkserver helper (fork hooks applied)


def _default_method():
    return _chosen or _env_method or "fork"


# MPROC_START_METHOD=fork|forkserver|spawn selects the default, as for the C core.
_env_method = os.environ.get("MPROC_START_METHOD")
if _env_method not in _core.METHODS:
    _env_method = None


def _prepare(method):
    """Check a method name and make ready what it needs; return its C code. The forkserver
    helper is started here, from a thread that holds the GIL (its children run Python)."""
    global _forkserver_pid
    try:
        code = _core.METHODS[method]
    except KeyError:
        raise ValueError("cannot find context for %r" % (method,)) from None
    if code == _core.METHODS["forkserver"] and _forkserver_pid != os.getpid():
        with _lock:
            if _forkserver_pid != os.getpid():
                _mproc.py_forkserver_start()
                _forkserver_pid = os.getpid()
    return code
