/* Synchronization across processes: lock, rlock, semaphore, condition, event, barrier; owner
 * death, timeouts, attach from a forkserver child and from an unrelated (exec'd) process. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

extern char **environ;

/* Everything a child needs, made before it starts (fork copies the handles). */
struct shared {
  mproc_lock_t *lock;
  mproc_lock_t *rlock;
  mproc_sem_t *sem;
  mproc_event_t *ready;
  mproc_event_t *go;
  mproc_cond_t *cond;
  mproc_barrier_t *barrier;
  mproc_value_t *counter;
  mproc_array_t *slots;
  int n;
};

static mproc_process_t *start(mproc_process_fn fn, const void *arg, size_t len, int method,
                              void *payload) {
  return tu_start(fn, arg, len, method, 0, payload);
}

#define join_code tu_join_code

/* ---- Lock / RLock ---- */

static void test_sync_lock_basic(void **state) {
  (void)state;
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_lock_new(&l), 0);
  assert_int_equal(mproc_lock_is_recursive(l), 0);
  assert_int_equal(mproc_lock_owned(l), 0);
  assert_int_equal(mproc_lock_release(l), MPROC_ENOTOWNER);
  assert_non_null(strstr(mproc_last_error(), "mproc_lock_release: the lock is not held"));
  assert_int_equal(mproc_lock_acquire(l, -1), 0);
  assert_int_equal(mproc_lock_owned(l), 1);
  assert_int_equal(mproc_lock_acquire(l, 0), MPROC_EDEADLK);
  assert_int_equal(mproc_lock_acquire(l, -1), MPROC_EDEADLK);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_acquire(l, 0), 0);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_free(l), 0);
}

static void test_sync_rlock_recursion(void **state) {
  (void)state;
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_rlock_new(&l), 0);
  assert_int_equal(mproc_lock_is_recursive(l), 1);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_lock_acquire(l, 0), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(mproc_lock_owned(l), 1);
    assert_int_equal(mproc_lock_release(l), 0);
  }
  assert_int_equal(mproc_lock_owned(l), 0);
  assert_int_equal(mproc_lock_release(l), MPROC_ENOTOWNER);
  assert_int_equal(mproc_lock_free(l), 0);
}

/* A child that must not be able to take or release the parent's lock. */
static int body_foreign_release(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  if (mproc_lock_release(s->lock) != MPROC_ENOTOWNER) return 1;
  if (mproc_lock_release(s->rlock) != MPROC_ENOTOWNER) return 2;
  if (mproc_lock_acquire(s->lock, 0) != MPROC_ETIMEDOUT) return 3;
  if (mproc_lock_acquire(s->rlock, 0.05) != MPROC_ETIMEDOUT) return 4;
  return 0;
}

static void test_sync_release_by_non_owner_process(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_lock_new(&s.lock), 0);
  assert_int_equal(mproc_rlock_new(&s.rlock), 0);
  assert_int_equal(mproc_lock_acquire(s.lock, -1), 0);
  assert_int_equal(mproc_lock_acquire(s.rlock, -1), 0);
  assert_int_equal(join_code(start(body_foreign_release, NULL, 0, MPROC_START_FORK, &s)), 0);
  assert_int_equal(mproc_lock_release(s.lock), 0);
  assert_int_equal(mproc_lock_release(s.rlock), 0);
  assert_int_equal(mproc_lock_free(s.lock), 0);
  assert_int_equal(mproc_lock_free(s.rlock), 0);
}

/* Takes the lock(s), says so, and sleeps until killed. */
static int body_hold_and_sleep(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  if (s->lock && mproc_lock_acquire(s->lock, -1) != 0) return 1;
  if (s->rlock && (mproc_lock_acquire(s->rlock, -1) != 0 || mproc_lock_acquire(s->rlock, -1) != 0))
    return 2;
  mproc_event_set(s->ready);
  for (;;) pause();
  return 0;
}

static void test_sync_lock_timeout(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_lock_new(&s.lock), 0);
  assert_int_equal(mproc_event_new(&s.ready), 0);
  mproc_process_t *p = start(body_hold_and_sleep, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_wait(s.ready, -1), 0);
  double t0 = tu_now();
  assert_int_equal(mproc_lock_acquire(s.lock, 0.2), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.19);
  assert_string_equal(mproc_last_error(), "mproc_lock_acquire: timeout after 0.2 s");
  assert_int_equal(mproc_lock_acquire(s.lock, 0), MPROC_ETIMEDOUT);
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  mproc_lock_free(s.lock);
  mproc_event_free(s.ready);
}

static void check_owner_killed(int recursive) {
  struct shared s = {0};
  mproc_lock_t *l = NULL;
  assert_int_equal(recursive ? mproc_rlock_new(&l) : mproc_lock_new(&l), 0);
  if (recursive) s.rlock = l;
  else s.lock = l;
  assert_int_equal(mproc_event_new(&s.ready), 0);
  mproc_process_t *p = start(body_hold_and_sleep, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_wait(s.ready, -1), 0);
  assert_int_equal(mproc_process_kill(p), 0);
  /* The timeout is only a guard against a hang: owner death is seen within ~0.05 s. */
  assert_int_equal(mproc_lock_acquire(l, 30.0), MPROC_EOWNERDEAD);
  assert_non_null(strstr(mproc_last_error(), "died holding the lock"));
  assert_int_equal(mproc_lock_owned(l), 1);
  assert_int_equal(mproc_lock_release(l), 0); /* recovered: one release, even for the RLock */
  assert_int_equal(mproc_lock_owned(l), 0);
  assert_int_equal(mproc_lock_acquire(l, 0), 0);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  mproc_lock_free(l);
  mproc_event_free(s.ready);
}

