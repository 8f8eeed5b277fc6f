#include "shm/named.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "base/align.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/handles.hpp"
#include "base/mutex.hpp"

namespace mproc {

// ---- named blocks -----------------------------------------------------------------------------

// Leased blocks. The file is: the user's bytes (rounded up to 64), the lease table (a 64-byte
// LeaseHeader with a robust futex mutex, then `slots` LeaseSlots of 16 bytes, rounded up to 64),
// then the usual Trailer with lease_slots != 0 (an older reader's size check fails on it, so it
// sees "not an mproc block" and never unlinks one). A slot names one process using the block:
// pid, process start time (a recycled pid does not pass for the user) and its open handles.
//
// Every read or change of the table, and every unlink of a leased name, happens under the mutex.
// A process killed while holding it is detected by the next locker (base/mutex.hpp: owner thread gone),
// which takes it over; the table stays meaningful because a slot is written start, handles, then
// pid (release), and cleared by zeroing pid: a half-written slot is either free or names the
// killed process itself, which is dead and so purged like any other dead user. Purging = zeroing
// the pid of every slot whose process has ended (start time differs or none). The name is
// unlinked by whoever, under the mutex, finds no live user left: the last closer, an exiting
// user's atexit hook, or any attach/create/cleanup finding only dead users (an attach then fails
// with ENOENT rather than reviving it). Before unlinking, the locker checks that the name still
// names this file (device and inode): after an unlink a new block of the same name may exist, and
// must not be removed. An attacher that opened the file just before the last user unlinked it
// sees, under the mutex, that the name is gone and fails with ENOENT: no one joins a released
// block. A forked child does not inherit its parent's slot; it attaches by name to be counted.
namespace {
constexpr uint64_t kTrailerMagic = 0x3162736d636f726dull;  // "mrocmsb1"
struct Trailer {
  uint64_t magic;
  uint64_t size;
  uint64_t creator_pid;
  uint64_t creator_start;  // process start time (clock ticks since boot), against pid reuse
  uint64_t lease_slots;    // 0: creator-owned; else a leased block with a table of that many
  uint64_t pad[3];
};
static_assert(sizeof(Trailer) == 64, "trailer is 64 bytes");

}  // namespace

struct LeaseHeader {
  MutexWord lock;
  uint32_t slots;
  uint64_t pad[7];
};
static_assert(sizeof(LeaseHeader) == 64, "lease header is 64 bytes");

namespace {
struct LeaseSlot {
  std::atomic<uint32_t> pid;  // 0: free; stored last (release) when a slot is taken
  uint32_t handles;           // this process's open handles to the block
  uint64_t start;             // the process's start time
};
static_assert(sizeof(LeaseSlot) == 16, "lease slot is 16 bytes");
static_assert(MPROC_SHM_LEASE_USERS_MAX <= UINT32_MAX, "slot count fits the header");

constexpr uint64_t lease_bytes(uint64_t slots) {
  return slots ? round64(sizeof(LeaseHeader) + slots * sizeof(LeaseSlot)) : 0;
}

// Names this process created and has not unlinked; unlinked at exit by their creator only.
pthread_mutex_t g_owned_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<std::pair<std::string, int>> *g_owned = nullptr;

std::string path_of(const std::string &name) { return "/mproc-" + name; }

// Start time of a live (non-zombie) process, or 0 when it has ended.
uint64_t process_start_time(int pid) {
  char path[48];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return 0;
  char state = p[2];
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  // Fields after ")": 3 state ... 22 starttime.
  p += 2;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return 0;
    p++;
  }
  return strtoull(p, nullptr, 10);
}

bool creator_alive(const Trailer &t) {
  if (t.creator_pid == 0 || t.creator_pid > INT32_MAX) return false;
  uint64_t st = process_start_time(static_cast<int>(t.creator_pid));
  return st != 0 && st == t.creator_start;
}

// Read the trailer of an open block. False when it is not (yet) an mproc block.
bool read_trailer(int fd, Trailer *t, size_t *file_size) {
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size < static_cast<off_t>(sizeof(Trailer))) return false;
  ssize_t n = pread(fd, t, sizeof *t, st.st_size - static_cast<off_t>(sizeof *t));
  if (n != static_cast<ssize_t>(sizeof *t) || t->magic != kTrailerMagic) return false;
  if (t->size > kShmSizeMax || t->lease_slots > MPROC_SHM_LEASE_USERS_MAX) return false;
  if (round64(t->size) + lease_bytes(t->lease_slots) + sizeof *t !=
      static_cast<uint64_t>(st.st_size))
    return false;
  *file_size = static_cast<size_t>(st.st_size);
  return true;
}

