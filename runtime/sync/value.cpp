#include "sync/value.hpp"

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "base/error.hpp"
#include "base/handles.hpp"

namespace mproc {

// ---- typed values -----------------------------------------------------------------------------

namespace {
struct TypeInfo {
  char code;
  uint8_t size;
  bool integer;  // integer arithmetic and atomics
  bool is_signed;
};
const TypeInfo kTypes[] = {
    {'b', 1, true, true},
    {'B', 1, true, false},
    {'h', sizeof(short), true, true},
    {'H', sizeof(short), true, false},
    {'i', sizeof(int), true, true},
    {'I', sizeof(int), true, false},
    {'l', sizeof(long), true, true},
    {'L', sizeof(long), true, false},
    {'q', sizeof(long long), true, true},
    {'Q', sizeof(long long), true, false},
    {'f', sizeof(float), false, true},
    {'d', sizeof(double), false, true},
    {'c', 1, false, false},
};

const TypeInfo *type_of(char tc) {
  for (const TypeInfo &t : kTypes)
    if (t.code == tc && tc != '\0') return &t;
  return nullptr;
}

// Holds the value's lock for the scope unless the caller already holds it.
class ValueLock {
 public:
  explicit ValueLock(SharedValue *v) {
    if (v->lock && !lock_owned_by_me(v->lock->st)) {
      lock_acquire(v->lock->st, -1);  // 0 or EOWNERDEAD: held either way
      held_ = v->lock->st;
    }
  }
  ~ValueLock() {
    if (held_) lock_release(held_);
  }
  ValueLock(const ValueLock &) = delete;
  ValueLock &operator=(const ValueLock &) = delete;

