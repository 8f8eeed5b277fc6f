// The process pool: workers fed through shared-memory rings by one dispatcher thread.
#pragma once
#include <mproc/backend.h>
#include <mproc/pool.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <sys/uio.h>

#include "ipc/spsc.hpp"
#include "proc/forkserver.hpp"
#include "proc/process.hpp"
#include "shm/segment.hpp"

namespace mproc {

class Pool;

// One submission (apply, map, imap): its inputs, and its results as chunks complete.
struct Job {
  enum class Kind { kVar, kFixed };
  // One item's outcome (kVar): result bytes, or the failure message when code != 0.
  struct Item {
    std::vector<char> value;
    int code = 0;   // 0 or an MPROC_E* code
    int tcode = 0;  // the task's own return code
    bool ready = false, delivered = false;
  };
  // One chunk: items [first, first + count). A lazy job's chunks carry their own arguments.
  struct Chunk {
    size_t first = 0, count = 0;
    enum class State : uint8_t { kQueued, kInWorker, kDone };
    State state = State::kQueued;
    std::vector<char> args;
    std::vector<size_t> off;  // count + 1 offsets into args
  };

  Kind kind = Kind::kVar;
  bool apply = false;
  mproc_task_fn fn = nullptr;
  mproc_elem_fn efn = nullptr;
  std::vector<char> args;       // kVar, not lazy: argument bytes back to back (copied)
  std::vector<size_t> arg_off;  // kVar, not lazy: n + 1 offsets into args
  const char *in = nullptr;     // kFixed: the caller's arrays
  char *out = nullptr;
  std::shared_ptr<Segment> bulk;  // kFixed, large: in and out arrays shared with the workers
  uint64_t bulk_id = 0;
  size_t in_size = 0, out_size = 0;
  size_t n = 0, chunksize = 1, nchunks = 0;  // lazy: items and chunks taken so far
  double timeout = 0;
  enum class Iter { kNone, kOrdered, kUnordered };  // read whole, or with mproc_async_next
  Iter iter = Iter::kNone;

  // Lazy input (mproc_pool_imap_lazy): pulled on the dispatcher thread while fewer than
  // `bound` items are taken but not yet handed to the consumer.
  bool lazy = false;
  mproc_next_fn next_fn = nullptr;
  void *next_payload = nullptr;
  size_t bound = 0;
  bool source_done = true;  // lazy: false until the source ends (or is cut)
  int end_code = 0;         // lazy: why the source was cut (MPROC_ECLOSED, ECANCELED, ...)
  std::string end_msg;
  bool end_reported = false;
  bool starved = false;     // lazy: the dispatcher stopped reading for want of room (under mu)

  mproc_async_cb cb = nullptr, ecb = nullptr;
  void *cb_payload = nullptr;
  mproc_progress_cb progress = nullptr;
  void *progress_payload = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> ready{false};
  mproc_async_t *handle = nullptr;  // for callbacks; cleared when the handle is freed
  mproc_pool_t *owner = nullptr;    // the pool's handle (checked in the registry before use)
  size_t chunks_done = 0, items_done = 0;
  // Items and chunks as windows: an iterated job drops what the consumer has taken, so an
  // endless imap keeps its memory flat. item(i) is items[i - item_base].
  std::deque<Item> items;
  size_t item_base = 0;
  std::deque<Chunk> chunks;
  size_t chunk_base = 0;
  int err = 0, task_code = 0;
  size_t err_index = SIZE_MAX;
  std::string err_msg;
  // iteration
  size_t next_ordered = 0, delivered = 0;
  std::deque<size_t> unordered;

