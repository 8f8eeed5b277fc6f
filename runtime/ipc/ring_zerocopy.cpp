// Zero-copy puts and gets of the queue ring: reserve / commit / cancel write a message in place
// (in the ring, or in an extent of its own when over half the ring), peek / release read one in
// place; each holds its side's lock between the two calls. get_msg hands an out-of-line message
// over in its own extent (BigOwner returns it). The protocol is at the top of ring.cpp.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "ipc/ring.hpp"
#include "ipc/ring_layout.hpp"

namespace mproc {

int Ring::reserve(size_t len, void **out, double timeout) {
  if (len > h_->max_message)
    return fail(MPROC_EMSGSIZE, "message of %zu bytes is over the queue's limit", len);
  if (h_->closed.load()) return fail(MPROC_ECLOSED, "queue is closed");
  const Deadline d = Deadline::after(timeout);
  const bool poll = timeout == 0;
  const bool big = rec_size(len) > cap_ / 2;
  int rc = lock_producer(d, poll);
  if (rc == 0) {
    rc = wait_space(big ? rec_size(sizeof(BigRef)) : rec_size(len), true, d, poll);
    if (rc) unlock_producer();
  }
  if (rc == MPROC_ETIMEDOUT)
    return poll ? fail(MPROC_EFULL, "queue is full") : fail(rc, "timeout after %g s", timeout);
  if (rc == MPROC_ECLOSED) return fail(rc, "queue is closed");
  if (rc) return rc;
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  if (big) {
    unsigned char *p;
    if ((rc = begin_big(len, &p))) {
      unlock_producer();
      return rc;
    }
    *out = p;
  } else {
    begin_message(t0 + rec_size(len));
    *out = at(t0) + kRec;
  }
  reserved_ = len;
  reserve_pid_ = getpid();
  return 0;
}

int Ring::commit(size_t len) {
  if (len > reserved_)
    return fail(MPROC_EINVAL, "commit of %zu bytes is over the %zu reserved", len, reserved_);
  const uint64_t t0 = h_->tail.load(std::memory_order_relaxed);
  if (h_->w_big.len) {
    write_big(len);
  } else {
    const RecHdr r{kFull, static_cast<uint32_t>(len)};
    memcpy(at(t0), &r, kRec);
    h_->w_end.store(t0 + rec_size(len), std::memory_order_relaxed);
  }
  publish(h_->w_end.load(std::memory_order_relaxed));
  h_->w_big = Extent{0, 0};
  reserved_ = SIZE_MAX;
  unlock_producer();
  return 0;
}

int Ring::cancel() {
  free_extent(&h_->big, big_file(), h_->w_big);
  end_message_failed();
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
    const bool locked = rc == 0;
    if (rc == 0) rc = wait_data(d, poll);
    if (rc == 0) {
      const uint64_t hd = h_->head.load(std::memory_order_relaxed);
      RecHdr r;
      memcpy(&r, at(hd), kRec);
      rc = check_record(r, hd, tail_cache_, cap_);
      if (rc == 0 && r.kind == kFull) {
        *out = at(hd) + kRec;
        *out_len = r.len;
      } else if (rc == 0 && r.kind == kBig) {
        Extent x;
        size_t size;
        unsigned char *p = nullptr;
        rc = read_big(hd, at(hd) + kRec, r.len, &x, &size);
        if (rc == 0) rc = cmaps_.map(memfd_.get(), x, &p);
        if (rc == 0) {
          // As a get's copy (top): a death after release() took the record frees the extent.
          h_->r_big = x;
          h_->r_head = hd;
          h_->r_state = 1;
          peek_big_ = x;
          *out = p;
          *out_len = size;
        }
      } else if (rc == 0) {
        rc = fail(MPROC_EIO, "corrupt queue record (kind %u at %llu)", r.kind,
                  static_cast<unsigned long long>(hd));
      }
      if (rc == 0) {
        peek_len_ = r.len;
        peek_pid_ = getpid();
        return 0;
      }
    }
    if (locked) unlock_consumer();
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
  if (peek_big_.len) free_extent(&h_->big, big_file(), peek_big_);
  peek_big_ = Extent{0, 0};
  h_->r_state = 0;
  peek_len_ = SIZE_MAX;
  unlock_consumer();
  return 0;
}

// ---- fork (see BigOwner in ring.hpp) ------------------------------------------------------------

// The live owners of this process, so that a forked child can copy what they hold. A plain
// pthread mutex, taken around the fork with every owner's mu_ (prepare), so the child finds
// none held by a thread that does not exist there.
struct BigOwnerFork {
  static pthread_mutex_t mu;
  static std::vector<BigOwner *> *owners;  // under mu
  static pthread_once_t once;

