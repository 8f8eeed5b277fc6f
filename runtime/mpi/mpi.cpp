// libmproc-mpi: a pool transport (mproc/backend.h) over MPI point-to-point messages.
//
// Rank 0 is the caller: its pool's dispatcher sends each chunk to a worker rank with a
// non-blocking send (the chunk is copied first, so the dispatcher never waits for a busy rank)
// and takes results with matched probes. Worker ranks run mproc_backend_serve(): they wait for
// the next message by probing, spinning briefly and then sleeping in growing steps, so an idle
// rank uses no CPU (oversubscribed jobs share cores with rank 0). All traffic runs on a
// duplicate of MPI_COMM_WORLD: the program's own MPI messages never meet the pool's.
//
// Failure: Open MPI ends the job when a rank dies; mpirun sends SIGTERM to the others. Rank 0
// keeps, for each worker rank, what it sent and has not had answered (a small ring of texts),
// and its SIGTERM handler prints what each rank was running before the process ends.
#include <mproc/backend.h>
#include <mproc/mpi.h>
#include <mproc/process.h>
#include <mpi.h>

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace {

enum Tag { kTagTask = 1, kTagResult = 2, kTagStop = 3 };

constexpr long kSpinNs = 200000;        // a worker probes this long before it sleeps
constexpr long kSleepMinNs = 50000;     // then sleeps this long between probes,
constexpr long kSleepMaxNs = 1000000;   // doubling up to this
constexpr int kTexts = 64;              // per worker: descriptions of unanswered messages
constexpr size_t kTextLen = 112;

struct Texts {  // read by the SIGTERM handler: plain memory and atomic counters only
  std::atomic<uint32_t> head{0}, tail{0};
  char text[kTexts][kTextLen];
};

struct Pending {
  MPI_Request req;
  std::vector<char> buf;
};

struct State {
  bool inited_mpi = false;  // mproc_mpi_init started MPI (and finalizes it)
  bool finalized = false;
  bool registered = false;
  int rank = -1, size = -1;
  MPI_Comm comm = MPI_COMM_NULL;
  std::mutex mu;                 // the transport's calls come from one thread at a time, but
  std::deque<Pending> pending;   // rank 0's finalize may race a late dispatcher: keep it safe
  Texts *texts = nullptr;        // rank 0: one per worker rank
  int nworkers = 0;
};
State g;

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void nap(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, nullptr);
}

// Completed non-blocking sends give their buffers back (under g.mu).
void reap() {
  while (!g.pending.empty()) {
    int done = 0;
    MPI_Test(&g.pending.front().req, &done, MPI_STATUS_IGNORE);
    if (!done) break;
    g.pending.pop_front();
  }
}

void note_sent(int worker, const char *what) {
  if (!g.texts || worker < 0 || worker >= g.nworkers) return;
  Texts &t = g.texts[worker];
  uint32_t at = t.tail.load(std::memory_order_relaxed);
  char *dst = t.text[at % kTexts];
  snprintf(dst, kTextLen, "%s", what ? what : "a message");
  t.tail.store(at + 1, std::memory_order_release);
}

void note_answered(int worker) {
  if (!g.texts || worker < 0 || worker >= g.nworkers) return;
  Texts &t = g.texts[worker];
  uint32_t h = t.head.load(std::memory_order_relaxed);
  if (h != t.tail.load(std::memory_order_acquire)) t.head.store(h + 1, std::memory_order_release);
}

int tr_send(void *, int worker, const struct iovec *iov, int iovcnt, const char *what) {
  size_t len = 0;
  for (int k = 0; k < iovcnt; k++) len += iov[k].iov_len;
  if (len > static_cast<size_t>(INT_MAX)) return MPROC_EMSGSIZE;
  // One contiguous buffer: the message as one piece (no copy when it is one already), and for a
  // non-blocking send one that lives until the send completes.
  std::vector<char> buf;
  const void *data = iovcnt == 1 ? iov[0].iov_base : nullptr;
  if (iovcnt != 1 || worker >= 0) {
    buf.resize(len);
    size_t at = 0;
    for (int k = 0; k < iovcnt; k++) {
      if (iov[k].iov_len) memcpy(buf.data() + at, iov[k].iov_base, iov[k].iov_len);
      at += iov[k].iov_len;
    }
    data = buf.data();
  }
  std::lock_guard<std::mutex> lk(g.mu);
  if (g.finalized) return MPROC_ECLOSED;
  if (worker < 0) {  // a worker answers rank 0: rank 0 always receives, a plain send is fine
    return MPI_Send(data, static_cast<int>(len), MPI_BYTE, 0, kTagResult, g.comm) == MPI_SUCCESS
               ? 0 : MPROC_EIO;
  }
  if (worker >= g.nworkers) return MPROC_EINVAL;
  reap();
  g.pending.push_back(Pending{MPI_REQUEST_NULL, std::move(buf)});
  Pending &p = g.pending.back();
  if (MPI_Isend(p.buf.data(), static_cast<int>(len), MPI_BYTE, worker + 1, kTagTask, g.comm,
                &p.req) != MPI_SUCCESS) {
    g.pending.pop_back();
    return MPROC_EIO;
  }
  note_sent(worker, what);
  return 0;
}

