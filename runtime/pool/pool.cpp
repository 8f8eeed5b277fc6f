// The pool's dispatcher and workers.
//
// Shared memory (one memfd segment, mapped by the parent and every worker): a header with the
// `events` futex word, a slot per worker saying which chunk it runs and since when, and two SPSC
// rings per worker (tasks in, results out; see spsc.hpp). One dispatcher thread in the parent
// moves chunks from the pending queue into the rings (a few per worker, so a worker never waits
// for the parent; a round's chunks for one worker are published at once), reads results,
// completes async results and runs callbacks. A worker bumps `events` after a result only when
// the dispatcher sleeps (an awake one looks at every ring); the supervisor's exit hook bumps it
// when a worker dies.
//
// Never hang: the parent remembers which chunks it pushed to which worker (in order). When a
// worker ends, its complete results are read first; if its slot still names the oldest chunk,
// that chunk was running and fails (MPROC_EWORKERDIED with the signal or status, or
// MPROC_ETIMEDOUT / MPROC_ECANCELED when the pool killed it for that); the chunks behind it had
// not started and go back to the front of the queue. Then the slot gets a new worker.
#include "pool/pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <map>
#include <unordered_map>

#include "base/align.hpp"
#include "base/error.hpp"
#include "base/interrupt.hpp"
#include "base/names.hpp"
#include "base/pidfd.hpp"
#include "base/thread.hpp"
#include "proc/runtime.hpp"

