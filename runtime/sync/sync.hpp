// Process-shared synchronization in shared memory: the lock, rlock, semaphore, condition, event
// and barrier states on the robust mutex word (base/mutex.hpp). The states are plain structs that
// live in an arena block (shm/arena.hpp); the C handles (struct mproc_lock ...) point at them.
// The wait protocols are in sync.cpp (lock to event) and barrier.cpp, the handles in
// sync_handles.cpp.
//
// Speed: the C entry points inline lock_acquire_fast / lock_release_fast (one CAS each, the
// thread id cached in an initial-exec TLS word, the lock's kind cached in the handle so that the
// shared line is touched only by the word's own accesses) and call the guarded full path only
// when the CAS cannot succeed. Acquire reads the word before its CAS: a CAS that fails on a held
// lock would still take the cache line away from the owner. A contended acquirer spins briefly,
// then sleeps; see mutex_lock_slow.
#pragma once
#include <atomic>
#include <cstdint>

#include "base/futex.hpp"
#include "base/mutex.hpp"
#include "shm/arena.hpp"

namespace mproc {

// ---- Lock / RLock -------------------------------------------------------------------------
struct LockState {
  MutexWord m;
  uint32_t recursive;  // 0: Lock, 1: RLock
  uint32_t count;      // RLock recursion depth (touched by the owner only)
};
void lock_init(LockState *s, bool recursive);
// 0, MPROC_EOWNERDEAD (acquired), MPROC_ETIMEDOUT or MPROC_EINTR (recorded with text).
int lock_acquire(LockState *s, double timeout);
// 0 or MPROC_ENOTOWNER (recorded).
int lock_release(LockState *s);
bool lock_owned_by_me(const LockState *s);
// The C shims' inlined fast paths: true when done (acquired a free lock / released a lock the
// caller holds), false when the full call must run. No error text, no liveness check: waiting,
// timeouts, a dead owner and errors are lock_acquire/lock_release's job. `recursive` comes from
// the handle (mproc_lock::recursive).
inline bool lock_acquire_fast(LockState *s, bool recursive) {
  uint32_t tid = t_cached_tid;  // 0 before this thread's first call: the full call caches it
  uint32_t zero = 0;
  if (tid == 0 || s->m.word.load(std::memory_order_relaxed) != 0 ||
      !s->m.word.compare_exchange_strong(zero, tid, std::memory_order_acquire,
                                         std::memory_order_relaxed))
    return false;
  if (recursive) s->count = 1;
  return true;
}
inline bool lock_release_fast(LockState *s, bool recursive) {
  uint32_t tid = t_cached_tid;
  if (tid == 0) return false;
  if (recursive) {
    // count belongs to the owner: touch it only after seeing that the caller owns the word.
    if ((s->m.word.load(std::memory_order_relaxed) & kMutexTidMask) != tid) return false;
    if (s->count > 1) {
      s->count--;
      return true;
    }
    s->count = 0;
  }
  uint32_t w = tid;
  if (s->m.word.compare_exchange_strong(w, 0, std::memory_order_release,
                                        std::memory_order_relaxed))
    return true;
  if (w != (tid | kMutexWaiters)) {  // not the owner: the full call reports it
    if (recursive) s->count = 1;      // (cannot happen after the check above; keep it sound)
    return false;
  }
  mutex_unlock_contended(&s->m);  // a sleeper to wake: the one syscall of a release
  return true;
}
// For Condition.wait: release completely, remembering the recursion depth, and take it back.
int lock_release_save(LockState *s, uint32_t *saved);
int lock_acquire_restore(LockState *s, uint32_t saved);

// ---- Semaphore ----------------------------------------------------------------------------
struct SemState {
  std::atomic<uint32_t> value;
  std::atomic<uint32_t> waiters;
  uint32_t bound;  // 0: unbounded, else the BoundedSemaphore's maximum
};
constexpr uint32_t kSemValueMax = 0x7fffffffu;
void sem_init(SemState *s, uint32_t value, uint32_t bound);
int sem_acquire(SemState *s, double timeout);  // 0, MPROC_ETIMEDOUT or MPROC_EINTR (recorded)
int sem_release(SemState *s);                  // 0 or MPROC_ERANGE (recorded)

// ---- Condition ----------------------------------------------------------------------------
struct CondState {
  LockState own_lock;             // its own RLock (first: embedded locks sit at offset 0)
  std::atomic<uint32_t> seq;      // bumped by every notify that finds waiters
  std::atomic<uint32_t> waiters;  // registered (under the lock) until the wait takes it back
  std::atomic<uint32_t> pending;  // notify tokens not yet claimed by a waiter
  uint32_t external_lock;         // 1: uses another lock object (exported along with it)
};
void cond_init(CondState *s);
// The caller holds `lock`. Returns 0 (notified; may be spurious), MPROC_ETIMEDOUT, MPROC_EINTR
// (interrupted and not notified), MPROC_EOWNERDEAD (lock re-taken from a dead owner) or
// MPROC_ENOTOWNER. The lock is held again on every return but ENOTOWNER.
int cond_wait(CondState *s, LockState *lock, double timeout);
int cond_notify(CondState *s, LockState *lock, int n);  // n < 0: all. 0 or MPROC_ENOTOWNER
// Wait until pred(payload) holds: 0, MPROC_ETIMEDOUT, MPROC_EOWNERDEAD or MPROC_ENOTOWNER.
int cond_wait_for(CondState *s, LockState *lock, int (*pred)(void *), void *payload,
                  double timeout);

// ---- Event --------------------------------------------------------------------------------
struct EventState {
  std::atomic<uint32_t> flag;
  std::atomic<uint32_t> waiters;
};
void event_set(EventState *s);
void event_clear(EventState *s);
// 0 (set), MPROC_ETIMEDOUT or MPROC_EINTR (recorded).
int event_wait(EventState *s, double timeout);

// ---- Barrier ------------------------------------------------------------------------------
struct BarrierState {
  MutexWord mu;                      // guards count/broken/waiter; held while the action runs
  uint32_t parties;
  std::atomic<uint32_t> count;       // arrived in the current generation
  std::atomic<uint32_t> gen;         // futex word: bumped when a generation ends
  std::atomic<uint32_t> broken;      // 1 until reset
  std::atomic<uint64_t> broken_bits; // bit g % 64: generation g ended broken
  uint32_t tracked;                  // entries of waiter[]: min(parties, kBarrierTracked)
  std::atomic<uint32_t> waiter[1];   // [tracked]: thread id of the party that arrived i-th
};
// Waiting parties whose death the others notice (the first ones to arrive, in each generation).
constexpr uint32_t kBarrierTracked = 65536;
constexpr double kBarrierDeathCheck = 0.25;  // seconds between looks at the waiting parties
// The bytes a barrier of `parties` takes (its waiter[] table follows the state).
size_t barrier_state_size(uint32_t parties);
typedef int (*BarrierAction)(void *payload);
void barrier_init(BarrierState *s, uint32_t parties);
// Returns the arrival index (>= 0) or MPROC_EBROKEN / MPROC_ETIMEDOUT / MPROC_EINTR (recorded).
// A timeout, an interrupt, a failing action (non-zero return), a dead action runner or a party
// that died while waiting breaks the barrier.
int barrier_wait(BarrierState *s, BarrierAction action, void *payload, double timeout);
// barrier_wait in two steps, for waits made in slices: arrive (the index, and the ticket naming
// this generation; the last party releases the others) and await the ticket's generation. An
// await that times out without break_on_timeout leaves the barrier as it is.
int barrier_arrive(BarrierState *s, BarrierAction action, void *payload, uint64_t *ticket,
                   double timeout);
int barrier_await(BarrierState *s, uint64_t ticket, double timeout, bool break_on_timeout);
// Give up the ticket's wait: break its generation if it is still current (MPROC_ECANCELED), else
// report how it ended (the arrival index, or MPROC_EBROKEN).
int barrier_cancel(BarrierState *s, uint64_t ticket);
int barrier_reset(BarrierState *s);
int barrier_abort(BarrierState *s);

// ---- handles --------------------------------------------------------------------------------
// The C handles are heap structs (copied by fork, so a child made after creation shares the
// object). Hot calls (lock acquire/release, semaphore acquire/release) check only `magic`; the
// other calls also check the handle registry, so a freed handle is MPROC_EBADF, not a crash.
constexpr uint32_t kLockMagic = 0x4c4f434b;  // "LOCK"
constexpr uint32_t kSemMagic = 0x53454d41;
constexpr uint32_t kCondMagic = 0x434f4e44;
constexpr uint32_t kEventMagic = 0x45564e54;
constexpr uint32_t kBarrierMagic = 0x42415252;

}  // namespace mproc

