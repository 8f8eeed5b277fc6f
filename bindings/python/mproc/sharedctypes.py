"""Value, Array, RawValue, RawArray: ctypes objects placed in mproc's shared arenas.

As in multiprocessing, RawValue/RawArray (and lock=False) return plain ctypes objects, and
Value/Array return synchronized wrappers with get_lock()/get_obj(). Beyond multiprocessing:
integer Values have atomic operations (fetch_add, fetch_sub, exchange, compare_exchange, load,
store) that need no lock at all."""
import ctypes

from . import _core
from . import _mproc
from .synchronize import Lock, RLock, _lock_from_handle

__all__ = ["RawValue", "RawArray", "Value", "Array", "Synchronized", "SynchronizedArray",
           "SynchronizedString"]

typecode_to_type = {
    "c": ctypes.c_char, "b": ctypes.c_byte, "B": ctypes.c_ubyte, "h": ctypes.c_short,
    "H": ctypes.c_ushort, "i": ctypes.c_int, "I": ctypes.c_uint, "l": ctypes.c_long,
    "L": ctypes.c_ulong, "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong, "f": ctypes.c_float,
    "d": ctypes.c_double,
}
_by_type = {}
for _code, _t in typecode_to_type.items():
    _by_type.setdefault(_t, _code)


def _code_of(typecode_or_type):
    if isinstance(typecode_or_type, str):
        if typecode_or_type not in typecode_to_type:
            raise TypeError("unsupported type code %r (mproc supports %s)"
                            % (typecode_or_type, "".join(typecode_to_type)))
        return typecode_or_type
    code = _by_type.get(typecode_or_type)
    if code is None:
        raise TypeError("unsupported ctypes type %r" % (typecode_or_type,))
    return code


def _attach_value(token, raw):
    h = _mproc.mproc_value_attach(token)
    return _wrap_value(h, raw)


def _attach_array(token, raw):
    h = _mproc.mproc_array_attach(token)
    return _wrap_array(h, raw)


def _wrap_value(h, raw, lock=None):
    code = chr(_mproc.mproc_value_typecode(h))
    obj = typecode_to_type[code].from_address(_mproc.py_ptr_of("value", h))
    obj._mproc = _Owner(h, _mproc.mproc_value_free)
    obj.__class__ = _shared_class(type(obj), _reduce_value)
    if raw:
        return obj
    if lock is None:
        lock = _lock_from_handle(_mproc.mproc_value_get_lock(h), obj)
    return Synchronized(obj, lock, h)


def _wrap_array(h, raw, lock=None):
    code = chr(_mproc.mproc_array_typecode(h))
    n = _mproc.mproc_array_length(h)
    obj = (typecode_to_type[code] * n).from_address(_mproc.py_ptr_of("array", h))
    obj._mproc = _Owner(h, _mproc.mproc_array_free)
    obj.__class__ = _shared_class(type(obj), _reduce_array)
    if raw:
        return obj
    if lock is None:
        lock = _lock_from_handle(_mproc.mproc_array_get_lock(h), obj)
    cls = SynchronizedString if code == "c" else SynchronizedArray
    return cls(obj, lock, h)


class _Owner:
    """Frees the mproc handle when the ctypes object that views its memory goes."""

    def __init__(self, h, free):
        self.h = h
        self.free = free

    def __del__(self):
        if _mproc is not None:
            try:
                self.free(self.h)
            except Exception:
                pass


def _reduce_value(self):
    raise TypeError("a RawValue is shared through inheritance (fork) only; use Value to pass "
                    "it to other processes")


_reduce_array = _reduce_value
_classes = {}


def _shared_class(base, reduce):
    cls = _classes.get(base)
    if cls is None:
        cls = _classes[base] = type(base.__name__, (base,), {"__reduce__": reduce})
    return cls


def _pack(code, values):
    t = typecode_to_type[code]
    return bytes((t * len(values))(*values))


