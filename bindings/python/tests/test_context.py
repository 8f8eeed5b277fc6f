"""Contexts (issue 19): every context offers what the package offers, bound to its start method,
as multiprocessing.context's do; concurrent.futures takes mproc's contexts, and mproc's executor
takes the standard library's."""
import concurrent.futures as cf
import multiprocessing
import os

import pytest

import mproc
import mproc.context

METHODS = ["fork", "forkserver", "spawn"]


def square(x):
    return x * x


def put(d, k):
    d[k] = k * k


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


@pytest.mark.parametrize("method", METHODS + [None])
def test_context_has_every_standard_name(method):
    ctx = mproc.get_context(method)
    missing = _public(multiprocessing.get_context("fork")) - _public(ctx)
    assert not missing
    assert ctx.get_start_method() == (method or mproc.get_start_method())


def test_context_classes_importable():
    for name in ("BaseContext", "DefaultContext", "ForkContext", "ForkServerContext",
                 "SpawnContext", "ForkProcess", "ForkServerProcess", "SpawnProcess"):
        assert hasattr(mproc.context, name), name
    assert isinstance(mproc.get_context("fork"), mproc.context.ForkContext)
    assert isinstance(mproc.get_context("forkserver"), mproc.context.ForkServerContext)
    assert isinstance(mproc.get_context("spawn"), mproc.context.SpawnContext)
    assert mproc.get_context("spawn").Process is mproc.context.SpawnProcess
    with pytest.raises(ValueError, match="cannot find context"):
        mproc.get_context("nope")
    with pytest.raises(ValueError):
        mproc.get_context("fork").set_start_method("spawn")


def _child_uses(objs, out):
    lock, rlock, sem, bsem, cond, ev, bar, val, arr, q, jq, sq = objs
    with lock, rlock, sem, bsem, cond:
        val.value += 1
        arr[0] = 7
    ev.set()
    bar.wait(30)
    q.put("q")
    jq.put("jq")
    sq.put(os.getpid())


@pytest.mark.parametrize("method", METHODS)
def test_context_factories_make_working_objects(method):
    ctx = mproc.get_context(method)
    objs = (ctx.Lock(), ctx.RLock(), ctx.Semaphore(2), ctx.BoundedSemaphore(1), ctx.Condition(),
            ctx.Event(), ctx.Barrier(2), ctx.Value("i", 1), ctx.Array("i", 3), ctx.Queue(),
            ctx.JoinableQueue(), ctx.SimpleQueue())
    assert isinstance(objs[0], mproc.synchronize.Lock)
    raw = ctx.RawValue("d", 1.5), ctx.RawArray("i", [1, 2])
    assert raw[0].value == 1.5 and list(raw[1]) == [1, 2]
    p = ctx.Process(target=_child_uses, args=(objs, None))
    assert type(p).__name__ == {"fork": "ForkProcess", "forkserver": "ForkServerProcess",
                                "spawn": "SpawnProcess"}[method]
    p.start()
    objs[6].wait(30)
    p.join(30)
    assert p.exitcode == 0
    assert objs[5].is_set() and objs[7].value == 2 and objs[8][0] == 7
    assert objs[9].get(timeout=10) == "q" and objs[10].get(timeout=10) == "jq"
    assert objs[11].get() == p.pid
    objs[10].task_done()


def _send_pid(conn):
    conn.send(os.getpid())


@pytest.mark.parametrize("method", METHODS)
def test_context_pipe(method):
    ctx = mproc.get_context(method)
    a, b = ctx.Pipe()
    p = ctx.Process(target=_send_pid, args=(b,))
    if method == "forkserver":  # documented: its request carries no fds
        with pytest.raises(TypeError, match="forkserver"):
            p.start()
    else:
        p.start()
        assert a.poll(30) and a.recv() == p.pid
        p.join(30)
    a.close()
    b.close()


def test_context_pool_and_reducer():
    ctx = mproc.get_context("forkserver")
    with ctx.Pool(2) as pool:
        assert pool.map(square, range(4)) == [0, 1, 4, 9]
    from mproc import reduction
    assert ctx.reducer is reduction
    assert mproc.reducer is reduction


def test_context_manager_is_bound_and_works_with_mproc():
    with mproc.get_context("fork").Manager() as m:
        d = m.dict()
        with mproc.Pool(2) as pool:
            pool.starmap(put, [(d, 1), (d, 2)])
        assert sorted(d.items()) == [(1, 1), (2, 4)]


@pytest.mark.parametrize("method", METHODS)
def test_stdlib_executor_takes_an_mproc_context(method):
    with cf.ProcessPoolExecutor(2, mp_context=mproc.get_context(method)) as ex:
        assert list(ex.map(square, range(6))) == [0, 1, 4, 9, 16, 25]
        assert ex.submit(square, 7).result(timeout=60) == 49
    if method == "forkserver":
        # Its call queue's pipe reached the children through the standard resource sharer,
        # whose thread lives until stopped (as in the standard library).
        from multiprocessing import resource_sharer
        resource_sharer.stop(timeout=10)


@pytest.mark.parametrize("method", METHODS)
def test_mproc_executor_takes_a_stdlib_context(method):
    with mproc.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as ex:
        assert list(ex.map(square, range(5))) == [0, 1, 4, 9, 16]
