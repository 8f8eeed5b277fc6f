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
/* This process's rank and the job's size (after mproc_mpi_init; -1 before). */
MPROC_API int mproc_mpi_rank(void);
MPROC_API int mproc_mpi_size(void);
/* Rank 0: end the runtime's pools (mproc_shutdown), release the worker ranks and finalize MPI
 * if mproc_mpi_init started it. Also runs at exit. Repeated calls are no-ops. */
MPROC_API int mproc_mpi_finalize(void);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_MPI_H */
