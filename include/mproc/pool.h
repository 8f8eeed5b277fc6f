/* mproc: process pools (the counterpart of multiprocessing.Pool) that never hang: a worker that
 * dies fails only its task and is replaced. Long form: docs/pool.md. */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_pool mproc_pool_t;
typedef struct mproc_async mproc_async_t;       /* an async result, or a map's iterator */
typedef struct mproc_task_ctx mproc_task_ctx_t; /* what a running task reports through */

/* A task: runs in a worker on its own copy of arg. Return 0 after mproc_task_return() (or with
 * no result), or a non-zero code of yours, best with mproc_task_fail() for the message. */
typedef int (*mproc_task_fn)(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload);
/* One element of a fixed-size map: read *in, write *out. Non-zero fails that element. */
typedef int (*mproc_elem_fn)(const void *in, void *out, void *payload);
/* Runs once in each new worker before its first task; non-zero (use mproc_task_fail() for a
 * message) stops the pool with MPROC_EINITFAILED instead of restarting workers forever. */
typedef int (*mproc_init_fn)(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload);
/* Completion callbacks run in the parent, never in a worker: on the pool's dispatcher thread, or
 * on a thread blocked in this pool's apply/map/map_fixed (it does the dispatcher's work while it
 * waits). They must not block on the same pool (no get/join there); r stays owned by the caller. */
typedef void (*mproc_async_cb)(mproc_async_t *r, void *payload);
/* Supplies a lazy map's next argument: set *arg and *len (the bytes are copied before the next
 * call) and return 1, or return 0 at the end of the input (a negative value also ends it and
 * becomes the iteration's error). Runs on the pool's dispatcher thread. */
typedef int (*mproc_next_fn)(const void **arg, size_t *len, void *payload);
/* Progress of a map: items done so far and the total (0 when not known yet: lazy maps). Runs
 * where completion callbacks run. */
typedef void (*mproc_progress_cb)(size_t done, size_t total, void *payload);

/* ---- in a task -------------------------------------------------------------------------- */
/* Set the task's result (copied; replaces an earlier one). Errors: MPROC_EINVAL. */
MPROC_API int mproc_task_return(mproc_task_ctx_t *ctx, const void *data, size_t len);
/* Record a failure message (printf-style) and return `code` (made MPROC_ETASKFAILED if 0), so
 * a task can `return mproc_task_fail(ctx, 3, "bad input %d", x);`. */
