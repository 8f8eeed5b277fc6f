// The pool: its shared segment, its workers (started, replaced), submission, cancel, close.
//
// Shared memory (one memfd segment, mapped by the parent and every worker, wire.hpp): a header
// with the `events` futex word, a slot per worker saying which chunk it runs and since when, and
// two SPSC rings per worker (tasks in, results out; ipc/spsc.hpp). The dispatcher (dispatch.cpp)
// moves chunks between the pending queue and the rings; the worker loop is in worker.cpp.
#include "pool/pool.hpp"

#include <signal.h>
#include <unistd.h>

#include "base/align.hpp"
#include "base/error.hpp"
#include "base/handles.hpp"
#include "base/interrupt.hpp"
#include "base/names.hpp"
#include "base/thread.hpp"
#include "proc/runtime.hpp"

namespace mproc {

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
  shm_->magic = kPoolMagic;
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
  w.tasks = SpscRing(ring_hdr(i, 0), reinterpret_cast<char *>(ring_hdr(i, 0)) + hdr, shm_->ring_cap);
  w.results = SpscRing(ring_hdr(i, 1), reinterpret_cast<char *>(ring_hdr(i, 1)) + hdr, shm_->ring_cap);

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
    if (state_.load() != State::kRun) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    if (broken_code_) return fail(broken_code_, "%s", broken_msg_.c_str());
    if (job->lazy()) lazy_.push_back(job);
    for (size_t c = 0; c < job->nchunks(); c++)
      pending_.push_back(ChunkRef{job, static_cast<uint32_t>(c)});
  }
  wake();
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

bool Pool::take_cancels() {
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
  }
  return !cancels.empty();
}

int Pool::close() {
  State expected = State::kRun;
  state_.compare_exchange_strong(expected, State::kClosed);
  wake();
  return 0;
}

int Pool::terminate() {
  state_.store(State::kTerminated);
  wake();
  return 0;
}

int Pool::join(double timeout, bool interruptible) {
  if (state_.load() == State::kRun) return fail(MPROC_EINVAL, "join before close or terminate");
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
    if (state_.load() == State::kRun) terminate();
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

}  // namespace mproc