static void test_sync_lock_owner_killed(void **state) {
  (void)state;
  check_owner_killed(0);
}

static void test_sync_rlock_owner_killed(void **state) {
  (void)state;
  check_owner_killed(1);
}

/* The same with a try-acquire after the holder is gone and reaped: no wait at all. */
static void test_sync_lock_owner_killed_try(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_lock_new(&s.lock), 0);
  assert_int_equal(mproc_event_new(&s.ready), 0);
  mproc_process_t *p = start(body_hold_and_sleep, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_wait(s.ready, -1), 0);
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  assert_int_equal(mproc_lock_acquire(s.lock, 0), MPROC_EOWNERDEAD);
  assert_int_equal(mproc_lock_release(s.lock), 0);
  mproc_lock_free(s.lock);
  mproc_event_free(s.ready);
}

/* Takes the lock (or the rlock), says so, and releases it: the parent holds it meanwhile, so the
 * child ends up asleep on the futex and must be woken by the parent's release. */
static int body_wait_for_lock(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  mproc_lock_t *l = s->lock ? s->lock : s->rlock;
  mproc_event_set(s->ready);
  if (mproc_lock_acquire(l, 30.0) != 0) return 1;
  if (mproc_lock_release(l) != 0) return 2;
  return 0;
}

static void check_release_wakes_sleeper(int recursive) {
  struct shared s = {0};
  mproc_lock_t *l = NULL;
  assert_int_equal(recursive ? mproc_rlock_new(&l) : mproc_lock_new(&l), 0);
  if (recursive) s.rlock = l;
  else s.lock = l;
  assert_int_equal(mproc_event_new(&s.ready), 0);
  assert_int_equal(mproc_lock_acquire(l, -1), 0);
  if (recursive) assert_int_equal(mproc_lock_acquire(l, -1), 0);
  mproc_process_t *p = start(body_wait_for_lock, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_wait(s.ready, -1), 0);
  /* Wait (bounded) until the child sleeps in its acquire: the release must then wake it. */
  int pid = mproc_process_pid(p);
  double t0 = tu_now();
  while (tu_proc_state(pid) != 'S' && tu_now() - t0 < 10) sched_yield();
  if (recursive) assert_int_equal(mproc_lock_release(l), 0); /* depth 2 -> 1: still held */
  assert_int_equal(mproc_lock_owned(l), 1);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(join_code(p), 0);
  /* The waiters bit is gone with the last sleeper: a try-acquire takes it at once. */
  assert_int_equal(mproc_lock_acquire(l, 0), 0);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_owned(l), 0);
  assert_int_equal(mproc_lock_free(l), 0);
  mproc_event_free(s.ready);
}

static void test_sync_release_wakes_sleeping_waiter(void **state) {
  (void)state;
  check_release_wakes_sleeper(0);
}

static void test_sync_rlock_release_wakes_sleeping_waiter(void **state) {
  (void)state;
  check_release_wakes_sleeper(1);
}

/* Every way to get an RLock handle (new, attach, a condition's or a value's) is recursive. */
static void check_recursive_handle(mproc_lock_t *l) {
  assert_int_equal(mproc_lock_is_recursive(l), 1);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_lock_acquire(l, 0), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_owned(l), 0);
  assert_int_equal(mproc_lock_release(l), MPROC_ENOTOWNER);
}

static void test_sync_rlock_handles_of_every_origin(void **state) {
  (void)state;
  mproc_lock_t *l = NULL, *a = NULL, *cl = NULL, *vl = NULL;
  assert_int_equal(mproc_rlock_new(&l), 0);
  char tok[MPROC_TOKEN_MAX];
  assert_true(mproc_lock_export(l, tok, sizeof tok) > 0);
  assert_int_equal(mproc_lock_attach(&a, tok), 0);
  check_recursive_handle(l);
  check_recursive_handle(a);
  mproc_cond_t *c = NULL;
  assert_int_equal(mproc_cond_new(&c, NULL), 0);
  assert_int_equal(mproc_cond_get_lock(c, &cl), 0);
  check_recursive_handle(cl);
  mproc_value_t *v = NULL;
  assert_int_equal(mproc_value_new(&v, 'i', NULL, NULL), 0);
  assert_int_equal(mproc_value_get_lock(v, &vl), 0);
  check_recursive_handle(vl);
  /* A plain Lock attached from a token stays non-recursive. */
  mproc_lock_t *pl = NULL, *pa = NULL;
  assert_int_equal(mproc_lock_new(&pl), 0);
  assert_true(mproc_lock_export(pl, tok, sizeof tok) > 0);
  assert_int_equal(mproc_lock_attach(&pa, tok), 0);
  assert_int_equal(mproc_lock_acquire(pa, 0), 0);
  assert_int_equal(mproc_lock_acquire(pl, 0), MPROC_EDEADLK);
  assert_int_equal(mproc_lock_release(pl), 0);
  assert_int_equal(mproc_lock_release(pa), MPROC_ENOTOWNER);
  assert_non_null(strstr(mproc_last_error(), "mproc_lock_release: the lock is not held"));
  assert_int_equal(mproc_lock_free(pa), 0);
  assert_int_equal(mproc_lock_free(pl), 0);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_cond_free(c), 0);
  assert_int_equal(mproc_lock_free(a), 0);
  assert_int_equal(mproc_lock_free(l), 0);
}

#define N_INCR 20000

static int body_locked_increments(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  long long *c = mproc_value_ptr(s->counter);
  for (int i = 0; i < N_INCR; i++) {
    if (mproc_lock_acquire(s->lock, -1) != 0) return 1;
    *c += 1; /* a plain read-modify-write: only the lock makes it exact */
    if (mproc_lock_release(s->lock) != 0) return 2;
  }
  return 0;
}