  static void prepare() {
    pthread_mutex_lock(&mu);
    if (owners)
      for (BigOwner *o : *owners) o->mu_.lock();
  }
  static void parent() {
    if (owners)
      for (BigOwner *o : *owners) o->mu_.unlock();
    pthread_mutex_unlock(&mu);
  }
  static void child() {
    if (owners)
      for (BigOwner *o : *owners) {
        for (const BigOwner::Held &m : o->held_) copy_private(o, m);
        o->mu_.unlock();  // taken by this thread in prepare(): the same thread here
      }
    pthread_mutex_unlock(&mu);
  }
  // Replace the shared mapping at m.addr by private memory holding a copy of its bytes: filled
  // at a new address, then moved over the old mapping in one mremap() (the address stays valid
  // throughout). With no memory for the copy, the child keeps the shared view (nothing else to
  // do in a fork handler, which cannot report an error).
  static void copy_private(BigOwner *o, const BigOwner::Held &m) {
    const size_t len = static_cast<size_t>(m.ext.len);
    void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    memcpy(p, m.addr, m.size);
    if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, m.addr) == MAP_FAILED) {
      munmap(p, len);
      return;
    }
    o->maps_.detach(m.ext, m.addr);  // not the extent's mapping any more: release() unmaps it
  }
  static void install() { pthread_atfork(&prepare, &parent, &child); }
  static void add(BigOwner *o) {
    pthread_once(&once, &install);
    pthread_mutex_lock(&mu);
    if (!owners) owners = new std::vector<BigOwner *>();
    owners->push_back(o);
    pthread_mutex_unlock(&mu);
  }
  static void remove(BigOwner *o) {
    pthread_mutex_lock(&mu);
    if (owners) owners->erase(std::remove(owners->begin(), owners->end(), o), owners->end());
    pthread_mutex_unlock(&mu);
  }
};
pthread_mutex_t BigOwnerFork::mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<BigOwner *> *BigOwnerFork::owners = nullptr;
pthread_once_t BigOwnerFork::once = PTHREAD_ONCE_INIT;

// ---- messages handed over (get_msg) ---------------------------------------------------------------

// Holding clock at the BIG record at hd: hand its extent to the caller, mapped (see TakenMsg).
int Ring::take_big(uint64_t hd, size_t rec_len, const Extent &x, size_t size, TakenMsg *take) {
  unsigned char *p;
  {
    std::lock_guard<std::mutex> g(owner_->mu_);
    owner_->held_.reserve(owner_->held_.size() + 1);  // may throw: before anything is taken
    if (int rc = owner_->maps_.map(memfd_.get(), x, &p, true)) return rc;
    owner_->held_.push_back(BigOwner::Held{p, x, size});
  }
  h_->r_big = x;  // as a get's copy: a death before the return frees the extent (top)
  h_->r_head = hd;
  h_->r_state = 1;
  bump(h_->items_got);
  advance(hd + rec_size(rec_len));
  take->data = p;
  take->size = size;
  take->ext = x;
  take->pid = getpid();
  h_->r_state = 0;
  bump(h_->st_gets);
  return 0;
}

int Ring::get_msg(TakenMsg *out, double timeout) {
  void *copy = nullptr;
  size_t len = 0;
  *out = TakenMsg{};
  if (!big_owner()) return MPROC_ENOMEM;
  const int rc = get(nullptr, 0, &len, &copy, timeout, out);
  if (rc == 0 && !out->ext.len) {
    out->data = static_cast<unsigned char *>(copy);
    out->size = len;
  }
  return rc;
}

std::shared_ptr<BigOwner> Ring::big_owner() {
  if (owner_) return owner_;
  std::shared_ptr<BigOwner> o(new BigOwner());
  void *p = mmap(nullptr, kHdrBytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_.get(), 0);
  if (p == MAP_FAILED) {
    fail_errno(errno, "mmap (queue header)");
    return nullptr;
  }
  o->h_ = static_cast<RingHeader *>(p);
  o->fd_.reset(fcntl(memfd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!o->fd_.valid()) {
    fail_errno(errno, "dup (queue)");
    return nullptr;
  }
  o->base_ = big_file().base;
  BigOwnerFork::add(o.get());
  owner_ = o;
  return owner_;
}

BigOwner::~BigOwner() {
  BigOwnerFork::remove(this);
  if (h_) munmap(h_, kHdrBytes);
}

void BigOwner::release(TakenMsg *m) {
  if (m->ext.len) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (Held &h : held_)
        if (h.addr == m->data) {
          h = held_.back();
          held_.pop_back();
          break;
        }
      maps_.drop(m->ext, m->data);
    }
    if (m->pid == getpid()) free_extent(&h_->big, BigFile{fd_.get(), base_}, m->ext);
  } else {
    free(m->data);
  }
  *m = TakenMsg{};
}

}  // namespace mproc
