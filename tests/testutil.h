/* Shared by the cmocka suites: running one case by name and asserting that a test leaked
 * nothing (children, file descriptors, /dev/shm names). */
#ifndef MPROC_TESTUTIL_H
#define MPROC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Group setup: warm the runtime up once (libuv keeps a few process-wide fds), then record the
 * fd count and the /dev/shm listing as the baseline. */
int tu_group_setup(void **state);
/* Per-test teardown: mproc_shutdown(), then assert no child is left (waitid gives ECHILD), the
 * fd count is back to the baseline and no new /dev/shm entry exists. */
int tu_teardown(void **state);
/* Run the group, honouring MPROC_TEST_FILTER (CTest runs one case per process). */
#define tu_run(name, tests) \
  (tu_apply_filter(), _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof((tests)[0]), \
                                              tu_group_setup, NULL))
void tu_apply_filter(void);

int tu_count_fds(void);
/* Number of /dev/shm entries named mproc* (every name mproc makes starts so). */
int tu_count_shm(void);
/* Wait (up to `seconds`) for an unrelated process to end, through a pidfd. 1 if it ended. */
int tu_wait_pid_gone(int pid, double seconds);
/* Monotonic seconds. */
double tu_now(void);
/* The state letter of /proc/<pid>/stat ('S' asleep, 'T' stopped, ...), or 0. */
char tu_proc_state(int pid);
/* CPU time (user + system, in ms) this process used since `before` (getrusage(RUSAGE_SELF)). */
struct rusage;
long tu_cpu_ms_since(const struct rusage *before);

/* Start fn(arg) as a child (asserting success); daemon and payload as mproc_process_opts_t. */
struct mproc_process;
struct mproc_process *tu_start(int (*fn)(void *, size_t, void *), const void *arg, size_t len,
                               int method, int daemon, void *payload);
/* Join, read the exit code and free (asserting success); returns the exit code. */
int tu_join_code(struct mproc_process *p);

#define TEST(area, name) cmocka_unit_test_teardown(test_##area##_##name, tu_teardown)

#endif
