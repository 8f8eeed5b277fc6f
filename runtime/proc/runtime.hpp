// The per-process runtime: the supervisor, the forkserver client, default start method and the
// identity of the current process. Created lazily, never destroyed (a
// forked child abandons its parent's copy and makes a fresh one on first use).
#pragma once
#include <mproc/process.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/handles.hpp"
#include "proc/supervisor.hpp"

namespace mproc {

class ForkServer;

class Runtime {
 public:
  static Runtime &get();
  // Called in every forked child (pthread_atfork): forget the parent's runtime.
  static void after_fork_child();

  int ensure_supervisor();
  Supervisor &supervisor() { return sup_; }
  ForkServer &forkserver();
  int shutdown();
  // Run fn first at every shutdown (a layer above, e.g. pools, whose dispatchers would replace
  // the workers that shutdown ends). Added once per fn.
  void before_shutdown(void (*fn)());

  std::atomic<int> default_method{MPROC_START_FORK};
  std::string current_name = "MainProcess";
  int parent_pid = 0;
  std::atomic<int> counter{0};

 private:
  Runtime();
  std::mutex mu_;  // supervisor and forkserver start/stop
  Supervisor sup_;
  std::unique_ptr<ForkServer> fs_;
  std::vector<void (*)()> before_shutdown_;  // under mu_
};

}  // namespace mproc