namespace mproc {
namespace {

constexpr uint32_t kMagic = 0x6d70706c;  // "mppl"
// Spins before sleeping on a futex, in ns. Short: on a 2-core machine the spinners compete with
// the threads that would give them work.
constexpr long kWorkerSpinNs = 50000;
constexpr uint64_t kDispatcherSpinNs = 50000;
constexpr uint64_t kCallerSpinNs = 20000;
constexpr uint64_t kHelperSpinNs = 100000;  // a blocking apply/map helps this long, then sleeps
// A backend's workers cannot wake the dispatcher: it looks at the transport this often, from
// the minimum after any progress, doubling up to the maximum while nothing comes.
constexpr uint64_t kRemotePollMinNs = 10000;
constexpr uint64_t kRemotePollMaxNs = 1000000;
enum : uint32_t {
  kMsgVar = 1,
  kMsgFixed = 2,      // elements travel in the message
  kMsgStop = 3,
  kMsgReady = 4,
  kMsgInitFailed = 5,
  kMsgFixedBulk = 6,  // elements stay in a shared segment of the job's (see BulkRef)
  kMsgInit = 7,       // backend workers: run the pool's initializer (its name, then its argument)
};
// Before a message to a backend's worker (mproc/backend.h): the function's registered name.
struct WireHdr {
  uint32_t magic;
  uint32_t name_len;  // name bytes follow, then the TaskHdr and its body
};
constexpr uint32_t kWireMagic = 0x6d707778;  // "mpwx"
// A fixed map's arrays in a memfd segment of the parent: the worker maps it once (through
// /proc/<parent>/fd/<fd>) and computes in place, so elements are copied only into and out of it.
struct BulkRef {
  uint64_t seg_id;
  uint64_t seg_size;
  int32_t fd;
  uint32_t pad;
  uint64_t in_off, out_off;  // byte offsets of the arrays in the segment
  uint64_t first;            // the chunk's first element
};

struct TaskHdr {
  uint64_t id;
  uint32_t kind;
  uint32_t count;
  uint64_t fn;
  uint32_t in_size;
  uint32_t out_size;
};
struct ResultHdr {
  uint64_t id;
  uint32_t kind;
  uint32_t count;
  int32_t fail_rc;      // kMsgFixed / kMsgInitFailed: the first failure's code
  uint32_t fail_index;  // kMsgFixed: its index in the chunk
  uint64_t msg_len;     // kMsgFixed / kMsgInitFailed: message bytes at the end
  uint64_t busy_ns;
};
struct ItemHdr {
  int32_t rc;
  uint32_t pad;
  uint64_t len;
};
struct Boot {
  int32_t parent_pid;
  int32_t seg_fd;
  uint64_t seg_size;
  uint64_t base;
  uint32_t slot;
  int32_t max_tasks;
  int32_t inherited;  // the segment is mapped at `base` already (fork)
  uint32_t pad;
  uint64_t init_fn;
  uint64_t init_len;
  uint64_t names_len;  // spawned workers: the parent's registered functions (NameRec) follow
};
// One registered function of the parent, for a spawned worker (its addresses differ).
struct NameRec {
  uint64_t fn;
  uint32_t kind;
  uint32_t name_len;  // the name follows
};

std::string describe_exit(int code) {
  char buf[96];
  if (code < 0) {
    const char *name = sigabbrev_np(-code);
    snprintf(buf, sizeof buf, "killed by signal %d (SIG%s)", -code, name ? name : "?");
  } else {
    snprintf(buf, sizeof buf, "exited with status %d", code);
  }
  return buf;
}

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// ---- the worker process ------------------------------------------------------------------

// A fixed map's bulk segment as a worker has it mapped (the last one it saw).
struct BulkMap {
  char *base = nullptr;
  size_t size = 0;
  uint64_t id = 0;
  int parent_pid = 0;
  ~BulkMap() {
    if (base) munmap(base, size);
  }
};

// Run one chunk (its header th, its body at p; fnp the function to run) and leave the result
// message in out, ResultHdr first. false: a bulk segment could not be mapped.
bool run_chunk(const TaskHdr &th, uint64_t fnp, const char *p, std::vector<char> &out,
               mproc_task_ctx &ctx, void *payload, BulkMap *bm) {
  uint64_t t0 = now_ns();
  ResultHdr rh = {th.id, th.kind, th.count, 0, 0, 0, 0};
  out.resize(sizeof rh);
  if (th.kind == kMsgVar) {
    auto fn = reinterpret_cast<mproc_task_fn>(static_cast<uintptr_t>(fnp));
    for (uint32_t k = 0; k < th.count; k++) {
      uint64_t alen;
      memcpy(&alen, p, 8);
      const char *a = p + 8;
      p += 8 + alen;
      size_t at = out.size();
      out.resize(at + sizeof(ItemHdr));
      ctx.item_start = at + sizeof(ItemHdr);
      ctx.msg.clear();
      int rc = fn(&ctx, alen ? a : nullptr, alen, payload);
      ItemHdr ih = {rc, 0, 0};
      if (rc != 0) {
        std::string msg = ctx.msg.empty() ? format("task returned %d", rc) : ctx.msg;
        out.resize(ctx.item_start);
        out.insert(out.end(), msg.begin(), msg.end());
      }
      ih.len = out.size() - ctx.item_start;
      memcpy(out.data() + at, &ih, sizeof ih);
    }
  } else {
    auto fn = reinterpret_cast<mproc_elem_fn>(static_cast<uintptr_t>(fnp));
    const char *in = p;
    char *dst;
    if (th.kind == kMsgFixedBulk) {
      BulkRef br;
      memcpy(&br, p, sizeof br);
      if (br.seg_id != bm->id) {
        if (bm->base) munmap(bm->base, bm->size);
        bm->base = nullptr;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", bm->parent_pid, br.fd);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        void *m = fd < 0 ? MAP_FAILED
                         : mmap(nullptr, br.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (fd >= 0) close(fd);
        if (m == MAP_FAILED) return false;
        bm->base = static_cast<char *>(m);
        bm->size = br.seg_size;
        bm->id = br.seg_id;
      }
      in = bm->base + br.in_off + br.first * th.in_size;
      dst = bm->base + br.out_off + br.first * th.out_size;
    } else {
      size_t at = out.size();
      out.resize(at + static_cast<size_t>(th.count) * th.out_size);
      dst = out.data() + at;
    }
    for (uint32_t k = 0; k < th.count; k++) {
      int rc = fn(in + static_cast<size_t>(k) * th.in_size,
                  dst + static_cast<size_t>(k) * th.out_size, payload);
      if (rc != 0 && rh.fail_rc == 0) {
        rh.fail_rc = rc;
        rh.fail_index = k;
      }
    }
    if (rh.fail_rc) {
      std::string msg = format("element function returned %d", rh.fail_rc);
      rh.msg_len = msg.size();
      out.insert(out.end(), msg.begin(), msg.end());
    }
  }
  rh.busy_ns = now_ns() - t0;
  memcpy(out.data(), &rh, sizeof rh);
  return true;
}

// The parent's function addresses to this process's (a spawned worker), from the NameRecs.
std::unordered_map<uint64_t, uint64_t> local_functions(const char *p, size_t len) {
  std::unordered_map<uint64_t, uint64_t> map;
  for (const char *end = p + len; p + sizeof(NameRec) <= end;) {
    NameRec r;
    memcpy(&r, p, sizeof r);
    p += sizeof r;
    if (r.name_len > static_cast<size_t>(end - p)) break;
    uintptr_t mine = fn_lookup(p, r.name_len, static_cast<FnKind>(r.kind));
    if (mine) map[r.fn] = mine;
    p += r.name_len;
  }
  return map;
}

int worker_main(void *arg, size_t len, void *payload) {
  if (len < sizeof(Boot)) return 120;
  // Ctrl-C reaches the whole process group: the program decides what happens to its pool (its
  // blocking call returns, it terminates the pool); a worker must not die of it on its own.
  signal(SIGINT, SIG_IGN);
  Boot b;
  memcpy(&b, arg, sizeof b);
  const char *init_arg = static_cast<const char *>(arg) + sizeof b;
  if (len < sizeof b + b.init_len + b.names_len) return 120;
  // A spawned worker runs the functions of the same names; unknown ones are an error.
  const bool by_name = b.names_len > 0;
  auto fns = local_functions(init_arg + b.init_len, b.names_len);
  auto resolve = [&](uint64_t fn) -> uint64_t {
    if (!by_name || !fn) return fn;
    auto it = fns.find(fn);
    if (it != fns.end()) return it->second;
    fprintf(stderr, "mproc: spawned pool worker %d: a function the pool was given is not "
                    "registered in this program (register it before mproc_spawn_guard())\n",
            static_cast<int>(getpid()));
    _exit(125);
  };
  char *base = reinterpret_cast<char *>(static_cast<uintptr_t>(b.base));
  if (!b.inherited) {
    // A forkserver child: map the parent's memfd through /proc (same user, parent alive).
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", b.parent_pid, b.seg_fd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return 121;
    void *p = mmap(nullptr, b.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 122;
    base = static_cast<char *>(p);
  }
  auto *shm = reinterpret_cast<PoolShm *>(base);
  auto *slot = reinterpret_cast<SlotShm *>(base + round64(sizeof(PoolShm)) + b.slot * sizeof(SlotShm));
  size_t rings = round64(sizeof(PoolShm)) + shm->nworkers * sizeof(SlotShm);
  rings = round64(rings);
  char *mine = base + rings + static_cast<size_t>(b.slot) * 2 * shm->ring_stride;
  size_t hdr = round64(sizeof(SpscHeader));
  SpscRing tasks(reinterpret_cast<SpscHeader *>(mine), mine + hdr);
  SpscRing results(reinterpret_cast<SpscHeader *>(mine + shm->ring_stride),
                   mine + shm->ring_stride + hdr);

  int ppfd = pidfd_open(b.parent_pid, 0);
  if (ppfd < 0) return 123;  // the parent is already gone
  auto parent_gone = [ppfd] {
    struct pollfd p = {ppfd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  };
  // After a result: wake the dispatcher if it sleeps, unless a caller is collecting results
  // itself (it wakes the dispatcher before it stops doing so). An awake dispatcher looks at
  // every ring anyway, so a busy pool's results cost no shared counter. The fence orders the
  // publish before the loads; the dispatcher looks at the rings again after saying it sleeps.
  auto notify = [shm] {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (shm->dispatcher_sleeps.load(std::memory_order_relaxed) &&
        shm->helpers.load(std::memory_order_relaxed) == 0) {
      shm->events.fetch_add(1, std::memory_order_relaxed);
      futex_wake(&shm->events, 1);
    }
  };
  auto send = [&](std::vector<char> &msg) {
    struct iovec iov = {msg.data(), msg.size()};
    return results.write(&iov, 1, Deadline(), parent_gone, notify);
  };

  std::vector<char> out;
  mproc_task_ctx ctx{&out, 0, std::string(), static_cast<int>(b.slot)};
  if (b.init_fn) {
    auto init = reinterpret_cast<mproc_init_fn>(static_cast<uintptr_t>(resolve(b.init_fn)));
    int rc = init(&ctx, b.init_len ? init_arg : nullptr, b.init_len, payload);
    if (rc != 0) {
      std::string msg = ctx.msg.empty() ? format("initializer returned %d", rc) : ctx.msg;
      ResultHdr rh = {0, kMsgInitFailed, 0, rc, 0, msg.size(), 0};
      out.assign(reinterpret_cast<char *>(&rh), reinterpret_cast<char *>(&rh) + sizeof rh);
      out.insert(out.end(), msg.begin(), msg.end());
      send(out);
      return 1;
    }
  }
  {
    ResultHdr rh = {0, kMsgReady, 0, 0, 0, 0, 0};
    out.assign(reinterpret_cast<char *>(&rh), reinterpret_cast<char *>(&rh) + sizeof rh);
    if (send(out) < 0) return 0;
  }

  std::vector<char> task;
  int done = 0;
  BulkMap bulk;
  bulk.parent_pid = b.parent_pid;
  for (;;) {
    const int r = tasks.read(task);
    if (r == -EAGAIN) {
      tasks.wait_message(Deadline::after(1.0), kWorkerSpinNs);
      if (!tasks.readable() && parent_gone()) return 0;
      continue;
    }
    if (r < 0 || task.size() < sizeof(TaskHdr)) return 125;  // a corrupt task ring
    TaskHdr th;
    memcpy(&th, task.data(), sizeof th);
    if (th.kind == kMsgStop) return 0;
    slot->started_ns.store(now_ns(), std::memory_order_relaxed);
    slot->current.store(th.id, std::memory_order_release);
    if (!run_chunk(th, resolve(th.fn), task.data() + sizeof th, out, ctx, payload, &bulk))
      return 124;  // fails the chunk as a dead worker: visible
    if (send(out) < 0) return 0;  // the parent is gone
    slot->current.store(0, std::memory_order_release);
    if (b.max_tasks > 0 && ++done >= b.max_tasks) return 0;
  }
}

// Spawned workers find their body by this name (registered at load, in the child too).
const int g_worker_registered =
    register_fn("mproc.pool.worker", FnKind::kProcess, reinterpret_cast<uintptr_t>(worker_main));

// A backend's worker: the loop of worker_main over a transport, functions found by name.
int serve_backend(const mproc_transport_t &t, int worker, void *payload) {
  std::vector<char> out;
  mproc_task_ctx ctx{&out, 0, std::string(), worker};
  BulkMap bulk;  // never used: bulk maps are local
  for (;;) {
    void *m = nullptr;
    size_t len = 0;
    int from = -1;
    int rc = t.recv(t.self, -1, &from, &m, &len);
    if (rc == MPROC_ECLOSED) return 0;
    if (rc < 0) return rc;
    if (rc == 0) continue;
    std::unique_ptr<void, std::function<void(void *)>> hold(m, [&t](void *q) { t.release(t.self, q); });
    const char *p = static_cast<const char *>(m);
    WireHdr wh;
    TaskHdr th;
    if (len < sizeof wh) continue;
    memcpy(&wh, p, sizeof wh);
    if (wh.magic != kWireMagic || len < sizeof wh + wh.name_len + sizeof th) continue;
    const char *name = p + sizeof wh;
    memcpy(&th, name + wh.name_len, sizeof th);
    const char *body = name + wh.name_len + sizeof th;
    size_t body_len = len - sizeof wh - wh.name_len - sizeof th;
    std::string fname(name, wh.name_len);
    if (th.kind == kMsgInit) {
      int irc = 0;
      ctx.msg.clear();
      if (wh.name_len) {
        auto init = reinterpret_cast<mproc_init_fn>(fn_lookup(name, wh.name_len, FnKind::kInit));
        if (!init) {
          irc = MPROC_EINVAL;
          ctx.msg = format("no init function '%s' is registered in this worker", fname.c_str());
        } else {
          irc = init(&ctx, body_len ? body : nullptr, body_len, payload);
        }
      }
      ResultHdr rh = {th.id, irc ? kMsgInitFailed : kMsgReady, 0, irc, 0, 0, 0};
      std::string msg = !irc ? std::string()
                        : ctx.msg.empty() ? format("initializer returned %d", irc) : ctx.msg;
      rh.msg_len = msg.size();
      out.assign(reinterpret_cast<char *>(&rh), reinterpret_cast<char *>(&rh) + sizeof rh);
      out.insert(out.end(), msg.begin(), msg.end());
    } else if (th.kind == kMsgVar || th.kind == kMsgFixed) {
      uintptr_t fn = fn_lookup(name, wh.name_len,
                               th.kind == kMsgVar ? FnKind::kTask : FnKind::kElem);
      if (fn) {
        run_chunk(th, fn, body, out, ctx, payload, &bulk);
      } else if (th.kind == kMsgVar) {
        // Every item fails with the reason; the caller gets MPROC_ETASKFAILED for each.
        std::string msg = format("no task function '%s' is registered in worker %d",
                                 fname.c_str(), worker);
        ResultHdr rh = {th.id, th.kind, th.count, 0, 0, 0, 0};
        out.assign(reinterpret_cast<char *>(&rh), reinterpret_cast<char *>(&rh) + sizeof rh);
        for (uint32_t k = 0; k < th.count; k++) {
          ItemHdr ih = {MPROC_EINVAL, 0, msg.size()};
          out.insert(out.end(), reinterpret_cast<char *>(&ih), reinterpret_cast<char *>(&ih) + sizeof ih);
          out.insert(out.end(), msg.begin(), msg.end());
        }
      } else {
        std::string msg = format("no element function '%s' is registered in worker %d",
                                 fname.c_str(), worker);
        ResultHdr rh = {th.id, th.kind, th.count, MPROC_EINVAL, 0, msg.size(), 0};
        out.assign(reinterpret_cast<char *>(&rh), reinterpret_cast<char *>(&rh) + sizeof rh);
        out.resize(out.size() + static_cast<size_t>(th.count) * th.out_size);
        out.insert(out.end(), msg.begin(), msg.end());
      }
    } else {
      continue;
    }
    struct iovec iov = {out.data(), out.size()};
    if (int src = t.send(t.self, -1, &iov, 1, nullptr)) return src;
  }
}

}  // namespace

// ---- Job ---------------------------------------------------------------------------------

void Job::add_chunk(size_t count) {
  Chunk c;
  c.first = n;
  c.count = count;
  chunks.push_back(std::move(c));
  nchunks++;
  if (kind == Kind::kVar) items.resize(items.size() + count);
  n += count;
}

void Job::note_failure(size_t index, int code, int tcode, const char *msg, size_t msg_len) {
  if (index < err_index) {
    err_index = index;
    err = code;
    task_code = tcode;
    err_msg.assign(msg, msg_len);
  }
}

void Job::fail_chunk(size_t c, int code, int tcode, const std::string &msg) {
  std::unique_lock<std::mutex> g(mu);
  if (c < chunk_base || chunk(c).state == Job::Chunk::State::kDone) return;
  Chunk &ch = chunk(c);
  if (kind == Kind::kVar) {
    for (size_t k = ch.first; k < ch.first + ch.count; k++) {
      Item &it = item(k);
      it.code = code;
      it.tcode = tcode;
      it.value.assign(msg.begin(), msg.end());
    }
  }
  note_failure(ch.first, code, tcode, msg.data(), msg.size());
  chunk_finished(c, g);
}

void Job::trim() {
  while (!chunks.empty() && chunks.front().state == Job::Chunk::State::kDone && (iter != Iter::kNone || lazy)) {
    chunks.pop_front();
    chunk_base++;
  }
  if (iter == Iter::kNone) return;
  while (!items.empty() && items.front().delivered) {
    items.pop_front();
    item_base++;
  }
}

namespace {
// Wakes mproc_async_wait_any callers: a job becoming ready bumps it (one process-wide
// condition: waiting on many jobs' own conditions at once is not possible).
std::mutex g_any_mu;
std::condition_variable g_any_cv;

void announce_ready() {
  { std::lock_guard<std::mutex> g(g_any_mu); }
  g_any_cv.notify_all();
}
}  // namespace

int wait_any_ready(const std::function<bool()> &any, double timeout) {
  std::unique_lock<std::mutex> g(g_any_mu);
  int rc = wait_interruptible(g, g_any_cv, Deadline::after(timeout), any);
  return rc == MPROC_ETIMEDOUT ? MPROC_EAGAIN : rc;
}

void Job::finish_if_done(std::unique_lock<std::mutex> &g) {
  bool done = !ready.load() && source_done && chunks_done == nchunks;
  if (done && lazy && progress) {
    // The total of a lazy map is known only now.
    auto prog = progress;
    void *pp = progress_payload;
    size_t items_now = items_done, total = n;
    g.unlock();
    prog(items_now, total, pp);
    g.lock();
    if (ready.load()) return;
  }
  if (done) {
    if (end_code && err == 0) {
      // A cut input fails the whole result (its iterator reports it after the last item).
      err = end_code;
      err_msg = end_msg;
      err_index = n;
    }
    ready.store(true, std::memory_order_release);
  }
  // A waiter of a whole result needs waking once, at the end; an iterator's reader at each chunk.
  if (done || iter != Iter::kNone) cv.notify_all();
  mproc_async_cb fire = done ? (err ? ecb : cb) : nullptr;
  mproc_async_t *h = handle;
  void *cbp = cb_payload;
  g.unlock();
  if (done) announce_ready();
  if (fire) fire(h, cbp);
}

void Job::chunk_finished(size_t c, std::unique_lock<std::mutex> &g) {
  Chunk &ch = chunk(c);
  ch.state = Job::Chunk::State::kDone;
  ch.args.clear();
  ch.args.shrink_to_fit();
  chunks_done++;
  items_done += ch.count;
  if (kind == Kind::kVar) {
    for (size_t k = ch.first; k < ch.first + ch.count; k++) {
      item(k).ready = true;
      if (iter == Iter::kUnordered) unordered.push_back(k);
    }
  }
  trim();
  auto prog = progress;
  void *prog_payload = progress_payload;
  size_t items_now = items_done, total = lazy && !source_done ? 0 : n;
  if (prog) {
    g.unlock();
    prog(items_now, total, prog_payload);
    g.lock();
  }
  finish_if_done(g);
}

int Job::wait(double timeout) {
  // A short spin first: a fast task's result often arrives within microseconds.
  if (timeout != 0) {
    uint64_t until = now_ns() + kCallerSpinNs;
    for (int i = 0;; i++) {
      if (ready.load(std::memory_order_acquire)) return 0;
      SpscRing::cpu_relax();
      if ((i & 63) == 63 && now_ns() >= until) break;
    }
  }
  std::unique_lock<std::mutex> g(mu);
  auto is_ready = [this] { return ready.load(std::memory_order_acquire); };
  int rc = wait_interruptible(g, cv, Deadline::after(timeout), is_ready);
  return rc == MPROC_ETIMEDOUT ? MPROC_EAGAIN : rc;
}

// ---- Pool --------------------------------------------------------------------------------

SlotShm *Pool::slot(size_t i) const {
  return reinterpret_cast<SlotShm *>(static_cast<char *>(seg_->data()) + round64(sizeof(PoolShm)) +
                                     i * sizeof(SlotShm));
}

SpscHeader *Pool::ring_hdr(size_t i, int which) const {
  size_t rings = round64(round64(sizeof(PoolShm)) + shm_->nworkers * sizeof(SlotShm));
  return reinterpret_cast<SpscHeader *>(static_cast<char *>(seg_->data()) + rings +
                                        (2 * i + static_cast<size_t>(which)) * shm_->ring_stride);
}

int Pool::start(const mproc_pool_opts_t &o) {
  Runtime::get().before_shutdown(pools_shutdown);
  opts_ = o;
  if (o.init_arg_len)
    init_arg_.assign(static_cast<const char *>(o.init_arg),
                     static_cast<const char *>(o.init_arg) + o.init_arg_len);
  if (opts_.start_method == MPROC_START_DEFAULT)
    opts_.start_method = Runtime::get().default_method.load();
  {
    static std::atomic<uint64_t> pools{0};
    next_id_ = ((pools.fetch_add(1) + 1) << 40) + 1;  // ids of one pool never meet another's
  }
  if (int rc = attach_backend(o)) return rc;
  if (spawned()) {
    if (o.payload) return fail(MPROC_EINVAL, "a payload pointer cannot reach spawned workers");
    if (o.initializer && !fn_name(reinterpret_cast<uintptr_t>(o.initializer)))
      return fail(MPROC_EINVAL, "the initializer is not registered (mproc_init_register): "
                                "spawned workers find functions by name");
    for (const char *const *a = o.argv; a && *a; a++) spawn_argv_.emplace_back(*a);
    for (const FnEntry &e : fn_entries()) {
      NameRec r = {e.fn, static_cast<uint32_t>(e.kind), static_cast<uint32_t>(e.name.size())};
      spawn_names_.insert(spawn_names_.end(), reinterpret_cast<char *>(&r),
                          reinterpret_cast<char *>(&r) + sizeof r);
      spawn_names_.insert(spawn_names_.end(), e.name.begin(), e.name.end());
    }
  }
  size_t n = static_cast<size_t>(o.workers > 0 ? o.workers : remote_ ? transport_.nworkers
                                                                     : mproc_cpu_count());
  uint64_t cap = 4096;
  uint64_t want = remote_ ? cap : o.ring_bytes ? o.ring_bytes : (1u << 20);
  while (cap < want) cap <<= 1;
  size_t stride = round64(sizeof(SpscHeader)) + cap;
  size_t size = round64(round64(sizeof(PoolShm)) + n * sizeof(SlotShm)) + n * 2 * stride;
  seg_ = std::make_shared<Segment>();
  int rc = Segment::create(size, "mproc-pool", seg_.get());
  if (rc < 0) return rc;
  shm_ = new (seg_->data()) PoolShm();
  shm_->magic = kMagic;
  shm_->nworkers = static_cast<uint32_t>(n);
  shm_->ring_cap = cap;
  shm_->ring_stride = stride;
  for (size_t i = 0; i < n; i++) {
    new (slot(i)) SlotShm();
    SpscRing::init(ring_hdr(i, 0), cap);
    SpscRing::init(ring_hdr(i, 1), cap);
  }
  workers_.resize(n);
  stats_.resize(n);
  stat_tasks_.reset(new std::atomic<uint64_t>[n]());
  stat_busy_.reset(new std::atomic<uint64_t>[n]());
  if (opts_.start_method == MPROC_START_FORK && !remote_) {
    // Made now, from the caller's thread, after the segment: it sees the program as it is and
    // the mapping at the same address; it has one thread, so its forks are always safe. Made
    // before the supervisor thread starts, when that is not running yet.
    zygote_ = std::make_unique<ForkServer>();
    zygote_->set_auto_restart(false);
    rc = zygote_->ensure_started();
  }
  if (rc == 0 && !remote_) rc = Runtime::get().ensure_supervisor();
  for (size_t i = 0; rc == 0 && i < n; i++) rc = spawn(i);
  if (rc < 0) {
    int saved = rc;
    std::string msg = last_error_text();
    stop_workers(true);
    if (zygote_) zygote_->stop();
    return fail(saved, "%s", msg.c_str());
  }
  try {
    thread_ = thread_without_signals([this] { run(); });
  } catch (...) {
    stop_workers(true);
    if (zygote_) zygote_->stop();
    return fail(MPROC_EAGAIN, "cannot start the dispatcher thread");
  }
  return 0;
}

int Pool::spawn(size_t i) {
  if (remote_) return spawn_remote(i);
  SlotShm *s = slot(i);
  s->current.store(0);
  s->started_ns.store(0);
  SpscRing::init(ring_hdr(i, 0), shm_->ring_cap);
  SpscRing::init(ring_hdr(i, 1), shm_->ring_cap);
  size_t hdr = round64(sizeof(SpscHeader));
  Worker w;
  w.tasks = SpscRing(ring_hdr(i, 0), reinterpret_cast<char *>(ring_hdr(i, 0)) + hdr);
  w.results = SpscRing(ring_hdr(i, 1), reinterpret_cast<char *>(ring_hdr(i, 1)) + hdr);

  Boot b = {};
  b.parent_pid = getpid();
  b.seg_fd = seg_->fd();
  b.seg_size = seg_->size();
  b.base = reinterpret_cast<uintptr_t>(seg_->data());
  b.slot = static_cast<uint32_t>(i);
  b.max_tasks = opts_.max_tasks_per_child;
  b.inherited = zygote_ != nullptr;
  b.init_fn = reinterpret_cast<uintptr_t>(opts_.initializer);
  b.init_len = init_arg_.size();
  b.names_len = spawn_names_.size();
  auto core = std::make_shared<ProcessCore>();
  core->name = "PoolWorker-" + std::to_string(i);
  // Never outlives the program, also when it crashes. A spawned worker leaves when it sees the
  // parent's pidfd end, not by PR_SET_PDEATHSIG (which Linux ties to the thread that made it).
  core->daemon = !spawned();
  core->method = spawned() ? MPROC_START_SPAWN : MPROC_START_FORKSERVER;
  core->server = zygote_.get();  // null: the runtime's forkserver (or spawn)
  core->exec_argv = spawn_argv_;
  core->fn = worker_main;
  core->payload = spawned() ? nullptr : opts_.payload;
  core->arg.assign(reinterpret_cast<char *>(&b), reinterpret_cast<char *>(&b) + sizeof b);
  core->arg.insert(core->arg.end(), init_arg_.begin(), init_arg_.end());
  core->arg.insert(core->arg.end(), spawn_names_.begin(), spawn_names_.end());
  core->owner_pid = getpid();
  // Runs on the supervisor thread, maybe while the pool is being freed: it holds the mapping.
  core->on_exit = [seg = seg_] {
    auto *shm = static_cast<PoolShm *>(seg->data());
    shm->events.fetch_add(1, std::memory_order_release);
    if (shm->dispatcher_sleeps.load(std::memory_order_seq_cst)) futex_wake(&shm->events, 1);
  };
  int rc = process_start(core);
  if (rc < 0) return rc;
  w.proc = core;
  workers_[i] = std::move(w);
  std::lock_guard<std::mutex> g(mu_);
  stats_[i].pid = core->pid;
  return 0;
}

void Pool::wake() {
  shm_->events.fetch_add(1, std::memory_order_seq_cst);
  if (shm_->dispatcher_sleeps.load(std::memory_order_seq_cst)) futex_wake(&shm_->events, 1);
}

int Pool::submit(const std::shared_ptr<Job> &job) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (state_.load() != kRun) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    if (broken_code_) return fail(broken_code_, "%s", broken_msg_.c_str());
    if (job->lazy) lazy_.push_back(job);
    for (size_t c = 0; c < job->nchunks; c++)
      pending_.push_back(ChunkRef{job, static_cast<uint32_t>(c)});
  }
  wake();
  return 0;
}

int Pool::bulk_segment(size_t bytes, std::shared_ptr<Segment> *out, uint64_t *id) {
  std::lock_guard<std::mutex> g(mu_);
  // Reuse the last one when no job holds it: its pages are mapped in the workers already.
  if (bulk_cache_ && bulk_cache_.use_count() == 1 && bulk_cache_->size() >= bytes) {
    *out = bulk_cache_;
    *id = bulk_cache_id_;
    return 0;
  }
  auto seg = std::make_shared<Segment>();
  if (int rc = Segment::create(bytes, "mproc-map", seg.get())) return rc;
  static std::atomic<uint64_t> ids{0};
  bulk_cache_ = seg;
  bulk_cache_id_ = (static_cast<uint64_t>(getpid()) << 32) | ++ids;
  *out = std::move(seg);
  *id = bulk_cache_id_;
  return 0;
}

int Pool::cancel(const std::shared_ptr<Job> &job) {
  std::vector<ChunkRef> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->job == job) {
        dropped.push_back(*it);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    // What is already in workers is the dispatcher's: it fails those chunks and kills a worker
    // that is running one.
    cancel_requests_.push_back(job);
  }
  for (auto &ref : dropped) ref.job->fail_chunk(ref.chunk, MPROC_ECANCELED, 0, "canceled");
  wake();
  return 0;
}

int Pool::close() {
  int expected = kRun;
  state_.compare_exchange_strong(expected, kClosed);
  wake();
  return 0;
}

int Pool::terminate() {
  state_.store(kTerminated);
  wake();
  return 0;
}

int Pool::join(double timeout, bool interruptible) {
  if (state_.load() == kRun) return fail(MPROC_EINVAL, "join before close or terminate");
  {
    std::unique_lock<std::mutex> g(mu_);
    auto done = [this] { return finished_; };
    int rc = interruptible ? wait_interruptible(g, finished_cv_, Deadline::after(timeout), done)
                           : (finished_cv_.wait(g, done), 0);
    if (rc == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (rc != 0) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
  }
  if (!joined_ && thread_.joinable()) thread_.join();
  joined_ = true;
  return 0;
}

Pool::~Pool() {
  if (thread_.joinable()) {
    if (state_.load() == kRun) terminate();
    join(-1);
  }
  detach_backend();  // also when start() failed before the dispatcher ran
}

int Pool::broken(std::string *msg) {
  std::lock_guard<std::mutex> g(mu_);
  if (msg) *msg = broken_msg_;
  return broken_code_;
}

int Pool::stats(mproc_worker_stats_t *out, size_t cap) {
  std::lock_guard<std::mutex> g(mu_);
  for (size_t i = 0; i < stats_.size() && i < cap; i++) {
    out[i].pid = stats_[i].pid;
    out[i].tasks = stat_tasks_[i].load(std::memory_order_relaxed);
    out[i].busy_seconds = static_cast<double>(stat_busy_[i].load(std::memory_order_relaxed)) / 1e9;
    out[i].restarts = stats_[i].restarts;
    out[i].last_exit = stats_[i].last_exit;
  }
  return static_cast<int>(stats_.size());
}

void pools_shutdown() {
  std::vector<mproc_pool *> pools;
  const int self = getpid();
  for_each_handle(HandleKind::kPool, [&](void *h) {
    auto *p = static_cast<mproc_pool *>(h);
    if (p->owner_pid == self) pools.push_back(p);
  });
  for (auto *p : pools) {
    p->pool->terminate();
    p->pool->join(-1);
  }
}

// ---- the dispatcher thread ---------------------------------------------------------------

void Pool::set_broken(int code, const std::string &msg) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (broken_code_) return;
    broken_code_ = code;
    broken_msg_ = msg;
  }
  fail_all(code, msg);
  stop_workers(true);
}

