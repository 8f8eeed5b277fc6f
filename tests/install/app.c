/* Built against an installed mproc (pkg-config and CMake package): starts a child and checks its
 * exit code, maps a square over a pool of two workers, and checks the run-time version. */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int child(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 42;
}

static int square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  x *= x;
  return mproc_task_return(ctx, &x, sizeof x);
}

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, mproc_last_error());
  return 1;
}

int main(void) {
  if (mproc_version() != MPROC_VERSION_HEX) return 2;
  mproc_process_t *p;
  int code = -1;
  if (mproc_process_new(&p, child, NULL, 0, NULL) || mproc_process_start(p) ||
      mproc_process_join(p, -1) || mproc_process_exitcode(p, &code))
    return fail("process");
  mproc_process_free(p);

  mproc_pool_opts_t opts = MPROC_POOL_OPTS_INIT;
  opts.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &opts)) return fail("pool");
  int xs[] = {1, 2, 3, 4, 5}, sum = 0;
  const void *args[5];
  size_t lens[5];
  for (int i = 0; i < 5; i++) args[i] = &xs[i], lens[i] = sizeof(int);
  mproc_async_t *r;
  if (mproc_pool_map(pool, square, args, lens, 5, 1, &r)) return fail("map");
  for (size_t i = 0; i < 5; i++) {
    const void *d;
    size_t n;
    int y;
    if (mproc_async_item(r, i, &d, &n) || n != sizeof y) return fail("item");
    memcpy(&y, d, sizeof y);
    sum += y;
  }
  mproc_async_free(r);
  mproc_pool_free(pool);
  printf("installed mproc %s: child exit code %d, sum of squares %d\n", mproc_version_string(),
         code, sum);
  return code == 42 && sum == 55 ? 0 : 1;
}
