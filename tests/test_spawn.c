/* The spawn start method: a fresh exec of this test binary, which is its own child (main calls
 * mproc_spawn_guard() after registering the bodies). Supervision, a threaded parent, shared
 * objects in the child, and the failures: no guard, unregistered or unknown bodies. */
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static int g_marker; /* set by the parent before spawning: a spawned child sees 0 */

static int body_return(void *arg, size_t len, void *payload) {
  (void)payload;
  int v = 0;
  if (len == sizeof v) memcpy(&v, arg, sizeof v);
  return v;
}

static int body_exit_call(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  exit(5);
}

static int body_segfault(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  raise(SIGSEGV);
  return 0;
}

static int body_sleep(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  for (;;) pause();
  return 0;
}

/* 0 when the argument arrived whole, the identity is right and nothing of the parent's memory or
 * fds came along; a distinct code for each failure. */
static int body_check_fresh(void *arg, size_t len, void *payload) {
  (void)payload;
  const unsigned char *b = arg;
  for (size_t i = 0; i < len; i++)
    if (b[i] != (unsigned char)(i * 7)) return 10;
  if (strcmp(mproc_current_name(), "fresh") != 0) return 11;
  if (mproc_parent_pid() != getppid()) return 12;
  if (g_marker != 0) return 13;
  if (getenv("MPROC_SPAWN_FD")) return 14;
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n == 4 ? 0 : 15; /* 0, 1, 2 and opendir's own */
}

/* ---- pool functions (registered by name) ---- */
static int g_init_value; /* set by the initializer in each spawned worker */

static int task_square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  int x = 0;
  if (len == sizeof x) memcpy(&x, arg, sizeof x);
  if (x < 0) raise(SIGKILL); /* a worker that dies mid-task */
  int y = x * x + g_init_value + g_marker; /* g_marker: 0 in a fresh image */
  return mproc_task_return(ctx, &y, sizeof y);
}

static int elem_double(const void *in, void *out, void *payload) {
  (void)payload;
  *(double *)out = 2 * *(const double *)in;
  return 0;
}

static int init_set(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)payload;
  if (len == sizeof g_init_value) memcpy(&g_init_value, arg, len);
  return 0;
}

static int task_unregistered(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_return(ctx, NULL, 0);
}

static mproc_pool_t *spawn_pool(int workers) {
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = workers;
  o.start_method = MPROC_START_SPAWN;
  o.initializer = init_set;
  int add = 1000;
  o.init_arg = &add;
  o.init_arg_len = sizeof add;
  mproc_pool_t *pool = NULL;
  assert_int_equal(mproc_pool_new(&pool, &o), 0);
  return pool;
}

/* map over a spawned pool: every result is x*x + 1000 (the initializer ran, the image is fresh) */
static void check_pool_map(mproc_pool_t *pool, int n) {
  int xs[64];
  const void *args[64];
  size_t lens[64];
  for (int i = 0; i < n; i++) xs[i] = i, args[i] = &xs[i], lens[i] = sizeof xs[i];
  mproc_async_t *r = NULL;
  assert_int_equal(mproc_pool_map(pool, task_square, args, lens, (size_t)n, 0, &r), 0);
  for (int i = 0; i < n; i++) {
    const void *d;
    size_t len;
    assert_int_equal(mproc_async_item(r, (size_t)i, &d, &len), 0);
    assert_int_equal(*(const int *)d, i * i + 1000);
  }
  assert_int_equal(mproc_async_free(r), 0);
}

/* ---- the threaded parent ---- */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_stop;

static void *hold_lock_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    pthread_mutex_lock(&g_mu);
    for (volatile int i = 0; i < 20000; i++) {
    }
    pthread_mutex_unlock(&g_mu);
  }
  return NULL;
}

static void *malloc_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    void *p[16];
    for (int i = 0; i < 16; i++) p[i] = malloc(64 + (size_t)i * 1000);
    for (int i = 0; i < 16; i++) free(p[i]);
  }
  return NULL;
}

static void *spin_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
  }
  return NULL;
}

/* Takes the lock a parent thread holds most of the time, and the allocator. */
static int body_lock_and_malloc(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  pthread_mutex_lock(&g_mu);
  void *p = malloc(1 << 20);
  memset(p, 1, 1 << 20);
  free(p);
  pthread_mutex_unlock(&g_mu);
  return 9;
}

