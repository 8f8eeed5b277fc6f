/* mproc: pool backends, for the writers of one (libmproc-mpi is one), not for applications.
 *
 * A backend moves the pool's messages between the caller and workers that are not child
 * processes of this machine: MPI ranks, for instance. The pool stays the same (chunking, async
 * results, callbacks, imap, errors); only the transport changes. Tasks travel by registered name
 * (mproc_task_register), so the workers may be other images of the program.
 *
 * The caller's side registers a transport under a name; mproc_pool_new with opts.backend set to
 * that name (or MPROC_POOL_BACKEND=name in the environment) makes a pool over it, one at a time.
 * Each worker process runs mproc_backend_serve() over its side of the transport. */
#ifndef MPROC_BACKEND_H
#define MPROC_BACKEND_H

#include <sys/uio.h>

#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_transport {
  size_t size;      /* sizeof(mproc_transport_t) */
  const char *name; /* what mproc_pool_opts_t.backend names, e.g. "mpi" (copied) */
  void *self;       /* the backend's own state, passed to every call */
  int nworkers;     /* caller side: workers reachable, numbered 0..nworkers-1 */
  /* Send one message, the concatenation of iov[0..iovcnt), without blocking for the peer (the
   * data is copied or sent before return): on the caller's side to worker `worker`, on a
   * worker's side to the caller (worker is -1). `what` describes the message for failure
   * reports ("task 'square' items 0..9"), or is NULL. 0, or a negative MPROC_E* code. */
  int (*send)(void *self, int worker, const struct iovec *iov, int iovcnt, const char *what);
  /* Take one message: on the caller's side from any worker (*worker says which), on a worker's
   * side from the caller (*worker = -1). Waits up to timeout seconds (0: only looks; < 0: for
   * ever). 1 with *msg (release it with release()) and *len; 0 when none came; MPROC_ECLOSED
   * when the caller ended the service (worker side); or another negative MPROC_E* code. */
  int (*recv)(void *self, double timeout, int *worker, void **msg, size_t *len);
  void (*release)(void *self, void *msg);
} mproc_transport_t;

/* Caller side: make `t` (copied; its self stays the backend's) available to mproc_pool_new
 * under t->name. Errors: MPROC_EINVAL (missing member, "local"), MPROC_EEXIST (name taken). */
MPROC_API int mproc_backend_register(const mproc_transport_t *t);
/* Forget a backend. Errors: MPROC_ENOENT (not registered), MPROC_EBUSY (a pool uses it). */
MPROC_API int mproc_backend_unregister(const char *name);
/* Worker side: run the caller's tasks as they come (their functions found by registered name;
 * `payload` is what they receive) until recv reports MPROC_ECLOSED (returns 0) or fails (returns
 * its code). `worker` is this worker's number, as mproc_task_worker() reports it. */
MPROC_API int mproc_backend_serve(const mproc_transport_t *t, int worker, void *payload);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_BACKEND_H */
