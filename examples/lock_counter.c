/* Three processes increment a shared counter under a Lock, five times each:
 *     Final counter value: 15
 * then the same without a lock, with the one-call atomic fetch_add (1000 each):
 *     Final atomic counter value: 3000
 */
#include <stdio.h>

#include <mproc.h>

struct shared {
  mproc_lock_t *lock;
  mproc_value_t *counter; /* a RawValue: the Lock above guards it */
  mproc_value_t *atomic_counter;
};

static int increment(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int i = 0; i < 5; i++) {
    int rc = mproc_lock_acquire(s->lock, -1); /* with lock: */
    if (rc != 0 && rc != MPROC_EOWNERDEAD) return 1;
    int64_t v;
    mproc_value_get_int64(s->counter, &v);
    mproc_value_set_int64(s->counter, v + 1); /*   counter.value += 1 */
    mproc_lock_release(s->lock);
  }
  for (int i = 0; i < 1000; i++) mproc_value_fetch_add(s->atomic_counter, 1, NULL);
  return 0;
}

int main(void) {
  struct shared s;
  mproc_value_opts_t raw = MPROC_VALUE_OPTS_INIT;
  raw.raw = 1;
  if (mproc_lock_new(&s.lock) != 0 || mproc_value_new(&s.counter, 'i', NULL, &raw) != 0 ||
      mproc_value_new(&s.atomic_counter, 'i', NULL, &raw) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.payload = &s;
  mproc_process_t *ps[3];
  for (int i = 0; i < 3; i++) {
    if (mproc_process_new(&ps[i], increment, NULL, 0, &o) != 0 ||
        mproc_process_start(ps[i]) != 0) {
      fprintf(stderr, "%s\n", mproc_last_error());
      return 1;
    }
  }
  for (int i = 0; i < 3; i++) {
    mproc_process_join(ps[i], -1);
    mproc_process_free(ps[i]);
  }
  int64_t v = 0;
  mproc_value_get_int64(s.counter, &v);
  printf("Final counter value: %lld\n", (long long)v);
  mproc_value_load(s.atomic_counter, &v);
  printf("Final atomic counter value: %lld\n", (long long)v);
  mproc_value_free(s.counter);
  mproc_value_free(s.atomic_counter);
  mproc_lock_free(s.lock);
  return 0;
}
