/* Pools: apply/map/imap, errors from tasks, workers that die, timeouts, close/terminate. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static int get_int(const void *p, size_t len) {
  int v = 0;
  if (len >= sizeof v) memcpy(&v, p, sizeof v);
  return v;
}

static int task_square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  int x = get_int(arg, len), y = x * x;
  return mproc_task_return(ctx, &y, sizeof y);
}

/* Fails for 3 and, by how it dies, for negative inputs: -1 segfault, -2 abort, -3 SIGKILL,
 * -4 _exit(3), -5 sleeps for a long time. */
static int task_tricky(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  int x = get_int(arg, len);
  switch (x) {
    case 3:
      return mproc_task_fail(ctx, 42, "three is not allowed (got %d)", x);
    case -1:
      raise(SIGSEGV);
      break;
    case -2:
      abort();
    case -3:
      raise(SIGKILL);
      break;
    case -4:
      _exit(3);
    case -5:
      sleep(30);
      break;
    default:
      break;
  }
  int y = x * 10;
  return mproc_task_return(ctx, &y, sizeof y);
}

static int task_pid(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  int pid = getpid();
  return mproc_task_return(ctx, &pid, sizeof pid);
}

static mproc_pool_t *make_pool(int workers, int method) {
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = workers;
  o.start_method = method;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  return p;
}

static int apply_int(mproc_pool_t *p, mproc_task_fn fn, int x, int *out) {
  void *res = NULL;
  size_t len = 0;
  int rc = mproc_pool_apply(p, fn, &x, sizeof x, &res, &len);
  if (rc == 0) {
    *out = get_int(res, len);
    free(res);
  }
  return rc;
}

static void free_pool(mproc_pool_t *p) {
  assert_int_equal(mproc_pool_close(p), 0);
  assert_int_equal(mproc_pool_join(p, -1), 0);
  assert_int_equal(mproc_pool_free(p), 0);
}

static void test_pool_apply(void **state) {
  (void)state;
  for (int m = MPROC_START_FORK; m <= MPROC_START_FORKSERVER; m++) {
    mproc_pool_t *p = make_pool(2, m);
    assert_int_equal(mproc_pool_workers(p), 2);
    int y = 0;
    for (int i = 0; i < 50; i++) {
      assert_int_equal(apply_int(p, task_square, i, &y), 0);
      assert_int_equal(y, i * i);
    }
    free_pool(p);
  }
}

static atomic_int g_cb_ok, g_cb_err;
static pthread_t g_main;
static void on_done(mproc_async_t *r, void *payload) {
  (void)payload;
  /* runs on the dispatcher thread, with the handle it was given */
  if (!pthread_equal(pthread_self(), g_main) && r != NULL) atomic_fetch_add(&g_cb_ok, 1);
}
static void on_error(mproc_async_t *r, void *payload) {
  (void)r, (void)payload;
  atomic_fetch_add(&g_cb_err, 1);
}

static void test_pool_apply_async_and_callbacks(void **state) {
  (void)state;
  g_main = pthread_self();
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
  o.callback = on_done;
  o.error_callback = on_error;
  mproc_async_t *rs[20];
  for (int i = 0; i < 20; i++) {
    int x = i == 7 ? 3 : i + 10;
    assert_int_equal(mproc_pool_apply_async(p, task_tricky, &x, sizeof x, &o, &rs[i]), 0);
  }
  for (int i = 0; i < 20; i++) {
    const void *d;
    size_t len;
    int rc = mproc_async_get(rs[i], -1, &d, &len);
    assert_int_equal(mproc_async_ready(rs[i]), 1);
    if (i == 7) {
      assert_int_equal(rc, MPROC_ETASKFAILED);
      assert_non_null(strstr(mproc_last_error(), "three is not allowed (got 3)"));
      assert_int_equal(mproc_async_successful(rs[i]), 0);
      int code;
      size_t idx;
      const char *msg;
      assert_int_equal(mproc_async_error(rs[i], &code, &idx, &msg), MPROC_ETASKFAILED);
      assert_int_equal(code, 42);
      assert_int_equal(idx, 0);
      assert_string_equal(msg, "three is not allowed (got 3)");
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(get_int(d, len), (i + 10) * 10);
      assert_int_equal(mproc_async_successful(rs[i]), 1);
    }
  }
  free_pool(p); /* callbacks have all run once the pool is joined */
  assert_int_equal(atomic_load(&g_cb_ok), 19);
  assert_int_equal(atomic_load(&g_cb_err), 1);
  for (int i = 0; i < 20; i++) assert_int_equal(mproc_async_free(rs[i]), 0);
}

