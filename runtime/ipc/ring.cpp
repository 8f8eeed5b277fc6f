// The shared-memory ring behind mproc_queue_t.
//
// Layout. One memfd: a header page, then the data ring of `cap` bytes (a power of two), then the
// extents of out-of-line messages (bigmsg.hpp). The data ring is mapped twice back to back, so
// a record that runs past the end is still contiguous in memory: records are never split and
// reserve/peek hand out plain pointers.
//
// Records. head and tail are 64-bit byte positions that only grow. A record is an 8-byte header
// {kind, len} and len bytes of payload, padded to 8 (an 8-byte message takes 16 bytes: four to a
// cache line). A message whose record fits in half the ring is one FULL record. A larger one,
// and one of at least kOutOfLineMin bytes that finds no room in the ring for kRoomWait, is
// written to an extent of the file and the ring carries a BIG record naming it {offset, extent
// length, size}: a put never waits for a reader to make room for it (at most kRoomWait for one
// at work, also while more than kBigBudget is out of line, so that a producer far ahead reuses
// warm extents instead of faulting in fresh memory), and a producer may exit before it is read.
// The consumer copies the message out and frees the extent. Every record is published whole by
// one store of tail, so a reader never sees part of a message.
//
// Locks. Producers serialize on a process-shared futex mutex (plock, base/mutex.hpp's MutexWord:
// one CAS to take, one to release, and an owner that died holding it is detected), consumers on
// another (clock). The holder of plock is the only writer and the holder of clock the only reader,
// so the ring itself is single-producer single-consumer: the writer fills bytes past tail and then
// publishes them with a release store of tail; the reader copies bytes before tail and then
// frees them with a release store of head. FIFO order holds per producer (and globally, by the
// order in which producers take plock).
//
// The single-thread paths. Most queues have one producer thread and one consumer thread at a
// time, and the two locked instructions of plock cost a put most of its time: each waits for
// the put's stores, whose cache lines the consumer has just read, to reach the other core, one
// put after the other (clock costs a get the same). So a thread that took plock pb_need times in
// a row is granted the producer side (pb_owner = its tid) and puts without plock: it raises its
// busy word, checks that it still owns the side, puts, and lowers the word, with plain stores
// and loads. Another producer takes plock, revokes (pb_owner = 0), runs
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) and waits for the owner's busy word to fall: the
// membarrier stands for the full barrier the owner no longer executes (asymmetric Dekker, as
// userspace RCU does), so either the owner saw the revocation or its busy word is visible. It
// then owns the side under plock as before; pb_need doubles at each revocation, so producers that
// take turns stay on plock. Each granted thread has a busy word of its own (pb_slot, given at the
// grant and never shared by two live threads): a former owner may still raise and lower its word
// on its way to finding the grant gone, and must not clear the word of the thread granted since.
// The grantee registers for membarrier first; where membarrier is missing, nobody is granted.
// A granted owner that dies inside a put leaves its busy word up: the revoker finds its tid gone
// and recovers as for plock. The consumer side has the same grant (cb_owner, cb_slot, cb_need,
// under clock; RingGrant names either side's fields), so a lone consumer gets without clock; a
// granted consumer that dies inside a get is recovered from as a dead holder of clock. The same
// steps for a message of up to kFastMax bytes that needs no waiting are put_fast() and
// get_fast() (ring_fast.hpp), inlined into the C shims.
//
// Sleeping. A waiter spins briefly (adaptive per handle), then raises the flag c_sleeping /
// p_sleeping and sleeps on the 32-bit futex word data_seq / space_seq. The other side makes its
// change with a seq_cst store and then reads the flag (seq_cst): at least one of the two sees
// the other (Dekker), so a wake-up is never lost, and an idle queue costs no CPU. A granted
// thread has no barrier between its tail (head) store and its look at the flag, so a consumer
// (producer) that sleeps while the other side is granted first sleeps at most kFencelessSleep
// (a wake-up it missed costs at most that), then runs the membarrier (which makes the Dekker
// pair whole again) and sleeps for good. The first side to find the flag up clears it
// (exchange), bumps the word and wakes every sleeper; later puts and gets find it down and make
// no system call, so a burst costs one wake-up, not one per message, while the sleeper is on
// its way back.
//
// Crashes. A producer killed while holding plock (or granted) in the middle of a message leaves
// w_end (where that message ends) ahead of tail: the next owner of plock (MPROC_EOWNERDEAD, or a
// revoker that finds the granted thread gone) withdraws it and frees the extent it had taken
// (w_big). A message counts as put from its begin (items_put) and is uncounted if withdrawn, so
// a producer needs no mark after the tail store that publishes it.
// A consumer killed while copying an out-of-line message out (r_state: its record taken, at
// r_head) loses that message; the next owner of clock (or a revoker that finds the granted
// consumer gone) frees its extent (r_big). A consumer killed at any other point leaves the
// message it was taking in the queue.
#include "ipc/ring.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "base/mutex.hpp"
#include "ipc/ring_fast.hpp"
#include "ipc/ring_layout.hpp"

