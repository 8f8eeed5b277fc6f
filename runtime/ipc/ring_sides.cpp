// The queue ring's two sides: the producer and consumer locks, the single-thread grants and their
// revocation, recovery from a process that died holding a side, and waiting (spin, then sleep
// on a futex). The protocol is described at the top of ring.cpp.
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "base/error.hpp"
#include "base/interrupt.hpp"
#include "base/mutex.hpp"
#include "ipc/ring.hpp"
#include "ipc/ring_layout.hpp"

namespace mproc {

std::atomic<bool> g_mb_registered{false};

namespace {

// membarrier(2): this process registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (reset in a forked
// child, which must register again), or found that it cannot. Atomics: any thread may register
// while others look (release / acquire: a thread that sees the flag sees a finished registration,
// and registering twice is harmless).
std::atomic<bool> g_mb_unavailable{false};
pthread_once_t g_mb_once = PTHREAD_ONCE_INIT;
void mb_reset_after_fork() { g_mb_registered.store(false, std::memory_order_relaxed); }
void mb_install_reset() { pthread_atfork(nullptr, nullptr, &mb_reset_after_fork); }

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

}  // namespace

// Register this process, so that another's heavy_barrier() reaches its threads. False where the
// kernel (or a seccomp filter) has no expedited global membarrier: no grant then (asked once).
bool membarrier_register() {
  if (g_mb_registered.load(std::memory_order_acquire)) return true;
  if (g_mb_unavailable.load(std::memory_order_relaxed)) return false;
  pthread_once(&g_mb_once, mb_install_reset);
  long q = membarrier(MEMBARRIER_CMD_QUERY);
  if (q < 0 || !(q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
      membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) {
    g_mb_unavailable.store(true, std::memory_order_relaxed);
    return false;
  }
  g_mb_registered.store(true, std::memory_order_release);
  return true;
}

// A full barrier on every running thread of every registered process (~tens of us: IPIs). If the
// call fails here (a filter may refuse it to this process), waiting out any store buffer instead.
void heavy_barrier() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

int queue_lock(MutexWord *m, const Deadline &d, bool poll) {
  int r;
  if (poll) {
    for (int i = 0; i < 64; i++) {  // a put or get holds it for a few hundred nanoseconds
      uint32_t z = 0;
      if (m->word.load(std::memory_order_relaxed) == 0 &&
          m->word.compare_exchange_weak(z, current_tid(), std::memory_order_acquire,
                                        std::memory_order_relaxed))
        return 0;
      cpu_relax();
    }
    r = mutex_lock(m, 0);
  } else {
    r = mutex_lock(m, d.infinite ? -1 : std::max(d.seconds_left(), 1e-9), true);
  }
  switch (r) {
    case 0: return 0;
    case MPROC_EOWNERDEAD: return 1;
    case MPROC_ETIMEDOUT: return MPROC_ETIMEDOUT;
    default: return r < 0 ? r : fail(MPROC_EIO, "queue lock failed (%d)", r);
  }
}

// ---- locks, grants and recovery -------------------------------------------------------------

int Ring::lock_producer(const Deadline &d, bool poll) {
  const int r = queue_lock(&h_->plock, d, poll);
  if (r < 0) return r;
  if (int rc = after_lock(producer_grant(h_), r == 1, d, poll)) {
    unlock_producer();
    return rc;
  }
  return 0;
}

int Ring::lock_consumer(const Deadline &d, bool poll) {
  const int r = queue_lock(&h_->clock, d, poll);
  if (r < 0) return r;
  if (int rc = after_lock(consumer_grant(h_), r == 1, d, poll)) {
    unlock_consumer();
    return rc;
  }
  return 0;
}

// Just took the side's lock (plock or clock; owner_died: from a holder that died): make the
// side ours, revoking another thread's grant (top), recover, and count this take towards a
// grant of our own.
int Ring::after_lock(const RingGrant &g, bool owner_died, const Deadline &d, bool poll) {
  const uint32_t tid = current_tid();
  const uint32_t o = g.owner.load(std::memory_order_relaxed);
  if (o != tid) {
    // A holder that died may have been half-way through a revocation: finish it.
    if (int rc = take_side(g, o, owner_died, d, poll)) return rc;
  }
  if (owner_died) {
    if (g.consumer) recover_consumer();
    else recover_producer();
  }
  if (o == tid) return 0;  // the granted thread on the locked path (reserve / commit, peek)
  if (g.last == tid) {
    if (++g.streak >= g.need && claim_slot(g, tid) && membarrier_register()) {
      g.owner.store(tid, std::memory_order_relaxed);  // the lock's release publishes it
      bump(g.grants);
    }
  } else {
    g.last = tid;
    g.streak = 1;
  }
  return 0;
}

// Holding the side's lock: thread tid's busy word, if the slot is free or already tid's. A slot
// whose thread is gone is freed (its word may be up: a thread that died on its way to finding
// its grant revoked; a dead owner's operation was recovered when the side was taken). False
// when another live thread holds it: no grant then, and another run of `need` takes first.
bool Ring::claim_slot(const RingGrant &g, uint32_t tid) {
  RingSlot &s = g.slots[tid % kSlots];
  const uint32_t t = s.tid.load(std::memory_order_relaxed);
  if (t == tid) return true;
  if (t != 0 && tid_alive(t)) {
    g.streak = 0;
    return false;
  }
  s.busy.store(0, std::memory_order_relaxed);
  s.tid.store(tid, std::memory_order_relaxed);
  return true;
}

// Holding the side's lock: make the side ours. Revoke the grant of thread o (see top), then wait
// until no busy word is up: o's operation, or that of a thread revoked earlier by a revoker that
// gave up waiting for it (a poll, or its deadline) and let the lock go while it was still inside
// a put or get (waiting for room or data, after which it writes or reads at the position it
// read first). Its word stays visible until it falls: the revoker's membarrier made it so, and
// a thread that raises its word later finds the grant gone and touches nothing. force: a holder
// died, maybe half-way through a revocation. A poll does not wait (MPROC_ETIMEDOUT). A granted
// thread that died inside a put or get is recovered from as a dead lock holder would be.
int Ring::take_side(const RingGrant &g, uint32_t o, bool force, const Deadline &d, bool poll) {
  if (o != 0 || force) {
    g.owner.store(0);
    heavy_barrier();  // now o either saw the revocation or its busy word is visible (top)
    if (o != 0) {
      bump(g.revokes);
      g.need = std::min(g.need * 2, kBiasMax);
    }
    g.streak = 0;
  }
  for (uint32_t i = 0; i < kSlots; i++) {
    RingSlot &s = g.slots[i];
    const uint32_t t = s.tid.load(std::memory_order_relaxed);
    if (t == 0 || s.busy.load(std::memory_order_acquire) == 0) continue;
    if (int rc = wait_not_busy(g, s, t, d, poll)) return rc;
  }
  return 0;
}

// Holding the side's lock: wait until thread t's busy word falls. Growing sleeps (its put may
// be waiting for space, its get for data), and a look at whether t lives first and then every
// kDeathCheckSlice.
int Ring::wait_not_busy(const RingGrant &g, RingSlot &s, uint32_t t, const Deadline &d,
                        bool poll) {
  long nap_ns = 2000;
  uint64_t next_check = 0;
  for (int i = 0;; i++) {
    if (s.busy.load(std::memory_order_acquire) == 0) return 0;
    if (i < 100) {
      cpu_relax();
      continue;
    }
    if (now_ns() >= next_check) {
      if (!tid_alive(t)) {
        if (g.consumer) recover_consumer();
        else recover_producer();
        s.busy.store(0, std::memory_order_relaxed);
        return 0;
      }
      next_check = now_ns() + static_cast<uint64_t>(kDeathCheckSlice * 1e9);
    }
    if (poll || d.expired()) return MPROC_ETIMEDOUT;
    struct timespec ts = {0, nap_ns};
    nanosleep(&ts, nullptr);
    nap_ns = std::min(nap_ns * 2, 1000000L);
  }
}

// A granted thread may be putting without barriers (top): its own, or one revoked meanwhile.
bool Ring::fenceless_producer() const { return grant_fenceless(producer_grant(h_)); }

void Ring::unlock_producer() { mutex_unlock(&h_->plock); }
void Ring::unlock_consumer() { mutex_unlock(&h_->clock); }

void Ring::recover_producer() {
  h_->st_pdeaths.fetch_add(1);
  recover_producer_message();
}

// The message a dead producer was writing, if any (w_end ahead of tail): withdraw it and free
// the extent it had taken (a record is published whole or not at all). One it published is
// counted already (items_put); its extent is the reader's now.
void Ring::recover_producer_message() {
  if (h_->tail.load() == h_->w_end.load()) {
    h_->w_big = Extent{0, 0};
    return;
  }
  h_->st_dropped.fetch_add(1);
  free_extent(&h_->big, big_file(), h_->w_big);
  end_message_failed();
}

// A consumer died holding clock. In the middle of copying an out-of-line message out (its record
// already taken): that message is lost and its extent freed. Before taking the record: nothing.
void Ring::recover_consumer() {
  h_->st_cdeaths.fetch_add(1);
  if (h_->r_state) {
    if (h_->head.load() != h_->r_head) {
      h_->st_lost.fetch_add(1);
      free_extent(&h_->big, big_file(), h_->r_big);
    }
    h_->r_state = 0;
    h_->r_big = Extent{0, 0};
  }
}

// ---- waiting ----------------------------------------------------------------------------------

// Spin for up to `spin` microseconds (a wake-up through the kernel costs more than that), then
// sleep on the futex. The budget adapts per handle to how long the other side took: it grows
// when the answer came within kSpinMax (a longer spin would have caught it without a wake-up)
// and shrinks (to kSpinMin) when the other side kept us waiting longer anyway.
// `peer`: the other side's grant, whose granted thread may not fence (top).
template <class Ready>
int Ring::sleep_until(int &spin, std::atomic<uint32_t> &seq, std::atomic<uint32_t> &sleeping,
                      const std::atomic<int32_t> *other_cpu, const Ready &ready,
                      const Deadline &d, const RingGrant *peer, bool interruptible) {
  if (ready()) return 0;
  const InterruptWatch watch;
  const uint64_t t0 = now_ns();
  const uint64_t until = t0 + static_cast<uint64_t>(spin) * 1000;
  // No spinning while the other side last ran on this CPU: it cannot act before we sleep.
  const int32_t cpu = sched_getcpu() + 1;
  if (!other_cpu || other_cpu->load(std::memory_order_relaxed) != cpu) {
    for (int i = 1;; i++) {
      // Look at the other side's line only now and then: each look takes it away from the
      // writer, who must then win it back before its next store (a put or get at a time
      // would otherwise pay one cache-line transfer each).
      for (int k = 0; k < kSpinPauses; k++) cpu_relax();
      if (ready()) return 0;
      if ((i & 3) == 0 &&
          (now_ns() >= until || (other_cpu && other_cpu->load(std::memory_order_relaxed) == cpu)))
        break;
    }
  }
  int rc = MPROC_ETIMEDOUT;
  bool barrier_done = false;
  for (;;) {
    const uint32_t s = seq.load();
    sleeping.store(1);  // then the check: pairs with wake_sleepers() (see top)
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) {
      rc = 0;
      break;
    }
    // A granted peer may miss the flag just raised: sleep briefly, then the membarrier.
    const bool nap = !barrier_done && peer && grant_fenceless(*peer);
    const Deadline until = nap ? Deadline::earlier(d, Deadline::after(kFencelessSleep))
                           : interruptible ? InterruptWatch::slice(d) : d;
    int r = futex_wait(&seq, s, until);
    if (ready()) {
      rc = 0;
      break;
    }
    if (nap && r == -ETIMEDOUT && !d.expired()) {
      heavy_barrier();  // from here a granted peer sees the flag, or we see its change
      barrier_done = true;
      continue;
    }
    if (d.expired()) break;
    if (interruptible && watch.fired()) {
      rc = interrupted();
      break;
    }
  }
  const int64_t waited_us = static_cast<int64_t>(now_ns() - t0) / 1000;
  if (rc == 0 && waited_us < kSpinMax)
    spin = std::max(spin, static_cast<int>(waited_us + waited_us / 4 + 1));
  else
    spin = std::max(spin - spin / 4, kSpinMin);
  return rc;
}

// Free bytes for the producer. head only grows, so a cached head under-estimates the free space:
// it is re-read (a cache miss on the consumers' line) only when the cached value is not enough.
// Also sets where put_fast() may write up to (room_end_).
size_t Ring::free_space(size_t need) {
  const uint64_t t = h_->tail.load(std::memory_order_relaxed);
  uint64_t used = t - head_cache_;
  if (head_cache_ > t || used + kReserve + need > cap_) {
    head_cache_ = h_->head.load(std::memory_order_acquire);
    used = t - head_cache_;
  }
  if (head_cache_ <= t) room_end_ = head_cache_ + cap_ - kReserve;  // for put_fast()
  return used + kReserve >= cap_ ? 0 : cap_ - kReserve - used;
}

// Producer, holding plock: wait for `need` free bytes (and an item slot when `slot`).
int Ring::wait_space(size_t need, bool slot, const Deadline &d, bool poll) {
  int rc;
  auto ready = [&] {
    if (slot && h_->closed.load()) return true;
    if (slot && h_->maxsize &&
        h_->items_put.load(std::memory_order_relaxed) - h_->items_got.load() >= h_->maxsize)
      return false;
    return free_space(need) >= need;
  };
  if (!ready()) {
    if (poll) return MPROC_ETIMEDOUT;
    const RingGrant consumers = consumer_grant(h_);
    if (!wait_room_batch(need, d) &&
        (rc = sleep_until(p_spin_, h_->space_seq, h_->p_sleeping, &h_->c_cpu, ready, d,
                          &consumers)))
      return rc;
  }
  if (slot && h_->closed.load()) return MPROC_ECLOSED;
  return 0;
}

// Producer, holding plock, the ring full while a consumer frees it record by record. Taking room
// the moment `need` bytes come free writes each record into the cache line the consumer is
// reading, and that line then crosses between the two cores twice per message (measured: the
// producer of 8-byte messages spent most of its time here, and both sides went at half speed).
// So first spin until a batch of room (kRoomBatch, at most a sixteenth of the ring) is free:
// true once it is. False after kBatchWaitNs (a consumer that slow would keep us spinning: wait
// for `need` as before, asleep), or when the deadline passes or the queue closes.
bool Ring::wait_room_batch(size_t need, const Deadline &d) {
  const size_t batch = std::min(kRoomBatch, cap_ / 16);
  if (need >= batch || h_->maxsize) return false;
  const uint64_t until = now_ns() + kBatchWaitNs;
  for (;;) {
    if (free_space(batch) >= batch) return true;
    for (int k = 0; k < kSpinPauses; k++) cpu_relax();
    if (now_ns() > until || d.expired() || h_->closed.load()) return false;
  }
}

// Consumer, holding clock: wait for a record, or closed and empty (MPROC_ECLOSED).
int Ring::wait_data(const Deadline &d, bool poll) {
  const uint64_t hd = h_->head.load(std::memory_order_relaxed);
  if (tail_cache_ > hd) return 0;  // tail only grows: bytes before a seen tail are published
  // Everything seen at the last look is taken. A consumer back for more within kLookGapNs of
  // that look keeps pace with the producer message by message: each look takes the tail line
  // (and the record line being filled) from the producer, whose next put must win them back, so
  // both sides pay a cache-line transfer per message. Waiting out the gap lets the producer
  // write a batch undisturbed. The wait is at most kLookGapNs, right after a look, never in a
  // poll.
  if (!poll) {
    uint64_t t = now_ns();
    while (t - last_look_ns_ < kLookGapNs) {
      for (int k = 0; k < 8; k++) cpu_relax();
      t = now_ns();
    }
    last_look_ns_ = t;
  }
  auto ready = [&] {
    tail_cache_ = h_->tail.load(std::memory_order_acquire);
    return tail_cache_ != hd || h_->closed.load();
  };
  if (!ready()) {
    if (poll) return MPROC_ETIMEDOUT;
    const RingGrant producers = producer_grant(h_);
    if (int rc = sleep_until(c_spin_, h_->data_seq, h_->c_sleeping, &h_->p_cpu, ready, d,
                             &producers))
      return rc;
  }
  tail_cache_ = h_->tail.load(std::memory_order_acquire);
  if (tail_cache_ == hd) return MPROC_ECLOSED;
  return 0;
}

int Ring::task_done() {
  uint64_t u = h_->unfinished.load();
  do {
    if (u == 0) return fail(MPROC_EINVAL, "task_done() called more times than items were put");
  } while (!h_->unfinished.compare_exchange_weak(u, u - 1));
  if (u == 1) {
    h_->join_seq.fetch_add(1);
    futex_wake(&h_->join_seq, INT_MAX);
  }
  return 0;
}

int Ring::join(double timeout) {
  auto ready = [&] { return h_->unfinished.load() == 0; };
  if (ready()) return 0;
  if (timeout == 0) return fail(MPROC_ETIMEDOUT, "%llu tasks unfinished",
                                static_cast<unsigned long long>(h_->unfinished.load()));
  int spin = kSpinMin;
  const int rc = sleep_until(spin, h_->join_seq, h_->j_sleeping, nullptr, ready,
                             Deadline::after(timeout));
  if (rc == MPROC_EINTR) return rc;
  if (rc != 0)
    return fail(MPROC_ETIMEDOUT, "timeout after %g s with %llu tasks unfinished", timeout,
                static_cast<unsigned long long>(h_->unfinished.load()));
  return 0;
}

}  // namespace mproc
