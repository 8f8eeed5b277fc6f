// The per-process runtime: the supervisor, the forkserver client, default start method, identity
// of the current process and the registry of live handles. Created lazily, never destroyed (a
// forked child abandons its parent's copy and makes a fresh one on first use).
#pragma once
#include <mproc/process.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "supervisor.hpp"

namespace mproc {

class ForkServer;

enum class HandleKind {
  kProcess = 1, kPool, kQueue, kPipe, kShm, kOther,
  // shared objects (shm.h, sync.h)
  kValue, kArray, kLock, kSemaphore, kCondition, kEvent, kBarrier
};

class Runtime {
 public:
  static Runtime &get();
  // Called in every forked child (pthread_atfork): forget the parent's runtime.
  static void after_fork_child();

  int ensure_supervisor();
  Supervisor &supervisor() { return sup_; }
  ForkServer &forkserver();
  int shutdown();

  std::atomic<int> default_method{MPROC_START_FORK};
  std::string current_name = "MainProcess";
  int parent_pid = 0;
  std::atomic<int> counter{0};

 private:
  Runtime();
  std::mutex mu_;  // supervisor and forkserver start/stop
  Supervisor sup_;
  std::unique_ptr<ForkServer> fs_;
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
#include <functional>
// Call fn for every live handle of `kind`, under the registry's lock (fn must not call back in).
void for_each_handle(HandleKind kind, const std::function<void(void *)> &fn);

}  // namespace mproc
