// A child process: its bookkeeping in the parent (ProcessCore) and what runs in the child.
#pragma once
#include <mproc/process.h>

#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/fd.hpp"

namespace mproc {

struct ProcessCore {
  enum class State { kNew, kRunning, kExited };

  std::mutex mu;
  std::condition_variable cv;
  State state = State::kNew;
  int pid = 0;
  UniqueFd pidfd;  // a pidfd: sentinel and race-free signalling
  int exitcode = 0;

  std::string name;
  bool daemon = false;
  int method = MPROC_START_FORK;
  mproc_process_fn fn = nullptr;
  void *payload = nullptr;
  std::vector<char> arg;
  std::vector<std::string> exec_argv;  // SPAWN: the program to exec (empty: this one)
  std::vector<int> pass_fds;           // SPAWN: fds the child keeps at the same numbers
  int owner_pid = 0;  // the process that made the handle; only it may start/join/signal
  class ForkServer *server = nullptr;
  std::weak_ptr<ProcessCore> self_ref;  // for re-arming the supervisor's watch after a join  // FORKSERVER: this helper instead of the runtime's
  // Called once (no lock held) after the end is recorded, on whichever thread saw it; set it
  // before start. The pool uses it to learn of worker deaths.
  std::function<void()> on_exit;

  // Record the end (called once, from the supervisor thread) and wake joiners.
  void mark_exited(int code);
  // Wait for the end; timeout < 0 waits forever. 0 or MPROC_ETIMEDOUT. A joiner of a forked
  // child polls its pidfd and reaps it itself (no hop through the supervisor thread).
  // Interruptible waits also end with MPROC_EINTR (mproc_interrupt).
  int wait_exit(double timeout, bool interruptible = false);
  // For a child of this process: reap it if it has ended. True once it has ended.
  bool try_reap();
  bool alive();
  // A child of the process that started it (fork or spawn), not of a forkserver.
  bool direct_child() const {
    return (method == MPROC_START_FORK || method == MPROC_START_SPAWN) && !server;
  }
};

// Start the child by the core's start method. 0 or a negative code (recorded).
int process_start(const std::shared_ptr<ProcessCore> &core);
int process_signal(ProcessCore &core, int signo);
// A direct child has been made: record it as running and hand it to the supervisor (which reaps
// it when nobody joins it). On failure the child is killed and reaped. 0 or a negative code.
int track_child(const std::shared_ptr<ProcessCore> &core, int pid, UniqueFd pidfd);
// SIGKILL a direct child that cannot be tracked and reap it; its exit code.
int kill_and_reap(int pid);
// Fault signals (SEGV, BUS, ...) back to their default action, so a crash ends the child.
void reset_fault_signals();
// Body of a child made by fork (directly or by the forkserver). Never returns.
[[noreturn]] void child_run(ProcessCore &core, int logical_parent, int real_parent);
// Leave a child: join its own children, flush stdio, _exit. Never returns.
[[noreturn]] void child_exit(int code);
// waitid() si_code/si_status to Python's exitcode (minus the signal when killed by one).
int exitcode_from_siginfo(int cld_code, int status);
int exitcode_from_wstatus(int wstatus);

}  // namespace mproc

// The opaque handle of the C ABI.
struct mproc_process {
  std::shared_ptr<mproc::ProcessCore> core;
};