static void test_pool_map_in_order_with_errors(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(3, MPROC_START_FORK);
  enum { N = 200 };
  int xs[N];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    xs[i] = i;
    args[i] = &xs[i];
    lens[i] = sizeof(int);
  }
  for (size_t chunk = 0; chunk <= 7; chunk += 7) {
    mproc_async_t *r = NULL;
    /* items 3 fail; everything else is computed */
    assert_int_equal(mproc_pool_map(p, task_tricky, args, lens, N, chunk, &r), MPROC_ETASKFAILED);
    assert_non_null(strstr(mproc_last_error(), "three is not allowed"));
    assert_int_equal(mproc_async_count(r), N);
    size_t idx;
    int code;
    assert_int_equal(mproc_async_error(r, &code, &idx, NULL), MPROC_ETASKFAILED);
    assert_int_equal(idx, 3);
    assert_int_equal(code, 42);
    for (int i = 0; i < N; i++) {
      const void *d;
      size_t len;
      int rc = mproc_async_item(r, (size_t)i, &d, &len);
      if (i == 3) {
        assert_int_equal(rc, MPROC_ETASKFAILED);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(get_int(d, len), i * 10);
      }
    }
    assert_int_equal(mproc_async_item(r, N, NULL, NULL), MPROC_ERANGE);
    mproc_async_free(r);
  }
  /* an empty map is ready at once */
  mproc_async_t *r = NULL;
  assert_int_equal(mproc_pool_map(p, task_square, NULL, NULL, 0, 0, &r), 0);
  assert_int_equal(mproc_async_count(r), 0);
  mproc_async_free(r);
  free_pool(p);
}

static int elem_square(const void *in, void *out, void *payload) {
  (void)payload;
  long x = *(const long *)in;
  if (x == 777) return 5;
  *(long *)out = x * x;
  return 0;
}

static void test_pool_map_fixed(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  size_t n = 100000;
  long *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  for (size_t i = 0; i < n; i++) in[i] = (long)i + 1000;
  size_t bad = 0;
  assert_int_equal(mproc_pool_map_fixed(p, elem_square, in, sizeof *in, out, sizeof *out, n, 0, &bad), 0);
  assert_int_equal(bad, (size_t)-1);
  for (size_t i = 0; i < n; i++) assert_int_equal(out[i], in[i] * in[i]);
  in[5000] = 777;
  in[90000] = 777;
  assert_int_equal(mproc_pool_map_fixed(p, elem_square, in, sizeof *in, out, sizeof *out, n, 1000, &bad),
                   MPROC_ETASKFAILED);
  assert_int_equal(bad, 5000);
  assert_int_equal(out[4999], in[4999] * in[4999]);
  free(in);
  free(out);
  free_pool(p);
}

static void test_pool_imap_ordered_and_unordered(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  enum { N = 50 };
  int xs[N];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    xs[i] = i == 20 ? 3 : i + 10;
    args[i] = &xs[i];
    lens[i] = sizeof(int);
  }
  for (int ordered = 1; ordered >= 0; ordered--) {
    mproc_async_t *it = NULL;
    assert_int_equal(mproc_pool_imap(p, task_tricky, args, lens, N, ordered, NULL, &it), 0);
    int seen[N] = {0};
    for (int k = 0; k < N; k++) {
      size_t idx;
      const void *d;
      size_t len;
      int rc = mproc_async_next(it, 10, &idx, &d, &len);
      if (ordered) assert_int_equal(idx, (size_t)k);
      assert_true(idx < N && !seen[idx]);
      seen[idx] = 1;
      if (idx == 20) {
        assert_int_equal(rc, MPROC_ETASKFAILED);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(get_int(d, len), xs[idx] * 10);
      }
    }
    assert_int_equal(mproc_async_next(it, 1, NULL, NULL, NULL), MPROC_EITEREND);
    mproc_async_free(it);
  }
  free_pool(p);
}

