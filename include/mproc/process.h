/* mproc: processes (the counterpart of multiprocessing.Process) and the runtime around them. */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_process mproc_process_t;

/* A process body. `arg` is the process's own copy of the argument buffer (NULL when len is 0);
 * `payload` is passed through unchanged (a pointer of the parent, valid in forked children).
 * The return value (0..255) becomes the exit code. */
typedef int (*mproc_process_fn)(void *arg, size_t len, void *payload);

/* How a child is made. DEFAULT follows mproc_set_start_method() (itself FORK by default). */
typedef enum mproc_start_method {
  MPROC_START_DEFAULT = 0,
  MPROC_START_FORK = 1,       /* fork() of the calling process: sees all its memory */
  MPROC_START_FORKSERVER = 2, /* fork() of a single-threaded helper made early: thread safe */
  MPROC_START_SPAWN = 3       /* exec of the program: no inherited memory, threads or locks */
} mproc_start_method_t;

/* Largest argument buffer a process accepts (bytes). */
#define MPROC_PROCESS_ARG_MAX ((size_t)1 << 30)
/* Longest process name (bytes, without the terminating NUL). */
#define MPROC_PROCESS_NAME_MAX 255

typedef struct mproc_process_opts {
  size_t size;      /* sizeof(mproc_process_opts_t); set by MPROC_PROCESS_OPTS_INIT */
  const char *name; /* NULL: "Process-N" */
  int daemon;       /* non-zero: killed when the parent exits or dies; never joined at exit */
  int start_method; /* mproc_start_method_t */
  void *payload;    /* passed to the body unchanged (must be NULL for SPAWN) */
  /* SPAWN only: the program to exec, argv[0] its path, NULL-terminated (NULL: this program with
   * its own arguments). It must call mproc_spawn_guard(). Copied by mproc_process_new(). */
  const char *const *argv;
  /* SPAWN only: fds the child gets at the same numbers (e.g. mproc_conn_fds()); others are not
   * inherited. Other start methods inherit every fd. */
  const int *fds;
  size_t nfds;
} mproc_process_opts_t;

#define MPROC_PROCESS_OPTS_INIT \
  { sizeof(mproc_process_opts_t), NULL, 0, MPROC_START_DEFAULT, NULL, NULL, NULL, 0 }
/* Fill opts with defaults. Errors: MPROC_EINVAL (NULL). */
MPROC_API int mproc_process_opts_init(mproc_process_opts_t *opts);

/* Make a process (not started). The argument is copied. opts may be NULL.
 * Errors: MPROC_EINVAL (NULL out/fn, NULL arg with len > 0, bad opts), MPROC_EMSGSIZE (len over
 * MPROC_PROCESS_ARG_MAX), MPROC_ENAMETOOLONG, MPROC_ENOMEM. Free with mproc_process_free(). */
MPROC_API int mproc_process_new(mproc_process_t **out, mproc_process_fn fn, const void *arg,
                                size_t len, const mproc_process_opts_t *opts);
/* Start the child. SPAWN waits until the child has reached mproc_spawn_guard() (see
 * docs/process.md). Errors: MPROC_ESTARTED (twice), MPROC_EAGAIN/ENOMEM (fork failed),
 * MPROC_EINVAL (SPAWN: body not registered), MPROC_ENOENT (SPAWN: the child has no function of
 * that name), MPROC_ECHILD (SPAWN: the program does not call mproc_spawn_guard()),
 * MPROC_EWRONGPROC, MPROC_EBADF. */
MPROC_API int mproc_process_start(mproc_process_t *p);
/* Wait for the child to end; timeout in seconds, negative waits forever, 0 polls.
 * Errors: MPROC_ETIMEDOUT, MPROC_ENOTSTARTED, MPROC_EWRONGPROC (called in the child itself). */
MPROC_API int mproc_process_join(mproc_process_t *p, double timeout);
/* 1 while started and not yet ended, 0 otherwise, or a negative error (MPROC_EBADF). */
MPROC_API int mproc_process_is_alive(const mproc_process_t *p);
/* The child's pid (> 0), or MPROC_ENOTSTARTED / MPROC_EBADF. */
MPROC_API int mproc_process_pid(const mproc_process_t *p);
/* Exit code once ended: the body's return or exit() status, or minus the signal number when a
 * signal killed it (as Python). Errors: MPROC_ENOTSTARTED, MPROC_ERUNNING (not ended yet). */
