/* Producer / consumer over a queue, as in the multiprocessing tutorial: the producer puts "A".."D"
 * and then a poison pill (an empty message, Python's None); the consumer stops when it sees it.
 * Build: part of the mproc build (examples/), or
 *   cc producer_consumer.c -lmproc -o producer_consumer */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int producer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_queue_t *q = payload;
  const char *items[] = {"A", "B", "C", "D"};
  for (int i = 0; i < 4; i++) {
    printf("Producing %s\n", items[i]);
    fflush(stdout);
    if (mproc_queue_put(q, items[i], strlen(items[i]), -1) != 0) return 1;
  }
  return mproc_queue_put(q, NULL, 0, -1) == 0 ? 0 : 1; /* the poison pill */
}

static int consumer(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  mproc_queue_t *q = payload;
  for (;;) {
    char item[64];
    size_t n;
    if (mproc_queue_get(q, item, sizeof item, &n, -1) != 0) return 1;
    if (n == 0) break; /* poison pill: no more work */
    printf("Consuming %.*s\n", (int)n, item);
    fflush(stdout);
  }
  return 0;
}

int main(void) {
  mproc_queue_t *q = NULL;
  mproc_process_t *p = NULL, *c = NULL;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  if (mproc_queue_new(&q, NULL) != 0) goto fail;
  o.payload = q; /* the queue is made before the children: they inherit it */
  if (mproc_process_new(&p, producer, NULL, 0, &o) != 0 ||
      mproc_process_new(&c, consumer, NULL, 0, &o) != 0 || mproc_process_start(c) != 0 ||
      mproc_process_start(p) != 0)
    goto fail;
  mproc_process_join(p, -1);
  mproc_process_join(c, -1);
  int pc = -1, cc = -1;
  mproc_process_exitcode(p, &pc);
  mproc_process_exitcode(c, &cc);
  mproc_process_free(p);
  mproc_process_free(c);
  mproc_queue_free(q);
  return pc == 0 && cc == 0 ? 0 : 1;
fail:
  fprintf(stderr, "error: %s\n", mproc_last_error());
  return 1;
}