// ---- the lease table (see the paragraph above) ----

LeaseSlot *lease_slots(LeaseHeader *h) { return reinterpret_cast<LeaseSlot *>(h + 1); }

class LeaseLock {
 public:
  explicit LeaseLock(LeaseHeader *h) : h_(h) {
    (void)mutex_lock(&h->lock, -1);  // 0 or MPROC_EOWNERDEAD (a user died holding it): held
  }
  ~LeaseLock() { mutex_unlock(&h_->lock); }
  LeaseLock(const LeaseLock &) = delete;
  LeaseLock &operator=(const LeaseLock &) = delete;

 private:
  LeaseHeader *h_;
};

// Under the lock: free the slots of ended processes; returns how many live users remain.
// `slots` is the table's size as this process mapped it, never h->slots, which any user of the
// block may overwrite (the loops would then run past the mapping).
unsigned lease_purge(LeaseHeader *h, uint32_t slots) {
  unsigned live = 0;
  LeaseSlot *s = lease_slots(h);
  for (uint32_t i = 0; i < slots; i++) {
    uint32_t pid = s[i].pid.load(std::memory_order_acquire);
    if (pid == 0) continue;
    uint64_t st = process_start_time(static_cast<int>(pid));
    if (st != 0 && st == s[i].start) live++;
    else s[i].pid.store(0, std::memory_order_release);
  }
  return live;
}

// Under the lock: count one more handle of this process. False when the table is full.
bool lease_join(LeaseHeader *h, uint32_t slots, uint32_t pid, uint64_t start) {
  LeaseSlot *s = lease_slots(h);
  LeaseSlot *free_slot = nullptr;
  for (uint32_t i = 0; i < slots; i++) {
    uint32_t p = s[i].pid.load(std::memory_order_acquire);
    if (p == pid && s[i].start == start) {
      s[i].handles++;
      return true;
    }
    if (p == 0 && !free_slot) free_slot = &s[i];
  }
  if (!free_slot) return false;
  free_slot->start = start;
  free_slot->handles = 1;
  free_slot->pid.store(pid, std::memory_order_release);
  return true;
}

// Under the lock: drop one handle of this process (all of them when `all`).
void lease_leave(LeaseHeader *h, uint32_t slots, uint32_t pid, uint64_t start, bool all) {
  LeaseSlot *s = lease_slots(h);
  for (uint32_t i = 0; i < slots; i++)
    if (s[i].pid.load(std::memory_order_acquire) == pid && s[i].start == start) {
      if (all || s[i].handles <= 1) s[i].pid.store(0, std::memory_order_release);
      else s[i].handles--;
      return;
    }
}

// True when /dev/shm/mproc-<name> is still the file (dev, ino).
bool name_is(const std::string &name, uint64_t dev, uint64_t ino) {
  struct stat st;
  std::string path = "/dev/shm" + path_of(name);
  return stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev &&
         static_cast<uint64_t>(st.st_ino) == ino;
}

