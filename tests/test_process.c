/* Processes: start, join, exit status, signals, start methods, daemons, bad input. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static int body_return(void *arg, size_t len, void *payload) {
  (void)payload;
  int v = 0;
  if (len == sizeof v) memcpy(&v, arg, sizeof v);
  return v;
}

static int body_sleep(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  for (;;) pause();
  return 0;
}

static int body_exit_call(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  exit(3);
}

static int body_segfault(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  raise(SIGSEGV);
  return 0;
}

static mproc_process_t *start_with(mproc_process_fn fn, const void *arg, size_t len, int method,
                                   int daemon) {
  return tu_start(fn, arg, len, method, daemon, NULL);
}

#define join_code tu_join_code

static int getppid_of(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int ppid = -1;
  if (fgets(buf, sizeof buf, f)) {
    char *p = strrchr(buf, ')');
    char st;
    if (p) sscanf(p + 2, "%c %d", &st, &ppid);
  }
  fclose(f);
  return ppid;
}

static void check_exit_codes(int method) {
  int seven = 7;
  assert_int_equal(join_code(start_with(body_return, &seven, sizeof seven, method, 0)), 7);
  assert_int_equal(join_code(start_with(body_exit_call, NULL, 0, method, 0)), 3);
  assert_int_equal(join_code(start_with(body_segfault, NULL, 0, method, 0)), -SIGSEGV);
  mproc_process_t *p = start_with(body_sleep, NULL, 0, method, 0);
  assert_int_equal(mproc_process_is_alive(p), 1);
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  p = start_with(body_sleep, NULL, 0, method, 0);
  assert_int_equal(mproc_process_terminate(p), 0);
  assert_int_equal(join_code(p), -SIGTERM);
}

static void test_process_fork_exit_codes(void **state) {
  (void)state;
  check_exit_codes(MPROC_START_FORK);
}

static void test_process_forkserver_exit_codes(void **state) {
  (void)state;
  check_exit_codes(MPROC_START_FORKSERVER);
}

static int body_check_copy(void *arg, size_t len, void *payload) {
  (void)payload;
  return len == 6 && memcmp(arg, "hello", 6) == 0 ? 0 : 1;
}

static void test_process_arg_is_copied(void **state) {
  (void)state;
  for (int m = MPROC_START_FORK; m <= MPROC_START_FORKSERVER; m++) {
    char buf[6] = "hello";
    mproc_process_t *p = NULL;
    mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
    o.start_method = m;
    assert_int_equal(mproc_process_new(&p, body_check_copy, buf, sizeof buf, &o), 0);
    memcpy(buf, "XXXXX", 6); /* the process has its own copy */
    assert_int_equal(mproc_process_start(p), 0);
    assert_int_equal(join_code(p), 0);
  }
}

static int body_check_empty(void *arg, size_t len, void *payload) {
  (void)payload;
  return arg == NULL && len == 0 ? 0 : 1;
}

static void test_process_zero_size_arg(void **state) {
  (void)state;
  assert_int_equal(join_code(start_with(body_check_empty, NULL, 0, MPROC_START_FORK, 0)), 0);
  assert_int_equal(join_code(start_with(body_check_empty, "", 0, MPROC_START_FORKSERVER, 0)), 0);
}

static void test_process_big_arg(void **state) {
  (void)state;
  size_t n = 8u << 20;
  char *big = malloc(n);
  assert_non_null(big);
  for (size_t i = 0; i < n; i++) big[i] = (char)(i * 31);
  /* the child checks the last byte */
  mproc_process_t *p = start_with(body_return, big, n, MPROC_START_FORKSERVER, 0);
  free(big);
  assert_int_equal(join_code(p), 0); /* len != sizeof(int): returns 0 */
}

