/* Ctrl-C: a real SIGINT sent to the process group of a program running a pool (the test binary
 * re-run in a helper mode) makes its blocking call return MPROC_EINTR; the program terminates
 * the pool and nothing of it is left behind. mproc_interrupt() from another thread ends every
 * kind of blocking call with MPROC_EINTR; a NaN timeout is refused by every call taking one. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static int task_sleep(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)arg, (void)len, (void)payload;
  usleep(200 * 1000);
  return 0;
}

static int body_sleep(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  /* Ctrl-C reaches this child too; it inherited the handler whose second Ctrl-C ends a process.
   * It is the parent's wait that is under test: the child ignores it. */
  signal(SIGINT, SIG_IGN);
  for (;;) pause();
  return 0;
}

/* The helper program: a map of 200 slow tasks, stopped by Ctrl-C. */
static int helper_ctrl_c(void) {
  if (mproc_handle_sigint(1) != 0) return 2;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  mproc_pool_t *p;
  if (mproc_pool_new(&p, &o) != 0) return 3;
  /* A child process too: join is interrupted the same way. */
  mproc_process_t *child;
  if (mproc_process_new(&child, body_sleep, NULL, 0, NULL) || mproc_process_start(child)) return 4;
  static int xs[200];
  const void *args[200];
  size_t lens[200];
  for (int i = 0; i < 200; i++) args[i] = &xs[i], lens[i] = sizeof(int);
  printf("started\n");
  fflush(stdout);
  mproc_async_t *r = NULL;
  int rc = mproc_pool_map(p, task_sleep, args, lens, 200, 1, &r);
  if (rc != MPROC_EINTR) return 5;
  printf("interrupted: %s\n", mproc_last_error());
  mproc_pool_terminate(p);
  if (mproc_pool_join(p, -1) != 0) return 6;
  mproc_async_free(r);
  mproc_pool_free(p);
  /* the next blocking call is interrupted by the next Ctrl-C */
  printf("joining\n");
  fflush(stdout);
  rc = mproc_process_join(child, -1);
  printf("join: %s\n", mproc_err_name(rc));
  mproc_process_kill(child);
  mproc_process_join(child, -1);
  mproc_process_free(child);
  return rc == MPROC_EINTR ? 130 : 7;
}

static int read_line(int fd, char *buf, size_t cap, double seconds) {
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(seconds * 1000)) != 1) return -1;
    if (read(fd, buf + n, 1) != 1) return -1;
    if (buf[n++] == '\n') break;
  }
  buf[n] = 0;
  return (int)n;
}

