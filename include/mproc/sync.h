/* mproc: synchronization across processes (the counterparts of multiprocessing.Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event and Barrier). See docs/sync.md.
 *
 * Objects live in shared memory. Made before a child starts, they are shared with it (fork);
 * any other process (forkserver child, pool worker, unrelated program of the same user) attaches
 * them from a token made by *_export while the exporting process still holds the object.
 * Timeouts are in seconds on a monotonic clock: < 0 waits forever, 0 tries without blocking,
 * > 0 waits at most that long (signals do not shorten or lengthen it); NaN is MPROC_EINVAL.
 * Every call that waits also returns MPROC_EINTR after mproc_interrupt() (docs/conventions.md). */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Room for any token written by an *_export function, with its terminating NUL. */
#define MPROC_TOKEN_MAX 256

/* ---- Lock and RLock ------------------------------------------------------------------------ */

/* A lock is owned by the thread that acquired it; only that thread may release it (release by
 * anyone else is MPROC_ENOTOWNER: for a cross-process signal, use a semaphore). A Lock taken again
 * by its owner fails with MPROC_EDEADLK; an RLock counts recursion instead. When the owner dies
 * (even by SIGKILL), the next acquirer gets MPROC_EOWNERDEAD and holds the lock. */
typedef struct mproc_lock mproc_lock_t;

/* Make a Lock. Free with mproc_lock_free(). Errors: MPROC_EINVAL, MPROC_ENOMEM, MPROC_EMFILE. */
MPROC_API int mproc_lock_new(mproc_lock_t **out);
/* Make an RLock (recursive: its owner may acquire it again; release as often). Free with
 * mproc_lock_free(). Errors: MPROC_EINVAL, MPROC_ENOMEM, MPROC_EMFILE. */
MPROC_API int mproc_rlock_new(mproc_lock_t **out);
/* Acquire; uncontended it makes no system call. Returns 0, or MPROC_EOWNERDEAD when the previous
 * owner died holding it (the caller holds it now: repair the protected data, then release as
 * usual). Errors: MPROC_ETIMEDOUT, MPROC_EDEADLK (Lock already held by the caller), MPROC_EBADF. */
MPROC_API int mproc_lock_acquire(mproc_lock_t *lock, double timeout);
/* Release (an RLock: one level). Errors: MPROC_ENOTOWNER (caller does not hold it), MPROC_EBADF. */
MPROC_API int mproc_lock_release(mproc_lock_t *lock);
/* 1 when the calling thread holds the lock, 0 if not, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_lock_owned(const mproc_lock_t *lock);
/* 1 for an RLock, 0 for a Lock, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_lock_is_recursive(const mproc_lock_t *lock);
/* Write a token naming the lock to buf (NUL-terminated; MPROC_TOKEN_MAX is always enough) and
 * return its length. Errors: MPROC_EINVAL, MPROC_ENOSPC (cap too small), MPROC_EBADF. */
MPROC_API int mproc_lock_export(const mproc_lock_t *lock, char *buf, size_t cap);
/* A handle on the lock named by a token (free with mproc_lock_free()). Errors: MPROC_EINVAL
 * (malformed token or not a lock), MPROC_ENOENT (object or exporter gone), MPROC_EACCES. */
MPROC_API int mproc_lock_attach(mproc_lock_t **out, const char *token);
/* Release this handle (the lock's memory goes when no process holds a handle). NULL is a no-op.
 * Errors: MPROC_EBADF, MPROC_EINVAL (a lock returned by a *_get_lock: it belongs to its owner). */
MPROC_API int mproc_lock_free(mproc_lock_t *lock);

/* ---- Semaphore and BoundedSemaphore -------------------------------------------------------- */

typedef struct mproc_sem mproc_sem_t;

/* Largest semaphore value. */
#define MPROC_SEM_VALUE_MAX 0x7fffffff

/* Make a Semaphore with an initial value (<= MPROC_SEM_VALUE_MAX). Free with mproc_sem_free().
 * Errors: MPROC_EINVAL, MPROC_ERANGE, MPROC_ENOMEM, MPROC_EMFILE. */
