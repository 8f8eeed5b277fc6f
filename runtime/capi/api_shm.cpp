// C ABI: shared values, arrays and named blocks. Thin shims over sync/value.cpp and shm/named.cpp.
// The atomic operations check the handle's magic only (hot path); every other call also consults
// the handle registry, so a freed handle is MPROC_EBADF.
#include <mproc/shm.h>

#include <cstring>

#include "capi/capi.hpp"
#include "proc/runtime.hpp"
#include "shm/named.hpp"
#include "sync/value.hpp"

using mproc::AtomicOp;
using mproc::fail;
using mproc::HandleKind;
using mproc::SharedValue;

namespace {
int check_value(const mproc_value_t *v) {
  if (!v) return fail(MPROC_EINVAL, "value handle is NULL");
  if (!mproc::handle_valid(v, HandleKind::kValue) || v->magic != mproc::kValueMagic)
    return fail(MPROC_EBADF, "not a live value handle (freed or never made)");
  return 0;
}

int check_array(const mproc_array_t *a) {
  if (!a) return fail(MPROC_EINVAL, "array handle is NULL");
  if (!mproc::handle_valid(a, HandleKind::kArray) || a->magic != mproc::kArrayMagic)
    return fail(MPROC_EBADF, "not a live array handle (freed or never made)");
  return 0;
}

int check_shm(const mproc_shm_t *s) {
  if (!s) return fail(MPROC_EINVAL, "shm handle is NULL");
  if (!mproc::handle_valid(s, HandleKind::kShm) || s->magic != mproc::kShmMagic)
    return fail(MPROC_EBADF, "not a live shm handle (closed or never made)");
  return 0;
}

int check_ptr(const void *p, const char *what) {
  return p ? 0 : fail(MPROC_EINVAL, "%s is NULL", what);
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

int make(SharedValue **out, char tc, size_t length, const void *init,
         const mproc_value_opts_t *opts, bool is_array) {
  if (int rc = check_ptr(out, "out")) return rc;
  *out = nullptr;
  mproc_value_opts_t o;
  if (int rc = read_opts(opts, &o)) return rc;
  return mproc::value_new(tc, length, init, o.raw != 0, o.raw ? nullptr : o.lock, is_array, out);
}

int atomic(mproc_value_t *v, AtomicOp op, int64_t arg, int64_t *io) {
  if (!v) return fail(MPROC_EINVAL, "value handle is NULL");
  if (v->magic != mproc::kValueMagic) return fail(MPROC_EBADF, "not a live value handle");
  return mproc::value_atomic(v, op, arg, io);
}

int get_lock(SharedValue *v, mproc_lock_t **out) {
  if (!v->lock) return fail(MPROC_EINVAL, "a raw value or array has no lock");
  *out = v->lock;
  return 0;
}

int export_token(const SharedValue *v, char *buf, size_t cap) {
  if (!buf) return fail(MPROC_EINVAL, "buf is NULL");
  if (cap == 0) return fail(MPROC_ENOSPC, "cap is 0");
  return mproc::value_export(v, buf, cap);
}

int attach(SharedValue **out, const char *token, bool is_array) {
  if (int rc = check_ptr(out, "out")) return rc;
  *out = nullptr;
  if (int rc = check_ptr(token, "token")) return rc;
  if (strnlen(token, MPROC_TOKEN_MAX) >= MPROC_TOKEN_MAX)
    return fail(MPROC_EINVAL, "token is longer than MPROC_TOKEN_MAX");
  return mproc::value_attach(token, is_array, out);
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

int check_name(const char *name) {
  if (!name) return fail(MPROC_EINVAL, "name is NULL");
  return mproc::shm_check_name(name);
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
  return MPROC_GUARD({
    if (int rc = check_ptr(opts, "opts")) return rc;
    *opts = mproc_value_opts_t MPROC_VALUE_OPTS_INIT;
    return 0;
  });
}

/* ---- Value ---- */

MPROC_API int mproc_value_new(mproc_value_t **out, char typecode, const void *init,
                              const mproc_value_opts_t *opts) {
  return MPROC_GUARD({
    SharedValue *v = nullptr;
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    int rc = make(&v, typecode, 1, init, opts, false);
    *out = static_cast<mproc_value_t *>(v);
    return rc;
  });
}

MPROC_API int mproc_value_get(mproc_value_t *v, void *out) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get(v, 0, out);
  });
}

MPROC_API int mproc_value_set(mproc_value_t *v, const void *in) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    if (int rc = check_ptr(in, "in")) return rc;
    return mproc::value_set(v, 0, in);
  });
}