static void check_death(mproc_pool_t *p, int how, int expect_code, const char *expect_text) {
  int y = 0;
  assert_int_equal(apply_int(p, task_tricky, how, &y), expect_code);
  if (!strstr(mproc_last_error(), expect_text))
    fail_msg("'%s' does not say '%s'", mproc_last_error(), expect_text);
  /* the pool goes on */
  assert_int_equal(apply_int(p, task_tricky, 4, &y), 0);
  assert_int_equal(y, 40);
}

static void test_pool_worker_death_fails_task_and_is_replaced(void **state) {
  (void)state;
  for (int m = MPROC_START_FORK; m <= MPROC_START_FORKSERVER; m++) {
    mproc_pool_t *p = make_pool(2, m);
    check_death(p, -1, MPROC_EWORKERDIED, "killed by signal 11 (SIGSEGV)");
    check_death(p, -2, MPROC_EWORKERDIED, "killed by signal 6 (SIGABRT)");
    check_death(p, -3, MPROC_EWORKERDIED, "killed by signal 9 (SIGKILL)");
    check_death(p, -4, MPROC_EWORKERDIED, "exited with status 3");
    mproc_worker_stats_t st[2];
    assert_int_equal(mproc_pool_stats(p, st, 2), 2);
    assert_int_equal(st[0].restarts + st[1].restarts, 4);
    assert_true(st[0].tasks + st[1].tasks >= 4);
    free_pool(p);
  }
}

static void test_pool_worker_death_in_map_and_imap(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  enum { N = 40 };
  int xs[N];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    xs[i] = i == 25 ? -3 : i + 10;
    args[i] = &xs[i];
    lens[i] = sizeof(int);
  }
  /* map: the chunk of the dead worker fails, every other item completes */
  mproc_async_t *r = NULL;
  assert_int_equal(mproc_pool_map(p, task_tricky, args, lens, N, 5, &r), MPROC_EWORKERDIED);
  size_t idx;
  assert_int_equal(mproc_async_error(r, NULL, &idx, NULL), MPROC_EWORKERDIED);
  assert_int_equal(idx, 25);
  for (int i = 0; i < N; i++) {
    int rc = mproc_async_item(r, (size_t)i, NULL, NULL);
    assert_int_equal(rc, i >= 25 && i < 30 ? MPROC_EWORKERDIED : 0); /* its whole chunk */
  }
  mproc_async_free(r);
  /* imap: that item reports the death, the iteration goes on */
  assert_int_equal(mproc_pool_imap(p, task_tricky, args, lens, N, 1, NULL, &r), 0);
  for (int i = 0; i < N; i++) {
    const void *d;
    size_t len;
    int rc = mproc_async_next(r, 20, &idx, &d, &len);
    assert_int_equal(idx, (size_t)i);
    if (rc != (i == 25 ? MPROC_EWORKERDIED : 0)) fail_msg("item %d: %s", i, mproc_last_error());
    if (i != 25) assert_int_equal(get_int(d, len), xs[i] * 10);
  }
  mproc_async_free(r);
  free_pool(p);
}

static void test_pool_task_timeout_kills_worker(void **state) {
  (void)state;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 1;
  o.task_timeout = 0.3;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  double t0 = tu_now();
  int y;
  assert_int_equal(apply_int(p, task_tricky, -5, &y), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.29);
  assert_non_null(strstr(mproc_last_error(), "timed out after 0.3 s"));
  assert_int_equal(apply_int(p, task_tricky, 2, &y), 0);
  assert_int_equal(y, 20);
  /* a per-task timeout overrides the pool's */
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.timeout = 0.1;
  int x = -5;
  mproc_async_t *r;
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &x, sizeof x, &ao, &r), 0);
  assert_int_equal(mproc_async_get(r, -1, NULL, NULL), MPROC_ETIMEDOUT);
  mproc_async_free(r);
  free_pool(p);
}

static int g_init_value;
static int init_ok(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)payload;
  g_init_value = get_int(arg, len);
  return 0;
}
static int init_fail(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_fail(ctx, 7, "cannot open the database");
}
static int task_init_value(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_return(ctx, &g_init_value, sizeof g_init_value);
}