/* ---- shared objects handed over by token and name ---- */
struct objs {
  char lock[MPROC_TOKEN_MAX], sem[MPROC_TOKEN_MAX], event[MPROC_TOKEN_MAX],
      cond[MPROC_TOKEN_MAX], barrier[MPROC_TOKEN_MAX], value[MPROC_TOKEN_MAX],
      array[MPROC_TOKEN_MAX], queue[MPROC_QUEUE_NAME_MAX], shm[MPROC_SHM_NAME_MAX + 2];
};

/* One of each object, made by the parent, attached by the child. */
struct handles {
  mproc_lock_t *l;
  mproc_sem_t *s;
  mproc_event_t *e;
  mproc_cond_t *c;
  mproc_barrier_t *b;
  mproc_value_t *v;
  mproc_array_t *a;
  mproc_queue_t *q;
  mproc_shm_t *m;
};

static void free_handles(struct handles *h) {
  mproc_lock_free(h->l), mproc_sem_free(h->s), mproc_event_free(h->e), mproc_cond_free(h->c);
  mproc_barrier_free(h->b), mproc_value_free(h->v), mproc_array_free(h->a);
  mproc_queue_free(h->q), mproc_shm_close(h->m);
}

static int body_use_objects(void *arg, size_t len, void *payload) {
  (void)payload;
  if (len != sizeof(struct objs)) return 20;
  const struct objs *o = arg;
  struct handles h = {0};
  if (mproc_lock_attach(&h.l, o->lock) || mproc_sem_attach(&h.s, o->sem) ||
      mproc_event_attach(&h.e, o->event) || mproc_cond_attach(&h.c, o->cond) ||
      mproc_barrier_attach(&h.b, o->barrier, NULL, NULL) || mproc_value_attach(&h.v, o->value) ||
      mproc_array_attach(&h.a, o->array) || mproc_queue_open(&h.q, o->queue) ||
      mproc_shm_attach(&h.m, o->shm))
    return 21;
  int rc = 0;
  strcpy(mproc_shm_ptr(h.m), "spawned wrote this");
  if (mproc_lock_acquire(h.l, 10) || mproc_value_set_int64(h.v, 41 + 1) || mproc_lock_release(h.l)) rc = 22;
  if (!rc && mproc_array_set_int64(h.a, 2, 7)) rc = 23;
  if (!rc && mproc_queue_put(h.q, "from spawn", 11, 10)) rc = 24;
  if (!rc && mproc_sem_release(h.s)) rc = 23; /* all of the above is visible now */
  if (!rc && mproc_event_wait(h.e, 10) != 0) rc = 25; /* the parent sets it */
  if (!rc) {
    if (mproc_cond_acquire(h.c, 10)) rc = 26;
    else {
      mproc_cond_notify_all(h.c);
      mproc_cond_release(h.c);
    }
  }
  if (!rc && mproc_barrier_wait(h.b, 10) < 0) rc = 27;
  free_handles(&h);
  return rc;
}

/* Echoes one message over the pipe end its token names (its fds passed at the same numbers). */
static int body_pipe_echo(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  mproc_conn_t *c = NULL;
  if (mproc_conn_attach(&c, arg)) return 40;
  char buf[64];
  size_t n = 0;
  int rc = 0;
  if (mproc_conn_recv_bytes(c, buf, sizeof buf, &n, 30)) rc = 41;
  if (!rc && mproc_conn_send_bytes(c, buf, n)) rc = 42;
  mproc_conn_free(c);
  return rc;
}

/* The middle process of the daemon test: starts a spawned daemon, publishes its pid in a shared
 * value, then dies by SIGKILL. */
static int body_daemon_then_die(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  mproc_value_t *v = NULL;
  if (mproc_value_attach(&v, arg)) return 30;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  o.daemon = 1;
  mproc_process_t *d = NULL;
  if (mproc_process_new(&d, body_sleep, NULL, 0, &o) || mproc_process_start(d)) return 31;
  mproc_value_set_int64(v, mproc_process_pid(d));
  raise(SIGKILL);
  return 0;
}

static int body_only_in_parent(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 0;
}

static int body_not_registered(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 0;
}

static mproc_process_t *spawn_start(mproc_process_fn fn, const void *arg, size_t len, int daemon) {
  return tu_start(fn, arg, len, MPROC_START_SPAWN, daemon, NULL);
}

