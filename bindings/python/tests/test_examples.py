"""The seed tutorial examples print what the tutorial shows."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")


def run(name):
    # Unbuffered output (PYTHONUNBUFFERED) writes a line's text and its newline in two writes,
    # which concurrent children may interleave; the examples are shown with Python's default.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_process_jobs():
    out = run("process_jobs.py").splitlines()
    assert sorted(line.split(" running")[0] for line in out[:3]) == \
        ["Worker job-1", "Worker job-2", "Worker job-3"]
    assert out[-1] == "All processes completed"


def test_pool_examples():
    assert run("pool_map.py").strip() == "Squares: [1, 4, 9, 16, 25]"
    assert run("pool_map_async.py").strip() == "Cubes: [1, 8, 27]"
    out = run("pool_errors.py")
    assert "[10.0, 5.0, 'Cannot divide by zero', 2.5]" in out
    assert "ZeroDivisionError" in out and "Worker died" in out


def test_ipc_examples():
    out = run("producer_consumer.py")
    assert [l for l in out.splitlines() if l.startswith("Consuming")] == \
        ["Consuming %s" % c for c in "ABCD"]
    out = run("shared_value_array.py")
    assert out.splitlines() == ["Final counter: 1000", "Modified array: [2.0, 4.0, 6.0]"]
    assert run("lock_counter.py").strip() == "Final counter value: 15"
