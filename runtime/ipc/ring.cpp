// The shared-memory ring behind mproc_queue_t.
//
// Layout. One memfd: a header page, then the data ring of `cap` bytes (a power of two). The data
// ring is mapped twice back to back, so a record that runs past the end is still contiguous in
// memory: records are never split and reserve/peek hand out plain pointers.
//
// Records. head and tail are 64-bit byte positions that only grow. A record is an 8-byte header
// {kind, len} and len bytes of payload, padded to 8 (an 8-byte message takes 16 bytes: four to a
// cache line). A message whose record fits in half the ring is one FULL record. A larger one is
// streamed as FIRST (whose payload starts with the message's size), MIDDLE..., LAST, each record
// at most cap/4, so a 256 MiB message goes through a 2 MiB ring while a consumer reads
// it into its buffer. An ABORT record ends a streamed message that will never be finished.
//
// Locks. Producers serialize on a process-shared futex mutex (plock, base/mutex.hpp's MutexWord: one
// CAS to take, one to release, and an owner that died holding it is detected), consumers on
// another (clock). The holder of plock is the only writer and the holder of clock the only reader, so
// the ring itself is single-producer single-consumer: the writer fills bytes past tail and then
// publishes them with a release store of tail; the reader copies bytes before tail and then
// frees them with a release store of head. FIFO order holds per producer (and globally, by the
// order in which producers take plock).
//
// The single-producer path. Most queues have one producer thread at a time, and the two locked
// instructions of plock cost it most of a put: each waits for the put's stores, whose cache lines
// the consumer has just read, to reach the other core, one put after the other. So a thread that
// took plock pb_need times in a row is granted the producer side (pb_owner = its tid) and puts
// without plock: it raises its busy word, checks that it still owns the side, puts, and lowers
// the word, with plain stores and loads. Another producer takes plock, revokes (pb_owner = 0),
// runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) and waits for the owner's busy word to fall:
// the membarrier stands for the full barrier the owner no longer executes (asymmetric Dekker, as
// userspace RCU does), so either the owner saw the revocation or its busy word is visible. It
// then owns the side under plock as before; pb_need doubles at each revocation, so producers that
// take turns stay on plock. Each granted thread has a busy word of its own (pb_slot, given at the
// grant and never shared by two live threads): a former owner may still raise and lower its word
// on its way to finding the grant gone, and must not clear the word of the thread granted since.
// The grantee registers for membarrier first; where membarrier is missing, nobody is granted.
// A granted owner that dies inside a put leaves its busy word up: the revoker (or a consumer
// waiting for the rest of a streamed message) finds its tid gone and recovers as for plock.
//
// Sleeping. A waiter spins briefly (adaptive per handle), then raises the flag c_sleeping /
// p_sleeping and sleeps on the 32-bit futex word data_seq / space_seq. The other side makes its
// change with a seq_cst store and then reads the flag (seq_cst): at least one of the two sees
// the other (Dekker), so a wake-up is never lost, and an idle queue costs no CPU. A granted
// producer has no barrier between its tail store and its look at the flag, so a consumer that
// sleeps while a producer is granted first sleeps at most kFencelessSleep (a wake-up it missed
// costs at most that), then runs the membarrier (which makes the Dekker pair whole again) and
// sleeps for good. The first side
// to find the flag up clears it (exchange), bumps the word and wakes every sleeper; later puts
// and gets find it down and make no system call, so a burst costs one wake-up, not one per
// message, while the sleeper is on its way back.
//
// Crashes. A producer killed while holding plock leaves w_state set: the next owner of plock
// (MPROC_EOWNERDEAD) either uncounts the message (nothing published), leaves it (all published), or
// appends an ABORT record for the part already published. A consumer in the middle of a streamed
// message polls plock every 20 ms and does that recovery itself, so it never waits forever for a
// dead writer. `kReserve` bytes are always kept free so the ABORT record fits. A consumer killed
// while holding clock loses at most the message it was copying: the next consumer skips MIDDLE /
// LAST / ABORT records that have no FIRST before them (orphans) and counts the loss.
#include "ipc/ring.hpp"

#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "base/error.hpp"
#include "base/interrupt.hpp"
#include "base/mutex.hpp"

namespace mproc {
namespace {

constexpr uint64_t kMagic = 0x676e6972636f706dULL;  // "mprocring"
constexpr uint32_t kVersion = 4;
constexpr size_t kHdrBytes = 4096;  // header page (x86-64 and arm64 with 4 KiB pages)
constexpr size_t kRec = 8;          // record header
constexpr size_t kTotal = 8;        // a FIRST record's payload starts with the message's size
constexpr size_t kReserve = kRec;   // always free: room for one ABORT record
constexpr int kSpinMin = 5;    // microseconds of spinning before a futex sleep
constexpr int kSpinMax = 100;
constexpr int kSpinPauses = 64;  // pauses (~20 ns each here) between two looks while spinning
constexpr uint64_t kLookGapNs = 1000;  // a streaming consumer looks at tail at most this often
constexpr uint32_t kSlots = 16;        // busy words of granted threads (see RingHeader)
constexpr uint32_t kBiasFirst = 256;   // plock takes in a row that grant the single-producer path
constexpr uint32_t kBiasMax = 1u << 20;
constexpr double kFencelessSleep = 200e-6;  // first sleep of a consumer while a producer is granted

enum : uint32_t { kFull = 1, kFirst = 2, kMiddle = 3, kLast = 4, kAbort = 5 };

struct RecHdr {
  uint32_t kind;
  uint32_t len;  // bytes of payload (FIRST: kTotal bytes of the message's size, then its part)
};

inline size_t rec_size(size_t len) { return kRec + ((len + 7) & ~static_cast<size_t>(7)); }

// The record at hd lies within the bytes published before tail. Else the ring was written by a
// corrupt or hostile peer: MPROC_EIO, never a read past the ring or head moved past tail.
int check_record(const RecHdr &r, uint64_t hd, uint64_t tail, size_t cap) {
  if (tail - hd <= cap && rec_size(r.len) <= tail - hd) return 0;
  return fail(MPROC_EIO, "corrupt queue ring (record of kind %u and %u bytes at %llu, tail %llu)",
              r.kind, r.len, static_cast<unsigned long long>(hd),
              static_cast<unsigned long long>(tail));
}

// Add one to a counter that only the holder of one lock (plock or clock) changes: a plain store,
// no locked instruction (others only read it).
inline void bump(std::atomic<uint64_t> &c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// membarrier(2): this process registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (reset in a forked
// child, which must register again), or found that it cannot.
bool g_mb_registered = false;
bool g_mb_unavailable = false;
pthread_once_t g_mb_once = PTHREAD_ONCE_INIT;
void mb_reset_after_fork() { g_mb_registered = false; }
void mb_install_reset() { pthread_atfork(nullptr, nullptr, &mb_reset_after_fork); }

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

// Register this process, so that another's heavy_barrier() reaches its threads. False where the
// kernel (or a seccomp filter) has no expedited global membarrier: no grant then (asked once).
bool membarrier_register() {
  if (g_mb_registered) return true;
  if (g_mb_unavailable) return false;
  pthread_once(&g_mb_once, mb_install_reset);
  long q = membarrier(MEMBARRIER_CMD_QUERY);
  if (q < 0 || !(q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
      membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) {
    g_mb_unavailable = true;
    return false;
  }
  g_mb_registered = true;
  return true;
}

// A full barrier on every running thread of every registered process (~tens of us: IPIs). If the
// call fails here (a filter may refuse it to this process), waiting out any store buffer instead.
void heavy_barrier() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}


}  // namespace

// A thread's busy word on the single-producer path, held by one thread at a time (top).
struct RingSlot {
  std::atomic<uint32_t> tid;   // the thread this slot belongs to (set at its grant), 0: none
  std::atomic<uint32_t> busy;  // 1 while that thread makes a put on the single-producer path
};

// Lines are split by writer: config (read-mostly), wake words, producer side, consumer side.
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

