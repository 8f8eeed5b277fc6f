// The queue ring's setup: making a ring (its memfd, header and wake-up fifo), mapping it, and
// attaching to one made by another process. The layout and protocol are described in ring.cpp.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <new>

#include "base/error.hpp"
#include "base/mutex.hpp"
#include "ipc/ring.hpp"
#include "ipc/ring_layout.hpp"

namespace mproc {

namespace {

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

int make_fifo(UniqueFd *out) {
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

}  // namespace

// ---- setup ----------------------------------------------------------------------------------

Ring::~Ring() {
  if (h_) {
    if (watching_ == getpid()) h_->watchers.fetch_sub(1);
    if (reserve_pid_ == getpid() && reserving()) cancel();
    if (peek_pid_ == getpid() && peeking()) {  // the message stays in the queue
      h_->r_state = 0;
      unlock_consumer();
    }
  }
  if (h_) munmap(h_, map_len_);
}

BigFile Ring::big_file() const { return BigFile{memfd_.get(), kHdrBytes + cap_}; }

int Ring::map(UniqueFd memfd, size_t cap) {
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

int Ring::create(const RingConfig &cfg, std::unique_ptr<Ring> *out) {
  size_t cap = round_capacity(cfg.capacity);
  // Sealed against shrinking: a reader checks an extent against the file's size once, then
  // maps it; nobody can cut the file under it (bigmsg.hpp).
  UniqueFd fd(memfd_create("mproc-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return fail_errno(errno, "memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(kHdrBytes + cap)) < 0)
    return fail_errno(errno, "ftruncate");
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) < 0) return fail_errno(errno, "F_ADD_SEALS");
  std::unique_ptr<Ring> r(new Ring());
  if (int rc = make_fifo(&r->fifo_)) return rc;
  if (int rc = r->map(std::move(fd), cap)) return rc;
  RingHeader *h = new (r->h_) RingHeader();
  h->plock.word.store(0);
  h->clock.word.store(0);
  h->pb_need = kBiasFirst;
  h->cb_need = kBiasFirst;
  h->version = kRingVersion;
  h->joinable = cfg.joinable;
  h->token = random_token();
  h->cap = cap;
  h->maxsize = cfg.maxsize;
  h->max_message = cfg.max_message ? cfg.max_message : kRingMessageMax;
  big_init(&h->big, r->big_file());
  std::atomic_thread_fence(std::memory_order_seq_cst);
  h->magic = kRingMagic;
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
  // The file is longer than the ring when it holds extents: the header says the ring's size.
  struct {
    uint64_t magic;
    uint32_t version, joinable;
    uint64_t token, cap;
  } id;
  static_assert(sizeof id == 32, "the header starts with these fields");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kHdrBytes || pread(memfd.get(), &id, sizeof id, 0) != static_cast<ssize_t>(sizeof id) ||
      id.magic != kRingMagic || id.version != kRingVersion || id.cap < kRingMinCapacity ||
      id.cap > kRingMaxCapacity || (id.cap & (id.cap - 1)) != 0 || kHdrBytes + id.cap > size)
    return fail(MPROC_EINVAL, "segment is not an mproc queue of this version");
  if (token && id.token != token)
    return fail(MPROC_ENOENT, "queue token does not match (the queue is gone)");
  std::unique_ptr<Ring> r(new Ring());
  if (int rc = r->map(std::move(memfd), static_cast<size_t>(id.cap))) return rc;
  r->fifo_ = std::move(fifo);
  *out = std::move(r);
  return 0;
}

uint64_t Ring::token() const { return h_->token; }
bool Ring::joinable() const { return h_->joinable != 0; }
bool Ring::closed() const { return h_->closed.load() != 0; }
unsigned char *Ring::at(uint64_t pos) const { return data_ + (pos & mask_); }

}  // namespace mproc
