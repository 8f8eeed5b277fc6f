// The registry of live public handles, so that a freed or foreign pointer is an error, not a
// crash, and this process's pid without a system call. Both are reset in a forked child.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace mproc {

enum class HandleKind {
  kProcess = 1, kPool, kQueue, kPipe, kShm, kOther,
  // shared objects (shm.h, sync.h)
  kValue, kArray, kLock, kSemaphore, kCondition, kEvent, kBarrier
};

// This process's pid without a system call (glibc does not cache it): refreshed in every child
// forked through fork() (pthread_atfork).
int current_pid();

// Registry of live public handles, so that a freed or foreign pointer is an error, not a crash.
// handle_valid remembers the last handle each thread found live until any handle is
// unregistered, so repeated calls on one handle cost no lock.
void handle_register(const void *h, HandleKind kind);
void handle_unregister(const void *h);
bool handle_valid(const void *h, HandleKind kind);  // inline below

// handle_valid()'s memory (handles.cpp): the last handle this thread found live, valid while no
// handle was unregistered since. Inline, so a shim's check of a handle used again costs three
// loads and no call (a queue's small put costs a few nanoseconds in all, docs/queue.md).
extern std::atomic<uint64_t> g_unregistered;
extern __thread const void *t_live __attribute__((tls_model("initial-exec")));
extern __thread HandleKind t_live_kind __attribute__((tls_model("initial-exec")));
extern __thread uint64_t t_live_gen __attribute__((tls_model("initial-exec")));
bool handle_lookup(const void *h, HandleKind kind, uint64_t gen);  // the registry's lock and map
inline bool handle_valid(const void *h, HandleKind kind) {
  if (!h) return false;
  const uint64_t gen = g_unregistered.load(std::memory_order_acquire);
  if (h == t_live && kind == t_live_kind && gen == t_live_gen) return true;
  return handle_lookup(h, kind, gen);
}
// handle_valid()'s first step alone: true when h is the live handle this thread found last
// (false says nothing: ask handle_valid()). No call, for a shim's fast path.
inline bool handle_seen(const void *h, HandleKind kind) {
  return h && h == t_live && kind == t_live_kind &&
         g_unregistered.load(std::memory_order_acquire) == t_live_gen;
}
// Call fn for every live handle of `kind`, under the registry's lock (fn must not call back in).
void for_each_handle(HandleKind kind, const std::function<void(void *)> &fn);

}  // namespace mproc
