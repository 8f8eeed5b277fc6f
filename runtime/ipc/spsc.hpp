// The single-producer single-consumer byte ring in shared memory that carries whole messages:
// a pool's task and result rings (pool/) and each direction of a pipe (pipe.cpp) are this ring.
//
// Protocol: `head` counts bytes published, `tail` bytes consumed (both only grow; positions are
// taken modulo the capacity, a power of two). A message is one or more frames: a 16-byte
// SpscFrame {the message's total size, this frame's length, first?} and the bytes, padded to 8.
// A frame holds at most a quarter of the ring, so a message of any size streams through while
// the reader copies it out, and the first frame tells the reader the whole size before it
// consumes anything (a pipe refuses a too-small buffer without losing the message). The writer
// copies a frame and only then publishes it by a release store of `head`; the reader copies it
// and then frees it by a release store of `tail`. A writer killed mid-copy therefore never
// publishes a torn frame, and a frame that does not lie within what was published is refused
// (-EIO: a corrupt or hostile writer).
//
// Sleeping: a reader that finds the ring empty raises `reader_sleeps` and sleeps on the futex
// `data_seq`; a writer publishes, then a seq_cst fence, then reads the flag: one side sees the
// other (Dekker), so no wake-up is lost, and the first writer to find the flag up clears it, bumps
// `data_seq` and wakes (one system call per sleep; a busy ring costs none); a reader that wakes
// lowers it too. A writer that finds no room counts itself in `writer_sleeps` and sleeps on
// `space_seq` the same way; the reader bumps and wakes only while that count is not zero. Each side
// keeps what it last saw of the other's position (a writer the tail, a reader the head), so the
// other's cache line moves once per batch, not once per message; both only grow, so a stale value
// errs on the safe side.
//
// Each flag sits on the cache line of the side that looks at it on every message (the writer at
// reader_sleeps, the reader at writer_sleeps), so a busy ring moves no line for them. Pipes use
// the header's other words (writer_cpu, spin_until, took_at, pollers, watchers, armed: see
// pipe.cpp); a pool leaves them zero.
#pragma once
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "base/futex.hpp"

namespace mproc {

struct SpscHeader {
  // The writer's line: what it writes, and the flag it looks at after every publish.
  alignas(64) std::atomic<uint64_t> head;  // bytes published
  std::atomic<uint32_t> data_seq;          // futex: the reader waits for data
  std::atomic<uint32_t> reader_sleeps;     // the reader sleeps (or is about to) on data_seq
  std::atomic<int32_t> writer_cpu;         // pipes: CPU of the last send (+1; 0: none yet)
  // The reader's line: what it writes, and the count it looks at after every consume.
  alignas(64) std::atomic<uint64_t> tail;  // bytes consumed
  std::atomic<uint32_t> space_seq;         // futex: the writer waits for room
  std::atomic<uint32_t> writer_sleeps;     // writers asleep (or about to be) on space_seq
  std::atomic<uint64_t> spin_until;        // pipes: CLOCK_MONOTONIC ns a reader spins until
  std::atomic<uint64_t> took_at;           // pipes: CLOCK_MONOTONIC ns a reader took a message
  std::atomic<uint32_t> pollers;           // pipes: readers asleep in poll() on the eventfd
  std::atomic<uint32_t> watchers;          // pipes: handles whose fileno() was asked for
  std::atomic<uint32_t> armed;             // pipes: the eventfd holds (or will hold) a count
  alignas(64) uint64_t capacity;           // bytes, power of two (as made; not trusted after)
};

// A frame's header. `total` repeats in every frame (a reader checks the rest against it).
struct SpscFrame {
  uint64_t total;  // bytes of the whole message
  uint32_t len;    // bytes in this frame
  uint32_t first;  // 1 on the first frame of a message
};
static_assert(sizeof(SpscFrame) == 16, "frame header size");

class SpscRing {
 public:
  static constexpr uint64_t kFrameHdr = sizeof(SpscFrame);

