// C ABI: locks, semaphores, conditions, events, barriers. Thin shims over sync/ (sync.cpp,
// barrier.cpp, sync_handles.cpp).
// Hot calls (lock acquire/release, semaphore acquire/release) check the handle's magic only;
// the others also consult the handle registry (a freed handle is MPROC_EBADF).
#include <mproc/sync.h>

#include "capi/capi.hpp"
#include "sync/sync.hpp"

using mproc::check_live;
using mproc::check_token;
using mproc::fail;
using mproc::HandleKind;

namespace {
int check(const mproc_lock_t *l) {
  return check_live(l, HandleKind::kLock, mproc::kLockMagic, "lock");
}
int check(const mproc_sem_t *s) {
  return check_live(s, HandleKind::kSemaphore, mproc::kSemMagic, "semaphore");
}
int check(const mproc_cond_t *c) {
  return check_live(c, HandleKind::kCondition, mproc::kCondMagic, "condition");
}
int check(const mproc_event_t *e) {
  return check_live(e, HandleKind::kEvent, mproc::kEventMagic, "event");
}
int check(const mproc_barrier_t *b) {
  return check_live(b, HandleKind::kBarrier, mproc::kBarrierMagic, "barrier");
}

// The hot calls' check: the magic word only, no registry look-up.
template <class H>
int check_fast(const H *h, uint32_t magic, const char *what) {
  if (!h) return fail(MPROC_EINVAL, "%s handle is NULL", what);
  if (h->magic != magic) return fail(MPROC_EBADF, "not a live %s handle", what);
  return 0;
}

// *_export(h, buf, cap): check the buffer, then let the core write the token.
template <class H, class Export>
int export_token(const H *h, char *buf, size_t cap, Export core_export) {
  if (int rc = mproc::check_token_buf(buf, cap)) return rc;
  return core_export(h, buf, cap);
}

int check_ticket(const mproc_barrier_t *b, uint64_t ticket) {
  if ((ticket & 0xffffffffu) < b->st->parties) return 0;
  return fail(MPROC_EINVAL, "not a ticket of this barrier (index %u of %u parties)",
              static_cast<unsigned>(ticket & 0xffffffffu), b->st->parties);
}

int sem_make(mproc_sem_t **out, unsigned int value, bool bounded) {
  if (value > MPROC_SEM_VALUE_MAX)
    return fail(MPROC_ERANGE, "initial value %u is over MPROC_SEM_VALUE_MAX", value);
  if (bounded && value == 0) return fail(MPROC_EINVAL, "a bounded semaphore needs a bound >= 1");
  return mproc::sem_new(value, bounded ? value : 0, out);
}
}  // namespace

extern "C" {

/* ---- Lock / RLock ---- */

MPROC_API int mproc_lock_new(mproc_lock_t **out) {
  return MPROC_NEW(out, return mproc::lock_new(false, out););
}

MPROC_API int mproc_rlock_new(mproc_lock_t **out) {
  return MPROC_NEW(out, return mproc::lock_new(true, out););
}

// Acquire and release: a free lock (or one held with nobody waiting) costs one CAS, inlined here;
// everything else goes through the guarded call, kept out of line so the fast path stays small.
static __attribute__((noinline)) int lock_acquire_full(mproc_lock_t *lock, double timeout) {
  return mproc::guard("mproc_lock_acquire", [&]() -> int {
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_fast(lock, mproc::kLockMagic, "lock")) return rc;
    return mproc::lock_acquire(lock->st, timeout);
  });
}

static __attribute__((noinline)) int lock_release_full(mproc_lock_t *lock) {
  return mproc::guard("mproc_lock_release", [&]() -> int {
    if (int rc = check_fast(lock, mproc::kLockMagic, "lock")) return rc;
    return mproc::lock_release(lock->st);
  });
}

MPROC_API int mproc_lock_acquire(mproc_lock_t *lock, double timeout) {
  if (__builtin_expect(lock && lock->magic == mproc::kLockMagic && timeout == timeout, 1) &&
      mproc::lock_acquire_fast(lock->st, lock->recursive))
    return 0;
  return lock_acquire_full(lock, timeout);
}

MPROC_API int mproc_lock_release(mproc_lock_t *lock) {
  if (__builtin_expect(lock && lock->magic == mproc::kLockMagic, 1) &&
      mproc::lock_release_fast(lock->st, lock->recursive))
    return 0;
  return lock_release_full(lock);
}

MPROC_API int mproc_lock_owned(const mproc_lock_t *lock) {
  return MPROC_ON(lock, return mproc::lock_owned_by_me(lock->st) ? 1 : 0;);
}

MPROC_API int mproc_lock_is_recursive(const mproc_lock_t *lock) {
  return MPROC_ON(lock, return lock->st->recursive ? 1 : 0;);
}

