/* The pool over MPI ranks: run as `mpirun -n 3 mpi_pool <case>`. Rank 0 runs the case; the other
 * ranks are its workers (mproc_mpi_init does not return on them). Exit status 0: the case held;
 * every failed check prints what it saw. The same checks run on a local pool with
 * `mpi_pool <case> local` (no mpirun), which shows the program is the same for both backends. */
#include <mproc.h>
#include <mproc/backend.h>
#include <mproc/mpi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_failed;
#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, mproc_last_error());                                             \
      g_failed = 1;                                                                   \
    }                                                                                 \
  } while (0)
#define CHECK_EQ(a, b)                                                                          \
  do {                                                                                          \
    long long a_ = (long long)(a), b_ = (long long)(b);                                         \
    if (a_ != b_) {                                                                             \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld (last error: %s)\n", __FILE__, __LINE__, \
              #a, a_, b_, mproc_last_error());                                                  \
      g_failed = 1;                                                                             \
    }                                                                                           \
  } while (0)

/* ---- the tasks (registered by name in every rank) ---- */
static int square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  int x;
  if (len != sizeof x) return mproc_task_fail(ctx, 2, "want an int, got %zu bytes", len);
  memcpy(&x, arg, sizeof x);
  long long r = (long long)x * x;
  return mproc_task_return(ctx, &r, sizeof r);
}

static int safe_divide(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload, (void)len;
  int ab[2];
  memcpy(ab, arg, sizeof ab);
  if (ab[1] == 0) return mproc_task_fail(ctx, 7, "division by zero: %d / 0", ab[0]);
  int q = ab[0] / ab[1];
  return mproc_task_return(ctx, &q, sizeof q);
}

/* Which rank (process) ran it, and a result of any size. */
static int whoami(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload, (void)arg, (void)len;
  int r[2] = {getpid(), mproc_task_worker(ctx)};
  return mproc_task_return(ctx, r, sizeof r);
}

static int big(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  /* echoes its (large) argument reversed */
  char *out = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) out[i] = ((const char *)arg)[len - 1 - i];
  int rc = mproc_task_return(ctx, out, len);
  free(out);
  return rc;
}

static int die(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)arg, (void)len, (void)payload;
  kill(getpid(), SIGKILL);
  return 0;
}

static int cube_elem(const void *in, void *out, void *payload) {
  (void)payload;
  double x = *(const double *)in;
  if (x < 0) return 5;
  *(double *)out = x * x * x;
  return 0;
}

static int g_init_seen;
static int init_worker(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)payload;
  if (len != sizeof(int)) return mproc_task_fail(ctx, 3, "bad init arg");
  memcpy(&g_init_seen, arg, sizeof(int));
  return 0;
}
static int init_fails(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_fail(ctx, 9, "this initializer always fails");
}
static int read_init(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return mproc_task_return(ctx, &g_init_seen, sizeof g_init_seen);
}

static int not_registered(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)arg, (void)len, (void)payload;
  return 0;
}

static const char *g_backend = "mpi";

static mproc_pool_t *make_pool(int workers) {
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = workers;
  o.backend = g_backend;
  mproc_pool_t *p = NULL;
  int rc = mproc_pool_new(&p, &o);
  CHECK_EQ(rc, 0);
  return p;
}