void Pool::fail_all(int code, const std::string &msg) {
  std::deque<ChunkRef> pend;
  {
    std::lock_guard<std::mutex> g(mu_);
    pend.swap(pending_);
  }
  for (auto &ref : pend) ref.job->fail_chunk(ref.chunk, code, 0, msg);
  for (auto &w : workers_) {
    for (auto &f : w.inflight) f.ref.job->fail_chunk(f.ref.chunk, code, 0, msg);
    w.inflight.clear();
  }
}

void Pool::stop_workers(bool kill) {
  stopping_ = true;
  for (auto &w : workers_) {
    if (!w.proc || !w.proc->alive()) continue;
    if (kill) {
      process_signal(*w.proc, SIGKILL);
    } else {
      TaskHdr th = {0, kMsgStop, 0, 0, 0, 0};
      struct iovec iov = {&th, sizeof th};
      auto proc = w.proc;
      if (w.tasks.write(&iov, 1, Deadline::after(5.0), [&] { return !proc->alive(); }) < 0)
        process_signal(*w.proc, SIGKILL);
    }
  }
  for (auto &w : workers_) {
    if (!w.proc) continue;
    if (!kill && w.proc->wait_exit(10.0) != 0) process_signal(*w.proc, SIGKILL);
    w.proc->wait_exit(-1);
    w.handled_exit = true;
  }
}

