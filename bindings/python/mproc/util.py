"""multiprocessing.util: the standard library's module itself, re-exported. Its logger, its
finalizers and its after-fork hooks are the ones mproc's processes run: a child made by mproc
runs the after-fork hooks first and, after run(), the finalizers (util._exit_function), as the
standard library's children do."""
from multiprocessing import util as _std
from multiprocessing.util import *  # noqa: F401,F403
from multiprocessing.util import __all__  # noqa: F401


def __getattr__(name):
    # The module's other names (_exit_function, _run_finalizers...) are used by real code too.
    return getattr(_std, name)