static void test_sync_contended_counter(void **state) {
  (void)state;
  struct shared s = {0};
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = 1;
  assert_int_equal(mproc_lock_new(&s.lock), 0);
  assert_int_equal(mproc_value_new(&s.counter, 'q', NULL, &o), 0);
  mproc_process_t *ps[4];
  for (int i = 0; i < 4; i++)
    ps[i] = start(body_locked_increments, NULL, 0, MPROC_START_FORK, &s);
  for (int i = 0; i < 4; i++) assert_int_equal(join_code(ps[i]), 0);
  int64_t v = 0;
  assert_int_equal(mproc_value_load(s.counter, &v), 0);
  assert_int_equal(v, 4 * N_INCR);
  mproc_value_free(s.counter);
  mproc_lock_free(s.lock);
}

/* ---- Semaphore ---- */

static int body_release_sem(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int i = 0; i < 3; i++)
    if (mproc_sem_release(s->sem) != 0) return 1;
  return 0;
}

static void test_sync_semaphore(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_sem_new(&s.sem, 2), 0);
  assert_int_equal(mproc_sem_get_value(s.sem), 2);
  assert_int_equal(mproc_sem_acquire(s.sem, 0), 0);
  assert_int_equal(mproc_sem_acquire(s.sem, -1), 0);
  assert_int_equal(mproc_sem_get_value(s.sem), 0);
  assert_int_equal(mproc_sem_acquire(s.sem, 0), MPROC_ETIMEDOUT);
  double t0 = tu_now();
  assert_int_equal(mproc_sem_acquire(s.sem, 0.1), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.09);
  /* Any process may release (a semaphore has no owner). */
  mproc_process_t *p = start(body_release_sem, NULL, 0, MPROC_START_FORK, &s);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_sem_acquire(s.sem, 30.0), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_sem_get_value(s.sem), 0);
  assert_int_equal(mproc_sem_free(s.sem), 0);
}

static void test_sync_bounded_semaphore(void **state) {
  (void)state;
  mproc_sem_t *s = NULL;
  assert_int_equal(mproc_bounded_sem_new(&s, 2), 0);
  assert_int_equal(mproc_sem_release(s), MPROC_ERANGE);
  assert_non_null(strstr(mproc_last_error(), "released too many times"));
  assert_int_equal(mproc_sem_acquire(s, 0), 0);
  assert_int_equal(mproc_sem_release(s), 0);
  assert_int_equal(mproc_sem_get_value(s), 2);
  assert_int_equal(mproc_sem_free(s), 0);
  assert_int_equal(mproc_sem_new(&s, MPROC_SEM_VALUE_MAX), 0);
  assert_int_equal(mproc_sem_release(s), MPROC_ERANGE);
  assert_int_equal(mproc_sem_free(s), 0);
}

/* ---- Condition ---- */

static int counter_at_least_3(void *payload) {
  int64_t v = 0;
  mproc_value_load(payload, &v);
  return v >= 3;
}

static int body_cond_producer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int i = 0; i < 3; i++) {
    if (mproc_cond_acquire(s->cond, -1) != 0) return 1;
    mproc_value_fetch_add(s->counter, 1, NULL);
    if (mproc_cond_notify_all(s->cond) != 0) return 2;
    if (mproc_cond_release(s->cond) != 0) return 3;
  }
  return 0;
}

static void check_condition(mproc_lock_t *lock) {
  struct shared s = {0};
  assert_int_equal(mproc_cond_new(&s.cond, lock), 0);
  assert_int_equal(mproc_value_new(&s.counter, 'i', NULL, NULL), 0);
  mproc_lock_t *cl = NULL;
  assert_int_equal(mproc_cond_get_lock(s.cond, &cl), 0);
  assert_non_null(cl);
  assert_int_equal(mproc_lock_is_recursive(cl), lock ? 0 : 1);
  assert_int_equal(mproc_lock_free(cl), MPROC_EINVAL); /* belongs to the condition */
  assert_int_equal(mproc_cond_acquire(s.cond, -1), 0);
  mproc_process_t *p = start(body_cond_producer, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_cond_wait_for(s.cond, counter_at_least_3, s.counter, 30.0), 0);
  assert_int_equal(mproc_lock_owned(cl), 1);
  assert_int_equal(mproc_cond_release(s.cond), 0);
  assert_int_equal(join_code(p), 0);
  mproc_value_free(s.counter);
  assert_int_equal(mproc_cond_free(s.cond), 0);
}

static void test_sync_condition_own_rlock(void **state) {
  (void)state;
  check_condition(NULL);
}

static void test_sync_condition_given_lock(void **state) {
  (void)state;
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_lock_new(&l), 0);
  check_condition(l);
  assert_int_equal(mproc_lock_free(l), 0);
}

static int never(void *payload) {
  (void)payload;
  return 0;
}