static void test_process_join_timeout(void **state) {
  (void)state;
  mproc_process_t *p = start_with(body_sleep, NULL, 0, MPROC_START_FORK, 0);
  double t0 = tu_now();
  assert_int_equal(mproc_process_join(p, 0.2), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.19);
  assert_string_equal(mproc_last_error(), "mproc_process_join: timeout after 0.2 s");
  assert_int_equal(mproc_last_error_code(), MPROC_ETIMEDOUT);
  assert_int_equal(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
  int code;
  assert_int_equal(mproc_process_exitcode(p, &code), MPROC_ERUNNING);
  assert_int_equal(mproc_process_free(p), MPROC_ERUNNING); /* refused: still running */
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
}

static void test_process_not_started_and_started_twice(void **state) {
  (void)state;
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, NULL), 0);
  assert_int_equal(mproc_process_join(p, 1), MPROC_ENOTSTARTED);
  assert_int_equal(mproc_process_pid(p), MPROC_ENOTSTARTED);
  assert_int_equal(mproc_process_is_alive(p), 0);
  int code;
  assert_int_equal(mproc_process_exitcode(p, &code), MPROC_ENOTSTARTED);
  assert_int_equal(mproc_process_kill(p), MPROC_ENOTSTARTED);
  assert_int_equal(mproc_process_sentinel(p), MPROC_ENOTSTARTED);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(mproc_process_start(p), MPROC_ESTARTED);
  assert_non_null(strstr(mproc_last_error(), "mproc_process_start: "));
  assert_true(mproc_process_pid(p) > 0);
  assert_int_equal(join_code(p), 0);
}

