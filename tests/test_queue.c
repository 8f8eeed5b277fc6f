/* Queues: FIFO, blocking / polling / timeouts, sizes, close, zero-copy, sharing with other
 * processes (fork, name, fd passing), joinable queues, crashes of producers and consumers, a
 * multi-process stress test and bad input.
 * MPROC_STRESS_COUNT sets the stress test's message count (default 1e5, 2e4 under ASan). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static mproc_process_t *spawn(mproc_process_fn fn, void *payload, const void *arg, size_t len,
                              int method) {
  return tu_start(fn, arg, len, method, 0, payload);
}

#define join_code tu_join_code

static mproc_queue_t *make_queue(size_t maxsize, size_t capacity) {
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  o.maxsize = maxsize;
  o.capacity = capacity;
  mproc_queue_t *q = NULL;
  assert_int_equal(mproc_queue_new(&q, &o), 0);
  return q;
}

static mproc_queue_stats_t stats_of(mproc_queue_t *q) {
  mproc_queue_stats_t s;
  memset(&s, 0, sizeof s);
  s.size = sizeof s;
  assert_int_equal(mproc_queue_stats(q, &s), 0);
  return s;
}

static void put_str(mproc_queue_t *q, const char *s) {
  assert_int_equal(mproc_queue_put(q, s, strlen(s), -1), 0);
}

static void expect_str(mproc_queue_t *q, const char *s, double timeout) {
  char buf[256];
  size_t n = 0;
  assert_int_equal(mproc_queue_get(q, buf, sizeof buf, &n, timeout), 0);
  assert_int_equal(n, strlen(s));
  assert_memory_equal(buf, s, n);
}

static uint64_t fill_pattern(unsigned char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1, sum = 0;
  for (size_t i = 0; i < n; i++) {
    if ((i & 7) == 0) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    }
    p[i] = (unsigned char)(x >> ((i & 7) * 8));
    sum = sum * 31 + p[i];
  }
  return sum;
}

static uint64_t checksum(const unsigned char *p, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum = sum * 31 + p[i];
  return sum;
}

/* Poll until cond holds (up to 10 s): waits on a condition, not a fixed sleep. */
#define WAIT_FOR(cond)                                                          \
  do {                                                                          \
    double until_ = tu_now() + 10;                                              \
    int ok_; /* the condition once per round: it may hold and then not again */ \
    while (!(ok_ = (cond)) && tu_now() < until_) usleep(1000);                  \
    assert_true(ok_);                                                           \
  } while (0)

/* ---- basics ------------------------------------------------------------------------------- */

static void test_queue_fifo_in_one_process(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  assert_int_equal(mproc_queue_empty(q), 1);
  put_str(q, "one");
  assert_int_equal(mproc_queue_put(q, NULL, 0, -1), 0); /* an empty message */
  put_str(q, "three");
  size_t n = 0;
  assert_int_equal(mproc_queue_qsize(q, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(mproc_queue_empty(q), 0);
  assert_int_equal(mproc_queue_full(q), 0);
  expect_str(q, "one", 0);
  char b[4];
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), 0);
  assert_int_equal(n, 0);
  expect_str(q, "three", 0);
  assert_int_equal(mproc_queue_empty(q), 1);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.puts, 3);
  assert_int_equal(s.gets, 3);
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_poll_and_timeout(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(2, 0);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_EEMPTY);
  double t0 = tu_now();
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0.05), MPROC_ETIMEDOUT);
  assert_true(tu_now() - t0 >= 0.045);
  assert_non_null(strstr(mproc_last_error(), "mproc_queue_get: timeout"));
  put_str(q, "a");
  put_str(q, "b");
  assert_int_equal(mproc_queue_full(q), 1);
  assert_int_equal(mproc_queue_put(q, "c", 1, 0), MPROC_EFULL);
  assert_int_equal(mproc_queue_put(q, "c", 1, 0.05), MPROC_ETIMEDOUT);
  expect_str(q, "a", 0);
  put_str(q, "c");
  expect_str(q, "b", 0);
  expect_str(q, "c", 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_small_buffer_keeps_message(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  put_str(q, "hello world");
  char b[32];
  size_t n = 0;
  assert_int_equal(mproc_queue_get(q, b, 4, &n, 0), MPROC_EMSGSIZE);
  assert_int_equal(n, 11);
  assert_int_equal(mproc_queue_get(q, NULL, 0, &n, 0), MPROC_EMSGSIZE); /* a size query */
  assert_int_equal(n, 11);
  expect_str(q, "hello world", 0);
  put_str(q, "alloc");
  void *m = NULL;
  assert_int_equal(mproc_queue_get_alloc(q, &m, &n, 0), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(m, "alloc", 5);
  free(m);
  assert_int_equal(mproc_queue_put(q, NULL, 0, 0), 0);
  assert_int_equal(mproc_queue_get_alloc(q, &m, &n, 0), 0);
  assert_non_null(m);
  assert_int_equal(n, 0);
  free(m);
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_close_drains_then_reports(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  put_str(q, "left");
  assert_int_equal(mproc_queue_close(q), 0);
  assert_int_equal(mproc_queue_close(q), 0);
  assert_int_equal(mproc_queue_is_closed(q), 1);
  assert_int_equal(mproc_queue_put(q, "x", 1, -1), MPROC_ECLOSED);
  expect_str(q, "left", -1);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, -1), MPROC_ECLOSED);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_ECLOSED);
  assert_int_equal(mproc_queue_free(q), 0);
}

static int body_close_later(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  usleep(50000);
  return mproc_queue_close(payload) == 0 ? 0 : 1;
}

static void test_queue_close_wakes_blocked_get(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  mproc_process_t *p = spawn(body_close_later, q, NULL, 0, MPROC_START_FORK);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, -1), MPROC_ECLOSED);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- sizes -------------------------------------------------------------------------------- */

struct big_job {
  mproc_queue_t *q;
  size_t len;
  uint64_t sum;
};

static int body_put_big(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct big_job *j = payload;
  unsigned char *m = malloc(j->len);
  if (!m) return 2;
  fill_pattern(m, j->len, 42);
  int rc = mproc_queue_put(j->q, m, j->len, -1);
  free(m);
  return rc == 0 ? 0 : 1;
}

static void test_queue_message_of_256_mib(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0); /* 2 MiB ring: out of line */
  struct big_job j = {q, (size_t)256 << 20, 0};
  unsigned char *ref = malloc(j.len);
  assert_non_null(ref);
  j.sum = fill_pattern(ref, j.len, 42);
  free(ref);
  mproc_process_t *p = spawn(body_put_big, &j, NULL, 0, MPROC_START_FORK);
  void *m = NULL;
  size_t n = 0;
  assert_int_equal(mproc_queue_get_alloc(q, &m, &n, -1), 0);
  assert_int_equal(n, j.len);
  assert_true(checksum(m, n) == j.sum);
  free(m);
  assert_int_equal(join_code(p), 0);
  /* the same into a caller buffer, sized by a first call */
  p = spawn(body_put_big, &j, NULL, 0, MPROC_START_FORK);
  assert_int_equal(mproc_queue_get(q, NULL, 0, &n, -1), MPROC_EMSGSIZE);
  assert_int_equal(n, j.len);
  m = malloc(n);
  assert_int_equal(mproc_queue_get(q, m, n, &n, -1), 0);
  assert_true(checksum(m, n) == j.sum);
  free(m);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_size_limits(void **state) {
  (void)state;
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  o.max_message = 100;
  o.capacity = 1; /* rounded up to the minimum */
  mproc_queue_t *q = NULL;
  assert_int_equal(mproc_queue_new(&q, &o), 0);
  char b[200] = {0};
  assert_int_equal(mproc_queue_put(q, b, 101, 0), MPROC_EMSGSIZE);
  assert_int_equal(mproc_queue_put(q, b, 100, 0), 0);
  void *r;
  assert_int_equal(mproc_queue_reserve(q, 101, &r, 0), MPROC_EMSGSIZE);
  assert_int_equal(mproc_queue_free(q), 0);
  q = make_queue(0, 0);
  assert_int_equal(mproc_queue_put(q, b, MPROC_QUEUE_MSG_MAX + 1, 0), MPROC_EMSGSIZE);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* Messages larger than the ring go out of line: a put returns at once with nobody reading, also
 * a poll, and the same process gets them back; their memory is freed as they are read. */
static void test_queue_big_put_needs_no_reader(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0); /* 2 MiB ring */
  enum { kN = 6 };
  const size_t sizes[kN] = {(1 << 20) + 1, 4000000, 4000000, 16 << 20, 3 << 20, (2 << 20) - 7};
  uint64_t sums[kN];
  for (int i = 0; i < kN; i++) {
    unsigned char *m = malloc(sizes[i]);
    sums[i] = fill_pattern(m, sizes[i], (uint64_t)i + 1);
    assert_int_equal(mproc_queue_put(q, m, sizes[i], i % 2 ? 0 : 3), 0);
    free(m);
    put_str(q, "small"); /* in between, through the ring */
  }
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.big_messages, kN);
  assert_true(s.big_bytes >= (uint64_t)(4000000 * 2 + (16 << 20)));
  size_t n;
  for (int i = 0; i < kN; i++) {
    void *m = NULL;
    assert_int_equal(mproc_queue_get(q, NULL, 0, &n, 0), MPROC_EMSGSIZE); /* kept */
    assert_int_equal(n, sizes[i]);
    assert_int_equal(mproc_queue_get_alloc(q, &m, &n, 0), 0);
    assert_int_equal(n, sizes[i]);
    assert_true(checksum(m, n) == sums[i]);
    free(m);
    expect_str(q, "small", 0);
  }
  s = stats_of(q);
  assert_int_equal(s.big_messages, 0);
  assert_int_equal(s.big_bytes, 0);
  assert_int_equal(s.puts, 2 * kN);
  assert_int_equal(s.gets, 2 * kN);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* A message that would fit the ring but finds it full goes out of line too (from 64 KiB), so the
 * put does not wait; smaller ones wait for room. maxsize still counts every message. */