/* ---- the cases ---- */
static void case_apply(void) {
  mproc_pool_t *p = make_pool(0);
  if (!p) return;
  if (strcmp(g_backend, "mpi") == 0) CHECK_EQ(mproc_pool_workers(p), mproc_mpi_size() - 1);
  for (int x = -3; x < 50; x++) {
    void *out = NULL;
    size_t n = 0;
    CHECK_EQ(mproc_pool_apply(p, square, &x, sizeof x, &out, &n), 0);
    CHECK_EQ(n, sizeof(long long));
    if (out) CHECK_EQ(*(long long *)out, (long long)x * x);
    free(out);
  }
  /* a task failure comes back with its code and message */
  int ab[2] = {1, 0};
  void *out = NULL;
  size_t n = 0;
  CHECK_EQ(mproc_pool_apply(p, safe_divide, ab, sizeof ab, &out, &n), MPROC_ETASKFAILED);
  CHECK(strstr(mproc_last_error(), "division by zero: 1 / 0") != NULL);
  free(out);
  /* async with a large argument and result (4 MiB: MPI's rendezvous protocol) */
  size_t blen = 4u << 20;
  char *buf = malloc(blen);
  for (size_t i = 0; i < blen; i++) buf[i] = (char)(i * 7);
  mproc_async_t *r = NULL;
  CHECK_EQ(mproc_pool_apply_async(p, big, buf, blen, NULL, &r), 0);
  const void *data = NULL;
  size_t dlen = 0;
  CHECK_EQ(mproc_async_get(r, 60, &data, &dlen), 0);
  CHECK_EQ(dlen, blen);
  int same = 1;
  for (size_t i = 0; data && i < blen; i++) same &= ((const char *)data)[i] == buf[blen - 1 - i];
  CHECK(same);
  mproc_async_free(r);
  free(buf);
  /* an unregistered function is refused at submission, clearly */
  int x = 1;
  CHECK_EQ(mproc_pool_apply(p, not_registered, &x, sizeof x, NULL, NULL),
           strcmp(g_backend, "mpi") == 0 ? MPROC_EINVAL : 0);
  if (strcmp(g_backend, "mpi") == 0) CHECK(strstr(mproc_last_error(), "not registered") != NULL);
  /* task timeouts are not available on ranks */
  mproc_async_opts_t ao = MPROC_ASYNC_OPTS_INIT;
  ao.timeout = 1;
  r = NULL;
  int trc = mproc_pool_apply_async(p, square, &x, sizeof x, &ao, &r);
  CHECK_EQ(trc, strcmp(g_backend, "mpi") == 0 ? MPROC_ENOSYS : 0);
  if (r) mproc_async_free(r);
  /* one MPI pool at a time */
  if (strcmp(g_backend, "mpi") == 0) {
    mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
    o.backend = "mpi";
    mproc_pool_t *q = NULL;
    CHECK_EQ(mproc_pool_new(&q, &o), MPROC_EBUSY);
  }
  CHECK_EQ(mproc_pool_close(p), 0);
  CHECK_EQ(mproc_pool_join(p, 60), 0);
  CHECK_EQ(mproc_pool_free(p), 0);
  /* after it, another pool may use the ranks */
  p = make_pool(1);
  if (!p) return;
  CHECK_EQ(mproc_pool_workers(p), 1);
  x = 12;
  void *o2 = NULL;
  CHECK_EQ(mproc_pool_apply(p, square, &x, sizeof x, &o2, &n), 0);
  if (o2) CHECK_EQ(*(long long *)o2, 144);
  free(o2);
  CHECK_EQ(mproc_pool_free(p), 0);
}

