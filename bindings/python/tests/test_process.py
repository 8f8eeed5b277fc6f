"""Process, current_process, parent_process, active_children, start methods."""
import os
import signal
import sys

import pytest

import mproc
import helpers


def test_target_args_kwargs_and_exitcode_zero(ctx, tmp_path):
    path = str(tmp_path / "out")
    p = ctx.Process(target=helpers.write_file, args=(path,), kwargs={"text": "hello"})
    assert p.exitcode is None and p.pid is None
    p.start()
    assert p.pid > 0 and p.pid != os.getpid()
    p.join()
    assert p.exitcode == 0
    assert not p.is_alive()
    assert open(path).read() == "hello"
    p.close()


@pytest.mark.parametrize("code", [0, 3, 255])
def test_sys_exit_code(ctx, code):
    p = ctx.Process(target=helpers.exit_with, args=(code,))
    p.start()
    p.join()
    assert p.exitcode == code


def test_exception_in_child_gives_exitcode_1(ctx, capfd):
    # (a forkserver child writes to the stderr the helper had when it started)
    p = ctx.Process(target=helpers.fail, args=(1,))
    p.start()
    p.join()
    assert p.exitcode == 1
    if ctx.get_start_method() == "fork":
        assert "ValueError: bad value 1" in capfd.readouterr().err


def test_terminate_gives_negative_signal(ctx):
    p = ctx.Process(target=helpers.sleep_forever)
    p.start()
    assert p.is_alive()
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM


def test_kill_gives_minus_sigkill(ctx):
    p = ctx.Process(target=helpers.sleep_forever)
    p.start()
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert "exitcode=-SIGKILL" in repr(p)


def test_join_timeout_returns_while_running():
    p = mproc.Process(target=helpers.sleep_forever)
    p.start()
    p.join(0.05)
    assert p.is_alive() and p.exitcode is None
    p.kill()
    p.join()


class Subclassed(mproc.Process):
    def __init__(self, path):
        super().__init__(name="custom")
        self.path = path

    def run(self):
        me = mproc.current_process()
        parent = mproc.parent_process()
        helpers.write_file(self.path, "%s %s %d" % (me.name, parent.pid, me.pid))


def test_subclass_with_run(ctx, tmp_path):
    path = str(tmp_path / "out")
    p = Subclassed(path)
    p._start_method = ctx.get_start_method()
    p.start()
    p.join()
    assert p.exitcode == 0
    name, ppid, pid = open(path).read().split()
    assert name == "custom" and int(ppid) == os.getpid() and int(pid) == p.pid


def test_fork_target_may_be_a_lambda(tmp_path):
    path = str(tmp_path / "out")
    p = mproc.get_context("fork").Process(target=lambda: helpers.write_file(path, "lambda"))
    p.start()
    p.join()
    assert p.exitcode == 0 and open(path).read() == "lambda"


def test_names_daemon_and_current_process():
    assert mproc.current_process().name == "MainProcess"
    assert mproc.parent_process() is None
    p = mproc.Process(target=helpers.ident, args=(1,), daemon=True)
    assert p.daemon is True
    assert p.name.startswith("Process-")
    p.name = "renamed"
    assert p.name == "renamed"


def test_sentinel_becomes_readable_on_exit():
    import select
    p = mproc.Process(target=helpers.exit_with, args=(0,))
    p.start()
    r, _, _ = select.select([p.sentinel], [], [])
    assert r == [p.sentinel]
    p.join()


def test_active_children():
    p = mproc.Process(target=helpers.sleep_forever)
    p.start()
    assert p in mproc.active_children()
    p.kill()
    p.join()
    assert p not in mproc.active_children()


def test_start_twice_and_close_running_are_errors():
    p = mproc.Process(target=helpers.sleep_forever)
    p.start()
    with pytest.raises(AssertionError):
        p.start()
    with pytest.raises(ValueError):
        p.close()
    p.kill()
    p.join()
    p.close()
    with pytest.raises(ValueError):
        p.is_alive()


def test_join_unstarted_is_an_error():
    with pytest.raises(AssertionError):
        mproc.Process(target=helpers.ident).join()


def test_start_methods_and_contexts():
    assert set(mproc.get_all_start_methods()) == {"fork", "spawn", "forkserver"}
    assert mproc.get_start_method() in ("fork", "forkserver", "spawn")
    for m in ("fork", "forkserver", "spawn"):
        assert mproc.get_context(m).get_start_method() == m
    with pytest.raises(ValueError):
        mproc.get_context("nope")


def test_spawn_context_runs_a_process(tmp_path):
    path = str(tmp_path / "out")
    p = mproc.get_context("spawn").Process(target=helpers.write_file, args=(path, "spawned"))
    p.start()
    p.join()
    assert p.exitcode == 0 and open(path).read() == "spawned"


def test_cpu_count():
    assert mproc.cpu_count() >= 1


def test_other_threads_run_while_join_blocks():
    import threading
    p = mproc.Process(target=helpers.sleep_forever)
    p.start()
    ran = threading.Event()
    t = threading.Thread(target=lambda: (ran.set(), p.kill()))
    t.start()
    p.join()  # returns because the thread ran (the GIL is released while join blocks)
    t.join()
    assert ran.is_set() and p.exitcode == -signal.SIGKILL


def test_nested_process_in_child(tmp_path):
    path = str(tmp_path / "out")

    def outer():
        q = mproc.Process(target=helpers.write_file, args=(path, "nested"))
        q.start()
        q.join()
        sys.exit(q.exitcode)

    p = mproc.get_context("fork").Process(target=outer)
    p.start()
    p.join()
    assert p.exitcode == 0 and open(path).read() == "nested"