static void test_queue_full_ring_sends_large_out_of_line(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 256 << 10);
  static unsigned char m[100 << 10];
  int k = 0;
  while (mproc_queue_put(q, m, 1000, 0) == 0) k++;
  assert_int_equal(mproc_queue_put(q, m, sizeof m, 0), 0); /* under half the ring */
  assert_int_equal(stats_of(q).big_messages, 1);
  size_t n;
  for (int i = 0; i < k; i++) assert_int_equal(mproc_queue_get(q, m, sizeof m, &n, 0), 0);
  assert_int_equal(mproc_queue_get(q, m, sizeof m, &n, 0), 0);
  assert_int_equal(n, sizeof m);
  assert_int_equal(mproc_queue_free(q), 0);
  q = make_queue(1, 0);
  unsigned char *big = calloc(1, (size_t)4 << 20);
  assert_int_equal(mproc_queue_put(q, big, (size_t)4 << 20, 0), 0);
  assert_int_equal(mproc_queue_put(q, big, (size_t)4 << 20, 0), MPROC_EFULL);
  assert_int_equal(mproc_queue_put(q, big, (size_t)4 << 20, 0.05), MPROC_ETIMEDOUT);
  assert_int_equal(stats_of(q).big_messages, 1);
  assert_int_equal(mproc_queue_get(q, big, (size_t)4 << 20, &n, 0), 0);
  free(big);
  assert_int_equal(mproc_queue_free(q), 0);
}

static int body_put_bigs_and_exit(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  for (int i = 0; i < 3; i++) {
    size_t n = ((size_t)3 << 20) * (size_t)(i + 1) + (size_t)i;
    unsigned char *m = malloc(n);
    if (!m) return 2;
    fill_pattern(m, n, (uint64_t)i + 7);
    if (mproc_queue_put(payload, m, n, 0) != 0) return 1; /* a poll: nothing to wait for */
    free(m);
  }
  return 0;
}

