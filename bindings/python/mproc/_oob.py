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
"""
import pickle
import struct

from . import _core

__all__ = ["dumps", "dumps_parts", "join", "loads", "THRESHOLD"]

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
    """The object of a message made by dumps() (or a plain pickle)."""
    mv = memoryview(data)
    if mv.nbytes < _HEAD.size or mv[:4] != _MAGIC:
        return pickle.loads(data)
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
    return pickle.loads(mv[at:at + plen], buffers=bufs)
