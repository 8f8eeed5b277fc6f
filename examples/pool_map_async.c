/* The tutorial's map_async: cubes computed in the background, collected with get(). Python:
 *
 *   def cube(x): return x ** 3
 *   if __name__ == "__main__":
 *       with Pool() as pool:
 *           result = pool.map_async(cube, [1, 2, 3])
 *           print("Cubes:", result.get())
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int cube(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  long x;
  memcpy(&x, arg, sizeof x);
  long y = x * x * x;
  return mproc_task_return(ctx, &y, sizeof y);
}

int main(void) {
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, NULL) != 0) { /* workers: mproc_cpu_count() */
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  long xs[] = {1, 2, 3};
  const void *args[] = {&xs[0], &xs[1], &xs[2]};
  size_t lens[] = {sizeof(long), sizeof(long), sizeof(long)};
  mproc_async_t *result;
  if (mproc_pool_map_async(pool, cube, args, lens, 3, NULL, &result) != 0 ||
      mproc_async_get(result, -1, NULL, NULL) != 0) { /* get() waits for all of them */
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  printf("Cubes: [");
  for (size_t i = 0; i < mproc_async_count(result); i++) {
    const void *d;
    size_t n;
    long y = 0;
    if (mproc_async_item(result, i, &d, &n) == 0) memcpy(&y, d, sizeof y);
    printf("%s%ld", i ? ", " : "", y);
  }
  printf("]\n");
  mproc_async_free(result);
  mproc_pool_free(pool); /* terminates and joins */
  return 0;
}