  Item &item(size_t i) { return items[i - item_base]; }
  Chunk &chunk(size_t c) { return chunks[c - chunk_base]; }
  // Add chunks covering items [n, n + count) (under mu, or before submission).
  void add_chunk(size_t count);
  // Record item results / a failure of a whole chunk (dispatcher thread; takes mu).
  void fail_chunk(size_t c, int code, int tcode, const std::string &msg);
  // After a chunk's items are recorded: count it, finish the job when it was the last.
  void chunk_finished(size_t c, std::unique_lock<std::mutex> &g);
  // Finish the job if nothing more can come (under mu; releases it).
  void finish_if_done(std::unique_lock<std::mutex> &g);
  void note_failure(size_t index, int code, int tcode, const char *msg, size_t msg_len);
  // Drop the front of the windows that the consumer no longer needs (under mu).
  void trim();
  int wait(double timeout);
};

struct ChunkRef {
  std::shared_ptr<Job> job;
  uint32_t chunk;
};

// Shared memory: the pool header, a slot per worker, then two rings per worker.
struct PoolShm {
  uint32_t magic;
  uint32_t nworkers;
  uint64_t ring_cap;
  uint64_t ring_stride;
  alignas(64) std::atomic<uint32_t> events;  // bumped by anyone who wants the dispatcher
  std::atomic<uint32_t> dispatcher_sleeps;
  std::atomic<uint32_t> helpers;  // callers collecting results themselves (see help())
};
struct SlotShm {
  alignas(64) std::atomic<uint64_t> current;  // id of the chunk being run, 0 if none
  std::atomic<uint64_t> started_ns;           // monotonic ns when it started
};

class Pool {
 public:
  Pool() = default;
  ~Pool();
  int start(const mproc_pool_opts_t &o);
  int submit(const std::shared_ptr<Job> &job);
  // Submit and wait for the job, doing the dispatcher's work from this thread while it can
  // (blocking apply/map). 0 (see the job for its outcome), MPROC_EINTR, or a submit error.
  int submit_and_wait(const std::shared_ptr<Job> &job);
  // Do one round of the dispatcher's work (collect results, hand out chunks) if nobody else is.
  bool help();
  int cancel(const std::shared_ptr<Job> &job);
  // A shared segment of at least `bytes` for a fixed map's arrays (see BulkRef in pool.cpp).
  int bulk_segment(size_t bytes, std::shared_ptr<Segment> *out, uint64_t *id);
  int close();
  int terminate();
  // Wait for the dispatcher to end (after close/terminate).
  int join(double timeout, bool interruptible = false);
  bool closed() const { return state_.load() != kRun; }
  int nworkers() const { return static_cast<int>(workers_.size()); }
  int stats(mproc_worker_stats_t *out, size_t cap);
  void wake();  // bump events and wake the dispatcher if it sleeps
  int broken(std::string *msg);
  // Workers of a backend (mproc/backend.h) rather than local processes.
  bool remote() const { return remote_; }
  // Local workers made by the spawn start method: functions travel by registered name.
  bool spawned() const { return opts_.start_method == MPROC_START_SPAWN && !remote_; }
  const char *backend() const { return remote_ ? transport_.name : "local"; }

 private:
  enum State { kRun = 0, kClosed = 1, kTerminated = 2 };
  struct Inflight {
    ChunkRef ref;
    uint64_t id;
  };
  struct Worker {
    std::shared_ptr<ProcessCore> proc;
    SpscRing tasks, results;
    std::deque<Inflight> inflight;
    uint64_t pushed = 0, last_active = 0;
    bool ready = false, handled_exit = false;
    int kill_reason = 0;
    uint64_t kill_task = 0;
  };
  struct WorkerStats {
    int pid = 0, restarts = 0, last_exit = 0;
  };

  SlotShm *slot(size_t i) const;
  SpscHeader *ring_hdr(size_t i, int which) const;
  int spawn(size_t i);
  void run();  // the dispatcher thread
  bool collect(size_t i);
  void on_result(size_t i, const char *msg, size_t len);
  bool collect_remote();  // take what a backend's workers sent
  int spawn_remote(size_t i);
  int attach_backend(const mproc_pool_opts_t &o);  // start(): take the backend opts name
  void detach_backend();  // give the claim back (idempotent)
  bool usable(const Worker &w) const {
    return remote_ ? !w.handled_exit : w.proc && !w.handled_exit && w.proc->alive();
  }
  bool handle_exits();
  bool check_timeouts(Deadline *next);
  bool dispatch();       // hand pending chunks to workers, then publish them
  bool dispatch_some();
  bool push(size_t i, const ChunkRef &ref);
  bool push_write(size_t i, const ChunkRef &ref, std::vector<struct iovec> &iov);
  void fail_all(int code, const std::string &msg);
  void stop_workers(bool kill);
  void set_broken(int code, const std::string &msg);