// Under the lock: unlink the name when no live user remains and it is still this file.
// True when it unlinked it.
bool lease_release_if_unused(LeaseHeader *h, uint32_t slots, const std::string &name,
                             uint64_t dev, uint64_t ino) {
  if (lease_purge(h, slots) != 0 || !name_is(name, dev, ino)) return false;
  return ::shm_unlink(path_of(name).c_str()) == 0;
}

void forget_owned(const std::string &name) {
  pthread_mutex_lock(&g_owned_mu);
  if (g_owned)
    for (auto it = g_owned->begin(); it != g_owned->end(); ++it)
      if (it->first == name && it->second == getpid()) {
        g_owned->erase(it);
        break;
      }
  pthread_mutex_unlock(&g_owned_mu);
}

// Leased handles open in this process (or inherited over fork: those find no slot of ours).
std::vector<mproc_shm *> *g_leased = nullptr;

void unlink_owned_at_exit() {
  pthread_mutex_lock(&g_owned_mu);
  if (g_owned)
    for (auto &e : *g_owned)
      if (e.second == getpid()) ::shm_unlink(path_of(e.first).c_str());
  // A leased block stays while other users live; leave it, and unlink it if we were the last.
  if (g_leased) {
    auto pid = static_cast<uint32_t>(getpid());
    uint64_t start = process_start_time(getpid());
    for (mproc_shm *h : *g_leased) {
      LeaseLock g(h->lease);
      lease_leave(h->lease, h->lease_slots, pid, start, true);
      lease_release_if_unused(h->lease, h->lease_slots, h->name, h->dev, h->ino);
    }
  }
  pthread_mutex_unlock(&g_owned_mu);
}

void register_exit_hook() {  // g_owned_mu held
  static bool done = false;
  if (!done) atexit(unlink_owned_at_exit);
  done = true;
}

void remember_owned(const std::string &name) {
  pthread_mutex_lock(&g_owned_mu);
  if (!g_owned) g_owned = new std::vector<std::pair<std::string, int>>();
  register_exit_hook();
  g_owned->emplace_back(name, static_cast<int>(getpid()));
  pthread_mutex_unlock(&g_owned_mu);
}

void remember_leased(mproc_shm *h) {
  pthread_mutex_lock(&g_owned_mu);
  if (!g_leased) g_leased = new std::vector<mproc_shm *>();
  register_exit_hook();
  g_leased->push_back(h);
  pthread_mutex_unlock(&g_owned_mu);
}

void forget_leased(mproc_shm *h) {
  pthread_mutex_lock(&g_owned_mu);
  if (g_leased)
    for (auto it = g_leased->begin(); it != g_leased->end(); ++it)
      if (*it == h) {
        g_leased->erase(it);
        break;
      }
  pthread_mutex_unlock(&g_owned_mu);
}

// Remember the file behind a leased handle (to tell it from a later block of the same name).
int note_file(int fd, mproc_shm *h) {
  struct stat st;
  if (fstat(fd, &st) < 0) return fail_errno(errno, "fstat");
  h->dev = static_cast<uint64_t>(st.st_dev);
  h->ino = static_cast<uint64_t>(st.st_ino);
  return 0;
}

int map_block(int fd, size_t map_size, void **addr) {
  void *p = mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail_errno(errno, "mmap");
  *addr = p;
  return 0;
}
}  // namespace

int shm_check_name(const char *name) {
  if (*name == '/') name++;
  size_t n = strlen(name);
  if (n == 0) return fail(MPROC_EINVAL, "name is empty");
  if (n > MPROC_SHM_NAME_MAX)
    return fail(MPROC_ENAMETOOLONG, "name is longer than %d characters", MPROC_SHM_NAME_MAX);
  // No leading '.': it would allow "." and "..", and hidden files in /dev/shm.
  if (name[0] == '.') return fail(MPROC_EINVAL, "name must not start with '.'");
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok)
      return fail(MPROC_EINVAL, "name has a character outside [A-Za-z0-9._-] at %zu", i);
  }
  return 0;
}

