/* Queue and pipe throughput / latency, each case beside its peers in the same run (mproc and the
 * C peers take turns, kRounds times, and each prints its median: the machine's load changes
 * from second to second and would otherwise favour whoever ran in a quiet moment):
 *   mproc Queue (copying put/get), Boost.Interprocess message_queue (bench_queue_boost next to
 *   this binary, built only when CMake found Boost; else "n/a"), a raw pipe(2) in C, Python
 *   multiprocessing.Queue/SimpleQueue/Pipe (through bench_queue.py next to this file; skipped if
 *   python3 is missing), and for one producer and one consumer a bare ring: the machine's
 *   ceiling for this ring size and record layout (see bare_rate).
 * Prints one line per case with the ratios mproc/peer (> 1: mproc is faster).
 * usage: bench_queue [scale]   (scale multiplies the message counts; default 1)
 *        bench_queue scale small|small2 [rounds]   (1->1 / 2->2 8 B only; see small_case) */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_queue: %s: %s\n", what, mproc_last_error());
  exit(1);
}

static mproc_process_t *spawn(mproc_process_fn fn, void *payload, int arg) {
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.payload = payload;
  mproc_process_t *p;
  if (mproc_process_new(&p, fn, &arg, sizeof arg, &o) || mproc_process_start(p)) die("spawn");
  return p;
}

/* Join a worker; a worker that failed (e.g. a get that returned an error) voids the bench. */
static void join(mproc_process_t *p) {
  int code = -1;
  if (mproc_process_join(p, -1) || mproc_process_exitcode(p, &code) || code != 0) {
    fprintf(stderr, "bench_queue: a worker failed (exit code %d)\n", code);
    exit(1);
  }
  mproc_process_free(p);
}

struct bare;

struct job {
  mproc_queue_t *q;
  int fds[2];
  size_t size;
  long count; /* per producer / consumer */
  struct bare *bare;
};

static int q_producer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  char *m = calloc(1, j->size ? j->size : 1);
  for (long i = 0; i < j->count; i++)
    if (mproc_queue_put(j->q, m, j->size, -1)) return 1;
  free(m);
  return 0;
}

static int q_consumer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  char *m = malloc(j->size ? j->size : 1);
  size_t n;
  for (long i = 0; i < j->count; i++)
    if (mproc_queue_get(j->q, m, j->size, &n, -1)) return 1;
  free(m);
  return 0;
}

/* messages per second through an mproc queue with np producers and as many consumers */
static double mproc_rate(size_t size, long count, int np) {
  struct job j = {NULL, {-1, -1}, size, count / np, NULL};
  if (mproc_queue_new(&j.q, NULL)) die("queue");
  mproc_process_t *ps[8];
  double t0 = now();
  for (int i = 0; i < np; i++) ps[i] = spawn(q_consumer, &j, i);
  for (int i = 0; i < np; i++) ps[np + i] = spawn(q_producer, &j, i);
  for (int i = 0; i < 2 * np; i++) join(ps[i]);
  double dt = now() - t0;
  mproc_queue_free(j.q);
  return (double)(j.count * np) / dt;
}

static int full_io(int fd, char *b, size_t n, int wr) {
  while (n) {
    ssize_t k = wr ? write(fd, b, n) : read(fd, b, n);
    if (k <= 0) return -1;
    b += k, n -= (size_t)k;
  }
  return 0;
}

static int p_producer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  char *m = calloc(1, j->size);
  for (long i = 0; i < j->count; i++)
    if (full_io(j->fds[1], m, j->size, 1)) return 1;
  free(m);
  return 0;
}

static int p_consumer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  char *m = malloc(j->size);
  for (long i = 0; i < j->count; i++)
    if (full_io(j->fds[0], m, j->size, 0)) return 1;
  free(m);
  return 0;
}

/* the OS floor: one write() and one read() per message of a raw pipe (1 producer, 1 consumer;
 * with 2 of each, writes of <= PIPE_BUF bytes stay atomic) */
