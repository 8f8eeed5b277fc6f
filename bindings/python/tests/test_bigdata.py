"""Large data: messages larger than a queue's ring (put never waits for a reader) and large
buffers out of band (_oob.py) through Queue and Pipe."""
import os
import pickle
import queue

import pytest

import mproc
import helpers
from mproc import _oob

np = pytest.importorskip("numpy")


def put_big_results(q, sizes):
    for i, n in enumerate(sizes):
        q.put(np.full(n, i, dtype=np.uint8))


def echo_objects(conn, n):
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def test_big_put_needs_no_reader():
    q = mproc.Queue()
    blob = b"x" * 4_000_000
    q.put(blob, timeout=3)  # no reader: returns, as the standard library's put does
    q.put(blob)
    q.put_nowait(b"y" * 3_000_000)
    assert q.get() == blob and q.get() == blob
    assert q.get_nowait() == b"y" * 3_000_000
    assert q.empty()


def test_bounded_queue_still_blocks_by_count():
    q = mproc.Queue(maxsize=1)
    q.put(b"x" * (4 << 20))
    with pytest.raises(queue.Full):
        q.put(b"x" * (4 << 20), timeout=0.05)
    with pytest.raises(queue.Full):
        q.put_nowait(b"small")
    assert len(q.get()) == 4 << 20
    q.put_nowait(b"small")
    assert q.get() == b"small"


def test_child_puts_large_results_and_exits_before_they_are_read(ctx):
    q = ctx.Queue()
    sizes = [3 << 20, 5 << 20, 100, 9 << 20]
    p = ctx.Process(target=put_big_results, args=(q, sizes))
    p.start()
    p.join()
    assert p.exitcode == 0
    for i, n in enumerate(sizes):
        a = q.get(timeout=10)
        assert a.shape == (n,) and a.dtype == np.uint8 and int(a[0]) == i and int(a[-1]) == i
    assert q.empty()


def test_arrays_through_queue_are_whole_and_writable():
    q = mproc.Queue()
    a = np.arange(1 << 20, dtype=np.float64).reshape(1024, 1024)
    objs = {
        "c": a,
        "f": np.asfortranarray(a[:512]),
        "strided": a[::2, ::3],  # not contiguous: in band
        "small": np.arange(5),
        "ba": bytearray(os.urandom(200_000)),
        "mv": memoryview(bytearray(b"m" * 100_000)),
        "text": "not a buffer",
    }
    q.put(objs)
    got = q.get()
    for k in ("c", "f", "strided", "small"):
        assert got[k].dtype == objs[k].dtype and np.array_equal(got[k], objs[k])
        assert got[k].flags.writeable
    assert got["f"].flags.f_contiguous
    got["c"][0, 0] = -1  # the receiver owns its copy
    assert a[0, 0] == 0
    assert got["ba"] == objs["ba"] and bytes(got["mv"]) == b"m" * 100_000
    assert got["text"] == "not a buffer"


def test_arrays_through_pipe_both_ways():
    a, b = mproc.Pipe()
    p = mproc.Process(target=echo_objects, args=(b, 3))
    p.start()
    b.close()
    arrays = [np.random.default_rng(1).random((512, 2048)), np.arange(10), np.zeros(0)]
    for x in arrays:
        a.send(x)
        y = a.recv()
        assert y.dtype == x.dtype and y.shape == x.shape and np.array_equal(x, y)
    p.join()
    assert p.exitcode == 0
    a.close()


def test_queue_between_processes_with_arrays(ctx):
    q = ctx.Queue()
    items = [np.full(3 << 20, 7, dtype=np.int8), None]
    p = ctx.Process(target=helpers.put_items, args=(q, items))
    p.start()
    got = q.get(timeout=60)
    assert q.get(timeout=60) is None
    p.join()
    assert got.shape == (3 << 20,) and int(got.sum()) == 7 * (3 << 20)


class Blob:
    """A type of one's own with a buffer out of band (PEP 574)."""

    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        return Blob, (pickle.PickleBuffer(self.data),)


def test_oob_format():
    small = {"x": [1, 2, 3], "a": np.arange(10)}
    assert _oob.dumps(small) == pickle.dumps(small, 5)  # no large buffer: a plain pickle
    assert _oob.loads(pickle.dumps(small, 2))["x"] == [1, 2, 3]  # a plain pickle is read too
    big = bytearray(b"z" * (1 << 20))
    data = _oob.dumps(Blob(big))
    assert isinstance(data, bytearray) and data[:4] == b"MPOB"
    assert len(data) < len(big) + 4096  # one copy of the buffer, no framing around it
    parts = _oob.dumps_parts(Blob(big))
    assert b"".join(bytes(p) for p in parts) == data
    got = _oob.loads(bytes(data))  # read-only message: the buffer is copied, writable
    assert isinstance(got.data, bytearray) and got.data == big
    got = _oob.loads(data)  # writable message: a view of it, no copy
    assert isinstance(got.data, memoryview) and got.data.obj is data and got.data == big
    with pytest.raises(pickle.UnpicklingError):
        _oob.loads(bytes(data[:100]))
    assert _oob.loads(_oob.dumps(lambda v: v * 2))(21) == 42  # cloudpickle, as _core.dumps


