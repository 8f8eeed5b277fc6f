/* The pool over MPI ranks beside the local pool: small tasks/s (chunksize 1), apply round trip
 * and a chunked map of 1e6 squares. Run by bench/bench_mpi.py, which puts the figures beside
 * mpi4py.futures and prints ratios:
 *   mpirun -n 3 mpi_bench mpi      (ranks 1..2 are the workers)
 *   mpi_bench local 2              (two local worker processes)
 * Prints "name value" lines. */
#include <mproc.h>
#include <mproc/mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static int square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload, (void)len;
  int x;
  memcpy(&x, arg, sizeof x);
  long long r = (long long)x * x;
  return mproc_task_return(ctx, &r, sizeof r);
}

static int square_elem(const void *in, void *out, void *payload) {
  (void)payload;
  int x = *(const int *)in;
  *(long long *)out = (long long)x * x;
  return 0;
}

static double best_of(int reps, double (*f)(mproc_pool_t *), mproc_pool_t *p) {
  double best = 0;
  for (int i = 0; i < reps; i++) {
    double v = f(p);
    if (v > best) best = v;
  }
  return best;
}

static double small_tasks(mproc_pool_t *p) { /* tasks/s, chunksize 1 */
  enum { N = 20000 };
  static int xs[N];
  static const void *args[N];
  static size_t lens[N];
  for (int i = 0; i < N; i++) xs[i] = i, args[i] = &xs[i], lens[i] = sizeof(int);
  mproc_async_t *r = NULL;
  double t0 = now();
  if (mproc_pool_map(p, square, args, lens, N, 1, &r) != 0) return -1;
  double t = now() - t0;
  mproc_async_free(r);
  return N / t;
}

static double applies(mproc_pool_t *p) { /* blocking apply round trips/s */
  enum { N = 2000 };
  double t0 = now();
  for (int i = 0; i < N; i++) {
    long long out;
    void *o = NULL;
    size_t n = 0;
    if (mproc_pool_apply(p, square, &i, sizeof i, &o, &n) != 0) return -1;
    memcpy(&out, o, sizeof out);
    free(o);
  }
  return N / (now() - t0);
}

static double map_var(mproc_pool_t *p) { /* items/s, default chunks, variable-size items */
  enum { N = 1000000 };
  int *xs = malloc(N * sizeof *xs);
  const void **args = malloc(N * sizeof *args);
  size_t *lens = malloc(N * sizeof *lens);
  for (int i = 0; i < N; i++) xs[i] = i, args[i] = &xs[i], lens[i] = sizeof(int);
  mproc_async_t *r = NULL;
  double t0 = now();
  int rc = mproc_pool_map(p, square, args, lens, N, 0, &r);
  double t = now() - t0;
  mproc_async_free(r);
  free(xs), free(args), free(lens);
  return rc == 0 ? N / t : -1;
}

static double map_fixed(mproc_pool_t *p) { /* items/s, default chunks, copy-free form */
  enum { N = 1000000 };
  int *in = malloc(N * sizeof *in);
  long long *out = malloc(N * sizeof *out);
  for (int i = 0; i < N; i++) in[i] = i;
  double t0 = now();
  int rc = mproc_pool_map_fixed(p, square_elem, in, sizeof *in, out, sizeof *out, N, 0, NULL);
  double t = now() - t0;
  int ok = rc == 0 && out[N - 1] == (long long)(N - 1) * (N - 1);
  free(in), free(out);
  return ok ? N / t : -1;
}

int main(int argc, char **argv) {
  const char *backend = argc > 1 ? argv[1] : "mpi";
  mproc_task_register("square", square);
  mproc_elem_register("square_elem", square_elem);
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.backend = backend;
  if (strcmp(backend, "mpi") == 0) {
    if (mproc_mpi_init(&argc, &argv) != 0) return 1;
  } else {
    o.workers = argc > 2 ? atoi(argv[2]) : 2;
  }
  mproc_pool_t *p = NULL;
  if (mproc_pool_new(&p, &o) != 0) {
    fprintf(stderr, "mpi_bench: %s\n", mproc_last_error());
    return 1;
  }
  printf("workers %d\n", mproc_pool_workers(p));
  printf("small_tasks_per_s %.0f\n", best_of(3, small_tasks, p));
  printf("apply_per_s %.0f\n", best_of(3, applies, p));
  printf("map_var_items_per_s %.0f\n", best_of(3, map_var, p));
  printf("map_fixed_items_per_s %.0f\n", best_of(3, map_fixed, p));
  mproc_pool_free(p);
  if (strcmp(backend, "mpi") == 0) mproc_mpi_finalize();
  return 0;
}
