/* Synchronization beside its peers, in one run, as ratios:
 *  - lock + release, uncontended: mproc Lock vs a raw atomic spinlock (the OS floor) and a
 *    process-shared robust pthread mutex, and Python's multiprocessing.Lock
 *  - two processes each doing N locked increments of a shared counter (same peers)
 *  - the same with mproc's atomic fetch_add vs a raw atomic_fetch_add loop
 *  - event ping-pong between two processes (mproc Event vs Python's Condition)
 * Usage: bench_sync [scale]   (1.0: 1e7 uncontended ops, 1e6 increments per process) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

struct shared {
  atomic_int spin;
  pthread_mutex_t mutex;
  long counter;
  atomic_long atomic_counter;
};

static struct shared *sh;
static mproc_lock_t *lock;
static mproc_value_t *value;
static long per_proc;

static void spin_lock(atomic_int *l) {
  int z = 0;
  while (!atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire, memory_order_relaxed)) {
    z = 0;
    sched_yield();
  }
}
static void spin_unlock(atomic_int *l) { atomic_store_explicit(l, 0, memory_order_release); }

/* Two forked processes run body(); returns the wall time. */
static double two_procs(void (*body)(void)) {
  double t0 = now();
  pid_t p[2];
  for (int i = 0; i < 2; i++)
    if ((p[i] = fork()) == 0) {
      body();
      _exit(0);
    }
  for (int i = 0; i < 2; i++) waitpid(p[i], NULL, 0);
  return now() - t0;
}

static void inc_mproc(void) {
  for (long i = 0; i < per_proc; i++) {
    mproc_lock_acquire(lock, -1);
    sh->counter++;
    mproc_lock_release(lock);
  }
}
static void inc_spin(void) {
  for (long i = 0; i < per_proc; i++) {
    spin_lock(&sh->spin);
    sh->counter++;
    spin_unlock(&sh->spin);
  }
}
static void inc_pthread(void) {
  for (long i = 0; i < per_proc; i++) {
    pthread_mutex_lock(&sh->mutex);
    sh->counter++;
    pthread_mutex_unlock(&sh->mutex);
  }
}
static void inc_atomic_mproc(void) {
  for (long i = 0; i < per_proc; i++) mproc_value_fetch_add(value, 1, NULL);
}
static void inc_atomic_raw(void) {
  for (long i = 0; i < per_proc; i++) atomic_fetch_add(&sh->atomic_counter, 1);
}

/* The Boost.Interprocess peer, built next to this program when Boost is installed:
 * {ns uncontended, M/s contended, us ping-pong}, or -1s. */