MPROC_API int mproc_sem_new(mproc_sem_t **out, unsigned int value);
/* Make a BoundedSemaphore: releasing it above its initial value fails. Errors: as mproc_sem_new. */
MPROC_API int mproc_bounded_sem_new(mproc_sem_t **out, unsigned int value);
/* Decrement, waiting while the value is 0. Errors: MPROC_ETIMEDOUT, MPROC_EBADF. */
MPROC_API int mproc_sem_acquire(mproc_sem_t *sem, double timeout);
/* Increment (any process may). Errors: MPROC_ERANGE (above a bounded semaphore's initial value,
 * or MPROC_SEM_VALUE_MAX), MPROC_EBADF. */
MPROC_API int mproc_sem_release(mproc_sem_t *sem);
/* The current value (>= 0), or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_sem_get_value(const mproc_sem_t *sem);
/* Token for another process; see mproc_lock_export. */
MPROC_API int mproc_sem_export(const mproc_sem_t *sem, char *buf, size_t cap);
/* Attach from a token; see mproc_lock_attach. */
MPROC_API int mproc_sem_attach(mproc_sem_t **out, const char *token);
/* Release this handle. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_sem_free(mproc_sem_t *sem);

/* ---- Condition ------------------------------------------------------------------------------ */

typedef struct mproc_cond mproc_cond_t;

/* Make a Condition over `lock` (a Lock or RLock; the condition keeps its own reference, so the
 * caller may free its handle) or, when lock is NULL, over its own RLock. Free with
 * mproc_cond_free().
 * Errors: MPROC_EINVAL, MPROC_EBADF (bad lock), MPROC_ENOMEM. */
MPROC_API int mproc_cond_new(mproc_cond_t **out, mproc_lock_t *lock);
/* The condition's lock (owned by the condition: do not free). Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_cond_get_lock(const mproc_cond_t *cond, mproc_lock_t **out);
/* Acquire / release the condition's lock (as mproc_lock_acquire / mproc_lock_release). */
MPROC_API int mproc_cond_acquire(mproc_cond_t *cond, double timeout);
MPROC_API int mproc_cond_release(mproc_cond_t *cond);
/* With the lock held: release it, wait for a notify, take it back (also after a timeout).
 * Wake-ups may be spurious: re-check your predicate (or use mproc_cond_wait_for). Returns 0 or
 * MPROC_EOWNERDEAD (lock re-taken from a dead owner). Errors: MPROC_ETIMEDOUT (lock held again),
 * MPROC_ENOTOWNER (lock not held by the caller), MPROC_EBADF. */
MPROC_API int mproc_cond_wait(mproc_cond_t *cond, double timeout);
/* A predicate for mproc_cond_wait_for: non-zero when the awaited state holds. */
typedef int (*mproc_cond_pred_fn)(void *payload);
/* With the lock held: wait until pred(payload) is non-zero (checked first, then after each
 * wake-up, always under the lock). Returns 0 once it holds. Errors: MPROC_ETIMEDOUT (it never
 * held in time; lock held), MPROC_EOWNERDEAD, MPROC_ENOTOWNER, MPROC_EINVAL (NULL pred). */
MPROC_API int mproc_cond_wait_for(mproc_cond_t *cond, mproc_cond_pred_fn pred, void *payload,
                                  double timeout);
/* With the lock held: wake up to n waiters (n >= 0). Errors: MPROC_ENOTOWNER, MPROC_EINVAL. */
MPROC_API int mproc_cond_notify(mproc_cond_t *cond, int n);
/* With the lock held: wake all waiters. Errors: MPROC_ENOTOWNER, MPROC_EBADF. */
MPROC_API int mproc_cond_notify_all(mproc_cond_t *cond);
/* Token for another process (names its lock too); see mproc_lock_export. */
MPROC_API int mproc_cond_export(const mproc_cond_t *cond, char *buf, size_t cap);
/* Attach from a token; see mproc_lock_attach. */
MPROC_API int mproc_cond_attach(mproc_cond_t **out, const char *token);
/* Release this handle (and its reference to the lock). NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_cond_free(mproc_cond_t *cond);

/* ---- Event ---------------------------------------------------------------------------------- */

typedef struct mproc_event mproc_event_t;