static int start_code(mproc_process_fn fn, const char *const *argv) {
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  o.argv = argv;
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, fn, NULL, 0, &o), 0);
  int rc = mproc_process_start(p);
  assert_int_equal(mproc_process_free(p), 0); /* never started: nothing to join */
  return rc;
}

/* ---- tests ---- */

static void test_spawn_exit_codes(void **state) {
  (void)state;
  int v = 3;
  assert_int_equal(tu_join_code(spawn_start(body_return, &v, sizeof v, 0)), 3);
  assert_int_equal(tu_join_code(spawn_start(body_exit_call, NULL, 0, 0)), 5);
  assert_int_equal(tu_join_code(spawn_start(body_segfault, NULL, 0, 0)), -SIGSEGV);
}

static void test_spawn_fresh_image_arg_identity_fds(void **state) {
  (void)state;
  g_marker = 42;
  int stray = dup(0); /* no FD_CLOEXEC: a plain exec would pass it on */
  size_t n = 3 << 20;
  unsigned char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i * 7);
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  o.name = "fresh";
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, body_check_fresh, big, n, &o), 0);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(tu_join_code(p), 0);
  free(big);
  close(stray);
  g_marker = 0;
}

static void test_spawn_signals_and_supervision(void **state) {
  (void)state;
  mproc_process_t *p = spawn_start(body_sleep, NULL, 0, 0);
  assert_int_equal(mproc_process_is_alive(p), 1);
  assert_true(mproc_process_sentinel(p) >= 0);
  assert_int_equal(mproc_active_children(NULL, 0), 1);
  assert_int_equal(mproc_process_join(p, 0.05), MPROC_ETIMEDOUT);
  assert_int_equal(mproc_process_terminate(p), 0);
  assert_int_equal(tu_join_code(p), -SIGTERM);
  p = spawn_start(body_sleep, NULL, 0, 0);
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(tu_join_code(p), -SIGKILL);
  /* Daemons are terminated by shutdown; an unjoined non-daemon is joined by it. */
  mproc_process_t *d = spawn_start(body_sleep, NULL, 0, 1);
  int v = 4;
  mproc_process_t *q = spawn_start(body_return, &v, sizeof v, 0);
  assert_int_equal(mproc_shutdown(), 0);
  int code = 0;
  assert_int_equal(mproc_process_exitcode(d, &code), 0);
  assert_int_equal(code, -SIGTERM);
  assert_int_equal(mproc_process_exitcode(q, &code), 0);
  assert_int_equal(code, 4);
  assert_int_equal(mproc_process_free(d), 0);
  assert_int_equal(mproc_process_free(q), 0);
}

static void test_spawn_daemon_dies_with_crashed_parent(void **state) {
  (void)state;
  mproc_value_t *v = NULL;
  char tok[MPROC_TOKEN_MAX];
  assert_int_equal(mproc_value_new(&v, 'q', NULL, NULL), 0);
  assert_true(mproc_value_export(v, tok, sizeof tok) > 0);
  mproc_process_t *mid = spawn_start(body_daemon_then_die, tok, strlen(tok) + 1, 0);
  assert_int_equal(tu_join_code(mid), -SIGKILL);
  int64_t pid = 0;
  assert_int_equal(mproc_value_get_int64(v, &pid), 0);
  assert_true(pid > 0);
  assert_int_equal(tu_wait_pid_gone((int)pid, 20), 1);
  assert_int_equal(mproc_value_free(v), 0);
}

