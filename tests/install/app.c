/* Built against an installed mproc (pkg-config and CMake package): starts a child, checks its
 * exit code and the run-time version. */
#include <stdio.h>

#include <mproc.h>

static int child(void *arg, size_t len, void *payload) {
  (void)arg, (void)len, (void)payload;
  return 42;
}

int main(void) {
  mproc_process_t *p;
  int code = -1;
  if (mproc_version() != MPROC_VERSION_HEX) return 2;
  if (mproc_process_new(&p, child, NULL, 0, NULL) || mproc_process_start(p) ||
      mproc_process_join(p, -1) || mproc_process_exitcode(p, &code)) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  mproc_process_free(p);
  printf("installed mproc %s: child exit code %d\n", mproc_version_string(), code);
  return code == 42 ? 0 : 1;
}