 private:
  LockState *held_ = nullptr;
};

int check_index(const SharedValue *v, size_t i) {
  if (i >= v->st->length)
    return fail(MPROC_ERANGE, "index %zu out of range (length %" PRIu64 ")", i, v->st->length);
  return 0;
}

bool int_fits(const TypeInfo *t, int64_t x) {
  if (!t->is_signed && x < 0) return false;  // every unsigned type, 'L' and 'Q' too
  if (t->size >= 8) return true;
  int bits = t->size * 8;
  if (t->is_signed) return x >= -(INT64_C(1) << (bits - 1)) && x < (INT64_C(1) << (bits - 1));
  return x >= 0 && x < (INT64_C(1) << bits);
}

int64_t load_int(const TypeInfo *t, const void *p) {
  switch (t->size * (t->is_signed ? 1 : -1)) {
    case 1: return *static_cast<const int8_t *>(p);
    case -1: return *static_cast<const uint8_t *>(p);
    case 2: return *static_cast<const int16_t *>(p);
    case -2: return *static_cast<const uint16_t *>(p);
    case 4: return *static_cast<const int32_t *>(p);
    case -4: return *static_cast<const uint32_t *>(p);
    case 8: return *static_cast<const int64_t *>(p);
    default: return static_cast<int64_t>(*static_cast<const uint64_t *>(p));
  }
}

void store_int(const TypeInfo *t, void *p, int64_t x) {
  switch (t->size) {
    case 1: *static_cast<uint8_t *>(p) = static_cast<uint8_t>(x); break;
    case 2: *static_cast<uint16_t *>(p) = static_cast<uint16_t>(x); break;
    case 4: *static_cast<uint32_t *>(p) = static_cast<uint32_t>(x); break;
    default: *static_cast<uint64_t *>(p) = static_cast<uint64_t>(x); break;
  }
}

template <class T>
int atomic_on(T *p, AtomicOp op, int64_t arg, int64_t *io) {
  T a = static_cast<T>(arg);
  switch (op) {
    case AtomicOp::kLoad: *io = static_cast<int64_t>(__atomic_load_n(p, __ATOMIC_SEQ_CST)); return 0;
    case AtomicOp::kStore: __atomic_store_n(p, a, __ATOMIC_SEQ_CST); return 0;
    case AtomicOp::kExchange:
      *io = static_cast<int64_t>(__atomic_exchange_n(p, a, __ATOMIC_SEQ_CST));
      return 0;
    case AtomicOp::kFetchAdd:
      *io = static_cast<int64_t>(__atomic_fetch_add(p, a, __ATOMIC_SEQ_CST));
      return 0;
    case AtomicOp::kFetchSub:
      *io = static_cast<int64_t>(__atomic_fetch_sub(p, a, __ATOMIC_SEQ_CST));
      return 0;
    case AtomicOp::kCompareExchange: {
      T e = static_cast<T>(*io);
      bool ok = __atomic_compare_exchange_n(p, &e, a, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
      *io = static_cast<int64_t>(e);
      return ok ? 1 : 0;
    }
  }
  return 0;
}

}  // namespace

size_t typecode_size(char tc) {
  const TypeInfo *t = type_of(tc);
  return t ? t->size : 0;
}

static int finish_value(std::unique_ptr<SharedValue> &h, bool is_array, SharedValue **out) {
  h->magic = is_array ? kArrayMagic : kValueMagic;
  h->st = static_cast<ValueState *>(h->ref.payload);
  h->data = static_cast<unsigned char *>(h->ref.payload) + kValueDataOffset;
  h->elem = typecode_size(h->st->typecode);
  const TypeInfo *t = type_of(h->st->typecode);
  h->atomic_kind = t && t->integer ? (t->is_signed ? t->size : -static_cast<int>(t->size)) : 0;
  handle_register(h.get(), is_array ? HandleKind::kArray : HandleKind::kValue);
  *out = h.release();
  return 0;
}

static std::unique_ptr<SharedValue> new_value_handle(bool is_array) {
  // The C types differ only in name: mproc_value and mproc_array derive from SharedValue.
  if (is_array) return std::unique_ptr<SharedValue>(new mproc_array());
  return std::unique_ptr<SharedValue>(new mproc_value());
}

int value_new(char tc, size_t length, const void *init, bool raw, const mproc_lock *lock,
              bool is_array, SharedValue **out) {
  const TypeInfo *t = type_of(tc);
  if (!t) return fail(MPROC_EINVAL, "unknown type code '%c' (one of %s)", tc ? tc : '?',
                      MPROC_TYPECODES);
  if (length == 0) return fail(MPROC_EINVAL, "length is 0");
  if (length > (MPROC_SHM_SIZE_MAX - kValueDataOffset) / t->size)
    return fail(MPROC_EMSGSIZE, "%zu elements of %u bytes are over the limit of %zu bytes", length,
                t->size, MPROC_SHM_SIZE_MAX);
  auto h = new_value_handle(is_array);
  if (int rc = arena_alloc(kValueDataOffset + length * t->size, ObjKind::kValue, &h->ref))
    return rc;
  auto *st = static_cast<ValueState *>(h->ref.payload);
  st->typecode = tc;
  st->length = length;
  st->is_array = is_array ? 1 : 0;
  st->lock_mode = raw ? 0 : lock ? 2 : 1;
  lock_init(&st->lock, true);
  if (init)
    memcpy(static_cast<char *>(h->ref.payload) + kValueDataOffset, init, length * t->size);
  if (!raw) {
    int rc = lock ? lock_handle_dup(lock, true, &h->lock) : lock_handle_embedded(h->ref, 0, &h->lock);
    if (rc) return rc;
  }
  return finish_value(h, is_array, out);
}

int value_export(const SharedValue *v, char *buf, size_t cap) {
  int n = arena_export(v->ref, ObjKind::kValue, 0, buf, cap);
  if (n < 0 || v->st->lock_mode != 2) return n;
  if (static_cast<size_t>(n) + 2 > cap) return fail(MPROC_ENOSPC, "token buffer is too small");
  buf[n] = '+';
  int m = lock_export(v->lock, buf + n + 1, cap - static_cast<size_t>(n) - 1);
  return m < 0 ? m : n + 1 + m;
}

int value_attach(const char *token, bool is_array, SharedValue **out) {
  auto h = new_value_handle(is_array);
  uint64_t inner = 0;
  const char *end = nullptr;
  if (int rc = arena_attach(token, ObjKind::kValue, kind_bit(ObjKind::kValue), &h->ref, &inner,
                            &end))
    return rc;
  auto *st = static_cast<ValueState *>(h->ref.payload);
  if (inner != 0) return fail(MPROC_EINVAL, "malformed token: not a value");
  if (st->is_array != (is_array ? 1 : 0))
    return fail(MPROC_EINVAL, "the token names %s, not %s", st->is_array ? "an array" : "a value",
                is_array ? "an array" : "a value");
  int rc = 0;
  if (st->lock_mode == 2) {
    rc = lock_attach_trailing(end, "value", &h->lock);
  } else {
    if (*end != '\0') return fail(MPROC_EINVAL, "malformed token: unexpected data after the value");
    if (st->lock_mode == 1) rc = lock_handle_embedded(h->ref, 0, &h->lock);
  }
  if (rc) return rc;
  return finish_value(h, is_array, out);
}

void value_free(SharedValue *v) {
  handle_unregister(v);
  if (v->lock) lock_free(v->lock);
  v->magic = 0;
  delete v;
}

int value_get(SharedValue *v, size_t i, void *out) {
  if (int rc = check_index(v, i)) return rc;
  ValueLock g(v);
  memcpy(out, v->data + i * v->elem, v->elem);
  return 0;
}

int value_set(SharedValue *v, size_t i, const void *in) {
  if (int rc = check_index(v, i)) return rc;
  ValueLock g(v);
  memcpy(v->data + i * v->elem, in, v->elem);
  return 0;
}

int value_get_double(SharedValue *v, size_t i, double *out) {
  if (int rc = check_index(v, i)) return rc;
  const TypeInfo *t = type_of(v->st->typecode);
  ValueLock g(v);
  const void *p = v->data + i * v->elem;
  if (t->code == 'f') *out = *static_cast<const float *>(p);
  else if (t->code == 'd') *out = *static_cast<const double *>(p);
  else *out = static_cast<double>(load_int(t, p));
  return 0;
}

int value_set_double(SharedValue *v, size_t i, double x) {
  if (int rc = check_index(v, i)) return rc;
  const TypeInfo *t = type_of(v->st->typecode);
  void *p = v->data + i * v->elem;
  if (t->code == 'd') {
    ValueLock g(v);
    *static_cast<double *>(p) = x;
    return 0;
  }
  if (t->code == 'f') {
    if (std::isfinite(x) && std::fabs(x) > 3.4028234663852886e38)
      return fail(MPROC_ERANGE, "%g is out of the range of a float", x);
    ValueLock g(v);
    *static_cast<float *>(p) = static_cast<float>(x);
    return 0;
  }
  if (!std::isfinite(x) || x != std::trunc(x) || x < -9.2233720368547758e18 ||
      x >= 9.2233720368547758e18 || !int_fits(t, static_cast<int64_t>(x)))
    return fail(MPROC_ERANGE, "%g is not representable in type '%c'", x, t->code);
  ValueLock g(v);
  store_int(t, p, static_cast<int64_t>(x));
  return 0;
}

int value_get_int64(SharedValue *v, size_t i, int64_t *out) {
  if (int rc = check_index(v, i)) return rc;
  const TypeInfo *t = type_of(v->st->typecode);
  if (t->code == 'f' || t->code == 'd')
    return fail(MPROC_EINVAL, "type '%c' is not an integer type", t->code);
  int64_t x;
  {
    ValueLock g(v);
    x = load_int(t, v->data + i * v->elem);
  }
  if (!t->is_signed && x < 0)  // an 8-byte unsigned value over INT64_MAX
    return fail(MPROC_ERANGE, "%" PRIu64 " of type '%c' is over INT64_MAX (read it raw)",
                static_cast<uint64_t>(x), t->code);
  *out = x;
  return 0;
}

int value_set_int64(SharedValue *v, size_t i, int64_t x) {
  if (int rc = check_index(v, i)) return rc;
  const TypeInfo *t = type_of(v->st->typecode);
  if (t->code == 'f' || t->code == 'd')
    return fail(MPROC_EINVAL, "type '%c' is not an integer type", t->code);
  if (!int_fits(t, x))
    return fail(MPROC_ERANGE, "%" PRId64 " is out of the range of type '%c'", x, t->code);
  ValueLock g(v);
  store_int(t, v->data + i * v->elem, x);
  return 0;
}

int value_read(SharedValue *v, size_t start, size_t count, void *out) {
  if (start > v->st->length || count > v->st->length - start)
    return fail(MPROC_ERANGE, "slice [%zu, %zu + %zu) out of range (length %" PRIu64 ")", start,
                start, count, v->st->length);
  ValueLock g(v);
  memcpy(out, v->data + start * v->elem, count * v->elem);
  return 0;
}

int value_write(SharedValue *v, size_t start, size_t count, const void *in) {
  if (start > v->st->length || count > v->st->length - start)
    return fail(MPROC_ERANGE, "slice [%zu, %zu + %zu) out of range (length %" PRIu64 ")", start,
                start, count, v->st->length);
  ValueLock g(v);
  memcpy(v->data + start * v->elem, in, count * v->elem);
  return 0;
}

int value_atomic(SharedValue *v, AtomicOp op, int64_t arg, int64_t *io) {
  const TypeInfo *t = type_of(v->st->typecode);
  if (!t->integer)
    return fail(MPROC_EINVAL, "atomic operations need an integer type, not '%c'", t->code);
  // int64_t cannot name an 8-byte unsigned value over INT64_MAX: atomics take (and give) those
  // as their bit patterns; narrower values are range-checked as the conversions are.
  auto fits = [t](int64_t x) { return t->size >= 8 || int_fits(t, x); };
  if ((op == AtomicOp::kStore || op == AtomicOp::kExchange ||
       op == AtomicOp::kCompareExchange) && !fits(arg))
    return fail(MPROC_ERANGE, "%" PRId64 " is out of the range of type '%c'", arg, t->code);
  if (op == AtomicOp::kCompareExchange && !fits(*io))
    return fail(MPROC_ERANGE, "expected %" PRId64 " is out of the range of type '%c'", *io,
                t->code);
  void *p = v->data;
  int r = 0;
  switch (t->size * (t->is_signed ? 1 : -1)) {
    case 1: r = atomic_on(static_cast<int8_t *>(p), op, arg, io); break;
    case -1: r = atomic_on(static_cast<uint8_t *>(p), op, arg, io); break;
    case 2: r = atomic_on(static_cast<int16_t *>(p), op, arg, io); break;
    case -2: r = atomic_on(static_cast<uint16_t *>(p), op, arg, io); break;
    case 4: r = atomic_on(static_cast<int32_t *>(p), op, arg, io); break;
    case -4: r = atomic_on(static_cast<uint32_t *>(p), op, arg, io); break;
    case 8: r = atomic_on(static_cast<int64_t *>(p), op, arg, io); break;
    default: r = atomic_on(static_cast<uint64_t *>(p), op, arg, io); break;
  }
  return r;
}

}  // namespace mproc
