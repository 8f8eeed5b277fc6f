"""Code run inside pool workers (called by the C trampolines of the _mproc module).

Task bytes (made by pool.py):
  b"A" + pickle((func, args, kwargs))                        apply
  b"M" | b"S" + len(fn) as 4 bytes + pickle(func) + pickle(x)  map item: func(x) / func(*x)
  b"L" | b"K" + len(fn) as 4 bytes + pickle(func) + pickle(list)  a chunk of map items: the list
                                                                 of func(x) / func(*x)
  b"a" | b"m" | b"s" | b"l" | b"k": as "A" / "M" / "S" / "L" / "K" with the pool's data arena
      (16 bytes, mproc._oob.coords) before the pickle, which mproc._oob made: large buffers are
      references to the arena (or, without one, out of band after the pickle)
  b"N" + len(fn) as 4 bytes + pickle(func) + _mproc.py_pack_numbers(list): as "L", a chunk of
       exact ints (b"q" + int64s) or floats (b"d" + doubles), read without unpickling; or
       + _mproc.py_pack_strs(list): as "L", a chunk of ASCII strings (b"U", count, lengths);
       + _mproc.py_pack_tuples(list): as "K", a chunk of tuples of numbers (b"T", arity, formats)
Result bytes: b"\\0" + pickle(value), b"\\2" + the value by mproc._oob.dumps_to (a task that
came with an arena: large buffers of the result go back through it), b"\\3" +
py_pack_numbers(list) for a chunk whose results are all exact ints or all floats (or
py_pack_strs(list): all ASCII strings; py_pack_tuples(list): tuples of numbers), or b"\\1" +
pickle((exception or None, traceback text)).
"""
import pickle
from itertools import starmap as _starmap
import traceback

from . import _core
from . import _mproc
from . import _oob

_loads = pickle.loads
_dumps = _core.dumps
_pack = _mproc.py_pack_numbers
_map_packed = _mproc.py_map_packed
_unpack = _mproc.py_unpack_numbers
_pack_strs = _mproc.py_pack_strs
_pack_tuples = _mproc.py_pack_tuples
_starmap_packed = _mproc.py_starmap_packed
_loads_many = _mproc.py_loads  # pickle.loads; a large one's objects in huge-page arenas


def _pack_results(values):
    """A chunk's results packed (b"\\3": numbers, else ASCII strings, else tuples of
    numbers), or None."""
    out = _pack(values, b"\x03")
    if out is None and type(values) is list:
        out = _pack_strs(values, b"\x03", 0, len(values))
        if out is None:
            out = _pack_tuples(values, b"\x03", 0, len(values))
    return out


_fn_blob = None
_fn = None
_pending_inits = {}  # {key: (initializer, initargs)} of fork pools (pool.py fills it)


def init_worker(arg):
    from . import process
    name, identity = _mproc.mproc_current_name() or "PoolWorker", None
    if arg[:1] == b"I":  # the worker's identity: (parent's identity, first number, name)
        n = int.from_bytes(arg[1:5], "little")
        prefix, first, kind = _loads(arg[5:5 + n])
        arg = arg[5 + n:]
        try:
            slot = int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            slot = 0
        identity = tuple(prefix) + (first + slot,)
        name = kind + "-" + ":".join(map(str, identity))
    process._after_fork_in_worker(name)
    if identity is not None:
        _set_identity(process, identity, name)
    if not arg:
        return True
    if arg[:1] == b"F":
        init, initargs = _pending_inits[int.from_bytes(arg[1:9], "little")]
    elif arg[:1] == b"S":  # a spawned worker: the main module first, then the initializer
        import io
        from . import spawn
        f = io.BytesIO(arg[1:])
        spawn._prepare_child(f)
        if identity is not None:  # the preparation named the process after its parent's data
            _set_identity(process, identity, name)
        if f.tell() == len(arg) - 1:
            return True
        init, initargs = pickle.load(f)
    else:
        init, initargs = _loads(arg[1:])
    if init is not None:
        try:
            init(*initargs)
        finally:
            _core._flush_std_streams()
    return True


def _set_identity(process, identity, name):
    """current_process() of mproc and of multiprocessing: this worker's name and _identity
    (programs pick a device or a seed with current_process()._identity[0])."""
    me = process.current_process()
    me._identity = identity
    me._name = name
    try:
        import multiprocessing.process as std
        std_me = std.current_process()
        std_me._identity = identity
        std_me._name = name
    except Exception:
        pass


def encode_error(e):
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    e.__traceback__ = None
    try:
        blob = pickle.dumps(e, _core.PROTOCOL)
    except Exception:
        blob = None
    # nested: the traceback text arrives even when the exception cannot be rebuilt there
    return b"\x01" + pickle.dumps((blob, tb), _core.PROTOCOL)


