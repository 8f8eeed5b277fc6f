"""Pickling with large buffers out of band (pickle protocol 5, PEP 574), for Queue, Pipe and Pool.

    data = dumps(obj)      # a bytes-like object: send it as one message
    obj = loads(data)      # data: what the other side received (bytes, bytearray, memoryview)

Buffers of at least THRESHOLD bytes that an object hands to pickle as ``PickleBuffer`` (numpy
arrays, bytearray, memoryview, ``pickle.PickleBuffer`` of your own types) are not copied into
the pickle stream: dumps() lays them out after it, each at a 64-byte aligned offset, with one copy
of their bytes and no framing around them, and loads() gives them back to pickle as slices of the
received message. So an 8 MiB array costs one copy into the message here, the queue's one copy
into shared memory (out of line, runtime/ipc/bigmsg.hpp), one copy out, and none in loads().

What the receiver gets: ordinary objects that own their memory. When ``data`` is writable (a
bytearray, or a writable memoryview) the out-of-band buffers are views of it and the objects
share it (a numpy array's ``base`` keeps the message alive); when ``data`` is read-only (bytes),
each of them is first copied into a bytearray, so arrays are writable either way, as with the
standard library. ``bytes`` objects are always pickled in band (pickle copies them anyway).

A message without large buffers is a plain pickle (protocol 5), the same bytes _core.dumps
gives; loads() tells the two apart by their first byte (a pickle starts with 0x80, an
out-of-band message with b"MPOB"). Objects that plain pickle refuses (lambdas, closures) go
through cloudpickle when it is installed, as _core.dumps does.

Pool and other callers: ``dumps(obj)`` returns a bytes-like object (bytes or bytearray) to pass
to any call that takes a buffer; ``loads(buf)`` takes any bytes-like object. ``dumps_parts(obj)``
returns the same message as a list of buffers whose concatenation is dumps(obj), for a transport
that can gather (no copy of the large buffers at all on this side).

Pools: ``dumps_to(obj, arena)`` places each large buffer in a pool's data arena (shared memory
that the pool's workers map too, bindings/python/src/arena.c) with one copy, and the message
carries references to them (b"MPOR"): the receiver's loads() adopts each one and gives it to
pickle as a writable view of the shared memory, no copy at all. The objects it makes keep their
extents (a numpy array's ``base``); an extent goes back to the arena when its last object does,
also after the pool is gone (its mapping lives as long as the objects).
"""
import os
import pickle
import struct
import weakref

from . import _core
from . import _mproc

# pickle.loads; a large pickle's objects are made in huge-page arenas (bindings/python/src/numbers.c)
_loads = _mproc.py_loads

__all__ = ["dumps", "dumps_parts", "dumps_to", "join", "loads", "arena_new", "arena_at",
           "THRESHOLD"]

THRESHOLD = 64 * 1024  # bytes: smaller buffers stay in band (one copy either way, no header)
PROTOCOL = 5
_ALIGN = 64
_MAGIC = b"MPOB"
_HEAD = struct.Struct("<4sIQ")  # magic, number of buffers, length of the pickle
_ENTRY = struct.Struct("<QQ")   # offset of a buffer (from the message's start), its length


def _pickle(obj, callback, bufs):
    try:
        return pickle.dumps(obj, PROTOCOL, buffer_callback=callback)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        first = e
    if _core._cloudpickle_mod() is None:
        return _core.dumps(obj)  # raises the error that names the object
    del bufs[:]  # the first try may have taken some before it failed
    try:
        return _core._cloudpickle.dumps(obj, PROTOCOL, buffer_callback=callback)
    except Exception as e2:
        # the same exception types and text as _core.dumps (plain pickle's type, a PicklingError)
        raise _core._pickle_error(first, obj, "") from e2


def dumps_parts(obj):
    """The message for obj as a list of buffers (header + pickle, then padding and each large
    buffer). A single part when nothing went out of band."""
    bufs = []

    def take(pb):
        try:
            raw = pb.raw()  # contiguous bytes of the buffer, or BufferError
        except BufferError:
            return True  # not contiguous: in band (pickle makes a contiguous copy)
        if raw.nbytes < THRESHOLD:
            return True
        bufs.append(raw)
        return False

    data = _pickle(obj, take, bufs)
    if not bufs:
        return [data]
    head_len = _HEAD.size + _ENTRY.size * len(bufs)
    off = head_len + len(data)
    entries, parts = [], []
    for b in bufs:
        pad = -off % _ALIGN
        off += pad
        entries.append(_ENTRY.pack(off, b.nbytes))
        parts.append(bytes(pad))
        parts.append(b)
        off += b.nbytes
    head = _HEAD.pack(_MAGIC, len(bufs), len(data)) + b"".join(entries)
    out = [head, data]
    out.extend(p for p in parts if len(p))
    return out


def dumps(obj):
    """obj pickled with its large buffers out of band: bytes, or a bytearray when some are."""
    return join(dumps_parts(obj))


def join(parts):
    """The message of dumps_parts() in one buffer (the parts themselves when there is one)."""
    if len(parts) == 1:
        return parts[0]
    total = sum(memoryview(p).nbytes for p in parts)
    out = bytearray(total)
    mv = memoryview(out)
    at = 0
    for p in parts:
        n = memoryview(p).nbytes
        mv[at:at + n] = memoryview(p).cast("B")
        at += n
    mv.release()
    return out


