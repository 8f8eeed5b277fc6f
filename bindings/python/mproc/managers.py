"""multiprocessing.managers: the standard library's managers, re-exported. Their proxies work in
mproc's processes and pool workers: those run the standard library's after-fork hooks (a proxy
drops the parent's connection there) and carry its authkey (mproc.current_process().authkey is
the standard library's key), so a proxy passed to a child connects back to the manager."""
from multiprocessing import managers as _std
from multiprocessing.managers import *  # noqa: F401,F403
from multiprocessing.managers import __all__  # noqa: F401


def __getattr__(name):
    return getattr(_std, name)
