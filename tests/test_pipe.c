/* Pipes: duplex and one-way pairs, whole messages of any size, too-small buffers, poll, end of
 * file and broken pipes (never SIGPIPE), the pollable fd, an idle receiver's CPU, wait() over
 * pipes, queues and processes, bad input. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static mproc_process_t *spawn(mproc_process_fn fn, void *payload) {
  return tu_start(fn, NULL, 0, MPROC_START_FORK, 0, payload);
}

#define join_code tu_join_code

/* Echo every message back until end of file. */
static int body_echo(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **ends = payload;
  mproc_conn_close(ends[0]); /* the parent's end */
  for (;;) {
    void *m;
    size_t n;
    int rc = mproc_conn_recv_bytes_alloc(ends[1], &m, &n, -1);
    if (rc == MPROC_EPIPE) return 0;
    if (rc) return 1;
    rc = mproc_conn_send_bytes(ends[1], m, n);
    free(m);
    if (rc) return 2;
  }
}

static void test_pipe_duplex_round_trips(void **state) {
  (void)state;
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  mproc_process_t *p = spawn(body_echo, ends);
  assert_int_equal(mproc_conn_close(ends[1]), 0);
  size_t sizes[] = {0, 1, 7, 4096, (size_t)1 << 20, (size_t)16 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t len = sizes[k];
    unsigned char *m = malloc(len + 1);
    for (size_t i = 0; i < len; i++) m[i] = (unsigned char)(i * 7 + k);
    /* a big message is received while it is being sent: send from a child would be needed
     * for messages over the socket buffers, so the echo child reads as we write */
    assert_int_equal(mproc_conn_send_bytes(ends[0], m, len), 0);
    void *r = NULL;
    size_t n = 0;
    assert_int_equal(mproc_conn_recv_bytes_alloc(ends[0], &r, &n, 20), 0);
    assert_int_equal(n, len);
    if (len) assert_memory_equal(r, m, len);
    free(r);
    free(m);
  }
  assert_int_equal(mproc_conn_close(ends[0]), 0); /* the child sees end of file */
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

static void test_pipe_one_way(void **state) {
  (void)state;
  mproc_conn_t *r, *w;
  assert_int_equal(mproc_pipe(&r, &w, 0), 0);
  assert_int_equal(mproc_conn_send_bytes(w, "one way", 7), 0);
  char b[16];
  size_t n;
  assert_int_equal(mproc_conn_recv_bytes(r, b, sizeof b, &n, 1), 0);
  assert_int_equal(n, 7);
  assert_memory_equal(b, "one way", 7);
  assert_int_equal(mproc_conn_send_bytes(r, "x", 1), MPROC_EPERM);
  assert_int_equal(mproc_conn_send_bytes_timeout(r, "x", 1, 0), MPROC_EPERM);
  assert_int_equal(mproc_conn_recv_bytes(w, b, sizeof b, &n, 0), MPROC_EPERM);
  assert_int_equal(mproc_conn_poll(w, 0), MPROC_EPERM);
  assert_int_equal(mproc_conn_free(r), 0);
  assert_int_equal(mproc_conn_free(w), 0);
}

static void test_pipe_small_buffer_keeps_message(void **state) {
  (void)state;
  mproc_conn_t *a, *b;
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  assert_int_equal(mproc_conn_send_bytes(a, "a longer message", 16), 0);
  assert_int_equal(mproc_conn_send_bytes(a, "next", 4), 0);
  char buf[32];
  size_t n = 0;
  assert_int_equal(mproc_conn_recv_bytes(b, buf, 4, &n, 1), MPROC_EMSGSIZE);
  assert_int_equal(n, 16);
  assert_int_equal(mproc_conn_poll(b, 0), 1);
  assert_int_equal(mproc_conn_recv_bytes(b, buf, sizeof buf, &n, 1), 0);
  assert_int_equal(n, 16);
  assert_memory_equal(buf, "a longer message", 16);
  assert_int_equal(mproc_conn_recv_bytes(b, buf, sizeof buf, &n, 1), 0);
  assert_int_equal(n, 4);
  assert_int_equal(mproc_conn_free(a), 0);
  assert_int_equal(mproc_conn_free(b), 0);
}

static void test_pipe_poll_and_timeout(void **state) {
  (void)state;
  mproc_conn_t *a, *b;
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  assert_int_equal(mproc_conn_poll(b, 0), 0);
  assert_int_equal(mproc_conn_poll(b, 0.02), 0);
  char buf[8];
  size_t n;
  assert_int_equal(mproc_conn_recv_bytes(b, buf, sizeof buf, &n, 0.02), MPROC_ETIMEDOUT);
  assert_non_null(strstr(mproc_last_error(), "mproc_conn_recv_bytes: timeout"));
  assert_int_equal(mproc_conn_send_bytes(a, "x", 1), 0);
  assert_int_equal(mproc_conn_poll(b, 1), 1);
  assert_true(mproc_conn_fileno(b) >= 0);
  assert_int_equal(mproc_conn_free(a), 0);
  assert_int_equal(mproc_conn_free(b), 0);
}

static int body_die(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  raise(SIGKILL);
  return 0;
}

/* A closed or dead peer is MPROC_EPIPE on both send and receive; SIGPIPE never fires. */
static void test_pipe_peer_closed_is_epipe(void **state) {
  (void)state;
  mproc_conn_t *a, *b;
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  assert_int_equal(mproc_conn_send_bytes(b, "last", 4), 0);
  assert_int_equal(mproc_conn_free(b), 0);
  char buf[8];
  size_t n;
  assert_int_equal(mproc_conn_recv_bytes(a, buf, sizeof buf, &n, 1), 0); /* drained first */
  assert_int_equal(mproc_conn_poll(a, 1), 1);                           /* end of file is ready */
  assert_int_equal(mproc_conn_recv_bytes(a, buf, sizeof buf, &n, 1), MPROC_EPIPE);
  assert_int_equal(mproc_conn_send_bytes(a, "x", 1), MPROC_EPIPE); /* no SIGPIPE */
  assert_int_equal(mproc_conn_free(a), 0);
  /* a peer killed by a signal */
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  mproc_process_t *p = spawn(body_die, ends);
  assert_int_equal(mproc_conn_close(ends[1]), 0);
  assert_int_equal(join_code(p), -SIGKILL);
  assert_int_equal(mproc_conn_recv_bytes(ends[0], buf, sizeof buf, &n, 5), MPROC_EPIPE);
  unsigned char big[65536] = {0};
  assert_int_equal(mproc_conn_send_bytes(ends[0], big, sizeof big), MPROC_EPIPE);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

static int readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

static int body_send_one_later(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **ends = payload;
  mproc_conn_close(ends[0]);
  usleep(20000);
  return mproc_conn_send_bytes(ends[1], "tick", 4) == 0 ? 0 : 1;
}

/* The fileno is readable exactly while a message waits, and once the peer is gone. */
static void test_pipe_fileno_is_pollable(void **state) {
  (void)state;
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  int fd = mproc_conn_fileno(ends[0]);
  assert_true(fd >= 0);
  assert_int_equal(mproc_conn_fileno(ends[0]), fd); /* the same fd every time */
  assert_false(readable(fd, 0));
  mproc_process_t *p = spawn(body_send_one_later, ends);
  assert_int_equal(mproc_conn_close(ends[1]), 0);
  assert_true(readable(fd, 10000));
  char b[8];
  size_t n;
  assert_int_equal(mproc_conn_recv_bytes(ends[0], b, sizeof b, &n, 0), 0);
  assert_int_equal(n, 4);
  assert_int_equal(join_code(p), 0); /* the child's end closes with it */
  assert_true(readable(fd, 10000)); /* end of file */
  assert_int_equal(mproc_conn_recv_bytes(ends[0], b, sizeof b, &n, 0), MPROC_EPIPE);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
  /* a message sent before the fd was asked for makes it readable too; receiving drains it */
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  assert_int_equal(mproc_conn_send_bytes(ends[1], "a", 1), 0);
  fd = mproc_conn_fileno(ends[0]);
  assert_true(readable(fd, 0));
  assert_int_equal(mproc_conn_recv_bytes(ends[0], b, sizeof b, &n, 0), 0);
  assert_false(readable(fd, 0));
  assert_int_equal(mproc_conn_send_bytes(ends[1], "b", 1), 0);
  assert_true(readable(fd, 0));
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

static int body_idle_recv(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **ends = payload;
  struct rusage a;
  getrusage(RUSAGE_SELF, &a);
  char buf[8];
  size_t n;
  int rc = mproc_conn_recv_bytes(ends[1], buf, sizeof buf, &n, 1.0);
  long ms = tu_cpu_ms_since(&a);
  if (rc != MPROC_ETIMEDOUT) return 255;
  return ms > 200 ? 200 : (int)ms;
}

/* A receiver spins only briefly before it sleeps: a 1 s blocking receive costs (almost) no CPU. */
static void test_pipe_idle_receiver_uses_no_cpu(void **state) {
  (void)state;
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  int ms = join_code(spawn(body_idle_recv, ends));
  print_message("idle receiver: %d ms of CPU over a 1 s blocking receive\n", ms);
  assert_true(ms >= 0 && ms < 50);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

static int body_ping_pong(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **ends = payload;
  mproc_conn_close(ends[0]);
  char b[16];
  size_t n;
  while (mproc_conn_recv_bytes(ends[1], b, sizeof b, &n, -1) == 0)
    if (mproc_conn_send_bytes(ends[1], b, n)) return 1;
  return 0;
}

/* Many small round trips (the spinning fast path) keep order and content. */
static void test_pipe_many_round_trips_in_order(void **state) {
  (void)state;
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  mproc_process_t *p = spawn(body_ping_pong, ends);
  assert_int_equal(mproc_conn_close(ends[1]), 0);
  for (unsigned i = 0; i < 20000; i++) {
    char b[16];
    size_t n;
    assert_int_equal(mproc_conn_send_bytes(ends[0], &i, sizeof i), 0);
    assert_int_equal(mproc_conn_recv_bytes(ends[0], b, sizeof b, &n, 20), 0);
    assert_int_equal(n, sizeof i);
    assert_memory_equal(b, &i, sizeof i);
  }
  assert_int_equal(mproc_conn_close(ends[0]), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

struct wait_job {
  mproc_conn_t *w;
  mproc_queue_t *q;
};

static int body_send_later(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct wait_job *j = payload;
  usleep(20000);
  if (mproc_queue_put(j->q, "q", 1, -1)) return 1;
  usleep(20000);
  return mproc_conn_send_bytes(j->w, "c", 1) ? 2 : 0;
}

/* wait() over a pipe, a queue, a process sentinel and a plain fd. */
static void test_pipe_wait_on_several_objects(void **state) {
  (void)state;
  struct wait_job j;
  mproc_conn_t *r;
  assert_int_equal(mproc_pipe(&r, &j.w, 0), 0);
  assert_int_equal(mproc_simple_queue_new(&j.q), 0);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  mproc_wait_item_t it[3] = {{MPROC_WAIT_CONN, r, -1, 0}, {MPROC_WAIT_QUEUE, j.q, -1, 0},
                             {MPROC_WAIT_FD, NULL, fds[0], 0}};
  assert_int_equal(mproc_wait(it, 3, 0.02), 0); /* nothing yet: timeout */
  mproc_process_t *p = spawn(body_send_later, &j);
  assert_true(mproc_wait(it, 3, 10) >= 1);
  assert_int_equal(it[1].ready, 1); /* the queue first (the pipe may be ready too by now) */
  char b[4];
  size_t n;
  assert_int_equal(mproc_queue_get(j.q, b, sizeof b, &n, 0), 0);
  assert_int_equal(mproc_wait(it, 3, 10), 1);
  assert_int_equal(it[0].ready, 1);
  assert_int_equal(mproc_conn_recv_bytes(r, b, sizeof b, &n, 0), 0);
  mproc_wait_item_t pw[2] = {{MPROC_WAIT_PROCESS, p, -1, 0}, {MPROC_WAIT_CONN, r, -1, 0}};
  assert_true(mproc_wait(pw, 2, 10) >= 1); /* the child ends (its pipe end closes with it) */
  assert_int_equal(pw[0].ready, 1);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(mproc_wait(it, 3, 1), 1);
  assert_int_equal(it[2].ready, 1);
  close(fds[0]);
  close(fds[1]);
  /* bad items */
  mproc_wait_item_t bad = {99, NULL, -1, 0};
  assert_int_equal(mproc_wait(&bad, 1, 0), MPROC_EINVAL);
  assert_int_equal(mproc_wait(NULL, 1, 0), MPROC_EINVAL);
  assert_int_equal(mproc_wait(NULL, 0, 0), 0);
  assert_int_equal(mproc_queue_free(j.q), 0);
  mproc_wait_item_t freed = {MPROC_WAIT_QUEUE, j.q, -1, 0};
  assert_int_equal(mproc_wait(&freed, 1, 0), MPROC_EBADF);
  assert_int_equal(mproc_conn_free(r), 0);
  assert_int_equal(mproc_conn_free(j.w), 0);
}

/* A timed send: MPROC_ETIMEDOUT with nothing sent while the pipe is full, never half a message;
 * a message longer than the ring streams to a live reader. */
static void test_pipe_send_timeout(void **state) {
  (void)state;
  mproc_conn_t *ends[2];
  assert_int_equal(mproc_pipe(&ends[0], &ends[1], 1), 0);
  char kib[1024];
  int sent = 0;
  for (;; sent++) {
    memset(kib, sent & 0xff, sizeof kib);
    int rc = mproc_conn_send_bytes_timeout(ends[0], kib, sizeof kib, 0);
    if (rc == MPROC_ETIMEDOUT) break;
    assert_int_equal(rc, 0);
    assert_true(sent < 1024); /* the ring is 256 KiB: it must fill */
  }
  assert_true(sent > 100);
  assert_non_null(strstr(mproc_last_error(), "mproc_conn_send_bytes_timeout: no room"));
  assert_int_equal(mproc_conn_send_bytes_timeout(ends[0], kib, sizeof kib, 0.02), MPROC_ETIMEDOUT);
  /* Make room for a few KiB only: a 200 KiB message still finds no room for all of it. */
  size_t n;
  for (int i = 0; i < 8; i++) assert_int_equal(mproc_conn_recv_bytes(ends[1], kib, sizeof kib, &n, 0), 0);
  size_t big_len = (size_t)200 << 10;
  unsigned char *big = malloc(big_len);
  for (size_t i = 0; i < big_len; i++) big[i] = (unsigned char)(i * 13);
  assert_int_equal(mproc_conn_send_bytes_timeout(ends[0], big, big_len, 0.01), MPROC_ETIMEDOUT);
  /* Everything that was sent arrives whole and in order, and nothing of the refused message. */
  for (int i = 8; i < sent; i++) {
    assert_int_equal(mproc_conn_recv_bytes(ends[1], kib, sizeof kib, &n, 0), 0);
    assert_int_equal(n, sizeof kib);
    assert_int_equal((unsigned char)kib[0], i & 0xff);
    assert_int_equal((unsigned char)kib[sizeof kib - 1], i & 0xff);
  }
  assert_int_equal(mproc_conn_poll(ends[1], 0), 0);
  /* Now it fits. */
  assert_int_equal(mproc_conn_send_bytes_timeout(ends[0], big, big_len, 1), 0);
  void *r = NULL;
  assert_int_equal(mproc_conn_recv_bytes_alloc(ends[1], &r, &n, 1), 0);
  assert_int_equal(n, big_len);
  assert_memory_equal(r, big, big_len);
  free(r);
  free(big);
  /* Longer than the ring, to an echo child: it streams whatever the timeout. */
  mproc_process_t *p = spawn(body_echo, ends);
  assert_int_equal(mproc_conn_close(ends[1]), 0);
  size_t huge_len = (size_t)3 << 20;
  unsigned char *huge = malloc(huge_len);
  for (size_t i = 0; i < huge_len; i++) huge[i] = (unsigned char)(i * 31 + 1);
  assert_int_equal(mproc_conn_send_bytes_timeout(ends[0], huge, huge_len, 0), 0);
  assert_int_equal(mproc_conn_recv_bytes_alloc(ends[0], &r, &n, 20), 0);
  assert_int_equal(n, huge_len);
  assert_memory_equal(r, huge, huge_len);
  free(r);
  free(huge);
  assert_int_equal(mproc_conn_close(ends[0]), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_conn_free(ends[0]), 0);
  assert_int_equal(mproc_conn_free(ends[1]), 0);
}

static void test_pipe_bad_input(void **state) {
  (void)state;
  mproc_conn_t *a = NULL, *b = NULL;
  assert_int_equal(mproc_pipe(NULL, &b, 1), MPROC_EINVAL);
  assert_int_equal(mproc_pipe(&a, &b, 1), 0);
  char buf[4];
  size_t n;
  assert_int_equal(mproc_conn_send_bytes(a, NULL, 3), MPROC_EINVAL);
  assert_int_equal(mproc_conn_recv_bytes(b, NULL, 3, &n, 0), MPROC_EINVAL);
  assert_int_equal(mproc_conn_recv_bytes(b, buf, sizeof buf, NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_conn_send_bytes(NULL, "x", 1), MPROC_EINVAL);
  assert_int_equal(mproc_conn_send_bytes_timeout(NULL, "x", 1, 0), MPROC_EINVAL);
  assert_int_equal(mproc_conn_send_bytes_timeout(a, NULL, 3, 0), MPROC_EINVAL);
  assert_int_equal(mproc_conn_send_bytes_timeout(a, "x", 1, 0.0 / 0.0), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "timeout is NaN"));
  mproc_wait_item_t it = {MPROC_WAIT_CONN, b, -1, 0};
  assert_int_equal(mproc_wait(&it, SIZE_MAX, 0), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_wait: n is"));
  assert_int_equal(mproc_conn_close(a), 0);
  assert_int_equal(mproc_conn_send_bytes(a, "x", 1), MPROC_ECLOSED);
  assert_int_equal(mproc_conn_send_bytes_timeout(a, "x", 1, 1), MPROC_ECLOSED);
  assert_int_equal(mproc_conn_recv_bytes(a, buf, sizeof buf, &n, 0), MPROC_ECLOSED);
  assert_int_equal(mproc_conn_fileno(a), MPROC_ECLOSED);
  assert_int_equal(mproc_conn_socket(a), MPROC_ECLOSED);
  assert_int_equal(mproc_conn_free(a), 0);
  assert_int_equal(mproc_conn_send_bytes(a, "x", 1), MPROC_EBADF); /* freed */
  assert_int_equal(mproc_conn_free(a), MPROC_EBADF);
  assert_int_equal(mproc_conn_free(b), 0);
  assert_int_equal(mproc_conn_free(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(pipe, duplex_round_trips),
      TEST(pipe, one_way),
      TEST(pipe, small_buffer_keeps_message),
      TEST(pipe, poll_and_timeout),
      TEST(pipe, peer_closed_is_epipe),
      TEST(pipe, fileno_is_pollable),
      TEST(pipe, idle_receiver_uses_no_cpu),
      TEST(pipe, many_round_trips_in_order),
      TEST(pipe, wait_on_several_objects),
      TEST(pipe, send_timeout),
      TEST(pipe, bad_input),
  };
  return tu_run("pipe", tests);
}
