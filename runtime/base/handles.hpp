// The registry of live public handles, so that a freed or foreign pointer is an error, not a
// crash, and this process's pid without a system call. Both are reset in a forked child.
#pragma once
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
bool handle_valid(const void *h, HandleKind kind);
// Call fn for every live handle of `kind`, under the registry's lock (fn must not call back in).
void for_each_handle(HandleKind kind, const std::function<void(void *)> &fn);

}  // namespace mproc