// One matched probe: 1 with the message, 0 if none, or an error.
int take(int source, int *from, void **msg, size_t *len) {
  std::lock_guard<std::mutex> lk(g.mu);
  if (g.finalized) return MPROC_ECLOSED;
  if (g.rank == 0) reap();
  int flag = 0;
  MPI_Message m;
  MPI_Status st;
  if (MPI_Improbe(source, MPI_ANY_TAG, g.comm, &flag, &m, &st) != MPI_SUCCESS) return MPROC_EIO;
  if (!flag) return 0;
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  void *buf = malloc(count > 0 ? static_cast<size_t>(count) : 1);
  if (!buf) return MPROC_ENOMEM;
  if (MPI_Mrecv(buf, count, MPI_BYTE, &m, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
    free(buf);
    return MPROC_EIO;
  }
  if (st.MPI_TAG == kTagStop) {  // rank 0 ends the service: say so after the last result
    free(buf);
    MPI_Send(nullptr, 0, MPI_BYTE, 0, kTagStop, g.comm);
    return MPROC_ECLOSED;
  }
  *from = g.rank == 0 ? st.MPI_SOURCE - 1 : -1;
  *msg = buf;
  *len = static_cast<size_t>(count);
  if (g.rank == 0) note_answered(*from);
  return 1;
}

int tr_recv(void *, double timeout, int *worker, void **msg, size_t *len) {
  int source = g.rank == 0 ? MPI_ANY_SOURCE : 0;
  int64_t start = now_ns();
  int64_t end = timeout < 0 ? INT64_MAX : start + static_cast<int64_t>(timeout * 1e9);
  long sleep_ns = kSleepMinNs;
  for (;;) {
    int rc = take(source, worker, msg, len);
    if (rc != 0) return rc;
    int64_t t = now_ns();
    if (t >= end) return 0;
    if (t - start < kSpinNs) continue;
    long ns = sleep_ns;
    if (end != INT64_MAX && end - t < ns) ns = static_cast<long>(end - t);
    nap(ns);
    if (sleep_ns < kSleepMaxNs) sleep_ns *= 2;
  }
}

void tr_release(void *, void *msg) { free(msg); }

mproc_transport_t transport(int nworkers) {
  mproc_transport_t t = {};
  t.size = sizeof t;
  t.name = "mpi";
  t.self = nullptr;
  t.nworkers = nworkers;
  t.send = tr_send;
  t.recv = tr_recv;
  t.release = tr_release;
  return t;
}

// ---- rank 0's report when the job is torn down --------------------------------------------

void put(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void put_int(long v) {
  char buf[24];
  int i = sizeof buf - 1;
  buf[i] = 0;
  bool neg = v < 0;
  unsigned long u = neg ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
  do {
    buf[--i] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u && i > 1);
  if (neg) buf[--i] = '-';
  put(buf + i);
}

void on_term(int sig) {
  bool any = false;
  for (int w = 0; w < g.nworkers && g.texts; w++) {
    Texts &t = g.texts[w];
    uint32_t h = t.head.load(std::memory_order_acquire), tl = t.tail.load(std::memory_order_acquire);
    if (h == tl) continue;
    if (!any) {
      put("mproc-mpi: the job is ending (rank 0 got signal ");
      put_int(sig);
      put("); what the worker ranks were running:\n");
      any = true;
    }
    put("mproc-mpi: worker rank ");
    put_int(w + 1);
    put(" was running ");
    put(tl - h > static_cast<uint32_t>(kTexts) ? "(its task's description was overwritten)"
                                               : t.text[h % kTexts]);
    if (tl - h > 1) {
      put(", with ");
      put_int(static_cast<long>(tl - h - 1));
      put(" more queued");
    }
    put("\n");
  }
  if (!any) {
    put("mproc-mpi: the job is ending (rank 0 got signal ");
    put_int(sig);
    put("); no task was running on a worker rank\n");
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_report() {
  struct sigaction old;
  if (sigaction(SIGTERM, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) return;  // the program's
  struct sigaction sa = {};
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

void at_exit() { mproc_mpi_finalize(); }

}  // namespace

extern "C" {

MPROC_API int mproc_mpi_init(int *argc, char ***argv) {
  if (g.comm != MPI_COMM_NULL) return 0;
  int started = 0, provided = 0;
  MPI_Initialized(&started);
  if (!started) {
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) return MPROC_EIO;
    g.inited_mpi = true;
  } else {
    MPI_Query_thread(&provided);
  }
  // The dispatcher thread and a caller helping it take turns on MPI: SERIALIZED is enough.
  if (provided < MPI_THREAD_SERIALIZED) {
    fprintf(stderr, "mproc-mpi: MPI gives thread level %d; the pool needs MPI_THREAD_SERIALIZED\n",
            provided);
    return MPROC_EINVAL;
  }
  if (MPI_Comm_dup(MPI_COMM_WORLD, &g.comm) != MPI_SUCCESS) return MPROC_EIO;
  MPI_Comm_rank(g.comm, &g.rank);
  MPI_Comm_size(g.comm, &g.size);
  if (g.rank != 0) {
    mproc_transport_t t = transport(0);
    int rc = mproc_backend_serve(&t, g.rank - 1, nullptr);
    if (rc < 0) fprintf(stderr, "mproc-mpi: worker rank %d: %s\n", g.rank, mproc_last_error());
    {
      std::lock_guard<std::mutex> lk(g.mu);
      g.finalized = true;
    }
    mproc_shutdown();
    MPI_Comm_free(&g.comm);
    if (g.inited_mpi) MPI_Finalize();
    fflush(nullptr);
    _exit(rc < 0 ? 1 : 0);  // the program's own code after init is rank 0's
  }
  atexit(at_exit);
  if (g.size < 2) return 0;  // nothing to serve: an "mpi" pool fails with MPROC_ENOENT
  g.nworkers = g.size - 1;
  g.texts = new Texts[static_cast<size_t>(g.nworkers)];
  mproc_transport_t t = transport(g.nworkers);
  if (int rc = mproc_backend_register(&t)) return rc;
  g.registered = true;
  install_report();
  return 0;
}

MPROC_API int mproc_mpi_rank(void) { return g.rank; }
MPROC_API int mproc_mpi_size(void) { return g.size; }

MPROC_API int mproc_mpi_finalize(void) {
  if (g.comm == MPI_COMM_NULL || g.rank != 0) return 0;
  {
    std::lock_guard<std::mutex> lk(g.mu);
    if (g.finalized) return 0;
  }
  mproc_shutdown();  // pools end: no dispatcher calls the transport after this
  if (g.registered) mproc_backend_unregister("mpi");
  std::lock_guard<std::mutex> lk(g.mu);
  g.finalized = true;
  // Each rank answers the stop after the results of everything sent before it (a terminated
  // pool's late results among them): take those until every rank has answered, so no rank is
  // left blocked sending a large result nobody receives.
  for (int r = 1; r < g.size; r++) MPI_Send(nullptr, 0, MPI_BYTE, r, kTagStop, g.comm);
  for (int acks = 0; acks < g.size - 1;) {
    reap();
    int flag = 0;
    MPI_Message m;
    MPI_Status st;
    MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, g.comm, &flag, &m, &st);
    if (!flag) {
      nap(kSleepMinNs);
      continue;
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    std::vector<char> sink(count > 0 ? static_cast<size_t>(count) : 1);
    MPI_Mrecv(sink.data(), count, MPI_BYTE, &m, MPI_STATUS_IGNORE);
    if (st.MPI_TAG == kTagStop) acks++;
  }
  while (!g.pending.empty()) {
    MPI_Wait(&g.pending.front().req, MPI_STATUS_IGNORE);
    g.pending.pop_front();
  }
  MPI_Comm_free(&g.comm);
  g.comm = MPI_COMM_NULL;
  if (g.inited_mpi) MPI_Finalize();
  return 0;
}

}  // extern "C"