static int group_members(int pgid) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[300], buf[512];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(buf, sizeof buf, f)) {
      char *p = strrchr(buf, ')'); /* fields after the command name */
      int ppid, pgrp;
      char st;
      if (p && sscanf(p + 2, "%c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid) n++;
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

static void test_interrupt_ctrl_c_stops_map_and_join(void **state) {
  (void)state;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = 0;
  int out[2];
  assert_int_equal(pipe(out), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0); /* its own group, as a shell job */
    dup2(out[1], 1);
    close(out[0]);
    setenv("MPROC_TEST_HELPER", "ctrl_c", 1);
    execl(self, self, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  setpgid(pid, pid);
  char line[512];
  assert_true(read_line(out[0], line, sizeof line, 30) > 0);
  assert_string_equal(line, "started\n");
  usleep(300 * 1000); /* let some tasks run */
  assert_int_equal(kill(-pid, SIGINT), 0); /* Ctrl-C: the whole group */
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_non_null(strstr(line, "interrupted: mproc_pool_map: interrupted"));
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_string_equal(line, "joining\n");
  usleep(100 * 1000);
  assert_int_equal(kill(-pid, SIGINT), 0);
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_string_equal(line, "join: MPROC_EINTR\n");
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 130);
  /* nothing of the program is left: no worker, zygote or child in its group */
  double t0 = tu_now();
  while (group_members(pid) > 0 && tu_now() - t0 < 5) usleep(10000);
  assert_int_equal(group_members(pid), 0);
  close(out[0]);
}

static void test_interrupt_pending_interrupt_ends_next_wait(void **state) {
  (void)state;
  mproc_process_t *p;
  assert_int_equal(mproc_process_new(&p, body_sleep, NULL, 0, NULL), 0);
  assert_int_equal(mproc_process_start(p), 0);
  mproc_interrupt(); /* nobody waits: pending */
  assert_int_equal(mproc_process_join(p, 5), MPROC_EINTR);
  assert_int_equal(mproc_process_join(p, 0.1), MPROC_ETIMEDOUT); /* consumed */
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(mproc_process_join(p, -1), 0);
  assert_int_equal(mproc_process_free(p), 0);
  assert_int_equal(mproc_handle_sigint(1), 0);
  assert_int_equal(mproc_handle_sigint(0), 0);
}

/* ---- mproc_interrupt() from another thread ends every kind of blocking call ---- */

/* Interrupts the thread `tid` once it sleeps in the kernel (or after 2 s: an interrupt that
 * comes before the wait is pending and ends it all the same). */
static void *interrupter(void *arg) {
  pid_t tid = *(const pid_t *)arg;
  double t0 = tu_now();
  while (tu_proc_state(tid) != 'S' && tu_now() - t0 < 2.0) usleep(500);
  mproc_interrupt();
  return NULL;
}

#define EXPECT_INTERRUPTED(call)                                                          \
  do {                                                                                    \
    pthread_t th_;                                                                        \
    pid_t me_ = gettid();                                                                 \
    assert_int_equal(pthread_create(&th_, NULL, interrupter, &me_), 0);                   \
    int rc_ = (call);                                                                     \
    pthread_join(th_, NULL);                                                              \
    if (rc_ != MPROC_EINTR)                                                               \
      fail_msg("%s gave %s: %s", #call, mproc_err_name(rc_), mproc_last_error());         \
    assert_non_null(strstr(mproc_last_error(), "interrupted"));                           \
  } while (0)

struct held {
  mproc_lock_t *lock;
  mproc_event_t *taken, *done;
};

/* A child process holds the lock until told (our interrupts do not reach its waits). */
static int body_hold_lock(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct held *h = payload;
  if (mproc_lock_acquire(h->lock, -1) != 0) return 1;
  mproc_event_set(h->taken);
  int rc = mproc_event_wait(h->done, 60);
  mproc_lock_release(h->lock);
  return rc == 0 ? 0 : 2;
}

static void test_interrupt_every_blocking_call(void **state) {
  (void)state;
  /* Lock held by another process; semaphore at 0; condition never notified; event unset. */
  struct held h;
  assert_int_equal(mproc_lock_new(&h.lock), 0);
  assert_int_equal(mproc_event_new(&h.taken), 0);
  assert_int_equal(mproc_event_new(&h.done), 0);
  mproc_process_t *holder = tu_start(body_hold_lock, NULL, 0, MPROC_START_FORK, 0, &h);
  assert_int_equal(mproc_event_wait(h.taken, 30), 0);
  EXPECT_INTERRUPTED(mproc_lock_acquire(h.lock, 30));
  EXPECT_INTERRUPTED(mproc_lock_acquire(h.lock, -1));
  mproc_event_set(h.done);
  assert_int_equal(tu_join_code(holder), 0);

  mproc_sem_t *sem;
  assert_int_equal(mproc_sem_new(&sem, 0), 0);
  EXPECT_INTERRUPTED(mproc_sem_acquire(sem, -1));
  mproc_cond_t *cond;
  assert_int_equal(mproc_cond_new(&cond, NULL), 0);
  assert_int_equal(mproc_cond_acquire(cond, -1), 0);
  EXPECT_INTERRUPTED(mproc_cond_wait(cond, 30));
  mproc_lock_t *cl = NULL;
  assert_int_equal(mproc_cond_get_lock(cond, &cl), 0);
  assert_int_equal(mproc_lock_owned(cl), 1); /* taken back before returning */
  assert_int_equal(mproc_cond_release(cond), 0);
  mproc_event_t *ev;
  assert_int_equal(mproc_event_new(&ev), 0);
  EXPECT_INTERRUPTED(mproc_event_wait(ev, -1));
  /* A barrier left by an interrupted party is broken, as by a timeout. */
  mproc_barrier_t *b;
  assert_int_equal(mproc_barrier_new(&b, 2, NULL, NULL), 0);
  EXPECT_INTERRUPTED(mproc_barrier_wait(b, 30));
  assert_int_equal(mproc_barrier_broken(b), 1);

  /* Queues: get on empty, put on full (by count and by bytes), join with a task unfinished. */
  mproc_queue_t *q, *jq;
  mproc_queue_opts_t qo = MPROC_QUEUE_OPTS_INIT;
  qo.maxsize = 1;
  assert_int_equal(mproc_queue_new(&q, &qo), 0);
  char buf[64];
  size_t got = 0;
  void *mem = NULL;
  EXPECT_INTERRUPTED(mproc_queue_get(q, buf, sizeof buf, &got, -1));
  EXPECT_INTERRUPTED(mproc_queue_get_alloc(q, &mem, &got, 30));
  assert_int_equal(mproc_queue_put(q, "x", 1, 0), 0);
  EXPECT_INTERRUPTED(mproc_queue_put(q, "y", 1, -1));
  assert_int_equal(mproc_joinable_queue_new(&jq, NULL), 0);
  assert_int_equal(mproc_queue_put(jq, "z", 1, 0), 0);
  EXPECT_INTERRUPTED(mproc_queue_join(jq, -1));

  /* Pipes: recv and poll on an empty end; a send that finds no room for its first frame. */
  mproc_conn_t *a, *c;
  assert_int_equal(mproc_pipe(&a, &c, 1), 0);
  EXPECT_INTERRUPTED(mproc_conn_recv_bytes(a, buf, sizeof buf, &got, -1));
  EXPECT_INTERRUPTED(mproc_conn_poll(a, 30));
  static char big[60000];
  for (int i = 0; i < 4; i++) assert_int_equal(mproc_conn_send_bytes(c, big, sizeof big), 0);
  EXPECT_INTERRUPTED(mproc_conn_send_bytes(c, big, sizeof big));
  for (int i = 0; i < 4; i++) { /* every message whole: nothing of the interrupted one */
    assert_int_equal(mproc_conn_recv_bytes(a, big, sizeof big, &got, 5), 0);
    assert_int_equal(got, sizeof big);
  }
  assert_int_equal(mproc_conn_poll(a, 0), 0);

  /* mproc_wait on things that never become ready. */
  mproc_queue_t *empty;
  assert_int_equal(mproc_queue_new(&empty, NULL), 0);
  mproc_wait_item_t items[2] = {{MPROC_WAIT_QUEUE, empty, -1, 0}, {MPROC_WAIT_CONN, a, -1, 0}};
  EXPECT_INTERRUPTED(mproc_wait(items, 2, -1));

  mproc_queue_free(empty);
  mproc_conn_free(a);
  mproc_conn_free(c);
  mproc_queue_free(q);
  mproc_queue_free(jq);
  mproc_barrier_free(b);
  mproc_event_free(ev);
  mproc_cond_free(cond);
  mproc_sem_free(sem);
  mproc_event_free(h.taken);
  mproc_event_free(h.done);
  mproc_lock_free(h.lock);
}

/* ---- NaN timeouts: MPROC_EINVAL from every call taking one, at once ---- */

static int task_noop(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_return(ctx, "ok", 2);
}

static int pred_false(void *payload) {
  (void)payload;
  return 0;
}

#define EXPECT_NAN_REFUSED(call)                                                          \
  do {                                                                                    \
    int rc_ = (call);                                                                     \
    if (rc_ != MPROC_EINVAL)                                                              \
      fail_msg("%s gave %s: %s", #call, mproc_err_name(rc_), mproc_last_error());         \
    assert_non_null(strstr(mproc_last_error(), "timeout is NaN"));                        \
  } while (0)

static void test_interrupt_nan_timeout_refused(void **state) {
  (void)state;
  const double nan = NAN;
  mproc_lock_t *l;
  mproc_sem_t *s;
  mproc_cond_t *c;
  mproc_event_t *e;
  mproc_barrier_t *b;
  mproc_queue_t *q;
  mproc_conn_t *x, *y;
  assert_int_equal(mproc_lock_new(&l), 0);
  assert_int_equal(mproc_sem_new(&s, 0), 0);
  assert_int_equal(mproc_cond_new(&c, NULL), 0);
  assert_int_equal(mproc_event_new(&e), 0);
  assert_int_equal(mproc_barrier_new(&b, 2, NULL, NULL), 0);
  assert_int_equal(mproc_joinable_queue_new(&q, NULL), 0);
  assert_int_equal(mproc_pipe(&x, &y, 1), 0);
  EXPECT_NAN_REFUSED(mproc_lock_acquire(l, nan));
  EXPECT_NAN_REFUSED(mproc_sem_acquire(s, nan));
  EXPECT_NAN_REFUSED(mproc_cond_acquire(c, nan));
  assert_int_equal(mproc_cond_acquire(c, -1), 0);
  EXPECT_NAN_REFUSED(mproc_cond_wait(c, nan));
  EXPECT_NAN_REFUSED(mproc_cond_wait_for(c, pred_false, NULL, nan));
  assert_int_equal(mproc_cond_release(c), 0);
  EXPECT_NAN_REFUSED(mproc_event_wait(e, nan));
  EXPECT_NAN_REFUSED(mproc_barrier_wait(b, nan));
  assert_int_equal(mproc_barrier_broken(b), 0);
  char buf[8];
  size_t n;
  void *m;
  const void *cp;
  EXPECT_NAN_REFUSED(mproc_queue_get(q, buf, sizeof buf, &n, nan));
  EXPECT_NAN_REFUSED(mproc_queue_get_alloc(q, &m, &n, nan));
  EXPECT_NAN_REFUSED(mproc_queue_peek(q, &cp, &n, nan));
  EXPECT_NAN_REFUSED(mproc_queue_put(q, "x", 1, nan));
  EXPECT_NAN_REFUSED(mproc_queue_reserve(q, 1, &m, nan));
  assert_int_equal(mproc_queue_put(q, "x", 1, 0), 0);
  EXPECT_NAN_REFUSED(mproc_queue_join(q, nan));
  EXPECT_NAN_REFUSED(mproc_conn_recv_bytes(x, buf, sizeof buf, &n, nan));
  EXPECT_NAN_REFUSED(mproc_conn_recv_bytes_alloc(x, &m, &n, nan));
  EXPECT_NAN_REFUSED(mproc_conn_poll(x, nan));
  mproc_wait_item_t it = {MPROC_WAIT_CONN, x, -1, 0};
  EXPECT_NAN_REFUSED(mproc_wait(&it, 1, nan));

  mproc_process_t *p;
  assert_int_equal(mproc_process_new(&p, body_sleep, NULL, 0, NULL), 0);
  assert_int_equal(mproc_process_start(p), 0);
  EXPECT_NAN_REFUSED(mproc_process_join(p, nan));
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(mproc_process_join(p, -1), 0);
  mproc_process_free(p);

  mproc_pool_opts_t po = MPROC_POOL_OPTS_INIT;
  po.workers = 1;
  mproc_pool_t *pool;
  assert_int_equal(mproc_pool_new(&pool, &po), 0);
  mproc_async_t *r;
  assert_int_equal(mproc_pool_apply_async(pool, task_noop, NULL, 0, NULL, &r), 0);
  const void *data;
  size_t len;
  size_t idx;
  EXPECT_NAN_REFUSED(mproc_async_get(r, nan, &data, &len));
  EXPECT_NAN_REFUSED(mproc_async_wait(r, nan));
  EXPECT_NAN_REFUSED(mproc_async_wait_any(&r, 1, nan));
  EXPECT_NAN_REFUSED(mproc_async_next(r, nan, &idx, &data, &len));
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.timeout = nan;
  mproc_async_t *r2 = NULL;
  assert_int_equal(mproc_pool_apply_async(pool, task_noop, NULL, 0, &ao, &r2), MPROC_EINVAL);
  assert_int_equal(mproc_async_get(r, 30, &data, &len), 0);
  assert_int_equal(mproc_pool_close(pool), 0);
  EXPECT_NAN_REFUSED(mproc_pool_join(pool, nan));
  assert_int_equal(mproc_pool_join(pool, -1), 0);
  mproc_async_free(r);
  mproc_pool_free(pool);
  po.task_timeout = nan;
  assert_int_equal(mproc_pool_new(&pool, &po), MPROC_EINVAL);
  /* +inf waits forever, as a negative timeout: a ready object returns at once. */
  assert_int_equal(mproc_event_set(e), 0);
  assert_int_equal(mproc_event_wait(e, INFINITY), 0);
  assert_int_equal(mproc_lock_acquire(l, INFINITY), 0);
  assert_int_equal(mproc_lock_release(l), 0);

  mproc_conn_free(x);
  mproc_conn_free(y);
  mproc_queue_free(q);
  mproc_barrier_free(b);
  mproc_event_free(e);
  mproc_cond_free(c);
  mproc_sem_free(s);
  mproc_lock_free(l);
}

int main(void) {
  const char *helper = getenv("MPROC_TEST_HELPER");
  if (helper && strcmp(helper, "ctrl_c") == 0) return helper_ctrl_c();
  const struct CMUnitTest tests[] = {
      TEST(interrupt, ctrl_c_stops_map_and_join),
      TEST(interrupt, pending_interrupt_ends_next_wait),
      TEST(interrupt, every_blocking_call),
      TEST(interrupt, nan_timeout_refused),
  };
  return tu_run("interrupt", tests);
}
