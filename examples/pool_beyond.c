/* What Python's multiprocessing.Pool does not do, in one program: a worker that crashes fails
 * only its task (no hang), per-task timeouts, cancelling a running task, a lazy bounded imap
 * with a progress callback, waiting for the first of several results, per-worker statistics. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

static int work(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  if (x == -1) raise(SIGSEGV); /* a crashing task */
  if (x == -2) sleep(60);      /* a task that hangs */
  int y = x * x;
  return mproc_task_return(ctx, &y, sizeof y);
}

struct numbers {
  int next, end;
};
static int next_number(const void **arg, size_t *len, void *payload) {
  struct numbers *n = payload;
  if (n->next >= n->end) return 0;
  *arg = &n->next; /* copied by the pool before the next call */
  *len = sizeof n->next;
  n->next++;
  return 1;
}

static void progress(size_t done, size_t total, void *payload) {
  (void)total, (void)payload;
  if (done % 250 == 0) printf("  progress: %zu items done\n", done);
}

int main(void) {
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &o)) return 1;

  /* 1. A crash fails its task only; the worker is replaced. */
  int x = -1;
  int rc = mproc_pool_apply(pool, work, &x, sizeof x, NULL, NULL);
  printf("crashing task: %s (%s)\n", mproc_err_name(rc), mproc_last_error());

  /* 2. A per-task timeout. */
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.timeout = 0.5;
  x = -2;
  mproc_async_t *r;
  mproc_pool_apply_async(pool, work, &x, sizeof x, &ao, &r);
  rc = mproc_async_get(r, -1, NULL, NULL);
  printf("hanging task with a 0.5 s timeout: %s\n", mproc_err_name(rc));
  mproc_async_free(r);

  /* 3. Cancel a running task: its worker is killed and replaced. */
  mproc_pool_apply_async(pool, work, &x, sizeof x, NULL, &r);
  mproc_async_wait(r, 0.2);
  mproc_async_cancel(r);
  printf("cancelled task: %s\n", mproc_err_name(mproc_async_get(r, -1, NULL, NULL)));
  mproc_async_free(r);

  /* 4. The first of several results. */
  mproc_async_t *rs[2];
  int a = -2, b = 7;
  mproc_pool_apply_async(pool, work, &a, sizeof a, &ao, &rs[0]);
  mproc_pool_apply_async(pool, work, &b, sizeof b, NULL, &rs[1]);
  printf("first ready of two: #%d\n", mproc_async_wait_any(rs, 2, -1));
  mproc_async_wait(rs[0], -1);
  mproc_async_free(rs[0]);
  mproc_async_free(rs[1]);

  /* 5. A lazy, bounded imap over 1000 generated numbers, with progress. */
  struct numbers src = {0, 1000};
  mproc_async_opts_t io = MPROC_ASYNC_OPTS_INIT;
  io.chunksize = 50;
  io.progress = progress;
  mproc_async_t *it;
  mproc_pool_imap_lazy(pool, work, next_number, &src, 1, 200, &io, &it);
  long sum = 0;
  const void *d;
  size_t len;
  while (mproc_async_next(it, -1, NULL, &d, &len) == 0) sum += *(const int *)d;
  printf("sum of squares 0..999: %ld\n", sum);
  mproc_async_free(it);

  /* 6. Per-worker statistics. */
  mproc_worker_stats_t st[2];
  int n = mproc_pool_stats(pool, st, 2);
  for (int i = 0; i < n; i++)
    printf("worker %d: %llu tasks, %d restarts, last exit %d\n", i, st[i].tasks, st[i].restarts,
           st[i].last_exit);
  mproc_pool_close(pool);
  mproc_pool_join(pool, -1);
  mproc_pool_free(pool);
  return 0;
}
