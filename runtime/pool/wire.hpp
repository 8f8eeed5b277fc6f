// What the pool's parent and its workers share: the segment's layout (a header, a slot per
// worker, two rings per worker) and the messages in the rings (a task in, a result out). A
// backend's worker gets the same messages, each after a WireHdr naming its function.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include <mproc/backend.h>

namespace mproc {

constexpr uint32_t kPoolMagic = 0x6d70706c;  // "mppl"
enum : uint32_t {
  kMsgVar = 1,
  kMsgFixed = 2,      // elements travel in the message
  kMsgStop = 3,
  kMsgReady = 4,
  kMsgInitFailed = 5,
  kMsgFixedBulk = 6,  // elements stay in a shared segment of the job's (see BulkRef)
  kMsgInit = 7,       // backend workers: run the pool's initializer (its name, then its argument)
};

// Shared memory: the pool header, a slot per worker, then two rings per worker.
struct PoolShm {
  uint32_t magic;
  uint32_t nworkers;
  uint64_t ring_cap;
  uint64_t ring_stride;
  alignas(64) std::atomic<uint32_t> events;  // bumped by anyone who wants the dispatcher
  std::atomic<uint32_t> dispatcher_sleeps;
  std::atomic<uint32_t> helpers;  // callers collecting results themselves (see Pool::help)
};
struct SlotShm {
  alignas(64) std::atomic<uint64_t> current;  // id of the chunk being run, 0 if none
  std::atomic<uint64_t> started_ns;           // monotonic ns when it started
};

// Before a message to a backend's worker (mproc/backend.h): the function's registered name.
struct WireHdr {
  uint32_t magic;
  uint32_t name_len;  // name bytes follow, then the TaskHdr and its body
};
constexpr uint32_t kWireMagic = 0x6d707778;  // "mpwx"

// A fixed map's arrays in a memfd segment of the parent: the worker maps it once (through
// /proc/<parent>/fd/<fd>) and computes in place, so elements are copied only into and out of it.
struct BulkRef {
  uint64_t seg_id;
  uint64_t seg_size;
  int32_t fd;
  uint32_t pad;
  uint64_t in_off, out_off;  // byte offsets of the arrays in the segment
  uint64_t first;            // the chunk's first element
};

struct TaskHdr {
  uint64_t id;
  uint32_t kind;
  uint32_t count;
  uint64_t fn;
  uint32_t in_size;
  uint32_t out_size;
};
struct ResultHdr {
  uint64_t id;
  uint32_t kind;
  uint32_t count;
  int32_t fail_rc;      // kMsgFixed / kMsgInitFailed: the first failure's code
  uint32_t fail_index;  // kMsgFixed: its index in the chunk
  uint64_t msg_len;     // kMsgFixed / kMsgInitFailed: message bytes at the end
  uint64_t busy_ns;
};
struct ItemHdr {
  int32_t rc;
  uint32_t pad;
  uint64_t len;
};
// A local worker's start argument; the initializer's argument and the NameRecs follow it.
struct Boot {
  int32_t parent_pid;
  int32_t seg_fd;
  uint64_t seg_size;
  uint64_t base;
  uint32_t slot;
  int32_t max_tasks;
  int32_t inherited;  // the segment is mapped at `base` already (fork)
  uint32_t pad;
  uint64_t init_fn;
  uint64_t init_len;
  uint64_t names_len;  // spawned workers: the parent's registered functions (NameRec) follow
};
// One registered function of the parent, for a spawned worker (its addresses differ).
struct NameRec {
  uint64_t fn;
  uint32_t kind;
  uint32_t name_len;  // the name follows
};

// printf into a std::string (messages that travel to the caller).
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// The body of a local worker process (worker.cpp); its start argument is a Boot.
int worker_main(void *arg, size_t len, void *payload);
// A backend's worker loop (worker.cpp): until the transport closes.
int serve_backend(const mproc_transport_t &t, int worker, void *payload);

}  // namespace mproc