static void case_map_errors(void) {
  mproc_pool_t *p = make_pool(0);
  if (!p) return;
  enum { N = 200 };
  int pairs[N][2];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    pairs[i][0] = 1000 + i;
    pairs[i][1] = (i == 57 || i == 123) ? 0 : i % 9 + 1;
    args[i] = pairs[i];
    lens[i] = sizeof pairs[i];
  }
  mproc_async_t *r = NULL;
  CHECK_EQ(mproc_pool_map(p, safe_divide, args, lens, N, 7, &r), MPROC_ETASKFAILED);
  CHECK(r != NULL);
  if (r) {
    int tcode = 0;
    size_t idx = 0;
    const char *msg = NULL;
    CHECK_EQ(mproc_async_error(r, &tcode, &idx, &msg), MPROC_ETASKFAILED);
    CHECK_EQ(idx, 57);
    CHECK_EQ(tcode, 7);
    CHECK(msg && strstr(msg, "division by zero: 1057 / 0") != NULL);
    for (size_t i = 0; i < N; i++) {
      const void *d = NULL;
      size_t dl = 0;
      int rc = mproc_async_item(r, i, &d, &dl);
      if (i == 57 || i == 123) {
        CHECK_EQ(rc, MPROC_ETASKFAILED);
      } else {
        CHECK_EQ(rc, 0);
        CHECK_EQ(dl, sizeof(int));
        if (d) CHECK_EQ(*(const int *)d, pairs[i][0] / pairs[i][1]);
      }
    }
    mproc_async_free(r);
  }
  /* the copy-free fixed-size map, and its failing element */
  enum { M = 10000 };
  static double in[M], out[M];
  for (int i = 0; i < M; i++) in[i] = i % 17;
  size_t failed = 0;
  CHECK_EQ(mproc_pool_map_fixed(p, cube_elem, in, sizeof(double), out, sizeof(double), M, 0, &failed), 0);
  int ok = 1;
  for (int i = 0; i < M; i++) ok &= out[i] == in[i] * in[i] * in[i];
  CHECK(ok);
  in[4321] = -1;
  CHECK_EQ(mproc_pool_map_fixed(p, cube_elem, in, sizeof(double), out, sizeof(double), M, 100, &failed),
           MPROC_ETASKFAILED);
  CHECK_EQ(failed, 4321);
  /* every worker rank took part */
  enum { K = 64 };
  const void *wa[K];
  size_t wl[K];
  for (int i = 0; i < K; i++) wa[i] = NULL, wl[i] = 0;
  r = NULL;
  CHECK_EQ(mproc_pool_map(p, whoami, wa, wl, K, 1, &r), 0);
  if (r) mproc_async_free(r);
  mproc_worker_stats_t st[8];
  int nw = mproc_pool_stats(p, st, 8);
  CHECK_EQ(nw, mproc_pool_workers(p));
  unsigned long long total = 0;
  for (int i = 0; i < nw && i < 8; i++) total += st[i].tasks;
  CHECK(total >= K);
  CHECK_EQ(mproc_pool_free(p), 0);
}

static void case_imap_order(void) {
  mproc_pool_t *p = make_pool(0);
  if (!p) return;
  enum { N = 300 };
  int xs[N];
  const void *args[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) xs[i] = i, args[i] = &xs[i], lens[i] = sizeof(int);
  for (int ordered = 1; ordered >= 0; ordered--) {
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    o.chunksize = 3;
    mproc_async_t *it = NULL;
    CHECK_EQ(mproc_pool_imap(p, square, args, lens, N, ordered, &o, &it), 0);
    if (!it) continue;
    static int seen[N];
    memset(seen, 0, sizeof seen);
    size_t count = 0, idx = 0;
    const void *d;
    size_t dl;
    int rc;
    while ((rc = mproc_async_next(it, 30, &idx, &d, &dl)) == 0) {
      if (ordered) CHECK_EQ(idx, count);
      CHECK(idx < N);
      if (idx < N) {
        seen[idx]++;
        CHECK_EQ(*(const long long *)d, (long long)idx * idx);
      }
      count++;
    }
    CHECK_EQ(rc, MPROC_EITEREND);
    CHECK_EQ(count, N);
    for (int i = 0; i < N; i++) CHECK_EQ(seen[i], 1);
    mproc_async_free(it);
  }
  CHECK_EQ(mproc_pool_free(p), 0);
}

