// The queue ring's shared layout and the helpers its two source files share: ring.cpp (setup,
// records, put and get) and ring_sides.cpp (locks, the single-thread grants, crash recovery,
// waiting). The protocol is described at the top of ring.cpp. Internal to runtime/ipc.
#pragma once
#include <sched.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/futex.hpp"
#include "base/mutex.hpp"
#include "ipc/bigmsg.hpp"

namespace mproc {

constexpr uint64_t kRingMagic = 0x676e6972636f706dULL;  // "mprocring"
constexpr uint32_t kRingVersion = 7;  // 7: groups on 128-byte pairs of lines; 6: cb_*
constexpr size_t kHdrBytes = 4096;  // header page (x86-64 and arm64 with 4 KiB pages)
constexpr size_t kRec = 8;          // record header
constexpr size_t kReserve = kRec;   // kept free (a margin; no record needs it any more)
constexpr int kSpinMin = 5;         // microseconds of spinning before a futex sleep
constexpr int kSpinMax = 100;
constexpr int kSpinPauses = 64;        // pauses (~20 ns each here) between two looks while spinning
constexpr uint64_t kLookGapNs = 1000;  // a consumer keeping pace looks at tail at most this often
constexpr size_t kRoomBatch = 16 * 1024;  // a producer of a full ring waits for this much room
constexpr uint64_t kBatchWaitNs = 50000;  // ... spinning for at most this long
constexpr uint32_t kSlots = 16;        // busy words of granted threads (see RingHeader)
constexpr uint32_t kBiasFirst = 256;   // lock takes in a row that grant a side's single-thread path
constexpr uint32_t kBiasMax = 1u << 20;
constexpr double kFencelessSleep = 200e-6;  // first sleep of one side while the other is granted
// A message whose record finds no room in the ring for kRoomWait goes out of line from this size
// on (smaller ones wait for room: an extent costs a 64 KiB grain and a system call or two).
constexpr size_t kOutOfLineMin = 64 * 1024;
// How long a put waits for a reader at work: for room in the ring (a message from kOutOfLineMin
// on), or for out-of-line memory to come back while kBigBudget bytes or kBigInFlight messages
// are held (see top: a handle keeps 16 extents mapped).
constexpr double kRoomWait = 2e-3;
constexpr uint64_t kBigBudget = uint64_t{32} << 20;
constexpr uint64_t kBigInFlight = 8;

// Record kinds. 2..5 were the parts of streamed messages (version 4): refused as corrupt now.
enum : uint32_t { kFull = 1, kBig = 6 };

struct RecHdr {
  uint32_t kind;
  uint32_t len;  // bytes of payload (kBig: sizeof(BigRef))
};

// The payload of a kBig record: the message's extent (bigmsg.hpp) and its size.
struct BigRef {
  uint64_t off, len, size;
};

inline size_t rec_size(size_t len) { return kRec + ((len + 7) & ~static_cast<size_t>(7)); }

// A thread's busy word on a single-thread path, held by one thread at a time.
struct RingSlot {
  std::atomic<uint32_t> tid;   // the thread this slot belongs to (set at its grant), 0: none
  std::atomic<uint32_t> busy;  // 1 while that thread makes a put (get) on the single-thread path
};

// The header is split by writer into groups of 128 bytes (kPair), each on a pair of cache lines
// of its own: config (read-mostly), wake words (read by both sides at every message, written
// only around a sleep), the producers' busy words, the consumers' busy words, the producer side,
// tail, the consumer side, head. A pair, not a line: the L2 prefetcher of a core that reads one
// line of a pair fetches the other line too (AMD Zen's up/down prefetcher; Intel's spatial one),
// so a line the producer writes at every put must not share a pair with one the consumer reads
// at every get, or each put waits for that line to come back.
constexpr size_t kPair = 128;
struct RingHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t joinable;
  uint64_t token;
  uint64_t cap;
  uint64_t maxsize;
  uint64_t max_message;
  std::atomic<uint32_t> closed;
  std::atomic<uint32_t> watchers;  // handles that asked for the pollable fd
  std::atomic<uint64_t> st_pdeaths, st_cdeaths, st_dropped, st_lost;
  std::atomic<uint64_t> unfinished;  // joinable: puts not yet matched by task_done

  alignas(kPair) std::atomic<uint32_t> data_seq;  // futex: consumers wait for data
  std::atomic<uint32_t> c_sleeping;  // a consumer sleeps (or is about to) on data_seq
  std::atomic<uint32_t> space_seq;   // futex: producers wait for space or a slot
  std::atomic<uint32_t> p_sleeping;  // a producer sleeps (or is about to) on space_seq
  std::atomic<uint32_t> join_seq;    // futex: join() waits for unfinished == 0
  std::atomic<uint32_t> j_sleeping;
  std::atomic<uint32_t> armed;  // a byte is (or is about to be) in the fifo
  std::atomic<int32_t> p_cpu;   // CPU (+1) of the last put; a consumer does not spin on it
  std::atomic<int32_t> c_cpu;   // CPU (+1) of the last get; a producer does not spin on it

