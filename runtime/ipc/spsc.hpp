// A single-producer single-consumer byte ring in shared memory, carrying whole messages.
//
// Protocol: `head` counts bytes written, `tail` bytes read (both only grow; positions are
// taken modulo the capacity, a power of two). The writer copies a message's frame (a 8-byte
// length, then the bytes, padded to 8) and only then publishes it by a release store of `head`;
// the reader acquires `head`, copies, then releases `tail`. A writer killed mid-copy therefore
// never publishes a torn message. Messages longer than the ring travel in fragments (the frame's
// top bit says "more follows"); the reader reassembles them. Each side sleeps on a futex word
// (`data_seq` / `space_seq`) after a short spin, and the other side wakes it only when it
// announced that it sleeps, so a busy ring costs no system call.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <sys/uio.h>
#include <vector>

#include "base/futex.hpp"

namespace mproc {

struct SpscHeader {
  alignas(64) std::atomic<uint64_t> head;
  std::atomic<uint32_t> data_seq;      // bumped after each publish
  std::atomic<uint32_t> reader_sleeps;
  alignas(64) std::atomic<uint64_t> tail;
  std::atomic<uint32_t> space_seq;     // bumped after each consume
  std::atomic<uint32_t> writer_sleeps;
  alignas(64) uint64_t capacity;       // bytes, power of two
};

class SpscRing {
 public:
  static constexpr uint64_t kMore = 1ULL << 63;

  SpscRing() = default;
  SpscRing(SpscHeader *h, char *data)
      : h_(h),
        data_(data),
        cap_(h->capacity),
        staged_(h->head.load(std::memory_order_relaxed)),
        tail_seen_(h->tail.load(std::memory_order_relaxed)),
        head_seen_(h->head.load(std::memory_order_relaxed)) {}
  static size_t bytes_for(uint64_t capacity) { return sizeof(SpscHeader) + capacity; }
  static void init(SpscHeader *h, uint64_t capacity) {
    h->head.store(0);
    h->tail.store(0);
    h->data_seq.store(0);
    h->space_seq.store(0);
    h->reader_sleeps.store(0);
    h->writer_sleeps.store(0);
    h->capacity = capacity;
  }
  bool valid() const { return h_ != nullptr; }
  SpscHeader *header() const { return h_; }

  // Largest fragment payload: a quarter of the ring, so several fragments can be in flight.
  uint64_t max_fragment() const { return cap_ / 4 - 8; }

  // Write one message made of `parts` (gathered), blocking while the ring is full. Returns 0,
  // or -ETIMEDOUT when the deadline passes with the ring full, or -EPIPE when `abandon()` says
  // the reader is gone (checked while waiting).
  template <class Abandon>
  int write(const struct iovec *parts, int nparts, const Deadline &d, Abandon &&abandon) {
    return write(parts, nparts, d, abandon, [] {});
  }
  // The same, calling on_publish() after each fragment is published (for a reader that sleeps
  // on a word of its own rather than on this ring's data_seq).
  template <class Abandon, class Publish>
  int write(const struct iovec *parts, int nparts, const Deadline &d, Abandon &&abandon,
            Publish &&on_publish) {
    publish();
    uint64_t total = 0;
    for (int i = 0; i < nparts; i++) total += parts[i].iov_len;
    uint64_t maxf = max_fragment();
    int pi = 0;
    size_t po = 0;
    do {
      uint64_t frag = total < maxf ? total : maxf;
      uint64_t need = 8 + pad8(frag);
      int rc = wait_space(need, d, abandon);
      if (rc < 0) return rc;
      uint64_t head = h_->head.load(std::memory_order_relaxed);
      uint64_t word = frag | (total > frag ? kMore : 0);
      put(head, &word, 8);
      uint64_t at = head + 8, left = frag;
      while (left > 0) {
        size_t take = parts[pi].iov_len - po;
        if (take > left) take = left;
        put(at, static_cast<const char *>(parts[pi].iov_base) + po, take);
        at += take;
        left -= take;
        po += take;
        if (po == parts[pi].iov_len) pi++, po = 0;
      }
      while (pi < nparts && parts[pi].iov_len == 0) pi++;
      h_->head.store(head + need, std::memory_order_release);
      h_->data_seq.fetch_add(1, std::memory_order_release);
      if (h_->reader_sleeps.load(std::memory_order_seq_cst)) futex_wake(&h_->data_seq, 1);
      on_publish();
      total -= frag;
    } while (total > 0);
    staged_ = h_->head.load(std::memory_order_relaxed);
    return 0;
  }

  // Writer: copy one message into the ring without publishing it, so that several messages
  // cost the reader one publication (one cache line hand-over, one wake-up at most). false,
  // with nothing written, when it does not fit in one fragment or the ring lacks room now:
  // write() it instead (it publishes what is staged first). publish() makes staged messages
  // visible.
  bool stage(const struct iovec *parts, int nparts) {
    uint64_t total = 0;
    for (int i = 0; i < nparts; i++) total += parts[i].iov_len;
    if (total > max_fragment()) return false;
    uint64_t need = 8 + pad8(total);
    if (cap_ - (staged_ - tail_seen_) < need) {
      tail_seen_ = h_->tail.load(std::memory_order_acquire);
      if (cap_ - (staged_ - tail_seen_) < need) return false;
    }
    put(staged_, &total, 8);
    uint64_t at = staged_ + 8;
    for (int i = 0; i < nparts; i++) {
      if (parts[i].iov_len) put(at, parts[i].iov_base, parts[i].iov_len);
      at += parts[i].iov_len;
    }
    staged_ += need;
    return true;
  }
  void publish() {
    if (staged_ == h_->head.load(std::memory_order_relaxed)) return;
    h_->head.store(staged_, std::memory_order_release);
    h_->data_seq.fetch_add(1, std::memory_order_release);
    if (h_->reader_sleeps.load(std::memory_order_seq_cst)) futex_wake(&h_->data_seq, 1);
  }

