// The fast paths of the queue ring's put and get (see their comments), inline: the C shims
// mproc_queue_put and mproc_queue_get (capi/api_queue.cpp) make them with no call at all, which
// is what is left of a small message's cost beside the bare ring (docs/queue.md). The one file
// outside runtime/ipc that sees the ring's layout.
#pragma once

#include <atomic>
#include <cstring>

#include "base/mutex.hpp"
#include "ipc/ring.hpp"
#include "ipc/ring_layout.hpp"

namespace mproc {

// The granted producer's put of a message of up to kFastMax bytes that finds room at once (by
// the cached head), with no item limit: the steps of try_put_granted() and put_locked() in one
// function that calls nothing (docs/queue.md, "The fast paths": a small put is bound by its
// stores, and a call would add register saves). 0: put; 1: not taken and nothing done (put()
// does it, and reports errors).
MPROC_RING_INLINE int Ring::put_fast(const void *data, size_t len) {
  RingHeader *const h = h_;
  const uint32_t tid = t_cached_tid;  // 0 until current_tid() ran once: then put() does it
  if (tid == 0 || h->pb_owner.load(std::memory_order_relaxed) != tid || len > kFastMax ||
      h->maxsize || len > h->max_message || h->closed.load(std::memory_order_relaxed) ||
      !g_mb_registered.load(std::memory_order_acquire))
    return 1;
  std::atomic<uint32_t> &busy = h->pb_slot[tid % kSlots].busy;  // as try_put_granted()
  busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (h->pb_owner.load(std::memory_order_relaxed) != tid) {
    busy.store(0, std::memory_order_release);
    return 1;
  }
  const size_t whole = rec_size(len);  // at most half the smallest ring: never out of line
  static_assert(kFastMax + 2 * kRec <= kRingMinCapacity / 2, "a fast message stays in the ring");
  const uint64_t t0 = h->tail.load(std::memory_order_relaxed);
  if (t0 + whole > room_end_) {  // put() looks at head again (free_space())
    busy.store(0, std::memory_order_release);
    return 1;
  }
  const int32_t cpu = rseq_cpu();  // note_cpu(), where it costs no call
  if (cpu >= 0) note_cpu_is(h->p_cpu, cpu);
  h->w_end.store(t0 + whole, std::memory_order_relaxed);  // begin_message()
  bump(h->items_put);
  if (h->joinable) h->unfinished.fetch_add(1);
  unsigned char *p = data_ + (t0 & mask_);
  if (len <= 16) {
    write_small_record(p, data, len);
  } else {
    const RecHdr r{kFull, static_cast<uint32_t>(len)};
    memcpy(p, &r, kRec);
    copy_fast(p + kRec, data, len);
  }
  h->tail.store(t0 + whole, std::memory_order_release);
  busy.store(0, std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // as try_put_granted()
  if (h->c_sleeping.load(std::memory_order_relaxed) | h->watchers.load(std::memory_order_relaxed))
    after_put_fast();
  return 0;
}

// The granted consumer's get of a message of up to kFastMax bytes held in the ring, whose record
// it has seen published (tail_cache_), into a buffer large enough: the steps of
// try_get_granted() and get_locked() in one function that calls nothing, as put_fast().
// 0: taken; 1: not taken and nothing done (get() does it: waits, copies a large message out,
// reports errors).
MPROC_RING_INLINE int Ring::get_fast(void *buf, size_t cap, size_t *out_len) {
  RingHeader *const h = h_;
  const uint32_t tid = t_cached_tid;  // as put_fast()
  if (tid == 0 || h->cb_owner.load(std::memory_order_relaxed) != tid ||
      !g_mb_registered.load(std::memory_order_acquire))
    return 1;
  std::atomic<uint32_t> &busy = h->cb_slot[tid % kSlots].busy;  // as try_get_granted()
  busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (h->cb_owner.load(std::memory_order_relaxed) != tid) {
    busy.store(0, std::memory_order_release);
    return 1;
  }
  const uint64_t hd = h->head.load(std::memory_order_relaxed);
  const uint64_t seen = tail_cache_ - hd;  // published bytes not yet taken, as far as we know
  const unsigned char *p = data_ + (hd & mask_);
  RecHdr r;
  if (seen - 1 < cap_) memcpy(&r, p, kRec);  // 0 < seen <= cap_
  if (seen - 1 >= cap_ || r.kind != kFull || r.len > kFastMax || r.len > cap ||
      rec_size(r.len) > seen) {
    busy.store(0, std::memory_order_release);
    return 1;
  }
  const size_t len = r.len;
  const int32_t cpu = rseq_cpu();  // as put_fast()
  if (cpu >= 0) note_cpu_is(h->c_cpu, cpu);
  copy_fast(buf, p + kRec, len);
  *out_len = len;
  bump(h->items_got);
  h->head.store(hd + rec_size(len), std::memory_order_release);
  bump(h->st_gets);
  busy.store(0, std::memory_order_release);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // as try_get_granted()
  if (h->p_sleeping.load(std::memory_order_relaxed)) after_get_fast();
  return 0;
}

}  // namespace mproc
