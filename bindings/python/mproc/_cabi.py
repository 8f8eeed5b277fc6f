"""Queue calls of the C ABI for large data that the SWIG interface does not wrap yet, made through
ctypes on the extension module (which exports the C ABI): a gather put (mproc_queue_putv: a
pickle and its out-of-band buffers copied once, straight into shared memory) and a get that hands
over an out-of-line message's shared memory (mproc_queue_get_msg), so that numpy arrays are
views of it and it goes back to the queue when the last of them does. ctypes releases the GIL
for each call; a blocking call waits in slices so that Ctrl-C raises KeyboardInterrupt, as the
SWIG helpers' waits do. Handles are the SWIG pointer objects (int() is their address)."""
import ctypes
import time

from . import _core
from . import _mproc

_lib = ctypes.CDLL(_mproc.__file__)
_SLICE = 0.05  # seconds: the longest a blocking call goes without looking at signals


class _Part(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


_putv = _fn("mproc_queue_putv", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Part),
            ctypes.c_size_t, ctypes.c_double)
_get_msg = _fn("mproc_queue_get_msg", ctypes.c_int, ctypes.c_void_p,
               ctypes.POINTER(ctypes.c_void_p), ctypes.c_double)
_msg_data = _fn("mproc_msg_data", ctypes.c_void_p, ctypes.c_void_p)
_msg_size = _fn("mproc_msg_size", ctypes.c_size_t, ctypes.c_void_p)
_msg_free = _fn("mproc_msg_free", ctypes.c_int, ctypes.c_void_p)
_last_error = _fn("mproc_last_error", ctypes.c_char_p)
_strerror = _fn("mproc_strerror", ctypes.c_char_p, ctypes.c_int)
_ETIMEDOUT, _EFULL, _EEMPTY, _EINTR = (_core.E.ETIMEDOUT, _core.E.EFULL, _core.E.EEMPTY,
                                        _core.E.EINTR)


def _raise(rc):
    """The exception the SWIG binding raises for rc (the same map, the same text)."""
    msg = (_last_error() or _strerror(rc) or b"").decode("utf-8", "replace")
    exc = _core._ERRMAP.get(rc, _core.MprocError)(msg)
    exc.mproc_code = rc
    raise exc


def _wait(call, timeout, again):
    """call(seconds) in slices until it returns other than `again`, or timeout passes."""
    until = None if timeout < 0 else time.monotonic() + timeout
    while True:
        s = _SLICE if until is None else max(0.0, min(_SLICE, until - time.monotonic()))
        rc = call(s)
        if rc not in (again, _EINTR):
            return rc
        if until is not None and time.monotonic() >= until:
            return again


def queue_putv(h, parts, timeout):
    """Put the concatenation of parts (writable buffers or bytes) as one message; raises as
    _mproc.py_queue_put does. False when a part cannot be passed by address (read-only and not
    bytes): the caller joins them itself."""
    arr = (_Part * len(parts))()
    keep = []
    for i, p in enumerate(parts):
        if isinstance(p, bytes):
            addr = ctypes.cast(ctypes.c_char_p(p), ctypes.c_void_p).value
            n = len(p)
        else:
            mv = memoryview(p)
            if mv.readonly:
                return False
            n = mv.nbytes
            c = (ctypes.c_char * n).from_buffer(mv) if n else None
            keep.append(c)
            addr = ctypes.addressof(c) if n else None
        arr[i].data = addr
        arr[i].len = n
    q = int(h)
    rc = _wait(lambda s: _putv(q, arr, len(parts), s), timeout, _ETIMEDOUT)
    if rc == _EFULL:
        rc = _ETIMEDOUT
    if rc < 0:
        _raise(rc)
    return True


class _Msg:
    """Owns a taken message: frees it (its shared memory back to the queue) when it goes."""
    __slots__ = ("m",)

    def __init__(self, m):
        self.m = m

    def __del__(self):
        if _msg_free is not None:
            _msg_free(self.m)


def queue_get(h, timeout, small):
    """The next message: bytes when under `small` bytes, else a writable memoryview of memory
    the message owns (for an out-of-line message, its shared memory: no copy). Raises as
    _mproc.py_queue_get does (TimeoutError when empty for timeout)."""
    m = ctypes.c_void_p()
    q = int(h)
    rc = _wait(lambda s: _get_msg(q, ctypes.byref(m), s), timeout, _ETIMEDOUT)
    if rc == _EEMPTY:
        rc = _ETIMEDOUT
    if rc < 0:
        _raise(rc)
    n = _msg_size(m)
    if n < small:
        data = ctypes.string_at(_msg_data(m), n) if n else b""
        _msg_free(m)
        return data
    buf = (ctypes.c_char * n).from_address(_msg_data(m))
    buf._mproc = _Msg(m.value)  # lives as long as any view of buf (a numpy array's base)
    return memoryview(buf).cast("B")