bool Pool::collect(size_t i) {
  Worker &w = workers_[i];
  if (!w.results.valid()) return false;
  bool any = false;
  int r;
  while ((r = w.results.read(scratch_)) == 0) {
    std::vector<char> msg;
    msg.swap(scratch_);
    on_result(i, msg.data(), msg.size());
    scratch_.swap(msg);
    any = true;
  }
  // A corrupt result ring (the worker wrote outside its frames): handled as the worker's death.
  if (r == -EIO && w.proc) process_signal(*w.proc, SIGKILL);
  return any;
}

void Pool::on_result(size_t i, const char *data, size_t len) {
  Worker &w = workers_[i];
  if (len < sizeof(ResultHdr)) return;
  ResultHdr rh;
  memcpy(&rh, data, sizeof rh);
  if (remote_ && (rh.kind == kMsgReady || rh.kind == kMsgInitFailed) && rh.id != init_id_)
    return;  // the answer to an earlier pool's init
  if (rh.kind == kMsgReady) {
    w.ready = true;
    startup_deaths_ = 0;
    return;
  }
  if (rh.kind == kMsgInitFailed) {
    std::string text(data + sizeof rh, std::min<size_t>(rh.msg_len, len - sizeof rh));
    set_broken(MPROC_EINITFAILED, format("initializer failed in worker %zu (pid %d) with code %d: %s",
                                         i, w.proc ? w.proc->pid : 0, rh.fail_rc, text.c_str()));
    return;
  }
  if (w.inflight.empty() || w.inflight.front().id != rh.id) return;  // not ours: ignore
  Inflight f = std::move(w.inflight.front());
  w.inflight.pop_front();
  w.last_active = now_ns();
  stat_tasks_[i].fetch_add(1, std::memory_order_relaxed);
  stat_busy_[i].fetch_add(rh.busy_ns, std::memory_order_relaxed);
  Job &job = *f.ref.job;
  size_t c = f.ref.chunk;
  std::unique_lock<std::mutex> g(job.mu);
  if (c < job.chunk_base || job.chunk(c).state == Job::Chunk::State::kDone) return;  // canceled meanwhile
  size_t first = job.chunk(c).first, count = job.chunk(c).count;
  const char *p = data + sizeof rh;
  if (rh.kind == kMsgVar) {
    for (size_t k = 0; k < count && k < rh.count; k++) {
      ItemHdr ih;
      memcpy(&ih, p, sizeof ih);
      p += sizeof ih;
      size_t idx = first + k;
      Job::Item &it = job.item(idx);
      it.value.assign(p, p + ih.len);
      if (ih.rc != 0) {
        it.code = MPROC_ETASKFAILED;
        it.tcode = ih.rc;
        job.note_failure(idx, MPROC_ETASKFAILED, ih.rc, p, ih.len);
      }
      p += ih.len;
    }
  } else {
    const char *res = p;
    const char *msg_at = p + count * job.out_size;
    if (rh.kind == kMsgFixedBulk) {
      res = static_cast<const char *>(job.bulk->data()) + job.n * job.in_size + first * job.out_size;
      msg_at = p;
    }
    if (res != job.out + first * job.out_size)
      memcpy(job.out + first * job.out_size, res, count * job.out_size);
    if (rh.fail_rc)
      job.note_failure(first + rh.fail_index, MPROC_ETASKFAILED, rh.fail_rc, msg_at, rh.msg_len);
  }
  job.chunk_finished(c, g);
}

