#include "shm/arena.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <memory>
#include <vector>

#include "base/align.hpp"
#include "base/error.hpp"
#include "base/mutex.hpp"
#include "shm/segment.hpp"

namespace mproc {
namespace {
constexpr uint32_t kArenaMagic = 0x4d504152;  // "MPAR"
constexpr uint32_t kBlockLive = 0x4d50424c;
constexpr uint32_t kBlockFree = 0x4d504246;
constexpr size_t kAlign = 64;
constexpr uint64_t kMaxPayload = 1ull << 40;

struct ArenaHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t id;
  uint64_t size;
  MutexWord mu;
  uint32_t pad;
  uint64_t bump;       // first never-used offset
  uint64_t free_head;  // first free block, 0 when none
  uint64_t next_serial;
};

struct BlockHeader {
  uint32_t magic;
  uint32_t kind;
  uint64_t size;  // payload bytes (a multiple of kAlign)
  uint64_t serial;
  uint64_t next_free;
  std::atomic<uint32_t> refs;
  uint32_t pad[7];
};
static_assert(sizeof(BlockHeader) == kAlign, "block header is one cache line");
static_assert(sizeof(ArenaHeader) <= kAlign, "arena header fits one cache line");
constexpr uint64_t kFirstBlock = kAlign;


char kind_letter(ObjKind k) {
  static const char letters[] = "?VLSCEB";
  unsigned i = static_cast<unsigned>(k);
  return i < sizeof letters - 1 ? letters[i] : '?';
}
const char *kind_name(ObjKind k) {
  switch (k) {
    case ObjKind::kValue: return "value";
    case ObjKind::kLock: return "lock";
    case ObjKind::kSemaphore: return "semaphore";
    case ObjKind::kCondition: return "condition";
    case ObjKind::kEvent: return "event";
    case ObjKind::kBarrier: return "barrier";
  }
  return "object";
}
}  // namespace

struct Arena {
  Segment seg;
  uint64_t id = 0;
  size_t local_refs = 0;  // handles of this process pointing into it
  ArenaHeader *hdr() const { return static_cast<ArenaHeader *>(seg.data()); }
  BlockHeader *block(uint64_t off) const {
    return reinterpret_cast<BlockHeader *>(static_cast<char *>(seg.data()) + off);
  }
};

namespace {
// Process-local tables. g_mu is taken around fork (prepare/parent/child) so a child never sees
// them half-updated; every object the child inherits gets one more reference for it.
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<Arena *> *g_arenas = nullptr;
std::unordered_set<ObjRef *> *g_refs = nullptr;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

// The child's references are taken before fork() returns in the parent, which may free its own
// handles at once. (A fork whose child execs or never frees just leaks those blocks: memory in
// an arena, released with the arena's last mapping.)
void fork_prepare() {
  pthread_mutex_lock(&g_mu);
  if (g_refs)
    for (ObjRef *r : *g_refs) r->arena->block(r->offset)->refs.fetch_add(1);
}
void fork_parent() { pthread_mutex_unlock(&g_mu); }
void fork_child() { g_mu = PTHREAD_MUTEX_INITIALIZER; }
void init_once() {
  g_arenas = new std::vector<Arena *>();
  g_refs = new std::unordered_set<ObjRef *>();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

struct Guard {
  Guard() {
    pthread_once(&g_once, init_once);
    pthread_mutex_lock(&g_mu);
  }
  ~Guard() { pthread_mutex_unlock(&g_mu); }
};

void forget_arena_if_unused(Arena *a) {
  if (a->local_refs) return;
  g_arenas->erase(std::remove(g_arenas->begin(), g_arenas->end(), a), g_arenas->end());
  delete a;
}

int new_arena(size_t need, Arena **out) {
  size_t size = std::max<size_t>(kArenaSize, round_up(kFirstBlock + kAlign + need, 4096));
  auto a = std::make_unique<Arena>();
  if (int rc = Segment::create(size, "mproc-arena", &a->seg)) return rc;
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id))
    return fail_errno(errno, "getrandom");
  ArenaHeader *h = a->hdr();
  h->version = 1;
  h->id = id;
  h->size = size;
  h->mu.word.store(0);
  h->bump = kFirstBlock;
  h->free_head = 0;
  h->next_serial = 0;
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = kArenaMagic;
  a->id = id;
  g_arenas->push_back(a.get());
  *out = a.release();
  return 0;
}

// A block at off, of b->size payload bytes, lies inside the mapping (the shared header and free
// list may have been overwritten by any process that maps the arena).
bool block_fits(const Arena *a, uint64_t off) {
  const uint64_t size = a->seg.size();
  return off >= kFirstBlock && off % kAlign == 0 && off <= size - kAlign &&
         a->block(off)->size <= size - off - kAlign;
}