static void test_sync_condition_errors_and_timeouts(void **state) {
  (void)state;
  mproc_cond_t *c = NULL;
  assert_int_equal(mproc_cond_new(&c, NULL), 0);
  assert_int_equal(mproc_cond_wait(c, 0.01), MPROC_ENOTOWNER);
  assert_int_equal(mproc_cond_notify(c, 1), MPROC_ENOTOWNER);
  assert_int_equal(mproc_cond_notify_all(c), MPROC_ENOTOWNER);
  assert_int_equal(mproc_cond_wait_for(c, never, NULL, 0.01), MPROC_ENOTOWNER);
  /* RLock held twice: wait releases both levels and restores them. */
  assert_int_equal(mproc_cond_acquire(c, -1), 0);
  assert_int_equal(mproc_cond_acquire(c, -1), 0);
  double t0 = tu_now();
  assert_int_equal(mproc_cond_wait(c, 0.1), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.09);
  t0 = tu_now();
  assert_int_equal(mproc_cond_wait_for(c, never, NULL, 0.1), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.09);
  assert_int_equal(mproc_cond_wait_for(c, NULL, NULL, 0.1), MPROC_EINVAL);
  assert_int_equal(mproc_cond_notify(c, -1), MPROC_EINVAL);
  assert_int_equal(mproc_cond_notify(c, 0), 0);
  assert_int_equal(mproc_cond_notify(c, 2), 0); /* nobody waits: fine */
  assert_int_equal(mproc_cond_release(c), 0);
  assert_int_equal(mproc_cond_release(c), 0);
  assert_int_equal(mproc_cond_release(c), MPROC_ENOTOWNER);
  assert_int_equal(mproc_cond_free(c), 0);
}

/* ---- Event ---- */

static int body_wait_event_then_set(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  if (mproc_event_wait(s->go, 30.0) != 0) return 1;
  if (mproc_event_is_set(s->go) != 1) return 2;
  return mproc_event_set(s->ready) == 0 ? 0 : 3;
}

static void test_sync_event(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_event_new(&s.go), 0);
  assert_int_equal(mproc_event_new(&s.ready), 0);
  assert_int_equal(mproc_event_is_set(s.go), 0);
  double t0 = tu_now();
  assert_int_equal(mproc_event_wait(s.go, 0.1), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.09);
  mproc_process_t *ps[3];
  for (int i = 0; i < 3; i++) ps[i] = start(body_wait_event_then_set, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_set(s.go), 0);
  assert_int_equal(mproc_event_wait(s.ready, 30.0), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(join_code(ps[i]), 0);
  assert_int_equal(mproc_event_clear(s.go), 0);
  assert_int_equal(mproc_event_is_set(s.go), 0);
  assert_int_equal(mproc_event_wait(s.go, 0), MPROC_ETIMEDOUT);
  mproc_event_free(s.go);
  mproc_event_free(s.ready);
}

/* ---- Barrier ---- */

static int count_action(void *payload) {
  return mproc_value_fetch_add(payload, 1, NULL);
}

#define ROUNDS 3
#define PARTIES 4

/* Each party records its arrival index per round in slots[round * PARTIES + index]. */
static int body_barrier_party(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int r = 0; r < ROUNDS; r++) {
    int idx = mproc_barrier_wait(s->barrier, 30.0);
    if (idx < 0 || idx >= PARTIES) return 1;
    int64_t old = 0;
    mproc_array_get_int64(s->slots, (size_t)(r * PARTIES + idx), &old);
    if (old != 0) return 2;
    if (mproc_array_set_int64(s->slots, (size_t)(r * PARTIES + idx), 1) != 0) return 3;
  }
  return 0;
}

static void test_sync_barrier_processes(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_value_new(&s.counter, 'i', NULL, NULL), 0);
  assert_int_equal(mproc_array_new(&s.slots, 'i', ROUNDS * PARTIES, NULL, NULL), 0);
  assert_int_equal(mproc_barrier_new(&s.barrier, PARTIES, count_action, s.counter), 0);
  assert_int_equal(mproc_barrier_parties(s.barrier), PARTIES);
  mproc_process_t *ps[PARTIES - 1];
  for (int i = 0; i < PARTIES - 1; i++)
    ps[i] = start(body_barrier_party, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(body_barrier_party(NULL, 0, &s), 0);
  for (int i = 0; i < PARTIES - 1; i++) assert_int_equal(join_code(ps[i]), 0);
  int64_t v = 0;
  assert_int_equal(mproc_value_get_int64(s.counter, &v), 0);
  assert_int_equal(v, ROUNDS); /* the action ran once per round */
  for (size_t i = 0; i < ROUNDS * PARTIES; i++) {
    assert_int_equal(mproc_array_get_int64(s.slots, i, &v), 0);
    assert_int_equal(v, 1); /* every index handed out once per round */
  }
  assert_int_equal(mproc_barrier_n_waiting(s.barrier), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 0);
  mproc_barrier_free(s.barrier);
  mproc_array_free(s.slots);
  mproc_value_free(s.counter);
}

static int body_barrier_expect_broken(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  mproc_event_set(s->ready);
  return mproc_barrier_wait(s->barrier, 30.0) == MPROC_EBROKEN ? 0 : 1;
}

static void wait_n_waiting(mproc_barrier_t *b, int n) {
  double t0 = tu_now();
  while (mproc_barrier_n_waiting(b) != n) {
    assert_true(tu_now() - t0 < 30.0);
    usleep(1000);
  }
}

static void test_sync_barrier_abort_reset_timeout(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_event_new(&s.ready), 0);
  assert_int_equal(mproc_barrier_new(&s.barrier, 3, NULL, NULL), 0);
  /* abort wakes a waiter with EBROKEN; later waits fail until reset */
  mproc_process_t *p = start(body_barrier_expect_broken, NULL, 0, MPROC_START_FORK, &s);
  wait_n_waiting(s.barrier, 1);
  assert_int_equal(mproc_barrier_abort(s.barrier), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 1);
  assert_int_equal(mproc_barrier_wait(s.barrier, 1), MPROC_EBROKEN);
  assert_int_equal(mproc_barrier_reset(s.barrier), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 0);
  /* reset while one waits: it gets EBROKEN, the barrier stays usable */
  p = start(body_barrier_expect_broken, NULL, 0, MPROC_START_FORK, &s);
  wait_n_waiting(s.barrier, 1);
  assert_int_equal(mproc_barrier_reset(s.barrier), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 0);
  /* a timeout breaks it (as Python) */
  double t0 = tu_now();
  assert_int_equal(mproc_barrier_wait(s.barrier, 0.1), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.09);
  assert_int_equal(mproc_barrier_broken(s.barrier), 1);
  assert_int_equal(mproc_barrier_reset(s.barrier), 0);
  mproc_barrier_free(s.barrier);
  mproc_event_free(s.ready);
}