  alignas(64) std::atomic<uint32_t> data_seq;  // futex: consumers wait for data
  std::atomic<uint32_t> c_sleeping;  // a consumer sleeps (or is about to) on data_seq
  std::atomic<uint32_t> space_seq;  // futex: producers wait for space or a slot
  std::atomic<uint32_t> p_sleeping;  // a producer sleeps (or is about to) on space_seq
  std::atomic<uint32_t> join_seq;  // futex: join() waits for unfinished == 0
  std::atomic<uint32_t> j_sleeping;
  std::atomic<uint32_t> armed;  // a byte is (or is about to be) in the fifo
  std::atomic<int32_t> p_cpu;   // CPU (+1) of the last put; a consumer does not spin on it
  std::atomic<int32_t> c_cpu;   // CPU (+1) of the last get; a producer does not spin on it

  alignas(64) RingSlot pb_slot[kSlots];  // busy words of granted threads, slot tid % kSlots

  alignas(64) MutexWord plock;
  std::atomic<uint32_t> pb_owner;  // thread granted the single-producer path (top), 0: none
  uint32_t pb_last, pb_streak;     // under plock: the thread that took it last, how often in a row
  uint32_t pb_need;                // takes in a row that earn the grant
  std::atomic<uint64_t> st_grants, st_revokes;
  uint32_t w_state;  // 1 while a message is being written (see recover_producer)
  uint64_t w_msg_start, w_end;
  std::atomic<uint64_t> items_put;
  std::atomic<uint64_t> st_puts;
  alignas(64) std::atomic<uint64_t> tail;

  alignas(64) MutexWord clock;
  uint32_t r_state;  // 1 while a streamed message is being read
  std::atomic<uint64_t> items_got;
  std::atomic<uint64_t> st_gets;
  alignas(64) std::atomic<uint64_t> head;
};
static_assert(sizeof(RingHeader) <= kHdrBytes, "ring header fits its page");
static_assert(sizeof(RecHdr) == kRec, "record header size");

namespace {

// Lock a queue mutex before the deadline. 0 locked, 1 locked and the previous owner died,
// MPROC_ETIMEDOUT (not recorded), or a recorded error.
int queue_lock(MutexWord *m, const Deadline &d, bool poll) {
  int r;
  if (poll) {
    for (int i = 0; i < 64; i++) {  // a put or get holds it for a few hundred nanoseconds
      uint32_t z = 0;
      if (m->word.load(std::memory_order_relaxed) == 0 &&
          m->word.compare_exchange_weak(z, current_tid(), std::memory_order_acquire,
                                        std::memory_order_relaxed))
        return 0;
      cpu_relax();
    }
    r = mutex_lock(m, 0);
  } else {
    r = mutex_lock(m, d.infinite ? -1 : std::max(d.seconds_left(), 1e-9), true);
  }
  switch (r) {
    case 0: return 0;
    case MPROC_EOWNERDEAD: return 1;
    case MPROC_ETIMEDOUT: return MPROC_ETIMEDOUT;
    default: return r < 0 ? r : fail(MPROC_EIO, "queue lock failed (%d)", r);
  }
}

uint64_t random_token() {
  uint64_t t = 0;
  while (t == 0)
    if (getrandom(&t, sizeof t, 0) != sizeof t) t = static_cast<uint64_t>(getpid()) << 32 ^ time(nullptr);
  return t;
}

size_t round_capacity(size_t c) {
  if (c == 0) return kRingDefaultCapacity;
  size_t r = kRingMinCapacity;
  while (r < c && r < kRingMaxCapacity) r <<= 1;
  return r;
}

}  // namespace

// ---- setup ----------------------------------------------------------------------------------

Ring::~Ring() {
  if (h_) {
    if (watching_ == getpid()) h_->watchers.fetch_sub(1);
    if (reserve_pid_ == getpid() && reserving()) cancel();
    if (peek_pid_ == getpid() && peeking()) unlock_consumer();
  }
  if (h_) munmap(h_, map_len_);
}

int Ring::map(UniqueFd memfd, size_t total) {
  if (total <= kHdrBytes) return fail(MPROC_EINVAL, "segment of %zu bytes is not a queue", total);
  size_t cap = total - kHdrBytes;
  size_t len = kHdrBytes + 2 * cap;
  void *base = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return fail_errno(errno, "mmap (reserve)");
  auto *b = static_cast<unsigned char *>(base);
  if (mmap(b, kHdrBytes + cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd.get(), 0) ==
          MAP_FAILED ||
      mmap(b + kHdrBytes + cap, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd.get(),
           kHdrBytes) == MAP_FAILED) {
    int e = errno;
    munmap(base, len);
    return fail_errno(e, "mmap (ring)");
  }
  h_ = reinterpret_cast<RingHeader *>(b);
  data_ = b + kHdrBytes;
  map_len_ = len;
  cap_ = cap;
  mask_ = cap - 1;
  memfd_ = std::move(memfd);
  return 0;
}

static int make_fifo(UniqueFd *out) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return fail_errno(errno, "pipe2");
  UniqueFd r(p[0]), w(p[1]);
  // One O_RDWR descriptor for both ends: it is also what another process opens by name.
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", r.get());
  UniqueFd rw(open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!rw.valid()) return fail_errno(errno, "open fifo through /proc/self/fd");
  *out = std::move(rw);
  return 0;
}