def run_task(mv):
    global _fn_blob, _fn
    arena = value = None
    try:
        kind = mv[0]
        if kind == 97:  # "a": apply, made by mproc._oob (see pool._apply_bytes)
            arena = _oob.arena_of(mv[1:17])
            fn, args, kwargs = _oob.loads(mv[17:])
            value = fn(*args, **kwargs)
        elif kind == 65:  # "A"
            fn, args, kwargs = _loads(mv[1:])
            value = fn(*args, **kwargs)
        else:
            n = int.from_bytes(mv[1:5], "little")
            blob = mv[5:5 + n]
            if blob != _fn_blob:
                _fn = _loads(blob)
                _fn_blob = bytes(blob)
            if kind >= 97:  # "m", "s", "l", "k": made by mproc._oob (see pool._chunk_bytes)
                arena = _oob.arena_of(mv[5 + n:21 + n])
                x = _oob.loads(mv[21 + n:])
                kind -= 32
            elif kind == 78:  # "N": packed numbers (pool.IMapIterator._encode)
                # Iterated as it is: each int or float is made as the map takes it, not all
                # first in a list (half the time: a new object each time in the same memory).
                # The results packed as they come (bytes), or their list when not all numbers:
                # no list of 10^5 result objects made only to be packed.
                if mv[5 + n] == 84:  # b"T": rows of starmap arguments
                    value = _starmap_packed(_fn, memoryview(mv)[5 + n:], b"\x03")
                    kind = 75
                elif mv[5 + n] == 85:  # b"U": ASCII strings (made at once, in huge pages)
                    value = _map_packed(_fn, _unpack(mv, 5 + n), b"\x03")
                    kind = 76
                else:
                    x = memoryview(mv)[6 + n:].cast(chr(mv[5 + n]))  # mpi gives bytes
                    value = _map_packed(_fn, x, b"\x03")
                    kind = 76
            else:  # a chunk's list: its objects in huge-page arenas when it is large
                x = _loads_many(mv[5 + n:])
            if kind == 77:  # "M"
                value = _fn(x)
            elif kind == 83:  # "S": starmap
                value = _fn(*x)
            elif kind == 76:  # "L": a chunk of map items
                if value is None:
                    value = list(map(_fn, x))
            elif value is None:  # "K": a chunk of starmap items
                value = list(_starmap(_fn, x))
        try:
            # a chunk's results that are all exact ints or all floats: packed (None if not)
            if type(value) is bytes and (kind == 76 or kind == 75):  # packed already (C)
                out = value
            else:
                out = _pack_results(value) if kind == 76 or kind == 75 else None
            if out is None and arena is not None:  # large buffers by reference (one copy)
                try:
                    out = b"\x02" + _oob.dumps_to(value, arena, True)
                except Exception:
                    pass  # no room in the arena, or what only plain pickle says: as below
            if out is None:
                out = b"\x00" + pickle.dumps(value, _core.PROTOCOL)
        except Exception as e:
            err = _core.MaybeEncodingError(e, value)
            out = encode_error(err)
    except BaseException as e:
        out = encode_error(e)
    _core._flush_std_streams()
    return out


def _rebuild_error(payload):
    """The exception of a task, with the remote traceback as its cause (as multiprocessing)."""
    blob, tb = _core.loads(payload)
    exc = None
    if blob is not None:
        try:
            exc = _core.loads(blob)
        except Exception:
            pass
    if not isinstance(exc, BaseException):
        last = tb.strip().splitlines()[-1] if tb.strip() else "unknown error"
        exc = RuntimeError("remote exception that cannot be rebuilt here: " + last)
    exc.__cause__ = _remote_traceback_class()('\n"""\n%s"""' % tb)
    return exc


_RemoteTraceback = None


def _remote_traceback_class():
    """mproc.RemoteTraceback that is also a multiprocessing.pool.RemoteTraceback, so that code
    written for the standard library's Pool recognises the cause (made on first use: the
    standard library's pool module is not imported by workers and children otherwise)."""
    global _RemoteTraceback
    if _RemoteTraceback is None:
        try:
            from multiprocessing.pool import RemoteTraceback as std
            _RemoteTraceback = type("RemoteTraceback", (_core.RemoteTraceback, std),
                                    {"__module__": _core.RemoteTraceback.__module__})
        except ImportError:  # pragma: no cover
            _RemoteTraceback = _core.RemoteTraceback
    return _RemoteTraceback


def _decode(data):
    """(True, value) or (False, exception) from a tagged result."""
    if not data:
        return False, RuntimeError("empty result from a worker")
    mv = memoryview(data)
    if mv[0] == 0:
        try:
            return True, _loads_many(mv[1:])
        except Exception as e:
            return False, e
    if mv[0] == 2:  # large buffers in the pool's data arena (run_task)
        try:
            return True, _oob.loads(mv[1:])
        except Exception as e:
            return False, e
    if mv[0] == 3:  # a chunk's results packed as numbers (run_task)
        return True, _mproc.py_unpack_numbers(mv, 1)
    return False, _rebuild_error(mv[1:])