static void test_pool_initializer(void **state) {
  (void)state;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  int v = 1234;
  o.initializer = init_ok;
  o.init_arg = &v;
  o.init_arg_len = sizeof v;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  int y = 0;
  assert_int_equal(apply_int(p, task_init_value, 0, &y), 0);
  assert_int_equal(y, 1234);
  free_pool(p);
}

static void test_pool_failing_initializer_does_not_respawn_forever(void **state) {
  (void)state;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  o.initializer = init_fail;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  int y;
  assert_int_equal(apply_int(p, task_square, 2, &y), MPROC_EINITFAILED);
  assert_non_null(strstr(mproc_last_error(), "cannot open the database"));
  assert_int_equal(apply_int(p, task_square, 2, &y), MPROC_EINITFAILED);
  mproc_worker_stats_t st[2];
  mproc_pool_stats(p, st, 2);
  assert_true(st[0].restarts + st[1].restarts <= 2); /* no respawn loop */
  free_pool(p);
}

static void test_pool_max_tasks_per_child(void **state) {
  (void)state;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 1;
  o.max_tasks_per_child = 2;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  int pids[10];
  for (int i = 0; i < 10; i++) assert_int_equal(apply_int(p, task_pid, 0, &pids[i]), 0);
  for (int i = 0; i < 10; i += 2) {
    assert_int_equal(pids[i], pids[i + 1]);
    if (i) assert_int_not_equal(pids[i], pids[i - 1]);
  }
  free_pool(p);
}

static void test_pool_close_terminate_join(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  int y;
  assert_int_equal(mproc_pool_join(p, 1), MPROC_EINVAL); /* join before close */
  assert_non_null(strstr(mproc_last_error(), "before close"));
  /* close: queued work still runs */
  mproc_async_t *r;
  int x = 6;
  assert_int_equal(mproc_pool_apply_async(p, task_square, &x, sizeof x, NULL, &r), 0);
  assert_int_equal(mproc_pool_close(p), 0);
  assert_int_equal(apply_int(p, task_square, 2, &y), MPROC_ECLOSED);
  assert_int_equal(mproc_pool_join(p, -1), 0);
  const void *d;
  size_t len;
  assert_int_equal(mproc_async_get(r, 0, &d, &len), 0);
  assert_int_equal(get_int(d, len), 36);
  mproc_async_free(r);
  assert_int_equal(mproc_pool_free(p), 0);

  /* terminate: pending and running work fails with ECANCELED */
  p = make_pool(1, MPROC_START_FORK);
  mproc_async_t *rs[3];
  x = -5;
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_pool_apply_async(p, task_tricky, &x, sizeof x, NULL, &rs[i]), 0);
  assert_int_equal(mproc_async_wait(rs[0], 0.1), MPROC_EAGAIN);
  assert_int_equal(mproc_pool_terminate(p), 0);
  assert_int_equal(mproc_pool_join(p, -1), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(mproc_async_get(rs[i], 5, NULL, NULL), MPROC_ECANCELED);
    mproc_async_free(rs[i]);
  }
  assert_int_equal(mproc_pool_apply_async(p, task_square, &x, sizeof x, NULL, &r), MPROC_ECLOSED);
  assert_int_equal(mproc_pool_free(p), 0);
}

static void test_pool_free_with_work_outstanding(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  int x = -5;
  mproc_async_t *r;
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &x, sizeof x, NULL, &r), 0);
  assert_int_equal(mproc_pool_free(p), 0); /* terminates cleanly */
  assert_int_equal(mproc_async_get(r, 5, NULL, NULL), MPROC_ECANCELED);
  assert_int_equal(mproc_async_cancel(r), 0); /* ready: nothing to do */
  mproc_async_free(r);
  /* the freed pool handle is refused */
  assert_int_equal(mproc_pool_close(p), MPROC_EBADF);
  assert_int_equal(mproc_pool_apply_async(p, task_square, &x, sizeof x, NULL, &r), MPROC_EBADF);
}

