/* Shared by the benchmarks: a monotonic clock and running a Python peer script. */
#ifndef MPROC_BENCH_UTIL_H
#define MPROC_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>

static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run bench/<script> with args under python3 and read the numbers it prints (up to n of them).
 * Returns how many were read; the others are -1 (the peer is not there or failed). */
static inline int run_python_peer(const char *script, const char *args, double *out, int n) {
  char cmd[1024];
  for (int i = 0; i < n; i++) out[i] = -1;
  snprintf(cmd, sizeof cmd, "python3 %s/%s %s 2>/dev/null", MPROC_BENCH_DIR, script, args);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int got = 0;
  while (got < n && fscanf(f, "%lf", &out[got]) == 1) got++;
  pclose(f);
  return got;
}

/* The first number a Python peer prints, or -1. */
static inline double python_peer(const char *script, const char *what, double param) {
  char args[256];
  double v;
  snprintf(args, sizeof args, "%s %g", what, param);
  run_python_peer(script, args, &v, 1);
  return v;
}

#endif