static int failing_action(void *payload) {
  (void)payload;
  return 7;
}

static void test_sync_barrier_action_fails(void **state) {
  (void)state;
  mproc_barrier_t *b = NULL;
  assert_int_equal(mproc_barrier_new(&b, 1, failing_action, NULL), 0);
  assert_int_equal(mproc_barrier_wait(b, -1), MPROC_EBROKEN);
  assert_non_null(strstr(mproc_last_error(), "returned 7"));
  assert_int_equal(mproc_barrier_broken(b), 1);
  mproc_barrier_free(b);
  assert_int_equal(mproc_barrier_new(&b, 1, NULL, NULL), 0);
  assert_int_equal(mproc_barrier_wait(b, 0), 0); /* one party: index 0 at once */
  mproc_barrier_free(b);
}

/* A party dies inside the action: the others are not stuck, they see a broken barrier. */
static int dying_action(void *payload) {
  (void)payload;
  raise(SIGKILL);
  return 0;
}

static int body_barrier_last_dies(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  mproc_barrier_t *b = NULL;
  char tok[MPROC_TOKEN_MAX];
  if (mproc_barrier_export(s->barrier, tok, sizeof tok) < 0) return 1;
  if (mproc_barrier_attach(&b, tok, dying_action, NULL) != 0) return 2;
  mproc_barrier_wait(b, -1);
  return 3;
}

static void test_sync_barrier_party_dies_in_action(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_barrier_new(&s.barrier, 2, NULL, NULL), 0);
  assert_int_equal(mproc_event_new(&s.ready), 0);
  mproc_process_t *p = start(body_barrier_expect_broken, NULL, 0, MPROC_START_FORK, &s);
  wait_n_waiting(s.barrier, 1);
  mproc_process_t *q = start(body_barrier_last_dies, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(join_code(q), -SIGKILL);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 1);
  mproc_barrier_free(s.barrier);
  mproc_event_free(s.ready);
}

static int body_barrier_wait_forever(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  mproc_barrier_wait(s->barrier, -1);
  return 3;
}

/* A party killed while it waits: the survivors get EBROKEN (within about a second, here well
 * before their 30 s timeout) instead of waiting on, and a later arrival does not trip the
 * barrier as if the dead party were there. */
static void test_sync_barrier_party_killed_while_waiting(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_barrier_new(&s.barrier, 3, NULL, NULL), 0);
  assert_int_equal(mproc_event_new(&s.ready), 0);
  mproc_process_t *victim = start(body_barrier_wait_forever, NULL, 0, MPROC_START_FORK, &s);
  wait_n_waiting(s.barrier, 1);
  mproc_process_t *survivor = start(body_barrier_expect_broken, NULL, 0, MPROC_START_FORK, &s);
  wait_n_waiting(s.barrier, 2);
  assert_int_equal(mproc_process_kill(victim), 0);
  assert_int_equal(join_code(victim), -SIGKILL);
  assert_int_equal(join_code(survivor), 0);
  assert_int_equal(mproc_barrier_broken(s.barrier), 1);
  assert_int_equal(mproc_barrier_wait(s.barrier, 30.0), MPROC_EBROKEN); /* a later arrival */
  assert_int_equal(mproc_barrier_reset(s.barrier), 0); /* usable again once reset */
  assert_int_equal(mproc_barrier_broken(s.barrier), 0);
  mproc_barrier_free(s.barrier);
  mproc_event_free(s.ready);
}

static int body_barrier_wait_once(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  int idx = mproc_barrier_wait(s->barrier, 30.0);
  return idx >= 0 ? 0 : 1;
}

/* arrive + await in slices: a slice that times out leaves the barrier whole; the other party's
 * arrival then releases the waiter; a bad ticket is refused. */
static void test_sync_barrier_arrive_await_in_slices(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_barrier_new(&s.barrier, 2, NULL, NULL), 0);
  uint64_t ticket = 0;
  int idx = mproc_barrier_arrive(s.barrier, &ticket);
  assert_int_equal(idx, 0);
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_barrier_await(s.barrier, ticket, 0.02), MPROC_ETIMEDOUT);
  assert_int_equal(mproc_barrier_broken(s.barrier), 0);
  assert_int_equal(mproc_barrier_n_waiting(s.barrier), 1);
  mproc_process_t *p = start(body_barrier_wait_once, NULL, 0, MPROC_START_FORK, &s);
  int got = MPROC_ETIMEDOUT;
  while (got == MPROC_ETIMEDOUT) got = mproc_barrier_await(s.barrier, ticket, 0.05);
  assert_int_equal(got, 0);
  assert_int_equal(join_code(p), 0);
  /* The last party's own ticket is already through. */
  assert_int_equal(mproc_barrier_arrive(s.barrier, &ticket), 0);
  uint64_t t2 = 0;
  assert_int_equal(mproc_barrier_arrive(s.barrier, &t2), 1);
  assert_int_equal(mproc_barrier_await(s.barrier, t2, 0), 1);
  assert_int_equal(mproc_barrier_await(s.barrier, ticket, 0), 0);
  /* Giving up a ticket that passed meanwhile reports its index; one still waiting breaks it for
   * everyone, as a timed-out mproc_barrier_wait does. */
  assert_int_equal(mproc_barrier_cancel(s.barrier, t2), 1);
  assert_int_equal(mproc_barrier_arrive(s.barrier, &ticket), 0);
  assert_int_equal(mproc_barrier_cancel(s.barrier, ticket), MPROC_ECANCELED);
  assert_int_equal(mproc_barrier_broken(s.barrier), 1);
  assert_int_equal(mproc_barrier_await(s.barrier, ticket, 1), MPROC_EBROKEN);
  assert_int_equal(mproc_barrier_cancel(s.barrier, ticket), MPROC_EBROKEN);
  assert_int_equal(mproc_barrier_arrive(s.barrier, &ticket), MPROC_EBROKEN);
  assert_int_equal(mproc_barrier_await(s.barrier, (uint64_t)7, 0), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "not a ticket of this barrier"));
  assert_int_equal(mproc_barrier_arrive(s.barrier, NULL), MPROC_EINVAL);
  mproc_barrier_free(s.barrier);
}

