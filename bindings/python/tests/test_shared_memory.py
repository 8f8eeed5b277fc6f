"""shared_memory as the standard library's (issue 19): blocks attached by name both ways with
multiprocessing.shared_memory, close() then unlink(), ShareableList, OSError with errno. The
standard library's side runs in a separate interpreter (its resource tracker is its child)."""
import errno
import os
import pickle
import subprocess
import sys

import pytest

import mproc
from mproc import shared_memory

STD_SIDE = """
import sys
from multiprocessing import shared_memory as s, resource_tracker
b = s.SharedMemory(sys.argv[1])
resource_tracker.unregister(b._name, "shared_memory")  # not its block: do not unlink at exit
print(bytes(b.buf[:5]).decode(), b.size >= 100)
b.buf[5:7] = b"!!"
b.close()
c = s.SharedMemory(create=True, size=50)
resource_tracker.unregister(c._name, "shared_memory")  # the test unlinks it
c.buf[:3] = b"std"
print(c.name)
"""


def test_standard_library_and_mproc_attach_each_others_blocks():
    a = shared_memory.SharedMemory(create=True, size=100)
    a.buf[:5] = b"hello"
    assert os.path.exists("/dev/shm/" + a.name)   # the name is the file's name
    out = subprocess.run([sys.executable, "-c", STD_SIDE, a.name], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen, big_enough, std_name = out.stdout.split()
    assert seen == "hello" and big_enough == "True"
    assert bytes(a.buf[:7]) == b"hello!!"         # its write is in our block
    b = shared_memory.SharedMemory(std_name)       # the standard library's block
    try:
        assert b.name == std_name and b.size == 50 and bytes(b.buf[:3]) == b"std"
    finally:
        b.close()
        b.unlink()
    assert not os.path.exists("/dev/shm/" + std_name)
    a.close()
    a.unlink()                                      # after close(), as the standard docs do
    assert not os.path.exists("/dev/shm/" + a.name)


def test_close_then_unlink_and_names_with_or_without_prefix():
    a = shared_memory.SharedMemory(name="dropin-%d" % os.getpid(), create=True, size=10)
    assert a.name == "mproc-dropin-%d" % os.getpid()
    for n in (a.name, "dropin-%d" % os.getpid(), "/" + a.name):
        b = shared_memory.SharedMemory(n)
        b.buf[0] = 7
        b.close()
    assert a.buf[0] == 7
    a.close()
    a.unlink()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(a.name)
    with pytest.raises(ValueError):
        shared_memory.SharedMemory(name="mproc-x", create=True, size=10)


def _bump(name):
    lst = shared_memory.ShareableList(name=name)
    lst[0] += 1
    lst[2] = "child"
    lst.shm.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_shareable_list(method):
    lst = shared_memory.ShareableList([1, 2.5, "parent", b"b", None])
    assert lst.shm.name.startswith("mproc-") and isinstance(lst.shm, shared_memory.SharedMemory)
    p = mproc.get_context(method).Process(target=_bump, args=(lst.shm.name,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert list(lst) == [2, 2.5, "child", b"b", None]
    assert list(pickle.loads(pickle.dumps(lst))) == list(lst)
    lst.shm.close()
    lst.shm.unlink()


def test_os_failures_are_os_errors_with_errno():
    with pytest.raises(OSError) as e:
        shared_memory.SharedMemory(create=True, size=1 << 62)
    assert e.value.errno == errno.ENOMEM
    with pytest.raises(OSError) as e:
        shared_memory.SharedMemory(name="bad/name", create=True, size=10)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError) as e:
        shared_memory.SharedMemory("no-such-block")
    assert e.value.errno == errno.ENOENT
    assert "mproc_" not in str(e.value)


def test_close_refuses_while_a_slice_of_buf_lives():
    """As mmap.close() in the standard library: BufferError, and the slice stays valid."""
    shm = shared_memory.SharedMemory(create=True, size=100)
    try:
        v = shm.buf[:10]
        v[0] = 7
        with pytest.raises(BufferError):
            shm.close()
        assert v[0] == 7
        v.release()
        shm.close()
    finally:
        shm.unlink()
