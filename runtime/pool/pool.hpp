// The process pool: workers fed through shared-memory rings by one dispatcher thread.
//
// Files of pool/: pool.cpp (this class: start, workers, submission, cancel, close), dispatch.cpp
// (the dispatcher: chunks to workers, results back, exits, timeouts, lazy input), worker.cpp
// (the worker process's loop), job.cpp (a submission from arguments to delivered results),
// chunking.hpp (chunk sizes), bulk.hpp (a large fixed map's shared arrays), backend.cpp (the
// registry of transports and a pool over one), wire.hpp (the shared layout and messages).
#pragma once
#include <mproc/backend.h>
#include <mproc/pool.h>

#include <atomic>
#include <cstdarg>
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
#include "pool/bulk.hpp"
#include "pool/job.hpp"
#include "pool/wire.hpp"
#include "proc/forkserver.hpp"
#include "proc/process.hpp"
#include "shm/segment.hpp"

namespace mproc {

class Pool;

struct ChunkRef {
  std::shared_ptr<Job> job;
  uint32_t chunk;
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
  // A shared segment of at least `bytes` for a fixed map's arrays (bulk.hpp, BulkRef).
  int bulk_segment(size_t bytes, std::shared_ptr<Segment> *out, uint64_t *id) {
    return bulk_.get(bytes, out, id);
  }
  int close();
  int terminate();
  // Wait for the dispatcher to end (after close/terminate).
  int join(double timeout, bool interruptible = false);
  bool closed() const { return state_.load() != State::kRun; }
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
  enum class State { kRun, kClosed, kTerminated };
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
  bool take_cancels();  // fail or kill what cancel() asked for (dispatch lock)
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
  TaskMsg push_msg_;                    // dispatch lock
  std::vector<size_t> order_;           // dispatch lock
  bool cancel_scan_ = false;            // dispatch lock: a canceled chunk may sit in a ring
  int broken_code_ = 0;
  std::string broken_msg_;
  std::atomic<State> state_{State::kRun};
  std::atomic<int> cancels_{0};
  std::vector<std::shared_ptr<Job>> cancel_requests_;  // under mu_
  std::vector<std::shared_ptr<Job>> lazy_;             // under mu_: lazy jobs still reading
  BulkCache bulk_;
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

// Terminate and join every pool of this process (mproc_shutdown, exit).
void pools_shutdown();

// Pool backends (mproc/backend.h): the transports registered by name.
int backend_register(const mproc_transport_t &t);
int backend_unregister(const char *name);
int backend_serve(const mproc_transport_t &t, int worker, void *payload);

}  // namespace mproc

struct mproc_pool {
  std::unique_ptr<mproc::Pool> pool;
  int owner_pid;
};
// What a running task reports through (worker.cpp builds one per worker).
struct mproc_task_ctx {
  std::vector<char> *out;  // the result message being built; the task's bytes go at its end
  size_t item_start;
  std::string msg;
  int worker;
  // The task's result bytes (replacing any given before); MPROC_EMSGSIZE over the limit.
  int set_result(const void *data, size_t len);
  // The failure message, printf-style (NULL fmt: none).
  void set_failure(const char *fmt, va_list ap);
};
