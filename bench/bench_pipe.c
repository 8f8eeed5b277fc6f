/* Pipe (mproc_pipe) latency and throughput between two processes, mproc only: a quick check of
 * the pipe's ring for a before/after comparison of a change (bench_queue compares pipes with
 * their peers). Each case runs kRounds times and prints its median and its rounds.
 *   round trip of an 8-byte message (a child echoes it)
 *   one-way stream of 64 B, 4 KiB and 1 MiB messages (a child receives and counts)
 * Usage: bench_pipe [scale]   (scale multiplies the message counts; default 1) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#include "bench_util.h"

enum { kRounds = 5 };

static void die(const char *what) {
  fprintf(stderr, "bench_pipe: %s: %s\n", what, mproc_last_error());
  exit(1);
}

/* The child: echo (mode 0) or take and drop (mode 1) until the other end closes. */
struct peer {
  mproc_conn_t *e[2];
  int echo;
};

static int peer_main(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct peer *p = payload;
  mproc_conn_close(p->e[0]); /* else our own copy of the parent's end hides its close */
  size_t cap = (size_t)2 << 20, n;
  char *b = malloc(cap);
  while (mproc_conn_recv_bytes(p->e[1], b, cap, &n, -1) == 0)
    if (p->echo && mproc_conn_send_bytes(p->e[1], b, n)) return 1;
  free(b);
  return 0;
}

static mproc_process_t *start_peer(struct peer *p, int echo) {
  p->echo = echo;
  if (mproc_pipe(&p->e[0], &p->e[1], 1)) die("pipe");
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = MPROC_START_FORK;
  o.payload = p;
  mproc_process_t *c;
  if (mproc_process_new(&c, peer_main, NULL, 0, &o) || mproc_process_start(c)) die("start");
  return c;
}

static void stop_peer(struct peer *p, mproc_process_t *c) {
  mproc_conn_close(p->e[0]);
  if (mproc_process_join(c, -1)) die("join");
  mproc_process_free(c);
  mproc_conn_free(p->e[0]);
  mproc_conn_free(p->e[1]);
}

static double rtt_us(long count) {
  struct peer p;
  mproc_process_t *c = start_peer(&p, 1);
  char b[64];
  size_t n;
  for (int warm = 0; warm < 100; warm++)
    if (mproc_conn_send_bytes(p.e[0], "12345678", 8) || mproc_conn_recv_bytes(p.e[0], b, sizeof b, &n, -1))
      die("round trip");
  double t0 = now();
  for (long i = 0; i < count; i++)
    if (mproc_conn_send_bytes(p.e[0], "12345678", 8) || mproc_conn_recv_bytes(p.e[0], b, sizeof b, &n, -1))
      die("round trip");
  double us = (now() - t0) / (double)count * 1e6;
  stop_peer(&p, c);
  return us;
}

/* Messages a second for `count` messages of `size` bytes, until the child took them all (it
 * ends when it finds the ring empty after our end closed). */
static double stream_rate(size_t size, long count) {
  struct peer p;
  mproc_process_t *c = start_peer(&p, 0);
  char *buf = calloc(1, size);
  double t0 = now();
  for (long i = 0; i < count; i++)
    if (mproc_conn_send_bytes(p.e[0], buf, size)) die("send");
  mproc_conn_close(p.e[0]);
  if (mproc_process_join(c, -1)) die("join");
  double secs = now() - t0;
  mproc_process_free(c);
  mproc_conn_free(p.e[0]);
  mproc_conn_free(p.e[1]);
  free(buf);
  return (double)count / secs;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, const char *unit, double *v) {
  double s[kRounds];
  memcpy(s, v, sizeof s);
  qsort(s, kRounds, sizeof *s, cmp);
  printf("%-24s median %12.2f %-6s rounds:", name, s[kRounds / 2], unit);
  for (int i = 0; i < kRounds; i++) printf(" %.2f", v[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
#define N(x) ((long)((x) * scale) + 10)
  double v[4][kRounds];
  for (int r = 0; r < kRounds; r++) {
    v[0][r] = rtt_us(N(20000));
    v[1][r] = stream_rate(64, N(400000)) / 1e6;
    v[2][r] = stream_rate(4096, N(100000)) / 1e6;
    v[3][r] = stream_rate((size_t)1 << 20, N(400));
  }
  report("pipe round trip 8 B", "us", v[0]);
  report("pipe stream 64 B", "M/s", v[1]);
  report("pipe stream 4 KiB", "M/s", v[2]);
  report("pipe stream 1 MiB", "msg/s", v[3]);
  return 0;
}