  SpscRing() = default;
  // A view of the ring at h whose bytes are at data; cap is the capacity it was made with (the
  // shared field may have been overwritten by a hostile peer since).
  SpscRing(SpscHeader *h, char *data, uint64_t cap)
      : h_(h),
        data_(data),
        cap_(cap),
        staged_(h->head.load(std::memory_order_relaxed)),
        tail_seen_(h->tail.load(std::memory_order_relaxed)),
        head_seen_(h->head.load(std::memory_order_relaxed)) {}
  static void init(SpscHeader *h, uint64_t capacity) {
    new (h) SpscHeader();
    h->capacity = capacity;
  }
  bool valid() const { return h_ != nullptr; }
  SpscHeader *header() const { return h_; }
  uint64_t capacity() const { return cap_; }

  // Largest frame payload: a quarter of the ring, so several frames can be in flight.
  uint64_t max_payload() const { return cap_ / 4 - kFrameHdr; }
  static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ULL; }
  static uint64_t frame_bytes(uint64_t len) { return kFrameHdr + pad8(len); }

  // ---- writer ----------------------------------------------------------------------------

  // Room for `need` bytes now (looks at the reader's tail only when what it saw is not enough).
  bool has_room(uint64_t need) {
    uint64_t head = h_->head.load(std::memory_order_relaxed);
    if (cap_ - (head - tail_seen_) >= need) return true;
    tail_seen_ = h_->tail.load(std::memory_order_acquire);
    return cap_ - (head - tail_seen_) >= need;
  }
  // Sleep on space_seq until room for `need` may be there or the deadline.
  void sleep_for_room(uint64_t need, const Deadline &d) {
    const uint32_t s = h_->space_seq.load(std::memory_order_acquire);
    h_->writer_sleeps.fetch_add(1, std::memory_order_seq_cst);
    if (!has_room(need)) futex_wait(&h_->space_seq, s, d);
    h_->writer_sleeps.fetch_sub(1, std::memory_order_relaxed);
  }
  // Copy one frame of `len` bytes of a `total`-byte message, gathered from parts at (*pi, *po)
  // (advanced past it), at the published head; publish() makes it visible. The caller made room.
  void put_frame(uint64_t total, bool first, uint64_t len, const struct iovec *parts, int nparts,
                 int *pi, size_t *po) {
    uint64_t at = h_->head.load(std::memory_order_relaxed);
    put_frame_at(at, total, first, len, parts, nparts, pi, po);
    staged_ = at + frame_bytes(len);
  }
  // Publish what is written; wake the reader when it sleeps. Returns how many were woken.
  int publish() {
    if (staged_ == h_->head.load(std::memory_order_relaxed)) return 0;
    // A plain store and a fence, not a seq_cst store: on x86 that store is an xchg, a locked
    // write to the line the reader polls, and a ring round trip took 25-30% longer with it.
    h_->head.store(staged_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // then the flag (see top)
    if (h_->reader_sleeps.load(std::memory_order_seq_cst) && h_->reader_sleeps.exchange(0)) {
      h_->data_seq.fetch_add(1, std::memory_order_release);
      return futex_wake(&h_->data_seq, INT_MAX);
    }
    return 0;
  }

  // Write one message made of `parts` (gathered), publishing each frame, blocking while the
  // ring is full. Returns 0, or -ETIMEDOUT when the deadline passes with the ring full, or
  // -EPIPE when `abandon()` says the reader is gone (checked while waiting). on_publish() runs
  // after each frame (for a reader that sleeps on a word of its own rather than data_seq).
  template <class Abandon>
  int write(const struct iovec *parts, int nparts, const Deadline &d, Abandon &&abandon) {
    return write(parts, nparts, d, abandon, [] {});
  }
  template <class Abandon, class Publish>
  int write(const struct iovec *parts, int nparts, const Deadline &d, Abandon &&abandon,
            Publish &&on_publish) {
    publish();
    uint64_t total = 0;
    for (int i = 0; i < nparts; i++) total += parts[i].iov_len;
    uint64_t left = total;
    int pi = 0;
    size_t po = 0;
    do {
      uint64_t frag = left < max_payload() ? left : max_payload();
      int rc = wait_room(frame_bytes(frag), d, abandon);
      if (rc < 0) return rc;
      put_frame(total, left == total, frag, parts, nparts, &pi, &po);
      publish();
      on_publish();
      left -= frag;
    } while (left > 0);
    return 0;
  }

  // Copy one message into the ring without publishing it, so that several messages cost the
  // reader one publication (one cache line hand-over, one wake-up at most). false, with nothing
  // written, when it does not fit in one frame or the ring lacks room now: write() it instead
  // (it publishes what is staged first). Only for a writer that no other process shares.
  bool stage(const struct iovec *parts, int nparts) {
    uint64_t total = 0;
    for (int i = 0; i < nparts; i++) total += parts[i].iov_len;
    if (total > max_payload()) return false;
    uint64_t need = frame_bytes(total);
    if (cap_ - (staged_ - tail_seen_) < need) {
      tail_seen_ = h_->tail.load(std::memory_order_acquire);
      if (cap_ - (staged_ - tail_seen_) < need) return false;
    }
    int pi = 0;
    size_t po = 0;
    put_frame_at(staged_, total, true, total, parts, nparts, &pi, &po);
    staged_ += need;
    return true;
  }

  // ---- reader ----------------------------------------------------------------------------

  // True when a frame is waiting to be read.
  bool readable() const {
    return h_->tail.load(std::memory_order_relaxed) < h_->head.load(std::memory_order_acquire);
  }
  // The frame at the tail, without consuming it: 0, -EAGAIN (none published), or -EIO (it does
  // not lie within what the writer published, or is longer than a frame can be).
  int peek(SpscFrame *f) {
    const uint64_t tail = h_->tail.load(std::memory_order_relaxed);
    // The writer's head is looked at only when what it published before is used up.
    if (tail >= head_seen_) {
      head_seen_ = h_->head.load(std::memory_order_acquire);
      if (tail >= head_seen_) return -EAGAIN;
    }
    get(tail, f, sizeof *f);
    const uint64_t avail = head_seen_ - tail;
    if (avail > cap_ || f->len > max_payload() || frame_bytes(f->len) > avail) return -EIO;
    return 0;
  }
  // Copy the payload of the frame peek() gave into dst and free it.
  void take(const SpscFrame &f, void *dst) {
    const uint64_t tail = h_->tail.load(std::memory_order_relaxed);
    if (f.len) get(tail + kFrameHdr, dst, f.len);
    consume(tail + frame_bytes(f.len));
  }

  // Read one whole message into out (replacing its content). Returns 0, or -EAGAIN when no
  // complete message is there yet (non-blocking; frames read so far are kept here, so a message
  // larger than the ring is assembled across calls), or -EIO (a corrupt frame, see peek).
  int read(std::vector<char> &out) {
    for (;;) {
      SpscFrame f;
      if (int rc = peek(&f)) return rc;
      const bool starts = partial_.empty() && !in_message_;
      if (starts ? !f.first || f.len > f.total
                 : f.first || f.total != partial_total_ || f.len > f.total - partial_.size())
        return -EIO;
      size_t old = partial_.size();
      partial_.resize(old + f.len);
      take(f, partial_.data() + old);  // data() may be null when empty: take() copies nothing
      partial_total_ = f.total;
      in_message_ = partial_.size() < f.total;
      if (!in_message_) {
        out.swap(partial_);
        partial_.clear();
        return 0;
      }
    }
  }
  // Forget a partly read message (its writer died).
  void drop_partial() {
    partial_.clear();
    in_message_ = false;
  }

  // Sleep on data_seq until a frame may be there or the deadline (no spin). Returns
  // futex_wait's result; the caller looks at the ring again. The flag is lowered after (a
  // writer that saw it lowered it already, or will wake nobody): the reader is awake now.
  int sleep_for_data(const Deadline &d) {
    const uint32_t s = h_->data_seq.load(std::memory_order_acquire);
    h_->reader_sleeps.store(1, std::memory_order_seq_cst);  // the flag, then the ring (see top)
    const int r = readable() ? 0 : futex_wait(&h_->data_seq, s, d);
    h_->reader_sleeps.store(0, std::memory_order_relaxed);
    return r;
  }
  // Wait until a message may be there or the deadline passes, spinning for `spin_ns` first: a
  // reader that was just busy is likely to get more work within microseconds.
  void wait_message(const Deadline &d, long spin_ns) {
    if (spin_ns > 0) {
      const uint64_t until = now_ns() + static_cast<uint64_t>(spin_ns);
      for (int i = 0;; i++) {
        if (readable()) return;
        cpu_relax();
        if ((i & 63) == 63 && now_ns() >= until) break;
      }
    }
    sleep_for_data(d);
  }

  static void cpu_relax() { mproc::cpu_relax(); }

 private:
  template <class Abandon>
  int wait_room(uint64_t need, const Deadline &d, Abandon &&abandon) {
    for (int spin = 0; !has_room(need); spin++) {
      if (spin < 200) {
        cpu_relax();
        continue;
      }
      if (abandon()) return -EPIPE;
      if (d.expired()) return -ETIMEDOUT;
      // Bounded sleeps, so that `abandon` is checked even if nobody wakes us.
      sleep_for_room(need, Deadline::earlier(d, Deadline::after(0.05)));
    }
    return 0;
  }

  void put_frame_at(uint64_t at, uint64_t total, bool first, uint64_t len,
                    const struct iovec *parts, int nparts, int *pi, size_t *po) {
    const SpscFrame f = {total, static_cast<uint32_t>(len), first ? 1u : 0u};
    put(at, &f, sizeof f);
    at += kFrameHdr;
    while (len > 0) {
      size_t take = parts[*pi].iov_len - *po;
      if (take > len) take = len;
      put(at, static_cast<const char *>(parts[*pi].iov_base) + *po, take);
      at += take;
      len -= take;
      *po += take;
      if (*po == parts[*pi].iov_len) ++*pi, *po = 0;
    }
    while (*pi < nparts && parts[*pi].iov_len == 0) ++*pi;
  }
  // Free the bytes up to new_tail and wake a writer that waits for room.
  void consume(uint64_t new_tail) {
    h_->tail.store(new_tail, std::memory_order_release);  // a fence, not an xchg (see publish)
    std::atomic_thread_fence(std::memory_order_seq_cst);  // then the count (see top)
    if (h_->writer_sleeps.load(std::memory_order_seq_cst)) {
      h_->space_seq.fetch_add(1, std::memory_order_release);
      futex_wake(&h_->space_seq, INT_MAX);
    }
  }
  void put(uint64_t pos, const void *src, size_t n) {
    if (n == 0) return;
    uint64_t off = pos & (cap_ - 1);
    size_t first = n < cap_ - off ? n : static_cast<size_t>(cap_ - off);
    memcpy(data_ + off, src, first);
    if (n > first) memcpy(data_, static_cast<const char *>(src) + first, n - first);
  }
  void get(uint64_t pos, void *dst, size_t n) const {
    uint64_t off = pos & (cap_ - 1);
    size_t first = n < cap_ - off ? n : static_cast<size_t>(cap_ - off);
    memcpy(dst, data_ + off, first);
    if (n > first) memcpy(static_cast<char *>(dst) + first, data_, n - first);
  }

  SpscHeader *h_ = nullptr;
  char *data_ = nullptr;
  uint64_t cap_ = 0;
  uint64_t staged_ = 0;     // writer: head plus the bytes staged but not yet published
  uint64_t tail_seen_ = 0;  // writer: the reader's tail when last looked at (only grows)
  uint64_t head_seen_ = 0;  // reader: the writer's head when last looked at (only grows)
  std::vector<char> partial_;  // reader: the frames of a message read so far
  uint64_t partial_total_ = 0;
  bool in_message_ = false;    // reader: a message's first frame was read, not yet its last
};

}  // namespace mproc