static void case_init(void) {
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.backend = g_backend;
  int seed = 4242;
  o.initializer = init_worker;
  o.init_arg = &seed;
  o.init_arg_len = sizeof seed;
  mproc_pool_t *p = NULL;
  CHECK_EQ(mproc_pool_new(&p, &o), 0);
  if (p) {
    for (int k = 0; k < 8; k++) {
      void *out = NULL;
      size_t n = 0;
      CHECK_EQ(mproc_pool_apply(p, read_init, NULL, 0, &out, &n), 0);
      if (out) CHECK_EQ(*(int *)out, 4242);
      free(out);
    }
    CHECK_EQ(mproc_pool_free(p), 0);
  }
  /* an initializer that fails stops the pool with MPROC_EINITFAILED, and the ranks serve on */
  o.initializer = init_fails;
  p = NULL;
  CHECK_EQ(mproc_pool_new(&p, &o), 0);
  if (p) {
    int x = 3;
    int rc = mproc_pool_apply(p, square, &x, sizeof x, NULL, NULL);
    CHECK(rc == MPROC_EINITFAILED);
    CHECK(strstr(mproc_last_error(), "this initializer always fails") != NULL);
    CHECK_EQ(mproc_pool_free(p), 0);
  }
  o.initializer = NULL;
  p = NULL;
  CHECK_EQ(mproc_pool_new(&p, &o), 0);
  if (p) {
    int x = 5;
    void *out = NULL;
    size_t n = 0;
    CHECK_EQ(mproc_pool_apply(p, square, &x, sizeof x, &out, &n), 0);
    if (out) CHECK_EQ(*(long long *)out, 25);
    free(out);
    CHECK_EQ(mproc_pool_free(p), 0);
  }
}

/* A worker rank is killed during a task: Open MPI ends the job; rank 0 says what ran where. */
static void case_kill(void) {
  mproc_pool_t *p = make_pool(0);
  if (!p) return;
  int x = 1;
  mproc_pool_apply(p, die, &x, sizeof x, NULL, NULL);
  fprintf(stderr, "the job was expected to end\n");
  g_failed = 1;
}

/* mproc_mpi_start + mproc_mpi_transport, as a binding with its own core uses them: rank 0
 * registers the transport itself, rank 1 serves it itself, rank 2 never serves and answers rank
 * 0's release in mproc_mpi_finalize. A worker rank's failed check fails its exit status. */
static void case_start(int *argc, char ***argv) {
  mproc_transport_t t;
  CHECK_EQ(mproc_mpi_transport(&t), MPROC_EINVAL); /* before start */
  CHECK_EQ(mproc_mpi_start(argc, argv), 0);
  CHECK_EQ(mproc_mpi_start(argc, argv), 0);        /* again: a no-op */
  CHECK_EQ(mproc_mpi_transport(NULL), MPROC_EINVAL);
  CHECK_EQ(mproc_mpi_transport(&t), 0);
  CHECK(strcmp(t.name, "mpi") == 0);
  int rank = mproc_mpi_rank();
  if (rank != 0) {
    CHECK_EQ(t.nworkers, 0);
    CHECK_EQ(mproc_mpi_worker_pid(0), MPROC_EINVAL); /* rank 0's books only */
    if (rank == 1) CHECK_EQ(mproc_backend_serve(&t, 0, NULL), 0);
    CHECK_EQ(mproc_mpi_finalize(), 0);
    CHECK_EQ(mproc_mpi_transport(&t), MPROC_ECLOSED);
    exit(g_failed);
  }
  CHECK_EQ(mproc_mpi_size(), 3);
  CHECK_EQ(t.nworkers, 2);
  CHECK_EQ(mproc_mpi_worker_pid(2), MPROC_EINVAL);
  CHECK_EQ(mproc_backend_register(&t), 0);
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.backend = "mpi";
  o.workers = 1; /* rank 1 only */
  mproc_pool_t *p = NULL;
  CHECK_EQ(mproc_pool_new(&p, &o), 0);
  if (p) {
    int who[2] = {0, -1};
    void *out = NULL;
    size_t len = 0;
    CHECK_EQ(mproc_pool_apply(p, whoami, NULL, 0, &out, &len), 0);
    if (out && len == sizeof who) memcpy(who, out, sizeof who);
    free(out);
    CHECK(who[0] != getpid() && who[1] == 0);
    CHECK_EQ(mproc_mpi_worker_pid(0), who[0]); /* said at start, before any result */
    int x = 12;
    long long sq = 0;
    CHECK_EQ(mproc_pool_apply(p, square, &x, sizeof x, &out, &len), 0);
    if (out && len == sizeof sq) memcpy(&sq, out, sizeof sq);
    free(out);
    CHECK_EQ(sq, 144);
    CHECK_EQ(mproc_pool_free(p), 0);
  }
  CHECK_EQ(mproc_backend_unregister("mpi"), 0);
  CHECK_EQ(mproc_mpi_finalize(), 0);
  CHECK_EQ(mproc_mpi_finalize(), 0); /* again: a no-op */
  CHECK_EQ(mproc_mpi_transport(&t), MPROC_ECLOSED);
  CHECK_EQ(mproc_mpi_start(argc, argv), MPROC_ECLOSED);
}

