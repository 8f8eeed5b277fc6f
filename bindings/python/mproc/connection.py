"""Pipe, Connection and wait (multiprocessing.connection) on mproc's message pipes. send() and
recv() carry large buffers (numpy arrays, bytearray ...) out of band (_oob.py)."""
import selectors
import sys
import time

from . import _core
from . import _mproc
from . import _oob

__all__ = ["Pipe", "Connection", "wait", "Listener", "Client"]

# Sockets between unrelated processes: the standard library's (they use the same authkey, the
# standard one, as mproc's processes).
from multiprocessing.connection import (Listener, Client, deliver_challenge,  # noqa: E402,F401
                                        answer_challenge)
from ._core import AuthenticationError, BufferTooShort  # noqa: E402,F401


def _attach(token, readable, writable):
    return Connection(_mproc.mproc_conn_attach(token), readable, writable)


class Connection:
    def __init__(self, h, readable=True, writable=True):
        self._h = h
        self._readable = readable
        self._writable = writable

    def __reduce__(self):
        # A spawned child gets the end's fds at the same numbers (as the standard library's
        # spawn passes fds); fork children inherit the object itself.
        from multiprocessing import context as std_context
        popen = std_context.get_spawning_popen()
        if popen is None or self._h is None:
            raise TypeError("a Connection is shared with children made by fork (inheritance) "
                            "or spawn (its fds passed) only")
        token = _mproc.mproc_conn_export(self._h)
        fields = token.split(":")  # mproc-conn:sock:memfd:len:evfd0:evfd1:in:out
        for fd in (fields[1], fields[2], fields[4], fields[5]):
            if int(fd) >= 0:
                popen.duplicate_for_child(int(fd))
        return _attach, (token, self._readable, self._writable)

    @property
    def closed(self):
        return self._h is None

    @property
    def readable(self):
        return self._readable

    @property
    def writable(self):
        return self._writable

    def _check(self, readable=False, writable=False):
        if self._h is None:
            raise OSError("handle is closed")
        if readable and not self._readable:
            raise OSError("connection is write-only")
        if writable and not self._writable:
            raise OSError("connection is read-only")

    def fileno(self):
        self._check()
        return _mproc.mproc_conn_fileno(self._h)

    def close(self):
        if self._h is not None:
            h, self._h = self._h, None
            _mproc.mproc_conn_free(h)

    def send_bytes(self, buf, offset=0, size=None):
        self._check(writable=True)
        m = memoryview(buf).cast("B")
        if offset < 0 or offset > len(m):
            raise ValueError("offset is negative or too large")
        if size is None:
            size = len(m) - offset
        if size < 0 or offset + size > len(m):
            raise ValueError("size is negative or buffer too small")
        self._send_parts([m[offset:offset + size]])

    def _send_parts(self, parts):
        # The wait for room in slices (signal handlers run; Ctrl-C raises before anything is
        # sent); several parts (a pickle and its large buffers) are gathered in C into a buffer
        # kept for this thread, not joined into a new bytearray per message (fresh pages cost
        # more than the copy).
        try:
            _mproc.py_conn_send_parts(self._h, parts)
        except BrokenPipeError:
            raise
        except _core.MprocError as e:
            if _core.code_of(e) == _core.E.EPIPE:
                raise BrokenPipeError(str(e)) from None
            raise

    def send(self, obj):
        self._check(writable=True)
        self._send_parts(_oob.dumps_parts(obj))

    def recv_bytes(self, maxlength=None):
        self._check(readable=True)
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        try:  # straight into the bytes returned
            data = _mproc.py_conn_recv_msg(self._h, -1.0, sys.maxsize)
        except BrokenPipeError:
            raise EOFError from None
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf, offset=0):
        data = self.recv_bytes()
        m = memoryview(buf).cast("B")
        if offset < 0 or offset > len(m):
            raise ValueError("offset out of bounds")
        if len(data) > len(m) - offset:
            raise _core.BufferTooShort(data)
        m[offset:offset + len(data)] = data
        return len(data)

    def recv(self):
        self._check(readable=True)
        try:
            # a message of 1 MiB or more arrives in memory of its own that the objects view
            data = _mproc.py_conn_recv_msg(self._h, -1.0, 1 << 20)
        except BrokenPipeError:
            raise EOFError from None
        return _oob.loads(data)

    def poll(self, timeout=0.0):
        self._check(readable=True)
        return _mproc.py_conn_poll(self._h, -1.0 if timeout is None else max(0.0, timeout))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None and _mproc is not None:
            try:
                self.close()
            except Exception:
                pass


def Pipe(duplex=True):
    a, b = _mproc.mproc_pipe(1 if duplex else 0)
    if duplex:
        return Connection(a), Connection(b)
    return Connection(a, True, False), Connection(b, False, True)


def wait(object_list, timeout=None):
    """Objects of object_list that are ready: Connections with a message (or EOF), process
    sentinels and any object with fileno() / int fds that are readable."""
    with selectors.DefaultSelector() as sel:
        for obj in object_list:
            sel.register(obj, selectors.EVENT_READ)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = [key.fileobj for key, _ in sel.select(left)]
            if ready or (deadline is not None and time.monotonic() >= deadline):
                return ready