MPROC_API int mproc_lock_export(const mproc_lock_t *lock, char *buf, size_t cap) {
  return MPROC_ON(lock, return export_token(lock, buf, cap, mproc::lock_export););
}

MPROC_API int mproc_lock_attach(mproc_lock_t **out, const char *token) {
  return MPROC_NEW(out, {
    if (int rc = check_token(token)) return rc;
    const char *end = nullptr;
    if (int rc = mproc::lock_attach_part(token, false, out, &end)) return rc;
    if (*end != '\0') {
      mproc::lock_free(*out);
      *out = nullptr;
      return fail(MPROC_EINVAL, "malformed token: unexpected data after the lock");
    }
    return 0;
  });
}

MPROC_API int mproc_lock_free(mproc_lock_t *lock) {
  return MPROC_FREE(lock, {
    if (lock->borrowed)
      return fail(MPROC_EINVAL, "this lock handle belongs to its value or condition");
    mproc::lock_free(lock);
  });
}

/* ---- Semaphore ---- */

MPROC_API int mproc_sem_new(mproc_sem_t **out, unsigned int value) {
  return MPROC_NEW(out, return sem_make(out, value, false););
}

MPROC_API int mproc_bounded_sem_new(mproc_sem_t **out, unsigned int value) {
  return MPROC_NEW(out, return sem_make(out, value, true););
}

MPROC_API int mproc_sem_acquire(mproc_sem_t *sem, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_fast(sem, mproc::kSemMagic, "semaphore")) return rc;
    return mproc::sem_acquire(sem->st, timeout);
  });
}

MPROC_API int mproc_sem_release(mproc_sem_t *sem) {
  return MPROC_GUARD({
    if (int rc = check_fast(sem, mproc::kSemMagic, "semaphore")) return rc;
    return mproc::sem_release(sem->st);
  });
}

MPROC_API int mproc_sem_get_value(const mproc_sem_t *sem) {
  return MPROC_ON(sem, return static_cast<int>(sem->st->value.load()););
}

MPROC_API int mproc_sem_export(const mproc_sem_t *sem, char *buf, size_t cap) {
  return MPROC_ON(sem, return export_token(sem, buf, cap, mproc::sem_export););
}

MPROC_API int mproc_sem_attach(mproc_sem_t **out, const char *token) {
  return MPROC_NEW(out, if (int rc = check_token(token)) return rc;
                   return mproc::sem_attach(token, out););
}

MPROC_API int mproc_sem_free(mproc_sem_t *sem) { return MPROC_FREE(sem, mproc::sem_free(sem);); }

/* ---- Condition ---- */

MPROC_API int mproc_cond_new(mproc_cond_t **out, mproc_lock_t *lock) {
  return MPROC_NEW(out, {
    if (lock && !mproc::handle_valid(lock, HandleKind::kLock))
      return fail(MPROC_EBADF, "not a live lock handle (freed or never made)");
    return mproc::cond_new(lock, out);
  });
}

MPROC_API int mproc_cond_get_lock(const mproc_cond_t *cond, mproc_lock_t **out) {
  return MPROC_NEW(out, if (int rc = check(cond)) return rc; *out = cond->lock; return 0;);
}

MPROC_API int mproc_cond_acquire(mproc_cond_t *cond, double timeout) {
  return MPROC_WAIT_ON(cond, timeout, return mproc::lock_acquire(cond->lock->st, timeout););
}

MPROC_API int mproc_cond_release(mproc_cond_t *cond) {
  return MPROC_ON(cond, return mproc::lock_release(cond->lock->st););
}

MPROC_API int mproc_cond_wait(mproc_cond_t *cond, double timeout) {
  return MPROC_WAIT_ON(cond, timeout, return mproc::cond_wait(cond->st, cond->lock->st, timeout););
}

MPROC_API int mproc_cond_wait_for(mproc_cond_t *cond, mproc_cond_pred_fn pred, void *payload,
                                  double timeout) {
  return MPROC_WAIT_ON(cond, timeout, {
    if (!pred) return fail(MPROC_EINVAL, "predicate is NULL");
    return mproc::cond_wait_for(cond->st, cond->lock->st, pred, payload, timeout);
  });
}

MPROC_API int mproc_cond_notify(mproc_cond_t *cond, int n) {
  return MPROC_ON(cond, {
    if (n < 0) return fail(MPROC_EINVAL, "n is negative (%d)", n);
    return mproc::cond_notify(cond->st, cond->lock->st, n);
  });
}

MPROC_API int mproc_cond_notify_all(mproc_cond_t *cond) {
  return MPROC_ON(cond, return mproc::cond_notify(cond->st, cond->lock->st, -1););
}

MPROC_API int mproc_cond_export(const mproc_cond_t *cond, char *buf, size_t cap) {
  return MPROC_ON(cond, return export_token(cond, buf, cap, mproc::cond_export););
}