int Ring::create(const RingConfig &cfg, std::unique_ptr<Ring> *out) {
  size_t cap = round_capacity(cfg.capacity);
  UniqueFd fd(memfd_create("mproc-queue", MFD_CLOEXEC));
  if (!fd.valid()) return fail_errno(errno, "memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(kHdrBytes + cap)) < 0)
    return fail_errno(errno, "ftruncate");
  std::unique_ptr<Ring> r(new Ring());
  if (int rc = make_fifo(&r->fifo_)) return rc;
  if (int rc = r->map(std::move(fd), kHdrBytes + cap)) return rc;
  RingHeader *h = new (r->h_) RingHeader();
  h->plock.word.store(0);
  h->clock.word.store(0);
  h->pb_need = kBiasFirst;
  h->version = kVersion;
  h->joinable = cfg.joinable;
  h->token = random_token();
  h->cap = cap;
  h->maxsize = cfg.maxsize;
  h->max_message = cfg.max_message ? cfg.max_message : kRingMessageMax;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  h->magic = kMagic;
  *out = std::move(r);
  return 0;
}

int Ring::attach(UniqueFd memfd, UniqueFd fifo, uint64_t token, std::unique_ptr<Ring> *out) {
  struct stat st;
  if (fstat(memfd.get(), &st) < 0) return fail_errno(errno, "fstat");
  if (!S_ISREG(st.st_mode)) return fail(MPROC_EINVAL, "descriptor is not a queue segment");
  struct stat fs;
  if (fstat(fifo.get(), &fs) < 0) return fail_errno(errno, "fstat");
  if (!S_ISFIFO(fs.st_mode)) return fail(MPROC_EINVAL, "descriptor is not the queue's fifo");
  std::unique_ptr<Ring> r(new Ring());
  if (int rc = r->map(std::move(memfd), static_cast<size_t>(st.st_size))) return rc;
  RingHeader *h = r->h_;
  if (h->magic != kMagic || h->version != kVersion || h->cap != r->cap_)
    return fail(MPROC_EINVAL, "segment is not an mproc queue of this version");
  if (token && h->token != token)
    return fail(MPROC_ENOENT, "queue token does not match (the queue is gone)");
  r->fifo_ = std::move(fifo);
  *out = std::move(r);
  return 0;
}

uint64_t Ring::token() const { return h_->token; }
bool Ring::joinable() const { return h_->joinable != 0; }
bool Ring::closed() const { return h_->closed.load() != 0; }
unsigned char *Ring::at(uint64_t pos) const { return data_ + (pos & mask_); }

// ---- locks and recovery -----------------------------------------------------------------------

int Ring::lock_producer(const Deadline &d, bool poll) {
  int r = queue_lock(&h_->plock, d, poll);
  if (r < 0) return r;
  const bool owner_died = r == 1;
  const uint32_t tid = current_tid();
  const uint32_t o = h_->pb_owner.load(std::memory_order_relaxed);
  if (o != tid) {
    // A plock holder that died may have been half-way through a revocation: finish it.
    if (int rc = take_producer_side(o, owner_died, d, poll)) {
      unlock_producer();
      return rc;
    }
  }
  if (owner_died) recover_producer();
  if (o == tid) return 0;  // the granted thread on the plock path (reserve / commit)
  if (h_->pb_last == tid) {
    if (++h_->pb_streak >= h_->pb_need && claim_slot(tid) && membarrier_register()) {
      h_->pb_owner.store(tid, std::memory_order_relaxed);  // plock's unlock publishes it
      bump(h_->st_grants);
    }
  } else {
    h_->pb_last = tid;
    h_->pb_streak = 1;
  }
  return 0;
}

// Holding plock, the producer side taken: thread tid's busy word, if the slot is free or already
// tid's. A slot whose thread is gone is freed (its word may be up: a thread that died on its way
// to finding its grant revoked; a dead owner's put was recovered when the side was taken). False
// when another live thread holds it: no grant then, and another run of pb_need takes first.
bool Ring::claim_slot(uint32_t tid) {
  RingSlot &s = h_->pb_slot[tid % kSlots];
  const uint32_t t = s.tid.load(std::memory_order_relaxed);
  if (t == tid) return true;
  if (t != 0 && tid_alive(t)) {
    h_->pb_streak = 0;
    return false;
  }
  s.busy.store(0, std::memory_order_relaxed);
  s.tid.store(tid, std::memory_order_relaxed);
  return true;
}

// Holding plock: make the producer side ours. Revoke the grant of thread o (see top) and wait
// for a put it may still be making; after a plock holder died (force: it may have been half-way
// through a revocation), wait for every busy word. A poll does not wait (MPROC_ETIMEDOUT). A
// granted thread that died inside a put is recovered from as a dead plock holder would be.
int Ring::take_producer_side(uint32_t o, bool force, const Deadline &d, bool poll) {
  if (o != 0 || force) {
    h_->pb_owner.store(0);
    heavy_barrier();  // now o either saw the revocation or its busy word is visible (top)
    if (o != 0) {
      bump(h_->st_revokes);
      h_->pb_need = std::min(h_->pb_need * 2, kBiasMax);
    }
    h_->pb_streak = 0;
  }
  if (o == 0 && !force) return 0;  // a revoker waited for the last owner before it let go
  for (uint32_t i = 0; i < kSlots; i++) {
    RingSlot &s = h_->pb_slot[i];
    const uint32_t t = s.tid.load(std::memory_order_relaxed);
    if (t == 0 || (t != o && !force)) continue;
    if (int rc = wait_not_busy(s, t, d, poll)) return rc;
  }
  return 0;
}

// Holding plock: wait until thread t's busy word falls. Growing sleeps (its put may be waiting
// for space), and a look at whether t lives first and then every kDeathCheckSlice.
int Ring::wait_not_busy(RingSlot &s, uint32_t t, const Deadline &d, bool poll) {
  long nap_ns = 2000;
  uint64_t next_check = 0;
  for (int i = 0;; i++) {
    if (s.busy.load(std::memory_order_acquire) == 0) return 0;
    if (i < 100) {
      cpu_relax();
      continue;
    }
    if (now_ns() >= next_check) {
      if (!tid_alive(t)) {
        h_->st_pdeaths.fetch_add(1);
        if (h_->w_state) recover_producer_message();
        s.busy.store(0, std::memory_order_relaxed);
        return 0;
      }
      next_check = now_ns() + static_cast<uint64_t>(kDeathCheckSlice * 1e9);
    }
    if (poll || d.expired()) return MPROC_ETIMEDOUT;
    struct timespec ts = {0, nap_ns};
    nanosleep(&ts, nullptr);
    nap_ns = std::min(nap_ns * 2, 1000000L);
  }
}

// A granted thread may be putting without barriers (top): its own, or one revoked meanwhile.
bool Ring::fenceless_producer() const {
  if (h_->pb_owner.load(std::memory_order_relaxed) != 0) return true;
  for (uint32_t i = 0; i < kSlots; i++)
    if (h_->pb_slot[i].busy.load(std::memory_order_relaxed) != 0) return true;
  return false;
}

int Ring::lock_consumer(const Deadline &d, bool poll) {
  int r = queue_lock(&h_->clock, d, poll);
  if (r == 1) {
    recover_consumer();
    r = 0;
  }
  return r;
}

void Ring::unlock_producer() { mutex_unlock(&h_->plock); }
void Ring::unlock_consumer() { mutex_unlock(&h_->clock); }

void Ring::recover_producer() {
  h_->st_pdeaths.fetch_add(1);
  if (h_->w_state) recover_producer_message();
}

// The message a dead producer was writing (w_state set): count it if it was all published, else
// drop it.
void Ring::recover_producer_message() {
  uint64_t t = h_->tail.load();
  if (t == h_->w_end) {
    h_->st_puts.fetch_add(1);  // it was all published: a complete message
    h_->w_state = 0;
  } else {
    // Part of it was published: an ABORT record (it fits: kReserve is always free) ends it.
    end_message_failed(t > h_->w_msg_start);
  }
}

void Ring::recover_consumer() {
  h_->st_cdeaths.fetch_add(1);
  if (h_->r_state) {  // it was in the middle of a streamed message: that one is lost
    h_->r_state = 0;
    h_->items_got.fetch_add(1);
    h_->st_lost.fetch_add(1);
  }
}

// A consumer waiting for the rest of a message checks that its writer still lives. False when
// nobody can be writing it: plock is free, no live granted thread is in a put, and tail has not
// moved (a message begun by a corrupt or hostile peer).
bool Ring::check_writer_alive() {
  int r = mutex_lock(&h_->plock, 0);  // checks the owner's liveness when it is held
  if (r == MPROC_EOWNERDEAD) {
    recover_producer();
    r = 0;
  }
  if (r != 0) return true;
  // The writer may be a granted thread, which holds no plock: revoke only if it is gone.
  const uint32_t o = h_->pb_owner.load(std::memory_order_relaxed);
  if (o != 0 && h_->pb_slot[o % kSlots].busy.load(std::memory_order_relaxed) != 0 &&
      !tid_alive(o))
    take_producer_side(o, false, Deadline::after(1), false);
  bool writing = false;
  for (RingSlot &s : h_->pb_slot)  // busy, then tail: acquire loads (a put raises busy first)
    writing = writing || (s.busy.load(std::memory_order_acquire) && tid_alive(s.tid.load()));
  writing = writing || h_->tail.load() != h_->head.load(std::memory_order_relaxed);
  unlock_producer();
  return writing;
}

// ---- waiting ----------------------------------------------------------------------------------

// Spin for up to `spin` microseconds (a wake-up through the kernel costs more than that), then
// sleep on the futex. The budget adapts per handle to how long the other side took: it grows
// when the answer came within kSpinMax (a longer spin would have caught it without a wake-up)
// and shrinks (to kSpinMin) when the other side kept us waiting longer anyway.
// `producers`, for a consumer's wait: the ring, whose granted producer may not fence (top).
template <class Ready>
int Ring::sleep_until(int &spin, std::atomic<uint32_t> &seq, std::atomic<uint32_t> &sleeping,
                      const std::atomic<int32_t> *other_cpu, const Ready &ready,
                      const Deadline &d, const Ring *producers, bool interruptible) {
  if (ready()) return 0;
  const InterruptWatch watch;
  const uint64_t t0 = now_ns();
  const uint64_t until = t0 + static_cast<uint64_t>(spin) * 1000;
  // No spinning while the other side last ran on this CPU: it cannot act before we sleep.
  const int32_t cpu = sched_getcpu() + 1;
  if (!other_cpu || other_cpu->load(std::memory_order_relaxed) != cpu) {
    for (int i = 1;; i++) {
      // Look at the other side's line only now and then: each look takes it away from the
      // writer, who must then win it back before its next store (a put or get at a time
      // would otherwise pay one cache-line transfer each).
      for (int k = 0; k < kSpinPauses; k++) cpu_relax();
      if (ready()) return 0;
      if ((i & 3) == 0 &&
          (now_ns() >= until || (other_cpu && other_cpu->load(std::memory_order_relaxed) == cpu)))
        break;
    }
  }
  int rc = MPROC_ETIMEDOUT;
  bool barrier_done = false;
  for (;;) {
    const uint32_t s = seq.load();
    sleeping.store(1);  // then the check: pairs with wake_sleepers() (see top)
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) {
      rc = 0;
      break;
    }
    // A granted producer may miss the flag just raised: sleep briefly, then the membarrier.
    const bool nap = !barrier_done && producers && producers->fenceless_producer();
    const Deadline until = nap ? Deadline::earlier(d, Deadline::after(kFencelessSleep))
                           : interruptible ? InterruptWatch::slice(d) : d;
    int r = futex_wait(&seq, s, until);
    if (ready()) {
      rc = 0;
      break;
    }
    if (nap && r == -ETIMEDOUT && !d.expired()) {
      heavy_barrier();  // from here a granted producer sees the flag, or we see its message
      barrier_done = true;
      continue;
    }
    if (d.expired()) break;
    if (interruptible && watch.fired()) {
      rc = interrupted();
      break;
    }
  }
  const int64_t waited_us = static_cast<int64_t>(now_ns() - t0) / 1000;
  if (rc == 0 && waited_us < kSpinMax)
    spin = std::max(spin, static_cast<int>(waited_us + waited_us / 4 + 1));
  else
    spin = std::max(spin - spin / 4, kSpinMin);
  return rc;
}