struct mproc_lock {
  uint32_t magic = mproc::kLockMagic;
  mproc::LockState *st = nullptr;
  mproc::ObjRef ref;      // the block holding st: a lock, or a value/condition embedding it
  uint64_t inner = 0;     // offset of st in that block's payload
  bool borrowed = false;  // belongs to a value or condition: mproc_lock_free refuses it
  bool recursive = false; // a copy of st->recursive (an RLock), kept here for the fast paths
};
struct mproc_sem {
  uint32_t magic = mproc::kSemMagic;
  mproc::SemState *st = nullptr;
  mproc::ObjRef ref;
};
struct mproc_cond {
  uint32_t magic = mproc::kCondMagic;
  mproc::CondState *st = nullptr;
  mproc::ObjRef ref;
  mproc_lock *lock = nullptr;  // owned (borrowed by users): own RLock or a reference to theirs
};
struct mproc_event {
  uint32_t magic = mproc::kEventMagic;
  mproc::EventState *st = nullptr;
  mproc::ObjRef ref;
};
struct mproc_barrier {
  uint32_t magic = mproc::kBarrierMagic;
  mproc::BarrierState *st = nullptr;
  mproc::ObjRef ref;
  mproc::BarrierAction action = nullptr;  // process-local: a function of this program
  void *payload = nullptr;
};

