"""Value, Array, RawValue, RawArray, atomics and SharedMemory."""
import ctypes

import pytest

import mproc
import helpers
from mproc import shared_memory


def test_value_types_and_lock():
    v = mproc.Value("d", 1.5)
    assert v.value == 1.5
    v.value += 1
    assert v.value == 2.5
    i = mproc.Value(ctypes.c_int, 7)
    assert i.value == 7
    assert isinstance(i.get_lock(), mproc.synchronize.RLock)
    with i.get_lock():
        i.value += 1
    assert i.value == 8
    z = mproc.Value("q")
    assert z.value == 0
    raw = mproc.Value("i", 3, lock=False)
    assert isinstance(raw, ctypes.c_int) and raw.value == 3
    own = mproc.Lock()
    w = mproc.Value("i", 1, lock=own)
    assert w.get_lock()._h is not None
    with pytest.raises(TypeError):
        mproc.Value("?", 1)


def test_atomic_integer_ops(ctx):
    c = mproc.Value("i", 0)
    assert c.fetch_add(5) == 0 and c.load() == 5
    assert c.fetch_sub(2) == 5 and c.value == 3
    assert c.exchange(10) == 3
    assert c.compare_exchange(10, 11) == (True, 10)
    assert c.compare_exchange(10, 12) == (False, 11)
    c.store(0)
    ps = [ctx.Process(target=helpers.atomic_increments, args=(c, 1000)) for _ in range(3)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    assert c.value == 3000


def test_array_indexing_slicing_and_child(ctx):
    a = mproc.Array("d", [1.0, 2.0, 3.0])
    assert len(a) == 3 and a[0] == 1.0 and a[:] == [1.0, 2.0, 3.0] and a[-1] == 3.0
    a[1:3] = [5.0, 6.0]
    assert list(a) == [1.0, 5.0, 6.0]
    p = ctx.Process(target=helpers.double_array, args=(a,))
    p.start()
    p.join()
    assert a[:] == [2.0, 10.0, 12.0]
    zeros = mproc.Array("i", 4)
    assert zeros[:] == [0, 0, 0, 0]
    s = mproc.Array("c", b"hello")
    assert s.value == b"hello"


def test_raw_value_and_array_shared_by_fork():
    rv = mproc.RawValue("i", 1)
    ra = mproc.RawArray("i", [1, 2, 3])
    assert isinstance(rv, ctypes.c_int)

    def child():
        rv.value = 42
        ra[0] = 9

    p = mproc.get_context("fork").Process(target=child)
    p.start()
    p.join()
    assert rv.value == 42 and ra[:] == [9, 2, 3]


def test_shared_memory_create_attach_unlink(ctx):
    m = shared_memory.SharedMemory(create=True, size=16)
    assert m.size == 16 and bytes(m.buf[:4]) == b"\0\0\0\0"
    p = ctx.Process(target=helpers.write_shm, args=(m.name, b"abc"))
    p.start()
    p.join()
    assert p.exitcode == 0 and bytes(m.buf[:3]) == b"abc"
    other = shared_memory.SharedMemory(m.name)
    assert bytes(other.buf[:3]) == b"abc"
    other.close()
    m.unlink()
    m.close()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(m.name)
    with pytest.raises(ValueError):
        shared_memory.SharedMemory(create=True, size=0)


def test_value_under_lock_shared_with_children(ctx):
    v = mproc.Value("i", 0)
    ps = [ctx.Process(target=helpers.value_ops, args=(v, 300)) for _ in range(2)]
    for p in ps:
        p.start()
    helpers.value_ops(v, 300)
    for p in ps:
        p.join()
    assert [p.exitcode for p in ps] == [0, 0]
    assert v.value == 900 and v.get_obj().value == 900  # one memory: wrapper and ctypes view


def test_value_conversions_as_ctypes():
    i = mproc.Value("i", 0)
    i.value = 2 ** 32 + 5  # integers wrap silently, as in ctypes
    assert i.value == 5
    with pytest.raises(TypeError):
        i.value = 1.5
    u = mproc.Value("Q", 2 ** 64 - 1)
    assert u.value == 2 ** 64 - 1
    b = mproc.Value("b", -3)
    assert b.value == -3
    f = mproc.Value("f", 0.5)
    f.value = 3
    assert f.value == 3.0
    c = mproc.Value("c", b"x")
    c.value = b"y"
    assert c.value == b"y"
    with pytest.raises(AttributeError):
        del i.value
    assert i.get_lock() is i.get_lock()
    assert isinstance(i, mproc.sharedctypes.SynchronizedBase)  # as multiprocessing's
    with i:  # the wrapper is its lock's context manager; value re-enters the RLock
        i.value += 1
    assert i.value == 6 and not i.get_lock()._is_owned()


def test_value_with_a_plain_lock():
    lock = mproc.Lock()
    v = mproc.Value("i", 1, lock=lock)
    v.value += 1  # takes and gives back the lock
    assert v.value == 2
    with v.get_lock():
        assert v.get_obj().value == 2
        with pytest.raises(mproc.MprocError):
            v.value  # a Lock is not re-entrant: multiprocessing would deadlock here
