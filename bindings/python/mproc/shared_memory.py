"""multiprocessing.shared_memory.SharedMemory on mproc's named blocks (/dev/shm/mproc-<name>).
The creator owns the name: it goes at unlink(), or when the creator ends (also by a crash).
With lease=True the lifetime follows the users instead: the name goes when the last process
that created or attached it closes it or dies, never while one still uses it."""
import ctypes

from . import _core
from . import _mproc

__all__ = ["SharedMemory"]


class SharedMemory:
    def __init__(self, name=None, create=False, size=0, *, lease=False, max_users=0):
        if size < 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if lease:
                self._h = _mproc.py_shm_create_ex(name, size, True, max_users)
            elif max_users:
                raise ValueError("max_users is only for lease=True")
            else:
                self._h = _mproc.mproc_shm_create(name, size)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            self._h = _mproc.mproc_shm_attach(name)
        self._name = _mproc.mproc_shm_name(self._h)
        self._size = _mproc.mproc_shm_size(self._h)
        addr = _mproc.py_ptr_of("shm", self._h)
        self._buf = memoryview((ctypes.c_char * self._size).from_address(addr)).cast("B")

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    @property
    def buf(self):
        return self._buf

    @property
    def name(self):
        return self._name

    @property
    def size(self):
        return self._size

    def close(self):
        if self._h is not None:
            if self._buf is not None:
                self._buf.release()
                self._buf = None
            h, self._h = self._h, None
            _mproc.mproc_shm_close(h)

    def unlink(self):
        if self._h is None:
            raise ValueError("SharedMemory is closed: unlink before close, or attach again")
        _mproc.mproc_shm_unlink(self._h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "%s(%r, size=%d)" % (type(self).__name__, self.name, self.size)