static void test_pool_cancel(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  int slow = -5, fast = 5;
  mproc_async_t *running, *queued;
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &slow, sizeof slow, NULL, &running), 0);
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &fast, sizeof fast, NULL, &queued), 0);
  assert_int_equal(mproc_async_wait(running, 0.2), MPROC_EAGAIN);
  assert_int_equal(mproc_async_cancel(queued), 0);
  assert_int_equal(mproc_async_cancel(running), 0);
  assert_int_equal(mproc_async_get(running, 10, NULL, NULL), MPROC_ECANCELED);
  assert_int_equal(mproc_async_get(queued, 10, NULL, NULL), MPROC_ECANCELED);
  int y;
  assert_int_equal(apply_int(p, task_tricky, 1, &y), 0); /* a fresh worker took over */
  mproc_worker_stats_t st;
  mproc_pool_stats(p, &st, 1);
  assert_int_equal(st.restarts, 1);
  assert_int_equal(st.last_exit, -SIGKILL);
  mproc_async_free(running);
  mproc_async_free(queued);
  free_pool(p);
}

static void test_pool_cancel_before_start(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  for (int k = 0; k < 5; k++) {
    int slow = -5;
    mproc_async_t *r;
    assert_int_equal(mproc_pool_apply_async(p, task_tricky, &slow, sizeof slow, NULL, &r), 0);
    assert_int_equal(mproc_async_cancel(r), 0); /* most likely before the worker starts it */
    assert_int_equal(mproc_async_get(r, -1, NULL, NULL), MPROC_ECANCELED);
    int y;
    /* the worker slot is not held by the canceled task */
    assert_int_equal(apply_int(p, task_tricky, 2, &y), 0);
    assert_int_equal(y, 20);
    mproc_async_free(r);
  }
  free_pool(p);
}

static int task_echo(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  /* returns the argument reversed, to prove every byte went through */
  char *buf = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) buf[i] = ((const char *)arg)[len - 1 - i];
  int rc = mproc_task_return(ctx, buf, len);
  free(buf);
  return rc;
}

static void test_pool_large_messages_stream_through_small_rings(void **state) {
  (void)state;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  o.ring_bytes = 64 << 10;
  mproc_pool_t *p = NULL;
  assert_int_equal(mproc_pool_new(&p, &o), 0);
  size_t n = 5u << 20;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (char)(i * 7 + 3);
  for (int k = 0; k < 2; k++) {
    void *res = NULL;
    size_t len = 0;
    assert_int_equal(mproc_pool_apply(p, task_echo, big, n, &res, &len), 0);
    assert_int_equal(len, n);
    for (size_t i = 0; i < n; i += 4093) assert_int_equal(((char *)res)[i], big[n - 1 - i]);
    free(res);
  }
  void *res = NULL;
  size_t len = 9;
  assert_int_equal(mproc_pool_apply(p, task_echo, NULL, 0, &res, &len), 0); /* empty */
  assert_int_equal(len, 0);
  free(res);
  free(big);
  free_pool(p);
}

