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
// and its SIGTERM handler prints what each rank was running before the process ends, and which
// ranks of this host are gone (each worker rank says its pid and host once, kTagHello).
//
// Two ways in: mproc_mpi_init (C programs: the backend is registered in libmproc, worker ranks
// serve inside the call and exit), or mproc_mpi_start + mproc_mpi_transport (a binding that
// carries its own copy of the core, such as Python's _mproc: it registers the transport in that
// core and serves through it; mproc_mpi_finalize then leaves that core alone).
#include <mproc/backend.h>
#include <mproc/mpi.h>
#include <mproc/process.h>
#include <mpi.h>

#include <errno.h>
#include <fcntl.h>
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

enum Tag { kTagTask = 1, kTagResult = 2, kTagStop = 3, kTagHello = 4 };

constexpr long kSpinNs = 200000;        // a worker probes this long before it sleeps
constexpr long kSleepMinNs = 50000;     // then sleeps this long between probes,
constexpr long kSleepMaxNs = 1000000;   // doubling up to this
constexpr int kTexts = 64;              // per worker: descriptions of unanswered messages
constexpr size_t kTextLen = 160;
constexpr size_t kHostLen = 64;
// A task's own name inside its message, put there by a binding whose tasks all share one
// registered trampoline (Python's mproc.mpi): "\x7fmproc-task:" NAME "\x7f", within the first
// kLabelScan bytes. The report shows NAME instead of the trampoline's registered name.
constexpr char kLabelMark[] = "\x7fmproc-task:";
constexpr size_t kLabelScan = 2048;
constexpr size_t kLabelMax = 80;

struct Hello {  // a worker rank's first message: who it is
  int32_t pid;
  char host[kHostLen];
};

struct Texts {  // read by the SIGTERM handler: plain memory and atomic counters only
  std::atomic<uint32_t> head{0}, tail{0};
  char text[kTexts][kTextLen];
};

struct Pending {
  MPI_Request req;
  std::vector<char> buf;
};

struct Peer {  // rank 0: what a worker rank said of itself (read by the SIGTERM handler)
  std::atomic<int32_t> pid{0};
  char host[kHostLen];
};