  // True when a fragment is waiting to be read.
  bool readable() const {
    return h_->tail.load(std::memory_order_relaxed) < h_->head.load(std::memory_order_acquire);
  }

  // Read one whole message into out (replacing its content). Returns 0, or -EAGAIN when no
  // complete message is there yet (non-blocking; fragments read so far are kept here, so a
  // message larger than the ring is assembled across calls), or -EIO when the other side wrote
  // a fragment that does not lie within what it published (corrupt or hostile).
  int read(std::vector<char> &out) {
    for (;;) {
      uint64_t tail = h_->tail.load(std::memory_order_relaxed);
      // The writer's head is looked at only when what it published before is used up: its
      // cache line moves between the two sides once per batch, not once per message.
      if (tail >= head_seen_) {
        head_seen_ = h_->head.load(std::memory_order_acquire);
        if (tail >= head_seen_) return -EAGAIN;
      }
      uint64_t word;
      get(tail, &word, 8);
      uint64_t len = word & ~kMore;
      const uint64_t avail = head_seen_ - tail;
      if (avail > cap_ || avail < 8 || pad8(len) > avail - 8) return -EIO;
      size_t old = partial_.size();
      partial_.resize(old + len);
      if (len) get(tail + 8, partial_.data() + old, len);  // data() may be null when empty
      h_->tail.store(tail + 8 + pad8(len), std::memory_order_release);
      h_->space_seq.fetch_add(1, std::memory_order_release);
      if (h_->writer_sleeps.load(std::memory_order_seq_cst)) futex_wake(&h_->space_seq, 1);
      if (!(word & kMore)) {
        out.swap(partial_);
        partial_.clear();
        return 0;
      }
    }
  }
  // Forget a partly read message (its writer died).
  void drop_partial() { partial_.clear(); }

  // Sleep until a message may be there or the deadline passes (spins for `spin_ns` first:
  // a reader that was just busy is likely to get more work within microseconds).
  void wait_message(const Deadline &d, long spin_ns) {
    if (spin_ns > 0) {
      struct timespec t0, t;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      for (int i = 0;; i++) {
        if (readable()) return;
        cpu_relax();
        if ((i & 63) == 63) {
          clock_gettime(CLOCK_MONOTONIC, &t);
          if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) >= spin_ns) break;
        }
      }
    }
    uint32_t seq = h_->data_seq.load(std::memory_order_acquire);
    h_->reader_sleeps.store(1, std::memory_order_seq_cst);
    if (!readable()) futex_wait(&h_->data_seq, seq, d);
    h_->reader_sleeps.store(0, std::memory_order_relaxed);
  }

  static void cpu_relax() { mproc::cpu_relax(); }

 private:
  static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ULL; }

  template <class Abandon>
  int wait_space(uint64_t need, const Deadline &d, Abandon &&abandon) {
    // Room by the reader's tail as last seen needs no look at its cache line.
    if (cap_ - (h_->head.load(std::memory_order_relaxed) - tail_seen_) >= need) return 0;
    for (int spin = 0;; spin++) {
      tail_seen_ = h_->tail.load(std::memory_order_acquire);
      uint64_t used = h_->head.load(std::memory_order_relaxed) - tail_seen_;
      if (cap_ - used >= need) return 0;
      if (spin < 200) {
        cpu_relax();
        continue;
      }
      if (abandon()) return -EPIPE;
      if (d.expired()) return -ETIMEDOUT;
      uint32_t seq = h_->space_seq.load(std::memory_order_acquire);
      h_->writer_sleeps.store(1, std::memory_order_seq_cst);
      used = h_->head.load(std::memory_order_relaxed) - h_->tail.load(std::memory_order_acquire);
      if (cap_ - used < need) {
        // Bounded sleeps, so that `abandon` is checked even if nobody wakes us.
        futex_wait(&h_->space_seq, seq, Deadline::earlier(d, Deadline::after(0.05)));
      }
      h_->writer_sleeps.store(0, std::memory_order_relaxed);
    }
  }

  void put(uint64_t pos, const void *src, size_t n) {
    uint64_t cap = cap_, off = pos & (cap - 1);
    size_t first = n < cap - off ? n : static_cast<size_t>(cap - off);
    memcpy(data_ + off, src, first);
    if (n > first) memcpy(data_, static_cast<const char *>(src) + first, n - first);
  }
  void get(uint64_t pos, void *dst, size_t n) const {
    uint64_t cap = cap_, off = pos & (cap - 1);
    size_t first = n < cap - off ? n : static_cast<size_t>(cap - off);
    memcpy(dst, data_ + off, first);
    if (n > first) memcpy(static_cast<char *>(dst) + first, data_, n - first);
  }

  SpscHeader *h_ = nullptr;
  char *data_ = nullptr;
  uint64_t cap_ = 0;        // capacity when made: the shared field may be overwritten meanwhile
  uint64_t staged_ = 0;     // writer: head plus the bytes staged but not yet published
  uint64_t tail_seen_ = 0;  // writer: the reader's tail when last looked at (only grows)
  uint64_t head_seen_ = 0;  // reader: the writer's head when last looked at (only grows)
  std::vector<char> partial_;
};

}  // namespace mproc
