/* Process start + join latency of a no-op child: mproc (fork, forkserver) beside the OS floor
 * (fork + waitpid), mproc spawn beside its floor (posix_spawn + waitpid of this same binary) and
 * Python's multiprocessing.Process (fork, forkserver, spawn), in one run.
 * Usage: bench_process [iterations]   (default 300) */
#include <spawn.h>
#include <stdio.h>
#include <string.h>
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

/* The spawn floor: exec this binary, which exits at once (main's --exit), and reap it. */
static double bench_spawn_floor(int n) {
  char *argv[] = {(char *)"bench_process", (char *)"--exit", NULL};
  extern char **environ;
  double t0 = now();
  for (int i = 0; i < n; i++) {
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0) exit(1);
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
  if (argc > 1 && strcmp(argv[1], "--exit") == 0) return 0;
  mproc_process_register("bench.noop", noop);
  mproc_spawn_guard(); /* a spawned child runs noop and exits here */
  int n = argc > 1 ? atoi(argv[1]) : 300;
  printf("process start+join of a no-op child, best of 3 rounds of %d (lower is better)\n", n);
  /* Rounds alternate between the floors and mproc, best of 3 each: a shared machine's noise then
   * hits both alike. The floors are measured in the same process, with mproc's runtime running. */
  double fl = 1e9, mf = 1e9, ms = 1e9, sfl = 1e9, msp = 1e9;
  int sn = n / 3 > 10 ? n / 3 : 10; /* an exec costs more than a fork */
  for (int r = 0; r < 3; r++) {
    double a = bench_mproc(n, MPROC_START_FORK);
    double b = bench_floor(n);
    double c = bench_mproc(n, MPROC_START_FORKSERVER);
    double d = bench_spawn_floor(sn);
    double e = bench_mproc(sn, MPROC_START_SPAWN);
    if (a < mf) mf = a;
    if (b < fl) fl = b;
    if (c < ms) ms = c;
    if (d < sfl) sfl = d;
    if (e < msp) msp = e;
  }
  int pn = n < 100 ? n : 100;
  double pf = python_peer("py_process.py", "fork", pn);
  double ps = python_peer("py_process.py", "forkserver", pn);
  double psp = python_peer("py_process.py", "spawn", pn / 5 > 5 ? pn / 5 : 5);
  row("OS floor: fork + waitpid (C)", fl, fl);
  row("mproc fork", mf, fl);
  row("mproc forkserver", ms, fl);
  row("Python multiprocessing fork", pf, fl);
  row("Python multiprocessing forkserver", ps, fl);
  printf("  %-34s %10.1f us\n", "spawn floor: posix_spawn + waitpid", sfl * 1e6);
  printf("  %-34s %10.1f us   %6.2fx spawn floor (target <= 1.5x)\n", "mproc spawn", msp * 1e6,
         msp / sfl);
  if (psp > 0) printf("  %-34s %10.1f us\n", "Python multiprocessing spawn", psp * 1e6);
  if (pf > 0) printf("  mproc fork is %.1fx faster than Python fork\n", pf / mf);
  if (ps > 0) printf("  mproc forkserver is %.1fx faster than Python forkserver\n", ps / ms);
  if (psp > 0) printf("  mproc spawn (C) is %.1fx faster than Python spawn\n", psp / msp);
  printf("  (Python mproc spawn against the standard library's: bench/bench_python.py)\n");
  mproc_shutdown();
  return 0;
}