bool Pool::handle_exits() {
  bool any = false;
  for (size_t i = 0; i < workers_.size(); i++) {
    Worker &w = workers_[i];
    if (!w.proc || w.handled_exit || w.proc->alive()) continue;
    any = true;
    w.handled_exit = true;
    collect(i);
    w.results.drop_partial();
    int code, pid = w.proc->pid;
    {
      std::lock_guard<std::mutex> g(w.proc->mu);
      code = w.proc->exitcode;
    }
    std::string why = describe_exit(code);
    if (!w.inflight.empty()) {
      Inflight &f = w.inflight.front();
      if (slot(i)->current.load(std::memory_order_acquire) == f.id) {
        int reason = w.kill_task == f.id && w.kill_reason ? w.kill_reason : MPROC_EWORKERDIED;
        double tmo = f.ref.job->timeout > 0 ? f.ref.job->timeout : opts_.task_timeout;
        std::string msg =
            reason == MPROC_ETIMEDOUT
                ? format("task timed out after %g s; worker %zu (pid %d) was killed", tmo, i, pid)
            : reason == MPROC_ECANCELED
                ? format("task canceled; worker %zu (pid %d) was killed", i, pid)
                : format("worker %zu (pid %d) died while running the task: %s", i, pid,
                         why.c_str());
        f.ref.job->fail_chunk(f.ref.chunk, reason, code, msg);
        w.inflight.pop_front();
      }
      std::lock_guard<std::mutex> g(mu_);
      for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) {
        {
          Job &j = *it->ref.job;
          std::lock_guard<std::mutex> jg(j.mu);
          if (it->ref.chunk < j.chunk_base || j.chunk(it->ref.chunk).state == Job::Chunk::State::kDone) continue;
          j.chunk(it->ref.chunk).state = Job::Chunk::State::kQueued;
        }
        pending_.push_front(it->ref);
      }
      w.inflight.clear();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      stats_[i].restarts++;
      stats_[i].last_exit = code;
      stats_[i].pid = 0;
    }
    if (stopping_) continue;
    if (!w.ready) {
      if (++startup_deaths_ >= 3 * static_cast<int>(workers_.size())) {
        set_broken(MPROC_EWORKERDIED,
                   format("workers keep dying before their first task; the last one %s",
                          why.c_str()));
        continue;
      }
    }
    int st = state_.load();
    if (st == kTerminated || broken(nullptr)) continue;
    if (spawn(i) < 0)
      set_broken(MPROC_EWORKERDIED,
                 format("cannot start a replacement worker: %s", last_error_text()));
  }
  return any;
}

