// Named blocks (multiprocessing.shared_memory.SharedMemory) made with shm_open.
//
// A named block is the file /dev/shm/mproc-<name> (O_EXCL, mode 0600) of size
// round_up(size, 64) + 64: the user's bytes, then a trailer naming the creator (pid and process
// start time). Lifetime belongs to the creator: attaching never unlinks; the creator unlinks it
// explicitly or at its exit (atexit), and a name whose creator has ended (crashed, or a forked
// child that left with _exit) is removed by the next create/attach/cleanup in any process.
// A leased block (mproc_shm_opts_t.lease) has a table of its users between the user's bytes and
// the trailer instead, and its name follows them; the protocol is described in named.cpp.
#pragma once
#include <mproc/shm.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace mproc {
constexpr uint32_t kShmMagic = 0x53484d42;  // "SHMB"
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
