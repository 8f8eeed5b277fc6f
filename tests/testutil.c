#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

static int g_base_fds = -1;
static int g_base_shm = -1;

static int count_dir(const char *path, const char *prefix) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  closedir(d);
  return n;
}

int tu_count_fds(void) { return count_dir("/proc/self/fd", "") - 1; /* opendir's own fd */ }

/* Creator pid in the 64-byte trailer of an mproc named block (runtime/shm/named.cpp), or 0. */
static long shm_creator(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  uint64_t t[3] = {0, 0, 0};
  long pid = 0;
  if (fseek(f, -64, SEEK_END) == 0 && fread(t, sizeof t, 1, f) == 1) pid = (long)t[2];
  fclose(f);
  return pid;
}

/* True for this process, a descendant, or a process that is gone (it may have been ours): names
 * made by other programs on the machine (other test runs at the same time) are not ours. */
static int pid_is_ours(long pid) {
  while (pid > 1) {
    if (pid == (long)getpid()) return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    long ppid = 0;
    if (!rp || sscanf(rp + 1, " %*c %ld", &ppid) != 1) return 1;
    pid = ppid;
  }
  return 0;
}

int tu_count_shm(void) {
  DIR *d = opendir("/dev/shm");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, "mproc", 5) == 0 && pid_is_ours(shm_creator(e->d_name))) n++;
  closedir(d);
  return n;
}

double tu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tu_wait_pid_gone(int pid, double seconds) {
  int fd = pidfd_open(pid, 0);
  if (fd < 0) return errno == ESRCH;
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, (int)(seconds * 1000));
  close(fd);
  return r == 1;
}

void tu_apply_filter(void) {
  const char *f = getenv("MPROC_TEST_FILTER");
  if (f && *f) cmocka_set_test_filter(f);
}

static int noop_body(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 0;
}

int tu_group_setup(void **state) {
  (void)state;
  /* Warm-up: libuv opens process-wide fds on first loop init; they are not a leak. */
  mproc_process_t *p = NULL;
  if (mproc_process_new(&p, noop_body, NULL, 0, NULL) != 0) return -1;
  if (mproc_process_start(p) != 0 || mproc_process_join(p, -1) != 0) return -1;
  mproc_process_free(p);
  mproc_shutdown();
  g_base_fds = tu_count_fds();
  g_base_shm = tu_count_shm();
  return 0;
}

/* Kill every child of this process (the children of each of its threads). */
static int kill_children(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
      if (kill(pid, SIGKILL) == 0) n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

/* mproc_shutdown() joins the children a test left running, as multiprocessing does at exit. A
 * test that failed before it ended its children would then hang until CTest's timeout with its
 * failure unprinted: after kShutdownGrace seconds the watchdog kills them, and the teardown fails
 * saying so. */
enum { kShutdownGrace = 30 };
static pthread_mutex_t g_wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wd_cv = PTHREAD_COND_INITIALIZER;
static int g_wd_done, g_wd_killed;

static void *shutdown_watchdog(void *arg) {
  (void)arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += kShutdownGrace;
  pthread_mutex_lock(&g_wd_mu);
  int r = 0;
  while (!g_wd_done && r != ETIMEDOUT) r = pthread_cond_timedwait(&g_wd_cv, &g_wd_mu, &until);
  if (!g_wd_done) g_wd_killed = kill_children();
  pthread_mutex_unlock(&g_wd_mu);
  return NULL;
}

int tu_teardown(void **state) {
  (void)state;
  pthread_t wd;
  g_wd_done = 0;
  g_wd_killed = 0;
  int have_wd = pthread_create(&wd, NULL, shutdown_watchdog, NULL) == 0;
  int rc = mproc_shutdown();
  if (have_wd) {
    pthread_mutex_lock(&g_wd_mu);
    g_wd_done = 1;
    pthread_cond_signal(&g_wd_cv);
    pthread_mutex_unlock(&g_wd_mu);
    pthread_join(wd, NULL);
  }
  if (g_wd_killed)
    fail_msg("%d child process(es) still ran %d s after the test: killed", g_wd_killed,
             kShutdownGrace);
  assert_int_equal(rc, 0);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
  if (!(r < 0 && errno == ECHILD))
    fail_msg("a child is left behind (pid %d)", (int)si.si_pid);
  int fds = tu_count_fds();
  if (fds != g_base_fds) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd >&2", (int)getpid());
    if (system(cmd) < 0) perror("system");
    fail_msg("fd leak: %d open, %d at the start", fds, g_base_fds);
  }
  /* /dev/shm is shared with every test running on the machine: an entry of another program's
   * test goes away within a moment, a leak of ours stays. */
  int shm = tu_count_shm();
  for (int i = 0; i < 40 && shm > g_base_shm; i++) {
    usleep(50000);
    shm = tu_count_shm();
  }
  if (shm > g_base_shm) fail_msg("/dev/shm has %d entries, %d at the start", shm, g_base_shm);
  return 0;
}

mproc_process_t *tu_start(mproc_process_fn fn, const void *arg, size_t len, int method, int daemon,
                          void *payload) {
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.start_method = method;
  o.daemon = daemon;
  o.payload = payload;
  mproc_process_t *p = NULL;
  assert_int_equal(mproc_process_new(&p, fn, arg, len, &o), 0);
  assert_int_equal(mproc_process_start(p), 0);
  return p;
}

int tu_join_code(mproc_process_t *p) {
  int code = -1000;
  /* generous, and with the teardown's 30 s still short of CTest's 120: a child that never
   * ends fails the test with its message */
  int rc = mproc_process_join(p, 60);
  if (rc != 0) {
    mproc_process_kill(p);
    mproc_process_join(p, 10);
    mproc_process_free(p);
    if (rc == MPROC_ETIMEDOUT) fail_msg("the child did not end within 60 s: killed");
    fail_msg("join failed (%d): %s", rc, mproc_last_error());
  }
  assert_int_equal(mproc_process_exitcode(p, &code), 0);
  assert_int_equal(mproc_process_free(p), 0);
  return code;
}

char tu_proc_state(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

long tu_cpu_ms_since(const struct rusage *a) {
  struct rusage b;
  getrusage(RUSAGE_SELF, &b);
  long us = (b.ru_utime.tv_sec - a->ru_utime.tv_sec) * 1000000L +
            (b.ru_utime.tv_usec - a->ru_utime.tv_usec) +
            (b.ru_stime.tv_sec - a->ru_stime.tv_sec) * 1000000L +
            (b.ru_stime.tv_usec - a->ru_stime.tv_usec);
  return us / 1000;
}
