// The runtime's own threads (the supervisor, a pool's dispatcher) take no signals: a process-wide
// signal must reach the program's threads, whose waits it may interrupt (Python runs its handlers
// on the main thread only, and the kernel may pick any thread that does not block the signal).
#pragma once
#include <signal.h>

#include <thread>
#include <utility>

namespace mproc {

// A std::thread running fn with every signal blocked (the mask is inherited at creation, so no
// signal can reach it in between). Throws as std::thread does.
template <class F>
std::thread thread_without_signals(F &&fn) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  struct Restore {
    sigset_t *old;
    ~Restore() { pthread_sigmask(SIG_SETMASK, old, nullptr); }
  } restore{&old};
  return std::thread(std::forward<F>(fn));
}

}  // namespace mproc
