/* Shared Value and Array changed by a child process (Python's multiprocessing tutorial).
 *
 *   Value('i', 0) incremented 1000 times and Array('d', [1.0, 2.0, 3.0]) doubled by a child:
 *     Final counter: 1000
 *     Modified array: [2.0, 4.0, 6.0]
 *   The classic variant: the child sets Value('d', 0.0) to 3.1415927 and negates the array:
 *     3.1415927
 *     [-1.0, -2.0, -3.0]
 */
#include <stdio.h>

#include <mproc.h>

struct shared {
  mproc_value_t *counter;
  mproc_array_t *arr;
  mproc_value_t *num;
  mproc_array_t *arr2;
};

static int modify(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int i = 0; i < 1000; i++) mproc_value_fetch_add(s->counter, 1, NULL); /* counter.value += 1 */
  for (size_t i = 0; i < 3; i++) {
    double d;
    mproc_array_get_double(s->arr, i, &d);
    mproc_array_set_double(s->arr, i, d * 2); /* arr[i] *= 2 */
  }
  mproc_value_set_double(s->num, 3.1415927); /* num.value = 3.1415927 */
  for (size_t i = 0; i < 3; i++) {
    double d;
    mproc_array_get_double(s->arr2, i, &d);
    mproc_array_set_double(s->arr2, i, -d); /* arr[i] = -arr[i] */
  }
  return 0;
}

static void print_array(const char *label, mproc_array_t *a) {
  double v[3];
  mproc_array_read(a, 0, 3, v);
  printf("%s[%.1f, %.1f, %.1f]\n", label, v[0], v[1], v[2]);
}

int main(void) {
  struct shared s;
  double init[3] = {1.0, 2.0, 3.0};
  int zero = 0;
  if (mproc_value_new(&s.counter, 'i', &zero, NULL) != 0 ||
      mproc_array_new(&s.arr, 'd', 3, init, NULL) != 0 ||
      mproc_value_new(&s.num, 'd', NULL, NULL) != 0 ||
      mproc_array_new(&s.arr2, 'd', 3, init, NULL) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.payload = &s; /* the child is forked: the handles are valid there */
  mproc_process_t *p = NULL;
  if (mproc_process_new(&p, modify, NULL, 0, &o) != 0 || mproc_process_start(p) != 0 ||
      mproc_process_join(p, -1) != 0) {
    fprintf(stderr, "%s\n", mproc_last_error());
    return 1;
  }
  mproc_process_free(p);

  int64_t counter = 0;
  mproc_value_load(s.counter, &counter);
  printf("Final counter: %lld\n", (long long)counter);
  print_array("Modified array: ", s.arr);
  double num = 0;
  mproc_value_get_double(s.num, &num);
  printf("%.7f\n", num);
  print_array("", s.arr2);

  mproc_value_free(s.counter);
  mproc_array_free(s.arr);
  mproc_value_free(s.num);
  mproc_array_free(s.arr2);
  return 0;
}
