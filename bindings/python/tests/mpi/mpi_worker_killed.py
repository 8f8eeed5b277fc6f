"""A worker rank killed mid-task ends the whole job within seconds (Open MPI aborts it):
non-zero exit, stderr names the dead rank and the task (function and item), and no process of
the job is left. Runs mpirun itself: MPROC_MPIRUN is its command line (with its options)."""
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def job_processes(token):
    """Pids of processes whose command line carries token (the job's ranks, mpirun)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if token.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def main():
    mpirun = shlex.split(os.environ.get("MPROC_MPIRUN",
                                        "mpirun --allow-run-as-root --oversubscribe"))
    token = "mproc-killed-" + uuid.uuid4().hex[:8]
    cmd = mpirun + ["-n", "3", sys.executable, "-m", "mproc.mpi",
                    os.path.join(HERE, "mpi_killed_job.py"), token]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        sys.stderr.write(err.decode(errors="replace"))
        raise AssertionError("the job did not end within 20 s after a rank died (a hang)")
    took = time.monotonic() - t0
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    sys.stderr.write("--- the job's stderr (%.1f s, exit %d) ---\n%s---\n"
                     % (took, p.returncode, err))
    assert p.returncode != 0, "exit status 0 after a rank died"
    assert "map finished" not in out, out
    assert "exited on signal 9" in err, "mpirun's message is missing"
    died = [line for line in err.splitlines() if "task 'maybe_die' (item 7)" in line]
    assert died and "worker rank " in died[0] and "has DIED (pid " in died[0], \
        "no line names the dead rank and its task"
    deadline = time.monotonic() + 5
    while job_processes(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = job_processes(token)
    assert not left, "processes of the job left: %s" % left
    print("ok")


if __name__ == "__main__":
    main()
