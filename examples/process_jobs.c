/* The tutorial's first example: a Process per job, each printing its job name and pid, then
 * "All processes completed". Python:
 *
 *   def worker(name):
 *       print(f"Worker {name} running in process {os.getpid()}")
 *   if __name__ == "__main__":
 *       processes = [Process(target=worker, args=(f"job-{i}",)) for i in range(3)]
 *       for p in processes: p.start()
 *       for p in processes: p.join()
 *       print("All processes completed")
 */
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

static int worker(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  printf("Worker %s running in process %d\n", (const char *)arg, (int)getpid());
  return 0;
}

int main(void) {
  mproc_process_t *procs[3];
  for (int i = 0; i < 3; i++) {
    char name[16];
    int n = snprintf(name, sizeof name, "job-%d", i);
    int rc = mproc_process_new(&procs[i], worker, name, (size_t)n + 1, NULL);
    if (rc == 0) rc = mproc_process_start(procs[i]);
    if (rc != 0) {
      fprintf(stderr, "%s\n", mproc_last_error());
      return 1;
    }
  }
  for (int i = 0; i < 3; i++) {
    mproc_process_join(procs[i], -1);
    mproc_process_free(procs[i]);
  }
  printf("All processes completed\n");
  return 0;
}