static void test_pool_bad_input(void **state) {
  (void)state;
  mproc_pool_t *p = NULL;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = -1;
  assert_int_equal(mproc_pool_new(&p, &o), MPROC_EINVAL);
  assert_null(p);
  o.workers = 1;
  o.task_timeout = -1;
  assert_int_equal(mproc_pool_new(&p, &o), MPROC_EINVAL);
  o.task_timeout = 0;
  o.size = 1;
  assert_int_equal(mproc_pool_new(&p, &o), MPROC_EINVAL);
  assert_int_equal(mproc_pool_new(NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_pool_opts_init(NULL), MPROC_EINVAL);
  p = make_pool(1, MPROC_START_FORK);
  mproc_async_t *r = NULL;
  int x = 1;
  assert_int_equal(mproc_pool_apply_async(p, NULL, &x, sizeof x, NULL, &r), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "task function is NULL"));
  assert_int_equal(mproc_pool_apply_async(p, task_square, NULL, 4, NULL, &r), MPROC_EINVAL);
  assert_int_equal(mproc_pool_apply_async(p, task_square, &x, sizeof x, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_pool_map(p, task_square, NULL, NULL, 3, 0, &r), MPROC_EINVAL);
  long in[2] = {1, 2};
  assert_int_equal(mproc_pool_map_fixed(p, elem_square, in, sizeof(long), NULL, sizeof(long), 2, 0, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_pool_map_fixed(p, elem_square, in, 0, in, sizeof(long), 2, 0, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_pool_map_fixed(p, NULL, in, sizeof(long), in, sizeof(long), 2, 0, NULL), MPROC_EINVAL);
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.timeout = -2;
  assert_int_equal(mproc_pool_apply_async(p, task_square, &x, sizeof x, &ao, &r), MPROC_EINVAL);
  assert_int_equal(mproc_pool_apply(NULL, task_square, &x, sizeof x, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_async_get(NULL, 1, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_async_ready(NULL), MPROC_EINVAL);
  int not_a_handle = 0;
  assert_int_equal(mproc_async_wait((mproc_async_t *)&not_a_handle, 1), MPROC_EBADF);
  assert_int_equal(mproc_pool_close((mproc_pool_t *)&not_a_handle), MPROC_EBADF);
  /* an async result that is not ready */
  x = -5;
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &x, sizeof x, NULL, &r), 0);
  assert_int_equal(mproc_async_successful(r), MPROC_EAGAIN);
  assert_int_equal(mproc_async_get(r, 0.05, NULL, NULL), MPROC_EAGAIN);
  assert_int_equal(mproc_async_next(r, 0, NULL, NULL, NULL), MPROC_EINVAL); /* not an imap */
  /* Sizes no message can have: a code and a cause, no C++ internals. */
  void *out = NULL;
  size_t out_len = 0;
  mproc_async_t *r2 = NULL;
  assert_int_equal(mproc_pool_apply(p, task_square, "x", SIZE_MAX, &out, &out_len), MPROC_EMSGSIZE);
  assert_non_null(strstr(mproc_last_error(), "mproc_pool_apply: the arguments add up to more"));
  assert_int_equal(mproc_pool_apply_async(p, task_square, "x", SIZE_MAX, NULL, &r2), MPROC_EMSGSIZE);
  assert_null(r2);
  const void *margs[2] = {"a", "b"};
  size_t mlens[2] = {SIZE_MAX, 1};
  assert_int_equal(mproc_pool_map(p, task_square, margs, mlens, 2, 1, &r2), MPROC_EMSGSIZE);
  mlens[0] = SIZE_MAX / 2 + 1, mlens[1] = SIZE_MAX / 2 + 1; /* each fine alone, not summed */
  assert_int_equal(mproc_pool_map(p, task_square, margs, mlens, 2, 1, &r2), MPROC_EMSGSIZE);
  assert_non_null(strstr(mproc_last_error(), "mproc_pool_map: the arguments add up to more"));
  /* NULL task contexts and results say which call and why. */
  assert_int_equal(mproc_task_return(NULL, "x", 1), MPROC_EINVAL);
  assert_int_equal(mproc_last_error_code(), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_task_return: task context is NULL"));
  assert_int_equal(mproc_task_worker(NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_task_worker: task context is NULL"));
  assert_int_equal(mproc_async_count(NULL), 0);
  assert_non_null(strstr(mproc_last_error(), "mproc_async_count: "));
  assert_int_equal(mproc_pool_terminate(p), 0);
  assert_int_equal(mproc_pool_join(p, -1), 0);
  mproc_async_free(r);
  assert_int_equal(mproc_pool_free(p), 0);
  assert_int_equal(mproc_pool_free(NULL), 0);
}

static int task_nested_pool(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  mproc_pool_t *inner = NULL;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  if (mproc_pool_new(&inner, &o)) return mproc_task_fail(ctx, 1, "%s", mproc_last_error());
  long in[10], out[10];
  for (int i = 0; i < 10; i++) in[i] = i;
  int rc = mproc_pool_map_fixed(inner, elem_square, in, sizeof(long), out, sizeof(long), 10, 0, NULL);
  mproc_pool_free(inner);
  if (rc) return mproc_task_fail(ctx, 2, "%s", mproc_last_error());
  long sum = 0;
  for (int i = 0; i < 10; i++) sum += out[i];
  return mproc_task_return(ctx, &sum, sizeof sum);
}

static void test_pool_nested_pool_in_worker(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  void *res = NULL;
  size_t len = 0;
  assert_int_equal(mproc_pool_apply(p, task_nested_pool, NULL, 0, &res, &len), 0);
  assert_int_equal(*(long *)res, 285);
  free(res);
  free_pool(p);
}

struct counter_src {
  atomic_long pulled;
  long limit;     /* items the source has (-1: endless) */
  long fail_at;   /* return an error here (-1: never) */
  int value;
};

static int next_counter(const void **arg, size_t *len, void *payload) {
  struct counter_src *src = payload;
  long i = atomic_load(&src->pulled);
  if (src->fail_at >= 0 && i == src->fail_at) return MPROC_EINVAL;
  if (src->limit >= 0 && i >= src->limit) return 0;
  src->value = (int)i;
  *arg = &src->value;
  *len = sizeof src->value;
  atomic_fetch_add(&src->pulled, 1);
  return 1;
}

static void test_pool_imap_lazy_is_bounded(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  for (int ordered = 1; ordered >= 0; ordered--) {
    struct counter_src src = {0, 20000, -1, 0};
    mproc_async_t *it = NULL;
    size_t bound = 16;
    assert_int_equal(mproc_pool_imap_lazy(p, task_square, next_counter, &src, ordered, bound, NULL, &it), 0);
    long consumed = 0, worst = 0;
    long long sum = 0;
    for (;;) {
      size_t idx;
      const void *d;
      size_t len;
      int rc = mproc_async_next(it, 10, &idx, &d, &len);
      if (rc == MPROC_EITEREND) break;
      assert_int_equal(rc, 0);
      if (ordered) assert_int_equal(idx, (size_t)consumed);
      assert_int_equal(get_int(d, len), (int)idx * (int)idx);
      sum += (long long)idx;
      consumed++;
      long ahead = atomic_load(&src.pulled) - consumed;
      if (ahead > worst) worst = ahead;
    }
    assert_int_equal(consumed, 20000);
    assert_true(sum == 20000LL * 19999 / 2); /* each item exactly once */
    assert_true(worst <= (long)bound); /* never more taken than the bound */
    mproc_async_free(it);
  }
  free_pool(p);
}

static void check_lazy_cut(int terminate) {
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  struct counter_src src = {0, -1, -1, 0}; /* endless input */
  mproc_async_t *it = NULL;
  assert_int_equal(mproc_pool_imap_lazy(p, task_square, next_counter, &src, 1, 8, NULL, &it), 0);
  for (int k = 0; k < 10; k++) assert_int_equal(mproc_async_next(it, 10, NULL, NULL, NULL), 0);
  if (terminate)
    assert_int_equal(mproc_pool_terminate(p), 0);
  else
    assert_int_equal(mproc_pool_close(p), 0);
  assert_int_equal(mproc_pool_join(p, 30), 0); /* no deadlock with a half-read iterator */
  int rc, n = 0;
  while ((rc = mproc_async_next(it, 10, NULL, NULL, NULL)) == 0 || rc == MPROC_ECANCELED) {
    if (rc == MPROC_ECANCELED && terminate && strstr(mproc_last_error(), "before the input")) break;
    n++;
  }
  assert_int_equal(rc, terminate ? MPROC_ECANCELED : MPROC_ECLOSED);
  assert_non_null(strstr(mproc_last_error(), "before the input was read"));
  assert_int_equal(mproc_async_next(it, 1, NULL, NULL, NULL), MPROC_EITEREND);
  assert_true(n <= 8 + 2);
  mproc_async_free(it);
  assert_int_equal(mproc_pool_free(p), 0);
}

static void test_pool_imap_lazy_close_and_terminate_midway(void **state) {
  (void)state;
  check_lazy_cut(0);
  check_lazy_cut(1);
}

static void test_pool_imap_lazy_input_error(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  struct counter_src src = {0, -1, 50, 0};
  mproc_async_t *it = NULL;
  assert_int_equal(mproc_pool_imap_lazy(p, task_square, next_counter, &src, 1, 0, NULL, &it), 0);
  for (int k = 0; k < 50; k++) assert_int_equal(mproc_async_next(it, 10, NULL, NULL, NULL), 0);
  assert_int_equal(mproc_async_next(it, 10, NULL, NULL, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "input callback failed"));
  assert_int_equal(mproc_async_next(it, 10, NULL, NULL, NULL), MPROC_EITEREND);
  assert_int_equal(mproc_pool_imap_lazy(p, task_square, NULL, &src, 1, 0, NULL, &it), MPROC_EINVAL);
  mproc_async_free(it);
  free_pool(p);
}

static int task_fail_bytes(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  mproc_task_return(ctx, "discarded", 9);
  if (len == 1) { /* a long printf message */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    return mproc_task_fail(ctx, 9, "long: %s", big);
  }
  return mproc_task_fail_bytes(ctx, 8, arg, len); /* binary failure payload, NULs included */
}

static void test_pool_failure_bytes(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(1, MPROC_START_FORK);
  const char blob[6] = {'e', 0, 'x', 0, 'c', 0};
  mproc_async_t *r;
  assert_int_equal(mproc_pool_apply_async(p, task_fail_bytes, blob, sizeof blob, NULL, &r), 0);
  const void *d;
  size_t len;
  assert_int_equal(mproc_async_get(r, -1, &d, &len), MPROC_ETASKFAILED);
  assert_int_equal(len, sizeof blob);
  assert_memory_equal(d, blob, sizeof blob);
  int code;
  assert_int_equal(mproc_async_error(r, &code, NULL, NULL), MPROC_ETASKFAILED);
  assert_int_equal(code, 8);
  mproc_async_free(r);
  char one = 1;
  assert_int_equal(mproc_pool_apply_async(p, task_fail_bytes, &one, 1, NULL, &r), 0);
  assert_int_equal(mproc_async_get(r, -1, &d, &len), MPROC_ETASKFAILED);
  assert_int_equal(len, 6 + 2999); /* not cut at any fixed size */
  mproc_async_free(r);
  free_pool(p);
}

static void test_pool_wait_any(void **state) {
  (void)state;
  mproc_pool_t *p = make_pool(2, MPROC_START_FORK);
  int slow = -5, fast = 4;
  mproc_async_t *rs[2];
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &slow, sizeof slow, NULL, &rs[0]), 0);
  assert_int_equal(mproc_pool_apply_async(p, task_tricky, &fast, sizeof fast, NULL, &rs[1]), 0);
  assert_int_equal(mproc_async_wait_any(rs, 2, 20), 1);
  assert_int_equal(mproc_async_ready(rs[0]), 0);
  assert_int_equal(mproc_async_wait_any(rs, 1, 0.1), MPROC_EAGAIN);
  assert_int_equal(mproc_async_wait_any(NULL, 2, 1), MPROC_EINVAL);
  assert_int_equal(mproc_async_wait_any(rs, 0, 1), MPROC_EINVAL);
  assert_int_equal(mproc_pool_terminate(p), 0);
  assert_int_equal(mproc_async_wait_any(rs, 1, 20), 0); /* canceled counts as ready */
  assert_int_equal(mproc_pool_join(p, -1), 0);
  mproc_async_free(rs[0]);
  mproc_async_free(rs[1]);
  assert_int_equal(mproc_pool_free(p), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(pool, apply),
      TEST(pool, apply_async_and_callbacks),
      TEST(pool, map_in_order_with_errors),
      TEST(pool, map_fixed),
      TEST(pool, imap_ordered_and_unordered),
      TEST(pool, worker_death_fails_task_and_is_replaced),
      TEST(pool, worker_death_in_map_and_imap),
      TEST(pool, task_timeout_kills_worker),
      TEST(pool, initializer),
      TEST(pool, failing_initializer_does_not_respawn_forever),
      TEST(pool, max_tasks_per_child),
      TEST(pool, close_terminate_join),
      TEST(pool, free_with_work_outstanding),
      TEST(pool, cancel),
      TEST(pool, cancel_before_start),
      TEST(pool, large_messages_stream_through_small_rings),
      TEST(pool, bad_input),
      TEST(pool, nested_pool_in_worker),
      TEST(pool, imap_lazy_is_bounded),
      TEST(pool, imap_lazy_close_and_terminate_midway),
      TEST(pool, imap_lazy_input_error),
      TEST(pool, wait_any),
      TEST(pool, failure_bytes),
  };
  return tu_run("pool", tests);
}
