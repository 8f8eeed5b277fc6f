/* The tutorial's error handling inside pooled functions. Python:
 *
 *   def safe_divide(x):
 *       try:
 *           return 10 / x
 *       except ZeroDivisionError:
 *           return "Cannot divide by zero"
 *   if __name__ == "__main__":
 *       with Pool(2) as pool:
 *           print(pool.map(safe_divide, [1, 2, 0, 4]))
 *
 * prints [10.0, 5.0, 'Cannot divide by zero', 2.5]. The second half shows the other way: the task
 * reports a failure, and the caller gets that item's code and message (Python: the exception is
 * re-raised in the caller).
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

/* Result: a tagged value, a number or a message. */
struct answer {
  int is_text;
  double value;
  char text[32];
};

static int safe_divide(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  struct answer a = {0, 0.0, ""};
  if (x == 0) {
    a.is_text = 1;
    strcpy(a.text, "Cannot divide by zero");
  } else {
    a.value = 10.0 / x;
  }
  return mproc_task_return(ctx, &a, sizeof a);
}

static int divide(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  if (x == 0) return mproc_task_fail(ctx, 1, "ZeroDivisionError: division by zero");
  double y = 10.0 / x;
  return mproc_task_return(ctx, &y, sizeof y);
}

int main(void) {
  mproc_pool_opts_t opts = MPROC_POOL_OPTS_INIT;
  opts.workers = 2;
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &opts) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  int xs[] = {1, 2, 0, 4};
  const void *args[] = {&xs[0], &xs[1], &xs[2], &xs[3]};
  size_t lens[] = {sizeof(int), sizeof(int), sizeof(int), sizeof(int)};

  mproc_async_t *r;
  if (mproc_pool_map(pool, safe_divide, args, lens, 4, 0, &r) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  printf("[");
  for (size_t i = 0; i < 4; i++) {
    const void *d;
    size_t n;
    struct answer a;
    mproc_async_item(r, i, &d, &n);
    memcpy(&a, d, sizeof a);
    if (a.is_text)
      printf("%s'%s'", i ? ", " : "", a.text);
    else
      printf("%s%.1f", i ? ", " : "", a.value);
  }
  printf("]\n");
  mproc_async_free(r);

  /* A failing task: the map reports the first failing item, the others still have results. */
  int rc = mproc_pool_map(pool, divide, args, lens, 4, 0, &r);
  if (rc == MPROC_ETASKFAILED) {
    size_t index;
    const char *message;
    mproc_async_error(r, NULL, &index, &message);
    printf("Caught error: item %zu failed: %s\n", index, message);
  }
  mproc_async_free(r);
  mproc_pool_close(pool);
  mproc_pool_join(pool, -1);
  mproc_pool_free(pool);
  return 0;
}
