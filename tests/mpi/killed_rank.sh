#!/bin/sh
# A worker rank is killed (SIGKILL) during a task: the job must end within seconds, not hang,
# with a non-zero status, a message naming the rank and the task, and no process left behind.
set -u
mpirun=$1
prog=$2
err=$(mktemp)
start=$(date +%s)
timeout 60 "$mpirun" --allow-run-as-root --oversubscribe -n 3 "$prog" kill >/dev/null 2>"$err"
rc=$?
took=$(( $(date +%s) - start ))
fail=0
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited with status 0"; fail=1; fi
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung (killed by timeout after 60 s)"; fail=1; fi
if [ "$took" -gt 30 ]; then echo "FAIL: the job took $took s to end"; fail=1; fi
# rank 0 names the task each worker rank was running and the rank (pid) that died; so does mpirun
grep -q "mproc-mpi: worker rank [12] was running task 'die'.*has DIED (pid [0-9]* on " "$err" || { echo "FAIL: no report of the task and the dead rank"; fail=1; }
grep -q "rank [12] .*exited on signal 9" "$err" || { echo "FAIL: mpirun did not name the dead rank"; fail=1; }
sleep 1
left=$(pgrep -f "$prog kill" || true)
if [ -n "$left" ]; then echo "FAIL: processes left: $left"; kill -9 $left 2>/dev/null; fail=1; fi
echo "--- stderr of the job (status $rc, $took s) ---"
cat "$err"
rm -f "$err"
exit $fail
