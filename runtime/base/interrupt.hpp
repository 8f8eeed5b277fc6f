// Interrupts: mproc_interrupt() (async-signal-safe, e.g. from a SIGINT handler) makes every
// blocking wait of the process return MPROC_EINTR. Waits started before it see the generation
// change; an interrupt that came while nobody waited is pending and ends the next wait.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include <mproc/common.h>

#include "base/error.hpp"
#include "base/futex.hpp"

namespace mproc {

uint32_t interrupt_generation();
// True when an interrupt came after `gen` was read, or one is pending (which this consumes).
bool interrupted_since(uint32_t gen);
void interrupt_now();
// Install (or remove) a SIGINT handler that calls interrupt_now(). 0 or -1 (errno set).
int install_sigint(bool on);

// The longest a wait sleeps before it looks for an interrupt again.
constexpr double kInterruptSlice = 0.05;

// One blocking call's watch for mproc_interrupt(): the generation at the call's start. The
// call sleeps at most kInterruptSlice at a time (slice()), so an interrupt made by another
// thread, whose signal did not reach the sleeper, is seen within a slice.
class InterruptWatch {
 public:
  InterruptWatch() : gen_(interrupt_generation()) {}
  bool fired() const { return interrupted_since(gen_); }
  static Deadline slice(const Deadline &d) {
    return Deadline::earlier(d, Deadline::after(kInterruptSlice));
  }

 private:
  uint32_t gen_;
};

// The error every interrupted blocking call returns (recorded).
inline int interrupted() { return fail(MPROC_EINTR, "interrupted (mproc_interrupt)"); }

// Wait on cv until pred(), the deadline, or an interrupt. 0, MPROC_ETIMEDOUT or MPROC_EINTR.
template <class Pred>
int wait_interruptible(std::unique_lock<std::mutex> &g, std::condition_variable &cv,
                       const Deadline &d, Pred pred) {
  const uint32_t gen = interrupt_generation();
  for (;;) {
    if (pred()) return 0;
    if (interrupted_since(gen)) return MPROC_EINTR;
    if (d.expired()) return MPROC_ETIMEDOUT;
    double slice = kInterruptSlice;
    if (!d.infinite) {
      double left = d.poll_ms() / 1000.0;
      if (left < slice) slice = left > 0.001 ? left : 0.001;
    }
    cv.wait_for(g, std::chrono::duration<double>(slice));
  }
}

}  // namespace mproc