void shm_unmap(void *addr, size_t len) {
  if (addr) munmap(addr, len);
}

int shm_create(const char *name, size_t size, unsigned lease_users, mproc_shm **out) {
  shm_cleanup();
  auto h = std::make_unique<mproc_shm>();
  if (name) {
    h->name = name[0] == '/' ? name + 1 : name;
  } else {
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
      return fail_errno(errno, "getrandom");
    char buf[2 * sizeof r + 5] = "psm_";
    for (size_t i = 0; i < sizeof r; i++) snprintf(buf + 4 + 2 * i, 3, "%02x", r[i]);
    h->name = buf;
  }
  std::string path = path_of(h->name);
  int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST) return fail(MPROC_EEXIST, "a block named '%s' exists", h->name.c_str());
    return fail_errno(e, "shm_open");
  }
  UniqueFd own(fd);
  h->size = size;
  h->map_size = round64(size) + lease_bytes(lease_users) + sizeof(Trailer);
  int rc = 0;
  if (ftruncate(fd, static_cast<off_t>(h->map_size)) < 0) rc = fail_errno(errno, "ftruncate");
  if (!rc) rc = map_block(fd, h->map_size, &h->addr);
  if (!rc && lease_users) rc = note_file(fd, h.get());
  if (rc) {
    ::shm_unlink(path.c_str());
    return rc;
  }
  Trailer t = {};
  t.size = size;
  t.creator_pid = static_cast<uint64_t>(getpid());
  t.creator_start = process_start_time(getpid());
  t.lease_slots = lease_users;
  if (lease_users) {
    // Our slot is in place before the magic makes the block visible to attach and cleanup.
    h->lease = reinterpret_cast<LeaseHeader *>(static_cast<char *>(h->addr) + round64(size));
    h->lease->slots = lease_users;
    h->lease_slots = lease_users;
    lease_join(h->lease, lease_users, static_cast<uint32_t>(getpid()), t.creator_start);
  }
  memcpy(static_cast<char *>(h->addr) + h->map_size - sizeof t, &t, sizeof t);
  std::atomic_thread_fence(std::memory_order_release);
  const uint64_t magic = kTrailerMagic;
  memcpy(static_cast<char *>(h->addr) + h->map_size - sizeof t, &magic, sizeof magic);
  h->creator = true;
  if (h->lease) remember_leased(h.get());
  else remember_owned(h->name);
  handle_register(h.get(), HandleKind::kShm);
  *out = h.release();
  return 0;
}

int shm_attach(const char *name, mproc_shm **out) {
  auto h = std::make_unique<mproc_shm>();
  h->name = name[0] == '/' ? name + 1 : name;
  std::string path = path_of(h->name);
  int fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return fail(MPROC_ENOENT, "no block named '%s'", h->name.c_str());
    return fail_errno(e, "shm_open");
  }
  UniqueFd own(fd);
  Trailer t;
  size_t file_size = 0;
  if (!read_trailer(fd, &t, &file_size))
    return fail(MPROC_ENOENT, "'%s' is not an mproc block (or is still being made)",
                h->name.c_str());
  if (t.lease_slots == 0 && !creator_alive(t)) {
    ::shm_unlink(path.c_str());
    return fail(MPROC_ENOENT, "the creator (pid %" PRIu64 ") of block '%s' has ended",
                t.creator_pid, h->name.c_str());
  }
  h->size = static_cast<size_t>(t.size);
  h->map_size = file_size;
  if (int rc = map_block(fd, h->map_size, &h->addr)) return rc;
  if (t.lease_slots) {
    if (int rc = note_file(fd, h.get())) return rc;
    h->lease = reinterpret_cast<LeaseHeader *>(static_cast<char *>(h->addr) + round64(t.size));
    if (h->lease->slots != t.lease_slots)
      return fail(MPROC_ENOENT, "'%s' is not an mproc block (bad lease table)", h->name.c_str());
    h->lease_slots = static_cast<uint32_t>(t.lease_slots);  // checked against the file's size
    LeaseLock g(h->lease);
    if (!name_is(h->name, h->dev, h->ino))
      return fail(MPROC_ENOENT, "leased block '%s' was released by its last user",
                  h->name.c_str());
    if (lease_release_if_unused(h->lease, h->lease_slots, h->name, h->dev, h->ino))
      return fail(MPROC_ENOENT, "every user of leased block '%s' has ended", h->name.c_str());
    if (!lease_join(h->lease, h->lease_slots, static_cast<uint32_t>(getpid()),
                    process_start_time(getpid())))
      return fail(MPROC_EFULL, "leased block '%s' has all %u user slots taken by live processes",
                  h->name.c_str(), h->lease_slots);
    remember_leased(h.get());
  }
  handle_register(h.get(), HandleKind::kShm);
  *out = h.release();
  return 0;
}

