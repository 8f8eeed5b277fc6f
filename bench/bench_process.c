/* Process start + join latency of a no-op child: mproc (fork, forkserver) beside the OS floor
 * (fork + waitpid) and Python's multiprocessing.Process (fork, forkserver), in one run.
 * Usage: bench_process [iterations]   (default 300) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

static int noop(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 0;
}

static double bench_floor(int n) {
  double t0 = now();
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int st;
    waitpid(pid, &st, 0);
  }
  return (now() - t0) / n;
}

static double bench_mproc(int n, int method) {
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = method;
  mproc_process_t *p;
  /* warm-up: supervisor thread and forkserver start once */
  mproc_process_new(&p, noop, NULL, 0, &o);
  mproc_process_start(p);
  mproc_process_join(p, -1);
  mproc_process_free(p);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    if (mproc_process_new(&p, noop, NULL, 0, &o) || mproc_process_start(p) ||
        mproc_process_join(p, -1)) {
      fprintf(stderr, "%s\n", mproc_last_error());
      exit(1);
    }
    mproc_process_free(p);
  }
  return (now() - t0) / n;
}

static void row(const char *name, double t, double floor_t) {
  if (t < 0) {
    printf("  %-34s %10s\n", name, "n/a");
    return;
  }
  printf("  %-34s %10.1f us   %6.2fx floor\n", name, t * 1e6, t / floor_t);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 300;
  printf("process start+join of a no-op child, best of 3 rounds of %d (lower is better)\n", n);
  /* Rounds alternate between the floor and mproc, best of 3 each: a shared machine's noise then
   * hits both alike. The floor is measured in the same process, with mproc's runtime running. */
  double fl = 1e9, mf = 1e9, ms = 1e9;
  for (int r = 0; r < 3; r++) {
    double a = bench_mproc(n, MPROC_START_FORK);
    double b = bench_floor(n);
    double c = bench_mproc(n, MPROC_START_FORKSERVER);
    if (a < mf) mf = a;
    if (b < fl) fl = b;
    if (c < ms) ms = c;
  }
  int pn = n < 100 ? n : 100;
  double pf = python_peer("py_process.py", "fork", pn);
  double ps = python_peer("py_process.py", "forkserver", pn);
  row("OS floor: fork + waitpid (C)", fl, fl);
  row("mproc fork", mf, fl);
  row("mproc forkserver", ms, fl);
  row("Python multiprocessing fork", pf, fl);
  row("Python multiprocessing forkserver", ps, fl);
  if (pf > 0) printf("  mproc fork is %.1fx faster than Python fork\n", pf / mf);
  if (ps > 0) printf("  mproc forkserver is %.1fx faster than Python forkserver\n", ps / ms);
  mproc_shutdown();
  return 0;
}