// The full barrier between a side's publishing store and its look at the other side's sleep
// flag. It follows the unlock, a locked read-modify-write, which on x86 is a full barrier
// already: there only the compiler must not move the load up.
static inline void full_fence_after_unlock() {
#if defined(__x86_64__) || defined(__i386__)
  std::atomic_signal_fence(std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// Say which CPU this side runs on (a store only when it changed: the line stays shared).
static inline void note_cpu(std::atomic<int32_t> &where) {
  const int32_t cpu = sched_getcpu() + 1;
  if (where.load(std::memory_order_relaxed) != cpu) where.store(cpu, std::memory_order_relaxed);
}

// The other side's flag is up: wake every sleeper of `seq` (one system call per sleep, not
// per message; see top).
static inline void wake_sleepers(std::atomic<uint32_t> &seq, std::atomic<uint32_t> &sleeping) {
  if (sleeping.load() && sleeping.exchange(0)) {
    seq.fetch_add(1);
    futex_wake(&seq, INT_MAX);
  }
}

// Free bytes for the producer. head only grows, so a cached head under-estimates the free space:
// it is re-read (a cache miss on the consumers' line) only when the cached value is not enough.
size_t Ring::free_space(size_t need) {
  const uint64_t t = h_->tail.load(std::memory_order_relaxed);
  uint64_t used = t - head_cache_;
  if (head_cache_ > t || used + kReserve + need > cap_) {
    head_cache_ = h_->head.load(std::memory_order_acquire);
    used = t - head_cache_;
  }
  return used + kReserve >= cap_ ? 0 : cap_ - kReserve - used;
}

// Producer, holding plock: wait for `need` free bytes (and an item slot when `slot`).
int Ring::wait_space(size_t need, bool slot, const Deadline &d, bool poll) {
  auto ready = [&] {
    if (slot && h_->closed.load()) return true;
    if (slot && h_->maxsize &&
        h_->items_put.load(std::memory_order_relaxed) - h_->items_got.load() >= h_->maxsize)
      return false;
    return free_space(need) >= need;
  };
  if (!ready()) {
    if (poll) return MPROC_ETIMEDOUT;
    if (int rc = sleep_until(spin_, h_->space_seq, h_->p_sleeping, &h_->c_cpu, ready, d))
      return rc;
  }
  if (slot && h_->closed.load()) return MPROC_ECLOSED;
  return 0;
}

// Consumer, holding clock: wait for a record, or closed and empty (MPROC_ECLOSED).
int Ring::wait_data(const Deadline &d, bool poll) {
  const uint64_t hd = h_->head.load(std::memory_order_relaxed);
  if (tail_cache_ > hd) return 0;  // tail only grows: bytes before a seen tail are published
  // Everything seen at the last look is taken. A consumer back for more within kLookGapNs of
  // that look keeps pace with the producer message by message: each look takes the tail line
  // (and the record line being filled) from the producer, whose next put must win them back, so
  // both sides pay a cache-line transfer per message. Waiting out the gap lets the producer
  // write a batch undisturbed. The wait is at most kLookGapNs, right after a look, never in a
  // poll.
  if (!poll) {
    uint64_t t = now_ns();
    while (t - last_look_ns_ < kLookGapNs) {
      for (int k = 0; k < 8; k++) cpu_relax();
      t = now_ns();
    }
    last_look_ns_ = t;
  }
  auto ready = [&] {
    tail_cache_ = h_->tail.load(std::memory_order_acquire);
    return tail_cache_ != hd || h_->closed.load();
  };
  if (!ready()) {
    if (poll) return MPROC_ETIMEDOUT;
    if (int rc = sleep_until(spin_, h_->data_seq, h_->c_sleeping, &h_->p_cpu, ready, d, this))
      return rc;
  }
  tail_cache_ = h_->tail.load(std::memory_order_acquire);
  if (tail_cache_ == hd) return MPROC_ECLOSED;
  return 0;
}

// Consumer in the middle of a streamed message: wait for its next part, however long the writer
// takes, but not for a dead writer (which recovery turns into an ABORT record). False when no
// writer is left to finish it (a corrupt ring).
bool Ring::wait_more() {
  const uint64_t hd = h_->head.load(std::memory_order_relaxed);
  if (tail_cache_ > hd) return true;
  auto ready = [&] {
    tail_cache_ = h_->tail.load(std::memory_order_acquire);
    return tail_cache_ != hd;
  };
  while (sleep_until(spin_, h_->data_seq, h_->c_sleeping, &h_->p_cpu, ready,
                     Deadline::after(0.02), this, false) != 0)
    if (!check_writer_alive()) return false;
  return true;
}

// ---- publishing -------------------------------------------------------------------------------

// Returns the record's size. A FIRST record carries `total` before its len bytes of data.
size_t Ring::write_record(uint32_t kind, const void *data, size_t len, uint64_t total) {
  unsigned char *p = at(h_->tail.load(std::memory_order_relaxed));
  const size_t extra = kind == kFirst ? kTotal : 0;
  RecHdr r{kind, static_cast<uint32_t>(len + extra)};
  memcpy(p, &r, kRec);
  if (extra) memcpy(p + kRec, &total, kTotal);
  if (len) memcpy(p + kRec + extra, data, len);
  return rec_size(len + extra);
}

void Ring::publish(uint64_t new_tail) {
  h_->tail.store(new_tail);  // seq_cst: pairs with the sleeper's flag (see top)
  wake_sleepers(h_->data_seq, h_->c_sleeping);
  if (h_->watchers.load()) signal_fifo();
}

void Ring::advance(uint64_t new_head) {
  h_->head.store(new_head);  // seq_cst: pairs with the sleeper's flag (see top)
  wake_sleepers(h_->space_seq, h_->p_sleeping);
}

void Ring::signal_fifo() {
  if (h_->armed.exchange(1) == 0) {
    ssize_t r;
    do r = write(fifo_.get(), "q", 1);
    while (r < 0 && errno == EINTR);  // EAGAIN: the fifo is full, hence readable: fine
  }
}

void Ring::drain_fifo() {
  char buf[256];
  while (read(fifo_.get(), buf, sizeof buf) > 0) {
  }
  h_->armed.store(0);
}

bool Ring::has_data_or_closed() const {
  return h_->tail.load() != h_->head.load() || h_->closed.load();
}

bool Ring::ready_for_get() {
  drain_fifo();
  bool r = has_data_or_closed();
  if (r) signal_fifo();  // keep the fd readable for other pollers while a message waits
  return r;
}

int Ring::fileno() {
  if (watching_ != getpid()) {
    watching_ = getpid();
    h_->watchers.fetch_add(1);
    // A granted producer reads watchers without a barrier after its tail store (top).
    if (fenceless_producer()) heavy_barrier();
    if (has_data_or_closed()) signal_fifo();
  }
  return fifo_.get();
}

// ---- put ----------------------------------------------------------------------------------------

int Ring::begin_message(size_t len) {
  (void)len;
  h_->w_state = 1;
  bump(h_->items_put);
  if (h_->joinable) h_->unfinished.fetch_add(1);
  return 0;
}

// The message begun by begin_message() will not be delivered.
void Ring::end_message_failed(bool published) {
  if (published) {
    write_record(kAbort, nullptr, 0, 0);
    publish(h_->tail.load(std::memory_order_relaxed) + kRec);
  } else {
    h_->items_put.fetch_sub(1);
  }
  if (h_->joinable && h_->unfinished.fetch_sub(1) == 1) {
    h_->join_seq.fetch_add(1);
    futex_wake(&h_->join_seq, INT_MAX);
  }
  h_->w_state = 0;
}

int Ring::put_locked(const void *data, size_t len, const Deadline &d, bool poll) {
  const auto *src = static_cast<const unsigned char *>(data);
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  const size_t whole = rec_size(len);
  if (whole <= cap_ / 2) {
    // Room known from the cached head and no item limit: no call (a put is a few stores)
    if (h_->maxsize || free_space(whole) < whole)
      if (int rc = wait_space(whole, true, d, poll)) return rc;
    h_->w_msg_start = t0;
    h_->w_end = t0 + whole;
    begin_message(len);
    write_record(kFull, src, len, len);
    // Published with a release store; put() looks for sleepers after the unlock, whose locked
    // instruction has already drained the store buffer (one full barrier fewer per put).
    h_->tail.store(t0 + whole, std::memory_order_release);
    wake_owed_ = true;
    h_->w_state = 0;
    bump(h_->st_puts);
    return 0;
  }
  // Streamed: parts of part_max bytes (the last one shorter). A poll needs room for all of it.
  const size_t part_max = cap_ / 4 - kRec - kTotal;
  const size_t nparts = (len + part_max - 1) / part_max;  // at least 2: len > cap / 2 - kRec
  const size_t last = len - (nparts - 1) * part_max;
  const uint64_t end = t0 + kTotal + (nparts - 1) * rec_size(part_max) + rec_size(last);
  if (poll && end - t0 > cap_ - kReserve) return MPROC_ETIMEDOUT;
  if (int rc = wait_space(poll ? end - t0 : rec_size(part_max + kTotal), true, d, poll))
    return rc;
  h_->w_msg_start = t0;
  h_->w_end = end;
  begin_message(len);
  size_t off = 0;
  for (size_t i = 0; i < nparts; i++) {
    size_t part = i + 1 == nparts ? last : part_max;
    if (i > 0) {
      // Once begun, a message is finished even if the queue is closed meanwhile.
      if (int rc = wait_space(rec_size(part), false, d, poll)) {
        end_message_failed(true);
        return rc;
      }
    }
    const size_t rec = write_record(i == 0 ? kFirst : (i + 1 == nparts ? kLast : kMiddle),
                                    src + off, part, len);
    publish(h_->tail.load(std::memory_order_relaxed) + rec);
    off += part;
  }
  h_->w_state = 0;
  bump(h_->st_puts);
  return 0;
}

// The granted thread's put (top): false when the grant was revoked meanwhile (nothing done).
bool Ring::try_put_granted(uint32_t tid, const void *data, size_t len, const Deadline &d,
                           bool poll, int *rc) {
  std::atomic<uint32_t> &busy = h_->pb_slot[tid % kSlots].busy;  // this thread's own (top)
  busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the revoker's membarrier orders these
  if (h_->pb_owner.load(std::memory_order_relaxed) != tid) {
    busy.store(0, std::memory_order_release);
    return false;
  }
  note_cpu(h_->p_cpu);
  *rc = put_locked(data, len, d, poll);
  busy.store(0, std::memory_order_release);
  if (wake_owed_) {
    wake_owed_ = false;
    // No barrier between the tail store and this look: a consumer that goes to sleep meanwhile
    // is covered by its short first sleep and its membarrier (top).
    std::atomic_signal_fence(std::memory_order_seq_cst);
    wake_sleepers(h_->data_seq, h_->c_sleeping);
    if (h_->watchers.load(std::memory_order_relaxed)) signal_fifo();
  }
  return true;
}

int Ring::put(const void *data, size_t len, double timeout) {
  if (len > h_->max_message)
    return fail(MPROC_EMSGSIZE, "message of %zu bytes is over the queue's limit of %zu", len,
                static_cast<size_t>(h_->max_message));
  if (h_->closed.load()) return fail(MPROC_ECLOSED, "queue is closed");
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc;
  const uint32_t tid = current_tid();
  if (h_->pb_owner.load(std::memory_order_relaxed) == tid && g_mb_registered &&
      try_put_granted(tid, data, len, d, poll, &rc)) {
    // done without plock (top)
  } else {
    rc = lock_producer(d, poll);
    if (rc == 0) {
      note_cpu(h_->p_cpu);
      rc = put_locked(data, len, d, poll);
      unlock_producer();
      if (wake_owed_) {
        wake_owed_ = false;
        full_fence_after_unlock();  // tail store, then the flag (top)
        wake_sleepers(h_->data_seq, h_->c_sleeping);
        if (h_->watchers.load()) signal_fifo();
      }
    }
  }
  if (rc == MPROC_ETIMEDOUT)
    return poll ? fail(MPROC_EFULL, "queue is full") : fail(rc, "timeout after %g s", timeout);
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed");
  return rc;
}

// ---- get ----------------------------------------------------------------------------------------

int Ring::get_locked(void *buf, size_t cap, size_t *out_len, void **out_buf, const Deadline &d,
                     bool poll) {
  for (;;) {
    if (int rc = wait_data(d, poll)) return rc;
    uint64_t hd = h_->head.load(std::memory_order_relaxed);
    RecHdr r;
    memcpy(&r, at(hd), kRec);
    if (int rc = check_record(r, hd, tail_cache_, cap_)) return rc;
    if (r.kind == kMiddle || r.kind == kLast || r.kind == kAbort) {  // orphan: skip
      advance(hd + rec_size(r.len));
      continue;
    }
    if (r.kind != kFull && r.kind != kFirst)
      return fail(MPROC_EIO, "corrupt queue record (kind %u at %llu)", r.kind,
                  static_cast<unsigned long long>(hd));
    const unsigned char *payload = at(hd) + kRec;
    size_t total = r.len, first = r.len;
    if (r.kind == kFirst) {
      if (r.len < kTotal)
        return fail(MPROC_EIO, "corrupt queue record (FIRST of %u bytes at %llu)", r.len,
                    static_cast<unsigned long long>(hd));
      uint64_t t;
      memcpy(&t, payload, kTotal);
      total = static_cast<size_t>(t);
      payload += kTotal;
      first = r.len - kTotal;
      if (first > total || total > kRingMessageMax)
        return fail(MPROC_EIO, "corrupt queue record (FIRST of %zu bytes of %zu at %llu)", first,
                    total, static_cast<unsigned long long>(hd));
    }
    unsigned char *dst;
    if (out_buf) {
      dst = static_cast<unsigned char *>(malloc(total ? total : 1));
      if (!dst) return fail(MPROC_ENOMEM, "cannot allocate %zu bytes for a message", total);
    } else {
      if (total > cap) {
        *out_len = total;
        return fail(MPROC_EMSGSIZE, "message of %zu bytes does not fit the buffer of %zu bytes",
                    total, cap);
      }
      dst = static_cast<unsigned char *>(buf);
    }
    if (first) memcpy(dst, payload, first);
    if (r.kind == kFull) {
      bump(h_->items_got);
      h_->head.store(hd + rec_size(r.len), std::memory_order_release);
      wake_owed_ = true;  // get() looks for sleeping producers after the unlock (as put())
    } else {
      bool ok = true;
      size_t off = first;
      h_->r_state = 1;
      advance(hd + rec_size(r.len));
      while (off < total) {
        if (!wait_more()) {  // nobody is writing the rest (a corrupt ring)
          ok = false;
          break;
        }
        hd = h_->head.load(std::memory_order_relaxed);
        RecHdr m;
        memcpy(&m, at(hd), kRec);
        if (check_record(m, hd, tail_cache_, cap_)) {  // reported again by the next look
          ok = false;
          break;
        }
        if ((m.kind == kMiddle || m.kind == kLast) && off + m.len <= total) {
          memcpy(dst + off, at(hd) + kRec, m.len);
          off += m.len;
          advance(hd + rec_size(m.len));
          continue;
        }
        if (m.kind == kAbort) advance(hd + kRec);
        ok = false;  // ABORT (writer died or gave up): drop what we have
        break;
      }
      bump(h_->items_got);
      h_->r_state = 0;
      if (!ok) {
        h_->st_dropped.fetch_add(1);
        if (out_buf) free(dst);
        continue;
      }
    }
    bump(h_->st_gets);
    *out_len = total;
    if (out_buf) *out_buf = dst;
    return 0;
  }
}

int Ring::get(void *buf, size_t cap, size_t *out_len, void **out_buf, double timeout) {
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc = MPROC_ETIMEDOUT;
  if (!poll || has_data_or_closed()) {
    rc = lock_consumer(d, poll);
    if (rc == 0) {
      note_cpu(h_->c_cpu);
      rc = get_locked(buf, cap, out_len, out_buf, d, poll);
      unlock_consumer();
      if (wake_owed_) {
        wake_owed_ = false;
        full_fence_after_unlock();  // head store, then the flag
        wake_sleepers(h_->space_seq, h_->p_sleeping);
      }
    }
  }
  if (rc == MPROC_ETIMEDOUT) {
    if (poll && watching_ == getpid() && h_->watchers.load()) ready_for_get();
    return poll ? fail(MPROC_EEMPTY, "queue is empty") : fail(rc, "timeout after %g s", timeout);
  }
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed and empty");
  return rc;
}

// ---- zero-copy ------------------------------------------------------------------------------------

int Ring::reserve(size_t len, void **out, double timeout) {
  if (len > h_->max_message)
    return fail(MPROC_EMSGSIZE, "message of %zu bytes is over the queue's limit", len);
  if (rec_size(len) > cap_ / 2)
    return fail(MPROC_EMSGSIZE, "%zu bytes is over half the ring (%zu bytes): use put", len, cap_);
  if (h_->closed.load()) return fail(MPROC_ECLOSED, "queue is closed");
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc = lock_producer(d, poll);
  if (rc == 0) {
    rc = wait_space(rec_size(len), true, d, poll);
    if (rc) unlock_producer();
  }
  if (rc == MPROC_ETIMEDOUT)
    return poll ? fail(MPROC_EFULL, "queue is full") : fail(rc, "timeout after %g s", timeout);
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed");
  if (rc) return rc;
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  h_->w_msg_start = t0;
  h_->w_end = t0 + rec_size(len);
  begin_message(len);
  write_record(kFull, nullptr, 0, len);
  reserved_ = len;
  reserve_pid_ = getpid();
  *out = at(t0) + kRec;
  return 0;
}

int Ring::commit(size_t len) {
  if (len > reserved_)
    return fail(MPROC_EINVAL, "commit of %zu bytes is over the %zu reserved", len, reserved_);
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  RecHdr r{kFull, static_cast<uint32_t>(len)};
  memcpy(at(t0), &r, kRec);
  h_->w_end = t0 + rec_size(len);
  publish(t0 + rec_size(len));
  h_->w_state = 0;
  bump(h_->st_puts);
  reserved_ = SIZE_MAX;
  unlock_producer();
  return 0;
}

int Ring::cancel() {
  end_message_failed(false);
  reserved_ = SIZE_MAX;
  unlock_producer();
  return 0;
}

int Ring::peek(const void **out, size_t *out_len, double timeout) {
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  int rc = MPROC_ETIMEDOUT;
  if (!poll || has_data_or_closed()) {
    rc = lock_consumer(d, poll);
    while (rc == 0) {
      rc = wait_data(d, poll);
      if (rc) break;
      uint64_t hd = h_->head.load(std::memory_order_relaxed);
      RecHdr r;
      memcpy(&r, at(hd), kRec);
      if ((rc = check_record(r, hd, tail_cache_, cap_))) break;
      if (r.kind == kMiddle || r.kind == kLast || r.kind == kAbort) {
        advance(hd + rec_size(r.len));
        continue;
      }
      if (r.kind == kFirst) {
        uint64_t total = 0;
        if (r.len >= kTotal) memcpy(&total, at(hd) + kRec, kTotal);
        *out_len = static_cast<size_t>(total);
        unlock_consumer();
        return fail(MPROC_EMSGSIZE, "message of %zu bytes is streamed in parts: use get",
                    static_cast<size_t>(total));
      }
      *out = at(hd) + kRec;
      *out_len = r.len;
      peek_len_ = r.len;
      peek_pid_ = getpid();
      return 0;
    }
    if (rc) unlock_consumer();
  }
  if (rc == MPROC_ETIMEDOUT)
    return poll ? fail(MPROC_EEMPTY, "queue is empty") : fail(rc, "timeout after %g s", timeout);
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed and empty");
  return rc;
}

int Ring::release() {
  const uint64_t hd = h_->head.load(std::memory_order_relaxed);
  bump(h_->items_got);
  bump(h_->st_gets);
  advance(hd + rec_size(peek_len_));
  peek_len_ = SIZE_MAX;
  unlock_consumer();
  return 0;
}

// ---- state --------------------------------------------------------------------------------------

int Ring::close() {
  h_->closed.store(1);
  for (auto *w : {&h_->data_seq, &h_->space_seq, &h_->join_seq}) {
    w->fetch_add(1);
    futex_wake(w, INT_MAX);
  }
  if (h_->watchers.load()) signal_fifo();
  return 0;
}

size_t Ring::qsize() const {
  uint64_t got = h_->items_got.load();
  uint64_t put = h_->items_put.load();
  return put > got ? static_cast<size_t>(put - got) : 0;
}

bool Ring::full() const {
  if (h_->maxsize && qsize() >= h_->maxsize) return true;
  // Less than a quarter free: a streamed part (cap/4) no longer fits, so a put may block.
  uint64_t used = h_->tail.load() - h_->head.load();
  return used + kReserve + cap_ / 4 > cap_;
}

int Ring::task_done() {
  uint64_t u = h_->unfinished.load();
  do {
    if (u == 0) return fail(MPROC_EINVAL, "task_done() called more times than items were put");
  } while (!h_->unfinished.compare_exchange_weak(u, u - 1));
  if (u == 1) {
    h_->join_seq.fetch_add(1);
    futex_wake(&h_->join_seq, INT_MAX);
  }
  return 0;
}

int Ring::join(double timeout) {
  auto ready = [&] { return h_->unfinished.load() == 0; };
  if (ready()) return 0;
  if (timeout == 0) return fail(MPROC_ETIMEDOUT, "%llu tasks unfinished",
                                static_cast<unsigned long long>(h_->unfinished.load()));
  int spin = kSpinMin;
  const int rc = sleep_until(spin, h_->join_seq, h_->j_sleeping, nullptr, ready,
                             Deadline::after(timeout));
  if (rc == MPROC_EINTR) return rc;
  if (rc != 0)
    return fail(MPROC_ETIMEDOUT, "timeout after %g s with %llu tasks unfinished", timeout,
                static_cast<unsigned long long>(h_->unfinished.load()));
  return 0;
}

// A live thread holding a lock or grant may make a reader wait, as a slow writer would: ids in
// lock and owner words are made ones no thread can have (over pid_max), so the owner is dead.
unsigned char *Ring::overwrite_shared(const unsigned char *p, size_t n) {
  const size_t hn = std::min(n, sizeof(RingHeader));
  memcpy(static_cast<void *>(h_), p, hn);
  auto dead = [](std::atomic<uint32_t> &w) {
    if (w.load() & kMutexTidMask) w.store(w.load() | 0x20000000u);
  };
  dead(h_->plock.word);
  dead(h_->clock.word);
  dead(h_->pb_owner);
  for (RingSlot &s : h_->pb_slot) dead(s.tid);
  memcpy(at(h_->head.load()), p + hn, std::min(n - hn, cap_));
  return data_ + 2 * cap_;
}

RingStats Ring::stats() const {
  return RingStats{h_->st_puts.load(),    h_->st_gets.load(),    h_->st_pdeaths.load(),
                   h_->st_cdeaths.load(),  h_->st_dropped.load(), h_->st_lost.load(),
                   h_->st_grants.load(),   h_->st_revokes.load()};
}

}  // namespace mproc