/* A child puts large results and exits before its parent reads them: nothing is lost. */
static void test_queue_big_messages_outlive_their_producer(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  mproc_process_t *p = spawn(body_put_bigs_and_exit, q, NULL, 0, MPROC_START_FORK);
  assert_int_equal(join_code(p), 0);
  for (int i = 0; i < 3; i++) {
    size_t n = ((size_t)3 << 20) * (size_t)(i + 1) + (size_t)i, got = 0;
    unsigned char *ref = malloc(n);
    uint64_t sum = fill_pattern(ref, n, (uint64_t)i + 7);
    free(ref);
    void *m = NULL;
    assert_int_equal(mproc_queue_get_alloc(q, &m, &got, 0), 0);
    assert_int_equal(got, n);
    assert_true(checksum(m, n) == sum);
    free(m);
  }
  assert_int_equal(stats_of(q).big_messages, 0);
  /* freed with unread large messages: their memory goes with the queue's memfd */
  unsigned char *m = calloc(1, (size_t)8 << 20);
  assert_int_equal(mproc_queue_put(q, m, (size_t)8 << 20, 0), 0);
  free(m);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- zero-copy ------------------------------------------------------------------------------ */

static void test_queue_reserve_commit_peek_release(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  void *w = NULL;
  assert_int_equal(mproc_queue_reserve(q, 64, &w, 0), 0);
  assert_int_equal(mproc_queue_reserve(q, 64, &w, 0), MPROC_EBUSY);
  memcpy(w, "zero-copy", 9);
  assert_int_equal(mproc_queue_commit(q, 9), 0);
  assert_int_equal(mproc_queue_commit(q, 9), MPROC_EINVAL);
  assert_int_equal(mproc_queue_reserve(q, 8, &w, 0), 0);
  assert_int_equal(mproc_queue_cancel(q), 0);
  put_str(q, "next");
  const void *r = NULL;
  size_t n = 0;
  assert_int_equal(mproc_queue_peek(q, &r, &n, 0), 0);
  assert_int_equal(n, 9);
  assert_memory_equal(r, "zero-copy", 9);
  assert_int_equal(mproc_queue_release(q), 0);
  assert_int_equal(mproc_queue_release(q), MPROC_EINVAL);
  expect_str(q, "next", 0);
  assert_int_equal(mproc_queue_peek(q, &r, &n, 0), MPROC_EEMPTY);
  size_t qs;
  assert_int_equal(mproc_queue_qsize(q, &qs), 0);
  assert_int_equal(qs, 0);
  /* over half the ring: reserved in an extent of its own, peeked there */
  const size_t big = (size_t)5 << 20;
  assert_int_equal(mproc_queue_reserve(q, big, &w, 0), 0);
  uint64_t sum = fill_pattern(w, big, 3);
  assert_int_equal(mproc_queue_commit(q, big), 0);
  assert_int_equal(mproc_queue_reserve(q, big, &w, 0), 0);
  assert_int_equal(mproc_queue_cancel(q), 0);
  assert_int_equal(stats_of(q).big_messages, 1);
  assert_int_equal(mproc_queue_peek(q, &r, &n, 0), 0);
  assert_int_equal(n, big);
  assert_true(checksum(r, n) == sum);
  assert_int_equal(mproc_queue_release(q), 0);
  assert_int_equal(stats_of(q).big_messages, 0);
  assert_int_equal(mproc_queue_peek(q, &r, &n, 0), MPROC_EEMPTY);
  assert_int_equal(mproc_queue_free(q), 0);
}

static int body_free_msg(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  return mproc_msg_free(payload) == 0 ? 0 : 1; /* a fork's copy: only unmapped */
}

/* A message in parts is their concatenation, copied once; get_msg hands over an out-of-line
 * message's own shared memory, writable, until mproc_msg_free (also after the queue is freed). */
static void test_queue_putv_and_get_msg(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  const mproc_queue_part_t small[3] = {{"ab", 2}, {NULL, 0}, {"cde", 3}};
  assert_int_equal(mproc_queue_putv(q, small, 3, 0), 0);
  expect_str(q, "abcde", 0);
  const size_t n = (size_t)5 << 20;
  unsigned char *big = malloc(n);
  uint64_t sum = fill_pattern(big, n, 9);
  const mproc_queue_part_t parts[2] = {{big, 1000}, {big + 1000, n - 1000}};
  for (int i = 0; i < 3; i++) assert_int_equal(mproc_queue_putv(q, parts, 2, 0), 0);
  assert_int_equal(mproc_queue_putv(q, small, 3, 0), 0);
  free(big);
  mproc_msg_t *m = NULL;
  assert_int_equal(mproc_queue_get_msg(q, &m, 0), 0);
  assert_int_equal(mproc_msg_size(m), n);
  assert_true(checksum(mproc_msg_data(m), n) == sum);
  memset(mproc_msg_data(m), 0, 4096); /* the caller's own */
  assert_int_equal(stats_of(q).big_messages, 3);
  assert_int_equal(mproc_msg_free(m), 0);
  assert_int_equal(stats_of(q).big_messages, 2);
  /* taken before a fork: the child's free only unmaps its copy */
  assert_int_equal(mproc_queue_get_msg(q, &m, 0), 0);
  mproc_process_t *p = spawn(body_free_msg, m, NULL, 0, MPROC_START_FORK);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(stats_of(q).big_messages, 2);
  assert_true(checksum(mproc_msg_data(m), n) == sum);
  assert_int_equal(mproc_msg_free(m), 0);
  assert_int_equal(stats_of(q).big_messages, 1);
  /* outliving the handle that took it */
  assert_int_equal(mproc_queue_get_msg(q, &m, 0), 0);
  mproc_msg_t *s = NULL;
  assert_int_equal(mproc_queue_get_msg(q, &s, 0), 0); /* small: a copy */
  assert_int_equal(mproc_msg_size(s), 5);
  assert_memory_equal(mproc_msg_data(s), "abcde", 5);
  assert_int_equal(mproc_msg_free(s), 0);
  assert_int_equal(mproc_queue_get_msg(q, &s, 0), MPROC_EEMPTY);
  assert_null(s);
  assert_int_equal(mproc_queue_free(q), 0);
  assert_true(checksum(mproc_msg_data(m), n) == sum);
  assert_int_equal(mproc_msg_free(m), 0);
  assert_int_equal(mproc_msg_free(NULL), 0);
}

/* A message taken with get_msg is the taker's own memory, also across a fork: the child gets a
 * copy (as of the fork), not the parent's shared view. Each side writes its view and sees only
 * its own bytes, and the extent the parent gives back (and the queue reuses for the next
 * message) does not change the child's. */
struct fork_views {
  mproc_queue_t *ctl[2]; /* [child -> parent, parent -> child] */
  mproc_msg_t *m;
  size_t n;
  uint64_t sum; /* of the message as put */
};

static int body_write_own_view(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct fork_views *f = payload;
  unsigned char *v = mproc_msg_data(f->m);
  char b[8];
  size_t k;
  if (mproc_msg_size(f->m) != f->n || checksum(v, f->n) != f->sum) return 1;
  memset(v, 0xAA, 4096); /* the child's write: the parent must not see it */
  v[f->n - 1] = 0xAA;
  if (mproc_queue_put(f->ctl[0], "w", 1, 10)) return 2;
  /* the parent wrote its view, freed the message and took a new one in the same extent */
  if (mproc_queue_get(f->ctl[1], b, sizeof b, &k, 10)) return 3;
  for (size_t i = 0; i < 4096; i++)
    if (v[i] != 0xAA) return 4;
  if (v[f->n - 1] != 0xAA) return 5;
  unsigned char *orig = malloc(f->n);
  if (!orig) return 6;
  fill_pattern(orig, f->n, 21);
  int same = memcmp(v + 4096, orig + 4096, f->n - 4097) == 0; /* the bytes in between */
  free(orig);
  if (!same) return 7;
  return mproc_msg_free(f->m) == 0 ? 0 : 8; /* the child's copy: unmapped, not given back */
}

static void test_queue_msg_view_private_after_fork(void **state) {
  (void)state;
  struct fork_views f = {{make_queue(0, 0), make_queue(0, 0)}, NULL, (size_t)3 << 20, 0};
  mproc_queue_t *q = make_queue(0, 0);
  unsigned char *big = malloc(f.n);
  f.sum = fill_pattern(big, f.n, 21);
  assert_int_equal(mproc_queue_put(q, big, f.n, 0), 0); /* over half the ring: out of line */
  assert_int_equal(mproc_queue_get_msg(q, &f.m, 0), 0);
  assert_int_equal(stats_of(q).big_messages, 1); /* handed over in its shared memory */
  unsigned char *v = mproc_msg_data(f.m);
  mproc_process_t *p = spawn(body_write_own_view, &f, NULL, 0, MPROC_START_FORK);
  char b[8];
  size_t k;
  assert_int_equal(mproc_queue_get(f.ctl[0], b, sizeof b, &k, 10), 0);
  assert_true(checksum(v, f.n) == f.sum); /* the child's writes are its own */
  memset(v, 0x55, 4096);                  /* ours: the child must not see them */
  v[f.n - 1] = 0x55;
  /* give the extent back and fill it with another message: the child's copy stays as it was */
  assert_int_equal(mproc_msg_free(f.m), 0);
  uint64_t sum2 = fill_pattern(big, f.n, 22);
  assert_int_equal(mproc_queue_put(q, big, f.n, 0), 0);
  mproc_msg_t *m2 = NULL;
  assert_int_equal(mproc_queue_get_msg(q, &m2, 0), 0);
  assert_true(checksum(mproc_msg_data(m2), f.n) == sum2);
  assert_int_equal(mproc_queue_put(f.ctl[1], "g", 1, 10), 0);
  assert_int_equal(join_code(p), 0);
  assert_true(checksum(mproc_msg_data(m2), f.n) == sum2); /* and the child's writes stay there */
  assert_int_equal(mproc_msg_free(m2), 0);
  assert_int_equal(stats_of(q).big_messages, 0);
  free(big);
  assert_int_equal(mproc_queue_free(q), 0);
  assert_int_equal(mproc_queue_free(f.ctl[0]), 0);
  assert_int_equal(mproc_queue_free(f.ctl[1]), 0);
}

/* ---- sharing -------------------------------------------------------------------------------- */

static int body_echo_upper(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_queue_t **qs = payload; /* [in, out] made before the fork */
  char b[64];
  size_t n;
  for (;;) {
    int rc = mproc_queue_get(qs[0], b, sizeof b, &n, -1);
    if (rc == MPROC_ECLOSED) return 0;
    if (rc) return 1;
    for (size_t i = 0; i < n; i++) b[i] = (char)(b[i] >= 'a' && b[i] <= 'z' ? b[i] - 32 : b[i]);
    if (mproc_queue_put(qs[1], b, n, -1)) return 2;
  }
}

static void test_queue_shared_with_forked_child(void **state) {
  (void)state;
  mproc_queue_t *qs[2] = {make_queue(0, 0), make_queue(0, 0)};
  mproc_process_t *p = spawn(body_echo_upper, qs, NULL, 0, MPROC_START_FORK);
  put_str(qs[0], "abc");
  put_str(qs[0], "hello");
  expect_str(qs[1], "ABC", 10);
  expect_str(qs[1], "HELLO", 10);
  assert_int_equal(mproc_queue_close(qs[0]), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_free(qs[0]), 0);
  assert_int_equal(mproc_queue_free(qs[1]), 0);
}

static int body_open_by_name(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  mproc_queue_t *q = NULL;
  if (mproc_queue_open(&q, arg) != 0) return 1;
  char b[64];
  size_t n;
  if (mproc_queue_get(q, b, sizeof b, &n, 10) != 0) return 2;
  for (size_t i = 0; i < n / 2; i++) {
    char t = b[i];
    b[i] = b[n - 1 - i];
    b[n - 1 - i] = t;
  }
  if (mproc_queue_put(q, b, n, 10) != 0) return 3;
  return mproc_queue_free(q) == 0 ? 0 : 4;
}

static void test_queue_open_by_name_in_forkserver_child(void **state) {
  (void)state;
  assert_int_equal(mproc_forkserver_start(), 0); /* the helper exists before the queue */
  mproc_queue_t *q = make_queue(0, 0);
  char name[MPROC_QUEUE_NAME_MAX];
  assert_int_equal(mproc_queue_name(q, name, sizeof name), 0);
  assert_int_equal(mproc_queue_name(q, name, 8), MPROC_ERANGE);
  assert_int_equal(mproc_queue_name(q, name, sizeof name), 0);
  put_str(q, "forkserver");
  mproc_process_t *p = spawn(body_open_by_name, NULL, name, strlen(name) + 1,
                             MPROC_START_FORKSERVER);
  assert_int_equal(join_code(p), 0);
  expect_str(q, "revreskrof", 0);
  assert_int_equal(mproc_queue_free(q), 0);
  /* the name dies with the last handle of the process that made it */
  mproc_queue_t *q2 = NULL;
  assert_int_equal(mproc_queue_open(&q2, name), MPROC_ENOENT);
  assert_int_equal(mproc_queue_open(&q2, "mproc-queue:nonsense"), MPROC_EINVAL);
}

static int body_recv_handle(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t *c = payload;
  mproc_queue_t *q = NULL;
  if (mproc_queue_recv_handle(&q, mproc_conn_socket(c)) != 0) return 1;
  if (mproc_queue_put(q, "via fd", 6, 10) != 0) return 2;
  /* the connection still carries ordinary messages afterwards */
  if (mproc_conn_send_bytes(c, "done", 4) != 0) return 3;
  return mproc_queue_free(q) == 0 ? 0 : 4;
}

static void test_queue_passed_over_a_socket(void **state) {
  (void)state;
  mproc_conn_t *a, *b;
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  /* the child exists before the queue: it gets the queue's fds over the pipe */
  mproc_process_t *p = spawn(body_recv_handle, b, NULL, 0, MPROC_START_FORK);
  mproc_queue_t *q = make_queue(0, 0);
  assert_int_equal(mproc_queue_send_handle(q, mproc_conn_socket(a)), 0);
  expect_str(q, "via fd", 10);
  /* a connection's pollable fileno() stands for its socket */
  assert_int_equal(mproc_queue_send_handle(q, mproc_conn_fileno(a)), 0);
  mproc_queue_t *q2 = NULL;
  assert_int_equal(mproc_queue_recv_handle(&q2, mproc_conn_fileno(b)), 0);
  assert_int_equal(mproc_queue_free(q2), 0);
  char m[8];
  size_t n;
  assert_int_equal(mproc_conn_recv_bytes(a, m, sizeof m, &n, 10), 0);
  assert_int_equal(n, 4);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_free(q), 0);
  assert_int_equal(mproc_conn_free(a), 0);
  assert_int_equal(mproc_conn_free(b), 0);
}

