/* Ping-pong over a Pipe: the parent sends "ping N", the child answers "pong N", five times;
 * then the parent closes its end and the child sees end of file (MPROC_EPIPE). */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int ponger(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_conn_t **ends = payload;
  mproc_conn_close(ends[0]); /* the parent's end */
  char msg[64];
  size_t n;
  while (mproc_conn_recv_bytes(ends[1], msg, sizeof msg - 1, &n, -1) == 0) {
    msg[n] = 0;
    printf("child got %s\n", msg);
    fflush(stdout);
    msg[1] = 'o'; /* "ping N" -> "pong N" */
    if (mproc_conn_send_bytes(ends[1], msg, n) != 0) return 1;
  }
  return mproc_last_error_code() == MPROC_EPIPE ? 0 : 1; /* the parent hung up */
}

int main(void) {
  mproc_conn_t *ends[2];
  if (mproc_pipe(&ends[0], &ends[1], 1) != 0) return 1;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.payload = ends;
  mproc_process_t *p = NULL;
  if (mproc_process_new(&p, ponger, NULL, 0, &o) != 0 || mproc_process_start(p) != 0) return 1;
  mproc_conn_close(ends[1]); /* the child's end */
  for (int i = 0; i < 5; i++) {
    char msg[64];
    size_t n;
    int len = snprintf(msg, sizeof msg, "ping %d", i);
    if (mproc_conn_send_bytes(ends[0], msg, (size_t)len) != 0 ||
        mproc_conn_recv_bytes(ends[0], msg, sizeof msg - 1, &n, 5) != 0) {
      fprintf(stderr, "error: %s\n", mproc_last_error());
      return 1;
    }
    msg[n] = 0;
    printf("parent got %s\n", msg);
  }
  mproc_conn_close(ends[0]);
  int code = -1;
  mproc_process_join(p, -1);
  mproc_process_exitcode(p, &code);
  mproc_process_free(p);
  mproc_conn_free(ends[0]);
  mproc_conn_free(ends[1]);
  return code;
}
