// Jobs: building from the caller's arguments, the outcome as chunks complete, and delivery
// (whole, or item by item for imap). See job.hpp for the locking rules.
#include "pool/job.hpp"

#include <mproc/queue.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/handles.hpp"
#include "base/interrupt.hpp"
#include "base/names.hpp"
#include "pool/chunking.hpp"
#include "pool/pool.hpp"

namespace mproc {
namespace {

constexpr uint64_t kCallerSpinNs = 20000;  // a waiter spins this long before it sleeps

// A backend's or spawned pool runs functions by registered name; a backend cannot kill a worker
// for a timeout.
int check_remote(const Pool &pool, const void *fn, const mproc_async_opts_t &o) {
  if (!pool.remote() && !pool.spawned()) return 0;
  if (!fn_name(reinterpret_cast<uintptr_t>(fn)))
    return fail(MPROC_EINVAL, "the function is not registered (mproc_task_register or "
                              "mproc_elem_register): the '%s' %s runs functions by name",
                pool.backend(), pool.remote() ? "backend" : "pool's spawned worker");
  if (pool.remote() && o.timeout > 0)
    return fail(MPROC_ENOSYS, "task timeouts need workers the pool can kill and replace: not on "
                              "the '%s' backend", pool.backend());
  return 0;
}

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

// ---- building ------------------------------------------------------------------------------

std::shared_ptr<Job> Job::make(Kind kind, size_t n, size_t chunksize,
                               const mproc_async_opts_t &o) {
  auto job = std::make_shared<Job>();
  job->kind_ = kind;
  job->chunksize_ = chunksize;
  for (size_t first = 0; first < n; first += chunksize)
    job->add_chunk(n - first < chunksize ? n - first : chunksize);
  job->timeout_ = o.timeout;
  job->cb_ = o.callback;
  job->ecb_ = o.error_callback;
  job->cb_payload_ = o.cb_payload;
  job->progress_ = o.progress;
  job->progress_payload_ = o.progress_payload;
  return job;
}

int Job::apply(Pool &pool, mproc_task_fn fn, const void *arg, size_t len,
               const mproc_async_opts_t &o, std::shared_ptr<Job> *out) {
  if (!arg && len) return fail(MPROC_EINVAL, "arg is NULL with length %zu", len);
  mproc_async_opts_t one = o;
  one.chunksize = 1;
  const void *args[1] = {arg};
  size_t lens[1] = {len};
  if (int rc = var(pool, fn, args, lens, 1, Iter::kNone, one, out)) return rc;
  (*out)->apply_ = true;
  return 0;
}

int Job::var(Pool &pool, mproc_task_fn fn, const void *const *args, const size_t *lens, size_t n,
             Iter iter, const mproc_async_opts_t &o, std::shared_ptr<Job> *out) {
  if (!fn) return fail(MPROC_EINVAL, "task function is NULL");
  if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
  if (n > 0 && (!args || !lens)) return fail(MPROC_EINVAL, "args or lens is NULL with n = %zu", n);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!args[i] && lens[i]) return fail(MPROC_EINVAL, "args[%zu] is NULL with length %zu", i, lens[i]);
    if (lens[i] > MPROC_QUEUE_MSG_MAX - total)
      return fail(MPROC_EMSGSIZE, "the arguments add up to more than %zu bytes (args[%zu] is %zu)",
                  static_cast<size_t>(MPROC_QUEUE_MSG_MAX), i, lens[i]);
    total += lens[i];
  }
  size_t chunksize = iter == Iter::kNone ? ChunkPolicy::map(o.chunksize, n, pool.nworkers())
                                         : ChunkPolicy::imap(o.chunksize);
  auto job = make(Kind::kVar, n, chunksize, o);
  job->fn_ = fn;
  job->iter_ = iter;
  job->args_.resize(total);
  job->arg_off_.resize(n + 1);
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    job->arg_off_[i] = at;
    if (lens[i]) memcpy(job->args_.data() + at, args[i], lens[i]);
    at += lens[i];
  }
  job->arg_off_[n] = at;
  *out = std::move(job);
  return 0;
}