/* ---- pollable fd ----------------------------------------------------------------------------- */

static int body_put_one(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  usleep(20000);
  return mproc_queue_put(payload, "tick", 4, -1) == 0 ? 0 : 1;
}

static int readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

static void test_queue_fileno_is_pollable(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  int fd = mproc_queue_fileno(q);
  assert_true(fd >= 0);
  assert_false(readable(fd, 0));
  mproc_process_t *p = spawn(body_put_one, q, NULL, 0, MPROC_START_FORK);
  assert_true(readable(fd, 10000));
  expect_str(q, "tick", 0);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_EEMPTY);
  assert_false(readable(fd, 0)); /* drained by the empty get */
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_close(q), 0);
  assert_true(readable(fd, 0));
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- idle CPU ----------------------------------------------------------------------------- */

static int body_idle_get(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct rusage a;
  getrusage(RUSAGE_SELF, &a);
  char buf[8];
  size_t n;
  int rc = mproc_queue_get(payload, buf, sizeof buf, &n, 1.0);
  long ms = tu_cpu_ms_since(&a);
  if (rc != MPROC_ETIMEDOUT) return 255;
  return ms > 200 ? 200 : (int)ms;
}

/* An idle consumer sleeps in the kernel: a 1 s blocking get costs (almost) no CPU. */
static void test_queue_idle_consumer_uses_no_cpu(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  int ms = join_code(spawn(body_idle_get, q, NULL, 0, MPROC_START_FORK));
  print_message("idle consumer: %d ms of CPU over a 1 s blocking get\n", ms);
  assert_true(ms >= 0 && ms < 50);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- joinable ------------------------------------------------------------------------------ */

static int body_work_and_done(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  char b[16];
  size_t n;
  for (int i = 0; i < 3; i++) {
    if (mproc_queue_get(payload, b, sizeof b, &n, 10) != 0) return 1;
    usleep(5000);
    if (mproc_queue_task_done(payload) != 0) return 2;
  }
  return 0;
}

static void test_queue_joinable_task_done_and_join(void **state) {
  (void)state;
  mproc_queue_t *q = NULL;
  assert_int_equal(mproc_joinable_queue_new(&q, NULL), 0);
  assert_int_equal(mproc_queue_join(q, 0), 0);
  assert_int_equal(mproc_queue_task_done(q), MPROC_EINVAL);
  put_str(q, "t1");
  put_str(q, "t2");
  put_str(q, "t3");
  assert_int_equal(mproc_queue_join(q, 0.02), MPROC_ETIMEDOUT);
  mproc_process_t *p = spawn(body_work_and_done, q, NULL, 0, MPROC_START_FORK);
  assert_int_equal(mproc_queue_join(q, 10), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_queue_task_done(q), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "more times"));
  assert_int_equal(mproc_queue_free(q), 0);
  /* a plain queue has no task accounting */
  q = make_queue(0, 0);
  assert_int_equal(mproc_queue_task_done(q), MPROC_EINVAL);
  assert_int_equal(mproc_queue_join(q, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_free(q), 0);
  assert_int_equal(mproc_simple_queue_new(&q), 0);
  put_str(q, "simple");
  expect_str(q, "simple", 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- crashes ------------------------------------------------------------------------------- */

/* A process stopped for good in the middle of a copy inside the library: its buffer has a
 * PROT_NONE page `at` bytes in, and the fault handler raises a shared flag and waits to be
 * killed. So a test kills a producer or consumer at a known point of a large message. */
static volatile int *g_trapped; /* shared page, made before the fork */

static void on_trap(int sig) {
  (void)sig;
  *g_trapped = 1;
  for (;;) pause();
}

static unsigned char *trap_buffer(size_t len, size_t at) {
  long pg = sysconf(_SC_PAGESIZE);
  at = at / (size_t)pg * (size_t)pg;
  unsigned char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED) return NULL;
  memset(b, 7, len);
  if (mprotect(b + at, (size_t)pg, PROT_NONE) != 0) return NULL;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_trap;
  sigaction(SIGSEGV, &sa, NULL);
  return b;
}

static volatile int *new_trap_flag(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  g_trapped = p;
  *g_trapped = 0;
  return g_trapped;
}

static void free_trap_flag(void) {
  munmap((void *)g_trapped, 4096);
  g_trapped = NULL;
}

struct crash_job {
  mproc_queue_t *q;
  size_t big;
  int before; /* "before" messages put first: 1, or kWarm to earn the single-producer path */
};

/* Puts in a row that earn a producer thread the single-producer path (256 are enough). */
enum { kWarm = 1000 };

static int body_before_then_trapped_big(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct crash_job *j = payload;
  for (int i = 0; i < j->before; i++)
    if (mproc_queue_put(j->q, "before", 6, -1) != 0) return 1;
  unsigned char *m = trap_buffer(j->big, j->big / 2);
  if (!m) return 2;
  mproc_queue_put(j->q, m, j->big, -1); /* stopped and killed in here */
  return 3;
}

/* After a producer that had put `before` messages was killed inside its next put: another put
 * takes over, the messages before and after arrive once each and the dead one's is withdrawn
 * (counted as dropped); the grant, when it had one, is revoked. The stats, for more checks. */
static mproc_queue_stats_t expect_dead_put_withdrawn(mproc_queue_t *q, int before) {
  put_str(q, "after"); /* this producer takes over from the dead one */
  for (int i = 0; i < before; i++) expect_str(q, "before", 5);
  expect_str(q, "after", 5);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_EEMPTY);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.producer_deaths, 1);
  assert_int_equal(s.dropped, 1);
  assert_int_equal(s.puts, (uint64_t)before + 1);
  assert_int_equal(s.grants, before >= kWarm ? 1 : 0);
  assert_int_equal(s.revokes, before >= kWarm ? 1 : 0);
  return s;
}

/* A producer killed half-way through copying a message too large for the ring: the message is
 * withdrawn (never half delivered), its extent freed; the messages before and after arrive
 * exactly once. With `before` = kWarm the producer has the single-producer path (no plock). */
