// Out-of-line messages of a queue: a message too large for the ring (or one that would have to
// wait for room in it) is written to an extent of the queue's own memfd, past the ring, and the
// ring carries a reference to it. So a put never waits for a reader, a producer may exit before
// its large messages are read, and whoever has the queue (forked, opened by name, received over
// a socket) can read them: they live in the same file as the ring.
//
// Why extents of the queue's memfd rather than a segment per message: a memfd of the writer's
// could not be opened by an unrelated reader (or by anyone) once the writer exited, unless the
// fd travelled with the message; a named block (/dev/shm) would outlive every process after a
// crash. The queue's memfd lives exactly as long as some process holds the queue, so nothing is
// lost while the queue exists and nothing remains once every process freed it or died.
//
// Layout. The file is the header page, the ring, then extents: [off, off + len) with off and
// len multiples of kExtentGrain. `end` says how far extents were handed out; the file is grown
// (ftruncate) before `end` moves and never shrinks (sealed with F_SEAL_SHRINK), so a reference
// a reader checked against the file size can be mapped without SIGBUS. Pages are allocated with
// fallocate() before the writer touches them: no memory gives MPROC_ENOMEM, not a SIGBUS.
//
// Reuse. A freed extent goes to a table of free extents in the header (kBigFree entries); it
// keeps its pages (kept populated, so the next message of that size skips the page faults and
// the zeroing) while the kept bytes stay under kBigKeepBytes, else its pages are returned
// (FALLOC_FL_PUNCH_HOLE). An extent that finds the table full is returned and forgotten: its
// range of the file is never used again (a sparse hole costs nothing). Each handle keeps its
// last few extents mapped, so a queue that moves messages of one size maps nothing in the
// steady state.
//
// Crashes. The table changes under a robust futex mutex (`lock`). An extent being handed out is
// first written to the caller's `pending` slot in shared memory (the producer's w_big, the
// consumer's r_big): whoever recovers from a dead producer or consumer frees that slot's extent.
// free_extent() ignores an extent that was never handed out (past `end`) or is already free, so
// recovery may run after a death at any point of an allocation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/mutex.hpp"

namespace mproc {

constexpr size_t kExtentGrain = 64 * 1024;
constexpr uint32_t kBigFree = 32;                          // free extents remembered
constexpr uint64_t kBigKeepBytes = uint64_t{128} << 20;    // free bytes kept populated
constexpr size_t kBigMapCache = 16;                        // extents a handle keeps mapped

struct Extent {
  uint64_t off;
  uint64_t len;
};

struct FreeExtent {
  uint64_t off, len;  // len 0: unused entry
  uint32_t populated;
  uint32_t pad;
};

// The extent allocator's shared state (in the ring's header page).
struct BigShared {
  MutexWord lock;
  uint32_t pad;
  uint64_t end;   // extents were handed out below this (the file is at least this long)
  uint64_t kept;  // bytes of free extents that keep their pages
  std::atomic<uint64_t> live;       // extents handed out and not freed yet
  std::atomic<uint64_t> live_bytes;
  FreeExtent free[kBigFree];
};

// A process's mappings of the last few extents it used, so that a queue moving messages of one
// size maps nothing in the steady state. Not locked: the ring uses one for its producer side
// (under plock) and one for its consumer side (under clock); BigOwner locks its own.
class ExtentMaps {
 public:
  ExtentMaps() = default;
  ~ExtentMaps() { clear(); }
  ExtentMaps(const ExtentMaps &) = delete;
  ExtentMaps &operator=(const ExtentMaps &) = delete;
  // The extent mapped read-write at *out (from the cache or mapped now). With `hold`, the
  // mapping stays until drop(): 0 or a recorded error.
  int map(int fd, const Extent &e, unsigned char **out, bool hold = false);
  // A held mapping is no longer used (it stays cached, or is unmapped if it was not).
  void drop(const Extent &e, unsigned char *addr);
  // Forget a held mapping without unmapping it (the caller replaced what addr maps: a forked
  // child's copy); a later drop() of it unmaps it, a later map() of the extent maps it afresh.
  void detach(const Extent &e, unsigned char *addr);
  void clear();

 private:
  struct Entry {
    uint64_t off = 0, len = 0, used = 0;
    uint32_t holds = 0;
    unsigned char *addr = nullptr;
  };
  Entry cache_[kBigMapCache];
  uint64_t clock_ = 0;
};

// The queue's memfd and where its extents start (past the ring: known to each handle, never
// read from shared memory, which a corrupt peer may have written).
struct BigFile {
  int fd;
  uint64_t base;
};

// Set up the shared state of a new ring.
void big_init(BigShared *b, const BigFile &f);
// Hand out an extent of at least `size` bytes, noted in *pending first (see top). 0 or a
// recorded error (MPROC_ENOMEM, MPROC_EIO).
int alloc_extent(BigShared *b, const BigFile &f, size_t size, Extent *pending, Extent *out);
// Give an extent back (see top: an extent not handed out or already free is ignored).
void free_extent(BigShared *b, const BigFile &f, Extent e);
// A reference read from the ring lies past the ring and within the file: 0, or MPROC_EIO
// (recorded). *file_size caches the file's size (it only grows).
int check_extent(const BigFile &f, const Extent &e, uint64_t *file_size);

}  // namespace mproc
