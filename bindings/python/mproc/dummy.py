"""multiprocessing.dummy: the same API on threads (the standard library's module, re-exported;
threads need nothing of mproc). `mproc.dummy.connection` is its connection module."""
import sys as _sys

from multiprocessing import dummy as _std
from multiprocessing.dummy import *  # noqa: F401,F403
from multiprocessing.dummy import __all__  # noqa: F401
from multiprocessing.dummy import connection  # noqa: F401

_sys.modules[__name__ + ".connection"] = connection


def __getattr__(name):
    return getattr(_std, name)