MPROC_API int mproc_task_fail(mproc_task_ctx_t *ctx, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Fail with `code` (made MPROC_ETASKFAILED if 0) and bytes of any length as the failure's
 * payload (e.g. a serialized exception): the caller gets them as the item's data. Returns code. */
MPROC_API int mproc_task_fail_bytes(mproc_task_ctx_t *ctx, int code, const void *data, size_t len);
/* Index (0..workers-1) of the worker slot running the task. */
MPROC_API int mproc_task_worker(const mproc_task_ctx_t *ctx);

/* ---- task names ------------------------------------------------------------------------- */
/* A pool whose workers run other images of the program (MPI ranks, possibly on other machines)
 * cannot be handed function addresses: it sends the name a function was registered under, and
 * the worker runs its own function of that name. Register the same names in every process (at
 * the start of main, before mproc_mpi_init). Local pools take any function, registered or not.
 * Names: 1..255 bytes. Registering a name again with the same function is a no-op. Errors:
 * MPROC_EINVAL (NULL/empty name or NULL function), MPROC_ENAMETOOLONG, MPROC_EEXIST (the name,
 * or the function, is registered already with another function or name). */
MPROC_API int mproc_task_register(const char *name, mproc_task_fn fn);
MPROC_API int mproc_elem_register(const char *name, mproc_elem_fn fn);
MPROC_API int mproc_init_register(const char *name, mproc_init_fn fn);
/* The name fn (a task, element or init function) was registered under, or NULL. */
MPROC_API const char *mproc_task_name(const void *fn);

/* ---- pools ------------------------------------------------------------------------------ */
/* Every blocking call below (apply, map, get, wait, next, join) also returns MPROC_EINTR when
 * mproc_interrupt() is called, e.g. by Ctrl-C with mproc_handle_sigint(1); the work goes on in
 * the pool until it is terminated. */
typedef struct mproc_pool_opts {
  size_t size;                 /* sizeof(mproc_pool_opts_t) */
  int workers;                 /* 0: mproc_cpu_count() */
  int start_method;            /* mproc_start_method_t; 0: the runtime's default */
  mproc_init_fn initializer;   /* NULL: none */
  const void *init_arg;        /* copied */
  size_t init_arg_len;
  int max_tasks_per_child;     /* 0: unlimited; else a worker is replaced after that many tasks */
  double task_timeout;         /* seconds; <= 0: none. A task over it fails with ETIMEDOUT and
                                  its worker is killed and replaced */
  void *payload;               /* passed to tasks and the initializer (valid in forked workers) */
  size_t ring_bytes;           /* per worker and direction; 0: 1 MiB. Larger messages stream */
  const char *backend;         /* where the workers run: "local" (processes of this machine) or
                                  a registered backend such as "mpi" (MPI ranks: mproc/mpi.h).
                                  NULL: the MPROC_POOL_BACKEND environment variable, else local */
  const char *const *argv;     /* SPAWN workers: the program to exec, as mproc_process_opts_t's
                                  argv (NULL: this program). Tasks, element functions and the
                                  initializer must be registered by name before the pool starts */
} mproc_pool_opts_t;
#define MPROC_POOL_OPTS_INIT \
  { sizeof(mproc_pool_opts_t), 0, 0, NULL, NULL, 0, 0, 0.0, NULL, 0, NULL, NULL }
/* Fill opts with defaults. Errors: MPROC_EINVAL. */
MPROC_API int mproc_pool_opts_init(mproc_pool_opts_t *opts);

/* Options of one submission (apply_async, map_async, imap). */
typedef struct mproc_async_opts {
  size_t size;                 /* sizeof(mproc_async_opts_t) */
  mproc_async_cb callback;       /* on success */
  mproc_async_cb error_callback; /* on failure */
  void *cb_payload;
  double timeout;              /* per task (per chunk for maps); 0: the pool's task_timeout */
  size_t chunksize;            /* maps: 0 = Python's rule ceil(n / (4 * workers)) */
  mproc_progress_cb progress;  /* maps: NULL = none */
  void *progress_payload;
} mproc_async_opts_t;
#define MPROC_ASYNC_OPTS_INIT { sizeof(mproc_async_opts_t), NULL, NULL, NULL, 0.0, 0, NULL, NULL }
/* Fill opts with defaults. Errors: MPROC_EINVAL. */
MPROC_API int mproc_async_opts_init(mproc_async_opts_t *opts);

/* Start a pool; opts may be NULL. Errors: MPROC_EINVAL (workers < 0 or > 4096, bad opts),
 * MPROC_EAGAIN/ENOMEM (fork failed). Free with mproc_pool_free(). */
MPROC_API int mproc_pool_new(mproc_pool_t **out, const mproc_pool_opts_t *opts);
/* Number of worker slots. */
MPROC_API int mproc_pool_workers(const mproc_pool_t *pool);

/* Run fn(arg) in a worker and wait. On success *out (when out is not NULL) is a malloc'ed copy
 * of the result the caller frees with free(); *out_len its length. Errors: MPROC_ETASKFAILED
 * (the task's code: mproc_last_error() has its message), MPROC_EWORKERDIED, MPROC_ETIMEDOUT,
 * MPROC_EINITFAILED, MPROC_ECLOSED (pool closed or terminated), MPROC_EINVAL. */
MPROC_API int mproc_pool_apply(mproc_pool_t *pool, mproc_task_fn fn, const void *arg, size_t len,
                               void **out, size_t *out_len);
/* Submit fn(arg) (copied); *out is a result handle to free with mproc_async_free(). opts may
 * be NULL. Errors: MPROC_ECLOSED, MPROC_EINVAL, MPROC_EINITFAILED. */
MPROC_API int mproc_pool_apply_async(mproc_pool_t *pool, mproc_task_fn fn, const void *arg,
                                     size_t len, const mproc_async_opts_t *opts,
                                     mproc_async_t **out);

/* Map fn over n variable-size arguments (args[i], lens[i]; copied at submission) in chunks.
 * Every item runs; a failed item does not stop the others. The result handle gives each item
 * (mproc_async_item) and, when some failed, the lowest failing index. Blocking form: waits and
 * returns the result's code; *out is filled in any case (unless the call itself was refused)
 * and must be freed. Errors: as apply, plus MPROC_EINVAL (NULL args/lens with n > 0). */
MPROC_API int mproc_pool_map(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                             const size_t *lens, size_t n, size_t chunksize, mproc_async_t **out);
MPROC_API int mproc_pool_map_async(mproc_pool_t *pool, mproc_task_fn fn,
                                   const void *const *args, const size_t *lens, size_t n,
                                   const mproc_async_opts_t *opts, mproc_async_t **out);
/* Map over a fixed-size element array: out[i] = fn(in[i]), results written straight into the
 * caller's out array (in chunks, no per-item allocation). in and out must stay valid until the
 * result is ready. Blocking form returns the result's code; on failure *failed_index (if not
 * NULL) is the lowest failing element. Errors: as map; MPROC_EINVAL (NULL in/out with n > 0,
 * zero element size). */
MPROC_API int mproc_pool_map_fixed(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                   size_t in_size, void *out, size_t out_size, size_t n,
                                   size_t chunksize, size_t *failed_index);
MPROC_API int mproc_pool_map_fixed_async(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                         size_t in_size, void *out, size_t out_size, size_t n,
                                         const mproc_async_opts_t *opts, mproc_async_t **out_r);
/* Iterate over a map's results as they come: ordered (imap) or in completion order
 * (imap_unordered). Read them with mproc_async_next(); free with mproc_async_free(). */
MPROC_API int mproc_pool_imap(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                              const size_t *lens, size_t n, int ordered,
                              const mproc_async_opts_t *opts, mproc_async_t **out);

/* imap over an input read lazily through next(): at most max_inflight items (0: 4 * workers *
 * chunksize) are taken from the input and not yet read back with mproc_async_next(), so an
 * endless input keeps memory flat. Ordered or not as mproc_pool_imap. If the pool is closed
 * (terminated) before the input ends, the input is no longer read: the results of what was taken
 * still come, then mproc_async_next() reports MPROC_ECLOSED (MPROC_ECANCELED) once, then
 * MPROC_EITEREND. Errors: as mproc_pool_imap. */
MPROC_API int mproc_pool_imap_lazy(mproc_pool_t *pool, mproc_task_fn fn, mproc_next_fn next,
                                   void *next_payload, int ordered, size_t max_inflight,
                                   const mproc_async_opts_t *opts, mproc_async_t **out);

/* No new work; what is queued still runs. Errors: MPROC_EBADF. */
MPROC_API int mproc_pool_close(mproc_pool_t *pool);
/* Stop now: workers are killed (SIGKILL), pending results fail with MPROC_ECANCELED. */
MPROC_API int mproc_pool_terminate(mproc_pool_t *pool);
/* Wait for the workers to end after close/terminate; timeout in seconds (< 0: forever).
 * Errors: MPROC_EINVAL (neither closed nor terminated, as Python's ValueError), MPROC_ETIMEDOUT. */
MPROC_API int mproc_pool_join(mproc_pool_t *pool, double timeout);
/* Terminate (if still running), join and release. Result handles stay valid: those not ready
 * fail with MPROC_ECANCELED. NULL is a no-op. */
MPROC_API int mproc_pool_free(mproc_pool_t *pool);

/* ---- results ---------------------------------------------------------------------------- */
/* Wait for the result (timeout in seconds, < 0 forever). 0 on success with *data and *len (owned
 * by r, may be NULL) the result of an apply (on a task failure: its message or failure bytes);
 * else the task's failure: MPROC_ETASKFAILED,
 * MPROC_EWORKERDIED, MPROC_ETIMEDOUT (the task's), MPROC_ECANCELED, MPROC_EINITFAILED; and
 * MPROC_EAGAIN when the wait itself timed out (the result is not ready yet). */
MPROC_API int mproc_async_get(mproc_async_t *r, double timeout, const void **data, size_t *len);
/* Wait until ready. 0, or MPROC_EAGAIN when the wait timed out. */
MPROC_API int mproc_async_wait(mproc_async_t *r, double timeout);
/* Wait until one of rs[0..n) is ready and return its index (the lowest ready one), as
 * concurrent.futures.wait(FIRST_COMPLETED). Errors: MPROC_EINVAL (NULL or empty list, a bad
 * handle), MPROC_EAGAIN (timeout), MPROC_EINTR. */
MPROC_API int mproc_async_wait_any(mproc_async_t *const *rs, size_t n, double timeout);
/* 1 if ready, 0 if not, or a negative error. */
MPROC_API int mproc_async_ready(const mproc_async_t *r);
/* 1 if ready and successful, 0 if ready and failed; MPROC_EAGAIN if not ready (Python raises). */
MPROC_API int mproc_async_successful(const mproc_async_t *r);
/* Number of items (1 for apply). */
MPROC_API size_t mproc_async_count(const mproc_async_t *r);
/* Item i of a ready map: 0 with its bytes (owned by r), or the item's failure code with its
 * message (or mproc_task_fail_bytes data) as the bytes. For a
 * fixed-size map the items are in the caller's out array: this gives only the code. */
MPROC_API int mproc_async_item(const mproc_async_t *r, size_t i, const void **data, size_t *len);
/* Next result of an imap: 0 with its index and bytes (owned by r, valid until the next call),
 * the item's failure code (index set: the iteration goes on), MPROC_EITEREND after the last,
 * or MPROC_EAGAIN when the timeout passed first. */
MPROC_API int mproc_async_next(mproc_async_t *r, double timeout, size_t *index, const void **data,
                               size_t *len);
/* The failure of a failed result: its task's own return code (0 if none), the lowest failing
 * index and the message (owned by r; "" when none). Errors: MPROC_EAGAIN (not ready). */
MPROC_API int mproc_async_error(const mproc_async_t *r, int *task_code, size_t *index,
                                const char **message);
/* Cancel: queued tasks are dropped, running ones have their worker killed and replaced; the
 * result fails with MPROC_ECANCELED. A ready result is not changed (returns 0). */
MPROC_API int mproc_async_cancel(mproc_async_t *r);
/* Release the handle (the work itself goes on if not ready). NULL is a no-op. */
MPROC_API int mproc_async_free(mproc_async_t *r);

/* ---- insight ---------------------------------------------------------------------------- */
typedef struct mproc_worker_stats {
  int pid;                     /* current process of the slot, 0 if none */
  unsigned long long tasks;    /* tasks (chunks) finished by this slot's workers */
  double busy_seconds;         /* time spent running tasks */
  int restarts;                /* workers that replaced a previous one in this slot */
  int last_exit;               /* exit code of the last replaced worker (-signal if killed) */
} mproc_worker_stats_t;

/* Statistics of up to cap worker slots into out; returns the number of slots. */
MPROC_API int mproc_pool_stats(const mproc_pool_t *pool, mproc_worker_stats_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_POOL_H */