MPROC_API int mproc_cond_attach(mproc_cond_t **out, const char *token) {
  return MPROC_NEW(out, if (int rc = check_token(token)) return rc;
                   return mproc::cond_attach(token, out););
}

MPROC_API int mproc_cond_free(mproc_cond_t *cond) {
  return MPROC_FREE(cond, mproc::cond_free(cond););
}

/* ---- Event ---- */

MPROC_API int mproc_event_new(mproc_event_t **out) {
  return MPROC_NEW(out, return mproc::event_new(out););
}

MPROC_API int mproc_event_set(mproc_event_t *ev) {
  return MPROC_ON(ev, mproc::event_set(ev->st); return 0;);
}

MPROC_API int mproc_event_clear(mproc_event_t *ev) {
  return MPROC_ON(ev, mproc::event_clear(ev->st); return 0;);
}

MPROC_API int mproc_event_is_set(const mproc_event_t *ev) {
  return MPROC_ON(ev, return ev->st->flag.load() ? 1 : 0;);
}

MPROC_API int mproc_event_wait(mproc_event_t *ev, double timeout) {
  return MPROC_WAIT_ON(ev, timeout, return mproc::event_wait(ev->st, timeout););
}

MPROC_API int mproc_event_export(const mproc_event_t *ev, char *buf, size_t cap) {
  return MPROC_ON(ev, return export_token(ev, buf, cap, mproc::event_export););
}

MPROC_API int mproc_event_attach(mproc_event_t **out, const char *token) {
  return MPROC_NEW(out, if (int rc = check_token(token)) return rc;
                   return mproc::event_attach(token, out););
}

MPROC_API int mproc_event_free(mproc_event_t *ev) { return MPROC_FREE(ev, mproc::event_free(ev);); }

/* ---- Barrier ---- */

MPROC_API int mproc_barrier_new(mproc_barrier_t **out, unsigned int parties,
                                mproc_barrier_action_fn action, void *payload) {
  return MPROC_NEW(out, {
    if (parties == 0 || parties > MPROC_BARRIER_PARTIES_MAX)
      return fail(MPROC_EINVAL, "parties must be 1..%d, not %u", MPROC_BARRIER_PARTIES_MAX,
                  parties);
    return mproc::barrier_new(parties, action, payload, out);
  });
}

MPROC_API int mproc_barrier_wait(mproc_barrier_t *b, double timeout) {
  return MPROC_WAIT_ON(b, timeout,
                       return mproc::barrier_wait(b->st, b->action, b->payload, timeout););
}

MPROC_API int mproc_barrier_arrive(mproc_barrier_t *b, uint64_t *ticket) {
  return MPROC_ON(b, {
    if (!ticket) return fail(MPROC_EINVAL, "ticket is NULL");
    return mproc::barrier_arrive(b->st, b->action, b->payload, ticket, -1);
  });
}

MPROC_API int mproc_barrier_await(mproc_barrier_t *b, uint64_t ticket, double timeout) {
  return MPROC_WAIT_ON(b, timeout, if (int rc = check_ticket(b, ticket)) return rc;
                       return mproc::barrier_await(b->st, ticket, timeout, false););
}

MPROC_API int mproc_barrier_cancel(mproc_barrier_t *b, uint64_t ticket) {
  return MPROC_ON(b, if (int rc = check_ticket(b, ticket)) return rc;
                  return mproc::barrier_cancel(b->st, ticket););
}

MPROC_API int mproc_barrier_reset(mproc_barrier_t *b) {
  return MPROC_ON(b, return mproc::barrier_reset(b->st););
}

MPROC_API int mproc_barrier_abort(mproc_barrier_t *b) {
  return MPROC_ON(b, return mproc::barrier_abort(b->st););
}

MPROC_API int mproc_barrier_parties(const mproc_barrier_t *b) {
  return MPROC_ON(b, return static_cast<int>(b->st->parties););
}

MPROC_API int mproc_barrier_n_waiting(const mproc_barrier_t *b) {
  return MPROC_ON(b, return b->st->broken.load() ? 0 : static_cast<int>(b->st->count.load()););
}

MPROC_API int mproc_barrier_broken(const mproc_barrier_t *b) {
  return MPROC_ON(b, return b->st->broken.load() ? 1 : 0;);
}

MPROC_API int mproc_barrier_export(const mproc_barrier_t *b, char *buf, size_t cap) {
  return MPROC_ON(b, return export_token(b, buf, cap, mproc::barrier_export););
}

MPROC_API int mproc_barrier_attach(mproc_barrier_t **out, const char *token,
                                   mproc_barrier_action_fn action, void *payload) {
  return MPROC_NEW(out, if (int rc = check_token(token)) return rc;
                   return mproc::barrier_attach(token, action, payload, out););
}

MPROC_API int mproc_barrier_free(mproc_barrier_t *b) {
  return MPROC_FREE(b, mproc::barrier_free(b););
}

}  // extern "C"
