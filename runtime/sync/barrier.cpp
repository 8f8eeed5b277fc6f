// The barrier's protocol (sync/sync.hpp): arrive, await a generation, break, reset.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>

#include "base/error.hpp"
#include "base/interrupt.hpp"
#include "sync/sync.hpp"

namespace mproc {

namespace {
constexpr uint64_t gen_bit(uint32_t g) { return 1ull << (g % 64); }
}  // namespace

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

int barrier_arrive(BarrierState *s, BarrierAction action, void *payload, uint64_t *ticket,
                   double timeout) {
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
  const int idx = barrier_arrive(s, action, payload, &ticket, timeout);
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

}  // namespace mproc