MPROC_API int mproc_process_exitcode(const mproc_process_t *p, int *out);
/* The name (owned by the handle, valid until free), or NULL for a bad handle. */
MPROC_API const char *mproc_process_name(const mproc_process_t *p);
/* Non-zero when the process is a daemon, 0 if not, negative on a bad handle. */
MPROC_API int mproc_process_daemon(const mproc_process_t *p);
/* A file descriptor that becomes readable when the child ends (owned by the handle: do not
 * close), for poll()/libuv. Errors: MPROC_ENOTSTARTED. */
MPROC_API int mproc_process_sentinel(const mproc_process_t *p);
/* Send SIGTERM / SIGKILL / any signal. Sending to an ended child is a no-op success.
 * Errors: MPROC_ENOTSTARTED, MPROC_EINVAL (bad signal). */
MPROC_API int mproc_process_terminate(mproc_process_t *p);
MPROC_API int mproc_process_kill(mproc_process_t *p);
MPROC_API int mproc_process_signal(mproc_process_t *p, int signo);
/* Release the handle. A child still running is not touched and MPROC_ERUNNING is returned
 * (join or kill it first; the handle stays valid). NULL is a no-op. */
MPROC_API int mproc_process_free(mproc_process_t *p);

/* Register a process body under a name, for the SPAWN start method (the child finds it by name).
 * Register the same names before mproc_spawn_guard(). Errors: MPROC_EINVAL, MPROC_ENAMETOOLONG,
 * MPROC_EEXIST (name or function registered already otherwise). */
MPROC_API int mproc_process_register(const char *name, mproc_process_fn fn);
/* Call early in main(), after registering bodies: returns 0 in a program not started by SPAWN;
 * in a spawned child it runs the body and exits (never returns). A spawned child that makes
 * another mproc call that starts processes before it exits at once, its parent told why. */
MPROC_API int mproc_spawn_guard(void);

/* ---- the runtime ------------------------------------------------------------------------ */

/* Default start method for MPROC_START_DEFAULT. Errors: MPROC_EINVAL, MPROC_ENOSYS. */
MPROC_API int mproc_set_start_method(int method);
/* The current default start method (a mproc_start_method_t). */
MPROC_API int mproc_get_start_method(void);
/* Start the forkserver helper now (call early, before the program makes threads); it is
 * otherwise started on first use. Errors: MPROC_EAGAIN, MPROC_EMFILE. */
MPROC_API int mproc_forkserver_start(void);

/* Whether a FORKSERVER start may restart a dead forkserver helper by itself (default 1). A
 * binding whose children need the forking thread to be in a given state (Python: holding the
 * GIL) turns it off and restarts the helper with mproc_forkserver_start(); a start then fails with
 * MPROC_EPIPE while the helper is gone. */
MPROC_API int mproc_set_forkserver_autorestart(int on);

/* Name of the calling process: "MainProcess" or the name given to this child. */
MPROC_API const char *mproc_current_name(void);
/* Pid of the process that started this one through mproc, or 0 in the main process. */
MPROC_API int mproc_parent_pid(void);
/* Copy up to cap handles of this process's children that are still alive into out (which may
 * be NULL when cap is 0) and return how many are alive (which may exceed cap), or an error. */
MPROC_API int mproc_active_children(mproc_process_t **out, size_t cap);

/* Make every blocking mproc call of this process that waits now return MPROC_EINTR (within
 * about 50 ms); when none waits, the next one does. Async-signal-safe: call it from a signal
 * handler. The work itself goes on (terminate a pool to stop it). */
MPROC_API void mproc_interrupt(void);
/* on != 0: install a SIGINT handler that calls mproc_interrupt(), so Ctrl-C makes the blocking
 * call return MPROC_EINTR (a second Ctrl-C before that ends the program as by default); on == 0:
 * put back the previous handler. Pool workers ignore SIGINT either way. Errors: MPROC_EINVAL. */
MPROC_API int mproc_handle_sigint(int on);

/* Orderly shutdown, also run at exit(): terminates daemon children, joins the others, stops
 * the supervisor thread and the forkserver. The runtime restarts lazily on next use. */
MPROC_API int mproc_shutdown(void);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_PROCESS_H */
