// Typed values and arrays (multiprocessing.Value / Array) living in arena blocks, beside the
// locks they embed.
//
// A value block: ValueState (with an embedded RLock at offset 0, used unless raw or given another
// lock) then, at kValueDataOffset, `length` elements of the type code's size. Integer values also
// have lock-free atomics (GCC __atomic builtins on the element).
#pragma once
#include <mproc/shm.h>

#include <cstddef>
#include <cstdint>

#include "shm/arena.hpp"
#include "sync/sync.hpp"

namespace mproc {

struct ValueState {
  LockState lock;     // offset 0: the embedded RLock (lock_mode 1)
  char typecode;
  uint8_t lock_mode;  // 0 raw, 1 embedded RLock, 2 another lock object
  uint8_t is_array;
  uint8_t pad;
  uint32_t pad2;
  uint64_t length;
};
constexpr size_t kValueDataOffset = 64;
static_assert(sizeof(ValueState) <= kValueDataOffset, "value header fits before the data");

constexpr uint32_t kValueMagic = 0x56414c55;  // "VALU"
constexpr uint32_t kArrayMagic = 0x41525241;  // "ARRA"

struct SharedValue {
  uint32_t magic = 0;
  ValueState *st = nullptr;
  unsigned char *data = nullptr;
  size_t elem = 0;
  int atomic_kind = 0;  // integer elements: size in bytes, negated when unsigned; else 0
  ObjRef ref;
  mproc_lock *lock = nullptr;  // NULL when raw; owned here, borrowed by users
};

// Element size of a type code, or 0 when unknown.
size_t typecode_size(char tc);

// Make a value (is_array false, length 1) or an array. init: `length` elements or NULL (zeros).
int value_new(char tc, size_t length, const void *init, bool raw, const mproc_lock *lock,
              bool is_array, SharedValue **out);
int value_export(const SharedValue *v, char *buf, size_t cap);
int value_attach(const char *token, bool is_array, SharedValue **out);
void value_free(SharedValue *v);

// Element access under the object's lock (if any). 0 or a recorded error (MPROC_ERANGE index or
// value out of range, MPROC_EINVAL wrong type).
int value_get(SharedValue *v, size_t i, void *out);
int value_set(SharedValue *v, size_t i, const void *in);
int value_get_double(SharedValue *v, size_t i, double *out);
int value_set_double(SharedValue *v, size_t i, double x);
int value_get_int64(SharedValue *v, size_t i, int64_t *out);
int value_set_int64(SharedValue *v, size_t i, int64_t x);
int value_read(SharedValue *v, size_t start, size_t count, void *out);
int value_write(SharedValue *v, size_t start, size_t count, const void *in);

enum class AtomicOp { kLoad, kStore, kExchange, kCompareExchange, kFetchAdd, kFetchSub };
// Lock-free, on integer values only. Returns 0 (1/0 for compare-exchange: swapped or not) or a
// recorded error. *io: the result (load/exchange/fetch: old value) or, for compare-exchange,
// the expected value in and the current value out.
int value_atomic(SharedValue *v, AtomicOp op, int64_t arg, int64_t *io);

// The C shims' inlined fetch_add (delta negated for fetch_sub): false when the value is not an
// integer, for value_atomic to report. Wraps like value_atomic's kFetchAdd.
inline bool value_fetch_add_fast(SharedValue *v, int64_t delta, int64_t *old) {
  void *p = v->data;
  int kind = v->atomic_kind;
  if (__builtin_expect(kind == 8, 1)) {  // 'q', 'l': the usual counter
    *old = __atomic_fetch_add(static_cast<int64_t *>(p), delta, __ATOMIC_SEQ_CST);
    return true;
  }
  switch (kind) {
    case -8:
      *old = static_cast<int64_t>(__atomic_fetch_add(static_cast<uint64_t *>(p),
                                                     static_cast<uint64_t>(delta),
                                                     __ATOMIC_SEQ_CST));
      return true;
    case 4:
      *old = __atomic_fetch_add(static_cast<int32_t *>(p), static_cast<int32_t>(delta),
                                __ATOMIC_SEQ_CST);
      return true;
    case -4:
      *old = __atomic_fetch_add(static_cast<uint32_t *>(p), static_cast<uint32_t>(delta),
                                __ATOMIC_SEQ_CST);
      return true;
    default:
      return false;  // 1- and 2-byte integers, and non-integers: value_atomic
  }
}

}  // namespace mproc

struct mproc_value : mproc::SharedValue {};
struct mproc_array : mproc::SharedValue {};