static void producer_killed_mid_big_put(int before) {
  mproc_queue_t *q = make_queue(0, 256 << 10);
  volatile int *trapped = new_trap_flag();
  struct crash_job j = {q, (size_t)8 << 20, before};
  mproc_process_t *prod = spawn(body_before_then_trapped_big, &j, NULL, 0, MPROC_START_FORK);
  WAIT_FOR(*trapped == 1);
  assert_int_equal(stats_of(q).big_messages, 1); /* its extent is taken */
  assert_int_equal(mproc_process_kill(prod), 0);
  assert_int_equal(join_code(prod), -SIGKILL);
  mproc_queue_stats_t s = expect_dead_put_withdrawn(q, before);
  assert_int_equal(s.big_messages, 0);
  assert_int_equal(s.big_bytes, 0);
  free_trap_flag();
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_producer_killed_mid_big_put(void **state) {
  (void)state;
  producer_killed_mid_big_put(1);
}

static void test_queue_granted_producer_killed_mid_big_put(void **state) {
  (void)state;
  producer_killed_mid_big_put(kWarm);
}

static int body_trapped_get(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct crash_job *j = payload;
  char b[16];
  size_t n;
  for (int i = 0; i < j->before; i++) /* kWarm of them earn the single-consumer path */
    if (mproc_queue_get(j->q, b, sizeof b, &n, 10) != 0) return 3;
  unsigned char *m = trap_buffer(j->big, j->big / 2);
  if (!m) return 2;
  mproc_queue_get(j->q, m, j->big, &n, -1); /* stopped and killed in here */
  return 1;
}

/* A consumer killed half-way through copying a large message out loses that message only; the
 * next consumer frees its extent. With `before` = kWarm the consumer has the single-consumer
 * path (no clock): the next consumer revokes it and finds it dead. */
static void consumer_killed_mid_big_get(int before) {
  mproc_queue_t *q = make_queue(0, 64 << 10);
  volatile int *trapped = new_trap_flag();
  struct crash_job j = {q, (size_t)4 << 20, before};
  for (int i = 0; i < before; i++) put_str(q, "before");
  unsigned char *m = calloc(1, j.big);
  assert_int_equal(mproc_queue_put(q, m, j.big, 0), 0);
  free(m);
  put_str(q, "after");
  mproc_process_t *cons = spawn(body_trapped_get, &j, NULL, 0, MPROC_START_FORK);
  WAIT_FOR(*trapped == 1);
  assert_int_equal(mproc_process_kill(cons), 0);
  assert_int_equal(join_code(cons), -SIGKILL);
  expect_str(q, "after", 5);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.consumer_deaths, 1);
  assert_int_equal(s.lost, 1);
  assert_int_equal(s.puts, (uint64_t)before + 2);
  assert_int_equal(s.big_messages, 0);
  assert_int_equal(s.consumer_grants, before >= kWarm ? 1 : 0);
  assert_int_equal(s.consumer_revokes, before >= kWarm ? 1 : 0);
  assert_int_equal(mproc_queue_empty(q), 1);
  free_trap_flag();
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_consumer_killed_mid_big_get(void **state) {
  (void)state;
  consumer_killed_mid_big_get(0);
}

static void test_queue_granted_consumer_killed_mid_big_get(void **state) {
  (void)state;
  consumer_killed_mid_big_get(kWarm);
}

static int body_get_forever(void *arg, size_t len, void *payload) {
  (void)len;
  int before;
  memcpy(&before, arg, sizeof before);
  void *m;
  size_t n;
  for (int i = 0; i < before; i++) {
    if (mproc_queue_get_alloc(payload, &m, &n, 10) != 0) return 2;
    free(m);
  }
  mproc_queue_get_alloc(payload, &m, &n, -1); /* killed in here */
  return 1;
}

/* A consumer killed while it waits (holding the consumer side, or granted it after `before`
 * gets) leaves the queue whole. */
static void consumer_killed_mid_get(int before) {
  mproc_queue_t *q = make_queue(0, 64 << 10);
  for (int i = 0; i < before; i++) put_str(q, "before");
  mproc_process_t *cons = spawn(body_get_forever, q, &before, sizeof before, MPROC_START_FORK);
  WAIT_FOR(mproc_queue_empty(q) == 1 && tu_proc_state(mproc_process_pid(cons)) == 'S');
  assert_int_equal(mproc_process_kill(cons), 0);
  assert_int_equal(join_code(cons), -SIGKILL);
  put_str(q, "after");
  expect_str(q, "after", 5);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.lost, 0);
  assert_int_equal(s.consumer_deaths, 1);
  assert_int_equal(s.gets, (uint64_t)before + 1);
  assert_int_equal(s.consumer_grants, before >= kWarm ? 1 : 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

static void test_queue_consumer_killed_mid_get(void **state) {
  (void)state;
  consumer_killed_mid_get(0);
}

static void test_queue_granted_consumer_killed_mid_get(void **state) {
  (void)state;
  consumer_killed_mid_get(kWarm);
}
/* The fast paths (a granted side's message of up to 4 KiB) stopped in the middle of their copy:
 * a producer's message of 4 KiB whose second half lies on a PROT_NONE page, a consumer's buffer
 * likewise. A producer killed there is withdrawn whole (its record was never published); a
 * consumer killed there leaves the message in the queue. */
enum { kFastMsg = 4096 };

static int body_warm_then_trapped_small_put(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct crash_job *j = payload;
  for (int i = 0; i < j->before; i++)
    if (mproc_queue_put(j->q, "before", 6, -1) != 0) return 1;
  unsigned char *m = trap_buffer(2 * kFastMsg, kFastMsg);
  if (!m) return 2;
  mproc_queue_put(j->q, m + kFastMsg / 2, kFastMsg, -1); /* stopped and killed in here */
  return 3;
}

static void test_queue_granted_producer_killed_mid_small_put(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  volatile int *trapped = new_trap_flag();
  struct crash_job j = {q, kFastMsg, kWarm};
  mproc_process_t *prod = spawn(body_warm_then_trapped_small_put, &j, NULL, 0, MPROC_START_FORK);
  WAIT_FOR(*trapped == 1);
  assert_int_equal(mproc_process_kill(prod), 0);
  assert_int_equal(join_code(prod), -SIGKILL);
  /* the next put revokes the dead thread's grant and withdraws its message */
  expect_dead_put_withdrawn(q, kWarm);
  size_t qs = 1;
  assert_int_equal(mproc_queue_qsize(q, &qs), 0);
  assert_int_equal(qs, 0);
  free_trap_flag();
  assert_int_equal(mproc_queue_free(q), 0);
}

static int body_warm_then_trapped_small_get(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct crash_job *j = payload;
  char b[16];
  size_t n;
  for (int i = 0; i < j->before; i++)
    if (mproc_queue_get(j->q, b, sizeof b, &n, 10) != 0) return 3;
  unsigned char *m = trap_buffer(2 * kFastMsg, kFastMsg);
  if (!m) return 2;
  mproc_queue_get(j->q, m + kFastMsg / 2, kFastMsg, &n, -1); /* stopped and killed in here */
  return 1;
}

static void test_queue_granted_consumer_killed_mid_small_get(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  volatile int *trapped = new_trap_flag();
  struct crash_job j = {q, kFastMsg, kWarm};
  for (int i = 0; i < kWarm; i++) put_str(q, "before");
  unsigned char *m = malloc(kFastMsg);
  assert_non_null(m);
  uint64_t sum = fill_pattern(m, kFastMsg, 3);
  assert_int_equal(mproc_queue_put(q, m, kFastMsg, 0), 0);
  put_str(q, "after");
  mproc_process_t *cons = spawn(body_warm_then_trapped_small_get, &j, NULL, 0, MPROC_START_FORK);
  WAIT_FOR(*trapped == 1);
  assert_int_equal(mproc_process_kill(cons), 0);
  assert_int_equal(join_code(cons), -SIGKILL);
  size_t n = 0;
  memset(m, 0, kFastMsg);
  assert_int_equal(mproc_queue_get(q, m, kFastMsg, &n, 5), 0); /* still there, whole */
  assert_int_equal(n, kFastMsg);
  assert_int_equal(checksum(m, n), sum);
  expect_str(q, "after", 5);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.consumer_deaths, 1);
  assert_int_equal(s.lost, 0);
  assert_int_equal(s.gets, (uint64_t)kWarm + 2);
  assert_int_equal(s.consumer_grants, 1);
  assert_int_equal(s.consumer_revokes, 1);
  free(m);
  free_trap_flag();
  assert_int_equal(mproc_queue_free(q), 0);
}

/* The fast paths refuse what the full paths refuse, keep what they cannot take, and count
 * exactly: both sides granted here (one thread puts and gets kWarm times first). */
static void test_queue_fast_path_checks_and_counts(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0), *other = make_queue(0, 0);
  for (int i = 0; i < kWarm; i++) {
    put_str(q, "warm");
    expect_str(q, "warm", 0);
  }
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.grants, 1);
  assert_int_equal(s.consumer_grants, 1);
  char b[8];
  size_t n = 0;
  assert_int_equal(mproc_queue_put(q, "x", 1, 0.0 / 0.0), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_queue_put: timeout is NaN"));
  assert_int_equal(mproc_queue_put(q, NULL, 5, -1), MPROC_EINVAL);
  size_t qs = 1;
  assert_int_equal(mproc_queue_qsize(q, &qs), 0);
  assert_int_equal(qs, 0);
  put_str(q, "abc");
  assert_int_equal(mproc_queue_get(q, b, 2, &n, 0), MPROC_EMSGSIZE); /* kept */
  assert_int_equal(n, 3);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_get(q, NULL, 4, &n, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0.0 / 0.0), MPROC_EINVAL);
  expect_str(q, "abc", 0);
  /* sizes around the inline copy (16 bytes) and the fast paths' limit (4 KiB), with another
   * handle used in between (the fast path knows only the handle this thread used last) */
  static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 100, 4095, 4096, 4097, 70000};
  unsigned char *m = malloc(70000), *r = malloc(70001);
  assert_true(m && r);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint64_t sum = fill_pattern(m, sizes[i], i);
    assert_int_equal(mproc_queue_put(q, m, sizes[i], -1), 0);
    put_str(other, "o");
    memset(r, 0xee, 70001);
    assert_int_equal(mproc_queue_get(q, r, 70000, &n, 0), 0);
    assert_int_equal(n, sizes[i]);
    assert_int_equal(checksum(r, n), sum);
    assert_int_equal(r[n], 0xee); /* nothing written past the message */
    expect_str(other, "o", 0);
  }
  s = stats_of(q);
  const uint64_t total = kWarm + 1 + sizeof sizes / sizeof sizes[0];
  assert_int_equal(s.puts, total);
  assert_int_equal(s.gets, total);
  assert_int_equal(s.dropped, 0);
  assert_int_equal(s.revokes, 0);
  assert_int_equal(s.consumer_revokes, 0);
  assert_int_equal(mproc_queue_empty(q), 1);
  free(m);
  free(r);
  assert_int_equal(mproc_queue_free(other), 0);
  assert_int_equal(mproc_queue_free(q), 0);
  /* the handle this thread used last, freed: refused, not dereferenced */
  assert_int_equal(mproc_queue_put(q, "x", 1, 0), MPROC_EBADF);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_EBADF);
}

