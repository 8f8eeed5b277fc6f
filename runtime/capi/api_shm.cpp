// C ABI: shared values, arrays and named blocks. Thin shims over sync/value.cpp and shm/named.cpp.
// The atomic operations check the handle's magic only (hot path); every other call also consults
// the handle registry, so a freed handle is MPROC_EBADF.
#include <mproc/shm.h>

#include <cstddef>
#include <type_traits>

#include "capi/capi.hpp"
#include "shm/named.hpp"
#include "sync/value.hpp"

using mproc::AtomicOp;
using mproc::check_live;
using mproc::check_ptr;
using mproc::fail;
using mproc::HandleKind;
using mproc::SharedValue;

namespace {
int check(const mproc_value_t *v) {
  return check_live(v, HandleKind::kValue, mproc::kValueMagic, "value");
}
int check(const mproc_array_t *a) {
  return check_live(a, HandleKind::kArray, mproc::kArrayMagic, "array");
}
int check(const mproc_shm_t *s) {
  return check_live(s, HandleKind::kShm, mproc::kShmMagic, "shm", "closed");
}

int read_opts(const mproc_value_opts_t *opts, mproc_value_opts_t *o) {
  *o = mproc_value_opts_t MPROC_VALUE_OPTS_INIT;
  if (int rc = mproc::read_opts(opts, offsetof(mproc_value_opts_t, lock) + sizeof(void *),
                                "mproc_value_opts_t", o))
    return rc;
  if (!o->raw && o->lock && !mproc::handle_valid(o->lock, HandleKind::kLock))
    return fail(MPROC_EBADF, "opts->lock is not a live lock handle");
  return 0;
}

// Values and arrays share these bodies: a value is an array of one element, at index 0.
template <class H>
int make(H **out, char tc, size_t length, const void *init, const mproc_value_opts_t *opts) {
  mproc_value_opts_t o;
  if (int rc = read_opts(opts, &o)) return rc;
  SharedValue *v = nullptr;
  int rc = mproc::value_new(tc, length, init, o.raw != 0, o.raw ? nullptr : o.lock,
                            std::is_same_v<H, mproc_array_t>, &v);
  *out = static_cast<H *>(v);
  return rc;
}

template <class H>
int attach(H **out, const char *token) {
  if (int rc = mproc::check_token(token)) return rc;
  SharedValue *v = nullptr;
  int rc = mproc::value_attach(token, std::is_same_v<H, mproc_array_t>, &v);
  *out = static_cast<H *>(v);
  return rc;
}

// Element access: `out` (a pointer) must not be NULL; `in` is checked only when a pointer.
template <class T>
int get_at(SharedValue *v, size_t i, T *out, int (*core)(SharedValue *, size_t, T *)) {
  if (int rc = check_ptr(out, "out")) return rc;
  return core(v, i, out);
}
template <class T>
int set_at(SharedValue *v, size_t i, T in, int (*core)(SharedValue *, size_t, T)) {
  if constexpr (std::is_pointer_v<T>)
    if (int rc = check_ptr(in, "in")) return rc;
  return core(v, i, in);
}

int atomic(mproc_value_t *v, AtomicOp op, int64_t arg, int64_t *io) {
  if (!v) return fail(MPROC_EINVAL, "value handle is NULL");
  if (v->magic != mproc::kValueMagic) return fail(MPROC_EBADF, "not a live value handle");
  return mproc::value_atomic(v, op, arg, io);
}

// The atomics that report the old value where the caller asks for it.
int atomic_old(mproc_value_t *v, AtomicOp op, int64_t arg, int64_t *old) {
  int64_t o = 0;
  int rc = atomic(v, op, arg, &o);
  if (rc == 0 && old) *old = o;
  return rc;
}

int get_lock(SharedValue *v, mproc_lock_t **out) {
  if (!v->lock) return fail(MPROC_EINVAL, "a raw value or array has no lock");
  *out = v->lock;
  return 0;
}

int export_token(const SharedValue *v, char *buf, size_t cap) {
  if (int rc = mproc::check_token_buf(buf, cap)) return rc;
  return mproc::value_export(v, buf, cap);
}

// The calls that return a pointer (no code): NULL, with the cause recorded, when h is not live.
template <class H, class Get>
auto ptr_or_null(const char *fn, const H *h, Get get) -> decltype(get()) {
  if (int rc = check(h)) {
    mproc::api_result(fn, rc);
    return nullptr;
  }
  return get();
}

int read_shm_opts(const mproc_shm_opts_t *opts, mproc_shm_opts_t *o) {
  *o = mproc_shm_opts_t MPROC_SHM_OPTS_INIT;
  if (int rc = mproc::read_opts(opts, offsetof(mproc_shm_opts_t, lease) + sizeof(int),
                                "mproc_shm_opts_t", o))
    return rc;
  if (o->max_users > MPROC_SHM_LEASE_USERS_MAX)
    return fail(MPROC_EINVAL, "opts->max_users %u is over MPROC_SHM_LEASE_USERS_MAX (%d)",
                o->max_users, MPROC_SHM_LEASE_USERS_MAX);
  if (o->max_users && !o->lease) return fail(MPROC_EINVAL, "opts->max_users needs opts->lease");
  return 0;
}

int create_block(mproc_shm_t **out, const char *name, size_t size, unsigned lease_users) {
  if (name)
    if (int rc = mproc::shm_check_name(name)) return rc;
  if (size == 0) return fail(MPROC_EINVAL, "size is 0");
  if (size > MPROC_SHM_SIZE_MAX)
    return fail(MPROC_EMSGSIZE, "size %zu is over MPROC_SHM_SIZE_MAX (%zu)", size,
                MPROC_SHM_SIZE_MAX);
  return mproc::shm_create(name, size, lease_users, out);
}
}  // namespace