bool Pool::check_timeouts(Deadline *next) {
  bool any = false, any_canceled = false;
  uint64_t now = now_ns(), soonest = UINT64_MAX;
  for (size_t i = 0; i < workers_.size(); i++) {
    Worker &w = workers_[i];
    if (w.inflight.empty() || w.handled_exit) continue;
    Inflight &f = w.inflight.front();
    bool running = slot(i)->current.load(std::memory_order_acquire) == f.id;
    // A canceled chunk that was already in the worker's ring: kill the worker once it starts it.
    bool canceled = false;
    for (auto &g : w.inflight) {
      if (!cancel_scan_) break;
      std::lock_guard<std::mutex> jg(g.ref.job->mu);
      if (g.ref.chunk < g.ref.job->chunk_base || g.ref.job->chunk(g.ref.chunk).state == Job::Chunk::State::kDone) {
        canceled = true;
        if (&g == &f && running && w.kill_task != f.id) {
          w.kill_task = f.id;
          w.kill_reason = MPROC_ECANCELED;
          process_signal(*w.proc, SIGKILL);
          any = true;
        }
      }
    }
    if (canceled) {
      any_canceled = true;
      soonest = std::min<uint64_t>(soonest, now + 20000000ULL);  // look again
    }
    double tmo = f.ref.job->timeout > 0 ? f.ref.job->timeout : opts_.task_timeout;
    if (tmo <= 0 || !running) continue;
    uint64_t end = slot(i)->started_ns.load() + static_cast<uint64_t>(tmo * 1e9);
    if (now >= end) {
      if (w.kill_task != f.id) {
        w.kill_task = f.id;
        w.kill_reason = MPROC_ETIMEDOUT;
        process_signal(*w.proc, SIGKILL);
        any = true;
      }
    } else if (end < soonest) {
      soonest = end;
    }
  }
  if (!any_canceled) cancel_scan_ = false;  // no canceled chunk is waiting in a ring any more
  // A chunk may start running without waking us: look again in a while when timeouts are on.
  bool timeouts_on = opts_.task_timeout > 0;
  if (!timeouts_on)
    for (auto &w : workers_)
      if (!w.inflight.empty() && w.inflight.front().ref.job->timeout > 0) timeouts_on = true;
  if (timeouts_on) soonest = std::min<uint64_t>(soonest, now + 20000000ULL);  // 20 ms
  if (soonest != UINT64_MAX) *next = Deadline::at_ns(soonest);
  return any;
}

bool Pool::push(size_t i, const ChunkRef &ref) {
  Job &job = *ref.job;
  size_t c = ref.chunk, first, count;
  const char *abuf;
  const size_t *aoff;
  {
    std::lock_guard<std::mutex> g(job.mu);
    if (c < job.chunk_base || job.chunk(c).state == Job::Chunk::State::kDone) return true;  // canceled: drop it
    Job::Chunk &ch = job.chunk(c);
    ch.state = Job::Chunk::State::kInWorker;
    first = ch.first;
    count = ch.count;
    // A lazy chunk has its own arguments (indexed from 0); the deque keeps them in place.
    abuf = job.lazy ? ch.args.data() : job.args.data();
    aoff = job.lazy ? ch.off.data() : job.arg_off.data() + first;
  }
  TaskHdr th = {next_id_,
                job.kind == Job::Kind::kVar ? kMsgVar : job.bulk ? kMsgFixedBulk : kMsgFixed,
                static_cast<uint32_t>(count),
                job.kind == Job::Kind::kVar ? reinterpret_cast<uintptr_t>(job.fn)
                                            : reinterpret_cast<uintptr_t>(job.efn),
                static_cast<uint32_t>(job.in_size), static_cast<uint32_t>(job.out_size)};
  // Reused between pushes (dispatch lock held): no allocation per chunk.
  std::vector<struct iovec> &iov = push_iov_;
  std::vector<uint64_t> &lens = push_lens_;
  iov.clear();
  iov.push_back({&th, sizeof th});
  if (job.kind == Job::Kind::kVar) {
    lens.resize(count);
    iov.reserve(1 + 2 * count);
    for (size_t k = 0; k < count; k++) {
      size_t a = aoff[k], b = aoff[k + 1];
      lens[k] = b - a;
      iov.push_back({&lens[k], 8});
      if (b > a) iov.push_back({const_cast<char *>(abuf) + a, b - a});
    }
  } else if (job.bulk) {
    BulkRef br = {job.bulk_id, job.bulk->size(), job.bulk->fd(), 0, 0, job.n * job.in_size, first};
    iov.push_back({&br, sizeof br});
    return push_write(i, ref, iov);
  } else {
    iov.push_back({const_cast<char *>(job.in) + first * job.in_size, count * job.in_size});
  }
  return push_write(i, ref, iov);
}

bool Pool::push_write(size_t i, const ChunkRef &ref, std::vector<struct iovec> &iov) {
  Worker &w = workers_[i];
  Job &job = *ref.job;
  size_t c = ref.chunk;
  if (remote_) {
    uintptr_t fnp = job.kind == Job::Kind::kVar ? reinterpret_cast<uintptr_t>(job.fn)
                                                : reinterpret_cast<uintptr_t>(job.efn);
    const char *name = fn_name(fnp);  // checked at submission
    size_t first, count;
    {
      std::lock_guard<std::mutex> g(job.mu);
      first = job.chunk(c).first;
      count = job.chunk(c).count;
    }
    WireHdr wh = {kWireMagic, static_cast<uint32_t>(name ? strlen(name) : 0)};
    iov.insert(iov.begin(), {{&wh, sizeof wh}, {const_cast<char *>(name), wh.name_len}});
    what_ = job.apply       ? format("task '%s' (apply)", name ? name : "?")
            : count == 1    ? format("task '%s' (item %zu)", name ? name : "?", first)
                            : format("task '%s' (items %zu..%zu)", name ? name : "?", first,
                                     first + count - 1);
    int rc = transport_.send(transport_.self, static_cast<int>(i), iov.data(),
                             static_cast<int>(iov.size()), what_.c_str());
    if (rc < 0) {
      std::string msg = format("sending %s to worker %zu over the '%s' backend failed: %s",
                               what_.c_str(), i, transport_.name, mproc_strerror(rc));
      job.fail_chunk(c, rc, 0, msg);
      set_broken(rc, msg);
      return true;  // consumed: the chunk has failed
    }
    w.inflight.push_back(Inflight{ref, next_id_++});
    w.pushed++;
    return true;
  }
  auto proc = w.proc;
  // Staged: dispatch() publishes each worker's new chunks at once (see SpscRing::stage).
  int rc = 0;
  if (!w.tasks.stage(iov.data(), static_cast<int>(iov.size())))
    rc = w.tasks.write(iov.data(), static_cast<int>(iov.size()), Deadline(), [&] {
      // While the ring is full, keep results flowing (a worker may be blocked writing one).
      for (size_t j = 0; j < workers_.size(); j++) collect(j);
      return !proc->alive();
    });
  if (rc < 0) {
    std::lock_guard<std::mutex> g(job.mu);
    if (c >= job.chunk_base && job.chunk(c).state == Job::Chunk::State::kInWorker) job.chunk(c).state = Job::Chunk::State::kQueued;
    return false;
  }
  w.inflight.push_back(Inflight{ref, next_id_++});
  w.pushed++;
  return true;
}