/* ---- the single-producer path -------------------------------------------------------------- */

struct seq_job {
  mproc_queue_t *q;
  uint32_t count;
  int pause_us; /* < 0: a pattern of pauses before each put (see body_put_seq) */
};

/* Put {id, 0..count-1}. */
static int body_put_seq(void *arg, size_t len, void *payload) {
  (void)len;
  struct seq_job *j = payload;
  uint32_t m[2];
  memcpy(&m[0], arg, sizeof m[0]);
  for (uint32_t i = 0; i < j->count; i++) {
    /* after the warm-up: no pause, 50 us, 300 us and 2 ms in turn, so that the consumer is
     * caught spinning, in its first short sleep, and in its long sleep */
    static const int pauses[] = {0, 50, 300, 2000};
    if (j->pause_us < 0 && i >= kWarm) usleep((useconds_t)pauses[i % 4]);
    m[1] = i;
    if (mproc_queue_put(j->q, m, sizeof m, -1) != 0) return 1;
  }
  return 0;
}

/* Take n messages of producers 0..np-1; each producer's arrive in order. */
static void expect_seqs(mproc_queue_t *q, int np, uint32_t n) {
  uint32_t next[4] = {0, 0, 0, 0};
  for (uint32_t k = 0; k < n; k++) {
    uint32_t m[2];
    size_t len = 0;
    assert_int_equal(mproc_queue_get(q, m, sizeof m, &len, 10), 0);
    assert_int_equal(len, sizeof m);
    assert_true(m[0] < (uint32_t)np);
    assert_int_equal(m[1], next[m[0]]);
    next[m[0]]++;
  }
}

/* A thread that puts kWarm times in a row is granted the single-producer path; the next other
 * producer revokes it (here: after the granted one exited); producers that take turns are not
 * granted again and again. Every message arrives once, in order per producer. */
static void test_queue_single_producer_grant_and_revoke(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  struct seq_job j = {q, kWarm, 0};
  uint32_t id = 0;
  mproc_process_t *p = spawn(body_put_seq, &j, &id, sizeof id, MPROC_START_FORK);
  assert_int_equal(join_code(p), 0);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.grants, 1);
  assert_int_equal(s.revokes, 0);
  for (uint32_t i = 0; i < kWarm; i++) {
    uint32_t m[2] = {1, i};
    assert_int_equal(mproc_queue_put(q, m, sizeof m, -1), 0);
  }
  s = stats_of(q);
  assert_int_equal(s.revokes, 1);
  assert_int_equal(s.producer_deaths, 0); /* it had finished its puts */
  expect_seqs(q, 2, 2 * kWarm);
  /* two producers at once, 100000 messages each, taken while they put: grants and revocations
   * while both put (a former owner on its way to finding its grant revoked must not clear the
   * new owner's busy word: that once let two producers write the same record) */
  j.count = 100000;
  mproc_process_t *ps[2];
  for (id = 0; id < 2; id++) ps[id] = spawn(body_put_seq, &j, &id, sizeof id, MPROC_START_FORK);
  expect_seqs(q, 2, 2 * j.count);
  for (int i = 0; i < 2; i++) assert_int_equal(join_code(ps[i]), 0);
  s = stats_of(q);
  assert_int_equal(s.puts, 2 * kWarm + 200000);
  assert_int_equal(s.gets, s.puts);
  /* each revocation doubles the run that earns the next grant: about log2(200000 / 256) of them */
  assert_true(s.revokes <= 14);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* body_put_seq with puts that give up after 30 s (a failed check leaves no child behind). */
static int body_put_seq_30s(void *arg, size_t len, void *payload) {
  (void)len;
  struct seq_job *j = payload;
  uint32_t m[2];
  memcpy(&m[0], arg, sizeof m[0]);
  for (uint32_t i = 0; i < j->count; i++) {
    m[1] = i;
    if (mproc_queue_put(j->q, m, sizeof m, 30) != 0) return 1;
  }
  return 0;
}

/* A granted producer waiting for room keeps its busy word up; a poll that revokes it gives up
 * waiting for that put (MPROC_EFULL) and lets the lock go. The next producer must still wait for
 * the revoked put to end: both would otherwise write the record at the same tail, and one
 * message would be lost. */
