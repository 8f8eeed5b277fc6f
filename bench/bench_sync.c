/* Synchronization beside its peers, in one run, as ratios:
 *  - lock + release, uncontended: mproc Lock vs Boost.Interprocess's interprocess_mutex, a raw
 *    atomic spinlock (the OS floor), a process-shared robust pthread mutex, and Python's
 *    multiprocessing.Lock
 *  - two processes each doing N locked increments of a shared counter (same peers)
 *  - the same with mproc's atomic fetch_add vs a raw atomic_fetch_add loop
 *  - event ping-pong between two processes (mproc Event vs Boost's and Python's Condition)
 * The machine is often shared, so the mproc and Boost figures are taken in several interleaved
 * rounds (the Boost peer runs once per round) and each is the median of its rounds; the
 * single-process loops are timed in thread CPU time (as the Boost peer does), so that time spent
 * preempted by other programs does not count. Rates between processes are wall-clock.
 * Usage: bench_sync [scale] [rounds]   (1.0: 1e7 uncontended ops, 1e6 increments per process;
 * 3 rounds) */
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

/* CPU time of the calling thread, for the single-process loops. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double median(const double *xs, int n) {
  double v[32];
  for (int i = 0; i < n; i++) v[i] = xs[i];
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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

  enum { MAX_ROUNDS = 15 };
  int rounds_n = argc > 2 ? atoi(argv[2]) : 3;
  if (rounds_n < 1) rounds_n = 1;
  if (rounds_n > MAX_ROUNDS) rounds_n = MAX_ROUNDS;
  double b_ns[MAX_ROUNDS], b_rate[MAX_ROUNDS], b_us[MAX_ROUNDS];
  double m_ns[MAX_ROUNDS], s_ns[MAX_ROUNDS], p_ns[MAX_ROUNDS];
  double m_rate[MAX_ROUNDS], s_rate[MAX_ROUNDS], p_rate[MAX_ROUNDS];
  double am_rate[MAX_ROUNDS], ar_rate[MAX_ROUNDS];
  double tot = 2.0 * per_proc;
  int exact = 1, atomic_exact = 1, have_boost = 1;
  for (int r = 0; r < rounds_n; r++) {
    double boost[3];
    boost_numbers(argv[0], scale, boost);
    if (boost[0] <= 0) have_boost = 0;
    b_ns[r] = boost[0], b_rate[r] = boost[1], b_us[r] = boost[2];

    double t0 = cpu_now();
    for (long i = 0; i < n; i++) {
      mproc_lock_acquire(lock, -1);
      mproc_lock_release(lock);
    }
    m_ns[r] = (cpu_now() - t0) / n * 1e9;
    t0 = cpu_now();
    for (long i = 0; i < n; i++) {
      spin_lock(&sh->spin);
      spin_unlock(&sh->spin);
    }
    s_ns[r] = (cpu_now() - t0) / n * 1e9;
    t0 = cpu_now();
    for (long i = 0; i < n; i++) {
      pthread_mutex_lock(&sh->mutex);
      pthread_mutex_unlock(&sh->mutex);
    }
    p_ns[r] = (cpu_now() - t0) / n * 1e9;

    sh->counter = 0;
    m_rate[r] = tot / two_procs(inc_mproc) / 1e6;
    if (sh->counter != (long)tot) exact = 0;
    sh->counter = 0;
    s_rate[r] = tot / two_procs(inc_spin) / 1e6;
    sh->counter = 0;
    p_rate[r] = tot / two_procs(inc_pthread) / 1e6;

    /* In the order raw, mproc, mproc, raw: neither side gains from running first or last. */
    int64_t before = 0, after = 0;
    double t_raw = two_procs(inc_atomic_raw);
    mproc_value_load(value, &before);
    double t_am = two_procs(inc_atomic_mproc) + two_procs(inc_atomic_mproc);
    mproc_value_load(value, &after);
    if (after - before != 2 * (int64_t)tot) atomic_exact = 0;
    t_raw += two_procs(inc_atomic_raw);
    am_rate[r] = 2 * tot / t_am / 1e6;
    ar_rate[r] = 2 * tot / t_raw / 1e6;
  }
  double ns_mproc = median(m_ns, rounds_n), ns_spin = median(s_ns, rounds_n);
  double ns_pth = median(p_ns, rounds_n);
  double r_mproc = median(m_rate, rounds_n), r_spin = median(s_rate, rounds_n);
  double r_pth = median(p_rate, rounds_n);
  double r_am = median(am_rate, rounds_n), r_ar = median(ar_rate, rounds_n);
  double ns_boost = median(b_ns, rounds_n), r_boost = median(b_rate, rounds_n);
  double us_boost = median(b_us, rounds_n);

  printf("synchronization, scale %g, median of %d rounds (lower ns is better, higher M/s is "
         "better)\n", scale, rounds_n);
  if (have_boost)
    printf("  Boost.Interprocess: lock+release %.1f ns | 2 processes locked increments %.2f M/s | "
           "condition ping-pong %.1f us\n", ns_boost, r_boost, us_boost);
  else
    printf("  Boost.Interprocess: n/a (bench_sync_boost is built when Boost is installed)\n");
  double ns_py = python_peer("py_sync.py", "lock", scale);
  printf("  lock+release, uncontended: mproc %6.1f ns | raw atomic %6.1f ns (%.2fx) | robust pthread "
         "%6.1f ns (%.2fx) | Python %6.1f ns (mproc %.0fx faster)\n",
         ns_mproc, ns_spin, ns_mproc / ns_spin, ns_pth, ns_mproc / ns_pth, ns_py,
         ns_py > 0 ? ns_py / ns_mproc : 0);
  double r_py = python_peer("py_sync.py", "contended", scale);
  printf("  2 processes, locked increments: mproc %6.2f M/s (%s) | raw spinlock %6.2f M/s | robust "
         "pthread %6.2f M/s | Python %6.2f M/s (mproc %.0fx)\n",
         r_mproc, exact ? "exact" : "WRONG", r_spin, r_pth, r_py, r_py > 0 ? r_mproc / r_py : 0);
  printf("  2 processes, atomic increments: mproc fetch_add %6.2f M/s (%s) | raw atomic_fetch_add "
         "%6.2f M/s (mproc at %.2fx of raw)\n",
         r_am, atomic_exact ? "exact" : "WRONG", r_ar, r_ar / r_am);
  if (have_boost) {
    /* Per-round ratios (each from figures of the same round), then their median. */
    double q_unc[MAX_ROUNDS], q_con[MAX_ROUNDS], q_atom[MAX_ROUNDS];
    for (int r = 0; r < rounds_n; r++) {
      q_unc[r] = m_ns[r] / b_ns[r];
      q_con[r] = m_rate[r] / b_rate[r];
      q_atom[r] = ar_rate[r] / am_rate[r];
    }
    printf("  targets (median of per-round ratios): uncontended mproc/Boost %.2fx (<= 1.10) | "
           "contended mproc/Boost rate %.2fx (>= 1.00) | atomics raw/mproc %.2fx (<= 1.20)\n",
           median(q_unc, rounds_n), median(q_con, rounds_n), median(q_atom, rounds_n));
  }

  /* Event ping-pong: the child waits for `ping`, clears it, sets `pong`, and back. */
  mproc_event_t *ping, *pong;
  mproc_event_new(&ping);
  mproc_event_new(&pong);
  long rounds = (long)(20000 * scale) + 100;
  double t0 = now();
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
  printf("  event ping-pong round trip: mproc %6.1f us | Boost Condition %6.1f us | Python "
         "Condition %6.1f us (mproc %.0fx)\n",
         us_pp, have_boost ? us_boost : -1, us_py, us_py > 0 ? us_py / us_pp : 0);
  mproc_event_free(ping);
  mproc_event_free(pong);
  mproc_value_free(value);
  mproc_lock_free(lock);
  return 0;
}
