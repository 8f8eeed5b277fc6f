/* Pool benchmarks beside Python's multiprocessing.Pool, in one run, as ratios:
 *  - apply round trip of a trivial task (latency)
 *  - map of a trivial function over 1e6 ints: default chunking, and chunksize 1
 *  - CPU-bound map: speedup over serial with 2 workers
 * Usage: bench_pool [scale]   (scale 1.0 = the full sizes; smaller for a quick run) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mproc.h>

#include "bench_util.h"

static int task_inc(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  int x = 0;
  if (len == sizeof x) memcpy(&x, arg, sizeof x);
  x++;
  return mproc_task_return(ctx, &x, sizeof x);
}

static int elem_square(const void *in, void *out, void *payload) {
  (void)payload;
  int x = *(const int *)in;
  *(int *)out = x * x;
  return 0;
}

static long burn(long n) { /* the CPU-bound task: a sum of a simple series */
  volatile long acc = 0;
  for (long i = 0; i < n; i++) acc += i % 7;
  return acc;
}
static int elem_burn(const void *in, void *out, void *payload) {
  (void)payload;
  *(long *)out = burn(*(const long *)in);
  return 0;
}

static void ratio_line(const char *name, double mine, double py, const char *unit, int higher_better) {
  printf("  %-38s mproc %12.2f %-8s python %12.2f %-8s ", name, mine, unit, py, unit);
  if (py > 0) printf("%6.1fx %s\n", higher_better ? mine / py : py / mine, "better");
  else printf("(python n/a)\n");
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &o)) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  printf("pool benchmarks, 2 workers (scale %g)\n", scale);

  /* 1. apply round trip */
  int n_apply = (int)(20000 * scale) + 100;
  int x = 1;
  for (int i = 0; i < 100; i++) mproc_pool_apply(pool, task_inc, &x, sizeof x, NULL, NULL);
  double t0 = now();
  for (int i = 0; i < n_apply; i++) mproc_pool_apply(pool, task_inc, &x, sizeof x, NULL, NULL);
  double apply_us = (now() - t0) / n_apply * 1e6;
  ratio_line("apply round trip", apply_us, python_peer("py_pool.py", "apply", scale), "us", 0);

  /* 2. trivial map over 1e6 ints */
  size_t n = (size_t)(1000000 * scale);
  int *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  for (size_t i = 0; i < n; i++) in[i] = (int)i;
  /* best of 3 (the first also maps the shared arrays into the workers) */
  double best = 1e9;
  for (int r = 0; r < 3; r++) {
    t0 = now();
    mproc_pool_map_fixed(pool, elem_square, in, sizeof(int), out, sizeof(int), n, 0, NULL);
    if (now() - t0 < best) best = now() - t0;
  }
  double map_rate = n / best / 1e6;
  ratio_line("map 1e6 ints, default chunks", map_rate, python_peer("py_pool.py", "map", scale), "M/s", 1);
  size_t n1 = n / 4;
  best = 1e9;
  for (int r = 0; r < 3; r++) {
    t0 = now();
    mproc_pool_map_fixed(pool, elem_square, in, sizeof(int), out, sizeof(int), n1, 1, NULL);
    if (now() - t0 < best) best = now() - t0;
  }
  double map1_rate = n1 / best / 1e6;
  ratio_line("map, chunksize 1", map1_rate, python_peer("py_pool.py", "map1", scale), "M/s", 1);
  for (size_t i = 0; i < n1; i++)
    if (out[i] != in[i] * in[i]) {
      fprintf(stderr, "wrong result at %zu\n", i);
      return 1;
    }

  /* 3. CPU-bound speedup with 2 workers over serial */
  size_t nt = 16;
  long work[16], res[16];
  for (size_t i = 0; i < nt; i++) work[i] = (long)(20000000 * scale) + 1000;
  t0 = now();
  for (size_t i = 0; i < nt; i++) res[i] = burn(work[i]);
  double serial = now() - t0;
  t0 = now();
  mproc_pool_map_fixed(pool, elem_burn, work, sizeof(long), res, sizeof(long), nt, 1, NULL);
  double par = now() - t0;
  printf("  %-38s mproc %12.2fx          python %12.2fx          (target >= 1.9x on 2 cores)\n",
         "CPU-bound speedup, 2 workers", serial / par, python_peer("py_pool.py", "cpu", scale));

  free(in);
  free(out);
  mproc_pool_free(pool);
  return 0;
}
