/* The tutorial's Pool(3).map(square, [1, 2, 3, 4, 5]), on MPI ranks or on local processes: the
 * same program, the backend is an option.
 *
 *   ./mpi_squares                       three local worker processes
 *   mpirun -n 4 ./mpi_squares --mpi     ranks 1..3 are the workers (on a cluster: -hostfile)
 *
 * Both print "Squares: [1, 4, 9, 16, 25]" after about two seconds. The task is registered by
 * name: a rank is another image of the program, where function addresses mean nothing. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>
#include <mproc/mpi.h>

static int square(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int x;
  memcpy(&x, arg, sizeof x);
  sleep(1);
  int y = x * x;
  return mproc_task_return(ctx, &y, sizeof y);
}

int main(int argc, char **argv) {
  mproc_task_register("square", square);
  int mpi = argc > 1 && strcmp(argv[1], "--mpi") == 0;
  if (mpi && mproc_mpi_init(&argc, &argv) != 0) return 1; /* worker ranks stay in there */

  mproc_pool_opts_t opts = MPROC_POOL_OPTS_INIT;
  opts.backend = mpi ? "mpi" : "local";
  opts.workers = mpi ? 0 : 3; /* 0 on MPI: every worker rank */
  mproc_pool_t *pool;
  if (mproc_pool_new(&pool, &opts) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  int xs[] = {1, 2, 3, 4, 5};
  const void *args[5];
  size_t lens[5];
  for (int i = 0; i < 5; i++) args[i] = &xs[i], lens[i] = sizeof(int);
  mproc_async_t *r;
  if (mproc_pool_map(pool, square, args, lens, 5, 1, &r) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  printf("Squares: [");
  for (size_t i = 0; i < 5; i++) {
    const void *d;
    size_t n;
    mproc_async_item(r, i, &d, &n);
    printf("%s%d", i ? ", " : "", *(const int *)d);
  }
  printf("]\n");
  mproc_async_free(r);
  mproc_pool_free(pool);
  if (mpi) mproc_mpi_finalize();
  return 0;
}
