// The pool's dispatcher: one thread in the parent (or a caller that helps, see help()) moves
// chunks from the pending queue into the workers' rings (a few per worker, so a worker never
// waits for the parent; a round's chunks for one worker are published at once), reads results,
// completes jobs and runs their callbacks. A worker bumps `events` after a result only when the
// dispatcher sleeps (an awake one looks at every ring); the supervisor's exit hook bumps it
// when a worker dies.
//
// Never hang: the parent remembers which chunks it pushed to which worker (in order). When a
// worker ends, its complete results are read first; if its slot still names the oldest chunk,
// that chunk was running and fails (MPROC_EWORKERDIED with the signal or status, or
// MPROC_ETIMEDOUT / MPROC_ECANCELED when the pool killed it for that); the chunks behind it had
// not started and go back to the front of the queue. Then the slot gets a new worker.
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cstdio>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/names.hpp"
#include "pool/pool.hpp"
#include "pool/wire.hpp"

namespace mproc {
namespace {

// Spins before sleeping, in ns. Short: on a 2-core machine the spinners compete with the threads
// that would give them work.
constexpr uint64_t kDispatcherSpinNs = 50000;
constexpr uint64_t kHelperSpinNs = 100000;  // a blocking apply/map helps this long, then sleeps
// A backend's workers cannot wake the dispatcher: it looks at the transport this often, from
// the minimum after any progress, doubling up to the maximum while nothing comes.
constexpr uint64_t kRemotePollMinNs = 10000;
constexpr uint64_t kRemotePollMaxNs = 1000000;

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

// Set while this thread holds a pool's dispatch lock (callbacks run then; they must not help).
thread_local bool t_in_dispatch = false;

}  // namespace

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
  f.ref.job->take_result(f.ref.chunk, rh, data + sizeof rh);
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
        double tmo = f.ref.job->timeout() > 0 ? f.ref.job->timeout() : opts_.task_timeout;
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
        if (it->ref.job->requeue(it->ref.chunk)) pending_.push_front(it->ref);
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
    State st = state_.load();
    if (st == State::kTerminated || broken(nullptr)) continue;
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
      if (g.ref.job->gone(g.ref.chunk)) {
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
    double tmo = f.ref.job->timeout() > 0 ? f.ref.job->timeout() : opts_.task_timeout;
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
      if (!w.inflight.empty() && w.inflight.front().ref.job->timeout() > 0) timeouts_on = true;
  if (timeouts_on) soonest = std::min<uint64_t>(soonest, now + 20000000ULL);  // 20 ms
  if (soonest != UINT64_MAX) *next = Deadline::at_ns(soonest);
  return any;
}

bool Pool::push(size_t i, const ChunkRef &ref) {
  // Reused between pushes (dispatch lock held): no allocation per chunk.
  if (!ref.job->encode(ref.chunk, next_id_, &push_msg_)) return true;  // canceled: drop it
  return push_write(i, ref, push_msg_.iov);
}

bool Pool::push_write(size_t i, const ChunkRef &ref, std::vector<struct iovec> &iov) {
  Worker &w = workers_[i];
  Job &job = *ref.job;
  size_t c = ref.chunk;
  if (remote_) {
    const char *name = fn_name(job.fn_addr());  // checked at submission
    WireHdr wh = {kWireMagic, static_cast<uint32_t>(name ? strlen(name) : 0)};
    iov.insert(iov.begin(), {{&wh, sizeof wh}, {const_cast<char *>(name), wh.name_len}});
    what_ = job.describe(c, name);
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
    job.requeue(c);
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
  for (auto &jp : jobs) {
    // A new chunk is queued under the job's lock (taken before mu_: lock order).
    any |= jp->refill(workers_.size(), [&](size_t c) {
      std::lock_guard<std::mutex> pg(mu_);
      pending_.push_back(ChunkRef{jp, static_cast<uint32_t>(c)});
    });
  }
  // Jobs whose source ended leave lazy_. Their locks are not taken under mu_.
  std::vector<const Job *> done;
  for (auto &jp : jobs)
    if (jp->source_done()) done.push_back(jp.get());
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
  for (auto &jp : jobs) jp->cut(code, why);
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


bool Pool::help() {
  if (t_in_dispatch || state_.load() != State::kRun) return false;
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
    if (state_.load() != State::kRun) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    if (broken_code_) return fail(broken_code_, "%s", broken_msg_.c_str());
    for (size_t c = 0; c < job->nchunks(); c++)
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
    if (job->ready()) {
      shm_->helpers.fetch_sub(1, std::memory_order_seq_cst);
      return 0;
    }
    if ((i & 15) == 15) help();
    cpu_relax();
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

      progress |= take_cancels();

      State st = state_.load();
      if (st == State::kRun) progress |= refill();
      if (st == State::kTerminated) {
        cut_lazy(MPROC_ECANCELED, "the pool was terminated before the input was read");
        fail_all(MPROC_ECANCELED, "the pool was terminated");
        stop_workers(true);
        handle_exits();
        finished = true;
      } else {
        progress |= dispatch();
        if (st == State::kClosed) {
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
      for (int k = 0; k < 32; k++) cpu_relax();
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
}  // namespace mproc
