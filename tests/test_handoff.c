/* Hand-offs across processes, 10^5 of them per case: a Condition ping-pong (each side:
 * acquire, notify, wait, release) with 2 and 4 processes and notify or notify_all; the same
 * kind of relay over Events, Semaphores and a Barrier. A lost wake-up shows as a wait that
 * times out (every wait has a timeout far above a hand-off's cost), never as a hang. */
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

#define HANDOFFS 100000
#define WAIT_S 10.0 /* far above one hand-off; only a lost wake-up waits this long */
#define MAXP 4

struct relay {
  int nproc;
  int notify_all;
  mproc_cond_t *cond;
  mproc_value_t *count;    /* hand-offs made (under the condition's lock), or raw for the rest */
  mproc_event_t *ev[MAXP]; /* ev[i]: process i's turn */
  mproc_sem_t *sem[MAXP];  /* sem[i]: process i's turn */
  mproc_barrier_t *barrier;
};

/* Process `me` of a condition ping-pong: 0 when the count reached HANDOFFS with no wait timed
 * out, else the step that failed. */
static int cond_side(struct relay *r) {
  for (;;) {
    if (mproc_cond_acquire(r->cond, WAIT_S) != 0) return 1;
    int64_t n = 0;
    mproc_value_load(r->count, &n);
    if (n >= HANDOFFS) {  /* done: let the others see it too */
      mproc_cond_notify_all(r->cond);
      mproc_cond_release(r->cond);
      return 0;
    }
    mproc_value_store(r->count, n + 1);
    if ((r->notify_all ? mproc_cond_notify_all(r->cond) : mproc_cond_notify(r->cond, 1)) != 0)
      return 2;
    int rc = mproc_cond_wait(r->cond, WAIT_S);
    mproc_cond_release(r->cond);
    if (rc != 0) {
      fprintf(stderr, "cond_wait after %lld hand-offs: %s\n", (long long)n, mproc_last_error());
      return 3;
    }
  }
}

static int body_cond_side(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  return cond_side(payload);
}

static void run_cond(int nproc, int notify_all) {
  struct relay r = {.nproc = nproc, .notify_all = notify_all};
  assert_int_equal(mproc_cond_new(&r.cond, NULL), 0);
  assert_int_equal(mproc_value_new(&r.count, 'q', NULL, NULL), 0);
  mproc_process_t *ps[MAXP];
  for (int i = 1; i < nproc; i++)
    ps[i] = tu_start(body_cond_side, NULL, 0, MPROC_START_FORK, 0, &r);
  assert_int_equal(cond_side(&r), 0);
  for (int i = 1; i < nproc; i++) assert_int_equal(tu_join_code(ps[i]), 0);
  int64_t n = 0;
  mproc_value_load(r.count, &n);
  assert_int_equal(n, HANDOFFS);
  mproc_value_free(r.count);
  mproc_cond_free(r.cond);
}

static void test_handoff_condition_notify_2(void **state) {
  (void)state;
  run_cond(2, 0);
}

static void test_handoff_condition_notify_4(void **state) {
  (void)state;
  run_cond(4, 0);
}

static void test_handoff_condition_notify_all_2(void **state) {
  (void)state;
  run_cond(2, 1);
}

static void test_handoff_condition_notify_all_4(void **state) {
  (void)state;
  run_cond(4, 1);
}

/* A ring of nproc processes passing one turn around HANDOFFS / nproc times: process `me` takes
 * its turn from ev/sem[me] and gives it to [(me + 1) % nproc]. */
static int relay_side(struct relay *r, int me, int events) {
  const int next = (me + 1) % r->nproc;
  for (int round = 0; round < HANDOFFS / r->nproc; round++) {
    if (events) {
      if (mproc_event_wait(r->ev[me], WAIT_S) != 0) return 1;
      mproc_event_clear(r->ev[me]);  /* before passing the turn: it comes back only after */
      mproc_value_fetch_add(r->count, 1, NULL);
      if (mproc_event_set(r->ev[next]) != 0) return 2;
    } else {
      if (mproc_sem_acquire(r->sem[me], WAIT_S) != 0) return 1;
      mproc_value_fetch_add(r->count, 1, NULL);
      if (mproc_sem_release(r->sem[next]) != 0) return 2;
    }
  }
  return 0;
}