/* ---- attach from other processes ---- */

struct tokens {
  char lock[MPROC_TOKEN_MAX];
  char sem[MPROC_TOKEN_MAX];
  char event[MPROC_TOKEN_MAX];
  char cond[MPROC_TOKEN_MAX];
  char barrier[MPROC_TOKEN_MAX];
};

/* Runs in a process that inherited nothing: attach everything from the tokens. */
static int use_tokens(const struct tokens *t) {
  mproc_lock_t *l = NULL;
  mproc_sem_t *s = NULL;
  mproc_event_t *e = NULL;
  mproc_cond_t *c = NULL;
  mproc_barrier_t *b = NULL;
  if (mproc_lock_attach(&l, t->lock) != 0) return 10;
  if (mproc_sem_attach(&s, t->sem) != 0) return 11;
  if (mproc_event_attach(&e, t->event) != 0) return 12;
  if (mproc_cond_attach(&c, t->cond) != 0) return 13;
  if (mproc_barrier_attach(&b, t->barrier, NULL, NULL) != 0) return 14;
  if (mproc_lock_acquire(l, 0) != MPROC_ETIMEDOUT) return 20; /* the parent holds it */
  if (mproc_sem_release(s) != 0) return 21;
  if (mproc_barrier_wait(b, 30.0) < 0) return 22;
  if (mproc_lock_acquire(l, 30.0) != 0) return 23; /* released after the barrier */
  if (mproc_lock_release(l) != 0) return 24;
  if (mproc_cond_acquire(c, 30.0) != 0) return 25;
  if (mproc_cond_notify_all(c) != 0) return 26;
  if (mproc_cond_release(c) != 0) return 27;
  if (mproc_event_set(e) != 0) return 28;
  mproc_lock_free(l);
  mproc_sem_free(s);
  mproc_event_free(e);
  mproc_cond_free(c);
  mproc_barrier_free(b);
  return 0;
}

static int body_use_tokens(void *arg, size_t len, void *payload) {
  (void)payload;
  if (len != sizeof(struct tokens)) return 99;
  return use_tokens(arg);
}

static void export_all(struct shared *s, struct tokens *t) {
  memset(t, 0, sizeof *t);
  assert_int_equal(mproc_lock_new(&s->lock), 0);
  assert_int_equal(mproc_sem_new(&s->sem, 0), 0);
  assert_int_equal(mproc_event_new(&s->ready), 0);
  assert_int_equal(mproc_cond_new(&s->cond, s->lock), 0);
  assert_int_equal(mproc_barrier_new(&s->barrier, 2, NULL, NULL), 0);
  assert_true(mproc_lock_export(s->lock, t->lock, sizeof t->lock) > 0);
  assert_true(mproc_sem_export(s->sem, t->sem, sizeof t->sem) > 0);
  assert_true(mproc_event_export(s->ready, t->event, sizeof t->event) > 0);
  assert_true(mproc_cond_export(s->cond, t->cond, sizeof t->cond) > 0);
  assert_non_null(strchr(t->cond, '+')); /* names its lock too */
  assert_true(mproc_barrier_export(s->barrier, t->barrier, sizeof t->barrier) > 0);
  assert_int_equal(mproc_lock_acquire(s->lock, -1), 0);
}

/* The parent's half of use_tokens(). */
static void drive_other_side(struct shared *s) {
  assert_int_equal(mproc_sem_acquire(s->sem, 30.0), 0);
  assert_true(mproc_barrier_wait(s->barrier, 30.0) >= 0);
  assert_int_equal(mproc_lock_release(s->lock), 0);
  assert_int_equal(mproc_event_wait(s->ready, 30.0), 0);
}

static void free_all(struct shared *s) {
  mproc_lock_free(s->lock);
  mproc_sem_free(s->sem);
  mproc_event_free(s->ready);
  mproc_cond_free(s->cond);
  mproc_barrier_free(s->barrier);
}

static void test_sync_attach_from_forkserver_child(void **state) {
  (void)state;
  struct shared s = {0};
  struct tokens t;
  export_all(&s, &t);
  mproc_process_t *p = start(body_use_tokens, &t, sizeof t, MPROC_START_FORKSERVER, NULL);
  drive_other_side(&s);
  assert_int_equal(join_code(p), 0);
  free_all(&s);
}

static void test_sync_attach_from_unrelated_process(void **state) {
  (void)state;
  struct shared s = {0};
  struct tokens t;
  export_all(&s, &t);
  /* An exec'd copy of this binary (it inherits nothing) attaches from the tokens. */
  char all[sizeof t + 8];
  snprintf(all, sizeof all, "%s %s %s %s %s", t.lock, t.sem, t.event, t.cond, t.barrier);
  pid_t pid;
  char env_entry[sizeof all + 32];
  snprintf(env_entry, sizeof env_entry, "MPROC_SYNC_HELPER=%s", all);
  char *envp[] = {env_entry, NULL};
  char *argv[] = {(char *)"helper", NULL};
  assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
  drive_other_side(&s);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  free_all(&s);
}