static double pipe_rate(size_t size, long count, int np) {
  struct job j = {NULL, {-1, -1}, size, count / np, NULL};
  if (pipe(j.fds)) die("pipe");
  mproc_process_t *ps[8];
  double t0 = now();
  for (int i = 0; i < np; i++) ps[i] = spawn(p_consumer, &j, i);
  for (int i = 0; i < np; i++) ps[np + i] = spawn(p_producer, &j, i);
  for (int i = 0; i < 2 * np; i++) join(ps[i]);
  double dt = now() - t0;
  close(j.fds[0]);
  close(j.fds[1]);
  return (double)(j.count * np) / dt;
}

/* The machine's ceiling for one producer and one consumer: a bare single-producer
 * single-consumer ring in shared memory, of mproc's default size (2 MiB) and record layout (an
 * 8-byte header, the payload padded to 8), each side caching the other's position. No locks, no
 * crash safety, no sleeping (both sides spin), one producer and one consumer only: what is left
 * is the copying and the cache-line transfers between the two cores. */
enum { kBareCap = 2 << 20 };

struct bare {
  _Alignas(64) _Atomic uint64_t tail;
  _Alignas(64) _Atomic uint64_t head;
  _Alignas(64) unsigned char data[kBareCap];
};

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void bare_in(unsigned char *d, uint64_t pos, const void *src, size_t n) {
  size_t off = (size_t)(pos & (kBareCap - 1)), first = n < kBareCap - off ? n : kBareCap - off;
  memcpy(d + off, src, first);
  memcpy(d, (const char *)src + first, n - first);
}

static void bare_out(const unsigned char *d, uint64_t pos, void *dst, size_t n) {
  size_t off = (size_t)(pos & (kBareCap - 1)), first = n < kBareCap - off ? n : kBareCap - off;
  memcpy(dst, d + off, first);
  memcpy((char *)dst + first, d, n - first);
}

static int b_producer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  struct bare *b = j->bare;
  const uint64_t rec = 8 + ((j->size + 7) & ~(uint64_t)7);
  char *m = calloc(1, j->size ? j->size : 1);
  uint64_t t = 0, hc = 0, hdr = j->size;
  for (long i = 0; i < j->count; i++) {
    while (t + rec - hc > kBareCap) {
      hc = atomic_load_explicit(&b->head, memory_order_acquire);
      if (t + rec - hc > kBareCap) relax();
    }
    bare_in(b->data, t, &hdr, 8);
    bare_in(b->data, t + 8, m, j->size);
    t += rec;
    atomic_store_explicit(&b->tail, t, memory_order_release);
  }
  free(m);
  return 0;
}

static int b_consumer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct job *j = payload;
  struct bare *b = j->bare;
  char *m = malloc(j->size ? j->size : 1);
  uint64_t hd = 0, tc = 0, n;
  for (long i = 0; i < j->count; i++) {
    while (tc == hd) {
      tc = atomic_load_explicit(&b->tail, memory_order_acquire);
      if (tc == hd) relax();
    }
    bare_out(b->data, hd, &n, 8);
    if (n != j->size) return 1;
    bare_out(b->data, hd + 8, m, (size_t)n);
    hd += 8 + ((n + 7) & ~(uint64_t)7);
    atomic_store_explicit(&b->head, hd, memory_order_release);
  }
  free(m);
  return 0;
}

