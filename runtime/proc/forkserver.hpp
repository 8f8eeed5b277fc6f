// The forkserver: a single-threaded helper forked from the program (early, by
// mproc_forkserver_start(), or on first use) that forks children on request. Children made by
// it are safe in programs with threads, because the helper never has any.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "base/fd.hpp"

namespace mproc {

struct ProcessCore;

// In a forked child of the program: close the program's forkserver sockets.
void forkserver_close_in_child();

class ForkServer {
 public:
  ForkServer() = default;
  ~ForkServer() { stop(); }
  // Fork the helper if it is not running. 0 or a negative code.
  int ensure_started();
  // Ask the helper for a child running core's body; on success the core is running.
  int start_child(const std::shared_ptr<ProcessCore> &core);
  // Whether start_child may replace a dead helper itself (from whatever thread calls it). A
  // pool's zygote never does: it is a copy of the program made at one moment.
  void set_auto_restart(bool on) { auto_restart_ = on; }
  // Close the request socket (the helper exits; its daemon children die with it) and reap it.
  void stop();

 private:
  int start_locked();
  int gone();  // the helper died: remember it, record MPROC_EPIPE
  void on_events(int fd);  // supervisor thread
  void wait_unwatched();   // until the supervisor has dropped its watch of evt_

  std::mutex mu_;  // one request at a time
  pid_t pid_ = -1;
  UniqueFd req_;   // stream: requests out, replies (with the child's pidfd) in
  UniqueFd evt_;   // seqpacket: exit statuses in, read by the supervisor
  std::atomic<bool> helper_gone_{false};
  std::atomic<bool> auto_restart_{true};  // set by the supervisor on EOF of evt_
  std::atomic<bool> watched_{false};  // the supervisor watches evt_: it must not be closed
  // Supervisor thread only: children waiting for their status, statuses waiting for a child.
  std::unordered_map<int, std::shared_ptr<ProcessCore>> waiting_;
  std::unordered_map<int, int> unclaimed_;
};

}  // namespace mproc
