// The shared-memory ring behind mproc_queue_t: an MPMC FIFO of byte messages in one memfd.
// The protocol (record kinds, locks, futex handshake, crash recovery) is described at the top of
// ring.cpp; ring_sides.cpp has the locks, the single-thread grants, recovery and waiting;
// bigmsg.cpp the extents that hold messages too large for the ring.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/fd.hpp"
#include "base/futex.hpp"
#include "ipc/bigmsg.hpp"

namespace mproc {

struct RingHeader;
struct RingSlot;
struct RingGrant;

struct RingConfig {
  size_t capacity = 0;     // bytes of the data ring (rounded up to a power of two); 0: default
  size_t maxsize = 0;      // most messages held at once; 0: no limit
  size_t max_message = 0;  // largest message accepted; 0: kRingMessageMax
  bool joinable = false;   // count unfinished tasks (task_done / join)
};

struct RingStats {
  uint64_t puts, gets, producer_deaths, consumer_deaths, dropped, lost, grants, revokes;
  uint64_t big_messages, big_bytes;  // out-of-line messages held (unread or being read), bytes
  uint64_t consumer_grants, consumer_revokes;
};

constexpr size_t kRingMessageMax = static_cast<size_t>(1) << 40;
constexpr size_t kRingDefaultCapacity = static_cast<size_t>(1) << 21;  // 2 MiB
constexpr size_t kRingMinCapacity = static_cast<size_t>(1) << 16;      // 64 KiB
constexpr size_t kRingMaxCapacity = static_cast<size_t>(1) << 30;      // 1 GiB

// One piece of a message given in parts (the message is their concatenation).
struct RingPart {
  const void *data;
  size_t len;
};

// A message taken by Ring::get_msg(): a malloc'ed copy (ext.len == 0), or the out-of-line
// message's own extent, mapped here and the caller's until BigOwner::release().
struct TakenMsg {
  unsigned char *data = nullptr;
  size_t size = 0;
  Extent ext{0, 0};
  int pid = 0;  // the process that took it: only it frees the extent (a fork child only unmaps)
};

// Keeps a queue's file and extent table reachable for the messages taken out of it, also after
// the handle that took them is freed (its own mapping of the header page and its own fd).
//
// Fork. A taken message is the caller's own memory, as a malloc'ed copy would be, so a forked
// child must get a copy of it, not the parent's shared mapping: else a write on one side would
// show on the other, and once the parent freed the message the queue could reuse the extent
// under the child's view. In the child (pthread_atfork), every taken message's mapping is
// replaced at the same address by private anonymous memory holding a copy of its bytes. A
// MAP_PRIVATE mapping of the same file range would not do: the child would still see the
// parent's (and the queue's) later writes to every page it had not written itself. The copy is
// made at the fork, in the child, and costs the bytes the parent holds (the standard library's
// fork copies the same pages lazily); the parent's memory is untouched. The owners' mutexes are
// taken around the fork (prepare), so no other thread of the parent holds one in the child.
class BigOwner {
 public:
  ~BigOwner();
  BigOwner(const BigOwner &) = delete;
  BigOwner &operator=(const BigOwner &) = delete;
  // Free a taken message: its extent goes back to the queue (in the process that took it).
  void release(TakenMsg *m);

 private:
  friend class Ring;
  friend struct BigOwnerFork;
  BigOwner() = default;
  // A taken message's mapping: addr maps the extent's len bytes, of which size are the message.
  struct Held {
    unsigned char *addr;
    Extent ext;
    size_t size;
  };
  std::mutex mu_;     // taken messages are released by any thread
  ExtentMaps maps_;   // under mu_: the extents taken here, mapped
  std::vector<Held> held_;  // under mu_: the messages taken and not released (see Fork)
  RingHeader *h_ = nullptr;
  UniqueFd fd_;
  uint64_t base_ = 0;
};

class Ring {
 public:
  ~Ring();
  Ring(const Ring &) = delete;
  Ring &operator=(const Ring &) = delete;

  // A new ring in a fresh memfd, with its notification fifo. 0 or a negative code (recorded).
  static int create(const RingConfig &cfg, std::unique_ptr<Ring> *out);
  // Map an existing ring from its memfd and fifo fd (both adopted: closed by the Ring). The
  // token, when non-zero, must match the ring's (it tells a reused fd number from the real one).
  static int attach(UniqueFd memfd, UniqueFd fifo, uint64_t token, std::unique_ptr<Ring> *out);

  // Blocking calls take a timeout in seconds: < 0 forever, 0 polls (EFULL / EEMPTY).
  int put(const void *data, size_t len, double timeout) {
    const RingPart p{data, len};
    return put(&p, 1, timeout);
  }
  int put(const RingPart *parts, size_t n, double timeout);
  // The fast paths of put() and get() (inline, ring_fast.hpp): 0 done, 1 not taken and nothing
  // done (then call put() or get(), which also report errors). They neither wait nor fail.
  int put_fast(const void *data, size_t len);
  int get_fast(void *buf, size_t cap, size_t *out_len);
  // Take the next message as *out (see TakenMsg): out of line, without a copy.
  int get_msg(TakenMsg *out, double timeout);
  // The owner the messages taken by get_msg() keep (made on first use). nullptr: recorded error.
  std::shared_ptr<BigOwner> big_owner();
  // Copy the next message into buf. Too small: MPROC_EMSGSIZE, *out_len = size, message kept.
  // With alloc, *out_buf receives a malloc'ed copy (buf/cap ignored).
  int get(void *buf, size_t cap, size_t *out_len, void **out_buf, double timeout,
          TakenMsg *take = nullptr);
  int reserve(size_t len, void **out, double timeout);
  int commit(size_t len);
  int cancel();
  int peek(const void **out, size_t *out_len, double timeout);
  int release();
  bool reserving() const { return reserved_ != SIZE_MAX; }
  bool peeking() const { return peek_len_ != SIZE_MAX; }