static double bare_rate(size_t size, long count) {
  struct job j = {NULL, {-1, -1}, size, count, NULL};
  j.bare = mmap(NULL, sizeof *j.bare, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (j.bare == MAP_FAILED) die("mmap");
  double t0 = now();
  mproc_process_t *c = spawn(b_consumer, &j, 0), *p = spawn(b_producer, &j, 0);
  join(c);
  join(p);
  double dt = now() - t0;
  munmap(j.bare, sizeof *j.bare);
  return (double)count / dt;
}

static char g_dir[1024];

static double python(const char *args) {
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench_queue.py %s 2>/dev/null", g_dir, args);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  double v = -1;
  if (fscanf(f, "%lf", &v) != 1) v = -1;
  pclose(f);
  return v;
}

static char g_exe_dir[1024];

/* messages per second through Boost's message_queue, or -1 when its bench is not built */
static double boost_rate(size_t size, long count, int np) {
  char path[1100], cmd[1300];
  snprintf(path, sizeof path, "%s/bench_queue_boost", g_exe_dir);
  if (access(path, X_OK) != 0) return -1;
  snprintf(cmd, sizeof cmd, "%s %zu %ld %d", path, size, count, np);
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  double v = -1;
  if (fscanf(f, "%lf", &v) != 1) v = -1;
  if (pclose(f) != 0) v = -1;
  return v;
}

static int c_echo(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **e = payload;
  mproc_conn_close(e[0]); /* else our own copy of the parent's end hides its close */
  char b[64];
  size_t n;
  while (mproc_conn_recv_bytes(e[1], b, sizeof b, &n, -1) == 0)
    if (mproc_conn_send_bytes(e[1], b, n)) return 1;
  return 0;
}

static double conn_rtt_us(long count) {
  mproc_conn_t *e[2];
  if (mproc_pipe(&e[0], &e[1], 1)) die("pipe");
  mproc_process_t *p = spawn(c_echo, e, 0);
  char b[64];
  size_t n;
  double t0 = now();
  for (long i = 0; i < count; i++)
    if (mproc_conn_send_bytes(e[0], "12345678", 8) || mproc_conn_recv_bytes(e[0], b, sizeof b, &n, -1))
      die("rtt");
  double dt = now() - t0;
  mproc_conn_close(e[0]);
  join(p);
  mproc_conn_free(e[0]);
  mproc_conn_free(e[1]);
  return dt / (double)count * 1e6;
}

static int raw_echo(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  int *fds = payload; /* [0] read requests, [3] write replies */
  close(fds[1]); /* the parent's ends */
  close(fds[2]);
  char b[8];
  while (full_io(fds[0], b, 8, 0) == 0)
    if (full_io(fds[3], b, 8, 1)) return 1;
  return 0;
}

static double raw_rtt_us(long count) {
  int fds[4];
  if (pipe(fds) || pipe(fds + 2)) die("pipe");
  mproc_process_t *p = spawn(raw_echo, fds, 0);
  char b[8] = "1234567";
  double t0 = now();
  for (long i = 0; i < count; i++)
    if (full_io(fds[1], b, 8, 1) || full_io(fds[2], b, 8, 0)) die("raw rtt");
  double dt = now() - t0;
  close(fds[1]);
  join(p);
  close(fds[0]);
  close(fds[2]);
  close(fds[3]);
  return dt / (double)count * 1e6;
}

enum { kRounds = 3, kRttRounds = 5 };

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

static void ratio(const char *name, double m, double peer) {
  if (peer > 0) printf("  %-26s %8.2fx", name, m / peer);
  else printf("  %-26s %9s", name, "n/a");
}

static void rate_case(const char *label, size_t size, long count, int np, long pycount) {
  double mv[kRounds], bv[kRounds], rv[kRounds], xv[kRounds];
  for (int i = 0; i < kRounds; i++) {
    mv[i] = mproc_rate(size, count, np);
    bv[i] = boost_rate(size, count, np);
    rv[i] = pipe_rate(size, count / 4, np);
    xv[i] = np == 1 ? bare_rate(size, count) : -1;
  }
  double m = median(mv, kRounds), b = median(bv, kRounds), r = median(rv, kRounds);
  double x = median(xv, kRounds);
  char args[128];
  snprintf(args, sizeof args, "queue %zu %ld %d", size, pycount, np);
  double pq = python(args);
  snprintf(args, sizeof args, "simplequeue %zu %ld %d", size, pycount, np);
  double ps = python(args);
  double gb = (double)size / 1e9;
  printf("%-22s mproc %10.0f msg/s %7.2f GB/s | boost ", label, m, m * gb);
  if (b > 0) printf("%10.0f msg/s %7.2f GB/s", b, b * gb);
  else printf("%10s msg/s %7s GB/s", "n/a", "n/a");
  printf(" | raw pipe %9.0f msg/s | py Queue %8.0f | py SimpleQueue %8.0f", r, pq, ps);
  if (x > 0) printf(" | bare ring %10.0f msg/s", x);
  printf("\n");
  ratio("mproc/boost", m, b);
  ratio("mproc/raw pipe", m, r);
  ratio("mproc/py Queue", m, pq);
  ratio("mproc/py SimpleQueue", m, ps);
  if (x > 0) ratio("mproc/bare ring", m, x);
  printf("\n");
}

/* `bench_queue SCALE small [ROUNDS]`: only 1->1 8-byte messages, mproc and the bare ring in
 * turns, each round's pair and its ratio printed, then the medians (what docs/queue.md quotes).
 * `small2`: 2->2 8-byte messages, mproc only (the bare ring has one producer and one consumer). */
static void small_case(long count, int rounds, int np) {
  double mv[64], xv[64], rv[64];
  if (rounds < 1) rounds = 1;
  if (rounds > 64) rounds = 64;
  for (int i = 0; i < rounds; i++) {
    mv[i] = mproc_rate(8, count, np);
    if (np > 1) {
      printf("round %2d: %d->%d mproc %10.0f msg/s\n", i, np, np, mv[i]);
      continue;
    }
    xv[i] = bare_rate(8, count);
    rv[i] = mv[i] / xv[i];
    printf("round %2d: mproc %10.0f msg/s | bare ring %10.0f msg/s | mproc/bare ring %5.2fx\n", i,
           mv[i], xv[i], rv[i]);
  }
  double m = median(mv, rounds);
  if (np > 1) {
    printf("%d->%d, 8 B (%d rounds)   mproc %10.0f msg/s (median)\n", np, np, rounds, m);
    return;
  }
  double x = median(xv, rounds), r = median(rv, rounds);
  printf("1->1, 8 B (%d rounds)   mproc %10.0f msg/s | bare ring %10.0f msg/s | mproc/bare ring: "
         "%.2fx of the medians, median of the rounds' ratios %.2fx\n",
         rounds, m, x, m / x, r);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (scale <= 0) scale = 1.0;
  if (argc > 2 && (strcmp(argv[2], "small") == 0 || strcmp(argv[2], "small2") == 0)) {
    small_case((long)(2000000 * scale), argc > 3 ? atoi(argv[3]) : 9, argv[2][5] ? 2 : 1);
    mproc_shutdown();
    return 0;
  }
  snprintf(g_dir, sizeof g_dir, "%s", __FILE__);
  char *slash = strrchr(g_dir, '/');
  if (slash) *slash = 0;
  else strcpy(g_dir, ".");
#define N(x) ((long)((x) * scale))
  ssize_t k = readlink("/proc/self/exe", g_exe_dir, sizeof g_exe_dir - 1);
  g_exe_dir[k > 0 ? k : 0] = 0;
  slash = strrchr(g_exe_dir, '/');
  if (slash) *slash = 0;
  else strcpy(g_exe_dir, ".");
  char bpath[1100];
  snprintf(bpath, sizeof bpath, "%s/bench_queue_boost", g_exe_dir);
  printf("bench_queue: %d CPUs; Boost.Interprocess %s\n", mproc_cpu_count(),
         access(bpath, X_OK) == 0 ? "message_queue (bench_queue_boost)" : "not built: n/a");
  rate_case("1->1, 8 B", 8, N(2000000), 1, N(100000));
  rate_case("1->1, 64 KiB", 64 << 10, N(40000), 1, N(5000));
  rate_case("1->1, 1 MiB", 1 << 20, N(3000), 1, N(500));
  rate_case("2->2, 8 B", 8, N(2000000), 2, N(100000));
  double mv[kRttRounds], rv[kRttRounds];
  for (int i = 0; i < kRttRounds; i++) {
    mv[i] = conn_rtt_us(N(20000));
    rv[i] = raw_rtt_us(N(20000));
  }
  double m = median(mv, kRttRounds), r = median(rv, kRttRounds);
  char args[64];
  snprintf(args, sizeof args, "pipe_rtt %ld", N(10000));
  double py = python(args);
  printf("%-22s mproc %8.2f us | raw pipe %8.2f us | py Pipe %8.2f us   (mproc rounds:", "pipe round trip", m, r, py);
  for (int i = 0; i < kRttRounds; i++) printf(" %.2f", mv[i]);
  printf(")\n");
  ratio("raw pipe/mproc", r, m);
  ratio("py Pipe/mproc", py, m);
  printf("\n");
  mproc_shutdown();
  return 0;
}