/* Make an Event (initially clear). Free with mproc_event_free(). Errors: MPROC_EINVAL, ENOMEM. */
MPROC_API int mproc_event_new(mproc_event_t **out);
/* Set the flag and wake every waiter. Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_event_set(mproc_event_t *ev);
/* Clear the flag. Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_event_clear(mproc_event_t *ev);
/* 1 when set, 0 when clear, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_event_is_set(const mproc_event_t *ev);
/* Wait until the flag is set (0). Errors: MPROC_ETIMEDOUT, MPROC_EBADF. */
MPROC_API int mproc_event_wait(mproc_event_t *ev, double timeout);
/* Token for another process; see mproc_lock_export. */
MPROC_API int mproc_event_export(const mproc_event_t *ev, char *buf, size_t cap);
/* Attach from a token; see mproc_lock_attach. */
MPROC_API int mproc_event_attach(mproc_event_t **out, const char *token);
/* Release this handle. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_event_free(mproc_event_t *ev);

/* ---- Barrier -------------------------------------------------------------------------------- */

typedef struct mproc_barrier mproc_barrier_t;

/* Run by the last party to arrive, before the others are released; non-zero breaks the barrier.
 * It is a function of this program: each handle carries its own (attach may give one). */
typedef int (*mproc_barrier_action_fn)(void *payload);

/* Largest number of parties. */
#define MPROC_BARRIER_PARTIES_MAX 0x7fffffff

/* Make a Barrier for `parties` (>= 1) with an optional action. Free with mproc_barrier_free().
 * Errors: MPROC_EINVAL (0 or too many parties), MPROC_ENOMEM. */
MPROC_API int mproc_barrier_new(mproc_barrier_t **out, unsigned int parties,
                                mproc_barrier_action_fn action, void *payload);
/* Wait until `parties` callers have arrived; returns the arrival index 0..parties-1 (each once).
 * Errors: MPROC_EBROKEN (aborted, reset while waiting, another party timed out, the action failed
 * or a party died inside it), MPROC_ETIMEDOUT (which breaks the barrier, as in Python),
 * MPROC_EDEADLK (called from the barrier's own action; so are reset and abort). */
MPROC_API int mproc_barrier_wait(mproc_barrier_t *b, double timeout);
/* mproc_barrier_wait in two steps, for callers that wait in slices (bindings): arrive returns
 * the arrival index and writes a ticket; the last party runs the action and releases the others.
 * Errors: MPROC_EBROKEN, MPROC_EDEADLK. */
MPROC_API int mproc_barrier_arrive(mproc_barrier_t *b, uint64_t *ticket);
/* Wait for the ticket's generation to end: the arrival index, MPROC_EBROKEN, MPROC_EINTR (which
 * breaks the barrier), or MPROC_ETIMEDOUT, which leaves the barrier as it is: await again, or
 * give up with mproc_barrier_cancel (as mproc_barrier_wait's timeout does). Errors: MPROC_EINVAL
 * (NaN timeout, a ticket of another barrier). */
MPROC_API int mproc_barrier_await(mproc_barrier_t *b, uint64_t ticket, double timeout);
/* Give up a ticket's wait (a timeout of the caller's own, an exception): break the barrier if the
 * ticket's generation is still waiting (MPROC_ECANCELED), else return how it ended: the arrival
 * index, or MPROC_EBROKEN. Errors: MPROC_EINVAL (a ticket of another barrier). */
MPROC_API int mproc_barrier_cancel(mproc_barrier_t *b, uint64_t ticket);
/* Back to the empty state: current waiters get MPROC_EBROKEN; a broken barrier is usable again. */
MPROC_API int mproc_barrier_reset(mproc_barrier_t *b);
/* Break the barrier: current and later waits fail with MPROC_EBROKEN until a reset. */
MPROC_API int mproc_barrier_abort(mproc_barrier_t *b);
/* The number of parties, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_barrier_parties(const mproc_barrier_t *b);
/* How many parties wait now, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_barrier_n_waiting(const mproc_barrier_t *b);
/* 1 when broken, 0 if not, or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_barrier_broken(const mproc_barrier_t *b);
/* Token for another process; see mproc_lock_export. */
MPROC_API int mproc_barrier_export(const mproc_barrier_t *b, char *buf, size_t cap);
/* Attach from a token, with this process's action (may be NULL); see mproc_lock_attach. */
MPROC_API int mproc_barrier_attach(mproc_barrier_t **out, const char *token,
                                   mproc_barrier_action_fn action, void *payload);
/* Release this handle. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_barrier_free(mproc_barrier_t *b);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_SYNC_H */