static void test_queue_revoked_producer_still_waiting(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 64 << 10); /* 4096 records of 16 bytes */
  struct seq_job a = {q, kWarm + 5000, 0};
  uint32_t id = 0;
  mproc_process_t *pa = spawn(body_put_seq_30s, &a, &id, sizeof id, MPROC_START_FORK);
  /* a is granted and asleep in a put, waiting for room: the ring is full and stays so */
  size_t was = 0, now = 1;
  const double until = tu_now() + 10;
  do {
    assert_int_equal(mproc_queue_qsize(q, &was), 0);
    usleep(50000);
    assert_int_equal(mproc_queue_qsize(q, &now), 0);
  } while ((now != was || now <= kWarm) && tu_now() < until);
  assert_true(now == was && now > kWarm);
  assert_int_equal(stats_of(q).grants, 1);
  uint32_t m[2] = {1, 0};
  assert_int_equal(mproc_queue_put(q, m, sizeof m, 0), MPROC_EFULL); /* revokes, does not wait */
  assert_int_equal(stats_of(q).revokes, 1);
  struct seq_job b = {q, 1, 0};
  id = 1;
  mproc_process_t *pb = spawn(body_put_seq_30s, &b, &id, sizeof id, MPROC_START_FORK);
  /* Give b time to reach its wait (behind a's put; it naps in 1 ms steps there, so its state
   * says little on a loaded machine). Were it later, the test would pass without checking. */
  usleep(200000);
  expect_seqs(q, 2, a.count + b.count);
  assert_int_equal(join_code(pa), 0);
  assert_int_equal(join_code(pb), 0);
  char buf[16];
  size_t n;
  assert_int_equal(mproc_queue_get(q, buf, sizeof buf, &n, 0), MPROC_EEMPTY);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* A consumer asleep while the granted producer puts is woken (the producer does not fence: the
 * consumer's short first sleep and membarrier cover it). A lost wake-up would leave a get to
 * its 10 s timeout. */
static void test_queue_granted_producer_wakes_sleeping_consumer(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  struct seq_job j = {q, kWarm + 400, -1};
  uint32_t id = 0;
  mproc_process_t *p = spawn(body_put_seq, &j, &id, sizeof id, MPROC_START_FORK);
  expect_seqs(q, 1, j.count);
  assert_int_equal(join_code(p), 0);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.grants, 1);
  assert_int_equal(s.revokes, 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* ---- the single-consumer path -------------------------------------------------------------- */

struct take_job {
  mproc_queue_t *q;
  uint32_t count;       /* messages to take; 0: until an empty message */
  int pause;            /* pauses (see body_take_seq) after kWarm messages */
  unsigned char *seen;  /* shared: delivery count of each sequence number, or NULL */
};

/* Take {0, seq} messages: in order from `from` when count > 0 (after kWarm of them, with the
 * pattern of pauses of body_put_seq when `pause`), else until an empty message, counting each
 * seq in `seen`. */
static int body_take_seq(void *arg, size_t len, void *payload) {
  (void)len;
  struct take_job *j = payload;
  uint32_t from;
  memcpy(&from, arg, sizeof from);
  for (uint32_t i = 0; j->count == 0 || i < j->count; i++) {
    static const int pauses[] = {0, 50, 300, 2000};
    if (j->pause && i >= kWarm) usleep((useconds_t)pauses[i % 4]);
    uint32_t m[256];
    size_t n = 0;
    if (mproc_queue_get(j->q, m, sizeof m, &n, 10) != 0) return 1;
    if (n == 0 && j->count == 0) return 0;
    if (n < 2 * sizeof m[0] || m[0] != 0) return 2;
    if (j->seen) {
      if (m[1] >= 400000) return 3;
      j->seen[m[1]]++;
    } else if (m[1] != from + i) {
      return 4;
    }
  }
  return 0;
}

/* A thread that gets kWarm times in a row is granted the single-consumer path; the next other
 * consumer revokes it (here: after the granted one exited); two consumers at once are granted
 * and revoked in turn, and every message is delivered exactly once. */
static void test_queue_single_consumer_grant_and_revoke(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 0);
  for (uint32_t i = 0; i < 2 * kWarm; i++) {
    uint32_t m[2] = {0, i};
    assert_int_equal(mproc_queue_put(q, m, sizeof m, -1), 0);
  }
  struct take_job j = {q, kWarm, 0, NULL};
  uint32_t from = 0;
  mproc_process_t *c = spawn(body_take_seq, &j, &from, sizeof from, MPROC_START_FORK);
  assert_int_equal(join_code(c), 0);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.consumer_grants, 1);
  assert_int_equal(s.consumer_revokes, 0);
  assert_int_equal(s.gets, kWarm);
  for (uint32_t i = kWarm; i < 2 * kWarm; i++) {
    uint32_t m[2];
    size_t n = 0;
    assert_int_equal(mproc_queue_get(q, m, sizeof m, &n, 10), 0);
    assert_int_equal(m[1], i);
  }
  s = stats_of(q);
  assert_int_equal(s.consumer_revokes, 1);
  assert_int_equal(s.consumer_deaths, 0); /* it had finished its gets */
  /* two consumers at once, 200000 messages taken while both get */
  const uint32_t total = 200000;
  unsigned char *seen = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(seen != MAP_FAILED);
  struct take_job k = {q, 0, 0, seen};
  mproc_process_t *cs[2];
  for (int i = 0; i < 2; i++) cs[i] = spawn(body_take_seq, &k, &from, sizeof from, MPROC_START_FORK);
  for (uint32_t i = 0; i < total; i++) {
    uint32_t m[2] = {0, i};
    assert_int_equal(mproc_queue_put(q, m, sizeof m, -1), 0);
  }
  for (int i = 0; i < 2; i++) assert_int_equal(mproc_queue_put(q, NULL, 0, -1), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(join_code(cs[i]), 0);
  for (uint32_t i = 0; i < total; i++) assert_int_equal(seen[i], 1);
  munmap(seen, total);
  s = stats_of(q);
  assert_int_equal(s.gets, s.puts);
  assert_true(s.consumer_revokes <= 14); /* each doubles the run that earns the next grant */
  assert_int_equal(mproc_queue_free(q), 0);
}

/* A producer asleep for room while the granted consumer gets is woken (the consumer does not
 * fence: the producer's short first sleep and membarrier cover it). A lost wake-up would leave
 * a put to its 10 s timeout. */
static void test_queue_granted_consumer_wakes_sleeping_producer(void **state) {
  (void)state;
  mproc_queue_t *q = make_queue(0, 64 << 10);
  struct take_job j = {q, kWarm + 400, 1, NULL};
  uint32_t from = 0;
  mproc_process_t *c = spawn(body_take_seq, &j, &from, sizeof from, MPROC_START_FORK);
  static unsigned char m[1024]; /* 63 of them fill the ring: the producer waits for room */
  for (uint32_t i = 0; i < j.count; i++) {
    uint32_t h[2] = {0, i};
    memcpy(m, h, sizeof h);
    assert_int_equal(mproc_queue_put(q, m, i < kWarm ? sizeof h : sizeof m, 10), 0);
  }
  assert_int_equal(join_code(c), 0);
  mproc_queue_stats_t s = stats_of(q);
  assert_int_equal(s.consumer_grants, 1);
  assert_int_equal(s.consumer_revokes, 0);
  assert_int_equal(mproc_queue_free(q), 0);
}

/* One handle used by two threads of one process at once, one putting and one getting (as a
 * Python Queue shared by threads is): both sides earn their grants, every message arrives once
 * and in order, and no wake-up is lost (a get or put waiting 10 s would fail). Under TSan this
 * also checks that the handle's process-local state is not shared between the two sides. */
struct two_threads {
  mproc_queue_t *q;
  uint32_t count;
  int rc;
};

static void *thread_put_seq(void *arg) {
  struct two_threads *t = arg;
  for (uint32_t i = 0; i < t->count; i++) {
    if (i % 4096 == 0) usleep(500); /* now and then the getter finds the queue empty and sleeps */
    uint32_t m[2] = {0, i};
    if (mproc_queue_put(t->q, m, sizeof m, 10) != 0) {
      t->rc = 1;
      break;
    }
  }
  return NULL;
}

static void test_queue_one_handle_two_threads(void **state) {
  (void)state;
  struct two_threads t = {make_queue(0, 64 << 10), 100000, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, thread_put_seq, &t), 0);
  for (uint32_t i = 0; i < t.count; i++) {
    uint32_t m[2];
    size_t n = 0;
    assert_int_equal(mproc_queue_get(t.q, m, sizeof m, &n, 10), 0);
    assert_int_equal(n, sizeof m);
    assert_int_equal(m[1], i);
  }
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(t.rc, 0);
  mproc_queue_stats_t s = stats_of(t.q);
  assert_int_equal(s.gets, t.count);
  assert_int_equal(s.grants, 1);
  assert_int_equal(s.consumer_grants, 1);
  assert_int_equal(mproc_queue_free(t.q), 0);
}

/* ---- stress ------------------------------------------------------------------------------- */

enum { kProducers = 4, kConsumers = 4, kMaxLen = 64 << 10 };

struct msg_head {
  uint32_t producer, seq;
  uint64_t sum;
};

struct stress {
  mproc_queue_t *q;
  long count;           /* per producer */
  unsigned char *seen;  /* shared: [producer][seq] delivery count */
  int *bad;             /* shared: failures seen by consumers */
};

static long stress_count(void) {
  const char *e = getenv("MPROC_STRESS_COUNT");
  long n = e ? atol(e) : 0;
#if defined(__SANITIZE_ADDRESS__)
  if (n <= 0) n = 20000;
#else
  if (n <= 0) n = 100000;
#endif
  return n;
}

static int body_stress_producer(void *arg, size_t len, void *payload) {
  (void)len;
  struct stress *s = payload;
  uint32_t id;
  memcpy(&id, arg, sizeof id);
  unsigned char *m = malloc(sizeof(struct msg_head) + kMaxLen);
  uint64_t r = 0x12345 + id;
  for (uint32_t i = 0; i < (uint32_t)s->count; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    size_t n = (size_t)(r % (kMaxLen + 1));
    struct msg_head h = {id, i, 0};
    h.sum = fill_pattern(m + sizeof h, n, ((uint64_t)id << 32) | i);
    memcpy(m, &h, sizeof h);
    if (mproc_queue_put(s->q, m, sizeof h + n, -1) != 0) return 1;
  }
  free(m);
  return 0;
}