// Carve `need` payload bytes out of `a`; the block offset or 0 when it does not fit (or the
// arena's allocator state is corrupt: no block is taken from it then).
uint64_t carve(Arena *a, uint64_t need, uint64_t *serial) {
  ArenaHeader *h = a->hdr();
  mutex_lock(&h->mu, -1);  // a dead previous holder left at worst a leaked block
  uint64_t *prev = &h->free_head;
  uint64_t off = *prev;
  for (uint64_t steps = a->seg.size() / kAlign; off; steps--) {
    if (!steps || !block_fits(a, off)) {
      mutex_unlock(&h->mu);
      return 0;
    }
    BlockHeader *b = a->block(off);
    if (b->size >= need) {
      if (b->size - need >= 2 * kAlign) {  // split, the rest stays free
        uint64_t rest = off + kAlign + need;
        BlockHeader *r = a->block(rest);
        r->magic = kBlockFree;
        r->size = b->size - need - kAlign;
        r->next_free = b->next_free;
        *prev = rest;
        b->size = need;
      } else {
        *prev = b->next_free;
      }
      break;
    }
    prev = &b->next_free;
    off = *prev;
  }
  if (!off && h->bump >= kFirstBlock && h->bump % kAlign == 0 && h->bump <= a->seg.size() &&
      h->bump + kAlign + need <= a->seg.size()) {
    off = h->bump;
    a->block(off)->size = need;
    h->bump = off + kAlign + need;
  }
  if (off) *serial = ++h->next_serial;
  mutex_unlock(&h->mu);
  return off;
}

void free_block(Arena *a, uint64_t off) {
  ArenaHeader *h = a->hdr();
  BlockHeader *b = a->block(off);
  mutex_lock(&h->mu, -1);
  b->magic = kBlockFree;
  b->next_free = h->free_head;
  h->free_head = off;
  mutex_unlock(&h->mu);
}

void drop_block_ref(Arena *a, uint64_t off) {
  if (a->block(off)->refs.fetch_sub(1) == 1) free_block(a, off);
}

void fill_ref(Arena *a, uint64_t off, ObjRef *out) {
  BlockHeader *b = a->block(off);
  out->arena = a;
  out->offset = off;
  out->serial = b->serial;
  out->kind = static_cast<ObjKind>(b->kind);
  out->payload = reinterpret_cast<char *>(b) + kAlign;
  a->local_refs++;
  g_refs->insert(out);
}

bool parse_u64(const char **p, int base, uint64_t *out, char stop) {
  const char *s = *p;
  if (!((*s >= '0' && *s <= '9') || (base == 16 && ((*s >= 'a' && *s <= 'f') ||
                                                     (*s >= 'A' && *s <= 'F')))))
    return false;
  char *e = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &e, base);
  if (errno || e == s) return false;
  if (stop == '\0' ? (*e != '\0' && *e != '+') : *e != stop) return false;
  *out = v;
  *p = stop == '\0' ? e : e + 1;
  return true;
}
}  // namespace

int arena_alloc(size_t size, ObjKind kind, ObjRef *out) {
  if (size > kMaxPayload)
    return fail(MPROC_EMSGSIZE, "object of %zu bytes is over the limit of %" PRIu64 " bytes",
                size, kMaxPayload);
  uint64_t need = round_up(std::max<size_t>(size, 1), kAlign);
  Guard g;
  Arena *a = nullptr;
  uint64_t off = 0, serial = 0;
  if (need <= kArenaSize / 4) {
    for (Arena *c : *g_arenas)
      if ((off = carve(c, need, &serial)) != 0) {
        a = c;
        break;
      }
  }
  if (!a) {
    if (int rc = new_arena(need, &a)) return rc;
    off = carve(a, need, &serial);
    if (!off) return fail(MPROC_ENOMEM, "new arena too small");  // cannot happen
  }
  BlockHeader *b = a->block(off);
  memset(reinterpret_cast<char *>(b) + kAlign, 0, need);
  b->kind = static_cast<uint32_t>(kind);
  b->serial = serial;
  b->next_free = 0;
  b->refs.store(1);
  std::atomic_thread_fence(std::memory_order_release);
  b->magic = kBlockLive;
  fill_ref(a, off, out);
  return 0;
}

int arena_dup(const ObjRef &src, ObjRef *out) {
  if (!src.valid()) return fail(MPROC_EBADF, "object reference is released");
  Guard g;
  src.arena->block(src.offset)->refs.fetch_add(1);
  fill_ref(src.arena, src.offset, out);
  return 0;
}

