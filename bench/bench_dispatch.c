/* The pool dispatcher's own cost, and where one dispatcher thread would saturate.
 *
 * Stub workers (a task that returns its 8-byte argument) make the workers nearly free, so the
 * parent's CPU time is the dispatcher's work: submitting chunks into the workers' rings, reading
 * results back, completing the job. Each map_async runs on the dispatcher thread while the main
 * thread sleeps in mproc_async_get. CPU time is read per thread from /proc/self/task/<tid>/schedstat
 * (nanoseconds on the CPU), so it does not depend on how busy the machine is.
 *
 * A dispatcher feeding N workers whose chunks each take T seconds must hand out N / T chunks a
 * second: with a CPU cost of C per chunk it saturates when N * C >= T. So with N workers a chunk
 * must last at least N * C for one dispatcher to keep them all busy.
 * Usage: bench_dispatch [scale]   (scale 1.0 = the full sizes) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

static int task_echo(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  return mproc_task_return(ctx, arg, len);
}

/* Nanoseconds on the CPU of every thread of this process but `skip_tid` (the main thread, asleep
 * in mproc_async_get), and of `skip_tid` alone into *main_ns. */
static double threads_cpu_ns(int skip_tid, double *main_ns) {
  DIR *d = opendir("/proc/self/task");
  double sum = 0;
  *main_ns = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    double ns = 0;
    if (fscanf(f, "%lf", &ns) == 1) {
      if (atoi(e->d_name) == skip_tid) *main_ns = ns;
      else sum += ns;
    }
    fclose(f);
  }
  if (d) closedir(d);
  return sum;
}

struct point {
  size_t chunk;
  double ns_per_chunk;    /* dispatcher (all threads but main) */
  double main_per_chunk;  /* the waiting main thread */
  double items_per_s;
};

static int measure(mproc_pool_t *pool, size_t n, size_t chunk, struct point *pt) {
  static const void **args;
  static size_t *lens;
  static uint64_t *vals;
  args = realloc(args, n * sizeof *args);
  lens = realloc(lens, n * sizeof *lens);
  vals = realloc(vals, n * sizeof *vals);
  for (size_t i = 0; i < n; i++) vals[i] = i, args[i] = &vals[i], lens[i] = sizeof vals[i];
  mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
  o.chunksize = chunk;
  int me = gettid();
  double m0, m1;
  double c0 = threads_cpu_ns(me, &m0), t0 = now();
  mproc_async_t *r = NULL;
  if (mproc_pool_map_async(pool, task_echo, args, lens, n, &o, &r) ||
      mproc_async_get(r, -1, NULL, NULL)) {
    fprintf(stderr, "map: %s\n", mproc_last_error());
    return 1;
  }
  double t1 = now(), c1 = threads_cpu_ns(me, &m1);
  mproc_async_free(r);
  double chunks = (double)((n + chunk - 1) / chunk);
  pt->chunk = chunk;
  pt->ns_per_chunk = (c1 - c0) / chunks;
  pt->main_per_chunk = (m1 - m0) / chunks;
  pt->items_per_s = (double)n / (t1 - t0);
  return 0;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  mproc_pool_opts_t po = MPROC_POOL_OPTS_INIT;
  po.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &po)) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  const size_t chunks[] = {1, 4, 16, 64, 256, 1024};
  enum { K = sizeof chunks / sizeof chunks[0] };
  struct point pts[K];
  printf("pool dispatcher cost, 2 stub workers, 8-byte items (scale %g)\n", scale);
  printf("  %8s %14s %16s %14s %14s\n", "chunk", "ns/chunk", "ns/item", "main ns/chunk",
         "items/s");
  for (int k = 0; k < K; k++) {
    size_t n = (size_t)(200000 * scale * (chunks[k] < 16 ? 1 : 4)) + chunks[k];
    struct point warm;
    if (measure(pool, n / 10 + 1, chunks[k], &warm) || measure(pool, n, chunks[k], &pts[k]))
      return 1;
    printf("  %8zu %14.0f %16.1f %14.0f %14.0f\n", chunks[k], pts[k].ns_per_chunk,
           pts[k].ns_per_chunk / (double)chunks[k], pts[k].main_per_chunk, pts[k].items_per_s);
  }
  /* The projection uses the small chunks, where the dispatcher is the bottleneck (the workers
   * wait for it): with big chunks its CPU time also counts its spinning for the workers' results,
   * an upper bound rather than a cost. */
  printf("  one dispatcher saturates when workers x (its CPU per chunk) >= a chunk's duration;\n"
         "  the chunk duration it needs to keep N workers busy:\n");
  printf("  %8s", "workers");
  for (int k = 0; k < K && chunks[k] <= 64; k++) printf("   chunk %-4zu", chunks[k]);
  printf("\n");
  const int ws[] = {16, 64, 256};
  for (int i = 0; i < 3; i++) {
    printf("  %8d", ws[i]);
    for (int k = 0; k < K && chunks[k] <= 64; k++)
      printf(" %9.1f us", ws[i] * pts[k].ns_per_chunk / 1000.0);
    printf("\n");
  }
  printf("  and the most items a second it can hand out, whatever the worker count:");
  for (int k = 0; k < K && chunks[k] <= 64; k++)
    printf(" %.2gM (chunk %zu)", 1e3 * (double)chunks[k] / pts[k].ns_per_chunk, chunks[k]);
  printf("\n");
  mproc_pool_close(pool);
  mproc_pool_join(pool, -1);
  mproc_pool_free(pool);
  return 0;
}
