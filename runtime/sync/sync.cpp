// The wait protocols of the lock, rlock, semaphore, condition and event states (sync/sync.hpp).
// The barrier's is in barrier.cpp; the C handles over these states are made in sync_handles.cpp.
#include "sync/sync.hpp"

#include <cerrno>
#include <climits>

#include "base/error.hpp"
#include "base/interrupt.hpp"

namespace mproc {

// ---- Lock / RLock -----------------------------------------------------------------------------

void lock_init(LockState *s, bool recursive) {
  s->m.word.store(0);
  s->recursive = recursive ? 1 : 0;
  s->count = 0;
}

int lock_acquire(LockState *s, double timeout) {
  uint32_t tid = current_tid();
  if (s->recursive) {
    if ((s->m.word.load(std::memory_order_relaxed) & kMutexTidMask) == tid) {
      if (s->count == UINT32_MAX) return fail(MPROC_ERANGE, "recursion depth overflow");
      s->count++;
      return 0;
    }
  }
  // Look before the CAS: a failing CAS on a held lock would take its cache line from the owner.
  uint32_t zero = 0;
  int r = 0;
  if (s->m.word.load(std::memory_order_relaxed) != 0 ||
      !s->m.word.compare_exchange_strong(zero, tid, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
    r = mutex_lock_slow(&s->m, tid, timeout, true);
    if (r != 0 && r != MPROC_EOWNERDEAD) return r;
  }
  if (s->recursive) s->count = 1;
  return r;
}

int lock_release(LockState *s) {
  uint32_t tid = current_tid();
  uint32_t owner = s->m.word.load(std::memory_order_relaxed) & kMutexTidMask;
  if (owner != tid) {
    if (owner == 0) return fail(MPROC_ENOTOWNER, "the lock is not held");
    return fail(MPROC_ENOTOWNER, "the lock is held by thread %u, not by the caller (thread %u)",
                owner, tid);
  }
  if (s->recursive && --s->count > 0) return 0;
  mutex_unlock(&s->m);
  return 0;
}

bool lock_owned_by_me(const LockState *s) {
  return (s->m.word.load(std::memory_order_relaxed) & kMutexTidMask) == current_tid();
}

int lock_release_save(LockState *s, uint32_t *saved) {
  if (!lock_owned_by_me(s)) return fail(MPROC_ENOTOWNER, "the lock is not held by the caller");
  *saved = s->recursive ? s->count : 1;
  s->count = 0;
  mutex_unlock(&s->m);
  return 0;
}

int lock_acquire_restore(LockState *s, uint32_t saved) {
  int r = mutex_lock(&s->m, -1);
  if (s->recursive) s->count = saved;
  return r;
}

// ---- Semaphore --------------------------------------------------------------------------------

void sem_init(SemState *s, uint32_t value, uint32_t bound) {
  s->value.store(value);
  s->waiters.store(0);
  s->bound = bound;
}

static bool sem_try(SemState *s) {
  uint32_t v = s->value.load(std::memory_order_relaxed);
  while (v > 0)
    if (s->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return true;
  return false;
}

namespace {
// Counted in `waiters`, sleep while `word` is 0 until ready() holds (0), the timeout or an
// interrupt (recorded). The wakers change the word, then look at `waiters`.
template <class Ready>
int wait_while_zero(std::atomic<uint32_t> &word, std::atomic<uint32_t> &waiters, Ready ready,
                    double timeout) {
  const Deadline d = Deadline::after(timeout);
  const InterruptWatch watch;
  waiters.fetch_add(1);
  int rc = 0;
  for (;;) {
    if (ready()) break;
    if (d.expired()) {
      rc = fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
      break;
    }
    if (watch.fired()) {
      rc = interrupted();
      break;
    }
    futex_wait(&word, 0, InterruptWatch::slice(d));  // woken, EINTR or a slice: look again
  }
  waiters.fetch_sub(1);
  return rc;
}
}  // namespace

int sem_acquire(SemState *s, double timeout) {
  if (sem_try(s)) return 0;
  return wait_while_zero(s->value, s->waiters, [s] { return sem_try(s); }, timeout);
}

int sem_release(SemState *s) {
  uint32_t v = s->value.load(std::memory_order_relaxed);
  do {
    if (s->bound && v >= s->bound)
      return fail(MPROC_ERANGE, "bounded semaphore released too many times (bound %u)", s->bound);
    if (v >= kSemValueMax) return fail(MPROC_ERANGE, "semaphore value would exceed %u", v);
  } while (!s->value.compare_exchange_weak(v, v + 1));
  if (s->waiters.load() > 0) futex_wake(&s->value, 1);
  return 0;
}

// ---- Condition --------------------------------------------------------------------------------
// Protocol. A waiter registers (waiters++) and reads `seq` while it still holds the lock, then
// releases the lock and sleeps on `seq`. A notifier holds the lock too, so every notify made after
// a waiter released the lock finds that waiter counted: notify(n) adds k = min(n, waiters -
// pending) tokens to `pending`, then bumps `seq` and wakes k sleepers. A waiter returns as
// notified only by claiming a token, and tries only once it saw `seq` move past the value it read;
// one that finds no token (another waiter took it) reads `seq` again and sleeps on. Tokens are
// added before `seq` moves, so a waiter that sees the move also sees the token: no notify is lost.
// (The earlier protocol counted the waiter only after releasing the lock, and lost the notify that
// fell in between.) Sleeps are cut in slices (interrupts), so a token whose futex wake-up found
// its waiter between two sleeps is claimed at the waiter's next look. A wait that ends by timeout
// or interrupt takes the lock back first and then looks for a token once more: a notify made
// while it still counted is then its own, and it reports being notified.
// Invariant (at every notify, under the lock): waiters - pending >= the registered waiters that
// hold no token, so notify(n) serves min(n, those waiters). A waiter that died while registered
// leaves `waiters` one too high: later notifies may then wake one waiter spuriously, never fewer.

void cond_init(CondState *s) {
  s->seq.store(0);
  s->waiters.store(0);
  s->pending.store(0);
  lock_init(&s->own_lock, true);
}

namespace {
bool cond_claim(CondState *s) {
  uint32_t p = s->pending.load();
  while (p > 0)
    if (s->pending.compare_exchange_weak(p, p - 1)) return true;
  return false;
}
}  // namespace

int cond_wait(CondState *s, LockState *lock, double timeout) {
  if (!lock_owned_by_me(lock))
    return fail(MPROC_ENOTOWNER, "wait on a condition whose lock the caller does not hold");
  const Deadline d = Deadline::after(timeout);
  const InterruptWatch watch;
  uint32_t seen = s->seq.load();
  s->waiters.fetch_add(1);  // before the release: see the protocol above
  uint32_t saved = 0;
  lock_release_save(lock, &saved);
  int r = MPROC_ETIMEDOUT;
  bool counted = true;
  for (;;) {
    futex_wait(&s->seq, seen, InterruptWatch::slice(d));
    const uint32_t now = s->seq.load();
    if (now != seen) {
      if (cond_claim(s)) {
        s->waiters.fetch_sub(1);
        counted = false;
        r = 0;
        break;
      }
      seen = now;
    }
    if (d.expired()) break;
    if (watch.fired()) {
      r = MPROC_EINTR;
      break;
    }
  }
  const int rr = lock_acquire_restore(lock, saved);
  if (counted) {
    // Under the lock no notify runs: a token made while this wait still counted is its own.
    if (s->seq.load() != seen && cond_claim(s)) r = 0;
    s->waiters.fetch_sub(1);
  }
  if (rr == MPROC_EOWNERDEAD) return rr;
  if (r == MPROC_ETIMEDOUT) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
  if (r == MPROC_EINTR) return interrupted();
  return 0;
}

int cond_notify(CondState *s, LockState *lock, int n) {
  if (!lock_owned_by_me(lock))
    return fail(MPROC_ENOTOWNER, "notify on a condition whose lock the caller does not hold");
  const uint32_t w = s->waiters.load(), p = s->pending.load();
  if (n == 0 || w <= p) return 0;
  uint32_t k = w - p;
  if (n > 0 && static_cast<uint32_t>(n) < k) k = static_cast<uint32_t>(n);
  s->pending.fetch_add(k);  // tokens first, then the move waiters look for (protocol above)
  s->seq.fetch_add(1);
  futex_wake(&s->seq, k > INT_MAX ? INT_MAX : static_cast<int>(k));
  return 0;
}

int cond_wait_for(CondState *s, LockState *lock, int (*pred)(void *), void *payload,
                  double timeout) {
  if (!lock_owned_by_me(lock))
    return fail(MPROC_ENOTOWNER, "wait on a condition whose lock the caller does not hold");
  Deadline d = Deadline::after(timeout);
  for (;;) {
    if (pred(payload)) return 0;
    double left = -1;
    if (!d.infinite) {
      left = d.seconds_left();
      if (left <= 0) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
    }
    int r = cond_wait(s, lock, left);
    if (r == MPROC_EOWNERDEAD || r == MPROC_EINTR) return r;  // owner dead: the caller repairs
    if (r == MPROC_ETIMEDOUT)
      return pred(payload) ? 0 : fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
  }
}

// ---- Event ------------------------------------------------------------------------------------

void event_set(EventState *s) {
  if (s->flag.exchange(1) == 0 && s->waiters.load() > 0) futex_wake(&s->flag, INT_MAX);
}

void event_clear(EventState *s) { s->flag.store(0); }

int event_wait(EventState *s, double timeout) {
  if (s->flag.load()) return 0;
  return wait_while_zero(s->flag, s->waiters, [s] { return s->flag.load() != 0; }, timeout);
}

}  // namespace mproc
