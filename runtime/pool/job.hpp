// A job: one submission to a pool (apply, map, imap), from the caller's arguments to its results.
//
// The core builds every job (Job::apply, var, fixed, lazy check and copy the arguments and pick
// the chunk size, chunking.hpp), queues it (submit), and the dispatcher moves its chunks to
// workers and back (encode, take_result, fail_chunk, requeue); the caller reads the outcome
// (await, result, item, next). Items and chunks are windows over deques: an iterated job drops
// what the consumer has taken, so an endless imap keeps its memory flat.
//
// Locking: `mu_` guards the chunks, items and counters; a job's lock is taken before the pool's
// own (Pool::mu_), never after. Callbacks (done, error, progress) and the lazy input run without
// it. The outcome fields (err_*) are written before `ready_` is released and only read after it.
#pragma once
#include <mproc/pool.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pool/wire.hpp"
#include "shm/segment.hpp"

namespace mproc {

class Pool;

// A chunk's task message as Job::encode lays it out; the iovecs point into this struct and into
// the job's arguments. The dispatcher keeps one and reuses it (no allocation per chunk).
struct TaskMsg {
  TaskHdr th;
  BulkRef br;
  std::vector<uint64_t> lens;
  std::vector<struct iovec> iov;
};

class Job : public std::enable_shared_from_this<Job> {
 public:
  enum class Kind { kVar, kFixed };
  // How the results are read: whole (mproc_async_item), or one by one with mproc_async_next,
  // in order (imap) or as they complete (imap_unordered).
  enum class Iter { kNone, kOrdered, kUnordered };

  // ---- building: check the caller's arguments, copy them, choose the chunks ----------------
  // apply: fn(arg) as a job of one item.
  static int apply(Pool &pool, mproc_task_fn fn, const void *arg, size_t len,
                   const mproc_async_opts_t &o, std::shared_ptr<Job> *out);
  // map (iter kNone) or imap over n variable-size arguments.
  static int var(Pool &pool, mproc_task_fn fn, const void *const *args, const size_t *lens,
                 size_t n, Iter iter, const mproc_async_opts_t &o, std::shared_ptr<Job> *out);
  // map over fixed-size elements: out_arr[i] = fn(in[i]).
  static int fixed(Pool &pool, mproc_elem_fn fn, const void *in, size_t in_size, void *out_arr,
                   size_t out_size, size_t n, const mproc_async_opts_t &o,
                   std::shared_ptr<Job> *out);
  // imap over an input read through next() on the dispatcher thread, max_inflight ahead.
  static int lazy(Pool &pool, mproc_task_fn fn, mproc_next_fn next, void *next_payload,
                  Iter iter, size_t max_inflight, const mproc_async_opts_t &o,
                  std::shared_ptr<Job> *out);

  // Queue the job on `pool` and, when out is not NULL, make its result handle. An empty job is
  // ready at once. With wait, this thread waits, helping the dispatcher (blocking apply, map):
  // then MPROC_EINTR leaves a handle too.
  int submit(mproc_pool_t *pool, mproc_async_t **out, bool wait);

  // ---- the caller's side: the outcome ------------------------------------------------------
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Wait until ready: 0, MPROC_EAGAIN (timeout) or MPROC_EINTR, without recording a message.
  int wait(double timeout);
  // The same, recording the message the C ABI reports.
  int await(double timeout);
  // 0, or the job's failure (recorded with its message). After ready.
  int result() const;
  // Apply: the result bytes (owned by the job), and result().
  int value(const void **data, size_t *len) const;
  // Blocking apply: a malloc'ed copy of the result bytes (when out is not NULL).
  int copy_value(void **out, size_t *out_len) const;
  size_t count() const { return n_; }
  int successful() const;  // 1, 0, or MPROC_EAGAIN when not ready
  size_t failed_index() const { return err_ ? err_index_ : SIZE_MAX; }
  // Item i of a ready map: 0 with its bytes, or its failure.
  int item_result(size_t i, const void **data, size_t *len) const;
  // The next item of an imap into *out_item (its index, data and length through the other
  // outputs, each may be NULL): 0 or the item's failure, MPROC_EITEREND after the last, the cut
  // input's code once, MPROC_EAGAIN (timeout), MPROC_EINTR.
  int next(std::vector<char> *out_item, size_t *out_index, const void **out_data,
           size_t *out_len, double timeout);
  int error(int *task_code, size_t *index, const char **message) const;
  // Cancel through the pool that runs the job (0 when ready already).
  int cancel();
  // The handle was freed: callbacks get none any more.
  void drop_handle();

