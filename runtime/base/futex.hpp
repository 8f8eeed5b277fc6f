// Futexes on 32-bit words in shared memory, and monotonic deadlines.
//
// The words live in MAP_SHARED memory, so the calls use the shared (not FUTEX_PRIVATE) form.
// Waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET), so a wait interrupted by
// a signal is simply retried against the same deadline: timeouts survive EINTR.
#pragma once
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace mproc {

// A spin-wait hint to the CPU (lets the sibling hyperthread run).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// CLOCK_MONOTONIC in nanoseconds.
inline uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

struct Deadline {
  bool infinite = true;
  struct timespec at = {0, 0};

  // seconds < 0: no deadline; 0: already expired (poll). The C shims refuse NaN; here it
  // polls rather than reach the undefined cast below.
  static Deadline after(double seconds) {
    Deadline d;
    if (seconds < 0) return d;
    if (seconds != seconds) seconds = 0;
    d.infinite = false;
    clock_gettime(CLOCK_MONOTONIC, &d.at);
    if (seconds > 1e9) seconds = 1e9;
    auto whole = static_cast<time_t>(seconds);
    long nsec = d.at.tv_nsec + static_cast<long>((seconds - static_cast<double>(whole)) * 1e9);
    d.at.tv_sec += whole + nsec / 1000000000L;
    d.at.tv_nsec = nsec % 1000000000L;
    return d;
  }
  // The deadline at `ns` on the CLOCK_MONOTONIC nanosecond scale of now_ns().
  static Deadline at_ns(uint64_t ns) {
    Deadline d;
    d.infinite = false;
    d.at.tv_sec = static_cast<time_t>(ns / 1000000000ULL);
    d.at.tv_nsec = static_cast<long>(ns % 1000000000ULL);
    return d;
  }
  // The deadline on that scale; UINT64_MAX when infinite.
  uint64_t ns() const {
    if (infinite) return UINT64_MAX;
    return static_cast<uint64_t>(at.tv_sec) * 1000000000ULL + static_cast<uint64_t>(at.tv_nsec);
  }
  // The earlier of two deadlines (a bounded sleep inside a caller's wait).
  static Deadline earlier(const Deadline &a, const Deadline &b) {
    if (a.infinite) return b;
    if (b.infinite) return a;
    if (a.at.tv_sec != b.at.tv_sec) return a.at.tv_sec < b.at.tv_sec ? a : b;
    return a.at.tv_nsec <= b.at.tv_nsec ? a : b;
  }
  bool expired() const {
    if (infinite) return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > at.tv_sec || (now.tv_sec == at.tv_sec && now.tv_nsec >= at.tv_nsec);
  }
  // Seconds left (<= 0 when expired); only for a finite deadline.
  double seconds_left() const {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<double>(at.tv_sec - now.tv_sec) +
           static_cast<double>(at.tv_nsec - now.tv_nsec) / 1e9;
  }
  // Milliseconds left for poll(): -1 when infinite, 0 when expired.
  int poll_ms() const {
    if (infinite) return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (at.tv_sec - now.tv_sec) * 1000LL + (at.tv_nsec - now.tv_nsec) / 1000000LL;
    return ms <= 0 ? 0 : (ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms));
  }
};

// Sleep while *word == expected, until woken or the deadline. Returns 0 (woken or value
// changed), -ETIMEDOUT, or -EINTR (a signal; callers loop and re-check their condition).
inline int futex_wait(std::atomic<uint32_t> *word, uint32_t expected, const Deadline &d) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word layout");
  long r = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_BITSET, expected,
                   d.infinite ? nullptr : &d.at, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return 0;
  if (errno == EAGAIN) return 0;  // value already changed
  return -errno;
}

// Wake up to n waiters (INT32_MAX: all). Returns how many were woken.
inline int futex_wake(std::atomic<uint32_t> *word, int n) {
  long r = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, n, nullptr,
                   nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

}  // namespace mproc
