/* The tutorial's pool: Pool(3).map(square, [1, 2, 3, 4, 5]) where square sleeps a second.
 * Five one-second tasks on three workers take about two seconds, not five. Python:
 *
 *   def square(x):
 *       time.sleep(1)
 *       return x * x
 *   if __name__ == "__main__":
 *       with Pool(3) as pool:
 *           print("Squares:", pool.map(square, [1, 2, 3, 4, 5]))
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static int square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  sleep(1);
  int y = x * x;
  return mproc_task_return(ctx, &y, sizeof y);
}

int main(void) {
  mproc_pool_opts_t opts = MPROC_POOL_OPTS_INIT;
  opts.workers = 3;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &opts) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  int xs[] = {1, 2, 3, 4, 5};
  const void *args[5];
  size_t lens[5];
  for (int i = 0; i < 5; i++) args[i] = &xs[i], lens[i] = sizeof(int);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  mproc_async_t *r;
  if (mproc_pool_map(pool, square, args, lens, 5, 1, &r) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("Squares: [");
  for (size_t i = 0; i < 5; i++) {
    const void *d;
    size_t n;
    int y = 0;
    if (mproc_async_item(r, i, &d, &n) == 0) memcpy(&y, d, sizeof y);
    printf("%s%d", i ? ", " : "", y);
  }
  printf("]\n");
  fprintf(stderr, "(took %.1f s on 3 workers)\n",
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  mproc_async_free(r);
  mproc_pool_close(pool);
  mproc_pool_join(pool, -1);
  mproc_pool_free(pool);
  return 0;
}