static int body_event_side(void *arg, size_t len, void *payload) {
  (void)len;
  return relay_side(payload, *(const int *)arg, 1);
}

static int body_sem_side(void *arg, size_t len, void *payload) {
  (void)len;
  return relay_side(payload, *(const int *)arg, 0);
}

static void run_relay(int nproc, int events) {
  struct relay r = {.nproc = nproc};
  assert_int_equal(mproc_value_new(&r.count, 'q', NULL, NULL), 0);
  for (int i = 0; i < nproc; i++) {
    if (events)
      assert_int_equal(mproc_event_new(&r.ev[i]), 0);
    else
      assert_int_equal(mproc_sem_new(&r.sem[i], 0), 0);
  }
  mproc_process_t *ps[MAXP];
  for (int i = 1; i < nproc; i++)
    ps[i] = tu_start(events ? body_event_side : body_sem_side, &i, sizeof i, MPROC_START_FORK, 0,
                     &r);
  /* The first turn is process 0's. */
  assert_int_equal(events ? mproc_event_set(r.ev[0]) : mproc_sem_release(r.sem[0]), 0);
  assert_int_equal(relay_side(&r, 0, events), 0);
  for (int i = 1; i < nproc; i++) assert_int_equal(tu_join_code(ps[i]), 0);
  int64_t n = 0;
  mproc_value_load(r.count, &n);
  assert_int_equal(n, HANDOFFS / nproc * nproc);
  mproc_value_free(r.count);
  for (int i = 0; i < nproc; i++) {
    if (events)
      mproc_event_free(r.ev[i]);
    else
      mproc_sem_free(r.sem[i]);
  }
}

static void test_handoff_event_2(void **state) {
  (void)state;
  run_relay(2, 1);
}

static void test_handoff_event_4(void **state) {
  (void)state;
  run_relay(4, 1);
}

static void test_handoff_semaphore_2(void **state) {
  (void)state;
  run_relay(2, 0);
}

static void test_handoff_semaphore_4(void **state) {
  (void)state;
  run_relay(4, 0);
}

/* Barrier: every party passes HANDOFFS / nproc generations; each generation's arrival indexes
 * are 0..nproc-1 exactly once, which the shared count checks (sum over all waits). */
static int barrier_side(struct relay *r) {
  for (int g = 0; g < HANDOFFS / r->nproc; g++) {
    int idx = mproc_barrier_wait(r->barrier, WAIT_S);
    if (idx < 0 || idx >= r->nproc) {
      fprintf(stderr, "barrier_wait in generation %d: %s\n", g, mproc_last_error());
      return 1;
    }
    mproc_value_fetch_add(r->count, idx, NULL);
  }
  return 0;
}

static int body_barrier_side(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  return barrier_side(payload);
}

static void run_barrier(int nproc) {
  struct relay r = {.nproc = nproc};
  assert_int_equal(mproc_value_new(&r.count, 'q', NULL, NULL), 0);
  assert_int_equal(mproc_barrier_new(&r.barrier, (unsigned)nproc, NULL, NULL), 0);
  mproc_process_t *ps[MAXP];
  for (int i = 1; i < nproc; i++)
    ps[i] = tu_start(body_barrier_side, NULL, 0, MPROC_START_FORK, 0, &r);
  assert_int_equal(barrier_side(&r), 0);
  for (int i = 1; i < nproc; i++) assert_int_equal(tu_join_code(ps[i]), 0);
  int64_t sum = 0;
  mproc_value_load(r.count, &sum);
  assert_int_equal(sum, (int64_t)(HANDOFFS / nproc) * (nproc * (nproc - 1) / 2));
  mproc_value_free(r.count);
  mproc_barrier_free(r.barrier);
}

static void test_handoff_barrier_2(void **state) {
  (void)state;
  run_barrier(2);
}

static void test_handoff_barrier_4(void **state) {
  (void)state;
  run_barrier(4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(handoff, condition_notify_2),
      TEST(handoff, condition_notify_4),
      TEST(handoff, condition_notify_all_2),
      TEST(handoff, condition_notify_all_4),
      TEST(handoff, event_2),
      TEST(handoff, event_4),
      TEST(handoff, semaphore_2),
      TEST(handoff, semaphore_4),
      TEST(handoff, barrier_2),
      TEST(handoff, barrier_4),
  };
  return tu_run("handoff", tests);
}
