"""multiprocessing.heap: the standard library's module, re-exported (mmap-backed arenas for
code that builds its own shared ctypes; mproc's Value and Array use the core's arenas)."""
from multiprocessing import heap as _std
from multiprocessing.heap import Arena, BufferWrapper, Heap  # noqa: F401

__all__ = ["Arena", "BufferWrapper", "Heap"]


def __getattr__(name):
    return getattr(_std, name)