extern "C" {

MPROC_API int mproc_typecode_size(char typecode) {
  return MPROC_GUARD({
    size_t n = mproc::typecode_size(typecode);
    if (!n) return fail(MPROC_EINVAL, "unknown type code (one of %s)", MPROC_TYPECODES);
    return static_cast<int>(n);
  });
}

MPROC_API int mproc_value_opts_init(mproc_value_opts_t *opts) {
  return MPROC_GUARD(if (int rc = check_ptr(opts, "opts")) return rc;
                     *opts = mproc_value_opts_t MPROC_VALUE_OPTS_INIT; return 0;);
}

/* ---- Value ---- */

MPROC_API int mproc_value_new(mproc_value_t **out, char typecode, const void *init,
                              const mproc_value_opts_t *opts) {
  return MPROC_NEW(out, return make(out, typecode, 1, init, opts););
}

MPROC_API int mproc_value_get(mproc_value_t *v, void *out) {
  return MPROC_ON(v, return get_at(v, 0, out, mproc::value_get););
}

MPROC_API int mproc_value_set(mproc_value_t *v, const void *in) {
  return MPROC_ON(v, return set_at(v, 0, in, mproc::value_set););
}

MPROC_API int mproc_value_get_double(mproc_value_t *v, double *out) {
  return MPROC_ON(v, return get_at(v, 0, out, mproc::value_get_double););
}

MPROC_API int mproc_value_set_double(mproc_value_t *v, double x) {
  return MPROC_ON(v, return set_at(v, 0, x, mproc::value_set_double););
}

MPROC_API int mproc_value_get_int64(mproc_value_t *v, int64_t *out) {
  return MPROC_ON(v, return get_at(v, 0, out, mproc::value_get_int64););
}

MPROC_API int mproc_value_set_int64(mproc_value_t *v, int64_t x) {
  return MPROC_ON(v, return set_at(v, 0, x, mproc::value_set_int64););
}

MPROC_API void *mproc_value_ptr(mproc_value_t *v) {
  return ptr_or_null(__func__, v, [&]() -> void * { return v->data; });
}

MPROC_API int mproc_value_typecode(const mproc_value_t *v) {
  return MPROC_ON(v, return static_cast<int>(v->st->typecode););
}

MPROC_API int mproc_value_get_lock(mproc_value_t *v, mproc_lock_t **out) {
  return MPROC_NEW(out, if (int rc = check(v)) return rc; return get_lock(v, out););
}

MPROC_API int mproc_value_load(mproc_value_t *v, int64_t *out) {
  return MPROC_GUARD(if (int rc = check_ptr(out, "out")) return rc;
                     return atomic(v, AtomicOp::kLoad, 0, out););
}

MPROC_API int mproc_value_store(mproc_value_t *v, int64_t x) {
  return MPROC_GUARD(return atomic_old(v, AtomicOp::kStore, x, nullptr););
}

MPROC_API int mproc_value_exchange(mproc_value_t *v, int64_t x, int64_t *old) {
  return MPROC_GUARD(return atomic_old(v, AtomicOp::kExchange, x, old););
}

MPROC_API int mproc_value_compare_exchange(mproc_value_t *v, int64_t *expected, int64_t desired) {
  return MPROC_GUARD(if (int rc = check_ptr(expected, "expected")) return rc;
                     return atomic(v, AtomicOp::kCompareExchange, desired, expected););
}

// fetch_add/fetch_sub on an integer value: one locked instruction, inlined here; errors take the
// guarded call, kept out of line so the fast path stays small.
static __attribute__((noinline)) int fetch_full(const char *fn, mproc_value_t *v, AtomicOp op,
                                                int64_t delta, int64_t *old) {
  return mproc::guard(fn, [&]() -> int { return atomic_old(v, op, delta, old); });
}

MPROC_API int mproc_value_fetch_add(mproc_value_t *v, int64_t delta, int64_t *old) {
  int64_t o;
  if (__builtin_expect(v && v->magic == mproc::kValueMagic, 1) &&
      mproc::value_fetch_add_fast(v, delta, &o)) {
    if (old) *old = o;
    return 0;
  }
  return fetch_full("mproc_value_fetch_add", v, AtomicOp::kFetchAdd, delta, old);
}

MPROC_API int mproc_value_fetch_sub(mproc_value_t *v, int64_t delta, int64_t *old) {
  int64_t o;
  // Subtracting d is adding 2^64 - d (the element wraps the same way).
  int64_t neg = static_cast<int64_t>(0 - static_cast<uint64_t>(delta));
  if (__builtin_expect(v && v->magic == mproc::kValueMagic, 1) &&
      mproc::value_fetch_add_fast(v, neg, &o)) {
    if (old) *old = o;
    return 0;
  }
  return fetch_full("mproc_value_fetch_sub", v, AtomicOp::kFetchSub, delta, old);
}

MPROC_API int mproc_value_export(const mproc_value_t *v, char *buf, size_t cap) {
  return MPROC_ON(v, return export_token(v, buf, cap););
}

MPROC_API int mproc_value_attach(mproc_value_t **out, const char *token) {
  return MPROC_NEW(out, return attach(out, token););
}

MPROC_API int mproc_value_free(mproc_value_t *v) { return MPROC_FREE(v, mproc::value_free(v);); }

/* ---- Array ---- */

MPROC_API int mproc_array_new(mproc_array_t **out, char typecode, size_t length, const void *init,
                              const mproc_value_opts_t *opts) {
  return MPROC_NEW(out, return make(out, typecode, length, init, opts););
}

MPROC_API int mproc_array_length(const mproc_array_t *a, size_t *out) {
  return MPROC_ON(a, if (int rc = check_ptr(out, "out")) return rc;
                  *out = static_cast<size_t>(a->st->length); return 0;);
}

MPROC_API int mproc_array_get(mproc_array_t *a, size_t i, void *out) {
  return MPROC_ON(a, return get_at(a, i, out, mproc::value_get););
}

MPROC_API int mproc_array_set(mproc_array_t *a, size_t i, const void *in) {
  return MPROC_ON(a, return set_at(a, i, in, mproc::value_set););
}

MPROC_API int mproc_array_get_double(mproc_array_t *a, size_t i, double *out) {
  return MPROC_ON(a, return get_at(a, i, out, mproc::value_get_double););
}

MPROC_API int mproc_array_set_double(mproc_array_t *a, size_t i, double x) {
  return MPROC_ON(a, return set_at(a, i, x, mproc::value_set_double););
}

MPROC_API int mproc_array_get_int64(mproc_array_t *a, size_t i, int64_t *out) {
  return MPROC_ON(a, return get_at(a, i, out, mproc::value_get_int64););
}

MPROC_API int mproc_array_set_int64(mproc_array_t *a, size_t i, int64_t x) {
  return MPROC_ON(a, return set_at(a, i, x, mproc::value_set_int64););
}

MPROC_API int mproc_array_read(mproc_array_t *a, size_t start, size_t count, void *out) {
  return MPROC_ON(a, if (!out && count) return fail(MPROC_EINVAL, "out is NULL");
                  return mproc::value_read(a, start, count, out););
}

MPROC_API int mproc_array_write(mproc_array_t *a, size_t start, size_t count, const void *in) {
  return MPROC_ON(a, if (!in && count) return fail(MPROC_EINVAL, "in is NULL");
                  return mproc::value_write(a, start, count, in););
}

MPROC_API void *mproc_array_ptr(mproc_array_t *a) {
  return ptr_or_null(__func__, a, [&]() -> void * { return a->data; });
}

MPROC_API int mproc_array_typecode(const mproc_array_t *a) {
  return MPROC_ON(a, return static_cast<int>(a->st->typecode););
}

MPROC_API int mproc_array_get_lock(mproc_array_t *a, mproc_lock_t **out) {
  return MPROC_NEW(out, if (int rc = check(a)) return rc; return get_lock(a, out););
}

MPROC_API int mproc_array_export(const mproc_array_t *a, char *buf, size_t cap) {
  return MPROC_ON(a, return export_token(a, buf, cap););
}

MPROC_API int mproc_array_attach(mproc_array_t **out, const char *token) {
  return MPROC_NEW(out, return attach(out, token););
}

MPROC_API int mproc_array_free(mproc_array_t *a) { return MPROC_FREE(a, mproc::value_free(a);); }

/* ---- Named blocks ---- */

MPROC_API int mproc_shm_opts_init(mproc_shm_opts_t *opts) {
  return MPROC_GUARD(if (int rc = check_ptr(opts, "opts")) return rc;
                     *opts = mproc_shm_opts_t MPROC_SHM_OPTS_INIT; return 0;);
}

MPROC_API int mproc_shm_create_ex(mproc_shm_t **out, const char *name, size_t size,
                                  const mproc_shm_opts_t *opts) {
  return MPROC_NEW(out, {
    mproc_shm_opts_t o;
    if (int rc = read_shm_opts(opts, &o)) return rc;
    unsigned users = !o.lease ? 0 : o.max_users ? o.max_users : MPROC_SHM_LEASE_USERS_DEFAULT;
    return create_block(out, name, size, users);
  });
}

MPROC_API int mproc_shm_create(mproc_shm_t **out, const char *name, size_t size) {
  return MPROC_NEW(out, return create_block(out, name, size, 0););
}

MPROC_API int mproc_shm_attach(mproc_shm_t **out, const char *name) {
  return MPROC_NEW(out, if (int rc = check_ptr(name, "name")) return rc;
                   if (int rc = mproc::shm_check_name(name)) return rc;
                   return mproc::shm_attach(name, out););
}

MPROC_API const char *mproc_shm_name(const mproc_shm_t *s) {
  return ptr_or_null(__func__, s, [&] { return s->name.c_str(); });
}

MPROC_API int mproc_shm_size(const mproc_shm_t *s, size_t *out) {
  return MPROC_ON(s, if (int rc = check_ptr(out, "out")) return rc; *out = s->size; return 0;);
}

MPROC_API void *mproc_shm_ptr(const mproc_shm_t *s) {
  return ptr_or_null(__func__, s, [&] { return s->addr; });
}

MPROC_API int mproc_shm_unlink(mproc_shm_t *s) { return MPROC_ON(s, return mproc::shm_unlink(s);); }

MPROC_API int mproc_shm_close(mproc_shm_t *s) { return MPROC_FREE(s, mproc::shm_close(s);); }

MPROC_API int mproc_shm_cleanup(void) { return MPROC_GUARD(return mproc::shm_cleanup();); }

}  // extern "C"