  // ---- the dispatcher's side ----------------------------------------------------------------
  size_t nchunks() const { return nchunks_; }  // before submission
  bool lazy() const { return lazy_; }
  double timeout() const { return timeout_; }
  bool is_apply() const { return apply_; }
  uintptr_t fn_addr() const {
    return kind_ == Kind::kVar ? reinterpret_cast<uintptr_t>(fn_) : reinterpret_cast<uintptr_t>(efn_);
  }
  // Chunk c as a task message with this id; marks it in a worker. false: canceled meanwhile.
  bool encode(size_t c, uint64_t id, TaskMsg *m);
  // "task 'name' (items a..b)", for a backend's messages.
  std::string describe(size_t c, const char *name);
  // Chunk c goes back to the queue (its worker died before it began). false: it is done.
  bool requeue(size_t c);
  // Chunk c is done (or dropped): a worker that holds it runs it for nothing.
  bool gone(size_t c);
  // Record a worker's result message for chunk c (its header, the body after it).
  void take_result(size_t c, const ResultHdr &rh, const char *body);
  // Fail a whole chunk (dispatcher or canceling thread).
  void fail_chunk(size_t c, int code, int tcode, const std::string &msg);
  // Lazy input: read up to a chunk from the source while there is room, queue it with
  // queue(c) (called under the job's lock); true when something changed.
  bool refill(size_t nworkers, const std::function<void(size_t)> &queue);
  bool source_done();
  // Lazy input: stop reading; the iterator reports `code` after the last result.
  void cut(int code, const char *why);

 private:
  // One item's outcome (kVar): result bytes, or the failure message when code != 0.
  struct Item {
    std::vector<char> value;
    int code = 0;   // 0 or an MPROC_E* code
    int tcode = 0;  // the task's own return code
    bool ready = false, delivered = false;
  };
  // One chunk: items [first, first + count). A lazy job's chunks carry their own arguments.
  struct Chunk {
    enum class State : uint8_t { kQueued, kInWorker, kDone };
    size_t first = 0, count = 0;
    State state = State::kQueued;
    std::vector<char> args;
    std::vector<size_t> off;  // count + 1 offsets into args
  };

  static std::shared_ptr<Job> make(Kind kind, size_t n, size_t chunksize,
                                   const mproc_async_opts_t &o);
  Item &item(size_t i) { return items_[i - item_base_]; }
  const Item &item(size_t i) const { return items_[i - item_base_]; }
  Chunk &chunk(size_t c) { return chunks_[c - chunk_base_]; }
  bool gone_locked(size_t c) { return c < chunk_base_ || chunk(c).state == Chunk::State::kDone; }
  void add_chunk(size_t count);  // items [n_, n_ + count) (under mu_, or before submission)
  void chunk_finished(size_t c, std::unique_lock<std::mutex> &g);
  void finish_if_done(std::unique_lock<std::mutex> &g);  // releases the lock
  void note_failure(size_t index, int code, int tcode, const char *msg, size_t msg_len);
  void trim();  // drop the front of the windows the consumer no longer needs (under mu_)

  // What runs
  Kind kind_ = Kind::kVar;
  bool apply_ = false;
  mproc_task_fn fn_ = nullptr;
  mproc_elem_fn efn_ = nullptr;
  std::vector<char> args_;       // kVar, not lazy: argument bytes back to back (copied)
  std::vector<size_t> arg_off_;  // kVar, not lazy: n + 1 offsets into args_
  const char *in_ = nullptr;     // kFixed: the caller's arrays
  char *out_ = nullptr;
  std::shared_ptr<Segment> bulk_;  // kFixed, large: in and out arrays shared with the workers
  uint64_t bulk_id_ = 0;
  size_t in_size_ = 0, out_size_ = 0;
  size_t n_ = 0, chunksize_ = 1, nchunks_ = 0;  // lazy: items and chunks taken so far
  double timeout_ = 0;
  Iter iter_ = Iter::kNone;

  // Lazy input (mproc_pool_imap_lazy): pulled on the dispatcher thread while fewer than
  // `bound_` items are taken but not yet handed to the consumer.
  bool lazy_ = false;
  mproc_next_fn next_fn_ = nullptr;
  void *next_payload_ = nullptr;
  size_t bound_ = 0;
  bool source_done_ = true;  // lazy: false until the source ends (or is cut)
  int end_code_ = 0;         // lazy: why the source was cut (MPROC_ECLOSED, ECANCELED, ...)
  std::string end_msg_;
  bool end_reported_ = false;
  bool starved_ = false;     // lazy: the dispatcher stopped reading for want of room

  mproc_async_cb cb_ = nullptr, ecb_ = nullptr;
  void *cb_payload_ = nullptr;
  mproc_progress_cb progress_ = nullptr;
  void *progress_payload_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> ready_{false};
  mproc_async_t *handle_ = nullptr;  // for callbacks; cleared when the handle is freed
  mproc_pool_t *owner_ = nullptr;    // the pool's handle (checked in the registry before use)
  size_t chunks_done_ = 0, items_done_ = 0;
  std::deque<Item> items_;  // item(i) is items_[i - item_base_]
  size_t item_base_ = 0;
  std::deque<Chunk> chunks_;
  size_t chunk_base_ = 0;
  int err_ = 0, task_code_ = 0;
  size_t err_index_ = SIZE_MAX;
  std::string err_msg_;
  // Iteration
  size_t next_ordered_ = 0, delivered_ = 0;
  std::deque<size_t> unordered_;
};

// Wait until any(): a process-wide signal bumped whenever a job becomes ready.
int wait_any_ready(const std::function<bool()> &any, double timeout);

}  // namespace mproc

struct mproc_async {
  std::shared_ptr<mproc::Job> job;
  std::vector<char> iter_item;  // the item last returned by mproc_async_next
};