int main(int argc, char **argv) {
  if (argc > 2) g_backend = argv[2];
  CHECK_EQ(mproc_task_register("square", square), 0);
  CHECK_EQ(mproc_task_register("safe_divide", safe_divide), 0);
  CHECK_EQ(mproc_task_register("whoami", whoami), 0);
  CHECK_EQ(mproc_task_register("big", big), 0);
  CHECK_EQ(mproc_task_register("die", die), 0);
  CHECK_EQ(mproc_elem_register("cube", cube_elem), 0);
  CHECK_EQ(mproc_init_register("init_worker", init_worker), 0);
  CHECK_EQ(mproc_init_register("init_fails", init_fails), 0);
  CHECK_EQ(mproc_task_register("read_init", read_init), 0);
  /* registration errors */
  CHECK_EQ(mproc_task_register("square", square), 0); /* again: a no-op */
  CHECK_EQ(mproc_task_register("square", whoami), MPROC_EEXIST);
  CHECK_EQ(mproc_task_register("other", square), MPROC_EEXIST);
  CHECK_EQ(mproc_task_register("", square), MPROC_EINVAL);
  CHECK_EQ(mproc_task_register(NULL, square), MPROC_EINVAL);
  CHECK_EQ(mproc_task_register("x", NULL), MPROC_EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK_EQ(mproc_task_register(longname, not_registered), MPROC_ENAMETOOLONG);
  CHECK(mproc_task_name((const void *)square) && strcmp(mproc_task_name((const void *)square), "square") == 0);
  CHECK(mproc_task_name((const void *)not_registered) == NULL);

  if (argc > 1 && strcmp(argv[1], "start") == 0) {
    case_start(&argc, &argv);
    printf("start mpi: %s\n", g_failed ? "FAILED" : "ok");
    return g_failed;
  }
  if (strcmp(g_backend, "mpi") == 0) {
    CHECK_EQ(mproc_mpi_init(&argc, &argv), 0);  /* returns on rank 0 only */
    CHECK_EQ(mproc_mpi_rank(), 0);
  }
  const char *which = argc > 1 ? argv[1] : "apply";
  if (strcmp(which, "apply") == 0) case_apply();
  else if (strcmp(which, "map_errors") == 0) case_map_errors();
  else if (strcmp(which, "imap_order") == 0) case_imap_order();
  else if (strcmp(which, "init") == 0) case_init();
  else if (strcmp(which, "kill") == 0) case_kill();
  else if (strcmp(which, "no_ranks") == 0) {
    /* a job of one rank: the "mpi" backend is not there, and says why */
    mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
    o.backend = "mpi";
    mproc_pool_t *p = NULL;
    CHECK_EQ(mproc_pool_new(&p, &o), MPROC_ENOENT);
    CHECK(strstr(mproc_last_error(), "mproc_mpi_init") != NULL);
  } else {
    fprintf(stderr, "unknown case %s\n", which);
    return 2;
  }
  if (strcmp(g_backend, "mpi") == 0) CHECK_EQ(mproc_mpi_finalize(), 0);
  printf("%s %s: %s\n", which, g_backend, g_failed ? "FAILED" : "ok");
  return g_failed;
}