static int helper_main(const char *arg) {
  struct tokens t;
  memset(&t, 0, sizeof t);
  if (sscanf(arg, "%255s %255s %255s %255s %255s", t.lock, t.sem, t.event, t.cond, t.barrier) != 5)
    return 98;
  return use_tokens(&t);
}

/* ---- stale tokens, bad input, signals, arenas ---- */

static void test_sync_stale_and_bad_tokens(void **state) {
  (void)state;
  mproc_lock_t *l = NULL, *l2 = NULL;
  mproc_sem_t *s = NULL;
  char tok[MPROC_TOKEN_MAX];
  assert_int_equal(mproc_lock_new(&l), 0);
  assert_int_equal(mproc_sem_new(&s, 1), 0); /* keeps the arena mapped */
  assert_true(mproc_lock_export(l, tok, sizeof tok) > 0);
  assert_int_equal(mproc_lock_attach(&l2, tok), 0); /* same process: reuses the mapping */
  assert_int_equal(mproc_lock_acquire(l2, 0), 0);
  assert_int_equal(mproc_lock_owned(l), 1); /* the same lock */
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_free(l2), 0);
  assert_int_equal(mproc_lock_export(l, tok, 8), MPROC_ENOSPC);
  assert_int_equal(mproc_lock_export(l, NULL, 8), MPROC_EINVAL);
  assert_true(mproc_lock_export(l, tok, sizeof tok) > 0);
  assert_int_equal(mproc_lock_free(l), 0);
  assert_int_equal(mproc_lock_attach(&l2, tok), MPROC_ENOENT); /* freed */
  assert_null(l2);
  assert_non_null(strstr(mproc_last_error(), "freed"));
  /* A token of another kind, or garbage. */
  char stok[MPROC_TOKEN_MAX];
  assert_true(mproc_sem_export(s, stok, sizeof stok) > 0);
  assert_int_equal(mproc_lock_attach(&l2, stok), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "semaphore"));
  mproc_event_t *e = NULL;
  assert_int_equal(mproc_event_attach(&e, "nonsense"), MPROC_EINVAL);
  assert_int_equal(mproc_event_attach(&e, "mproc:E:1:2:zz:0:0:0"), MPROC_EINVAL);
  assert_int_equal(mproc_event_attach(&e, "mproc:E:99999999999:3:0:40:1:0"), MPROC_EINVAL);
  assert_int_equal(mproc_event_attach(&e, "mproc:E:4194000:3:0:40:1:0"), MPROC_ENOENT);
  stok[strlen(stok) - 1] = '\0';
  strcat(stok, "0+junk");
  mproc_sem_t *s2 = NULL;
  assert_int_equal(mproc_sem_attach(&s2, stok), MPROC_EINVAL);
  assert_int_equal(mproc_sem_free(s), 0);
}