namespace mproc {

// Constructors write *out (registered handle) or return a recorded error.
int lock_new(bool recursive, mproc_lock **out);
// A borrowed handle on a lock embedded at `inner` in the block of `owner`.
int lock_handle_embedded(const ObjRef &owner, uint64_t inner, mproc_lock **out);
// A new handle on the same lock as `l` (another reference; borrowed as asked).
int lock_handle_dup(const mproc_lock *l, bool borrowed, mproc_lock **out);
int lock_export(const mproc_lock *l, char *buf, size_t cap);
// Attach one token part (see arena_attach for *end).
int lock_attach_part(const char *token, bool borrowed, mproc_lock **out, const char **end);
// The "+<lock token>" that ends a token of an object over a given lock (a value, a condition):
// attach that lock (borrowed) and check that nothing follows it.
int lock_attach_trailing(const char *end, const char *owner, mproc_lock **out);
void lock_free(mproc_lock *l);

int sem_new(uint32_t value, uint32_t bound, mproc_sem **out);
int sem_export(const mproc_sem *s, char *buf, size_t cap);
int sem_attach(const char *token, mproc_sem **out);
void sem_free(mproc_sem *s);

// lock: NULL for its own RLock, else shared with the given lock.
int cond_new(const mproc_lock *lock, mproc_cond **out);
int cond_export(const mproc_cond *c, char *buf, size_t cap);
int cond_attach(const char *token, mproc_cond **out);
void cond_free(mproc_cond *c);

int event_new(mproc_event **out);
int event_export(const mproc_event *e, char *buf, size_t cap);
int event_attach(const char *token, mproc_event **out);
void event_free(mproc_event *e);

int barrier_new(uint32_t parties, BarrierAction action, void *payload, mproc_barrier **out);
int barrier_export(const mproc_barrier *b, char *buf, size_t cap);
int barrier_attach(const char *token, BarrierAction action, void *payload, mproc_barrier **out);
void barrier_free(mproc_barrier *b);

}  // namespace mproc