MPROC_API int mproc_value_get_double(mproc_value_t *v, double *out) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get_double(v, 0, out);
  });
}

MPROC_API int mproc_value_set_double(mproc_value_t *v, double x) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    return mproc::value_set_double(v, 0, x);
  });
}

MPROC_API int mproc_value_get_int64(mproc_value_t *v, int64_t *out) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get_int64(v, 0, out);
  });
}

MPROC_API int mproc_value_set_int64(mproc_value_t *v, int64_t x) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    return mproc::value_set_int64(v, 0, x);
  });
}

MPROC_API void *mproc_value_ptr(mproc_value_t *v) {
  if (int rc = check_value(v)) {
    mproc::api_result(__func__, rc);
    return nullptr;
  }
  return v->data;
}

MPROC_API int mproc_value_typecode(const mproc_value_t *v) {
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    return static_cast<int>(v->st->typecode);
  });
}

MPROC_API int mproc_value_get_lock(mproc_value_t *v, mproc_lock_t **out) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    *out = nullptr;
    if (int rc = check_value(v)) return rc;
    return get_lock(v, out);
  });
}

MPROC_API int mproc_value_load(mproc_value_t *v, int64_t *out) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    return atomic(v, AtomicOp::kLoad, 0, out);
  });
}

MPROC_API int mproc_value_store(mproc_value_t *v, int64_t x) {
  return MPROC_GUARD({
    int64_t unused = 0;
    return atomic(v, AtomicOp::kStore, x, &unused);
  });
}

MPROC_API int mproc_value_exchange(mproc_value_t *v, int64_t x, int64_t *old) {
  return MPROC_GUARD({
    int64_t o = 0;
    int rc = atomic(v, AtomicOp::kExchange, x, &o);
    if (rc == 0 && old) *old = o;
    return rc;
  });
}

MPROC_API int mproc_value_compare_exchange(mproc_value_t *v, int64_t *expected, int64_t desired) {
  return MPROC_GUARD({
    if (int rc = check_ptr(expected, "expected")) return rc;
    return atomic(v, AtomicOp::kCompareExchange, desired, expected);
  });
}

// fetch_add/fetch_sub on an integer value: one locked instruction, inlined here; errors take the
// guarded call, kept out of line so the fast path stays small.
static __attribute__((noinline)) int fetch_full(const char *fn, mproc_value_t *v, AtomicOp op,
                                                int64_t delta, int64_t *old) {
  return mproc::guard(fn, [&]() -> int {
    int64_t o = 0;
    int rc = atomic(v, op, delta, &o);
    if (rc == 0 && old) *old = o;
    return rc;
  });
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
  return MPROC_GUARD({
    if (int rc = check_value(v)) return rc;
    return export_token(v, buf, cap);
  });
}

MPROC_API int mproc_value_attach(mproc_value_t **out, const char *token) {
  return MPROC_GUARD({
    SharedValue *v = nullptr;
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    int rc = attach(&v, token, false);
    *out = static_cast<mproc_value_t *>(v);
    return rc;
  });
}

MPROC_API int mproc_value_free(mproc_value_t *v) {
  return MPROC_GUARD({
    if (!v) return 0;
    if (int rc = check_value(v)) return rc;
    mproc::value_free(v);
    return 0;
  });
}

/* ---- Array ---- */

MPROC_API int mproc_array_new(mproc_array_t **out, char typecode, size_t length, const void *init,
                              const mproc_value_opts_t *opts) {
  return MPROC_GUARD({
    SharedValue *v = nullptr;
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    int rc = make(&v, typecode, length, init, opts, true);
    *out = static_cast<mproc_array_t *>(v);
    return rc;
  });
}

MPROC_API int mproc_array_length(const mproc_array_t *a, size_t *out) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    *out = static_cast<size_t>(a->st->length);
    return 0;
  });
}

MPROC_API int mproc_array_get(mproc_array_t *a, size_t i, void *out) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get(a, i, out);
  });
}

MPROC_API int mproc_array_set(mproc_array_t *a, size_t i, const void *in) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (int rc = check_ptr(in, "in")) return rc;
    return mproc::value_set(a, i, in);
  });
}

MPROC_API int mproc_array_get_double(mproc_array_t *a, size_t i, double *out) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get_double(a, i, out);
  });
}

MPROC_API int mproc_array_set_double(mproc_array_t *a, size_t i, double x) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    return mproc::value_set_double(a, i, x);
  });
}

MPROC_API int mproc_array_get_int64(mproc_array_t *a, size_t i, int64_t *out) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    return mproc::value_get_int64(a, i, out);
  });
}

