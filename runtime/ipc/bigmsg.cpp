#include "ipc/bigmsg.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.hpp"

namespace mproc {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kFileMax = uint64_t{1} << 46;  // extents end below 64 TiB of file

void lock(BigShared *b) {
  // A dead holder left at most one entry half-written: an extent forgotten (its range unused),
  // never one handed out twice (entries are removed before their extent is used).
  (void)mutex_lock(&b->lock, -1);
}
void unlock(BigShared *b) { mutex_unlock(&b->lock); }

bool handed_out(const BigShared *b, const BigFile &f, const Extent &e) {
  return e.len != 0 && e.off >= f.base && e.off % kPage == 0 && e.len % kExtentGrain == 0 &&
         e.off < kFileMax && e.len <= kFileMax - e.off && e.off + e.len <= b->end;
}

uint64_t file_size(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

void big_init(BigShared *b, const BigFile &f) {
  b->lock.word.store(0);
  b->end = f.base;
  b->kept = 0;
  b->live.store(0);
  b->live_bytes.store(0);
  for (FreeExtent &e : b->free) e = FreeExtent{0, 0, 0, 0};
}

int alloc_extent(BigShared *b, const BigFile &f, size_t size, Extent *pending, Extent *out) {
  const uint64_t need = (static_cast<uint64_t>(size) + kExtentGrain - 1) / kExtentGrain *
                        kExtentGrain;
  if (size == 0 || need < size || need > kFileMax)
    return fail(MPROC_ENOMEM, "no extent of %zu bytes", size);
  lock(b);
  // The smallest free extent that fits, unless it is more than twice the need. Entries are
  // checked against the file (a corrupt peer may have written them): mapped, they must not fault.
  const uint64_t fsize = file_size(f.fd);
  FreeExtent *best = nullptr;
  for (FreeExtent &fe : b->free)
    if (fe.len >= need && fe.len / 2 <= need && handed_out(b, f, Extent{fe.off, fe.len}) &&
        fe.off + fe.len <= fsize && (!best || fe.len < best->len))
      best = &fe;
  Extent x;
  bool populated = false;
  if (best) {
    x = Extent{best->off, best->len};
    populated = best->populated != 0;
    *pending = x;  // noted before it leaves the table (see top)
    best->len = 0;
    if (populated) b->kept = b->kept >= x.len ? b->kept - x.len : 0;
  } else {
    uint64_t at = b->end < f.base ? f.base : (b->end + kPage - 1) / kPage * kPage;
    if (at >= kFileMax || need > kFileMax - at) {
      unlock(b);
      return fail(MPROC_ENOMEM, "queue file full (%llu bytes of extents)",
                  static_cast<unsigned long long>(at - f.base));
    }
    x = Extent{at, need};
    *pending = x;
    if (fsize < at + need && ftruncate(f.fd, static_cast<off_t>(at + need)) < 0) {
      const int e = errno;
      *pending = Extent{0, 0};
      unlock(b);
      return fail_errno(e, "ftruncate (queue)");
    }
    b->end = at + need;  // after the file grew: a reference below `end` can be mapped (top)
  }
  b->live.fetch_add(1);
  b->live_bytes.fetch_add(x.len);
  unlock(b);
  if (!populated && fallocate(f.fd, 0, static_cast<off_t>(x.off), static_cast<off_t>(x.len))) {
    const int e = errno;
    free_extent(b, f, x);
    *pending = Extent{0, 0};
    return e == ENOSPC || e == ENOMEM
               ? fail(MPROC_ENOMEM, "no memory for a message of %zu bytes", size)
               : fail_errno(e, "fallocate (queue)");
  }
  *out = x;
  return 0;
}

void free_extent(BigShared *b, const BigFile &f, Extent e) {
  lock(b);
  if (!handed_out(b, f, e)) return unlock(b);
  FreeExtent *slot = nullptr;
  for (FreeExtent &fe : b->free) {
    if (fe.len != 0 && fe.off == e.off) return unlock(b);  // already free (a repeated recovery)
    if (fe.len == 0 && !slot) slot = &fe;
  }
  const bool keep = slot && e.len <= kBigKeepBytes / 4 && b->kept + e.len <= kBigKeepBytes;
  if (!keep)  // its pages go back now; the range stays usable (or, with no entry, unused)
    fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(e.off),
              static_cast<off_t>(e.len));
  if (slot) {
    *slot = FreeExtent{e.off, 0, keep ? 1u : 0u, 0};
    slot->len = e.len;  // last: the entry counts from here
    if (keep) b->kept += e.len;
  }
  if (b->live.load() > 0) b->live.fetch_sub(1);
  const uint64_t lb = b->live_bytes.load();
  b->live_bytes.store(lb >= e.len ? lb - e.len : 0);
  unlock(b);
}

int check_extent(const BigFile &f, const Extent &e, uint64_t *file_size) {
  const bool shape = e.len != 0 && e.off >= f.base && e.off % kPage == 0 &&
                     e.len % kExtentGrain == 0 && e.off < kFileMax && e.len <= kFileMax - e.off;
  if (shape && e.off + e.len > *file_size) {
    struct stat st;
    if (fstat(f.fd, &st) == 0) *file_size = static_cast<uint64_t>(st.st_size);
  }
  if (shape && e.off + e.len <= *file_size) return 0;
  return fail(MPROC_EIO, "corrupt queue ring (message extent of %llu bytes at %llu)",
              static_cast<unsigned long long>(e.len), static_cast<unsigned long long>(e.off));
}

int ExtentMaps::map(int fd, const Extent &e, unsigned char **out, bool hold) {
  Entry *victim = nullptr;
  for (Entry &c : cache_) {
    if (c.addr && c.off == e.off && c.len == e.len) {
      c.used = ++clock_;
      c.holds += hold;
      *out = c.addr;
      return 0;
    }
    if (!c.holds && (!victim || (victim->addr && (!c.addr || c.used < victim->used))))
      victim = &c;
  }
  void *p = mmap(nullptr, e.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                 static_cast<off_t>(e.off));
  if (p == MAP_FAILED) return fail_errno(errno, "mmap (queue message)");
  *out = static_cast<unsigned char *>(p);
  if (!victim) return 0;  // every entry is held: this one is not cached (drop() unmaps it)
  if (victim->addr) munmap(victim->addr, victim->len);
  *victim = Entry{e.off, e.len, ++clock_, hold ? 1u : 0u, *out};
  return 0;
}

void ExtentMaps::drop(const Extent &e, unsigned char *addr) {
  for (Entry &c : cache_)
    if (c.addr == addr && c.off == e.off && c.len == e.len && c.holds) {
      c.holds--;
      return;
    }
  munmap(addr, e.len);
}

void ExtentMaps::detach(const Extent &e, unsigned char *addr) {
  for (Entry &c : cache_)
    if (c.addr == addr && c.off == e.off && c.len == e.len && c.holds) {
      c = Entry{};
      return;
    }
}

void ExtentMaps::clear() {
  for (Entry &c : cache_) {
    if (c.addr && !c.holds) munmap(c.addr, c.len);  // a held one goes with its drop()
    c = Entry{};
  }
}

}  // namespace mproc