  mproc_pool_opts_t opts_{};
  std::vector<char> init_arg_;
  std::shared_ptr<Segment> seg_;
  // FORK pools: a single-threaded copy of the program made at pool creation forks every worker,
  // the first ones and their replacements alike (see docs/pool.md).
  std::unique_ptr<ForkServer> zygote_;
  std::vector<std::string> spawn_argv_;  // spawned workers: the program (empty: this one)
  std::vector<char> spawn_names_;        // spawned workers: NameRecs of the registered functions
  PoolShm *shm_ = nullptr;
  std::vector<Worker> workers_;  // dispatcher thread only, once started

  std::mutex dispatch_mu_;  // workers_ and the rings' reading ends: the dispatcher or a helper
  std::mutex mu_;  // pending_, broken_, stats_, finished_
  std::condition_variable finished_cv_;
  bool finished_ = false;
  std::deque<ChunkRef> pending_;
  std::vector<WorkerStats> stats_;
  // Per worker slot, updated by the dispatcher (or a helper) for every chunk without a lock.
  std::unique_ptr<std::atomic<uint64_t>[]> stat_tasks_, stat_busy_;
  std::vector<struct iovec> push_iov_;  // dispatch lock
  std::vector<uint64_t> push_lens_;
  std::vector<size_t> order_;           // dispatch lock
  bool cancel_scan_ = false;            // dispatch lock: a canceled chunk may sit in a ring
  int broken_code_ = 0;
  std::string broken_msg_;
  std::atomic<int> state_{kRun};
  std::atomic<int> cancels_{0};
  std::vector<std::shared_ptr<Job>> cancel_requests_;  // under mu_
  std::vector<std::shared_ptr<Job>> lazy_;             // under mu_: lazy jobs still reading
  std::shared_ptr<Segment> bulk_cache_;                // under mu_
  uint64_t bulk_cache_id_ = 0;
  bool refill();                                       // pull lazy input (dispatcher thread)
  void cut_lazy(int code, const char *why);
  int startup_deaths_ = 0;
  bool stopping_ = false;  // dispatcher thread: workers are being stopped on purpose
  uint64_t next_id_ = 1;
  // A backend's pool: its transport (a copy; the name points at the registry's string).
  bool remote_ = false;
  bool attached_ = false;  // holds the backend's one-pool-at-a-time claim (dispatcher, then ~Pool)
  mproc_transport_t transport_{};
  uint64_t init_id_ = 0;         // the id of the init messages (their answers echo it)
  uint64_t remote_poll_ns_ = 10000;  // ns: how long the dispatcher sleeps between looks at the transport
  std::string what_;             // dispatch lock: a chunk's description for the transport
  std::thread thread_;
  bool joined_ = false;
  std::vector<char> scratch_;
};

// Wait until any(): a process-wide signal bumped whenever a job becomes ready.
int wait_any_ready(const std::function<bool()> &any, double timeout);

// Terminate and join every pool of this process (mproc_shutdown, exit).
void pools_shutdown();

// Pool backends (mproc/backend.h): the transports registered by name.
int backend_register(const mproc_transport_t &t);
int backend_unregister(const char *name);
int backend_serve(const mproc_transport_t &t, int worker, void *payload);

}  // namespace mproc

struct mproc_async {
  std::shared_ptr<mproc::Job> job;
  std::vector<char> iter_item;  // the item last returned by mproc_async_next
};
struct mproc_pool {
  std::unique_ptr<mproc::Pool> pool;
  int owner_pid;
};
struct mproc_task_ctx {
  std::vector<char> *out;  // the result message being built; the task's bytes go at its end
  size_t item_start;
  std::string msg;
  int worker;
};