namespace mproc {

int check_record(const RecHdr &r, uint64_t hd, uint64_t tail, size_t cap) {
  if (tail - hd <= cap && rec_size(r.len) <= tail - hd) return 0;
  return fail(MPROC_EIO, "corrupt queue ring (record of kind %u and %u bytes at %llu, tail %llu)",
              r.kind, r.len, static_cast<unsigned long long>(hd),
              static_cast<unsigned long long>(tail));
}

// ---- publishing -------------------------------------------------------------------------------

void Ring::publish(uint64_t new_tail) {
  h_->tail.store(new_tail);  // seq_cst: pairs with the sleeper's flag (see top)
  wake_sleepers(h_->data_seq, h_->c_sleeping);
  if (h_->watchers.load()) signal_fifo();
}

void Ring::advance(uint64_t new_head) {
  h_->head.store(new_head);  // seq_cst: pairs with the sleeper's flag (see top)
  wake_sleepers(h_->space_seq, h_->p_sleeping);
}

void Ring::signal_fifo() {
  if (h_->armed.exchange(1) == 0) {
    ssize_t r;
    do r = write(fifo_.get(), "q", 1);
    while (r < 0 && errno == EINTR);  // EAGAIN: the fifo is full, hence readable: fine
  }
}

void Ring::drain_fifo() {
  char buf[256];
  while (read(fifo_.get(), buf, sizeof buf) > 0) {
  }
  h_->armed.store(0);
}

bool Ring::has_data_or_closed() const {
  return h_->tail.load() != h_->head.load() || h_->closed.load();
}

bool Ring::ready_for_get() {
  drain_fifo();
  bool r = has_data_or_closed();
  if (r) signal_fifo();  // keep the fd readable for other pollers while a message waits
  return r;
}

int Ring::fileno() {
  if (watching_ != getpid()) {
    watching_ = getpid();
    h_->watchers.fetch_add(1);
    // A granted producer reads watchers without a barrier after its tail store (top).
    if (fenceless_producer()) heavy_barrier();
    if (has_data_or_closed()) signal_fifo();
  }
  return fifo_.get();
}

// ---- put ----------------------------------------------------------------------------------------

// Holding the producer side: the message whose record ends the ring at `end` (once published).
void Ring::begin_message(uint64_t end) {
  h_->w_end.store(end, std::memory_order_relaxed);  // w_big is {0, 0} here (set only between
  bump(h_->items_put);                               // an extent's taking and its record)
  if (h_->joinable) h_->unfinished.fetch_add(1);
}

// The message begun by begin_message() will not be delivered (its record was not published).
void Ring::end_message_failed() {
  h_->items_put.fetch_sub(1);
  if (h_->joinable && h_->unfinished.fetch_sub(1) == 1) {
    h_->join_seq.fetch_add(1);
    futex_wake(&h_->join_seq, INT_MAX);
  }
  h_->w_big = Extent{0, 0};
  h_->w_end.store(h_->tail.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

// Holding the producer side with room for a BIG record: begin the message and take an extent of
// len bytes for it, mapped at *out (w_big names it until the record is published).
int Ring::begin_big(size_t len, unsigned char **out) {
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  begin_message(t0 + rec_size(sizeof(BigRef)));
  Extent x;
  int rc = alloc_extent(&h_->big, big_file(), len, &h_->w_big, &x);
  if (rc == 0) {
    rc = pmaps_.map(memfd_.get(), x, out);
    if (rc == 0) return 0;
    free_extent(&h_->big, big_file(), x);
  }
  end_message_failed();
  return rc;
}

// Write the BIG record of the message begun by begin_big() (len bytes written); not published.
void Ring::write_big(size_t len) {
  unsigned char *p = at(h_->tail.load(std::memory_order_relaxed));
  const RecHdr r{kBig, static_cast<uint32_t>(sizeof(BigRef))};
  const BigRef ref{h_->w_big.off, h_->w_big.len, len};
  memcpy(p, &r, kRec);
  memcpy(p + kRec, &ref, sizeof ref);
}

// Much held out of line (kBigBudget, kBigInFlight): a producer far ahead of its reader. Wait up to
// kRoomWait for the reader to give some back, so that the next extent is a warm one rather than
// fresh memory (page faults cost more than the copy); never longer: a put does not wait for a
// reader (top).
void Ring::throttle_big(const Deadline &d, bool poll) {
  auto over = [&] {
    return h_->big.live_bytes.load(std::memory_order_relaxed) >= kBigBudget ||
           h_->big.live.load(std::memory_order_relaxed) >= kBigInFlight;
  };
  if (poll || !over()) return;
  const uint64_t until = now_ns() + static_cast<uint64_t>(kRoomWait * 1e9);
  while (over() && now_ns() < until && !d.expired()) {
    struct timespec ts = {0, 20000};
    nanosleep(&ts, nullptr);
  }
}

// Copy the parts, one after the other, to dst.
static void copy_parts(unsigned char *dst, const RingPart *parts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len) memcpy(dst, parts[i].data, parts[i].len);
    dst += parts[i].len;
  }
}

int Ring::put_locked(const RingPart *parts, size_t n, size_t len, const Deadline &d, bool poll,
                     bool *published) {
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  const size_t whole = rec_size(len);
  // Out of line: too large for the ring, or large and still no room for it after kRoomWait.
  bool big = whole > cap_ / 2;
  if (!big && len >= kOutOfLineMin && free_space(whole) < whole) {
    const int rc = poll ? MPROC_ETIMEDOUT
                        : wait_space(whole, true, Deadline::earlier(d, Deadline::after(kRoomWait)),
                                     false);
    if (rc == MPROC_ETIMEDOUT && (poll || !d.expired())) big = true;
    else if (rc) return rc;
  }
  if (big) throttle_big(d, poll);
  const size_t need = big ? rec_size(sizeof(BigRef)) : whole;
  // Room known from the cached head and no item limit: no call (a put is a few stores)
  if (h_->maxsize || free_space(need) < need)
    if (int rc = wait_space(need, true, d, poll)) return rc;
  if (big) {
    unsigned char *dst;
    if (int rc = begin_big(len, &dst)) return rc;
    copy_parts(dst, parts, n);
    write_big(len);
  } else {
    begin_message(t0 + whole);
    unsigned char *p = at(t0);
    const RecHdr r{kFull, static_cast<uint32_t>(len)};
    memcpy(p, &r, kRec);
    if (n == 1) {
      copy_msg(p + kRec, parts[0].data, len);
    } else {
      copy_parts(p + kRec, parts, n);
    }
  }
  // Published with a release store; put() looks for sleepers after the unlock, whose locked
  // instruction has already drained the store buffer (one full barrier fewer per put).
  h_->tail.store(h_->w_end.load(std::memory_order_relaxed), std::memory_order_release);
  *published = true;
  if (big) h_->w_big = Extent{0, 0};
  return 0;
}

// The granted thread's put (top): false when the grant was revoked meanwhile (nothing done).
bool Ring::try_put_granted(uint32_t tid, const RingPart *parts, size_t n, size_t len,
                           const Deadline &d, bool poll, int *rc) {
  std::atomic<uint32_t> &busy = h_->pb_slot[tid % kSlots].busy;  // this thread's own (top)
  busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the revoker's membarrier orders these
  if (h_->pb_owner.load(std::memory_order_relaxed) != tid) {
    busy.store(0, std::memory_order_release);
    return false;
  }
  note_cpu(h_->p_cpu);
  bool published = false;
  *rc = put_locked(parts, n, len, d, poll, &published);
  busy.store(0, std::memory_order_release);
  if (published) {
    // No barrier between the tail store and this look: a consumer that goes to sleep meanwhile
    // is covered by its short first sleep and its membarrier (top).
    std::atomic_signal_fence(std::memory_order_seq_cst);
    wake_sleepers(h_->data_seq, h_->c_sleeping);
    if (h_->watchers.load(std::memory_order_relaxed)) signal_fifo();
  }
  return true;
}

// The rare ends of the fast paths, out of line: wake the other side's sleepers (its flag was up)
// and, after a put, signal the pollable fd.
__attribute__((noinline, cold)) void Ring::after_put_fast() {
  wake_sleepers(h_->data_seq, h_->c_sleeping);
  if (h_->watchers.load(std::memory_order_relaxed)) signal_fifo();
}
__attribute__((noinline, cold)) void Ring::after_get_fast() {
  wake_sleepers(h_->space_seq, h_->p_sleeping);
}

int Ring::put(const RingPart *parts, size_t n, double timeout) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len > SIZE_MAX - len) return fail(MPROC_EMSGSIZE, "parts add up to over SIZE_MAX");
    len += parts[i].len;
  }
  if (len > h_->max_message)
    return fail(MPROC_EMSGSIZE, "message of %zu bytes is over the queue's limit of %zu", len,
                static_cast<size_t>(h_->max_message));
  if (h_->closed.load()) return fail(MPROC_ECLOSED, "queue is closed");
  if (n == 1 && put_fast(parts[0].data, len) == 0) return 0;
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc;
  const uint32_t tid = current_tid();
  if (h_->pb_owner.load(std::memory_order_relaxed) == tid &&
      g_mb_registered.load(std::memory_order_acquire) &&
      try_put_granted(tid, parts, n, len, d, poll, &rc)) {
    // done without plock (top)
  } else {
    rc = lock_producer(d, poll);
    if (rc == 0) {
      note_cpu(h_->p_cpu);
      bool published = false;  // a local: other threads may put through this handle meanwhile
      rc = put_locked(parts, n, len, d, poll, &published);
      unlock_producer();
      if (published) {
        full_fence_after_unlock();  // tail store, then the flag (top)
        wake_sleepers(h_->data_seq, h_->c_sleeping);
        if (h_->watchers.load()) signal_fifo();
      }
    }
  }
  if (rc == MPROC_ETIMEDOUT)
    return poll ? fail(MPROC_EFULL, "queue is full") : fail(rc, "timeout after %g s", timeout);
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed");
  return rc;
}


