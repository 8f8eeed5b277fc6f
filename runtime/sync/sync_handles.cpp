// The C handles of the sync objects (struct mproc_lock ...): each is made over a state in an
// arena block (shm/arena.hpp), registered, exported as a token and attached from one.
#include <memory>

#include "base/error.hpp"
#include "base/handles.hpp"
#include "sync/sync.hpp"

namespace mproc {

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

// Attach handle h (semaphore, event, barrier) to a token of exactly one part with no sub-object.
template <class H>
int attach_single(const char *token, ObjKind kind, HandleKind hkind, std::unique_ptr<H> h,
                  H **out) {
  uint64_t inner = 0;
  const char *end = nullptr;
  if (int rc = arena_attach(token, kind, kind_bit(kind), &h->ref, &inner, &end)) return rc;
  if (*end != '\0' || inner != 0) {
    arena_release(&h->ref);
    return fail(MPROC_EINVAL, "malformed token: unexpected data after the object");
  }
  h->st = static_cast<decltype(h->st)>(h->ref.payload);
  return publish(std::move(h), hkind, out);
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
  return attach_single(token, ObjKind::kSemaphore, HandleKind::kSemaphore,
                       std::make_unique<mproc_sem>(), out);
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
  return attach_single(token, ObjKind::kEvent, HandleKind::kEvent, std::make_unique<mproc_event>(),
                       out);
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
  h->action = action;
  h->payload = payload;
  return attach_single(token, ObjKind::kBarrier, HandleKind::kBarrier, std::move(h), out);
}

void barrier_free(mproc_barrier *b) { unpublish(b); }

}  // namespace mproc