bool Pool::refill() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> g(mu_);
    jobs = lazy_;
  }
  bool any = false;
  const size_t nw = workers_.size();
  for (auto &jp : jobs) {
    Job &j = *jp;
    size_t allowance;
    {
      std::lock_guard<std::mutex> g(j.mu);
      if (j.source_done) continue;
      size_t taken = j.n - j.delivered;  // taken from the input, not yet read back
      size_t queued = j.nchunks - j.chunks_done;
      if (taken + j.chunksize > j.bound && taken > 0) {
        j.starved = true;  // the consumer wakes us when a chunk's worth of room opens
        continue;
      }
      if (queued >= 2 * nw + 2) continue;
      allowance = std::min(j.bound - taken, j.chunksize);
    }
    // The user's callback runs without any lock held.
    Job::Chunk ch;
    ch.off.push_back(0);
    int rc = 1;
    while (ch.count < allowance) {
      const void *arg = nullptr;
      size_t len = 0;
      rc = j.next_fn(&arg, &len, j.next_payload);
      if (rc <= 0) break;
      if (!arg && len) {
        rc = fail(MPROC_EINVAL, "the input callback gave NULL with length %zu", len);
        break;
      }
      ch.args.insert(ch.args.end(), static_cast<const char *>(arg),
                     static_cast<const char *>(arg) + len);
      ch.off.push_back(ch.args.size());
      ch.count++;
    }
    std::unique_lock<std::mutex> g(j.mu);
    if (ch.count > 0 && !j.source_done) {
      size_t c = j.nchunks;
      j.add_chunk(ch.count);
      Job::Chunk &slot = j.chunk(c);
      slot.args = std::move(ch.args);
      slot.off = std::move(ch.off);
      std::lock_guard<std::mutex> pg(mu_);
      pending_.push_back(ChunkRef{jp, static_cast<uint32_t>(c)});
      any = true;
    }
    if (rc <= 0 && !j.source_done) {
      j.source_done = true;
      if (rc < 0) {
        j.end_code = rc;
        j.end_msg = format("the input callback failed: %s", mproc_strerror(rc));
      }
      any = true;
      j.finish_if_done(g);
    }
  }
  // Jobs whose source ended leave lazy_. Their locks are not taken under mu_: a job's lock is
  // taken before mu_ above (lock order).
  std::vector<const Job *> done;
  for (auto &jp : jobs) {
    std::lock_guard<std::mutex> jg(jp->mu);
    if (jp->source_done) done.push_back(jp.get());
  }
  std::lock_guard<std::mutex> g(mu_);
  lazy_.erase(std::remove_if(lazy_.begin(), lazy_.end(),
                             [&](const std::shared_ptr<Job> &j) {
                               return std::find(done.begin(), done.end(), j.get()) != done.end();
                             }),
              lazy_.end());
  return any;
}

void Pool::cut_lazy(int code, const char *why) {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> g(mu_);
    jobs.swap(lazy_);
  }
  for (auto &jp : jobs) {
    std::unique_lock<std::mutex> g(jp->mu);
    if (jp->source_done) continue;
    jp->source_done = true;
    jp->end_code = code;
    jp->end_msg = why;
    jp->finish_if_done(g);
  }
}

bool Pool::dispatch() {
  bool any = dispatch_some();
  for (auto &w : workers_)
    if (w.tasks.valid()) w.tasks.publish();
  return any;
}

bool Pool::dispatch_some() {
  size_t pend;
  {
    std::lock_guard<std::mutex> g(mu_);
    pend = pending_.size();
  }
  if (pend == 0) return false;
  size_t nw = workers_.size();
  size_t prefetch = std::min<size_t>(32, std::max<size_t>(2, pend / (2 * nw)));
  bool any = false;
  // Idle workers that finished last come first: they are likely still spinning, not asleep.
  std::vector<size_t> &order = order_;
  order.resize(nw);
  for (size_t i = 0; i < nw; i++) order[i] = i;
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) {
    return workers_[a].last_active > workers_[b].last_active;
  });
  for (size_t depth = 0; depth < prefetch; depth++) {
    for (size_t i : order) {
      Worker &w = workers_[i];
      if (w.inflight.size() != depth) continue;
      if (opts_.max_tasks_per_child > 0 &&
          w.pushed >= static_cast<uint64_t>(opts_.max_tasks_per_child))
        continue;
      if (!usable(w)) continue;
      ChunkRef ref;
      {
        std::lock_guard<std::mutex> g(mu_);
        if (pending_.empty()) return any;
        ref = std::move(pending_.front());
        pending_.pop_front();
      }
      if (!push(i, ref)) {
        std::lock_guard<std::mutex> g(mu_);
        pending_.push_front(std::move(ref));
        continue;
      }
      any = true;
    }
  }
  return any;
}

namespace {
// Set while this thread holds a pool's dispatch lock (callbacks run then; they must not help).
thread_local bool t_in_dispatch = false;
}  // namespace

bool Pool::help() {
  if (t_in_dispatch || state_.load() != kRun) return false;
  std::unique_lock<std::mutex> dl(dispatch_mu_, std::try_to_lock);
  if (!dl.owns_lock()) return false;
  t_in_dispatch = true;
  if (!stopping_) {
    if (remote_) collect_remote();
    for (size_t i = 0; i < workers_.size(); i++) collect(i);
    dispatch();
  }
  t_in_dispatch = false;
  return true;
}

int Pool::submit_and_wait(const std::shared_ptr<Job> &job) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (state_.load() != kRun) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    if (broken_code_) return fail(broken_code_, "%s", broken_msg_.c_str());
    for (size_t c = 0; c < job->nchunks; c++)
      pending_.push_back(ChunkRef{job, static_cast<uint32_t>(c)});
  }
  // Hand the work to a worker from this thread when the dispatcher is not busy: the result then
  // takes two hops (here -> worker -> here) instead of four. The dispatcher is woken whenever
  // work is left for it, and when this thread stops collecting.
  shm_->helpers.fetch_add(1, std::memory_order_seq_cst);
  bool pushed = help();
  bool left;
  {
    std::lock_guard<std::mutex> g(mu_);
    left = !pending_.empty();
  }
  if (!pushed || left) wake();
  uint64_t until = now_ns() + kHelperSpinNs;
  for (int i = 0;; i++) {
    if (job->ready.load(std::memory_order_acquire)) {
      shm_->helpers.fetch_sub(1, std::memory_order_seq_cst);
      return 0;
    }
    if ((i & 15) == 15) help();
    SpscRing::cpu_relax();
    if ((i & 63) == 63 && now_ns() >= until) break;
  }
  shm_->helpers.fetch_sub(1, std::memory_order_seq_cst);
  wake();  // a result a worker published while we were collecting is the dispatcher's now
  return job->wait(-1);
}

