#include "base/mutex.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/error.hpp"
#include "base/interrupt.hpp"

namespace mproc {

__thread uint32_t t_cached_tid __attribute__((tls_model("initial-exec"))) = 0;

namespace {
pthread_once_t g_tid_once = PTHREAD_ONCE_INIT;
void register_tid_reset() { pthread_atfork(nullptr, nullptr, &reset_tid_after_fork); }


// mutex_lock_slow's spin before sleeping (Go's runtime: active_spin 4 x 30, passive_spin 1).
constexpr int kSpinRounds = 4;
constexpr int kSpinPauses = 30;
constexpr int kSpinYields = 1;
}  // namespace

uint32_t current_tid_slow() {
  pthread_once(&g_tid_once, register_tid_reset);
  t_cached_tid = static_cast<uint32_t>(gettid());
  return t_cached_tid;
}

void reset_tid_after_fork() { t_cached_tid = 0; }

bool tid_alive(uint32_t tid) {
  char path[48];
  snprintf(path, sizeof path, "/proc/%u/stat", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT && errno != ESRCH;
  char buf[512];
  ssize_t n;
  do n = read(fd, buf, sizeof buf); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return false;  // a task being torn down reads empty
  const char *p = static_cast<const char *>(memrchr(buf, ')', static_cast<size_t>(n)));
  if (!p || p + 2 >= buf + n) return true;
  char st = p[2];
  return st != 'Z' && st != 'X' && st != 'x';
}

// ---- mutex ----------------------------------------------------------------------------------

int mutex_lock_slow(MutexWord *m, uint32_t tid, double timeout, bool interruptible) {
  // Spin a little before sleeping, as Go's runtime mutex does: a few rounds of pause-loops, then
  // one sched_yield (lets a preempted owner run on a busy machine), then the futex. Critical
  // sections are usually a few instructions long, and a sleep costs the owner a wake-up syscall.
  // Only loads while the word is held: a failing CAS would take the line from the owner.
  if (timeout != 0) {
    for (int round = 0; round < kSpinRounds + kSpinYields; round++) {
      uint32_t w = m->word.load(std::memory_order_relaxed);
      if (w == 0) {
        if (m->word.compare_exchange_weak(w, tid, std::memory_order_acquire,
                                          std::memory_order_relaxed))
          return 0;
        continue;
      }
      if (w & kMutexWaiters) break;           // others already sleep: join them
      if ((w & kMutexTidMask) == tid) break;  // our own: reported below
      if (round < kSpinRounds) {
        for (int k = 0; k < kSpinPauses; k++) cpu_relax();
      } else {
        sched_yield();
      }
    }
  }
  Deadline d = Deadline::after(timeout);
  const InterruptWatch watch;
  for (;;) {
    uint32_t w = m->word.load(std::memory_order_relaxed);
    if (w == 0) {
      // Keep the waiters bit: others may still sleep, so the next unlock must wake one.
      if (m->word.compare_exchange_strong(w, tid | kMutexWaiters, std::memory_order_acquire,
                                          std::memory_order_relaxed))
        return 0;
      continue;
    }
    if ((w & kMutexTidMask) == tid)  // only the owner may release: waiting could never end
      return fail(MPROC_EDEADLK, "the calling thread already holds this lock");
    if (!(w & kMutexWaiters)) {
      if (!m->word.compare_exchange_strong(w, w | kMutexWaiters, std::memory_order_relaxed))
        continue;
      w |= kMutexWaiters;
    }
    int r = futex_wait(&m->word, w, death_check_slice(d));
    if (interruptible && watch.fired()) return interrupted();
    if (r != -ETIMEDOUT) continue;  // woken, changed or EINTR: look again
    if (m->word.load(std::memory_order_relaxed) == w && !tid_alive(w & kMutexTidMask)) {
      if (m->word.compare_exchange_strong(w, tid | kMutexWaiters, std::memory_order_acquire,
                                          std::memory_order_relaxed))
        return fail(MPROC_EOWNERDEAD,
                    "the previous owner (thread %u) died holding the lock; the caller holds it "
                    "now and should repair the protected state",
                    w & kMutexTidMask);
      continue;
    }
    if (d.expired()) {
      uint32_t z = 0;
      if (m->word.compare_exchange_strong(z, tid | kMutexWaiters, std::memory_order_acquire,
                                          std::memory_order_relaxed))
        return 0;
      return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
    }
  }
}

bool mutex_unlock(MutexWord *m) {
  uint32_t tid = current_tid();
  uint32_t w = tid;
  if (m->word.compare_exchange_strong(w, 0, std::memory_order_release, std::memory_order_relaxed))
    return true;
  if ((w & kMutexTidMask) != tid) return false;
  mutex_unlock_contended(m);
  return true;
}

void mutex_unlock_contended(MutexWord *m) {
  // The waiters bit is set, so no one but us changes the word now: a plain store releases it.
  m->word.store(0, std::memory_order_release);
  futex_wake(&m->word, 1);
}

}  // namespace mproc
