#include "sync/sync.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <memory>

#include "base/error.hpp"
#include "base/handles.hpp"
#include "base/interrupt.hpp"

namespace mproc {

namespace {
constexpr uint64_t gen_bit(uint32_t g) { return 1ull << (g % 64); }
}  // namespace

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

// ---- Barrier ----------------------------------------------------------------------------------
// A generation ends when the last party arrives (normal) or by abort/reset/timeout/interrupt/
// failed action/dead party (broken). Waiters sleep on `gen`; on waking they read the bit of their
// own generation in broken_bits, so a reset right after a break cannot hide the break from slow
// waiters. Each arrival writes its thread id in waiter[its index] (under mu); every
// kBarrierDeathCheck a sleeping party looks at the others of its generation, and one that finds
// a party dead breaks the barrier, so the survivors get MPROC_EBROKEN instead of waiting for an
// arrival that cannot come (or counting the dead party as arrived).

size_t barrier_state_size(uint32_t parties) {
  return offsetof(BarrierState, waiter) +
         sizeof(std::atomic<uint32_t>) * std::min(parties, kBarrierTracked);
}

void barrier_init(BarrierState *s, uint32_t parties) {
  s->mu.word.store(0);
  s->parties = parties;
  s->count.store(0);
  s->gen.store(0);
  s->broken.store(0);
  s->broken_bits.store(0);
  s->tracked = std::min(parties, kBarrierTracked);
}

namespace {
// With mu held: end the current generation as broken, waking its waiters.
void barrier_break_locked(BarrierState *s, bool stay_broken) {
  uint32_t g = s->gen.load();
  s->broken.store(stay_broken ? 1 : 0);
  s->broken_bits.fetch_or(gen_bit(g));
  s->count.store(0);
  s->gen.store(g + 1);
  futex_wake(&s->gen, INT_MAX);
}

int barrier_outcome(BarrierState *s, uint32_t g, uint32_t idx) {
  if (s->broken_bits.load() & gen_bit(g))
    return fail(MPROC_EBROKEN,
                "the barrier was broken while waiting (aborted, reset, timed out, interrupted, "
                "action failed or a party died in it)");
  return static_cast<int>(idx);
}

// The thread id of a party of generation g that is no longer alive, or 0.
uint32_t barrier_dead_party(BarrierState *s, uint32_t g) {
  const uint32_t n = std::min(s->count.load(), s->tracked);
  for (uint32_t i = 0; i < n && s->gen.load() == g; i++) {
    const uint32_t t = s->waiter[i].load(std::memory_order_relaxed);
    if (t && !tid_alive(t)) return t;
  }
  return 0;
}

// Break generation g on behalf of a waiter leaving it: true, or false when g had ended already
// (the caller then reports how it ended).
bool barrier_break_gen(BarrierState *s, uint32_t g) {
  mutex_lock(&s->mu, -1);  // EOWNERDEAD is fine: we break it anyway
  const bool current = s->gen.load() == g;
  if (current) barrier_break_locked(s, true);
  mutex_unlock(&s->mu);
  return current;
}
}  // namespace

int barrier_arrive(BarrierState *s, BarrierAction action, void *payload, double timeout,
                   uint64_t *ticket) {
  int r = mutex_lock(&s->mu, timeout);
  if (r != 0 && r != MPROC_EOWNERDEAD) return r;  // timeout, or EDEADLK from inside the action
  if (r == MPROC_EOWNERDEAD) {
    barrier_break_locked(s, true);
    mutex_unlock(&s->mu);
    return fail(MPROC_EBROKEN, "a process died inside the barrier; the barrier is broken");
  }
  if (s->broken.load()) {
    mutex_unlock(&s->mu);
    return fail(MPROC_EBROKEN, "the barrier is broken (reset it to use it again)");
  }
  uint32_t g = s->gen.load();
  // The id first, then the count that makes others read it (a stale id could be a dead party's).
  uint32_t idx = s->count.load();
  if (idx < s->tracked) s->waiter[idx].store(current_tid(), std::memory_order_relaxed);
  s->count.store(idx + 1);
  *ticket = static_cast<uint64_t>(g) << 32 | idx;
  if (idx + 1 >= s->parties) {
    if (action) {
      int ar = action(payload);
      if (ar != 0) {
        barrier_break_locked(s, true);
        mutex_unlock(&s->mu);
        return fail(MPROC_EBROKEN, "the barrier action returned %d; the barrier is broken", ar);
      }
    }
    s->count.store(0);
    s->broken_bits.fetch_and(~gen_bit(g));
    s->gen.store(g + 1);
    mutex_unlock(&s->mu);
    futex_wake(&s->gen, INT_MAX);
    return static_cast<int>(idx);
  }
  mutex_unlock(&s->mu);
  return static_cast<int>(idx);
}

int barrier_await(BarrierState *s, uint64_t ticket, double timeout, bool break_on_timeout) {
  const uint32_t g = static_cast<uint32_t>(ticket >> 32), idx = static_cast<uint32_t>(ticket);
  const Deadline d = Deadline::after(timeout);
  const InterruptWatch watch;
  uint64_t next_check = now_ns() + static_cast<uint64_t>(kBarrierDeathCheck * 1e9);
  for (;;) {
    int r = futex_wait(&s->gen, g, death_check_slice(d));
    if (s->gen.load() != g) return barrier_outcome(s, g, idx);
    if (d.expired()) {
      if (!break_on_timeout) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
      if (!barrier_break_gen(s, g)) return barrier_outcome(s, g, idx);
      return fail(MPROC_ETIMEDOUT, "timeout after %g s; the barrier is now broken", timeout);
    }
    if (watch.fired()) {
      if (!barrier_break_gen(s, g)) return barrier_outcome(s, g, idx);
      return interrupted();
    }
    if (r != -ETIMEDOUT) continue;
    // A party that died while holding mu (e.g. inside the action) would leave us asleep.
    uint32_t owner = mutex_owner(&s->mu);
    if (owner && !tid_alive(owner)) {
      if (mutex_lock(&s->mu, -1) == MPROC_EOWNERDEAD && s->gen.load() == g)
        barrier_break_locked(s, true);
      mutex_unlock(&s->mu);
      continue;
    }
    if (now_ns() >= next_check) {
      next_check = now_ns() + static_cast<uint64_t>(kBarrierDeathCheck * 1e9);
      if (uint32_t dead = barrier_dead_party(s, g)) {
        if (!barrier_break_gen(s, g)) return barrier_outcome(s, g, idx);
        return fail(MPROC_EBROKEN,
                    "a party (thread %u) died while waiting at the barrier; the barrier is broken",
                    dead);
      }
    }
  }
}

int barrier_cancel(BarrierState *s, uint64_t ticket) {
  const uint32_t g = static_cast<uint32_t>(ticket >> 32), idx = static_cast<uint32_t>(ticket);
  if (barrier_break_gen(s, g))
    return fail(MPROC_ECANCELED, "the wait was given up; the barrier is now broken");
  return barrier_outcome(s, g, idx);
}

int barrier_wait(BarrierState *s, BarrierAction action, void *payload, double timeout) {
  const Deadline d = Deadline::after(timeout);
  uint64_t ticket = 0;
  const int idx = barrier_arrive(s, action, payload, timeout, &ticket);
  if (idx < 0 || static_cast<uint32_t>(idx) + 1 >= s->parties) return idx;
  return barrier_await(s, ticket, d.infinite ? -1 : std::max(d.seconds_left(), 0.0), true);
}

int barrier_reset(BarrierState *s) {
  int r = mutex_lock(&s->mu, -1);
  if (r == MPROC_EDEADLK) return r;  // called from the barrier's own action
  if (s->count.load() > 0)
    barrier_break_locked(s, false);  // the waiters get EBROKEN, the barrier is fresh
  s->broken.store(0);
  s->count.store(0);
  mutex_unlock(&s->mu);
  return 0;
}

int barrier_abort(BarrierState *s) {
  int r = mutex_lock(&s->mu, -1);
  if (r == MPROC_EDEADLK) return r;  // called from the barrier's own action
  barrier_break_locked(s, true);
  mutex_unlock(&s->mu);
  return 0;
}

// ---- handles ----------------------------------------------------------------------------------

namespace {
template <class H>
int publish(std::unique_ptr<H> h, HandleKind kind, H **out) {
  handle_register(h.get(), kind);
  *out = h.release();
  return 0;
}

// The fast paths read the lock's kind from the handle: reading it from the shared state before
// the CAS would cost a second cache-line transfer under contention.
int publish_lock(std::unique_ptr<mproc_lock> h, mproc_lock **out) {
  h->recursive = h->st->recursive != 0;
  return publish(std::move(h), HandleKind::kLock, out);
}

template <class H>
void unpublish(H *h) {
  handle_unregister(h);
  h->magic = 0;
  delete h;  // ~ObjRef releases the block
}

// Attach a token of exactly one part with no sub-object.
int attach_single(const char *token, ObjKind kind, ObjRef *ref) {
  uint64_t inner = 0;
  const char *end = nullptr;
  if (int rc = arena_attach(token, kind, kind_bit(kind), ref, &inner, &end)) return rc;
  if (*end != '\0' || inner != 0) {
    arena_release(ref);
    return fail(MPROC_EINVAL, "malformed token: unexpected data after the object");
  }
  return 0;
}

// Value blocks keep their lock mode right after the embedded LockState (see sync/value.hpp).
constexpr size_t kValueLockModeOffset = sizeof(LockState) + 1;
}  // namespace

int lock_new(bool recursive, mproc_lock **out) {
  auto h = std::make_unique<mproc_lock>();
  if (int rc = arena_alloc(sizeof(LockState), ObjKind::kLock, &h->ref)) return rc;
  h->st = static_cast<LockState *>(h->ref.payload);
  lock_init(h->st, recursive);
  return publish_lock(std::move(h), out);
}

int lock_handle_embedded(const ObjRef &owner, uint64_t inner, mproc_lock **out) {
  auto h = std::make_unique<mproc_lock>();
  if (int rc = arena_dup(owner, &h->ref)) return rc;
  h->inner = inner;
  h->st = reinterpret_cast<LockState *>(static_cast<char *>(h->ref.payload) + inner);
  h->borrowed = true;
  return publish_lock(std::move(h), out);
}

int lock_handle_dup(const mproc_lock *l, bool borrowed, mproc_lock **out) {
  auto h = std::make_unique<mproc_lock>();
  if (int rc = arena_dup(l->ref, &h->ref)) return rc;
  h->inner = l->inner;
  h->st = l->st;
  h->borrowed = borrowed;
  return publish_lock(std::move(h), out);
}

int lock_export(const mproc_lock *l, char *buf, size_t cap) {
  return arena_export(l->ref, ObjKind::kLock, l->inner, buf, cap);
}

int lock_attach_part(const char *token, bool borrowed, mproc_lock **out, const char **end) {
  auto h = std::make_unique<mproc_lock>();
  uint64_t inner = 0;
  uint32_t kinds = kind_bit(ObjKind::kLock) | kind_bit(ObjKind::kValue) |
                   kind_bit(ObjKind::kCondition);
  if (int rc = arena_attach(token, ObjKind::kLock, kinds, &h->ref, &inner, end)) return rc;
  const auto *payload = static_cast<const unsigned char *>(h->ref.payload);
  bool ok = inner == 0;
  if (h->ref.kind == ObjKind::kValue) ok = ok && payload[kValueLockModeOffset] == 1;
  if (!ok) return fail(MPROC_EINVAL, "malformed token: no lock at that place");
  h->st = static_cast<LockState *>(h->ref.payload);
  h->borrowed = borrowed;
  return publish_lock(std::move(h), out);
}

int lock_attach_trailing(const char *end, const char *owner, mproc_lock **out) {
  if (*end != '+') return fail(MPROC_EINVAL, "malformed token: the %s's lock is missing", owner);
  const char *end2 = nullptr;
  int rc = lock_attach_part(end + 1, true, out, &end2);
  if (rc == 0 && *end2 != '\0') {
    lock_free(*out);
    *out = nullptr;
    rc = fail(MPROC_EINVAL, "malformed token: unexpected data after the lock");
  }
  return rc;
}


void lock_free(mproc_lock *l) { unpublish(l); }

int sem_new(uint32_t value, uint32_t bound, mproc_sem **out) {
  auto h = std::make_unique<mproc_sem>();
  if (int rc = arena_alloc(sizeof(SemState), ObjKind::kSemaphore, &h->ref)) return rc;
  h->st = static_cast<SemState *>(h->ref.payload);
  sem_init(h->st, value, bound);
  return publish(std::move(h), HandleKind::kSemaphore, out);
}

int sem_export(const mproc_sem *s, char *buf, size_t cap) {
  return arena_export(s->ref, ObjKind::kSemaphore, 0, buf, cap);
}

int sem_attach(const char *token, mproc_sem **out) {
  auto h = std::make_unique<mproc_sem>();
  if (int rc = attach_single(token, ObjKind::kSemaphore, &h->ref)) return rc;
  h->st = static_cast<SemState *>(h->ref.payload);
  return publish(std::move(h), HandleKind::kSemaphore, out);
}

void sem_free(mproc_sem *s) { unpublish(s); }

int cond_new(const mproc_lock *lock, mproc_cond **out) {
  auto h = std::make_unique<mproc_cond>();
  if (int rc = arena_alloc(sizeof(CondState), ObjKind::kCondition, &h->ref)) return rc;
  h->st = static_cast<CondState *>(h->ref.payload);
  cond_init(h->st);
  h->st->external_lock = lock ? 1 : 0;
  int rc = lock ? lock_handle_dup(lock, true, &h->lock) : lock_handle_embedded(h->ref, 0, &h->lock);
  if (rc) return rc;
  return publish(std::move(h), HandleKind::kCondition, out);
}

int cond_export(const mproc_cond *c, char *buf, size_t cap) {
  int n = arena_export(c->ref, ObjKind::kCondition, 0, buf, cap);
  if (n < 0 || !c->st->external_lock) return n;
  if (static_cast<size_t>(n) + 2 > cap) return fail(MPROC_ENOSPC, "token buffer is too small");
  buf[n] = '+';
  int m = lock_export(c->lock, buf + n + 1, cap - static_cast<size_t>(n) - 1);
  return m < 0 ? m : n + 1 + m;
}

int cond_attach(const char *token, mproc_cond **out) {
  auto h = std::make_unique<mproc_cond>();
  uint64_t inner = 0;
  const char *end = nullptr;
  if (int rc = arena_attach(token, ObjKind::kCondition, kind_bit(ObjKind::kCondition), &h->ref,
                            &inner, &end))
    return rc;
  h->st = static_cast<CondState *>(h->ref.payload);
  int rc;
  if (h->st->external_lock) {
    rc = lock_attach_trailing(end, "condition", &h->lock);
  } else {
    if (*end != '\0' || inner != 0)
      return fail(MPROC_EINVAL, "malformed token: unexpected data after the condition");
    rc = lock_handle_embedded(h->ref, 0, &h->lock);
  }
  if (rc) return rc;
  return publish(std::move(h), HandleKind::kCondition, out);
}

void cond_free(mproc_cond *c) {
  if (c->lock) lock_free(c->lock);
  unpublish(c);
}

int event_new(mproc_event **out) {
  auto h = std::make_unique<mproc_event>();
  if (int rc = arena_alloc(sizeof(EventState), ObjKind::kEvent, &h->ref)) return rc;
  h->st = static_cast<EventState *>(h->ref.payload);
  return publish(std::move(h), HandleKind::kEvent, out);
}

int event_export(const mproc_event *e, char *buf, size_t cap) {
  return arena_export(e->ref, ObjKind::kEvent, 0, buf, cap);
}

int event_attach(const char *token, mproc_event **out) {
  auto h = std::make_unique<mproc_event>();
  if (int rc = attach_single(token, ObjKind::kEvent, &h->ref)) return rc;
  h->st = static_cast<EventState *>(h->ref.payload);
  return publish(std::move(h), HandleKind::kEvent, out);
}

void event_free(mproc_event *e) { unpublish(e); }

int barrier_new(uint32_t parties, BarrierAction action, void *payload, mproc_barrier **out) {
  auto h = std::make_unique<mproc_barrier>();
  if (int rc = arena_alloc(barrier_state_size(parties), ObjKind::kBarrier, &h->ref)) return rc;
  h->st = static_cast<BarrierState *>(h->ref.payload);
  barrier_init(h->st, parties);
  h->action = action;
  h->payload = payload;
  return publish(std::move(h), HandleKind::kBarrier, out);
}

int barrier_export(const mproc_barrier *b, char *buf, size_t cap) {
  return arena_export(b->ref, ObjKind::kBarrier, 0, buf, cap);
}

int barrier_attach(const char *token, BarrierAction action, void *payload, mproc_barrier **out) {
  auto h = std::make_unique<mproc_barrier>();
  if (int rc = attach_single(token, ObjKind::kBarrier, &h->ref)) return rc;
  h->st = static_cast<BarrierState *>(h->ref.payload);
  h->action = action;
  h->payload = payload;
  return publish(std::move(h), HandleKind::kBarrier, out);
}

void barrier_free(mproc_barrier *b) { unpublish(b); }

}  // namespace mproc
