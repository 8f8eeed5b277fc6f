"""multiprocessing.shared_memory on mproc's named blocks.

A block this module creates is one of the core's (/dev/shm/mproc-<name>, with a 64-byte trailer
after the data saying who created it). The creator owns the name: it goes at unlink(), or when
the creator ends (also by a crash). With lease=True the lifetime follows the users instead: the
name goes when the last process that created or attached it closes it or dies, never while one
still uses it.

Interoperability with the standard library's module, by name, both ways:
- `name` is the block's file name in /dev/shm, "mproc-<name>", so the standard library's
  SharedMemory(shm.name) attaches an mproc block (it sees the data, then the trailer: its size is
  larger than asked, as the standard library allows; do not write past `size`).
- This module attaches a standard library's block by its name (a file /dev/shm/<name> without
  mproc's trailer): mapped as the standard library maps it, close() unmaps it, unlink() removes
  the name (its lifetime is the standard library's: unlink it, or its resource tracker does).
  It also takes an mproc name with or without the "mproc-" prefix.
OS-level failures are OSError subclasses with their errno, as the standard library's."""
import ctypes
import sys
import errno as _errno
import mmap
import os

from . import _core
from . import _mproc

__all__ = ["SharedMemory", "ShareableList"]

_PREFIX = "mproc-"


def _os_error(e):
    """The core's error as the standard library would raise it: an OSError with its errno."""
    code = -_core.code_of(e)
    if code == _errno.EMSGSIZE:  # too big to map: the standard library's mmap says ENOMEM
        code = _errno.ENOMEM
    if 0 < code < 4096 and (not isinstance(e, OSError) or e.errno is None):
        return OSError(code, "%s: %s" % (os.strerror(code), e))
    return e


def _core_call(fn, *args):
    try:
        return fn(*args)
    except (_core.MprocError, ValueError, OSError) as e:
        err = _os_error(e)
        if err is e:
            raise
        raise err from None


def _core_name(name):
    """The name the core takes (without "mproc-"; a leading "/" is allowed, as Python's)."""
    if name is None:
        return None
    n = name[1:] if name.startswith("/") else name
    return n[len(_PREFIX):] if n.startswith(_PREFIX) else n


class SharedMemory:
    def __init__(self, name=None, create=False, size=0, *, lease=False, max_users=0):
        if size < 0:
            raise ValueError("'size' must be a positive integer")
        self._h = None
        self._mmap = None
        self._fd = -1
        self._buf = None
        self._carr = None  # the ctypes array under _buf: its references tell of live slices
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if name is not None and _core_name(name) != name.lstrip("/"):
                raise ValueError("a new block's name must not begin with %r" % _PREFIX)
            if lease:
                self._h = _core_call(_mproc.py_shm_create_ex, _core_name(name), size, True,
                                     max_users)
            elif max_users:
                raise ValueError("max_users is only for lease=True")
            else:
                self._h = _core_call(_mproc.mproc_shm_create, _core_name(name), size)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            try:
                self._h = _core_call(_mproc.mproc_shm_attach, _core_name(name))
            except (FileNotFoundError, OSError) as e:
                # Not an mproc block: a standard library's one of that name, if any.
                if not self._attach_std(name):
                    raise e from None
        if self._h is not None:
            self._name = _PREFIX + _mproc.mproc_shm_name(self._h)
            self._size = _mproc.mproc_shm_size(self._h)
            addr = _mproc.py_ptr_of("shm", self._h)
            self._carr = (ctypes.c_char * self._size).from_address(addr)
            self._buf = memoryview(self._carr).cast("B")

    def _attach_std(self, name):
        """Map /dev/shm/<name> as multiprocessing.shared_memory does; False if there is none."""
        import _posixshmem
        path = name if name.startswith("/") else "/" + name
        try:
            fd = _posixshmem.shm_open(path, os.O_RDWR, mode=0o600)
        except (FileNotFoundError, ValueError, OSError):
            return False
        try:
            size = os.fstat(fd).st_size
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._name = name.lstrip("/")
        self._size = size
        self._buf = memoryview(self._mmap)
        return True

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
        """Unmap the block in this process (the name stays: unlink() may follow)."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._carr is not None:
            # A slice of buf still alive holds the array (through the view's buffer): unmapping
            # now would leave it pointing at nothing. mmap.close() refuses the same way.
            if sys.getrefcount(self._carr) > 2:
                raise BufferError("cannot close exported pointers exist")
            self._carr = None
        if self._h is not None:
            h, self._h = self._h, None
            _mproc.mproc_shm_close(h)
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def unlink(self):
        """Remove the name (before or after close(), as the standard library's)."""
        if self._h is not None:
            _core_call(_mproc.mproc_shm_unlink, self._h)
        elif self._name.startswith(_PREFIX):
            # Closed already: attach again by name to remove it (the core unlinks through a
            # handle, which checks that the file is still the block it made).
            h = _core_call(_mproc.mproc_shm_attach, _core_name(self._name))
            try:
                _core_call(_mproc.mproc_shm_unlink, h)
            finally:
                _mproc.mproc_shm_close(h)
        else:
            import _posixshmem
            _posixshmem.shm_unlink("/" + self._name)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "%s(%r, size=%d)" % (type(self).__name__, self.name, self.size)


def _shareable_list():
    """multiprocessing.shared_memory.ShareableList on this module's SharedMemory: the standard
    class, whose __init__ runs with this module's SharedMemory as its global."""
    import types
    from multiprocessing import shared_memory as std
    init = std.ShareableList.__init__
    glb = dict(vars(std))
    glb["SharedMemory"] = SharedMemory
    new_init = types.FunctionType(init.__code__, glb, init.__name__, init.__defaults__,
                                  init.__closure__)
    new_init.__kwdefaults__ = init.__kwdefaults__
    new_init.__doc__ = init.__doc__
    return type("ShareableList", (std.ShareableList,),
                {"__init__": new_init, "__module__": __name__,
                 "__doc__": std.ShareableList.__doc__})


ShareableList = _shareable_list()
