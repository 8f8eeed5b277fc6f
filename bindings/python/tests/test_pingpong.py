"""Hand-offs between processes, 10^5 per test: a lost wake-up stops them all, and then every
wait gives up after WAIT seconds, so a lost wake-up fails the test instead of hanging it."""
import threading

import pytest

import mproc

TOTAL = 100_000  # hand-offs per test
WAIT = 10.0      # a hand-off waited for this long was lost


def _run(nprocs, body):
    """Run body(k) in nprocs processes; each must exit 0."""
    ps = [mproc.Process(target=body, args=(k,)) for k in range(nprocs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(4 * WAIT)
    for p in ps:
        if p.exitcode is None:
            p.kill()
            p.join()
    codes = [p.exitcode for p in ps]
    for p in ps:
        p.close()
    assert codes == [0] * nprocs


@pytest.mark.parametrize("nprocs", [2, 4])
@pytest.mark.parametrize("notify_all", [False, True], ids=["notify", "notify_all"])
def test_condition_pingpong(nprocs, notify_all):
    cond, count = mproc.Condition(), mproc.Value("q", 0, lock=False)

    def body(k):
        with cond:
            while count.value < TOTAL:
                count.value += 1
                if notify_all:
                    cond.notify_all()
                else:
                    cond.notify()
                if count.value >= TOTAL:
                    break
                if not cond.wait(WAIT):
                    raise SystemExit("process %d: wake-up lost at %d" % (k, count.value))
            cond.notify_all()  # the others leave too
    _run(nprocs, body)
    assert count.value == TOTAL


def _ring(nprocs, make, wait, give):
    """Process k waits for its turn on objs[k] and passes it to objs[k + 1]: TOTAL turns."""
    objs = [make() for _ in range(nprocs)]
    rounds = TOTAL // nprocs

    def body(k):
        for _ in range(rounds):
            if not wait(objs[k]):
                raise SystemExit("process %d: hand-off lost" % k)
            give(objs[(k + 1) % nprocs])
    give(objs[0])
    _run(nprocs, body)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_event_pingpong(nprocs):
    def wait(e):
        ok = e.wait(WAIT)
        e.clear()
        return ok
    _ring(nprocs, mproc.Event, wait, lambda e: e.set())


@pytest.mark.parametrize("nprocs", [2, 4])
def test_semaphore_pingpong(nprocs):
    _ring(nprocs, lambda: mproc.Semaphore(0), lambda s: s.acquire(timeout=WAIT),
          lambda s: s.release())


@pytest.mark.parametrize("nprocs", [2, 4])
def test_barrier_pingpong(nprocs):
    b = mproc.Barrier(nprocs, timeout=WAIT)
    rounds = TOTAL // nprocs

    def body(k):
        for _ in range(rounds):
            b.wait()  # BrokenBarrierError (exit 1) when a party was lost for WAIT
    _run(nprocs, body)


def test_broken_barrier_error_from_the_core():
    b = mproc.Barrier(2)
    b.abort()  # the core returns MPROC_EBROKEN
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(WAIT)