def loads(data):
    """The object of a message made by dumps() or dumps_to() (or a plain pickle)."""
    mv = memoryview(data)
    if mv.ndim == 1 and mv.format == "B" and mv.nbytes and mv[0] == 0x80:  # a plain pickle
        return _loads(data)
    if mv.nbytes < _HEAD.size or mv[:4] != _MAGIC:
        if mv.nbytes >= _RHEAD.size and mv[:4] == _REF_MAGIC:
            return _loads_ref(mv)
        return _loads(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    magic, n, plen = _HEAD.unpack_from(mv, 0)
    at = _HEAD.size + _ENTRY.size * n
    if at + plen > mv.nbytes:
        raise pickle.UnpicklingError("truncated message (pickle of %d bytes)" % plen)
    bufs = []
    for i in range(n):
        off, ln = _ENTRY.unpack_from(mv, _HEAD.size + _ENTRY.size * i)
        if off < at + plen or off + ln > mv.nbytes:
            raise pickle.UnpicklingError("corrupt message (buffer %d at %d of %d bytes)"
                                         % (i, off, ln))
        b = mv[off:off + ln]
        bufs.append(bytearray(b) if mv.readonly else b)
    return _loads(mv[at:at + plen], bufs)


# ---- a pool's data arena: large buffers by reference (bindings/python/src/arena.c) -------------
_REF_MAGIC = b"MPOR"
# magic, number of buffers, the arena's (pid, fd, id) as arena_at takes them, length of the pickle
_RHEAD = struct.Struct("<4sIiiQQ")
_REF = 24  # a buffer's reference: slot, offset, length (Extent.detach())
_COORDS = struct.Struct("<iiQ")
NO_ARENA = _COORDS.pack(0, -1, 0)
_arenas = weakref.WeakValueDictionary()  # id -> arena of this process, or one it opened
_opened = {}  # the arenas this process opened (a worker's pool's): kept while it lives


def arena_new():
    """A new data arena of this process (for a pool)."""
    a = _mproc.py_arena_new()
    _arenas[a.coords[2]] = a
    return a


def coords(arena):
    """How another process finds the arena (16 bytes; NO_ARENA for None)."""
    return NO_ARENA if arena is None else _COORDS.pack(*arena.coords)


def arena_at(pid, fd, aid):
    """The arena of those coordinates: this process's own, or the one it opens (a worker)."""
    a = _arenas.get(aid)
    if a is not None:
        return a
    if pid == os.getpid():
        raise pickle.UnpicklingError("the pool's shared memory of this message is gone (the "
                                     "pool was freed before its result was read)")
    a = _mproc.py_arena_open(pid, fd, aid)
    if len(_opened) >= 4:  # a worker serves one pool; a few in case a process serves several
        _opened.pop(next(iter(_opened)))
    _opened[aid] = a
    _arenas[aid] = a
    return a


_last = [b"", None]  # the last coordinates arena_of() saw, and their arena


def arena_of(blob):
    """The arena of coordinates made by coords(), or None."""
    if blob == _last[0]:
        return _last[1]
    pid, fd, aid = _COORDS.unpack(blob)
    a = None if fd < 0 else arena_at(pid, fd, aid)
    _last[:] = [bytes(blob), a]
    return a


def dumps_to(obj, arena, plain=False):
    """obj pickled with each large buffer copied once into the arena, the message carrying
    references to them: bytes (a plain pickle when nothing went out of band). plain: no
    cloudpickle for what pickle refuses (a task's result: MaybeEncodingError, as
    multiprocessing)."""
    exts = []
    put = arena.put

    def take(pb):
        try:
            raw = pb.raw()
        except BufferError:
            return True  # not contiguous: in band
        if raw.nbytes < THRESHOLD:
            return True
        exts.append(put(raw))
        return False

    if plain:
        data = pickle.dumps(obj, PROTOCOL, buffer_callback=take)
    else:
        data = _pickle(obj, take, exts)
    if not exts:
        return data
    pid, fd, aid = arena.coords
    parts = [_RHEAD.pack(_REF_MAGIC, len(exts), pid, fd, aid, len(data))]
    parts.extend(e.detach() for e in exts)  # from here on the message holds them
    parts.append(data)
    return b"".join(parts)


def weight(data):
    """Bytes a message stands for: its own and those of the buffers it references."""
    n = len(data)
    if n >= _RHEAD.size and data[:4] == _REF_MAGIC:
        k = _RHEAD.unpack_from(data, 0)[1]
        for i in range(min(k, (n - _RHEAD.size) // _REF)):
            n += struct.unpack_from("<Q", data, _RHEAD.size + _REF * i + 16)[0]
    return n


def _loads_ref(mv):
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    magic, n, pid, fd, aid, plen = _RHEAD.unpack_from(mv, 0)
    at = _RHEAD.size + _REF * n
    if at + plen > mv.nbytes:
        raise pickle.UnpicklingError("truncated message (pickle of %d bytes)" % plen)
    arena = arena_at(pid, fd, aid)
    adopt = arena.adopt
    bufs = [memoryview(adopt(mv[_RHEAD.size + _REF * i:_RHEAD.size + _REF * (i + 1)]))
            for i in range(n)]
    return _loads(mv[at:at + plen], bufs)


def _forget_arenas():
    """In a forked child: the parent's arenas are not this process's (their held extents were
    made private copies at the fork), so a later message naming one opens it anew."""
    _arenas.clear()
    _opened.clear()
    _last[:] = [b"", None]


os.register_at_fork(after_in_child=_forget_arenas)
