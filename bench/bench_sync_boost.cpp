// Boost.Interprocess peer of bench_sync.c: prints three numbers on one line:
//   ns per uncontended interprocess_mutex lock+unlock (thread CPU time, as bench_sync.c),
//   M locked increments/s from two forked processes,
//   us per interprocess_condition ping-pong round trip between two processes.
// Usage: bench_sync_boost SCALE
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/interprocess/sync/interprocess_condition.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace bi = boost::interprocess;

struct Shared {
  bi::interprocess_mutex mutex;
  bi::interprocess_condition cond;
  long counter = 0;
  int state = 0;
};

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static double cpu_now() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  long n = static_cast<long>(1e7 * scale) + 1000;
  long per = static_cast<long>(1e6 * scale) + 1000;
  long rounds = static_cast<long>(20000 * scale) + 100;
  void *mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto *sh = new (mem) Shared();

  double t0 = cpu_now();
  for (long i = 0; i < n; i++) {
    sh->mutex.lock();
    sh->mutex.unlock();
  }
  double ns = (cpu_now() - t0) / n * 1e9;

  t0 = now();
  pid_t p[2];
  for (int k = 0; k < 2; k++)
    if ((p[k] = fork()) == 0) {
      for (long i = 0; i < per; i++) {
        bi::scoped_lock<bi::interprocess_mutex> g(sh->mutex);
        sh->counter++;
      }
      _exit(0);
    }
  for (int k = 0; k < 2; k++) waitpid(p[k], nullptr, 0);
  double rate = 2.0 * per / (now() - t0) / 1e6;

  t0 = now();
  pid_t child = fork();
  if (child == 0) {
    {
      bi::scoped_lock<bi::interprocess_mutex> g(sh->mutex);
      for (long i = 0; i < rounds; i++) {
        while (sh->state != 1) sh->cond.wait(g);
        sh->state = 2;
        sh->cond.notify_all();
      }
    }  // released before _exit (Boost's mutex is not robust: a dead holder blocks everyone)
    _exit(0);
  }
  {
    bi::scoped_lock<bi::interprocess_mutex> g(sh->mutex);
    for (long i = 0; i < rounds; i++) {
      sh->state = 1;
      sh->cond.notify_all();
      while (sh->state != 2) sh->cond.wait(g);
    }
  }
  waitpid(child, nullptr, 0);
  double us = (now() - t0) / rounds * 1e6;
  printf("%g %g %g\n", ns, rate, us);
  return sh->counter == 2 * per ? 0 : 1;
}
