/* Ctrl-C: a real SIGINT sent to the process group of a program running a pool (the test binary
 * re-run in a helper mode) makes its blocking call return MPROC_EINTR; the program terminates
 * the pool and nothing of it is left behind. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

static int task_sleep(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)ctx, (void)arg, (void)len, (void)payload;
  usleep(200 * 1000);
  return 0;
}

static int body_sleep(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  /* Ctrl-C reaches this child too; it inherited the handler whose second Ctrl-C ends a process.
   * It is the parent's wait that is under test: the child ignores it. */
  signal(SIGINT, SIG_IGN);
  for (;;) pause();
  return 0;
}

/* The helper program: a map of 200 slow tasks, stopped by Ctrl-C. */
static int helper_ctrl_c(void) {
  if (mproc_handle_sigint(1) != 0) return 2;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = 2;
  mproc_pool_t *p;
  if (mproc_pool_new(&p, &o) != 0) return 3;
  /* A child process too: join is interrupted the same way. */
  mproc_process_t *child;
  if (mproc_process_new(&child, body_sleep, NULL, 0, NULL) || mproc_process_start(child)) return 4;
  static int xs[200];
  const void *args[200];
  size_t lens[200];
  for (int i = 0; i < 200; i++) args[i] = &xs[i], lens[i] = sizeof(int);
  printf("started\n");
  fflush(stdout);
  mproc_async_t *r = NULL;
  int rc = mproc_pool_map(p, task_sleep, args, lens, 200, 1, &r);
  if (rc != MPROC_EINTR) return 5;
  printf("interrupted: %s\n", mproc_last_error());
  mproc_pool_terminate(p);
  if (mproc_pool_join(p, -1) != 0) return 6;
  mproc_async_free(r);
  mproc_pool_free(p);
  /* the next blocking call is interrupted by the next Ctrl-C */
  printf("joining\n");
  fflush(stdout);
  rc = mproc_process_join(child, -1);
  printf("join: %s\n", mproc_err_name(rc));
  mproc_process_kill(child);
  mproc_process_join(child, -1);
  mproc_process_free(child);
  return rc == MPROC_EINTR ? 130 : 7;
}

static int read_line(int fd, char *buf, size_t cap, double seconds) {
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(seconds * 1000)) != 1) return -1;
    if (read(fd, buf + n, 1) != 1) return -1;
    if (buf[n++] == '\n') break;
  }
  buf[n] = 0;
  return (int)n;
}

static int group_members(int pgid) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[300], buf[512];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(buf, sizeof buf, f)) {
      char *p = strrchr(buf, ')'); /* fields after the command name */
      int ppid, pgrp;
      char st;
      if (p && sscanf(p + 2, "%c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid) n++;
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

static void test_interrupt_ctrl_c_stops_map_and_join(void **state) {
  (void)state;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = 0;
  int out[2];
  assert_int_equal(pipe(out), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0); /* its own group, as a shell job */
    dup2(out[1], 1);
    close(out[0]);
    setenv("MPROC_TEST_HELPER", "ctrl_c", 1);
    execl(self, self, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  setpgid(pid, pid);
  char line[512];
  assert_true(read_line(out[0], line, sizeof line, 30) > 0);
  assert_string_equal(line, "started\n");
  usleep(300 * 1000); /* let some tasks run */
  assert_int_equal(kill(-pid, SIGINT), 0); /* Ctrl-C: the whole group */
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_non_null(strstr(line, "interrupted: mproc_pool_map: interrupted"));
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_string_equal(line, "joining\n");
  usleep(100 * 1000);
  assert_int_equal(kill(-pid, SIGINT), 0);
  assert_true(read_line(out[0], line, sizeof line, 10) > 0);
  assert_string_equal(line, "join: MPROC_EINTR\n");
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 130);
  /* nothing of the program is left: no worker, zygote or child in its group */
  double t0 = tu_now();
  while (group_members(pid) > 0 && tu_now() - t0 < 5) usleep(10000);
  assert_int_equal(group_members(pid), 0);
  close(out[0]);
}

static void test_interrupt_pending_interrupt_ends_next_wait(void **state) {
  (void)state;
  mproc_process_t *p;
  assert_int_equal(mproc_process_new(&p, body_sleep, NULL, 0, NULL), 0);
  assert_int_equal(mproc_process_start(p), 0);
  mproc_interrupt(); /* nobody waits: pending */
  assert_int_equal(mproc_process_join(p, 5), MPROC_EINTR);
  assert_int_equal(mproc_process_join(p, 0.1), MPROC_ETIMEDOUT); /* consumed */
  assert_int_equal(mproc_process_kill(p), 0);
  assert_int_equal(mproc_process_join(p, -1), 0);
  assert_int_equal(mproc_process_free(p), 0);
  assert_int_equal(mproc_handle_sigint(1), 0);
  assert_int_equal(mproc_handle_sigint(0), 0);
}

int main(void) {
  const char *helper = getenv("MPROC_TEST_HELPER");
  if (helper && strcmp(helper, "ctrl_c") == 0) return helper_ctrl_c();
  const struct CMUnitTest tests[] = {
      TEST(interrupt, ctrl_c_stops_map_and_join),
      TEST(interrupt, pending_interrupt_ends_next_wait),
  };
  return tu_run("interrupt", tests);
}
