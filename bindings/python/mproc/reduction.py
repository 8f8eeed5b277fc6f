"""multiprocessing.reduction: the standard library's module, re-exported, with send_handle and
recv_handle that also take mproc's Connections.

An mproc Connection's fileno() is a pollable fd (readable while a message waits), not a socket,
so the standard helpers, which open a socket on conn.fileno(), cannot use it. Every duplex mproc
pipe also has a Unix socket pair that carries no message data (it tells each end when the other
is closed); fds travel on it. Importing mproc installs these two functions in the standard
module as well (they hand any other connection to the standard functions unchanged), so that
`from multiprocessing.reduction import send_handle` works on an mproc Pipe too."""
import socket as _socket

from multiprocessing import reduction as _std
from multiprocessing.reduction import (ForkingPickler, register, dump, DupFd,  # noqa: F401
                                       sendfds, recvfds, ACKNOWLEDGE, HAVE_SEND_HANDLE,
                                       AbstractReducer)

from . import _mproc

__all__ = ["send_handle", "recv_handle", "ForkingPickler", "register", "dump", "DupFd",
           "sendfds", "recvfds"]

_std_send_handle = getattr(_std.send_handle, "_std", _std.send_handle)
_std_recv_handle = getattr(_std.recv_handle, "_std", _std.recv_handle)


def _conn_socket(conn):
    """The fd-carrying socket of an mproc Connection, or None for any other object."""
    from .connection import Connection
    if not isinstance(conn, Connection):
        return None
    conn._check()
    return _mproc.mproc_conn_socket(conn._h)


def send_handle(conn, handle, destination_pid):
    """Send the fd `handle` over the connection (as multiprocessing.reduction.send_handle)."""
    sock = _conn_socket(conn)
    if sock is None:
        return _std_send_handle(conn, handle, destination_pid)
    with _socket.fromfd(sock, _socket.AF_UNIX, _socket.SOCK_STREAM) as s:
        sendfds(s, [handle])


def recv_handle(conn):
    """Receive an fd sent by send_handle (a new fd this process owns)."""
    sock = _conn_socket(conn)
    if sock is None:
        return _std_recv_handle(conn)
    with _socket.fromfd(sock, _socket.AF_UNIX, _socket.SOCK_STREAM) as s:
        return recvfds(s, 1)[0]


send_handle._std = _std_send_handle
recv_handle._std = _std_recv_handle
_std.send_handle = send_handle
_std.recv_handle = recv_handle


def __getattr__(name):
    return getattr(_std, name)