  alignas(kPair) RingSlot pb_slot[kSlots];  // busy words of granted producers, slot tid % kSlots
  alignas(kPair) RingSlot cb_slot[kSlots];  // the same for granted consumers

  alignas(kPair) MutexWord plock;
  std::atomic<uint32_t> pb_owner;  // thread granted the single-producer path, 0: none
  uint32_t pb_last, pb_streak;     // under plock: the thread that took it last, how often in a row
  uint32_t pb_need;                // takes in a row that earn the grant
  std::atomic<uint64_t> st_grants, st_revokes;
  // Where tail goes when the message being put is published; equal to tail while none is
  // (begin_message() moves it on, a publication or a withdrawal brings tail and it together).
  // So w_end != tail says a message is under way (recover_producer_message).
  std::atomic<uint64_t> w_end;
  Extent w_big;  // the extent of the message being written, if it has one
  std::atomic<uint64_t> items_put;  // messages begun and not withdrawn (stats' puts: see stats())
  alignas(kPair) std::atomic<uint64_t> tail;

  alignas(kPair) MutexWord clock;
  std::atomic<uint32_t> cb_owner;  // thread granted the single-consumer path, 0: none
  uint32_t cb_last, cb_streak;     // under clock: as pb_last, pb_streak
  uint32_t cb_need;
  std::atomic<uint64_t> st_cgrants, st_crevokes;
  uint32_t r_state;  // 1 while an out-of-line message is being copied out (r_big, at r_head)
  uint64_t r_head;
  Extent r_big;
  std::atomic<uint64_t> items_got;
  std::atomic<uint64_t> st_gets;
  alignas(kPair) std::atomic<uint64_t> head;

  alignas(kPair) BigShared big;  // the out-of-line messages' extents (bigmsg.hpp)
};
static_assert(sizeof(RingHeader) <= kHdrBytes, "ring header fits its page");
static_assert(sizeof(RecHdr) == kRec, "record header size");

// One side's single-thread grant (ring.cpp, "The single-thread paths"), as fields of the header:
// the producer's pb_* under plock, the consumer's cb_* under clock. Process-local, made per call.
struct RingGrant {
  std::atomic<uint32_t> &owner;
  RingSlot *slots;
  uint32_t &last, &streak, &need;
  std::atomic<uint64_t> &grants, &revokes;
  bool consumer;
};
inline RingGrant producer_grant(RingHeader *h) {
  return RingGrant{h->pb_owner, h->pb_slot, h->pb_last, h->pb_streak, h->pb_need,
                   h->st_grants, h->st_revokes, false};
}
inline RingGrant consumer_grant(RingHeader *h) {
  return RingGrant{h->cb_owner, h->cb_slot, h->cb_last, h->cb_streak, h->cb_need,
                   h->st_cgrants, h->st_crevokes, true};
}

// The side's granted thread may be working without barriers (ring.cpp): it holds the grant, or
// one revoked meanwhile is still on its way out.
inline bool grant_fenceless(const RingGrant &g) {
  if (g.owner.load(std::memory_order_relaxed) != 0) return true;
  for (uint32_t i = 0; i < kSlots; i++)
    if (g.slots[i].busy.load(std::memory_order_relaxed) != 0) return true;
  return false;
}

// Helpers of the fast paths (ring_fast.hpp): inlined whatever the compiler's budget says, since a
// call would make those paths save registers.
#define MPROC_RING_INLINE inline __attribute__((always_inline))

// memcpy of a message's bytes, inline for the small ones (up to 16 bytes: two overlapping
// loads and stores, no call into the C library); both ranges are exactly n bytes long.
MPROC_RING_INLINE void copy_msg(void *dst, const void *src, size_t n) {
  auto *d = static_cast<unsigned char *>(dst);
  auto *s = static_cast<const unsigned char *>(src);
  if (n > 16) {
    memcpy(d, s, n);
  } else if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    memcpy(d, &a, 4);
    memcpy(d + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  }
}