int Job::fixed(Pool &pool, mproc_elem_fn fn, const void *in, size_t in_size, void *out_arr,
               size_t out_size, size_t n, const mproc_async_opts_t &o, std::shared_ptr<Job> *out) {
  if (!fn) return fail(MPROC_EINVAL, "element function is NULL");
  if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
  if (n > 0 && (!in || !out_arr)) return fail(MPROC_EINVAL, "in or out is NULL with n = %zu", n);
  if (in_size == 0 || out_size == 0 || in_size > (1u << 30) || out_size > (1u << 30))
    return fail(MPROC_EINVAL, "element sizes must be 1 byte .. 1 GiB (in %zu, out %zu)",
                in_size, out_size);
  auto job = make(Kind::kFixed, n, ChunkPolicy::map(o.chunksize, n, pool.nworkers()), o);
  job->efn_ = fn;
  job->in_ = static_cast<const char *>(in);
  job->out_ = static_cast<char *>(out_arr);
  job->in_size_ = in_size;
  job->out_size_ = out_size;
  // Large maps share their arrays with the workers through a segment: each element is copied
  // once in (here) and once out (as chunks complete) instead of through the rings.
  size_t bytes = n * (in_size + out_size);
  if (n > 0 && bytes >= ChunkPolicy::kBulkMinBytes && !pool.remote()) {
    if (int rc = pool.bulk_segment(bytes, &job->bulk_, &job->bulk_id_)) return rc;
    memcpy(job->bulk_->data(), in, n * in_size);
  }
  *out = std::move(job);
  return 0;
}

int Job::lazy(Pool &pool, mproc_task_fn fn, mproc_next_fn next, void *next_payload, Iter iter,
              size_t max_inflight, const mproc_async_opts_t &o, std::shared_ptr<Job> *out) {
  if (!fn) return fail(MPROC_EINVAL, "task function is NULL");
  if (!next) return fail(MPROC_EINVAL, "input callback is NULL");
  if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
  auto job = make(Kind::kVar, 0, ChunkPolicy::imap(o.chunksize), o);
  job->fn_ = fn;
  job->iter_ = iter;
  job->lazy_ = true;
  job->source_done_ = false;
  job->next_fn_ = next;
  job->next_payload_ = next_payload;
  job->bound_ = ChunkPolicy::lazy_bound(max_inflight, pool.nworkers(), job->chunksize_);
  *out = std::move(job);
  return 0;
}

int Job::submit(mproc_pool_t *pool, mproc_async_t **out, bool wait) {
  std::unique_ptr<mproc_async> h;
  if (out) {
    h = std::make_unique<mproc_async>();
    h->job = shared_from_this();
    handle_ = h.get();
  }
  owner_ = pool;
  int rc = 0;
  if (nchunks_ == 0 && !lazy_) {
    if (pool->pool->closed()) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    ready_ = true;
  } else if (wait) {
    rc = pool->pool->submit_and_wait(shared_from_this());
    if (rc < 0 && rc != MPROC_EINTR) return rc;  // refused: no handle
  } else if (int src = pool->pool->submit(shared_from_this())) {
    return src;
  }
  if (h) {
    handle_register(h.get(), HandleKind::kOther);
    *out = h.release();
  }
  return rc == MPROC_EINTR ? fail(MPROC_EINTR, "interrupted") : 0;
}

// ---- the outcome -----------------------------------------------------------------------------

int Job::wait(double timeout) {
  // A short spin first: a fast task's result often arrives within microseconds.
  if (timeout != 0) {
    uint64_t until = now_ns() + kCallerSpinNs;
    for (int i = 0;; i++) {
      if (ready()) return 0;
      cpu_relax();
      if ((i & 63) == 63 && now_ns() >= until) break;
    }
  }
  std::unique_lock<std::mutex> g(mu_);
  int rc = wait_interruptible(g, cv_, Deadline::after(timeout), [this] { return ready(); });
  return rc == MPROC_ETIMEDOUT ? MPROC_EAGAIN : rc;
}

