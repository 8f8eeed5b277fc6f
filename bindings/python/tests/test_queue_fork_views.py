"""A received large object is its receiver's own memory, also across a fork.

Queue.get hands a large message over as a view of the queue's shared memory (an array's base,
a PickleBuffer's memoryview). A child forked afterwards must get a copy of it, as with
multiprocessing (where the fork copies the parent's memory): each side's writes stay its own,
and the parent giving the message back (the queue then reuses its memory) leaves the child's
object as it was. numpy is optional: only its case is skipped without it.
"""
import pickle

import pytest

import mproc

N = 3 << 20  # over half the queue's ring (2 MiB): out of line, handed over in shared memory
HELD = {}    # what the forked child reads: inherited, not pickled


def pattern(seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(256)) * (N // 256)


def make_numpy():
    np = pytest.importorskip("numpy")
    return np.frombuffer(pattern(1), dtype=np.uint8).copy()


KINDS = {
    # kind: (object to put, writable memoryview of the received object or None)
    "numpy": (make_numpy, lambda got: memoryview(got)),
    "picklebuffer": (lambda: pickle.PickleBuffer(bytearray(pattern(1))), lambda got: got),
    "bytearray": (lambda: bytearray(pattern(1)), lambda got: memoryview(got)),
    "bytes": (lambda: pattern(1), lambda got: None),
}


def child_writes_own_view(kind, wrote, go):
    got = HELD[kind]
    view = KINDS[kind][1](got)
    if bytes(memoryview(got)) != pattern(1):
        raise SystemExit(1)
    if view is not None:
        view[:4096] = b"\xaa" * 4096
        view[-1] = 0xAA
    wrote.set()
    if not go.wait(10):
        raise SystemExit(2)
    # The parent wrote its own view, gave the message back and took another in its memory.
    want = bytearray(pattern(1))
    if view is not None:
        want[:4096] = b"\xaa" * 4096
        want[-1] = 0xAA
    if bytes(memoryview(got)) != bytes(want):
        raise SystemExit(3)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_received_object_is_private_after_fork(kind):
    make, view_of = KINDS[kind]
    obj = make()
    ctx = mproc.get_context("fork")
    q = ctx.Queue()
    wrote, go = ctx.Event(), ctx.Event()
    q.put(obj)
    del obj
    got = q.get(timeout=10)
    view = view_of(got)
    if kind in ("numpy", "picklebuffer"):
        assert view is not None and not view.readonly  # a writable view of the message
    HELD[kind] = got
    p = ctx.Process(target=child_writes_own_view, args=(kind, wrote, go))
    try:
        p.start()
        assert wrote.wait(10)
        assert bytes(memoryview(got)) == pattern(1)  # the child's writes are its own
        if view is not None:
            view[:4096] = b"\x55" * 4096  # ours: the child must not see them
        # Give the message back; the next one of its size reuses its memory.
        del HELD[kind]
        del got, view
        q.put(make_next(kind))
        again = q.get(timeout=10)
        assert bytes(memoryview(again)) == pattern(2)
        go.set()
        p.join(30)
        assert p.exitcode == 0
        assert bytes(memoryview(again)) == pattern(2)  # and the child's writes stay there
        del again
    finally:  # also after a failed check: no child or queue left behind
        HELD.pop(kind, None)
        go.set()
        if p.is_alive():
            p.join(30)
    q.close()


def make_next(kind):
    if kind == "numpy":
        np = pytest.importorskip("numpy")
        return np.frombuffer(pattern(2), dtype=np.uint8).copy()
    if kind == "picklebuffer":
        return pickle.PickleBuffer(bytearray(pattern(2)))
    if kind == "bytearray":
        return bytearray(pattern(2))
    return pattern(2)