// ---- get ----------------------------------------------------------------------------------------

// The extent and size named by the BIG record at hd (payload of len bytes), checked: 0 or
// MPROC_EIO (recorded).
int Ring::read_big(uint64_t hd, const void *payload, size_t len, Extent *out, size_t *size) {
  BigRef ref;
  if (len != sizeof ref)
    return fail(MPROC_EIO, "corrupt queue record (BIG of %zu bytes at %llu)", len,
                static_cast<unsigned long long>(hd));
  memcpy(&ref, payload, sizeof ref);
  *out = Extent{ref.off, ref.len};
  if (int rc = check_extent(big_file(), *out, &file_size_)) return rc;
  if (ref.size > ref.len || ref.size > kRingMessageMax)
    return fail(MPROC_EIO, "corrupt queue record (BIG of %llu bytes in %llu at %llu)",
                static_cast<unsigned long long>(ref.size),
                static_cast<unsigned long long>(ref.len), static_cast<unsigned long long>(hd));
  *size = static_cast<size_t>(ref.size);
  return 0;
}

int Ring::get_locked(void *buf, size_t cap, size_t *out_len, void **out_buf, const Deadline &d,
                     bool poll, TakenMsg *take, bool *freed) {
  if (int rc = wait_data(d, poll)) return rc;
  const uint64_t hd = h_->head.load(std::memory_order_relaxed);
  RecHdr r;
  memcpy(&r, at(hd), kRec);
  if (int rc = check_record(r, hd, tail_cache_, cap_)) return rc;
  if (r.kind != kFull && r.kind != kBig)
    return fail(MPROC_EIO, "corrupt queue record (kind %u at %llu)", r.kind,
                static_cast<unsigned long long>(hd));
  const unsigned char *src = at(hd) + kRec;
  size_t total = r.len;
  Extent x{0, 0};
  if (r.kind == kBig) {
    if (int rc = read_big(hd, src, r.len, &x, &total)) return rc;
  }
  if (take && r.kind == kBig) return take_big(hd, r.len, x, total, take);
  unsigned char *dst;
  if (out_buf) {
    dst = static_cast<unsigned char *>(malloc(total ? total : 1));
    if (!dst) return fail(MPROC_ENOMEM, "cannot allocate %zu bytes for a message", total);
  } else {
    if (total > cap) {
      *out_len = total;
      return fail(MPROC_EMSGSIZE, "message of %zu bytes does not fit the buffer of %zu bytes",
                  total, cap);
    }
    dst = static_cast<unsigned char *>(buf);
  }
  if (r.kind == kFull) {
    copy_msg(dst, src, total);
    bump(h_->items_got);
    h_->head.store(hd + rec_size(r.len), std::memory_order_release);
    *freed = true;  // get() looks for sleeping producers after the unlock (as put())
  } else {
    unsigned char *p;
    if (int rc = cmaps_.map(memfd_.get(), x, &p)) {
      if (out_buf) free(dst);
      return rc;
    }
    src = p;
    // Taken before the copy, so the ring's room is free while we copy; a death from here on
    // loses this message and recovery frees its extent (top).
    h_->r_big = x;
    h_->r_head = hd;
    h_->r_state = 1;
    bump(h_->items_got);
    advance(hd + rec_size(r.len));
    if (total) memcpy(dst, src, total);
    free_extent(&h_->big, big_file(), x);
    h_->r_state = 0;
  }
  bump(h_->st_gets);
  *out_len = total;
  if (out_buf) *out_buf = dst;
  return 0;
}