def test_unpicklable_object_names_itself():
    import threading
    with pytest.raises((pickle.PicklingError, TypeError)):
        _oob.dumps({"lock": threading.Lock(), "a": np.zeros(1 << 20)})


def _pattern(n, i):
    """n bytes that depend on their position and on i (a reordering shows)."""
    return (np.arange(n, dtype=np.uint64) * 7 + i).astype(np.uint8)


def send_sizes_then_close(conn, sizes):
    for i, n in enumerate(sizes):
        conn.send(_pattern(n, i))
    conn.send_bytes(b"b" * (3 << 20))
    conn.close()


def test_pipe_large_messages_arrive_whole_in_memory_of_their_own():
    """A large message of a pipe is gathered in the sender's kept buffer (one larger than it
    keeps gets memory for itself) and taken by the receiver into memory of its own: arrays that
    own it (writable), every byte in place, then EOF."""
    sizes = [(2 << 20) + 7, 1 << 20, (1 << 20) - 1, 100, 5000, 600_000, (40 << 20) + 3,
             5 << 20]
    rx, tx = mproc.Pipe(duplex=False)
    p = mproc.Process(target=send_sizes_then_close, args=(tx, sizes))
    p.start()
    tx.close()
    for i, n in enumerate(sizes):
        y = rx.recv()
        assert y.shape == (n,) and y.dtype == np.uint8
        assert np.array_equal(y, _pattern(n, i))
        y[0] = 0  # writable: the receiver's own
    assert rx.recv_bytes() == b"b" * (3 << 20)
    with pytest.raises(EOFError):
        rx.recv()
    p.join()
    assert p.exitcode == 0
    rx.close()


def test_pipe_send_of_large_parts_to_a_closed_reader_raises():
    rx, tx = mproc.Pipe(duplex=False)
    rx.close()
    with pytest.raises(BrokenPipeError):
        tx.send(np.zeros(1 << 20))
    with pytest.raises(OSError):
        tx.recv()  # write-only end, as the standard library's
    tx.close()
    with pytest.raises(OSError):
        tx.send(np.zeros(1 << 20))  # closed


@pytest.mark.parametrize("inner", [300_000, 8_000_000])
def test_pipe_send_from_a_signal_handler_while_a_send_waits(inner):
    """A signal handler that sends a large message on a pipe while this thread's send of one
    waits for room: each message arrives whole (the waiting send owns its buffer)."""
    import signal
    import threading
    import time
    ra, wa = mproc.Pipe(duplex=False)
    rb, wb = mproc.Pipe(duplex=False)
    got = {}

    def read_b():
        got["b"] = rb.recv()

    def read_a_later():
        time.sleep(0.6)  # the outer send waits meanwhile; the alarm comes in that wait
        got["filler"] = ra.recv_bytes()
        got["a"] = ra.recv()

    def handler(signum, frame):
        wb.send(_pattern(inner, 2))
        got["handled"] = True

    old = signal.signal(signal.SIGALRM, handler)
    tb = threading.Thread(target=read_b)
    ta = threading.Thread(target=read_a_later)
    tb.start()
    ta.start()
    try:
        wa.send_bytes(b"f" * 200_000)  # most of the ring: the next send must wait for room
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        wa.send(_pattern(300_000, 1))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        ta.join(30)
        tb.join(30)
    assert got.get("handled")
    assert np.array_equal(got["a"], _pattern(300_000, 1))
    assert np.array_equal(got["b"], _pattern(inner, 2))
    for c in (ra, wa, rb, wb):
        c.close()


def _send_one_big(conn, n):
    conn.send(_pattern(n, 3))


def test_pipe_send_buffers_of_ended_threads_are_given_back():
    """Each thread's kept send buffer goes with the thread."""
    import threading
    rx, tx = mproc.Pipe(duplex=False)

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    n = 20 << 20
    base = None
    for i in range(8):
        t = threading.Thread(target=_send_one_big, args=(tx, n))
        t.start()
        assert np.array_equal(rx.recv(), _pattern(n, 3))
        t.join()
        if i == 1:
            base = rss()
    assert rss() - base < 40 << 20, "send buffers of ended threads are kept"
    rx.close()
    tx.close()


def _send_half_then_die(conn):
    import signal
    # a message larger than the ring streams: the child dies while the parent reads it
    import threading
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    conn.send_bytes(b"h" * (64 << 20))


def test_pipe_sender_dead_in_the_middle_of_a_message():
    """As multiprocessing: OSError("got end of file during message") when the sender went in
    the middle of a message, EOFError at a message boundary."""
    import time
    rx, tx = mproc.Pipe(duplex=False)
    p = mproc.Process(target=_send_half_then_die, args=(tx,))
    p.start()
    tx.close()
    deadline = time.monotonic() + 30
    while not rx.poll(0.05) and time.monotonic() < deadline:
        pass
    time.sleep(0.5)  # the sender is killed with most of its message unsent
    with pytest.raises(OSError, match="got end of file during message"):
        rx.recv_bytes()
    p.join()
    with pytest.raises(EOFError):
        rx.recv_bytes()
    rx.close()
