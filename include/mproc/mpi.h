/* mproc-mpi: the pool with MPI ranks as its workers (libmproc-mpi, pkg-config mproc-mpi).
 *
 *   mpirun -n 3 ./app        rank 0 runs the program; ranks 1 and 2 are its pool's workers
 *
 * The program is the same as with a local pool: register the task functions by name (a rank
 * is another image of the program, possibly on another machine: function addresses mean
 * nothing there), call mproc_mpi_init() at the start of main, and make the pool with
 * opts.backend = "mpi" (or run it with MPROC_POOL_BACKEND=mpi in the environment). apply, map,
 * map_fixed, imap, async results, callbacks, chunking and errors work as with local workers.
 * Not on MPI: task timeouts and max_tasks_per_child (a rank cannot be killed and replaced), and
 * more than one MPI pool at a time. A task's payload argument is NULL on a rank.
 *
 * Failure model: Open MPI ends the whole job when a rank dies. Rank 0 then prints, for each
 * worker rank, the task it was running ("mproc-mpi: worker rank 2 was running task 'square'
 * (items 40..49)") and mpirun names the rank that died. Long form: docs/mpi.md. */
#ifndef MPROC_MPI_H
#define MPROC_MPI_H

#include "backend.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start MPI (MPI_Init_thread asking for MPI_THREAD_MULTIPLE, unless the program started it: it
 * must then provide at least MPI_THREAD_SERIALIZED). On rank 0 it returns 0 and the "mpi" pool
 * backend has ranks 1..N-1 as workers 0..N-2. On a worker rank it does not return: the rank runs
 * rank 0's tasks until rank 0 calls mproc_mpi_finalize() (or exits), then finalizes MPI and
 * exits with status 0. In a job of one rank it returns 0 and registers no backend (making an
 * "mpi" pool then fails with MPROC_ENOENT). argc/argv may be NULL. Errors: MPROC_EIO (MPI
 * failed), MPROC_EINVAL (the program's MPI has too little thread support). */
MPROC_API int mproc_mpi_init(int *argc, char ***argv);
/* For a binding that carries its own copy of the core (Python's _mproc does): start MPI as
 * mproc_mpi_init does, but return on every rank and register nothing. The caller then takes the
 * transport with mproc_mpi_transport() and registers it in its core (rank 0), or serves it with
 * its core's mproc_backend_serve(t, mproc_mpi_rank() - 1, payload) (worker ranks), and calls
 * mproc_mpi_finalize() at the end on every rank. Errors: as mproc_mpi_init; MPROC_ECLOSED after
 * mproc_mpi_finalize(). */
MPROC_API int mproc_mpi_start(int *argc, char ***argv);
/* The "mpi" transport (mproc/backend.h) of this rank: on rank 0 with the worker ranks as its
 * workers, on a worker rank its side of them. mproc_mpi_finalize() then leaves the pools to the
 * caller's core. Errors: MPROC_EINVAL (NULL, or before mproc_mpi_start), MPROC_ENOENT (rank 0 of
 * a job of one rank), MPROC_ECLOSED (after mproc_mpi_finalize). */
MPROC_API int mproc_mpi_transport(mproc_transport_t *out);
/* Rank 0: the pid worker `worker` (rank worker + 1) reported, or 0 when it has not yet been
 * heard from. Errors: MPROC_EINVAL (not rank 0, no such worker). */
MPROC_API int mproc_mpi_worker_pid(int worker);
/* This process's rank and the job's size (after mproc_mpi_init; -1 before). */
MPROC_API int mproc_mpi_rank(void);
MPROC_API int mproc_mpi_size(void);
/* Rank 0: end the runtime's pools (mproc_shutdown; not after mproc_mpi_transport: those pools
 * are the caller's to end first), release the worker ranks and finalize MPI if mproc started it.
 * A worker rank after mproc_mpi_start: wait until rank 0 ends the service (answering it if this
 * rank never served), then finalize MPI likewise. Also runs at exit. Repeated calls are no-ops. */
MPROC_API int mproc_mpi_finalize(void);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_MPI_H */
