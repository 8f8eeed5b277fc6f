// Thread identity and the robust futex mutex word every process-shared object is built on.
//
// The mutex word (MutexWord) holds 0 when free, else the owner's thread id (30 bits) plus a
// "waiters" bit. Lock = one CAS 0 -> tid; unlock = one CAS tid -> 0; neither makes a system call
// unless the waiters bit is set. A waiter sleeps on the word with FUTEX_WAIT in slices of at most
// kDeathCheckSlice; when a slice ends and the same owner still holds the word, it checks whether
// that thread is alive (/proc/<tid>/stat: gone or zombie = dead). If the owner is dead it takes
// the word over by CAS and reports MPROC_EOWNERDEAD: it now owns the lock, nothing more is needed
// to "mark it consistent" (the protected data is the caller's to repair before releasing). We do
// not use the kernel robust list because glibc owns the one robust-list head per thread.
#pragma once
#include <atomic>
#include <cstdint>

#include "base/futex.hpp"

namespace mproc {

// ---- thread identity ----------------------------------------------------------------------
// Cached gettid() of the calling thread; reset in a forked child (pthread_atfork).
extern __thread uint32_t t_cached_tid __attribute__((tls_model("initial-exec")));
uint32_t current_tid_slow();
inline uint32_t current_tid() {
  uint32_t t = t_cached_tid;
  return t ? t : current_tid_slow();
}
void reset_tid_after_fork();
// True when the thread `tid` exists and is not a zombie.
bool tid_alive(uint32_t tid);

// ---- robust futex mutex -------------------------------------------------------------------
constexpr uint32_t kMutexWaiters = 0x80000000u;
constexpr uint32_t kMutexTidMask = 0x3fffffffu;
constexpr double kDeathCheckSlice = 0.05;  // seconds between owner liveness checks

// The earlier of a caller's deadline and the next liveness check of an owner.
inline Deadline death_check_slice(const Deadline &d) {
  return Deadline::earlier(d, Deadline::after(kDeathCheckSlice));
}

struct MutexWord {
  std::atomic<uint32_t> word;
};

// Lock with a timeout (< 0 forever, 0 try). Returns 0, MPROC_EOWNERDEAD (acquired from a dead
// owner), MPROC_ETIMEDOUT (with text) or, when `interruptible`, MPROC_EINTR (mproc_interrupt).
int mutex_lock_slow(MutexWord *m, uint32_t tid, double timeout, bool interruptible = false);
inline int mutex_lock(MutexWord *m, double timeout, bool interruptible = false) {
  uint32_t tid = current_tid();
  uint32_t zero = 0;
  if (m->word.compare_exchange_strong(zero, tid, std::memory_order_acquire,
                                      std::memory_order_relaxed))
    return 0;
  return mutex_lock_slow(m, tid, timeout, interruptible);
}
// Unlock by the owner thread; false when the caller does not own it.
bool mutex_unlock(MutexWord *m);
// The owner's unlock of a word whose waiters bit is set: clear it and wake one sleeper.
void mutex_unlock_contended(MutexWord *m);
inline uint32_t mutex_owner(const MutexWord *m) {
  return m->word.load(std::memory_order_relaxed) & kMutexTidMask;
}

}  // namespace mproc