int Job::await(double timeout) {
  int w = wait(timeout);
  if (w == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
  if (w != 0) return fail(MPROC_EAGAIN, "result not ready after %g s", timeout);
  return 0;
}

int Job::result() const {
  if (err_ == 0) return 0;
  return fail(err_, "%s%s", err_ == MPROC_ETASKFAILED ? "task failed: " : "", err_msg_.c_str());
}

int Job::value(const void **data, size_t *len) const {
  int rc = result();
  if (apply_ && kind_ == Kind::kVar) {
    const auto &v = item(0).value;
    if (data) *data = v.empty() ? nullptr : v.data();
    if (len) *len = v.size();
  }
  return rc;
}

int Job::copy_value(void **out, size_t *out_len) const {
  if (int rc = result()) return rc;
  const auto &v = item(0).value;
  if (out) {
    void *copy = malloc(v.size() ? v.size() : 1);
    if (!copy) return fail(MPROC_ENOMEM, "out of memory for a %zu-byte result", v.size());
    if (!v.empty()) memcpy(copy, v.data(), v.size());
    *out = copy;
  }
  if (out_len) *out_len = v.size();
  return 0;
}

int Job::successful() const {
  if (!ready()) return fail(MPROC_EAGAIN, "result is not ready");
  return err_ == 0 ? 1 : 0;
}

int Job::item_result(size_t i, const void **data, size_t *len) const {
  if (i >= n_) return fail(MPROC_ERANGE, "item %zu of %zu", i, n_);
  if (!ready()) return fail(MPROC_EAGAIN, "result is not ready");
  if (kind_ == Kind::kFixed) {
    if (err_ && i == err_index_) return fail(err_, "%s", err_msg_.c_str());
    return 0;
  }
  if (iter_ != Iter::kNone) return fail(MPROC_EINVAL, "an imap's items are read with mproc_async_next");
  const Item &it = item(i);
  if (data) *data = it.value.empty() ? nullptr : it.value.data();
  if (len) *len = it.value.size();
  if (it.code)
    return fail(it.code, "item %zu: %.*s", i, static_cast<int>(it.value.size()), it.value.data());
  return 0;
}

int Job::next(std::vector<char> *out_item, size_t *out_index, const void **out_data,
              size_t *out_len, double timeout) {
  if (iter_ == Iter::kNone) return fail(MPROC_EINVAL, "not an imap result");
  std::unique_lock<std::mutex> g(mu_);
  auto at_end = [&] { return source_done_ && delivered_ >= n_; };
  auto has_next = [&] {
    if (iter_ == Iter::kOrdered) return next_ordered_ < n_ && item(next_ordered_).ready;
    return !unordered_.empty();
  };
  int w = wait_interruptible(g, cv_, Deadline::after(timeout),
                             [&] { return has_next() || at_end(); });
  if (w == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
  if (w != 0) return fail(MPROC_EAGAIN, "no result within %g s", timeout);
  if (!has_next()) {
    if (end_code_ && !end_reported_) {
      end_reported_ = true;
      return fail(end_code_, "%s", end_msg_.c_str());
    }
    return fail(MPROC_EITEREND, "all %zu results were read", n_);
  }
  size_t i;
  if (iter_ == Iter::kOrdered) {
    i = next_ordered_++;
  } else {
    i = unordered_.front();
    unordered_.pop_front();
  }
  delivered_++;
  if (out_index) *out_index = i;
  Item &it = item(i);
  it.delivered = true;
  out_item->swap(it.value);  // each item is handed out once
  int code = it.code;
  trim();
  // Room opened for a lazy input the dispatcher stopped reading: wake it.
  bool refill = lazy_ && starved_ && n_ - delivered_ + chunksize_ <= bound_;
  if (refill) starved_ = false;
  mproc_pool_t *owner = owner_;
  g.unlock();
  if (refill && handle_valid(owner, HandleKind::kPool)) owner->pool->wake();
  if (out_data) *out_data = out_item->empty() ? nullptr : out_item->data();
  if (out_len) *out_len = out_item->size();
  if (code)
    return fail(code, "item %zu: %.*s", i, static_cast<int>(out_item->size()), out_item->data());
  return 0;
}

int Job::error(int *task_code, size_t *index, const char **message) const {
  if (!ready()) return fail(MPROC_EAGAIN, "result is not ready");
  if (task_code) *task_code = task_code_;
  if (index) *index = failed_index();
  if (message) *message = err_msg_.c_str();
  return err_;
}

int Job::cancel() {
  if (ready()) return 0;
  if (!handle_valid(owner_, HandleKind::kPool))
    return fail(MPROC_ECLOSED, "the pool of this result was freed");
  return owner_->pool->cancel(shared_from_this());
}

void Job::drop_handle() {
  std::lock_guard<std::mutex> g(mu_);
  handle_ = nullptr;
}

// ---- chunks and items ------------------------------------------------------------------------

void Job::add_chunk(size_t count) {
  Chunk c;
  c.first = n_;
  c.count = count;
  chunks_.push_back(std::move(c));
  nchunks_++;
  if (kind_ == Kind::kVar) items_.resize(items_.size() + count);
  n_ += count;
}

void Job::note_failure(size_t index, int code, int tcode, const char *msg, size_t msg_len) {
  if (index < err_index_) {
    err_index_ = index;
    err_ = code;
    task_code_ = tcode;
    err_msg_.assign(msg, msg_len);
  }
}

void Job::trim() {
  while (!chunks_.empty() && chunks_.front().state == Chunk::State::kDone &&
         (iter_ != Iter::kNone || lazy_)) {
    chunks_.pop_front();
    chunk_base_++;
  }
  if (iter_ == Iter::kNone) return;
  while (!items_.empty() && items_.front().delivered) {
    items_.pop_front();
    item_base_++;
  }
}

void Job::finish_if_done(std::unique_lock<std::mutex> &g) {
  bool done = !ready_.load() && source_done_ && chunks_done_ == nchunks_;
  if (done && lazy_ && progress_) {
    // The total of a lazy map is known only now.
    auto prog = progress_;
    void *pp = progress_payload_;
    size_t items_now = items_done_, total = n_;
    g.unlock();
    prog(items_now, total, pp);
    g.lock();
    if (ready_.load()) return;
  }
  if (done) {
    if (end_code_ && err_ == 0) {
      // A cut input fails the whole result (its iterator reports it after the last item).
      err_ = end_code_;
      err_msg_ = end_msg_;
      err_index_ = n_;
    }
    ready_.store(true, std::memory_order_release);
  }
  // A waiter of a whole result needs waking once, at the end; an iterator's reader at each chunk.
  if (done || iter_ != Iter::kNone) cv_.notify_all();
  mproc_async_cb fire = done ? (err_ ? ecb_ : cb_) : nullptr;
  mproc_async_t *h = handle_;
  void *cbp = cb_payload_;
  g.unlock();
  if (done) announce_ready();
  if (fire) fire(h, cbp);
}

void Job::chunk_finished(size_t c, std::unique_lock<std::mutex> &g) {
  Chunk &ch = chunk(c);
  ch.state = Chunk::State::kDone;
  ch.args.clear();
  ch.args.shrink_to_fit();
  chunks_done_++;
  items_done_ += ch.count;
  if (kind_ == Kind::kVar) {
    for (size_t k = ch.first; k < ch.first + ch.count; k++) {
      item(k).ready = true;
      if (iter_ == Iter::kUnordered) unordered_.push_back(k);
    }
  }
  trim();
  auto prog = progress_;
  void *prog_payload = progress_payload_;
  size_t items_now = items_done_, total = lazy_ && !source_done_ ? 0 : n_;
  if (prog) {
    g.unlock();
    prog(items_now, total, prog_payload);
    g.lock();
  }
  finish_if_done(g);
}

// ---- the dispatcher's side -------------------------------------------------------------------

bool Job::encode(size_t c, uint64_t id, TaskMsg *m) {
  size_t first, count;
  const char *abuf;
  const size_t *aoff;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (gone_locked(c)) return false;
    Chunk &ch = chunk(c);
    ch.state = Chunk::State::kInWorker;
    first = ch.first;
    count = ch.count;
    // A lazy chunk has its own arguments (indexed from 0); the deque keeps them in place.
    abuf = lazy_ ? ch.args.data() : args_.data();
    aoff = lazy_ ? ch.off.data() : arg_off_.data() + first;
  }
  m->th = {id, kind_ == Kind::kVar ? kMsgVar : bulk_ ? kMsgFixedBulk : kMsgFixed,
           static_cast<uint32_t>(count), fn_addr(), static_cast<uint32_t>(in_size_),
           static_cast<uint32_t>(out_size_)};
  m->iov.clear();
  m->iov.push_back({&m->th, sizeof m->th});
  if (kind_ == Kind::kVar) {
    m->lens.resize(count);
    m->iov.reserve(1 + 2 * count);
    for (size_t k = 0; k < count; k++) {
      size_t a = aoff[k], b = aoff[k + 1];
      m->lens[k] = b - a;
      m->iov.push_back({&m->lens[k], 8});
      if (b > a) m->iov.push_back({const_cast<char *>(abuf) + a, b - a});
    }
  } else if (bulk_) {
    m->br = {bulk_id_, bulk_->size(), bulk_->fd(), 0, 0, n_ * in_size_, first};
    m->iov.push_back({&m->br, sizeof m->br});
  } else {
    m->iov.push_back({const_cast<char *>(in_) + first * in_size_, count * in_size_});
  }
  return true;
}

std::string Job::describe(size_t c, const char *name) {
  size_t first, count;
  {
    std::lock_guard<std::mutex> g(mu_);
    first = chunk(c).first;
    count = chunk(c).count;
  }
  if (!name) name = "?";
  return apply_       ? format("task '%s' (apply)", name)
         : count == 1 ? format("task '%s' (item %zu)", name, first)
                      : format("task '%s' (items %zu..%zu)", name, first, first + count - 1);
}

bool Job::requeue(size_t c) {
  std::lock_guard<std::mutex> g(mu_);
  if (gone_locked(c)) return false;
  chunk(c).state = Chunk::State::kQueued;
  return true;
}

bool Job::gone(size_t c) {
  std::lock_guard<std::mutex> g(mu_);
  return gone_locked(c);
}

void Job::take_result(size_t c, const ResultHdr &rh, const char *p) {
  std::unique_lock<std::mutex> g(mu_);
  if (gone_locked(c)) return;  // canceled meanwhile
  size_t first = chunk(c).first, count = chunk(c).count;
  if (rh.kind == kMsgVar) {
    for (size_t k = 0; k < count && k < rh.count; k++) {
      ItemHdr ih;
      memcpy(&ih, p, sizeof ih);
      p += sizeof ih;
      size_t idx = first + k;
      Item &it = item(idx);
      it.value.assign(p, p + ih.len);
      if (ih.rc != 0) {
        it.code = MPROC_ETASKFAILED;
        it.tcode = ih.rc;
        note_failure(idx, MPROC_ETASKFAILED, ih.rc, p, ih.len);
      }
      p += ih.len;
    }
  } else {
    const char *res = p;
    const char *msg_at = p + count * out_size_;
    if (rh.kind == kMsgFixedBulk) {
      res = static_cast<const char *>(bulk_->data()) + n_ * in_size_ + first * out_size_;
      msg_at = p;
    }
    if (res != out_ + first * out_size_) memcpy(out_ + first * out_size_, res, count * out_size_);
    if (rh.fail_rc)
      note_failure(first + rh.fail_index, MPROC_ETASKFAILED, rh.fail_rc, msg_at, rh.msg_len);
  }
  chunk_finished(c, g);
}

void Job::fail_chunk(size_t c, int code, int tcode, const std::string &msg) {
  std::unique_lock<std::mutex> g(mu_);
  if (gone_locked(c)) return;
  Chunk &ch = chunk(c);
  if (kind_ == Kind::kVar) {
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

bool Job::refill(size_t nworkers, const std::function<void(size_t)> &queue) {
  size_t allowance;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (source_done_) return false;
    size_t taken = n_ - delivered_;  // taken from the input, not yet read back
    size_t queued = nchunks_ - chunks_done_;
    if (taken + chunksize_ > bound_ && taken > 0) {
      starved_ = true;  // the consumer wakes the dispatcher when a chunk's worth of room opens
      return false;
    }
    if (queued >= 2 * nworkers + 2) return false;
    allowance = std::min(bound_ - taken, chunksize_);
  }
  // The user's callback runs without any lock held.
  Chunk ch;
  ch.off.push_back(0);
  int rc = 1;
  while (ch.count < allowance) {
    const void *arg = nullptr;
    size_t len = 0;
    rc = next_fn_(&arg, &len, next_payload_);
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
  bool any = false;
  std::unique_lock<std::mutex> g(mu_);
  if (ch.count > 0 && !source_done_) {
    size_t c = nchunks_;
    add_chunk(ch.count);
    Chunk &slot = chunk(c);
    slot.args = std::move(ch.args);
    slot.off = std::move(ch.off);
    queue(c);
    any = true;
  }
  if (rc <= 0 && !source_done_) {
    source_done_ = true;
    if (rc < 0) {
      end_code_ = rc;
      end_msg_ = format("the input callback failed: %s", mproc_strerror(rc));
    }
    any = true;
    finish_if_done(g);
  }
  return any;
}

bool Job::source_done() {
  std::lock_guard<std::mutex> g(mu_);
  return source_done_;
}

void Job::cut(int code, const char *why) {
  std::unique_lock<std::mutex> g(mu_);
  if (source_done_) return;
  source_done_ = true;
  end_code_ = code;
  end_msg_ = why;
  finish_if_done(g);
}

}  // namespace mproc