MPROC_API int mproc_array_set_int64(mproc_array_t *a, size_t i, int64_t x) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    return mproc::value_set_int64(a, i, x);
  });
}

MPROC_API int mproc_array_read(mproc_array_t *a, size_t start, size_t count, void *out) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (!out && count) return fail(MPROC_EINVAL, "out is NULL");
    return mproc::value_read(a, start, count, out);
  });
}

MPROC_API int mproc_array_write(mproc_array_t *a, size_t start, size_t count, const void *in) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    if (!in && count) return fail(MPROC_EINVAL, "in is NULL");
    return mproc::value_write(a, start, count, in);
  });
}

MPROC_API void *mproc_array_ptr(mproc_array_t *a) {
  if (int rc = check_array(a)) {
    mproc::api_result(__func__, rc);
    return nullptr;
  }
  return a->data;
}

MPROC_API int mproc_array_typecode(const mproc_array_t *a) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    return static_cast<int>(a->st->typecode);
  });
}

MPROC_API int mproc_array_get_lock(mproc_array_t *a, mproc_lock_t **out) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    *out = nullptr;
    if (int rc = check_array(a)) return rc;
    return get_lock(a, out);
  });
}

MPROC_API int mproc_array_export(const mproc_array_t *a, char *buf, size_t cap) {
  return MPROC_GUARD({
    if (int rc = check_array(a)) return rc;
    return export_token(a, buf, cap);
  });
}

MPROC_API int mproc_array_attach(mproc_array_t **out, const char *token) {
  return MPROC_GUARD({
    SharedValue *v = nullptr;
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    int rc = attach(&v, token, true);
    *out = static_cast<mproc_array_t *>(v);
    return rc;
  });
}

MPROC_API int mproc_array_free(mproc_array_t *a) {
  return MPROC_GUARD({
    if (!a) return 0;
    if (int rc = check_array(a)) return rc;
    mproc::value_free(a);
    return 0;
  });
}

/* ---- Named blocks ---- */

MPROC_API int mproc_shm_opts_init(mproc_shm_opts_t *opts) {
  return MPROC_GUARD({
    if (int rc = check_ptr(opts, "opts")) return rc;
    *opts = mproc_shm_opts_t MPROC_SHM_OPTS_INIT;
    return 0;
  });
}

MPROC_API int mproc_shm_create_ex(mproc_shm_t **out, const char *name, size_t size,
                                  const mproc_shm_opts_t *opts) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    *out = nullptr;
    mproc_shm_opts_t o;
    if (int rc = read_shm_opts(opts, &o)) return rc;
    unsigned users = !o.lease ? 0 : o.max_users ? o.max_users : MPROC_SHM_LEASE_USERS_DEFAULT;
    return create_block(out, name, size, users);
  });
}

MPROC_API int mproc_shm_create(mproc_shm_t **out, const char *name, size_t size) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    *out = nullptr;
    return create_block(out, name, size, 0);
  });
}

MPROC_API int mproc_shm_attach(mproc_shm_t **out, const char *name) {
  return MPROC_GUARD({
    if (int rc = check_ptr(out, "out")) return rc;
    *out = nullptr;
    if (int rc = check_name(name)) return rc;
    return mproc::shm_attach(name, out);
  });
}

MPROC_API const char *mproc_shm_name(const mproc_shm_t *s) {
  if (int rc = check_shm(s)) {
    mproc::api_result(__func__, rc);
    return nullptr;
  }
  return s->name.c_str();
}

MPROC_API int mproc_shm_size(const mproc_shm_t *s, size_t *out) {
  return MPROC_GUARD({
    if (int rc = check_shm(s)) return rc;
    if (int rc = check_ptr(out, "out")) return rc;
    *out = s->size;
    return 0;
  });
}

MPROC_API void *mproc_shm_ptr(const mproc_shm_t *s) {
  if (int rc = check_shm(s)) {
    mproc::api_result(__func__, rc);
    return nullptr;
  }
  return s->addr;
}

MPROC_API int mproc_shm_unlink(mproc_shm_t *s) {
  return MPROC_GUARD({
    if (int rc = check_shm(s)) return rc;
    return mproc::shm_unlink(s);
  });
}

MPROC_API int mproc_shm_close(mproc_shm_t *s) {
  return MPROC_GUARD({
    if (!s) return 0;
    if (int rc = check_shm(s)) return rc;
    mproc::shm_close(s);
    return 0;
  });
}

MPROC_API int mproc_shm_cleanup(void) {
  return MPROC_GUARD({ return mproc::shm_cleanup(); });
}

}  // extern "C"
