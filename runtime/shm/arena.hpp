// Shared arenas: small shared objects (values, locks, semaphores ...) are blocks carved out of
// memfd segments of kArenaSize bytes, so an object costs a 64-byte header plus its state, not a
// page and a file descriptor. Objects larger than a quarter of an arena get an arena of their own.
//
// Layout of an arena (all in MAP_SHARED memory, so any process that maps it can allocate/free):
//   ArenaHeader | block | block | ...   each block: BlockHeader (64 bytes) + payload (64-aligned)
// The allocator state (bump offset, free list) is guarded by the header's robust mutex; every
// update is one store, so a process killed inside the allocator leaks at most one block.
//
// Lifetime: each block has a reference count in shared memory (one per handle in any process).
// Every handle alive when a process forks gets one more reference for the child (taken in the
// pthread_atfork prepare handler, before fork() returns to a parent that may free at once), so
// either side may free its handle first. A child that ends without freeing keeps its blocks
// reserved (memory only, reclaimed with the arena). When the count reaches 0 the block returns to the free
// list. Each process maps an arena while it has handles into it (local_refs); the memfd and its
// memory go away when the last process unmaps it. Nothing ever appears in /dev/shm.
//
// Export / attach: a token "mproc:<kind>:<pid>:<fd>:<arena id>:<offset>:<serial>:<inner>" names
// the exporting process, its fd of the arena's memfd, a random 64-bit arena id, the block and its
// allocation serial. Another process (forkserver child, pool worker, unrelated program of the same
// user) opens /proc/<pid>/fd/<fd>, which reopens the memfd itself (the kernel allows it to the
// same user, as for ptrace-read access), and checks id, kind and serial, so a stale token fails
// cleanly with MPROC_ENOENT. We chose this over shm_open names because nothing is ever left in
// /dev/shm, even when every process is SIGKILLed; the price is that the exporting process must
// still hold the object (and so its fd) while the other side attaches. A process that already
// maps the arena (same process, fork child) reuses its mapping without opening anything.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mproc {

constexpr size_t kArenaSize = 256 * 1024;  // sparse: only touched pages use memory
constexpr size_t kTokenMax = 256;          // MPROC_TOKEN_MAX in the public headers

enum class ObjKind : uint32_t {
  kValue = 1,
  kLock = 2,
  kSemaphore = 3,
  kCondition = 4,
  kEvent = 5,
  kBarrier = 6,
};

struct Arena;

// A counted reference from a handle to a block. Lives inside the handle (its address is
// registered for the fork hook), so it is neither copied nor moved.
struct ObjRef {
  Arena *arena = nullptr;
  uint64_t offset = 0;  // of the block header in the arena
  uint64_t serial = 0;
  ObjKind kind = ObjKind::kValue;
  void *payload = nullptr;
  ObjRef() = default;
  ~ObjRef();  // releases (see arena_release)
  ObjRef(const ObjRef &) = delete;
  ObjRef &operator=(const ObjRef &) = delete;
  bool valid() const { return payload != nullptr; }
};

// A new zero-filled block of `size` payload bytes. 0 or a recorded error.
int arena_alloc(size_t size, ObjKind kind, ObjRef *out);
// Another reference to the object of `src` (used to tie a condition to its lock).
int arena_dup(const ObjRef &src, ObjRef *out);
// Write one token part for `ref`, exported as an object of kind `as` (a lock may live inside a
// value or condition block: `inner` is its offset in the payload). Returns the length written or
// a recorded error (MPROC_ENOSPC when cap is too small).
int arena_export(const ObjRef &ref, ObjKind as, uint64_t inner, char *buf, size_t cap);
// Attach the object named by one token part, which must have been exported `as` and whose block
// kind must be in `block_kinds` (a mask of 1 << kind). *inner gets the sub-object offset; *end
// points past the part (at '\0' or '+'). 0 or a recorded error (MPROC_EINVAL malformed or wrong
// kind, MPROC_ENOENT freed or exporter gone, MPROC_EACCES).
int arena_attach(const char *token, ObjKind as, uint32_t block_kinds, ObjRef *out,
                 uint64_t *inner, const char **end);
constexpr uint32_t kind_bit(ObjKind k) { return 1u << static_cast<unsigned>(k); }
// Drop the reference (idempotent): frees the block at 0, unmaps the arena when unused here.
void arena_release(ObjRef *ref);
// Arenas mapped by this process (for tests and diagnostics).
size_t arena_count();

}  // namespace mproc