void Pool::run() {
  uint64_t idle_since = 0;
  bool finished = false;
  while (!finished) {
    uint32_t ev;
    bool progress = false;
    Deadline next;
    {
      // The dispatcher's state is shared with callers that help (see help()).
      std::lock_guard<std::mutex> dl(dispatch_mu_);
      t_in_dispatch = true;
      ev = shm_->events.load(std::memory_order_acquire);
      if (remote_) progress |= collect_remote();
      for (size_t i = 0; i < workers_.size(); i++) progress |= collect(i);
      progress |= handle_exits();
      progress |= check_timeouts(&next);

      std::vector<std::shared_ptr<Job>> cancels;
      {
        std::lock_guard<std::mutex> g(mu_);
        cancels.swap(cancel_requests_);
      }
      for (auto &cj : cancels) {
        cancel_scan_ = true;
        for (size_t i = 0; i < workers_.size(); i++) {
          Worker &w = workers_[i];
          for (size_t k = 0; k < w.inflight.size(); k++) {
            Inflight &f = w.inflight[k];
            if (f.ref.job.get() != cj.get()) continue;
            if (k == 0 && slot(i)->current.load() == f.id && w.kill_task != f.id) {
              w.kill_task = f.id;
              w.kill_reason = MPROC_ECANCELED;
              process_signal(*w.proc, SIGKILL);  // its death fails the chunk (as canceled)
            } else {
              f.ref.job->fail_chunk(f.ref.chunk, MPROC_ECANCELED, 0, "canceled");
            }
          }
        }
        progress = true;
      }

      int st = state_.load();
      if (st == kRun) progress |= refill();
      if (st == kTerminated) {
        cut_lazy(MPROC_ECANCELED, "the pool was terminated before the input was read");
        fail_all(MPROC_ECANCELED, "the pool was terminated");
        stop_workers(true);
        handle_exits();
        finished = true;
      } else {
        progress |= dispatch();
        if (st == kClosed) {
          cut_lazy(MPROC_ECLOSED, "the pool was closed before the input was read");
          bool idle_all;
          {
            std::lock_guard<std::mutex> g(mu_);
            idle_all = pending_.empty() || broken_code_;
          }
          for (auto &w : workers_) idle_all = idle_all && w.inflight.empty();
          if (idle_all) {
            stop_workers(false);
            handle_exits();
            finished = true;
          }
        }
      }
      t_in_dispatch = false;
    }
    if (finished) break;
    if (progress) {
      idle_since = 0;
      remote_poll_ns_ = kRemotePollMinNs;
      continue;
    }
    uint64_t t = now_ns();
    if (idle_since == 0) idle_since = t;
    if (t - idle_since < kDispatcherSpinNs) {
      for (int k = 0; k < 32; k++) SpscRing::cpu_relax();
      continue;
    }
    idle_since = 0;
    if (remote_) {
      // A backend's workers cannot wake us: while they owe answers, look again soon, then
      // less and less often.
      bool owed = false;
      {
        std::lock_guard<std::mutex> dl(dispatch_mu_);
        for (auto &w : workers_) owed = owed || !w.inflight.empty() || !w.ready;
      }
      if (owed) {
        uint64_t at = now_ns() + remote_poll_ns_;
        uint64_t cur = next.infinite ? UINT64_MAX
                                     : static_cast<uint64_t>(next.at.tv_sec) * 1000000000ULL +
                                           static_cast<uint64_t>(next.at.tv_nsec);
        if (at < cur) next = Deadline::at_ns(at);
        remote_poll_ns_ = std::min<uint64_t>(remote_poll_ns_ * 2, kRemotePollMaxNs);
      }
    }
    shm_->dispatcher_sleeps.store(1, std::memory_order_seq_cst);
    bool pending = shm_->events.load(std::memory_order_seq_cst) != ev;
    if (!pending) {
      // Workers bump `events` only when they see this flag: a result published before it was
      // set is in a ring.
      std::lock_guard<std::mutex> dl(dispatch_mu_);
      for (auto &w : workers_) pending = pending || (w.results.valid() && w.results.readable());
    }
    if (!pending) futex_wait(&shm_->events, ev, next);
    shm_->dispatcher_sleeps.store(0, std::memory_order_relaxed);
  }
  if (zygote_) zygote_->stop();
  detach_backend();  // no more transport calls from this pool: another may use the backend
  std::lock_guard<std::mutex> g(mu_);
  finished_ = true;
  finished_cv_.notify_all();
}

// ---- backends ----------------------------------------------------------------------------

namespace {
struct Backend {
  mproc_transport_t t;
  std::string name;
  bool busy = false;  // a pool uses it
};
std::mutex g_backends_mu;
std::map<std::string, std::unique_ptr<Backend>> &backends() {
  static auto *m = new std::map<std::string, std::unique_ptr<Backend>>;
  return *m;
}
}  // namespace

int backend_register(const mproc_transport_t &t) {
  if (t.size < sizeof(mproc_transport_t))
    return fail(MPROC_EINVAL, "t->size %zu is not sizeof(mproc_transport_t)", t.size);
  if (!t.name || !*t.name || !t.send || !t.recv || !t.release || t.nworkers < 1)
    return fail(MPROC_EINVAL, "a transport needs a name, send, recv, release and workers >= 1");
  if (strcmp(t.name, "local") == 0) return fail(MPROC_EINVAL, "'local' is the built-in backend");
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto &m = backends();
  if (m.count(t.name)) return fail(MPROC_EEXIST, "backend '%s' is registered already", t.name);
  auto b = std::make_unique<Backend>();
  b->t = t;
  b->name = t.name;
  b->t.name = b->name.c_str();
  m.emplace(b->name, std::move(b));
  return 0;
}

int backend_unregister(const char *name) {
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto &m = backends();
  auto it = m.find(name);
  if (it == m.end()) return fail(MPROC_ENOENT, "no backend '%s' is registered", name);
  if (it->second->busy) return fail(MPROC_EBUSY, "a pool uses backend '%s'", name);
  m.erase(it);
  return 0;
}

int backend_serve(const mproc_transport_t &t, int worker, void *payload) {
  if (t.size < sizeof(mproc_transport_t) || !t.send || !t.recv || !t.release)
    return fail(MPROC_EINVAL, "a transport needs its size, send, recv and release");
  int rc = serve_backend(t, worker, payload);
  return rc < 0 ? fail(rc, "the transport failed: %s", mproc_strerror(rc)) : 0;
}

int Pool::attach_backend(const mproc_pool_opts_t &o) {
  const char *want = o.backend;
  if (!want) want = getenv("MPROC_POOL_BACKEND");
  if (!want || !*want || strcmp(want, "local") == 0) return 0;
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto it = backends().find(want);
  if (it == backends().end())
    return fail(MPROC_ENOENT,
                "no pool backend '%s' is registered (an MPI pool needs libmproc-mpi and "
                "mproc_mpi_init(), see mproc/mpi.h)", want);
  Backend &b = *it->second;
  if (b.busy)
    return fail(MPROC_EBUSY, "a pool over backend '%s' is open already (one at a time)", want);
  if (o.task_timeout > 0 || o.max_tasks_per_child > 0)
    return fail(MPROC_ENOSYS, "task timeouts and max_tasks_per_child need workers the pool can "
                              "kill and replace: not on the '%s' backend", want);
  if (o.initializer && !fn_name(reinterpret_cast<uintptr_t>(o.initializer)))
    return fail(MPROC_EINVAL, "the initializer is not registered (mproc_init_register): the '%s' "
                              "backend runs functions by name", want);
  if (o.workers > b.t.nworkers)
    return fail(MPROC_EINVAL, "%d workers asked, the '%s' backend has %d", o.workers, want,
                b.t.nworkers);
  b.busy = true;
  transport_ = b.t;
  remote_ = true;
  attached_ = true;
  return 0;
}

void Pool::detach_backend() {
  if (!remote_ || !attached_) return;
  attached_ = false;
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto it = backends().find(transport_.name);
  if (it != backends().end()) it->second->busy = false;
}

int Pool::spawn_remote(size_t i) {
  if (init_id_ == 0) init_id_ = next_id_++;
  const char *iname =
      opts_.initializer ? fn_name(reinterpret_cast<uintptr_t>(opts_.initializer)) : nullptr;
  WireHdr wh = {kWireMagic, static_cast<uint32_t>(iname ? strlen(iname) : 0)};
  TaskHdr th = {init_id_, kMsgInit, 0, 0, 0, 0};
  struct iovec iov[4] = {{&wh, sizeof wh},
                         {const_cast<char *>(iname), wh.name_len},
                         {&th, sizeof th},
                         {init_arg_.data(), init_arg_.size()}};
  new (slot(i)) SlotShm();
  workers_[i] = Worker();
  int rc = transport_.send(transport_.self, static_cast<int>(i), iov, 4,
                           iname ? "the pool's initializer" : "the pool's start");
  if (rc < 0)
    return fail(rc, "cannot reach worker %zu over the '%s' backend: %s", i, transport_.name,
                mproc_strerror(rc));
  return 0;
}

bool Pool::collect_remote() {
  bool any = false;
  for (int k = 0; k < 1024; k++) {
    void *m = nullptr;
    size_t len = 0;
    int w = -1;
    int rc = transport_.recv(transport_.self, 0, &w, &m, &len);
    if (rc == 0) break;
    if (rc < 0) {
      set_broken(rc, format("the '%s' backend failed to receive: %s", transport_.name,
                            mproc_strerror(rc)));
      break;
    }
    if (w >= 0 && static_cast<size_t>(w) < workers_.size()) on_result(static_cast<size_t>(w),
                                                                      static_cast<char *>(m), len);
    transport_.release(transport_.self, m);
    any = true;
  }
  return any;
}

}  // namespace mproc