static void boost_numbers(const char *self, double scale, double out[3]) {
  out[0] = out[1] = out[2] = -1;
  char dir[4096], cmd[4500];
  snprintf(dir, sizeof dir, "%s", self);
  char *slash = strrchr(dir, '/');
  if (!slash) return;
  *slash = 0;
  snprintf(cmd, sizeof cmd, "%s/bench_sync_boost %g 2>/dev/null", dir, scale);
  FILE *f = popen(cmd, "r");
  if (!f) return;
  if (fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3) out[0] = out[1] = out[2] = -1;
  pclose(f);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  long n = (long)(1e7 * scale) + 1000;
  per_proc = (long)(1e6 * scale) + 1000;
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&sh->mutex, &ma);
  if (mproc_lock_new(&lock)) return 1;
  mproc_value_opts_t vo = MPROC_VALUE_OPTS_INIT;
  vo.raw = 1;
  long zero = 0;
  if (mproc_value_new(&value, 'l', &zero, &vo)) return 1;

  double boost[3];
  boost_numbers(argv[0], scale, boost);
  printf("synchronization, scale %g (lower ns is better, higher M/s is better)\n", scale);
  if (boost[0] > 0)
    printf("  Boost.Interprocess: lock+release %.1f ns | 2 processes locked increments %.2f M/s | "
           "condition ping-pong %.1f us\n", boost[0], boost[1], boost[2]);
  else
    printf("  Boost.Interprocess: n/a (bench_sync_boost is built when Boost is installed)\n");
  double t0 = now();
  for (long i = 0; i < n; i++) {
    mproc_lock_acquire(lock, -1);
    mproc_lock_release(lock);
  }
  double ns_mproc = (now() - t0) / n * 1e9;
  t0 = now();
  for (long i = 0; i < n; i++) {
    spin_lock(&sh->spin);
    spin_unlock(&sh->spin);
  }
  double ns_spin = (now() - t0) / n * 1e9;
  t0 = now();
  for (long i = 0; i < n; i++) {
    pthread_mutex_lock(&sh->mutex);
    pthread_mutex_unlock(&sh->mutex);
  }
  double ns_pth = (now() - t0) / n * 1e9;
  double ns_py = python_peer("py_sync.py", "lock", scale);
  printf("  lock+release, uncontended: mproc %6.1f ns | raw atomic %6.1f ns (%.2fx) | robust pthread "
         "%6.1f ns (%.2fx) | Python %6.1f ns (mproc %.0fx faster)\n",
         ns_mproc, ns_spin, ns_mproc / ns_spin, ns_pth, ns_mproc / ns_pth, ns_py,
         ns_py > 0 ? ns_py / ns_mproc : 0);

  double tot = 2.0 * per_proc;
  sh->counter = 0;
  double r_mproc = tot / two_procs(inc_mproc) / 1e6;
  long ok = sh->counter;
  sh->counter = 0;
  double r_spin = tot / two_procs(inc_spin) / 1e6;
  sh->counter = 0;
  double r_pth = tot / two_procs(inc_pthread) / 1e6;
  double r_py = python_peer("py_sync.py", "contended", scale);
  printf("  2 processes, locked increments: mproc %6.2f M/s (%s) | raw spinlock %6.2f M/s | robust "
         "pthread %6.2f M/s | Python %6.2f M/s (mproc %.0fx)\n",
         r_mproc, ok == (long)tot ? "exact" : "WRONG", r_spin, r_pth, r_py,
         r_py > 0 ? r_mproc / r_py : 0);

  double r_am = tot / two_procs(inc_atomic_mproc) / 1e6;
  double r_ar = tot / two_procs(inc_atomic_raw) / 1e6;
  int64_t final = 0;
  mproc_value_load(value, &final);
  printf("  2 processes, atomic increments: mproc fetch_add %6.2f M/s (%s) | raw atomic_fetch_add "
         "%6.2f M/s (mproc at %.2fx of raw)\n",
         r_am, final == (int64_t)tot ? "exact" : "WRONG", r_ar, r_ar / r_am);

  /* Event ping-pong: the child waits for `ping`, clears it, sets `pong`, and back. */
  mproc_event_t *ping, *pong;
  mproc_event_new(&ping);
  mproc_event_new(&pong);
  long rounds = (long)(20000 * scale) + 100;
  t0 = now();
  pid_t child = fork();
  if (child == 0) {
    for (long i = 0; i < rounds; i++) {
      mproc_event_wait(ping, -1);
      mproc_event_clear(ping);
      mproc_event_set(pong);
    }
    _exit(0);
  }
  for (long i = 0; i < rounds; i++) {
    mproc_event_set(ping);
    mproc_event_wait(pong, -1);
    mproc_event_clear(pong);
  }
  waitpid(child, NULL, 0);
  double us_pp = (now() - t0) / rounds * 1e6;
  double us_py = python_peer("py_sync.py", "pingpong", scale);
  printf("  event ping-pong round trip: mproc %6.1f us | Python Condition %6.1f us (mproc %.0fx)\n",
         us_pp, us_py, us_py > 0 ? us_py / us_pp : 0);
  mproc_event_free(ping);
  mproc_event_free(pong);
  mproc_value_free(value);
  mproc_lock_free(lock);
  return 0;
}