  int close();
  bool closed() const;
  size_t qsize() const;
  bool full() const;
  int task_done();
  int join(double timeout);
  bool joinable() const;
  RingStats stats() const;

  // The pollable fd: readable while a message may be waiting or the ring is closed. The first
  // call makes puts signal it (one atomic per put, a write() when it goes from idle to set).
  int fileno();
  // For wait(): drain the fifo, then report (and re-arm) whether a message or close is pending.
  bool ready_for_get();
  // Message waiting or closed (no side effect).
  bool has_data_or_closed() const;

  int memfd() const { return memfd_.get(); }
  int fifo_fd() const { return fifo_.get(); }
  uint64_t token() const;
  // tests/fuzz only: overwrite the shared header, then the ring at head, as a corrupt peer would.
  // Returns the end of the mapping (where the fuzzer puts a guard page).
  unsigned char *overwrite_shared(const unsigned char *p, size_t n);

 private:
  Ring() = default;
  int map(UniqueFd memfd, size_t total);

  int lock_producer(const Deadline &d, bool poll);
  int lock_consumer(const Deadline &d, bool poll);
  void unlock_producer();
  void unlock_consumer();
  void recover_producer();
  void recover_producer_message();
  int after_lock(const RingGrant &g, bool owner_died, const Deadline &d, bool poll);
  int take_side(const RingGrant &g, uint32_t owner, bool force, const Deadline &d, bool poll);
  bool claim_slot(const RingGrant &g, uint32_t tid);
  int wait_not_busy(const RingGrant &g, RingSlot &s, uint32_t tid, const Deadline &d, bool poll);
  bool fenceless_producer() const;
  template <class Ready>
  static int sleep_until(int &spin, std::atomic<uint32_t> &seq, std::atomic<uint32_t> &sleeping,
                         const std::atomic<int32_t> *other_cpu, const Ready &ready,
                         const Deadline &d, const RingGrant *peer = nullptr,
                         bool interruptible = true);
  bool try_put_granted(uint32_t tid, const RingPart *parts, size_t n, size_t len,
                       const Deadline &d, bool poll, int *rc);
  bool try_get_granted(uint32_t tid, void *buf, size_t cap, size_t *out_len, void **out_buf,
                       const Deadline &d, bool poll, TakenMsg *take, int *rc);
  void recover_consumer();
  int wait_space(size_t need, bool slot, const Deadline &d, bool poll);
  bool wait_room_batch(size_t need, const Deadline &d);
  int wait_data(const Deadline &d, bool poll);
  size_t free_space(size_t need);
  void publish(uint64_t new_tail);
  void advance(uint64_t new_head);
  void signal_fifo();
  void drain_fifo();
  void begin_message(uint64_t end);
  void end_message_failed();
  void after_put_fast();
  void after_get_fast();
  int put_locked(const RingPart *parts, size_t n, size_t len, const Deadline &d, bool poll,
                 bool *published);
  int begin_big(size_t len, unsigned char **out);
  void throttle_big(const Deadline &d, bool poll);
  void write_big(size_t len);
  int get_locked(void *buf, size_t cap, size_t *out_len, void **out_buf, const Deadline &d,
                 bool poll, TakenMsg *take, bool *freed);
  int take_big(uint64_t hd, size_t rec_len, const Extent &x, size_t size, TakenMsg *take);
  int read_big(uint64_t hd, const void *payload, size_t len, Extent *out, size_t *size);
  unsigned char *at(uint64_t pos) const;
  BigFile big_file() const;

  RingHeader *h_ = nullptr;
  unsigned char *data_ = nullptr;  // data ring, mapped twice back to back
  size_t map_len_ = 0;
  size_t cap_ = 0;   // bytes in the data ring (power of two)
  size_t mask_ = 0;
  UniqueFd memfd_;
  UniqueFd fifo_;
  int watching_ = 0;     // pid that registered as a watcher through this handle
  int reserve_pid_ = 0;
  int peek_pid_ = 0;
  size_t reserved_ = SIZE_MAX;  // length reserved by this handle, SIZE_MAX when none
  size_t peek_len_ = SIZE_MAX;  // record length peeked by this handle
  uint64_t head_cache_ = 0;     // last head this handle read (producer side)
  uint64_t room_end_ = 0;       // put_fast() may write up to here: head_cache_ + cap_ - kReserve
  uint64_t tail_cache_ = 0;     // last tail this handle read (consumer side)
  uint64_t last_look_ns_ = 0;   // when this handle last looked at tail for new data (wait_data)
  // Adaptive spin budgets (microseconds) of this handle's producer and consumer sides: each
  // changes under its side's lock only (a handle may put in one thread and get in another).
  int p_spin_ = 20;
  int c_spin_ = 20;
  ExtentMaps pmaps_, cmaps_;    // extents mapped by the producer side / the consumer side
  uint64_t file_size_ = 0;      // the memfd's size last seen (it only grows)
  Extent peek_big_{0, 0};       // the extent of the message peeked by this handle
  std::shared_ptr<BigOwner> owner_;  // see big_owner()
};

}  // namespace mproc
