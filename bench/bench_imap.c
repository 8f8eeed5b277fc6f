/* Memory of a lazy imap: mapping over N generated items keeps the parent's memory flat, while
 * Python's Pool.imap reads its whole input first. Prints the growth of the parent's peak RSS for
 * both, and the rates, in one run. Usage: bench_imap [N] (default 2e6; the figure: 1e8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mproc.h>

#include "bench_util.h"

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static int task_square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  long x = 0;
  if (len == sizeof x) memcpy(&x, arg, sizeof x);
  x *= x;
  return mproc_task_return(ctx, &x, sizeof x);
}

struct gen {
  long i, n, value;
};
static int next_item(const void **arg, size_t *len, void *payload) {
  struct gen *g = payload;
  if (g->i >= g->n) return 0;
  g->value = g->i++;
  *arg = &g->value;
  *len = sizeof g->value;
  return 1;
}

/* The consumer does some work of its own per 1000 items, so the workers are ahead of it. */
static void slow_consumer(void) {
  struct timespec ts = {0, 500000};
  nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 2000000;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &o)) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  long base = peak_rss_kib();
  struct gen g = {0, n, 0};
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.chunksize = 1000;
  mproc_async_t *it;
  double t0 = now();
  if (mproc_pool_imap_lazy(pool, task_square, next_item, &g, 1, 0, &ao, &it)) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  long count = 0;
  long long check = 0;
  const void *d;
  size_t len;
  while (mproc_async_next(it, -1, NULL, &d, &len) == 0) {
    long y;
    memcpy(&y, d, sizeof y);
    check += y & 1;
    if (++count % 1000 == 0) slow_consumer();
  }
  double secs = now() - t0;
  long grew = peak_rss_kib() - base;
  mproc_async_free(it);
  mproc_pool_free(pool);

  char args[64];
  snprintf(args, sizeof args, "%ld", n);
  double py[2];
  run_python_peer("py_imap.py", args, py, 2);
  double py_grew = py[0], py_secs = py[1];
  printf("imap over %ld generated items, chunksize 1000, 2 workers, a consumer slower than the\n"
         "workers (0.5 ms of its own work per 1000 items; %lld odd squares)\n", n, check);
  printf("  mproc imap_lazy : parent peak RSS grew %8.1f MiB, %6.2f M items/s\n", grew / 1024.0,
         count / secs / 1e6);
  if (py_grew >= 0)
    printf("  Python Pool.imap: parent peak RSS grew %8.1f MiB, %6.2f M items/s  (%.0fx the memory)\n",
           py_grew / 1024.0, n / py_secs / 1e6, grew > 0 ? py_grew / grew : py_grew);
  return count == n ? 0 : 1;
}