static void test_spawn_threaded_parent_never_hangs(void **state) {
  (void)state;
  pthread_t t[8];
  atomic_store(&g_stop, 0);
  pthread_create(&t[0], NULL, hold_lock_loop, NULL);
  pthread_create(&t[1], NULL, malloc_loop, NULL);
  for (int i = 2; i < 8; i++) pthread_create(&t[i], NULL, spin_loop, NULL);
  g_marker = 7;
  for (int round = 0; round < 10; round++) {
    mproc_process_t *p[4];
    for (int i = 0; i < 4; i++) p[i] = spawn_start(body_lock_and_malloc, NULL, 0, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(tu_join_code(p[i]), 9);
    if (round % 3 == 0) {
      mproc_pool_t *pool = spawn_pool(2);
      check_pool_map(pool, 16);
      assert_int_equal(mproc_pool_close(pool), 0);
      assert_int_equal(mproc_pool_join(pool, -1), 0);
      assert_int_equal(mproc_pool_free(pool), 0);
    }
  }
  g_marker = 0;
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
}

static void test_spawn_shared_objects_in_child(void **state) {
  (void)state;
  struct objs o;
  memset(&o, 0, sizeof o);
  struct handles h = {0};
  assert_int_equal(mproc_lock_new(&h.l), 0);
  assert_int_equal(mproc_sem_new(&h.s, 0), 0);
  assert_int_equal(mproc_event_new(&h.e), 0);
  assert_int_equal(mproc_cond_new(&h.c, NULL), 0);
  assert_int_equal(mproc_barrier_new(&h.b, 2, NULL, NULL), 0);
  assert_int_equal(mproc_value_new(&h.v, 'q', NULL, NULL), 0);
  assert_int_equal(mproc_array_new(&h.a, 'q', 4, NULL, NULL), 0);
  assert_int_equal(mproc_queue_new(&h.q, NULL), 0);
  assert_int_equal(mproc_shm_create(&h.m, NULL, 4096), 0);
  assert_true(mproc_lock_export(h.l, o.lock, sizeof o.lock) > 0);
  assert_true(mproc_sem_export(h.s, o.sem, sizeof o.sem) > 0);
  assert_true(mproc_event_export(h.e, o.event, sizeof o.event) > 0);
  assert_true(mproc_cond_export(h.c, o.cond, sizeof o.cond) > 0);
  assert_true(mproc_barrier_export(h.b, o.barrier, sizeof o.barrier) > 0);
  assert_true(mproc_value_export(h.v, o.value, sizeof o.value) > 0);
  assert_true(mproc_array_export(h.a, o.array, sizeof o.array) > 0);
  assert_int_equal(mproc_queue_name(h.q, o.queue, sizeof o.queue), 0);
  snprintf(o.shm, sizeof o.shm, "%s", mproc_shm_name(h.m));

  assert_int_equal(mproc_cond_acquire(h.c, -1), 0);
  mproc_process_t *p = spawn_start(body_use_objects, &o, sizeof o, 0);
  assert_int_equal(mproc_sem_acquire(h.s, 30), 0);
  int64_t x = 0;
  assert_int_equal(mproc_value_get_int64(h.v, &x), 0);
  assert_int_equal(x, 42);
  assert_int_equal(mproc_array_get_int64(h.a, 2, &x), 0);
  assert_int_equal(x, 7);
  char buf[32];
  size_t n = 0;
  assert_int_equal(mproc_queue_get(h.q, buf, sizeof buf, &n, 30), 0);
  assert_string_equal(buf, "from spawn");
  assert_string_equal(mproc_shm_ptr(h.m), "spawned wrote this");
  assert_int_equal(mproc_event_set(h.e), 0);
  assert_int_equal(mproc_cond_wait(h.c, 30), 0); /* notified by the child */
  assert_int_equal(mproc_cond_release(h.c), 0);
  assert_true(mproc_barrier_wait(h.b, 30) >= 0);
  assert_int_equal(tu_join_code(p), 0);
  mproc_shm_unlink(h.m);
  free_handles(&h);
}

static void test_spawn_pipe_end_passed_by_fds(void **state) {
  (void)state;
  mproc_conn_t *a = NULL, *b = NULL;
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  char tok[MPROC_CONN_TOKEN_MAX];
  assert_true(mproc_conn_export(b, tok, sizeof tok) > 0);
  int fds[4];
  int n = mproc_conn_fds(b, fds, 4);
  assert_true(n >= 3 && n <= 4);
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  o.fds = fds;
  o.nfds = (size_t)n;
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, body_pipe_echo, tok, strlen(tok) + 1, &o), 0);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(mproc_conn_free(b), 0); /* the child holds its end now */
  assert_int_equal(mproc_conn_send_bytes(a, "ping", 5), 0);
  char buf[16];
  size_t len = 0;
  assert_int_equal(mproc_conn_recv_bytes(a, buf, sizeof buf, &len, 30), 0);
  assert_string_equal(buf, "ping");
  assert_int_equal(tu_join_code(p), 0);
  /* The child's end is closed with it: end of file here. */
  assert_int_equal(mproc_conn_recv_bytes(a, buf, sizeof buf, &len, 30), MPROC_EPIPE);
  assert_int_equal(mproc_conn_free(a), 0);
  /* Without its fds, the token is refused in the child. */
  assert_int_equal(mproc_pipe(&a, &b, 0), 0);
  assert_true(mproc_conn_export(b, tok, sizeof tok) > 0);
  assert_int_equal(tu_join_code(spawn_start(body_pipe_echo, tok, strlen(tok) + 1, 0)), 40);
  mproc_conn_t *bad = NULL;
  assert_int_equal(mproc_conn_attach(&bad, "mproc-conn:bad"), MPROC_EINVAL);
  o.fds = fds, o.nfds = 1, fds[0] = 1;
  assert_int_equal(mproc_process_new(&p, body_pipe_echo, NULL, 0, &o), MPROC_EBADF);
  mproc_conn_free(a), mproc_conn_free(b);
}