static void test_process_bad_input(void **state) {
  (void)state;
  mproc_process_t *p = NULL;
  int code;
  assert_int_equal(mproc_process_new(NULL, body_return, NULL, 0, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_new(&p, NULL, NULL, 0, NULL), MPROC_EINVAL);
  assert_null(p);
  assert_non_null(strstr(mproc_last_error(), "function is NULL"));
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 5, NULL), MPROC_EINVAL);
  char one = 1;
  assert_int_equal(mproc_process_new(&p, body_return, &one, MPROC_PROCESS_ARG_MAX + 1, NULL),
                   MPROC_EMSGSIZE);
  assert_int_equal(mproc_process_new(&p, body_return, &one, (size_t)-1, NULL), MPROC_EMSGSIZE);
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.size = 3;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, &o), MPROC_EINVAL);
  assert_int_equal(mproc_process_opts_init(&o), 0);
  o.start_method = 42;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, &o), MPROC_EINVAL);
  char longname[300];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(mproc_process_opts_init(&o), 0);
  o.name = longname;
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, &o), MPROC_ENAMETOOLONG);
  assert_int_equal(mproc_process_opts_init(NULL), MPROC_EINVAL);

  assert_int_equal(mproc_process_start(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_join(NULL, -1), MPROC_EINVAL);
  assert_int_equal(mproc_process_is_alive(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_pid(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_exitcode(NULL, &code), MPROC_EINVAL);
  assert_int_equal(mproc_process_kill(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_terminate(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_sentinel(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_daemon(NULL), MPROC_EINVAL);
  assert_null(mproc_process_name(NULL));
  assert_int_equal(mproc_process_free(NULL), 0);

  /* A pointer that is no handle at all, and a bad signal. */
  int not_a_handle = 0;
  assert_int_equal(mproc_process_start((mproc_process_t *)&not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_set_start_method(99), MPROC_EINVAL);
  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, NULL), 0);
  assert_int_equal(mproc_process_exitcode(p, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(mproc_process_signal(p, 0), MPROC_EINVAL);
  assert_int_equal(mproc_process_signal(p, 1000), MPROC_EINVAL);
  assert_int_equal(join_code(p), 0);
}

static void test_process_use_after_free(void **state) {
  (void)state;
  mproc_process_t *p = start_with(body_return, NULL, 0, MPROC_START_FORK, 0);
  assert_int_equal(mproc_process_join(p, -1), 0);
  assert_int_equal(mproc_process_free(p), 0);
  /* The registry knows p is gone; nothing dereferences it. */
  assert_int_equal(mproc_process_is_alive(p), MPROC_EBADF);
  assert_int_equal(mproc_process_join(p, 1), MPROC_EBADF);
  assert_int_equal(mproc_process_start(p), MPROC_EBADF);
  assert_int_equal(mproc_process_free(p), MPROC_EBADF);
  assert_non_null(strstr(mproc_last_error(), "freed"));
}

static int body_join_own_handle(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_process_t *self = *(mproc_process_t **)payload;
  int a = mproc_process_join(self, 1);
  int b = mproc_process_kill(self);
  return a == MPROC_EWRONGPROC && b == MPROC_EWRONGPROC ? 0 : 1;
}

static void test_process_join_from_child_fails(void **state) {
  (void)state;
  static mproc_process_t *p;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.payload = &p;
  assert_int_equal(mproc_process_new(&p, body_join_own_handle, NULL, 0, &o), 0);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(join_code(p), 0);
}

static void test_process_many_children_no_zombie_no_fd_leak(void **state) {
  (void)state;
  int fds = tu_count_fds();
  for (int round = 0; round < 2; round++) {
    mproc_process_t *ps[100];
    for (int i = 0; i < 100; i++) {
      int v = i % 50;
      ps[i] = start_with(body_return, &v, sizeof v,
                         round == 0 ? MPROC_START_FORK : MPROC_START_FORKSERVER, 0);
    }
    for (int i = 0; i < 100; i++) assert_int_equal(join_code(ps[i]), i % 50);
  }
  assert_int_equal(mproc_active_children(NULL, 0), 0);
  /* Each handle's pidfd is closed by free; only the runtime's own fds remain until shutdown. */
  assert_true(tu_count_fds() <= fds + 8);
  /* tu_teardown checks ECHILD (no zombie) and the exact fd count after shutdown. */
}

static int body_names(void *arg, size_t len, void *payload) {
  (void)payload;
  if (strcmp(mproc_current_name(), (const char *)arg) != 0 || len == 0) return 1;
  if (mproc_parent_pid() != getppid() && mproc_parent_pid() <= 0) return 2;
  return 0;
}

static void test_process_names_and_identity(void **state) {
  (void)state;
  assert_string_equal(mproc_current_name(), "MainProcess");
  assert_int_equal(mproc_parent_pid(), 0);
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.name = "worker-a";
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, body_names, "worker-a", 9, &o), 0);
  assert_string_equal(mproc_process_name(p), "worker-a");
  assert_int_equal(mproc_process_daemon(p), 0);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(join_code(p), 0);

  o.start_method = MPROC_START_FORKSERVER;
  assert_int_equal(mproc_process_new(&p, body_names, "worker-a", 9, &o), 0);
  assert_int_equal(mproc_process_start(p), 0);
  assert_int_equal(join_code(p), 0);

  assert_int_equal(mproc_process_new(&p, body_return, NULL, 0, NULL), 0);
  assert_memory_equal(mproc_process_name(p), "Process-", 8);
  assert_int_equal(mproc_process_free(p), 0);
}

static int body_wait_pipe(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int fd = *(int *)arg;
  char c;
  return read(fd, &c, 1) == 1 ? 0 : 1;
}

static int body_pause(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  for (;;) pause();
  return 0;
}

static void test_process_active_children_and_sentinel(void **state) {
  (void)state;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  mproc_process_t *ps[3];
  /* Forkserver children do not inherit the parent's fds: the third waits to be terminated. */
  for (int i = 0; i < 2; i++) ps[i] = start_with(body_wait_pipe, &pfd[0], sizeof(int), MPROC_START_FORK, 0);
  ps[2] = start_with(body_pause, NULL, 0, MPROC_START_FORKSERVER, 0);
  mproc_process_t *live[8];
  assert_int_equal(mproc_active_children(live, 8), 3);
  assert_int_equal(mproc_active_children(live, 1), 3);
  assert_int_equal(mproc_active_children(NULL, 1), MPROC_EINVAL);
  int s = mproc_process_sentinel(ps[0]);
  assert_true(s >= 0);
  struct pollfd pf = {s, POLLIN, 0};
  assert_int_equal(poll(&pf, 1, 0), 0); /* still running */
  assert_int_equal(write(pfd[1], "xy", 2), 2);
  assert_int_equal(mproc_process_terminate(ps[2]), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_process_join(ps[i], -1), 0);
  assert_int_equal(poll(&pf, 1, 0), 1); /* readable once ended */
  for (int i = 0; i < 2; i++) assert_int_equal(join_code(ps[i]), 0);
  assert_int_equal(join_code(ps[2]), -SIGTERM);
  assert_int_equal(mproc_active_children(live, 8), 0);
  close(pfd[0]);
  close(pfd[1]);
}

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_ready = PTHREAD_COND_INITIALIZER;
static int g_held;
static int g_release;

static void *hold_lock(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_mu);
  pthread_mutex_lock(&g_ready_mu);
  g_held = 1;
  pthread_cond_broadcast(&g_ready);
  while (!g_release) pthread_cond_wait(&g_ready, &g_ready_mu);
  pthread_mutex_unlock(&g_ready_mu);
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

static int body_take_lock(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  /* Under fork this mutex would be held forever (its owner thread is not in the child). */
  if (pthread_mutex_trylock(&g_mu) != 0) return 1;
  pthread_mutex_unlock(&g_mu);
  return 0;
}

static void test_process_forkserver_safe_with_threads(void **state) {
  (void)state;
  assert_int_equal(mproc_forkserver_start(), 0); /* early, before the thread */
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, hold_lock, NULL), 0);
  pthread_mutex_lock(&g_ready_mu);
  while (!g_held) pthread_cond_wait(&g_ready, &g_ready_mu);
  pthread_mutex_unlock(&g_ready_mu);
  assert_int_equal(join_code(start_with(body_take_lock, NULL, 0, MPROC_START_FORKSERVER, 0)), 0);
  /* The same body under fork sees the lock held by a thread that does not exist there. */
  assert_int_equal(join_code(start_with(body_take_lock, NULL, 0, MPROC_START_FORK, 0)), 1);
  pthread_mutex_lock(&g_ready_mu);
  g_release = 1;
  pthread_cond_broadcast(&g_ready);
  pthread_mutex_unlock(&g_ready_mu);
  pthread_join(t, NULL);
}

/* The middle process starts a daemon, reports its pid over a pipe, then dies by SIGKILL. */
static int body_start_daemon_then_die(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int *a = (int *)arg; /* {write fd, method} */
  mproc_process_t *d = start_with(body_sleep, NULL, 0, a[1], 1);
  int pid = mproc_process_pid(d);
  if (write(a[0], &pid, sizeof pid) != sizeof pid) return 1;
  raise(SIGKILL);
  return 0;
}

static void check_daemon_dies_with_parent(int method) {
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  int a[2] = {pfd[1], method};
  mproc_process_t *mid = start_with(body_start_daemon_then_die, a, sizeof a, MPROC_START_FORK, 0);
  int dpid = 0;
  assert_int_equal(read(pfd[0], &dpid, sizeof dpid), (ssize_t)sizeof dpid);
  assert_true(dpid > 0);
  assert_int_equal(join_code(mid), -SIGKILL);
  assert_true(tu_wait_pid_gone(dpid, 20.0));
  close(pfd[0]);
  close(pfd[1]);
}

static void test_process_daemon_dies_with_crashed_parent(void **state) {
  (void)state;
  check_daemon_dies_with_parent(MPROC_START_FORK);
  check_daemon_dies_with_parent(MPROC_START_FORKSERVER);
}

static void test_process_shutdown_terminates_daemons_joins_others(void **state) {
  (void)state;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  mproc_process_t *d = start_with(body_sleep, NULL, 0, MPROC_START_FORK, 1);
  mproc_process_t *d2 = start_with(body_sleep, NULL, 0, MPROC_START_FORKSERVER, 1);
  mproc_process_t *n = start_with(body_wait_pipe, &pfd[0], sizeof(int), MPROC_START_FORK, 0);
  assert_int_equal(mproc_process_daemon(d), 1);
  assert_int_equal(write(pfd[1], "x", 1), 1); /* lets the non-daemon end by itself */
  assert_int_equal(mproc_shutdown(), 0);
  int code;
  assert_int_equal(mproc_process_exitcode(d, &code), 0);
  assert_int_equal(code, -SIGTERM);
  assert_int_equal(mproc_process_exitcode(d2, &code), 0);
  assert_int_equal(code, -SIGTERM);
  assert_int_equal(mproc_process_exitcode(n, &code), 0);
  assert_int_equal(code, 0);
  mproc_process_free(d);
  mproc_process_free(d2);
  mproc_process_free(n);
  close(pfd[0]);
  close(pfd[1]);
}

/* A child that starts a grandchild and returns at once: its exit joins the grandchild first. */
static int body_grandchild_writes(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  usleep(200 * 1000);
  return write(*(int *)arg, "g", 1) == 1 ? 0 : 1;
}

static int body_start_and_return(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  start_with(body_grandchild_writes, arg, sizeof(int), MPROC_START_FORK, 0);
  return 0; /* not joined by hand: the runtime joins it at exit, as Python does */
}

static void test_process_child_exit_joins_its_children(void **state) {
  (void)state;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  mproc_process_t *p = start_with(body_start_and_return, &pfd[1], sizeof(int), MPROC_START_FORK, 0);
  assert_int_equal(join_code(p), 0);
  struct pollfd pf = {pfd[0], POLLIN, 0};
  assert_int_equal(poll(&pf, 1, 0), 1); /* already written: the grandchild ended first */
  close(pfd[0]);
  close(pfd[1]);
}

static void test_process_start_method_default(void **state) {
  (void)state;
  assert_int_equal(mproc_get_start_method(), MPROC_START_FORK);
  assert_int_equal(mproc_set_start_method(MPROC_START_FORKSERVER), 0);
  assert_int_equal(mproc_get_start_method(), MPROC_START_FORKSERVER);
  assert_int_equal(mproc_set_start_method(9), MPROC_EINVAL);
  assert_int_equal(mproc_get_start_method(), MPROC_START_FORKSERVER);
  int five = 5;
  assert_int_equal(join_code(start_with(body_return, &five, sizeof five, MPROC_START_DEFAULT, 0)), 5);
  assert_int_equal(mproc_set_start_method(MPROC_START_FORK), 0);
}

static void test_process_forkserver_autorestart(void **state) {
  (void)state;
  assert_int_equal(mproc_forkserver_start(), 0);
  /* find the helper: the child of ours that no handle names */
  mproc_process_t *p = start_with(body_sleep, NULL, 0, MPROC_START_FORKSERVER, 0);
  int helper = getppid_of(mproc_process_pid(p));
  assert_true(helper > 0 && helper != getpid());
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  assert_int_equal(mproc_set_forkserver_autorestart(0), 0);
  assert_int_equal(kill(helper, SIGKILL), 0);
  /* wait until the runtime has seen the helper go */
  int rc = 0;
  mproc_process_t *q = NULL;
  for (int i = 0; i < 200; i++) {
    assert_int_equal(mproc_process_new(&q, body_return, NULL, 0, &(mproc_process_opts_t){sizeof(mproc_process_opts_t), NULL, 0, MPROC_START_FORKSERVER, NULL, NULL, NULL, 0}), 0);
    rc = mproc_process_start(q);
    if (rc == MPROC_EPIPE) break;
    assert_int_equal(join_code(q), 0);
    usleep(10000);
  }
  assert_int_equal(rc, MPROC_EPIPE);
  assert_non_null(strstr(mproc_last_error(), "mproc_forkserver_start"));
  assert_int_equal(mproc_forkserver_start(), 0); /* restarted on purpose */
  assert_int_equal(mproc_process_start(q), 0);
  assert_int_equal(join_code(q), 0);
  assert_int_equal(mproc_set_forkserver_autorestart(1), 0);
}

/* The runtime's own threads (supervisor, pool dispatcher) block every signal, so a signal sent
 * to the process reaches the program's threads (Python runs handlers on the main thread only). */
static int task_nothing(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_return(ctx, NULL, 0);
}

static void test_process_runtime_threads_block_signals(void **state) {
  (void)state;
  mproc_process_t *p = tu_start(body_return, &(int){0}, sizeof(int), MPROC_START_FORK, 0, NULL);
  mproc_pool_t *pool = NULL;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 1;
  assert_int_equal(mproc_pool_new(&pool, &o), 0);
  void *out = NULL;
  size_t len = 0;
  assert_int_equal(mproc_pool_apply(pool, task_nothing, NULL, 0, &out, &len), 0);
  free(out);
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  int others = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == gettid()) continue;
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* ended meanwhile */
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "SigBlk:", 7) == 0) {
        unsigned long long blk = strtoull(line + 7, NULL, 16);
        /* signals 1..31 but SIGKILL and SIGSTOP, which no thread can block */
        const unsigned long long want = 0x7fffffffULL & ~(1ULL << (SIGKILL - 1)) & ~(1ULL << (SIGSTOP - 1));
        if ((blk & want) != want)
          fail_msg("thread %s does not block every signal (SigBlk %llx)", e->d_name, blk);
        others++;
      }
    fclose(f);
  }
  closedir(d);
  assert_true(others >= 2); /* the supervisor and the dispatcher at least */
  assert_int_equal(mproc_pool_close(pool), 0);
  assert_int_equal(mproc_pool_join(pool, -1), 0);
  assert_int_equal(mproc_pool_free(pool), 0);
  assert_int_equal(tu_join_code(p), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(process, fork_exit_codes),
      TEST(process, forkserver_exit_codes),
      TEST(process, arg_is_copied),
      TEST(process, zero_size_arg),
      TEST(process, big_arg),
      TEST(process, join_timeout),
      TEST(process, not_started_and_started_twice),
      TEST(process, bad_input),
      TEST(process, use_after_free),
      TEST(process, join_from_child_fails),
      TEST(process, many_children_no_zombie_no_fd_leak),
      TEST(process, names_and_identity),
      TEST(process, active_children_and_sentinel),
      TEST(process, forkserver_safe_with_threads),
      TEST(process, daemon_dies_with_crashed_parent),
      TEST(process, shutdown_terminates_daemons_joins_others),
      TEST(process, child_exit_joins_its_children),
      TEST(process, start_method_default),
      TEST(process, forkserver_autorestart),
      TEST(process, runtime_threads_block_signals),
  };
  return tu_run("process", tests);
}