int shm_unlink(mproc_shm *s) {
  if (s->lease) {  // under the lock, and only while the name is still this block
    LeaseLock g(s->lease);
    if (!name_is(s->name, s->dev, s->ino))
      return fail(MPROC_ENOENT, "block '%s' is already unlinked", s->name.c_str());
    if (::shm_unlink(path_of(s->name).c_str()) < 0) return fail_errno(errno, "shm_unlink");
    return 0;
  }
  if (::shm_unlink(path_of(s->name).c_str()) < 0) {
    int e = errno;
    if (e == ENOENT) return fail(MPROC_ENOENT, "block '%s' is already unlinked", s->name.c_str());
    return fail_errno(e, "shm_unlink");
  }
  forget_owned(s->name);
  return 0;
}

void shm_close(mproc_shm *s) {
  if (s->lease) {
    forget_leased(s);
    LeaseLock g(s->lease);
    lease_leave(s->lease, s->lease_slots, static_cast<uint32_t>(getpid()),
                process_start_time(getpid()), false);
    lease_release_if_unused(s->lease, s->lease_slots, s->name, s->dev, s->ino);
  }
  handle_unregister(s);
  s->magic = 0;
  delete s;
}

// A leased block met by the sweep: unlink it (true) if no live user remains. Maps just the
// pages holding the table.
static bool sweep_leased(int fd, const struct stat &st, const Trailer &t, size_t file_size,
                         const char *name) {
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t table = round64(t.size);
  const uint64_t off = table / page * page;
  const size_t len = file_size - static_cast<size_t>(off);
  void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(off));
  if (p == MAP_FAILED) return false;
  auto *h = reinterpret_cast<LeaseHeader *>(static_cast<char *>(p) + (table - off));
  bool removed = false;
  if (h->slots == t.lease_slots) {
    LeaseLock g(h);
    removed = lease_release_if_unused(h, static_cast<uint32_t>(t.lease_slots), name,
                                      static_cast<uint64_t>(st.st_dev),
                                      static_cast<uint64_t>(st.st_ino));
  }
  munmap(p, len);
  return removed;
}

int shm_cleanup() {
  DIR *d = opendir("/dev/shm");
  if (!d) return 0;
  int removed = 0;
  const uid_t me = geteuid();
  while (struct dirent *e = readdir(d)) {
    if (strncmp(e->d_name, "mproc-", 6) != 0) continue;
    int fd = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    struct stat st;
    Trailer t;
    size_t file_size = 0;
    bool ours = fstat(fd, &st) == 0 && st.st_uid == me && read_trailer(fd, &t, &file_size);
    if (ours && t.lease_slots) {
      if (sweep_leased(fd, st, t, file_size, e->d_name + 6)) removed++;
      ours = false;
    }
    bool stale = ours && !creator_alive(t);
    close(fd);
    if (stale && unlinkat(dirfd(d), e->d_name, 0) == 0) removed++;
  }
  closedir(d);
  return removed;
}

}  // namespace mproc