static void test_sync_bad_input(void **state) {
  (void)state;
  int not_a_handle[32] = {0};
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_lock_new(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_rlock_new(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_lock_acquire(NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_lock_release(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_lock_acquire((mproc_lock_t *)not_a_handle, 0), MPROC_EBADF);
  assert_int_equal(mproc_lock_release((mproc_lock_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_lock_owned((mproc_lock_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_lock_free((mproc_lock_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_lock_attach(NULL, "x"), MPROC_EINVAL);
  assert_int_equal(mproc_lock_attach(&l, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_lock_free(NULL), 0);
  /* freed handles: the registry knows (checked without dereferencing) */
  assert_int_equal(mproc_lock_new(&l), 0);
  assert_int_equal(mproc_lock_free(l), 0);
  assert_int_equal(mproc_lock_owned(l), MPROC_EBADF);
  assert_int_equal(mproc_lock_free(l), MPROC_EBADF);
  assert_non_null(strstr(mproc_last_error(), "freed"));

  mproc_sem_t *s = NULL;
  assert_int_equal(mproc_sem_new(NULL, 1), MPROC_EINVAL);
  assert_int_equal(mproc_sem_new(&s, 0x80000000u), MPROC_ERANGE);
  assert_int_equal(mproc_bounded_sem_new(&s, 0), MPROC_EINVAL);
  assert_int_equal(mproc_sem_acquire(NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_sem_release((mproc_sem_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_sem_get_value(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_sem_free((mproc_sem_t *)not_a_handle), MPROC_EBADF);

  mproc_cond_t *c = NULL;
  assert_int_equal(mproc_cond_new(NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_cond_new(&c, (mproc_lock_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_cond_wait(NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_cond_notify((mproc_cond_t *)not_a_handle, 1), MPROC_EBADF);
  assert_int_equal(mproc_cond_get_lock(NULL, &l), MPROC_EINVAL);
  assert_int_equal(mproc_cond_free(NULL), 0);

  mproc_event_t *e = NULL;
  assert_int_equal(mproc_event_new(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_event_set(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_event_wait((mproc_event_t *)not_a_handle, 0), MPROC_EBADF);
  assert_int_equal(mproc_event_new(&e), 0);
  assert_int_equal(mproc_event_free(e), 0);
  assert_int_equal(mproc_event_set(e), MPROC_EBADF);
  assert_int_equal(mproc_event_is_set(e), MPROC_EBADF);

  mproc_barrier_t *b = NULL;
  assert_int_equal(mproc_barrier_new(&b, 0, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_barrier_new(&b, 0x80000000u, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_barrier_new(NULL, 2, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_barrier_wait(NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_barrier_n_waiting((mproc_barrier_t *)not_a_handle), MPROC_EBADF);
  assert_int_equal(mproc_barrier_export(NULL, NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_barrier_free(NULL), 0);
}

static void on_signal(int sig) { (void)sig; }

struct pinger {
  pthread_t target;
  int stop; /* atomic: set by the test's thread, read by the pinger */
};

static void *ping(void *arg) {
  struct pinger *p = arg;
  while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
    pthread_kill(p->target, SIGUSR1);
    usleep(10000);
  }
  return NULL;
}

/* Timed waits keep their deadline through signals (EINTR is retried with the time left). */
static void test_sync_timeouts_survive_signals(void **state) {
  (void)state;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART */
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  struct shared s = {0};
  assert_int_equal(mproc_event_new(&s.ready), 0);
  assert_int_equal(mproc_sem_new(&s.sem, 0), 0);
  assert_int_equal(mproc_lock_new(&s.lock), 0);
  mproc_process_t *p = start(body_hold_and_sleep, NULL, 0, MPROC_START_FORK, &s);
  assert_int_equal(mproc_event_wait(s.ready, -1), 0);
  mproc_event_clear(s.ready);
  struct pinger pg = {pthread_self(), 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ping, &pg), 0);
  double t0 = tu_now();
  assert_int_equal(mproc_event_wait(s.ready, 0.2), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.19);
  t0 = tu_now();
  assert_int_equal(mproc_sem_acquire(s.sem, 0.2), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.19);
  t0 = tu_now();
  assert_int_equal(mproc_lock_acquire(s.lock, 0.2), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.19);
  __atomic_store_n(&pg.stop, 1, __ATOMIC_RELAXED);
  pthread_join(t, NULL);
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  sigaction(SIGUSR1, &old, NULL);
  mproc_event_free(s.ready);
  mproc_sem_free(s.sem);
  mproc_lock_free(s.lock);
}

/* Small objects share arenas: a thousand locks cost a few fds, not a thousand. */
static void test_sync_small_objects_share_arenas(void **state) {
  (void)state;
  int fds = tu_count_fds();
  enum { N = 1000 };
  static mproc_lock_t *ls[N];
  static mproc_event_t *es[N];
  for (int i = 0; i < N; i++) {
    assert_int_equal(mproc_lock_new(&ls[i]), 0);
    assert_int_equal(mproc_event_new(&es[i]), 0);
  }
  assert_true(tu_count_fds() - fds <= 2);
  for (int i = 0; i < N; i++) {
    assert_int_equal(mproc_lock_acquire(ls[i], 0), 0);
    mproc_event_set(es[i]);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(mproc_lock_release(ls[i]), 0);
    assert_int_equal(mproc_event_is_set(es[i]), 1);
    mproc_lock_free(ls[i]);
    mproc_event_free(es[i]);
  }
  assert_int_equal(tu_count_fds(), fds); /* arenas unmapped once unused */
}

/* A child's handle may outlive the parent's: freed blocks are not reused while referenced. */
static int body_check_lock_after_parent_free(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  if (mproc_event_wait(s->go, 30.0) != 0) return 1;
  if (mproc_sem_get_value(s->sem) != 5) return 2;
  if (mproc_sem_acquire(s->sem, 0) != 0) return 3;
  mproc_sem_free(s->sem);
  return 0;
}

static void test_sync_child_keeps_object_alive(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_event_new(&s.go), 0);
  assert_int_equal(mproc_sem_new(&s.sem, 5), 0);
  mproc_process_t *p = start(body_check_lock_after_parent_free, NULL, 0, MPROC_START_FORK, &s);
  mproc_sem_free(s.sem);
  mproc_sem_t *others[8];
  for (int i = 0; i < 8; i++) assert_int_equal(mproc_sem_new(&others[i], 100), 0);
  assert_int_equal(mproc_event_set(s.go), 0);
  assert_int_equal(join_code(p), 0);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(mproc_sem_get_value(others[i]), 100);
    mproc_sem_free(others[i]);
  }
  mproc_event_free(s.go);
}

int main(void) {
  const char *helper = getenv("MPROC_SYNC_HELPER");
  if (helper) return helper_main(helper);
  const struct CMUnitTest tests[] = {
      TEST(sync, lock_basic),
      TEST(sync, rlock_recursion),
      TEST(sync, release_by_non_owner_process),
      TEST(sync, lock_timeout),
      TEST(sync, lock_owner_killed),
      TEST(sync, rlock_owner_killed),
      TEST(sync, lock_owner_killed_try),
      TEST(sync, release_wakes_sleeping_waiter),
      TEST(sync, rlock_release_wakes_sleeping_waiter),
      TEST(sync, rlock_handles_of_every_origin),
      TEST(sync, contended_counter),
      TEST(sync, semaphore),
      TEST(sync, bounded_semaphore),
      TEST(sync, condition_own_rlock),
      TEST(sync, condition_given_lock),
      TEST(sync, condition_errors_and_timeouts),
      TEST(sync, event),
      TEST(sync, barrier_processes),
      TEST(sync, barrier_abort_reset_timeout),
      TEST(sync, barrier_action_fails),
      TEST(sync, barrier_party_dies_in_action),
      TEST(sync, barrier_party_killed_while_waiting),
      TEST(sync, barrier_arrive_await_in_slices),
      TEST(sync, attach_from_forkserver_child),
      TEST(sync, attach_from_unrelated_process),
      TEST(sync, stale_and_bad_tokens),
      TEST(sync, bad_input),
      TEST(sync, timeouts_survive_signals),
      TEST(sync, small_objects_share_arenas),
      TEST(sync, child_keeps_object_alive),
  };
  return tu_run("sync", tests);
}