// Add one to a counter that only the holder of one lock (plock or clock) changes: a plain store,
// no locked instruction (others only read it).
MPROC_RING_INLINE void bump(std::atomic<uint64_t> &c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// Messages up to this size take the fast paths (Ring::put_fast, get_fast), copied there without a
// call: a call (or `rep movsb`, with its fixed registers) makes a function save registers, and
// every store counts there (see put_fast).
constexpr size_t kFastMax = 4096;

// copy_msg() for the fast paths (n <= kFastMax): above 16 bytes, 16 at a time, the last 16
// overlapping. The empty asm keeps the compiler from turning the loop back into a memcpy call.
MPROC_RING_INLINE void copy_fast(void *dst, const void *src, size_t n) {
  if (n <= 16) {
    copy_msg(dst, src, n);
    return;
  }
  auto *d = static_cast<unsigned char *>(dst);
  auto *s = static_cast<const unsigned char *>(src);
  struct B16 {
    unsigned char b[16];
  } v;
  for (size_t i = 0; i + 16 < n; i += 16) {
    memcpy(&v, s + i, 16);
    memcpy(d + i, &v, 16);
    asm("" : "+r"(i));
  }
  memcpy(&v, s + n - 16, 16);
  memcpy(d + n - 16, &v, 16);
}

// Write a FULL record of n <= 16 bytes at p (8-aligned) in as few stores as may be: the header
// and up to 8 bytes of payload (the padding zeroed) as one 16-byte store, then the rest of a
// longer one as one 8-byte store. A small put is bound by stores (put_fast), the header and the
// payload used to be three.
MPROC_RING_INLINE void write_small_record(unsigned char *p, const void *src, size_t n) {
  const RecHdr r{kFull, static_cast<uint32_t>(n)};
#if defined(__x86_64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  auto *s = static_cast<const unsigned char *>(src);
  uint64_t hdr, lo;
  memcpy(&hdr, &r, kRec);
  if (n >= 8) {
    memcpy(&lo, s, 8);
  } else if (n >= 4) {  // two 4-byte loads that overlap: the bytes they share are the same
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    lo = a | static_cast<uint64_t>(b) << ((n - 4) * 8);
  } else if (n > 0) {
    lo = s[0] | static_cast<uint64_t>(s[n / 2]) << (n / 2 * 8) |
         static_cast<uint64_t>(s[n - 1]) << ((n - 1) * 8);
  } else {
    lo = 0;
  }
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p),
                   _mm_set_epi64x(static_cast<long long>(lo), static_cast<long long>(hdr)));
  if (n > 8) {
    uint64_t hi;
    memcpy(&hi, s + n - 8, 8);
    memcpy(p + kRec + n - 8, &hi, 8);
  }
#else
  memcpy(p, &r, kRec);
  copy_msg(p + kRec, src, n);
#endif
}

// The record at hd lies within the bytes published before tail: 0, else MPROC_EIO (recorded).
int check_record(const RecHdr &r, uint64_t hd, uint64_t tail, size_t cap);

// membarrier(2) for the single-thread paths (ring_sides.cpp). True once this process (a forked
// child registers again) may be granted: the kernel has the expedited global command.
extern std::atomic<bool> g_mb_registered;
bool membarrier_register();
// A full barrier on every running thread of every registered process (asymmetric Dekker).
void heavy_barrier();

// Lock a queue mutex before the deadline. 0 locked, 1 locked and the previous owner died,
// MPROC_ETIMEDOUT (not recorded), or a recorded error.
int queue_lock(MutexWord *m, const Deadline &d, bool poll);

// The full barrier between a side's publishing store and its look at the other side's sleep
// flag. It follows the unlock, a locked read-modify-write, which on x86 is a full barrier
// already: there only the compiler must not move the load up.
inline void full_fence_after_unlock() {
#if defined(__x86_64__) || defined(__i386__)
  std::atomic_signal_fence(std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// The other side's flag is up: wake every sleeper of `seq` (one system call per sleep, not
// per message; see ring.cpp).
inline void wake_sleepers(std::atomic<uint32_t> &seq, std::atomic<uint32_t> &sleeping) {
  if (sleeping.load() && sleeping.exchange(0)) {
    seq.fetch_add(1);
    futex_wake(&seq, INT_MAX);
  }
}

// The CPU this thread runs on, read from the thread's rseq area where glibc registered one (2.35
// and later: a load, where sched_getcpu() is a call); -1 where there is none.
MPROC_RING_INLINE int32_t rseq_cpu() {
#ifdef RSEQ_SIG
  if (__rseq_size != 0) {
    const auto *rs = reinterpret_cast<const struct rseq *>(
        static_cast<const char *>(__builtin_thread_pointer()) + __rseq_offset);
    return static_cast<int32_t>(__atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED));
  }
#endif
  return -1;
}

// Say which CPU (0..) this side runs on (a store only when it changed: the line stays shared).
MPROC_RING_INLINE void note_cpu_is(std::atomic<int32_t> &where, int32_t cpu) {
  if (where.load(std::memory_order_relaxed) != cpu + 1)
    where.store(cpu + 1, std::memory_order_relaxed);
}
inline void note_cpu(std::atomic<int32_t> &where) {
  const int32_t c = rseq_cpu();
  note_cpu_is(where, c >= 0 ? c : sched_getcpu());
}

}  // namespace mproc