static int body_stress_consumer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct stress *s = payload;
  unsigned char *m = malloc(sizeof(struct msg_head) + kMaxLen);
  int64_t last[kProducers];
  for (int i = 0; i < kProducers; i++) last[i] = -1;
  for (;;) {
    size_t n;
    int rc = mproc_queue_get(s->q, m, sizeof(struct msg_head) + kMaxLen, &n, -1);
    if (rc == MPROC_ECLOSED) break;
    if (rc != 0 || n < sizeof(struct msg_head)) return 1;
    struct msg_head h;
    memcpy(&h, m, sizeof h);
    if (h.producer >= kProducers || h.seq >= (uint32_t)s->count) return 2;
    if ((int64_t)h.seq <= last[h.producer]) __atomic_add_fetch(s->bad, 1, __ATOMIC_SEQ_CST);
    last[h.producer] = h.seq;
    if (checksum(m + sizeof h, n - sizeof h) != h.sum) __atomic_add_fetch(s->bad, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&s->seen[(size_t)h.producer * (size_t)s->count + h.seq], 1, __ATOMIC_SEQ_CST);
  }
  free(m);
  return 0;
}

/* 4 producers and 4 consumers move MPROC_STRESS_COUNT messages of 0..64 KiB: each arrives once,
 * intact, and in order per producer. */
static void test_queue_stress_4_producers_4_consumers(void **state) {
  (void)state;
  long total = stress_count();
  struct stress s;
  s.q = make_queue(0, 0);
  s.count = total / kProducers;
  size_t seen_len = (size_t)kProducers * (size_t)s.count + sizeof(int);
  void *shared = mmap(NULL, seen_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(shared != MAP_FAILED);
  s.bad = shared;
  s.seen = (unsigned char *)shared + sizeof(int);
  double t0 = tu_now();
  mproc_process_t *c[kConsumers], *p[kProducers];
  for (int i = 0; i < kConsumers; i++) c[i] = spawn(body_stress_consumer, &s, NULL, 0, MPROC_START_FORK);
  for (uint32_t i = 0; i < kProducers; i++) p[i] = spawn(body_stress_producer, &s, &i, sizeof i, MPROC_START_FORK);
  for (int i = 0; i < kProducers; i++) assert_int_equal(join_code(p[i]), 0);
  assert_int_equal(mproc_queue_close(s.q), 0); /* consumers drain, then see MPROC_ECLOSED */
  for (int i = 0; i < kConsumers; i++) assert_int_equal(join_code(c[i]), 0);
  double dt = tu_now() - t0;
  assert_int_equal(*s.bad, 0);
  for (size_t i = 0; i < (size_t)kProducers * (size_t)s.count; i++)
    if (s.seen[i] != 1) fail_msg("message %zu delivered %d times", i, s.seen[i]);
  mproc_queue_stats_t st = stats_of(s.q);
  assert_int_equal(st.puts, (uint64_t)kProducers * (uint64_t)s.count);
  assert_int_equal(st.gets, st.puts);
  print_message("stress: %ld messages in %.2f s (%.0f msgs/s)\n", kProducers * s.count, dt,
                (double)(kProducers * s.count) / dt);
  munmap(shared, seen_len);
  assert_int_equal(mproc_queue_free(s.q), 0);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void test_queue_bad_input(void **state) {
  (void)state;
  mproc_queue_t *q = NULL;
  assert_int_equal(mproc_queue_new(NULL, NULL), MPROC_EINVAL);
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  assert_int_equal(mproc_queue_opts_init(&o), 0);
  assert_int_equal(mproc_queue_opts_init(NULL), MPROC_EINVAL);
  o.size = 3;
  assert_int_equal(mproc_queue_new(&q, &o), MPROC_EINVAL);
  /* Handles go over Unix sockets only: a plain fd is refused before sendmsg/recvmsg. */
  mproc_queue_t *h = NULL;
  assert_int_equal(mproc_simple_queue_new(&h), 0);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(devnull >= 0);
  assert_int_equal(mproc_queue_send_handle(h, devnull), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_queue_send_handle: fd"));
  assert_non_null(strstr(mproc_last_error(), "is not a Unix socket"));
  assert_int_equal(mproc_queue_recv_handle(&q, devnull), MPROC_EINVAL);
  assert_null(q);
  close(devnull);
  assert_int_equal(mproc_queue_send_handle(h, 1000000), MPROC_EBADF);
  assert_int_equal(mproc_queue_free(h), 0);
  assert_null(q);
  o.size = sizeof o;
  o.capacity = (size_t)1 << 40;
  assert_int_equal(mproc_queue_new(&q, &o), MPROC_EINVAL);
  q = make_queue(0, 0);
  char b[8];
  size_t n;
  assert_int_equal(mproc_queue_put(q, NULL, 5, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_get(q, NULL, 5, &n, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_get_alloc(q, NULL, &n, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_qsize(q, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_queue_stats(q, NULL), MPROC_EINVAL);
  mproc_queue_stats_t s = {0};
  assert_int_equal(mproc_queue_stats(q, &s), MPROC_EINVAL); /* size not set */
  assert_int_equal(mproc_queue_cancel(q), MPROC_EINVAL);
  assert_int_equal(mproc_queue_name(q, NULL, 10), MPROC_EINVAL);
  mproc_queue_t *q2 = q;
  assert_int_equal(mproc_queue_open(&q2, NULL), MPROC_EINVAL);
  assert_null(q2);
  q2 = q;
  assert_int_equal(mproc_queue_recv_handle(&q2, -1), MPROC_EBADF);
  assert_null(q2);
  assert_int_equal(mproc_queue_put(NULL, "x", 1, 0), MPROC_EINVAL);
  assert_int_equal(mproc_queue_free(q), 0);
  /* a freed handle is refused, not dereferenced */
  assert_int_equal(mproc_queue_put(q, "x", 1, 0), MPROC_EBADF);
  assert_int_equal(mproc_queue_get(q, b, sizeof b, &n, 0), MPROC_EBADF);
  assert_int_equal(mproc_queue_close(q), MPROC_EBADF);
  assert_int_equal(mproc_queue_free(q), MPROC_EBADF);
  assert_non_null(strstr(mproc_last_error(), "mproc_queue_free"));
  assert_int_equal(mproc_queue_free(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(queue, fifo_in_one_process),
      TEST(queue, poll_and_timeout),
      TEST(queue, small_buffer_keeps_message),
      TEST(queue, close_drains_then_reports),
      TEST(queue, close_wakes_blocked_get),
      TEST(queue, message_of_256_mib),
      TEST(queue, size_limits),
      TEST(queue, big_put_needs_no_reader),
      TEST(queue, full_ring_sends_large_out_of_line),
      TEST(queue, big_messages_outlive_their_producer),
      TEST(queue, reserve_commit_peek_release),
      TEST(queue, putv_and_get_msg),
      TEST(queue, msg_view_private_after_fork),
      TEST(queue, shared_with_forked_child),
      TEST(queue, open_by_name_in_forkserver_child),
      TEST(queue, passed_over_a_socket),
      TEST(queue, fileno_is_pollable),
      TEST(queue, idle_consumer_uses_no_cpu),
      TEST(queue, joinable_task_done_and_join),
      TEST(queue, producer_killed_mid_big_put),
      TEST(queue, consumer_killed_mid_big_get),
      TEST(queue, consumer_killed_mid_get),
      TEST(queue, granted_consumer_killed_mid_big_get),
      TEST(queue, granted_consumer_killed_mid_get),
      TEST(queue, single_producer_grant_and_revoke),
      TEST(queue, granted_producer_wakes_sleeping_consumer),
      TEST(queue, revoked_producer_still_waiting),
      TEST(queue, granted_producer_killed_mid_big_put),
      TEST(queue, granted_producer_killed_mid_small_put),
      TEST(queue, granted_consumer_killed_mid_small_get),
      TEST(queue, fast_path_checks_and_counts),
      TEST(queue, single_consumer_grant_and_revoke),
      TEST(queue, granted_consumer_wakes_sleeping_producer),
      TEST(queue, one_handle_two_threads),
      TEST(queue, stress_4_producers_4_consumers),
      TEST(queue, bad_input),
  };
  return tu_run("queue", tests);
}
