"""Queue, SimpleQueue, JoinableQueue, Pipe/Connection and connection.wait."""
import os
import queue
import time

import pytest

import mproc
import helpers
from mproc import connection


def test_queue_roundtrip_and_empty_full():
    q = mproc.Queue(maxsize=2)
    q.put({"a": [1, 2]})
    q.put_nowait("x")
    with pytest.raises(queue.Full):
        q.put("y", timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_nowait("y")
    assert q.qsize() == 2 and q.full()
    assert q.get() == {"a": [1, 2]} and q.get_nowait() == "x"
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.close()
    with pytest.raises(ValueError):
        q.put(1)


def test_queue_between_processes(ctx):
    q = mproc.Queue()
    items = list(range(100)) + [None]
    p = ctx.Process(target=helpers.put_items, args=(q, items))
    p.start()
    got = []
    while (x := q.get(timeout=60)) is not None:
        got.append(x)
    p.join()
    assert got == list(range(100))


def test_big_puts_while_the_reader_is_away():
    """Messages larger than the ring go to shared memory of their own: the writer's puts return
    while the reader is away; each message arrives once, whole, in order."""
    q = mproc.Queue()
    blobs = [os.urandom(6 << 20) for _ in range(3)]
    p = mproc.Process(target=helpers.put_items, args=(q, blobs + ["end"]))
    p.start()
    time.sleep(0.5)  # the reader is away: the writer's first slices end half-way
    assert [q.get(timeout=60) for _ in range(4)] == blobs + ["end"]
    p.join()
    assert q.empty()


def test_big_message():
    q = mproc.SimpleQueue()
    blob = b"x" * (5 << 20)
    p = mproc.Process(target=helpers.put_items, args=(q, [blob]))
    p.start()
    assert q.get() == blob
    p.join()
    assert q.empty()


def test_joinable_queue(ctx):
    q = mproc.JoinableQueue()
    p = ctx.Process(target=helpers.consume_joinable, args=(q,))
    p.start()
    for i in range(10):
        q.put(i)
    q.put(None)
    q.join()
    p.join()
    with pytest.raises(ValueError):
        q.task_done()


def test_pipe_send_recv_bytes_into_poll():
    a, b = mproc.Pipe()
    a.send({"k": 1})
    assert b.poll(5) and b.recv() == {"k": 1}
    b.send_bytes(b"hello world", 6, 5)
    assert a.recv_bytes() == b"world"
    buf = bytearray(10)
    a.send_bytes(b"abc")
    assert b.recv_bytes_into(buf, 2) == 3 and buf[2:5] == b"abc"
    a.send_bytes(b"x" * 20)
    with pytest.raises(mproc.BufferTooShort):
        b.recv_bytes_into(bytearray(4))
    assert not b.poll()
    a.close()
    with pytest.raises(EOFError):
        b.recv()
    b.close()


def test_one_way_pipe_and_child_echo():
    r, w = mproc.Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable
    with pytest.raises(OSError):
        r.send(1)
    a, b = mproc.Pipe()
    p = mproc.Process(target=helpers.echo_pipe, args=(b,))
    p.start()
    for i in range(5):
        a.send(i)
        assert a.recv() == i
    a.send(None)
    p.join()
    a.close()
    assert p.exitcode == 0


def test_connection_wait_on_pipes_and_sentinels():
    a, b = mproc.Pipe()
    assert connection.wait([b], timeout=0.01) == []
    a.send(1)
    assert connection.wait([b], timeout=5) == [b]
    p = mproc.Process(target=helpers.exit_with, args=(0,))
    p.start()
    assert connection.wait([p.sentinel], timeout=60) == [p.sentinel]
    p.join()


def test_reader_view_makes_no_cycle():
    """concurrent.futures reads a context queue's _reader: the view must not keep the queue (and
    its shared memory) alive until the cyclic collector runs."""
    import gc
    import weakref
    gc.disable()
    try:
        q = mproc.SimpleQueue()
        r = q._reader
        q.put(5)
        assert r.poll(5) and r.recv() == 5
        ref = weakref.ref(q)
        del q
        assert ref() is None
        with pytest.raises(ValueError):
            r.recv()
    finally:
        gc.enable()