def RawValue(typecode_or_type, *args):
    code = _code_of(typecode_or_type)
    init = _pack(code, args) if args else None
    return _wrap_value(_mproc.py_value_new(code, init, True, None), True)


def RawArray(typecode_or_type, size_or_initializer):
    code = _code_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        n, init = size_or_initializer, None
    else:
        values = list(size_or_initializer)
        n, init = len(values), _pack(code, values)
    return _wrap_array(_mproc.py_array_new(code, n, init, True, None), True)


def _lock_arg(lock):
    if lock is True or lock is None:
        return None, False
    if lock is False:
        return None, True
    if not isinstance(lock, Lock):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    return lock._h, False


def Value(typecode_or_type, *args, lock=True, ctx=None):
    code = _code_of(typecode_or_type)
    init = _pack(code, args) if args else None
    lh, raw = _lock_arg(lock)
    # A lock given is the wrapper's lock itself (get_lock() is it), as in multiprocessing.
    return _wrap_value(_mproc.py_value_new(code, init, raw, lh), raw, lock if lh else None)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    code = _code_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        n, init = size_or_initializer, None
    else:
        values = list(size_or_initializer)
        n, init = len(values), _pack(code, values)
    lh, raw = _lock_arg(lock)
    return _wrap_array(_mproc.py_array_new(code, n, init, raw, lh), raw, lock if lh else None)


class SynchronizedBase:
    def __init__(self, obj, lock, h):
        self._obj = obj
        self._lock = lock
        self._h = h
        self.acquire = lock.acquire
        self.release = lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def get_obj(self):
        return self._obj

    def get_lock(self):
        return self._lock

    def __repr__(self):
        return "<%s wrapper for %s>" % (type(self).__name__, self._obj)


class Synchronized(_mproc.ValueBase, SynchronizedBase):
    """value (read/written under the lock), get_lock(), get_obj(), __enter__ and __exit__ are C
    members of _mproc.ValueBase (first in the MRO): `with v.get_lock(): v.value += 1` runs no
    Python function."""

    def __init__(self, obj, lock, h):
        super().__init__(obj, lock, h)
        self.acquire = lock.acquire
        self.release = lock.release

    def __reduce__(self):
        return _attach_value, (_mproc.mproc_value_export(self._h), False)

    # -- atomic integer operations (lock-free; not for 'f', 'd', 'c') -------------------------
    def load(self):
        return _mproc.mproc_value_load(self._h)

    def store(self, x):
        _mproc.mproc_value_store(self._h, x)

    def fetch_add(self, delta=1):
        """Add delta atomically and return the previous value."""
        return _mproc.mproc_value_fetch_add(self._h, delta)

    def fetch_sub(self, delta=1):
        return _mproc.mproc_value_fetch_sub(self._h, delta)

    def exchange(self, x):
        return _mproc.mproc_value_exchange(self._h, x)

    def compare_exchange(self, expected, desired):
        """(True, expected) when the value was `expected` and is now `desired`, else
        (False, current value)."""
        r = _mproc.mproc_value_compare_exchange(self._h, expected, desired)
        if isinstance(r, list):
            ok, cur = r
        else:
            ok, cur = None, r
        return bool(ok), cur


class SynchronizedArray(SynchronizedBase):
    def __reduce__(self):
        return _attach_array, (_mproc.mproc_array_export(self._h), False)

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self._lock:
            return self._obj[i]

    def __setitem__(self, i, value):
        with self._lock:
            self._obj[i] = value

    def __getslice__(self, start, stop):
        with self._lock:
            return self._obj[start:stop]

    def __iter__(self):
        with self._lock:
            return iter(self._obj[:])


class SynchronizedString(SynchronizedArray):
    @property
    def value(self):
        with self._lock:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self._lock:
            self._obj.value = v

    @property
    def raw(self):
        with self._lock:
            return self._obj.raw

    @raw.setter
    def raw(self, v):
        with self._lock:
            self._obj.raw = v