int arena_export(const ObjRef &ref, ObjKind as, uint64_t inner, char *buf, size_t cap) {
  if (!ref.valid()) return fail(MPROC_EBADF, "object reference is released");
  int n = snprintf(buf, cap, "mproc:%c:%d:%d:%016" PRIx64 ":%" PRIx64 ":%" PRIx64 ":%" PRIx64,
                   kind_letter(as), static_cast<int>(getpid()), ref.arena->seg.fd(),
                   ref.arena->id, ref.offset, ref.serial, inner);
  if (n < 0 || static_cast<size_t>(n) >= cap)
    return fail(MPROC_ENOSPC, "token buffer of %zu bytes is too small (need %d)", cap, n + 1);
  return n;
}

int arena_attach(const char *token, ObjKind kind, uint32_t block_kinds, ObjRef *out,
                 uint64_t *inner, const char **end) {
  const char *p = token;
  if (strncmp(p, "mproc:", 6) != 0 || p[6] == '\0' || p[7] != ':')
    return fail(MPROC_EINVAL, "not an mproc object token: '%.40s'", token);
  char letter = p[6];
  p += 8;
  uint64_t pid, fd, id, off, serial, in;
  if (!parse_u64(&p, 10, &pid, ':') || !parse_u64(&p, 10, &fd, ':') ||
      !parse_u64(&p, 16, &id, ':') || !parse_u64(&p, 16, &off, ':') ||
      !parse_u64(&p, 16, &serial, ':') || !parse_u64(&p, 16, &in, '\0') || pid == 0 ||
      pid > INT32_MAX || fd > INT32_MAX)
    return fail(MPROC_EINVAL, "malformed mproc object token: '%.60s'", token);
  if (letter != kind_letter(kind))
    return fail(MPROC_EINVAL, "the token names a %s object, not a %s", 
                letter == 'V' ? "value" : letter == 'L' ? "lock" : letter == 'S' ? "semaphore"
                : letter == 'C' ? "condition" : letter == 'E' ? "event" : letter == 'B' ? "barrier"
                : "unknown", kind_name(kind));
  Guard g;
  Arena *a = nullptr;
  for (Arena *c : *g_arenas)
    if (c->id == id) a = c;
  if (!a) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", static_cast<int>(pid), static_cast<int>(fd));
    int f = open(path, O_RDWR | O_CLOEXEC);
    if (f < 0) {
      int e = errno;
      if (e == ENOENT || e == ESRCH)
        return fail(MPROC_ENOENT,
                    "process %d no longer holds the object (it must keep its handle open until "
                    "the object is attached)", static_cast<int>(pid));
      return fail_errno(e, "open exporter's arena");
    }
    auto na = std::make_unique<Arena>();
    int rc = Segment::attach_fd(f, 0, &na->seg);
    close(f);
    if (rc) return rc;
    if (na->seg.size() < kFirstBlock + kAlign || na->hdr()->magic != kArenaMagic ||
        na->hdr()->id != id || na->hdr()->size != na->seg.size())
      return fail(MPROC_ENOENT, "fd %d of process %d is not the arena named by the token",
                  static_cast<int>(fd), static_cast<int>(pid));
    na->id = id;
    g_arenas->push_back(na.get());
    a = na.release();
  }
  size_t size = a->seg.size();
  BlockHeader *b = off >= kFirstBlock && off % kAlign == 0 && off + kAlign <= size ? a->block(off)
                                                                                   : nullptr;
  bool ok = b && b->magic == kBlockLive && b->kind < 32 && (block_kinds & (1u << b->kind)) &&
            b->serial == serial && block_fits(a, off) && in < b->size;
  if (ok) {
    uint32_t r = b->refs.load();
    do {
      if (r == 0) {
        ok = false;
        break;
      }
    } while (!b->refs.compare_exchange_weak(r, r + 1));
    if (ok && (b->serial != serial || b->magic != kBlockLive)) {  // reused meanwhile
      drop_block_ref(a, off);
      ok = false;
    }
  }
  if (!ok) {
    forget_arena_if_unused(a);
    return fail(MPROC_ENOENT, "the %s named by the token has been freed", kind_name(kind));
  }
  fill_ref(a, off, out);
  *inner = in;
  *end = p;
  return 0;
}

void arena_release(ObjRef *ref) {
  if (!ref->valid()) return;
  Guard g;
  g_refs->erase(ref);
  drop_block_ref(ref->arena, ref->offset);
  ref->arena->local_refs--;
  forget_arena_if_unused(ref->arena);
  ref->arena = nullptr;
  ref->payload = nullptr;
}

ObjRef::~ObjRef() { arena_release(this); }

size_t arena_count() {
  Guard g;
  return g_arenas->size();
}

}  // namespace mproc