// The granted consumer's get (top), as try_put_granted: false when the grant was revoked
// meanwhile (nothing done).
bool Ring::try_get_granted(uint32_t tid, void *buf, size_t cap, size_t *out_len, void **out_buf,
                           const Deadline &d, bool poll, TakenMsg *take, int *rc) {
  std::atomic<uint32_t> &busy = h_->cb_slot[tid % kSlots].busy;  // this thread's own (top)
  busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the revoker's membarrier orders these
  if (h_->cb_owner.load(std::memory_order_relaxed) != tid) {
    busy.store(0, std::memory_order_release);
    return false;
  }
  note_cpu(h_->c_cpu);
  bool freed = false;
  *rc = get_locked(buf, cap, out_len, out_buf, d, poll, take, &freed);
  busy.store(0, std::memory_order_release);  // what we did is the next owner's to see
  if (freed) {
    // No barrier between the head store and this look: a producer that goes to sleep for room
    // meanwhile is covered by its short first sleep and its membarrier (top).
    std::atomic_signal_fence(std::memory_order_seq_cst);
    wake_sleepers(h_->space_seq, h_->p_sleeping);
  }
  return true;
}

int Ring::get(void *buf, size_t cap, size_t *out_len, void **out_buf, double timeout,
              TakenMsg *take) {
  if (!out_buf && !take && get_fast(buf, cap, out_len) == 0) return 0;
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc = MPROC_ETIMEDOUT;
  if (!poll || has_data_or_closed()) {
    const uint32_t tid = current_tid();
    if (h_->cb_owner.load(std::memory_order_relaxed) == tid &&
        g_mb_registered.load(std::memory_order_acquire) &&
        try_get_granted(tid, buf, cap, out_len, out_buf, d, poll, take, &rc)) {
      // done without clock (top)
    } else {
      rc = lock_consumer(d, poll);
      if (rc == 0) {
        note_cpu(h_->c_cpu);
        bool freed = false;  // a local: other threads may get through this handle meanwhile
        rc = get_locked(buf, cap, out_len, out_buf, d, poll, take, &freed);
        unlock_consumer();
        if (freed) {
          full_fence_after_unlock();  // head store, then the flag
          wake_sleepers(h_->space_seq, h_->p_sleeping);
        }
      }
    }
  }
  if (rc == MPROC_ETIMEDOUT) {
    if (poll && watching_ == getpid() && h_->watchers.load()) ready_for_get();
    return poll ? fail(MPROC_EEMPTY, "queue is empty") : fail(rc, "timeout after %g s", timeout);
  }
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed and empty");
  return rc;
}