struct State {
  bool inited_mpi = false;  // mproc_mpi_init started MPI (and finalizes it)
  bool finalized = false;
  bool registered = false;
  bool external = false;    // mproc_mpi_transport handed the transport to another core
  bool served = false;      // a worker rank's service has ended
  int rank = -1, size = -1;
  MPI_Comm comm = MPI_COMM_NULL;
  std::mutex mu;                 // the transport's calls come from one thread at a time, but
  std::deque<Pending> pending;   // rank 0's finalize may race a late dispatcher: keep it safe
  Texts *texts = nullptr;        // rank 0: one per worker rank
  Peer *peers = nullptr;         // rank 0: one per worker rank
  int nworkers = 0;
  char host[kHostLen] = {0};
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

// The label of a message (see kLabelMark) into out (kLabelMax + 1 bytes): true if it has one.
bool find_label(const char *data, size_t len, char *out) {
  size_t scan = len < kLabelScan ? len : kLabelScan;
  size_t mark = sizeof kLabelMark - 1;
  const char *p = static_cast<const char *>(memmem(data, scan, kLabelMark, mark));
  if (!p) return false;
  p += mark;
  const char *end = data + len;
  size_t n = 0;
  while (p + n < end && p[n] != '\x7f' && n < kLabelMax) n++;
  if (p + n >= end || p[n] != '\x7f') return false;
  memcpy(out, p, n);
  out[n] = 0;
  return true;
}

void note_sent(int worker, const char *what, const char *data, size_t len) {
  if (!g.texts || worker < 0 || worker >= g.nworkers) return;
  Texts &t = g.texts[worker];
  uint32_t at = t.tail.load(std::memory_order_relaxed);
  char *dst = t.text[at % kTexts];
  if (!what) what = "a message";
  char label[kLabelMax + 1];
  const char *q1 = strchr(what, '\'');
  const char *q2 = q1 ? strchr(q1 + 1, '\'') : nullptr;
  if (q2 && find_label(data, len, label))  // "task 'trampoline' (item 7)" -> "task 'f' (item 7)"
    snprintf(dst, kTextLen, "%.*s'%s'%s", static_cast<int>(q1 - what), what, label, q2 + 1);
  else
    snprintf(dst, kTextLen, "%s", what);
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
  note_sent(worker, what, p.buf.data(), len);
  return 0;
}

void note_hello(int source, const void *data, size_t len) {
  int w = source - 1;
  if (!g.peers || w < 0 || w >= g.nworkers || len < sizeof(Hello)) return;
  Hello h;
  memcpy(&h, data, sizeof h);
  h.host[kHostLen - 1] = 0;
  memcpy(g.peers[w].host, h.host, kHostLen);
  g.peers[w].pid.store(h.pid, std::memory_order_release);
}

// One matched probe: 1 with the message, 0 if none, or an error. A hello is taken on the way.
int take(int source, int *from, void **msg, size_t *len) {
  std::lock_guard<std::mutex> lk(g.mu);
  if (g.finalized) return MPROC_ECLOSED;
  if (g.rank == 0) reap();
  for (;;) {
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
      g.served = true;
      MPI_Send(nullptr, 0, MPI_BYTE, 0, kTagStop, g.comm);
      return MPROC_ECLOSED;
    }
    if (st.MPI_TAG == kTagHello) {  // rank 0: a worker rank says who it is; not the pool's
      note_hello(st.MPI_SOURCE, buf, static_cast<size_t>(count));
      free(buf);
      continue;
    }
    *from = g.rank == 0 ? st.MPI_SOURCE - 1 : -1;
    *msg = buf;
    *len = static_cast<size_t>(count);
    if (g.rank == 0) note_answered(*from);
    return 1;
  }
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

// Whether a worker rank's process is gone: known only for ranks on this host (0 no, 1 yes, -1
// unknown). Async-signal-safe: kill, open, read, close.
int rank_gone(const Peer &p) {
  int32_t pid = p.pid.load(std::memory_order_acquire);
  if (pid <= 0 || strncmp(p.host, g.host, kHostLen) != 0) return -1;
  if (kill(pid, 0) != 0) return errno == ESRCH ? 1 : -1;
  char path[40] = "/proc/";
  char num[16];
  int i = sizeof num - 1;
  num[i] = 0;
  for (int32_t v = pid; v > 0 && i > 0; v /= 10) num[--i] = static_cast<char>('0' + v % 10);
  strcat(path, num + i);
  strcat(path, "/stat");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *paren = strrchr(buf, ')');  // "pid (comm) S ...": the state follows the name
  return paren && paren[1] == ' ' && paren[2] == 'Z' ? 1 : 0;
}

void put_peer(int w) {
  const Peer &p = g.peers[w];
  int32_t pid = p.pid.load(std::memory_order_acquire);
  if (pid <= 0) return;
  int gone = rank_gone(p);
  put(gone == 1 ? "; it has DIED (pid " : " (pid ");
  put_int(pid);
  put(" on ");
  put(p.host);
  put(")");
}

void on_term(int sig) {
  put("mproc-mpi: the job is ending (rank 0 got signal ");
  put_int(sig);
  put("): a rank died or the job was cancelled\n");
  bool any = false;
  for (int w = 0; w < g.nworkers && g.texts; w++) {
    Texts &t = g.texts[w];
    uint32_t h = t.head.load(std::memory_order_acquire), tl = t.tail.load(std::memory_order_acquire);
    if (h == tl) {
      if (g.peers && rank_gone(g.peers[w]) == 1) {
        put("mproc-mpi: worker rank ");
        put_int(w + 1);
        put(" was idle");
        put_peer(w);
        put("\n");
      }
      continue;
    }
    any = true;
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
    if (g.peers) put_peer(w);
    put("\n");
  }
  if (!any) put("mproc-mpi: no task was running on a worker rank\n");
  signal(sig, SIG_DFL);
  raise(sig);
}

// A worker rank told to end (mpirun does so when another rank died) stays a moment, so that
// rank 0's report tells the rank that died from those ended after it.
void on_term_worker(int sig) {
  nap(300000000);
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_report() {
  struct sigaction old;
  if (sigaction(SIGTERM, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) return;  // the program's
  struct sigaction sa = {};
  sa.sa_handler = g.rank == 0 ? on_term : on_term_worker;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

void at_exit() { mproc_mpi_finalize(); }

// MPI up (if the program has not started it), the pool's communicator, and rank 0's books. The
// duplicate is made with a non-blocking call polled with naps: ranks that get here long before
// the others (rank 0 still busy) wait without spinning a core.
int start(int *argc, char ***argv) {
  if (g.comm != MPI_COMM_NULL) return 0;
  if (g.finalized) return MPROC_ECLOSED;
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
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request req;
  if (MPI_Comm_idup(MPI_COMM_WORLD, &comm, &req) != MPI_SUCCESS) return MPROC_EIO;
  long sleep_ns = kSleepMinNs;
  for (int64_t t0 = now_ns();;) {
    int done = 0;
    if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return MPROC_EIO;
    if (done) break;
    if (now_ns() - t0 < kSpinNs) continue;
    nap(sleep_ns);
    if (sleep_ns < kSleepMaxNs) sleep_ns *= 2;
  }
  g.comm = comm;
  MPI_Comm_rank(g.comm, &g.rank);
  MPI_Comm_size(g.comm, &g.size);
  if (gethostname(g.host, sizeof g.host - 1) != 0) g.host[0] = 0;
  if (g.rank != 0) {
    Hello h = {static_cast<int32_t>(getpid()), {0}};
    memcpy(h.host, g.host, kHostLen);
    if (MPI_Send(&h, sizeof h, MPI_BYTE, 0, kTagHello, g.comm) != MPI_SUCCESS) return MPROC_EIO;
    install_report();
    atexit(at_exit);
    return 0;
  }
  atexit(at_exit);
  if (g.size < 2) return 0;
  g.nworkers = g.size - 1;
  g.texts = new Texts[static_cast<size_t>(g.nworkers)];
  g.peers = new Peer[static_cast<size_t>(g.nworkers)];
  install_report();
  return 0;
}

// A worker rank after its service: MPI down if mproc started it.
void end_worker() {
  {
    std::lock_guard<std::mutex> lk(g.mu);
    g.finalized = true;
    g.served = true;
  }
  if (g.comm != MPI_COMM_NULL) MPI_Comm_free(&g.comm);
  g.comm = MPI_COMM_NULL;
  if (g.inited_mpi) MPI_Finalize();
}

}  // namespace

extern "C" {

MPROC_API int mproc_mpi_init(int *argc, char ***argv) {
  if (g.comm != MPI_COMM_NULL) return 0;
  if (int rc = start(argc, argv)) return rc;
  if (g.rank != 0) {
    mproc_transport_t t = transport(0);
    int rc = mproc_backend_serve(&t, g.rank - 1, nullptr);
    if (rc < 0) fprintf(stderr, "mproc-mpi: worker rank %d: %s\n", g.rank, mproc_last_error());
    mproc_shutdown();
    end_worker();
    fflush(nullptr);
    _exit(rc < 0 ? 1 : 0);  // the program's own code after init is rank 0's
  }
  if (g.size < 2) return 0;  // nothing to serve: an "mpi" pool fails with MPROC_ENOENT
  mproc_transport_t t = transport(g.nworkers);
  if (int rc = mproc_backend_register(&t)) return rc;
  g.registered = true;
  return 0;
}

MPROC_API int mproc_mpi_start(int *argc, char ***argv) { return start(argc, argv); }

MPROC_API int mproc_mpi_transport(mproc_transport_t *out) {
  if (!out) return MPROC_EINVAL;
  if (g.comm == MPI_COMM_NULL) return g.finalized ? MPROC_ECLOSED : MPROC_EINVAL;
  if (g.rank == 0 && g.size < 2) return MPROC_ENOENT;
  *out = transport(g.rank == 0 ? g.nworkers : 0);
  g.external = true;
  return 0;
}

MPROC_API int mproc_mpi_worker_pid(int worker) {
  if (g.rank != 0 || !g.peers || worker < 0 || worker >= g.nworkers) return MPROC_EINVAL;
  return g.peers[worker].pid.load(std::memory_order_acquire);
}

MPROC_API int mproc_mpi_rank(void) { return g.rank; }
MPROC_API int mproc_mpi_size(void) { return g.size; }

MPROC_API int mproc_mpi_finalize(void) {
  if (g.comm == MPI_COMM_NULL) return 0;
  if (g.rank != 0) {
    bool served;
    {
      std::lock_guard<std::mutex> lk(g.mu);
      served = g.served;
    }
    // A rank that never served still answers rank 0's stop (rank 0 waits for every rank's
    // answer), dropping any task sent to it: wait for the stop here.
    while (!served) {
      int w = -1;
      void *m = nullptr;
      size_t len = 0;
      int rc = tr_recv(nullptr, -1, &w, &m, &len);
      if (rc == 1) tr_release(nullptr, m);
      if (rc < 0) break;
    }
    end_worker();
    return 0;
  }
  {
    std::lock_guard<std::mutex> lk(g.mu);
    if (g.finalized) return 0;
  }
  if (!g.external) mproc_shutdown();  // pools end: no dispatcher calls the transport after this
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
