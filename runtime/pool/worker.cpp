// The pool's worker: the loop a worker process runs (worker_main, local workers fed through the
// segment's rings) and the same loop over a backend's transport (serve_backend, functions found
// by registered name). A worker reads a task message, notes the chunk in its slot (so that the
// parent knows what it ran if it dies), runs the function per item and writes one result
// message; wire.hpp has the formats.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include <mproc/queue.h>

#include "base/align.hpp"
#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/names.hpp"
#include "base/pidfd.hpp"
#include "ipc/spsc.hpp"
#include "pool/pool.hpp"
#include "pool/wire.hpp"

namespace mproc {

std::string format(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

namespace {
// Spins before sleeping on a futex, in ns. Short: on a 2-core machine the spinners compete with
// the threads that would give them work.
constexpr long kWorkerSpinNs = 50000;

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
}  // namespace

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
  SpscRing tasks(reinterpret_cast<SpscHeader *>(mine), mine + hdr, shm->ring_cap);
  SpscRing results(reinterpret_cast<SpscHeader *>(mine + shm->ring_stride),
                   mine + shm->ring_stride + hdr, shm->ring_cap);

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


}  // namespace mproc

int mproc_task_ctx::set_result(const void *data, size_t len) {
  if (len > MPROC_QUEUE_MSG_MAX)
    return mproc::fail(MPROC_EMSGSIZE, "a result of %zu bytes is over the limit of %zu bytes", len,
                       static_cast<size_t>(MPROC_QUEUE_MSG_MAX));
  out->resize(item_start);
  if (len) out->insert(out->end(), static_cast<const char *>(data),
                       static_cast<const char *>(data) + len);
  return 0;
}

void mproc_task_ctx::set_failure(const char *fmt, va_list ap) {
  msg.clear();
  if (!fmt) return;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, fmt, ap);
  if (n > 0) {
    msg.resize(static_cast<size_t>(n) + 1);
    vsnprintf(&msg[0], msg.size(), fmt, ap2);
    msg.resize(static_cast<size_t>(n));
  }
  va_end(ap2);
}