// ---- state --------------------------------------------------------------------------------------

int Ring::close() {
  h_->closed.store(1);
  for (auto *w : {&h_->data_seq, &h_->space_seq, &h_->join_seq}) {
    w->fetch_add(1);
    futex_wake(w, INT_MAX);
  }
  if (h_->watchers.load()) signal_fifo();
  return 0;
}

size_t Ring::qsize() const {
  uint64_t got = h_->items_got.load();
  uint64_t put = h_->items_put.load();
  return put > got ? static_cast<size_t>(put - got) : 0;
}

bool Ring::full() const {
  if (h_->maxsize && qsize() >= h_->maxsize) return true;
  // Less than a quarter free: a message of up to half the ring may have to wait for room.
  uint64_t used = h_->tail.load() - h_->head.load();
  return used + kReserve + cap_ / 4 > cap_;
}

// A live thread holding a lock or grant may make a reader wait, as a slow writer would: ids in
// lock and owner words are made ones no thread can have (over pid_max), so the owner is dead.
unsigned char *Ring::overwrite_shared(const unsigned char *p, size_t n) {
  const size_t hn = std::min(n, sizeof(RingHeader));
  memcpy(static_cast<void *>(h_), p, hn);
  auto dead = [](std::atomic<uint32_t> &w) {
    if (w.load() & kMutexTidMask) w.store(w.load() | 0x20000000u);
  };
  dead(h_->plock.word);
  dead(h_->clock.word);
  dead(h_->big.lock.word);
  dead(h_->pb_owner);
  for (RingSlot &s : h_->pb_slot) dead(s.tid);
  dead(h_->cb_owner);
  for (RingSlot &s : h_->cb_slot) dead(s.tid);
  memcpy(at(h_->head.load()), p + hn, std::min(n - hn, cap_));
  return data_ + 2 * cap_;
}

RingStats Ring::stats() const {
  // A message under way (w_end ahead of tail) is in items_put and not put yet.
  const uint64_t put = h_->items_put.load() - (h_->w_end.load() != h_->tail.load() ? 1 : 0);
  return RingStats{put,                   h_->st_gets.load(),    h_->st_pdeaths.load(),
                   h_->st_cdeaths.load(),  h_->st_dropped.load(), h_->st_lost.load(),
                   h_->st_grants.load(),   h_->st_revokes.load(), h_->big.live.load(),
                   h_->big.live_bytes.load(), h_->st_cgrants.load(), h_->st_crevokes.load()};
}

}  // namespace mproc
