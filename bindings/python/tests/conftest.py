"""Shared fixtures: every test leaves no child process, thread, fd or /dev/shm name behind (it
fails otherwise, as the C suites' teardown does)."""
import gc
import os
import struct
import threading
import time

import pytest

import mproc

LEAK_GRACE = 5.0  # seconds of asynchronous teardown (reaping, thread exit) allowed to a test


def _children():
    """Pids whose parent is this process, zombies included."""
    me, out = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(pid))
    return out


def _fds():
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add((int(fd), os.readlink("/proc/self/fd/" + fd)))
        except OSError:
            pass  # the listing's own fd
    return out


def _shm_creator(name):
    """Creator pid in the 64-byte trailer of an mproc /dev/shm block (runtime/shm.cpp), or 0."""
    try:
        with open("/dev/shm/" + name, "rb") as f:
            f.seek(-64, os.SEEK_END)
            return struct.unpack_from("<QQQ", f.read(64))[2]
    except (OSError, struct.error):
        return 0


def _ours(pid):
    """True for this process, a descendant, or a process that is gone (it may have been ours).
    Names made by other programs on the machine (other test runs) are not ours."""
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            with open("/proc/%d/stat" % pid) as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return True
    return False


def _shm():
    return {n for n in os.listdir("/dev/shm") if "mproc" in n}


def snapshot():
    return {
        "children": _children(),
        "threads": {t.ident for t in threading.enumerate()},
        "native threads": set(os.listdir("/proc/self/task")),
        "fds": _fds(),
        "/dev/shm": _shm(),
    }


def leaks(before):
    """What exists now and did not before (after a garbage collection)."""
    gc.collect()
    now = snapshot()
    out = {k: now[k] - before[k] for k in now}
    out["threads"] = [t for t in threading.enumerate() if t.ident in out["threads"]]
    out["/dev/shm"] = {n for n in out["/dev/shm"] if _ours(_shm_creator(n))}
    return {k: v for k, v in out.items() if v}


def wait_clean(before, grace=LEAK_GRACE):
    """Poll until nothing is left over (asynchronous teardown), up to grace seconds; what is
    still left then."""
    deadline = time.monotonic() + grace
    while True:
        left = leaks(before)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _warm_up():
    """Start what the runtime keeps for the process's life (supervisor thread, forkserver,
    arenas), so that a test that is first to use it is not charged with it."""
    for method in ("fork", "forkserver"):
        p = mproc.get_context(method).Process(target=int)
        p.start()
        p.join()
        p.close()
    with mproc.Pool(1) as pool:
        pool.apply(int)
    del pool
    objs = [mproc.Lock(), mproc.RLock(), mproc.Semaphore(), mproc.Condition(), mproc.Event(),
            mproc.Barrier(1), mproc.Queue(), mproc.Value("i"), mproc.Array("i", 4), mproc.Pipe()]
    del objs
    gc.collect()


@pytest.fixture(scope="session")
def _runtime_started():
    _warm_up()


@pytest.fixture(autouse=True)
def no_leaks(_runtime_started, request):
    before = snapshot()
    yield
    # Torn down last (set up first): the test's other fixtures are finished, but pytest still
    # holds their values until after teardown; drop them so that their objects can be freed.
    request.node.funcargs.clear()
    left = wait_clean(before)
    for p in mproc.active_children():  # so that one leak does not fail the tests after it
        p.kill()
        p.join()
    assert not left, "test left behind: %r" % left


@pytest.fixture(params=["fork", "forkserver"])
def pool(request):
    """A two-worker pool of each start method that forks, terminated after the test."""
    p = mproc.get_context(request.param).Pool(2)
    yield p
    p.terminate()
    p.join()


@pytest.fixture(params=["fork", "forkserver"])
def ctx(request):
    return mproc.get_context(request.param)