static void test_spawn_pool_map_fixed_and_worker_death(void **state) {
  (void)state;
  mproc_pool_t *pool = spawn_pool(2);
  check_pool_map(pool, 40);
  double in[1000], out[1000];
  for (int i = 0; i < 1000; i++) in[i] = i;
  assert_int_equal(mproc_pool_map_fixed(pool, elem_double, in, sizeof(double), out, sizeof(double),
                                        1000, 0, NULL), 0);
  for (int i = 0; i < 1000; i++) assert_true(out[i] == 2.0 * i);
  /* A worker killed mid-task fails that task only and is replaced by a new spawned worker. */
  int bad = -1;
  assert_int_equal(mproc_pool_apply(pool, task_square, &bad, sizeof bad, NULL, NULL),
                   MPROC_EWORKERDIED);
  check_pool_map(pool, 8);
  /* Functions must be registered: refused at submission. */
  assert_int_equal(mproc_pool_apply(pool, task_unregistered, NULL, 0, NULL, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "registered"));
  assert_int_equal(mproc_pool_terminate(pool), 0);
  assert_int_equal(mproc_pool_free(pool), 0);
  /* An unregistered initializer or a payload is refused at creation. */
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  o.initializer = (mproc_init_fn)task_unregistered;
  assert_int_equal(mproc_pool_new(&pool, &o), MPROC_EINVAL);
  o.initializer = NULL;
  o.payload = &o;
  assert_int_equal(mproc_pool_new(&pool, &o), MPROC_EINVAL);
}

static void *make_pool_thread(void *arg) {
  *(mproc_pool_t **)arg = spawn_pool(2);
  return NULL;
}

/* Spawned workers outlive the thread that made their pool (no PR_SET_PDEATHSIG tied to it). */
static void test_spawn_pool_outlives_its_creating_thread(void **state) {
  (void)state;
  mproc_pool_t *pool = NULL;
  pthread_t t;
  pthread_create(&t, NULL, make_pool_thread, &pool);
  pthread_join(t, NULL);
  usleep(100000); /* a worker killed with the thread would be gone by now */
  mproc_worker_stats_t st[2];
  assert_int_equal(mproc_pool_stats(pool, st, 2), 2);
  check_pool_map(pool, 16);
  mproc_worker_stats_t after[2];
  assert_int_equal(mproc_pool_stats(pool, after, 2), 2);
  assert_int_equal(after[0].pid, st[0].pid); /* the same workers: none was replaced */
  assert_int_equal(after[1].pid, st[1].pid);
  assert_int_equal(mproc_pool_close(pool), 0);
  assert_int_equal(mproc_pool_join(pool, -1), 0);
  assert_int_equal(mproc_pool_free(pool), 0);
}

static void test_spawn_unregistered_and_payload_refused(void **state) {
  (void)state;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_SPAWN;
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, body_not_registered, NULL, 0, &o), 0);
  assert_int_equal(mproc_process_start(p), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_process_register"));
  assert_int_equal(mproc_process_free(p), 0);
  o.payload = &o;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, &o), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "payload"));
  o.payload = NULL;
  const char *argv[] = {"/proc/self/exe", NULL};
  o.argv = argv;
  o.start_method = MPROC_START_FORK;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, &o), MPROC_EINVAL);
  assert_int_equal(mproc_process_register("spawn.test.dup", body_return), MPROC_EEXIST);
  assert_int_equal(mproc_process_register(NULL, body_return), MPROC_EINVAL);
  /* Registered in this process only (after the guard): the child does not know the name. */
  assert_int_equal(mproc_process_register("spawn.test.parent_only", body_only_in_parent), 0);
  assert_int_equal(start_code(body_only_in_parent, NULL), MPROC_ENOENT);
  assert_non_null(strstr(mproc_last_error(), "spawn.test.parent_only"));
}

