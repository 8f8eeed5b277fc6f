// Shared memory for users: typed values and arrays (multiprocessing.Value / Array) living in
// arena blocks, and named blocks (multiprocessing.shared_memory.SharedMemory) made with shm_open.
//
// A value block: ValueState (with an embedded RLock at offset 0, used unless raw or given another
// lock) then, at kValueDataOffset, `length` elements of the type code's size. Integer values also
// have lock-free atomics (GCC __atomic builtins on the element).
//
// A named block is the file /dev/shm/mproc-<name> (O_EXCL, mode 0600) of size
// round_up(size, 64) + 64: the user's bytes, then a trailer naming the creator (pid and process
// start time). Lifetime belongs to the creator: attaching never unlinks; the creator unlinks it
// explicitly or at its exit (atexit), and a name whose creator has ended (crashed, or a forked
// child that left with _exit) is removed by the next create/attach/cleanup in any process.
// A leased block (mproc_shm_opts_t.lease) has a table of its users between the user's bytes and
// the trailer instead, and its name follows them; the protocol is described in shm.cpp.
#pragma once
#include <mproc/shm.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "arena.hpp"
#include "sync.hpp"

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
constexpr uint32_t kShmMagic = 0x53484d42;    // "SHMB"

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

namespace mproc {
void shm_unmap(void *addr, size_t len);
struct LeaseHeader;
}

struct mproc_shm {
  uint32_t magic = mproc::kShmMagic;
  std::string name;  // as the user sees it (no "/", no prefix)
  void *addr = nullptr;
  size_t size = 0;      // the user's size
  size_t map_size = 0;  // with the trailer
  bool creator = false;
  mproc::LeaseHeader *lease = nullptr;  // leased blocks: the users' table, inside the mapping
  uint32_t lease_slots = 0;             // its size as mapped (the shared copy is not trusted)
  uint64_t dev = 0, ino = 0;            // leased blocks: the file, to tell it from a namesake
  ~mproc_shm() { mproc::shm_unmap(addr, map_size); }
};

namespace mproc {
constexpr size_t kShmSizeMax = static_cast<size_t>(1) << 40;
// name NULL: a generated unguessable name. lease_users 0: creator-owned; else a leased block
// whose table holds that many processes. 0 or a recorded error.
int shm_create(const char *name, size_t size, unsigned lease_users, mproc_shm **out);
int shm_attach(const char *name, mproc_shm **out);
int shm_unlink(mproc_shm *s);
// Leased: leaves the table, unlinking the name when no live user remains. Then unmaps.
void shm_close(mproc_shm *s);
// Unlink names whose creator (leased: every user) has ended; returns how many.
int shm_cleanup();
// MPROC_EINVAL / MPROC_ENAMETOOLONG for a bad name (recorded), else 0.
int shm_check_name(const char *name);
}  // namespace mproc