static void test_spawn_program_without_guard_fails_cleanly(void **state) {
  (void)state;
  /* Starts a child before any guard: refused in the child, reported here. */
  const char *starts[] = {"/proc/self/exe", "--no-guard-start", NULL};
  assert_int_equal(start_code(body_return, starts), MPROC_ECHILD);
  assert_non_null(strstr(mproc_last_error(), "before mproc_spawn_guard"));
  /* Ends without the guard. */
  const char *exits[] = {"/proc/self/exe", "--no-guard-exit", NULL};
  assert_int_equal(start_code(body_return, exits), MPROC_ECHILD);
  assert_non_null(strstr(mproc_last_error(), "ended before"));
  /* Never calls mproc: killed after the bounded wait. */
  setenv("MPROC_SPAWN_TIMEOUT", "0.5", 1);
  const char *idles[] = {"/proc/self/exe", "--no-guard-idle", NULL};
  assert_int_equal(start_code(body_return, idles), MPROC_ECHILD);
  unsetenv("MPROC_SPAWN_TIMEOUT");
  assert_non_null(strstr(mproc_last_error(), "did not call mproc_spawn_guard"));
  /* A program that does not exist. */
  const char *missing[] = {"/nonexistent/program", NULL};
  assert_int_equal(start_code(body_return, missing), MPROC_ENOENT);
}

static void test_spawn_default_method(void **state) {
  (void)state;
  assert_int_equal(mproc_set_start_method(MPROC_START_SPAWN), 0);
  assert_int_equal(mproc_get_start_method(), MPROC_START_SPAWN);
  int v = 6;
  assert_int_equal(tu_join_code(tu_start(body_return, &v, sizeof v, MPROC_START_DEFAULT, 0, NULL)), 6);
  assert_int_equal(mproc_set_start_method(MPROC_START_FORK), 0);
}

/* Helper modes of this binary as a program that lacks the guard. */
static int no_guard_mode(const char *mode) {
  if (!strcmp(mode, "--no-guard-exit")) return 0;
  if (!strcmp(mode, "--no-guard-idle")) {
    for (;;) pause();
  }
  mproc_process_t *p = NULL;
  if (mproc_process_new(&p, body_return, NULL, 0, NULL) == 0) mproc_process_start(p);
  return 1; /* not reached: the start ends this process */
}

int main(int argc, char **argv) {
  if (argc > 1 && !strncmp(argv[1], "--no-guard", 10)) return no_guard_mode(argv[1]);
  mproc_process_register("spawn.test.return", body_return);
  mproc_process_register("spawn.test.exit_call", body_exit_call);
  mproc_process_register("spawn.test.segfault", body_segfault);
  mproc_process_register("spawn.test.sleep", body_sleep);
  mproc_process_register("spawn.test.check_fresh", body_check_fresh);
  mproc_process_register("spawn.test.lock_and_malloc", body_lock_and_malloc);
  mproc_process_register("spawn.test.use_objects", body_use_objects);
  mproc_process_register("spawn.test.daemon_then_die", body_daemon_then_die);
  mproc_process_register("spawn.test.pipe_echo", body_pipe_echo);
  mproc_task_register("spawn.test.square", task_square);
  mproc_elem_register("spawn.test.double", elem_double);
  mproc_init_register("spawn.test.init", init_set);
  mproc_spawn_guard(); /* a spawned child runs its body and exits here */
  const struct CMUnitTest tests[] = {
      TEST(spawn, exit_codes),
      TEST(spawn, fresh_image_arg_identity_fds),
      TEST(spawn, signals_and_supervision),
      TEST(spawn, daemon_dies_with_crashed_parent),
      TEST(spawn, threaded_parent_never_hangs),
      TEST(spawn, shared_objects_in_child),
      TEST(spawn, pipe_end_passed_by_fds),
      TEST(spawn, pool_map_fixed_and_worker_death),
      TEST(spawn, pool_outlives_its_creating_thread),
      TEST(spawn, unregistered_and_payload_refused),
      TEST(spawn, program_without_guard_fails_cleanly),
      TEST(spawn, default_method),
  };
  return tu_run("spawn", tests);
}
