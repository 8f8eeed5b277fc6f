/* Shared memory: typed values and arrays, atomics, named blocks; sharing with fork and forkserver
 * children and with an unrelated (exec'd) process; bad input; cleanup after crashes. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "testutil.h"

struct shared {
  mproc_value_t *num;
  mproc_array_t *arr;
  mproc_value_t *counter;
  int n;
};

static mproc_process_t *start(mproc_process_fn fn, const void *arg, size_t len, int method,
                              void *payload) {
  return tu_start(fn, arg, len, method, 0, payload);
}

#define join_code tu_join_code

/* Run an exec'd copy of this binary in helper mode; returns its exit status. */
static int run_helper(const char *mode, const char *arg) {
  char e1[64], e2[512];
  snprintf(e1, sizeof e1, "MPROC_SHM_HELPER=%s", mode);
  snprintf(e2, sizeof e2, "MPROC_SHM_ARG=%s", arg);
  char *envp[] = {e1, e2, NULL};
  char *argv[] = {(char *)"helper", NULL};
  pid_t pid;
  assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- values and arrays ---- */

static void test_shm_value_types(void **state) {
  (void)state;
  const char *codes = MPROC_TYPECODES;
  for (const char *c = codes; *c; c++) {
    int size = mproc_typecode_size(*c);
    assert_true(size == 1 || size == 2 || size == 4 || size == 8);
    mproc_value_t *v = NULL;
    assert_int_equal(mproc_value_new(&v, *c, NULL, NULL), 0);
    assert_int_equal(mproc_value_typecode(v), *c);
    double d = -1;
    assert_int_equal(mproc_value_get_double(v, &d), 0);
    assert_true(d == 0.0);
    assert_int_equal(mproc_value_set_double(v, 100), 0);
    assert_int_equal(mproc_value_get_double(v, &d), 0);
    assert_true(d == 100.0);
    unsigned char raw[8] = {0};
    assert_int_equal(mproc_value_get(v, raw), 0);
    assert_int_equal(mproc_value_set(v, raw), 0);
    assert_memory_equal(mproc_value_ptr(v), raw, (size_t)size);
    assert_int_equal(mproc_value_free(v), 0);
  }
  assert_int_equal(mproc_typecode_size('x'), MPROC_EINVAL);
  assert_int_equal(mproc_typecode_size('\0'), MPROC_EINVAL);
  int init = 7;
  mproc_value_t *v = NULL;
  assert_int_equal(mproc_value_new(&v, 'i', &init, NULL), 0);
  int64_t x = 0;
  assert_int_equal(mproc_value_get_int64(v, &x), 0);
  assert_int_equal(x, 7);
  assert_int_equal(mproc_value_set_int64(v, 1LL << 40), MPROC_ERANGE);
  assert_int_equal(mproc_value_set_double(v, 1.5), MPROC_ERANGE);
  assert_int_equal(mproc_value_set_double(v, 1e300), MPROC_ERANGE);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_new(&v, 'd', NULL, NULL), 0);
  assert_int_equal(mproc_value_get_int64(v, &x), MPROC_EINVAL);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_new(&v, 'B', NULL, NULL), 0);
  assert_int_equal(mproc_value_set_int64(v, 255), 0);
  assert_int_equal(mproc_value_set_int64(v, 256), MPROC_ERANGE);
  assert_int_equal(mproc_value_set_int64(v, -1), MPROC_ERANGE);
  assert_int_equal(mproc_value_free(v), 0);
}

/* The classic tutorial: the child changes a Value('d') and an Array('d'). */
static int body_tutorial(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  if (mproc_value_set_double(s->num, 3.1415927) != 0) return 1;
  size_t n = 0;
  if (mproc_array_length(s->arr, &n) != 0 || n != 3) return 2;
  for (size_t i = 0; i < n; i++) {
    double d;
    if (mproc_array_get_double(s->arr, i, &d) != 0) return 3;
    if (mproc_array_set_double(s->arr, i, -d) != 0) return 4;
  }
  return 0;
}

static void test_shm_value_array_shared_with_child(void **state) {
  (void)state;
  struct shared s = {0};
  double init[3] = {1.0, 2.0, 3.0};
  assert_int_equal(mproc_value_new(&s.num, 'd', NULL, NULL), 0);
  assert_int_equal(mproc_array_new(&s.arr, 'd', 3, init, NULL), 0);
  for (int m = MPROC_START_FORK; m <= MPROC_START_FORK; m++)
    assert_int_equal(join_code(start(body_tutorial, NULL, 0, m, &s)), 0);
  double d = 0, out[3];
  assert_int_equal(mproc_value_get_double(s.num, &d), 0);
  assert_true(d == 3.1415927);
  assert_int_equal(mproc_array_read(s.arr, 0, 3, out), 0);
  assert_true(out[0] == -1.0 && out[1] == -2.0 && out[2] == -3.0);
  assert_int_equal(mproc_value_free(s.num), 0);
  assert_int_equal(mproc_array_free(s.arr), 0);
}

static void test_shm_array_ops(void **state) {
  (void)state;
  mproc_array_t *a = NULL;
  int init[5] = {1, 2, 3, 4, 5};
  assert_int_equal(mproc_array_new(&a, 'i', 5, init, NULL), 0);
  size_t n = 0;
  assert_int_equal(mproc_array_length(a, &n), 0);
  assert_int_equal(n, 5);
  assert_int_equal(mproc_array_typecode(a), 'i');
  int x = 0;
  assert_int_equal(mproc_array_get(a, 4, &x), 0);
  assert_int_equal(x, 5);
  x = 50;
  assert_int_equal(mproc_array_set(a, 4, &x), 0);
  assert_int_equal(((int *)mproc_array_ptr(a))[4], 50);
  assert_int_equal(mproc_array_get(a, 5, &x), MPROC_ERANGE);
  assert_non_null(strstr(mproc_last_error(), "index 5 out of range (length 5)"));
  assert_int_equal(mproc_array_set(a, (size_t)-1, &x), MPROC_ERANGE);
  int slice[2] = {20, 30};
  assert_int_equal(mproc_array_write(a, 1, 2, slice), 0);
  int all[5];
  assert_int_equal(mproc_array_read(a, 0, 5, all), 0);
  assert_true(all[0] == 1 && all[1] == 20 && all[2] == 30 && all[3] == 4 && all[4] == 50);
  assert_int_equal(mproc_array_read(a, 4, 2, all), MPROC_ERANGE);
  assert_int_equal(mproc_array_read(a, 6, 0, all), MPROC_ERANGE);
  assert_int_equal(mproc_array_read(a, 5, 0, all), 0);
  int64_t v = 0;
  assert_int_equal(mproc_array_get_int64(a, 2, &v), 0);
  assert_int_equal(v, 30);
  assert_int_equal(mproc_array_set_int64(a, 2, 1LL << 33), MPROC_ERANGE);
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_array_get_lock(a, &l), 0);
  assert_int_equal(mproc_lock_is_recursive(l), 1); /* default: an RLock, as Python */
  /* get/set under the held lock do not deadlock */
  assert_int_equal(mproc_lock_acquire(l, -1), 0);
  assert_int_equal(mproc_array_set_int64(a, 0, 9), 0);
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_array_free(a), 0);
  /* A big array gets an arena of its own. */
  assert_int_equal(mproc_array_new(&a, 'd', 1 << 20, NULL, NULL), 0);
  double *p = mproc_array_ptr(a);
  p[(1 << 20) - 1] = 1.5;
  double d = 0;
  assert_int_equal(mproc_array_get_double(a, (1 << 20) - 1, &d), 0);
  assert_true(d == 1.5);
  assert_int_equal(mproc_array_free(a), 0);
}

static void test_shm_raw_and_given_lock(void **state) {
  (void)state;
  mproc_value_opts_t o;
  assert_int_equal(mproc_value_opts_init(&o), 0);
  o.raw = 1;
  mproc_value_t *v = NULL;
  assert_int_equal(mproc_value_new(&v, 'i', NULL, &o), 0);
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_value_get_lock(v, &l), MPROC_EINVAL);
  assert_null(l);
  assert_int_equal(mproc_value_free(v), 0);

  mproc_lock_t *mine = NULL;
  assert_int_equal(mproc_lock_new(&mine), 0);
  o.raw = 0;
  o.lock = mine;
  assert_int_equal(mproc_value_new(&v, 'i', NULL, &o), 0);
  assert_int_equal(mproc_lock_free(mine), 0); /* the value keeps its own reference */
  assert_int_equal(mproc_value_get_lock(v, &l), 0);
  assert_int_equal(mproc_lock_is_recursive(l), 0);
  assert_int_equal(mproc_lock_acquire(l, -1), 0);
  assert_int_equal(mproc_value_set_int64(v, 3), 0); /* held by us: no self-deadlock */
  assert_int_equal(mproc_lock_release(l), 0);
  assert_int_equal(mproc_lock_free(l), MPROC_EINVAL); /* belongs to the value */
  char tok[MPROC_TOKEN_MAX];
  assert_true(mproc_value_export(v, tok, sizeof tok) > 0);
  assert_non_null(strchr(tok, '+')); /* names the lock too */
  mproc_value_t *w = NULL;
  assert_int_equal(mproc_value_attach(&w, tok), 0);
  mproc_lock_t *wl = NULL;
  assert_int_equal(mproc_value_get_lock(w, &wl), 0);
  assert_int_equal(mproc_lock_acquire(wl, 0), 0);
  assert_int_equal(mproc_lock_owned(l), 1); /* the same lock */
  assert_int_equal(mproc_lock_release(wl), 0);
  int64_t x = 0;
  assert_int_equal(mproc_value_get_int64(w, &x), 0);
  assert_int_equal(x, 3);
  assert_int_equal(mproc_value_free(w), 0);
  assert_int_equal(mproc_value_free(v), 0);
  o.size = 1;
  assert_int_equal(mproc_value_new(&v, 'i', NULL, &o), MPROC_EINVAL);
}

/* ---- atomics ---- */

static void test_shm_atomics(void **state) {
  (void)state;
  mproc_value_t *v = NULL;
  assert_int_equal(mproc_value_new(&v, 'q', NULL, NULL), 0);
  int64_t x = -1, old = -1;
  assert_int_equal(mproc_value_store(v, 10), 0);
  assert_int_equal(mproc_value_load(v, &x), 0);
  assert_int_equal(x, 10);
  assert_int_equal(mproc_value_fetch_add(v, 5, &old), 0);
  assert_int_equal(old, 10);
  assert_int_equal(mproc_value_fetch_sub(v, 3, NULL), 0);
  assert_int_equal(mproc_value_exchange(v, 100, &old), 0);
  assert_int_equal(old, 12);
  int64_t expected = 7;
  assert_int_equal(mproc_value_compare_exchange(v, &expected, 8), 0);
  assert_int_equal(expected, 100);
  assert_int_equal(mproc_value_compare_exchange(v, &expected, 8), 1);
  assert_int_equal(mproc_value_load(v, &x), 0);
  assert_int_equal(x, 8);
  assert_int_equal(mproc_value_compare_exchange(v, NULL, 8), MPROC_EINVAL);
  assert_int_equal(mproc_value_free(v), 0);
  /* narrow types wrap; operands out of range are refused */
  assert_int_equal(mproc_value_new(&v, 'b', NULL, NULL), 0);
  assert_int_equal(mproc_value_store(v, 127), 0);
  assert_int_equal(mproc_value_fetch_add(v, 1, &old), 0);
  assert_int_equal(old, 127);
  assert_int_equal(mproc_value_load(v, &x), 0);
  assert_int_equal(x, -128);
  assert_int_equal(mproc_value_store(v, 128), MPROC_ERANGE);
  expected = 1000;
  assert_int_equal(mproc_value_compare_exchange(v, &expected, 1), MPROC_ERANGE);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_new(&v, 'H', NULL, NULL), 0);
  assert_int_equal(mproc_value_fetch_sub(v, 1, NULL), 0);
  assert_int_equal(mproc_value_load(v, &x), 0);
  assert_int_equal(x, 65535);
  assert_int_equal(mproc_value_free(v), 0);
  const char *non_int = "fdc";
  for (const char *c = non_int; *c; c++) {
    assert_int_equal(mproc_value_new(&v, *c, NULL, NULL), 0);
    assert_int_equal(mproc_value_fetch_add(v, 1, NULL), MPROC_EINVAL);
    assert_non_null(strstr(mproc_last_error(), "integer type"));
    assert_int_equal(mproc_value_free(v), 0);
  }
}

/* fetch_add/fetch_sub on every integer width, signed and unsigned, raw or locked: the result
 * wraps in the element's type and `old` is the element before, as load() reports it. */
static void check_fetch(char tc, int raw, int64_t start, int64_t delta, int sub, int64_t want_old,
                        int64_t want_after) {
  mproc_value_t *v = NULL;
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = raw;
  assert_int_equal(mproc_value_new(&v, tc, NULL, &o), 0);
  assert_int_equal(mproc_value_store(v, start), 0);
  int64_t old = 12345, after = 0;
  assert_int_equal(sub ? mproc_value_fetch_sub(v, delta, &old) : mproc_value_fetch_add(v, delta, &old),
                   0);
  assert_int_equal(old, want_old);
  assert_int_equal(mproc_value_load(v, &after), 0);
  assert_int_equal(after, want_after);
  assert_int_equal(mproc_value_free(v), 0);
}

static void test_shm_atomics_every_width(void **state) {
  (void)state;
  for (int raw = 0; raw < 2; raw++) {
    check_fetch('b', raw, 127, 1, 0, 127, -128);
    check_fetch('B', raw, 0, 1, 1, 0, 255);
    check_fetch('h', raw, -32768, 1, 1, -32768, 32767);
    check_fetch('H', raw, 65535, 2, 0, 65535, 1);
    check_fetch('i', raw, 2147483647, 1, 0, 2147483647, -2147483647 - 1);
    check_fetch('i', raw, 5, -7, 0, 5, -2);
    check_fetch('I', raw, 0, 1, 1, 0, 4294967295);
    check_fetch('I', raw, 4294967295, 1, 0, 4294967295, 0);
    check_fetch('q', raw, INT64_MAX, 1, 0, INT64_MAX, INT64_MIN);
    check_fetch('q', raw, 0, INT64_MIN, 1, 0, INT64_MIN); /* 0 - INT64_MIN wraps */
    check_fetch('q', raw, 10, -3, 1, 10, 13);
    check_fetch('Q', raw, 0, 1, 1, 0, -1); /* 2^64 - 1, as its int64 bits */
    check_fetch('l', raw, -1, 1, 0, -1, 0);
    check_fetch('L', raw, -1, 1, 0, -1, 0);
  }
  /* Errors still name the call. */
  mproc_value_t *v = NULL;
  assert_int_equal(mproc_value_new(&v, 'd', NULL, NULL), 0);
  assert_int_equal(mproc_value_fetch_add(v, 1, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_value_fetch_add: "));
  assert_int_equal(mproc_value_fetch_sub(v, 1, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_value_fetch_sub: "));
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_fetch_sub(NULL, 1, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_value_fetch_sub: "));
}

#define N_ADD 100000

static int body_atomic_adds(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  for (int i = 0; i < N_ADD; i++)
    if (mproc_value_fetch_add(s->counter, 1, NULL) != 0) return 1;
  return 0;
}

static int body_locked_adds(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct shared *s = payload;
  mproc_lock_t *l = NULL;
  if (mproc_value_get_lock(s->num, &l) != 0) return 1;
  for (int i = 0; i < N_ADD / 10; i++) {
    int64_t x;
    if (mproc_lock_acquire(l, -1) != 0) return 2;
    mproc_value_get_int64(s->num, &x);
    mproc_value_set_int64(s->num, x + 1);
    if (mproc_lock_release(l) != 0) return 3;
  }
  return 0;
}

static void test_shm_counters_across_processes(void **state) {
  (void)state;
  struct shared s = {0};
  assert_int_equal(mproc_value_new(&s.counter, 'i', NULL, NULL), 0);
  assert_int_equal(mproc_value_new(&s.num, 'i', NULL, NULL), 0);
  mproc_process_t *ps[8];
  for (int i = 0; i < 4; i++) ps[i] = start(body_atomic_adds, NULL, 0, MPROC_START_FORK, &s);
  for (int i = 4; i < 8; i++) ps[i] = start(body_locked_adds, NULL, 0, MPROC_START_FORK, &s);
  for (int i = 0; i < 8; i++) assert_int_equal(join_code(ps[i]), 0);
  int64_t x = 0;
  assert_int_equal(mproc_value_load(s.counter, &x), 0);
  assert_int_equal(x, 4 * N_ADD);
  assert_int_equal(mproc_value_get_int64(s.num, &x), 0);
  assert_int_equal(x, 4 * (N_ADD / 10));
  mproc_value_free(s.counter);
  mproc_value_free(s.num);
}

/* ---- attach from processes that inherited nothing ---- */

struct value_tokens {
  char value[MPROC_TOKEN_MAX];
  char array[MPROC_TOKEN_MAX];
};

static int use_value_tokens(const char *vtok, const char *atok) {
  mproc_value_t *v = NULL;
  mproc_array_t *a = NULL;
  if (mproc_value_attach(&v, vtok) != 0) return 10;
  if (mproc_array_attach(&a, atok) != 0) return 11;
  if (mproc_value_fetch_add(v, 5, NULL) != 0) return 12;
  double d = 0;
  if (mproc_array_get_double(a, 1, &d) != 0) return 13;
  if (mproc_array_set_double(a, 1, d * 10) != 0) return 14;
  mproc_value_free(v);
  mproc_array_free(a);
  return 0;
}

static int body_use_value_tokens(void *arg, size_t len, void *payload) {
  (void)payload;
  const struct value_tokens *t = arg;
  if (len != sizeof *t) return 99;
  return use_value_tokens(t->value, t->array);
}

static void test_shm_attach_from_other_processes(void **state) {
  (void)state;
  mproc_value_t *v = NULL;
  mproc_array_t *a = NULL;
  double init[3] = {1, 2, 3};
  assert_int_equal(mproc_value_new(&v, 'i', NULL, NULL), 0);
  assert_int_equal(mproc_array_new(&a, 'd', 3, init, NULL), 0);
  struct value_tokens t;
  memset(&t, 0, sizeof t);
  assert_true(mproc_value_export(v, t.value, sizeof t.value) > 0);
  assert_true(mproc_array_export(a, t.array, sizeof t.array) > 0);
  /* wrong kinds are refused */
  mproc_array_t *a2 = NULL;
  mproc_value_t *v2 = NULL;
  assert_int_equal(mproc_array_attach(&a2, t.value), MPROC_EINVAL);
  assert_int_equal(mproc_value_attach(&v2, t.array), MPROC_EINVAL);
  mproc_lock_t *l = NULL;
  assert_int_equal(mproc_lock_attach(&l, t.value), MPROC_EINVAL);
  /* a forkserver child, then an exec'd process */
  assert_int_equal(join_code(start(body_use_value_tokens, &t, sizeof t, MPROC_START_FORKSERVER, NULL)), 0);
  char both[2 * MPROC_TOKEN_MAX + 2];
  snprintf(both, sizeof both, "%s %s", t.value, t.array);
  assert_int_equal(run_helper("values", both), 0);
  int64_t x = 0;
  assert_int_equal(mproc_value_load(v, &x), 0);
  assert_int_equal(x, 10);
  double d = 0;
  assert_int_equal(mproc_array_get_double(a, 1, &d), 0);
  assert_true(d == 200.0); /* both processes multiplied it by 10 */
  /* the value's own lock can be exported and attached on its own */
  char ltok[MPROC_TOKEN_MAX];
  assert_int_equal(mproc_value_get_lock(v, &l), 0);
  assert_true(mproc_lock_export(l, ltok, sizeof ltok) > 0);
  mproc_lock_t *l2 = NULL;
  assert_int_equal(mproc_lock_attach(&l2, ltok), 0);
  assert_int_equal(mproc_lock_acquire(l2, 0), 0);
  assert_int_equal(mproc_lock_owned(l), 1);
  assert_int_equal(mproc_lock_release(l2), 0);
  assert_int_equal(mproc_lock_free(l2), 0);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_array_free(a), 0);
  /* once freed in every process that had it, a token is stale (a fresh value: the forkserver
   * helper, forked after v existed, still holds a reference to v) */
  assert_int_equal(mproc_value_new(&v, 'i', NULL, NULL), 0);
  assert_true(mproc_value_export(v, t.value, sizeof t.value) > 0);
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_attach(&v2, t.value), MPROC_ENOENT);
  assert_null(v2);
}

/* ---- named blocks ---- */

static int body_attach_named(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  mproc_shm_t *s = NULL;
  if (mproc_shm_attach(&s, arg) != 0) return 1;
  size_t n = 0;
  if (mproc_shm_size(s, &n) != 0 || n != 10000) return 2;
  char *p = mproc_shm_ptr(s);
  if (strcmp(p, "hello") != 0) return 3;
  strcpy(p + 100, "from child");
  return mproc_shm_close(s) == 0 ? 0 : 4;
}

static void test_shm_named_block(void **state) {
  (void)state;
  char name[64];
  snprintf(name, sizeof name, "test_named_%d", (int)getpid());
  mproc_shm_t *s = NULL;
  assert_int_equal(mproc_shm_create(&s, name, 10000), 0);
  assert_string_equal(mproc_shm_name(s), name);
  char path[128];
  snprintf(path, sizeof path, "/dev/shm/mproc-%s", name);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *p = mproc_shm_ptr(s);
  for (int i = 0; i < 10000; i++) assert_int_equal(p[i], 0);
  strcpy(p, "hello");
  mproc_shm_t *dup = NULL;
  assert_int_equal(mproc_shm_create(&dup, name, 10), MPROC_EEXIST);
  for (int m = MPROC_START_FORK; m <= MPROC_START_FORKSERVER; m++) {
    p[100] = 0;
    assert_int_equal(join_code(start(body_attach_named, name, strlen(name) + 1, m, NULL)), 0);
    assert_string_equal(p + 100, "from child");
  }
  /* attach in this process too: a second mapping of the same bytes */
  mproc_shm_t *s2 = NULL;
  assert_int_equal(mproc_shm_attach(&s2, name), 0);
  assert_string_equal(mproc_shm_ptr(s2), "hello");
  assert_int_equal(mproc_shm_close(s2), 0); /* attaching never unlinks */
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(mproc_shm_unlink(s), 0);
  assert_int_equal(mproc_shm_unlink(s), MPROC_ENOENT);
  assert_string_equal(p, "hello"); /* still mapped */
  assert_int_equal(mproc_shm_attach(&s2, name), MPROC_ENOENT);
  assert_int_equal(mproc_shm_close(s), 0);
}

static void test_shm_generated_name(void **state) {
  (void)state;
  mproc_shm_t *a = NULL, *b = NULL;
  assert_int_equal(mproc_shm_create(&a, NULL, 1), 0);
  assert_int_equal(mproc_shm_create(&b, NULL, 1), 0);
  assert_memory_equal(mproc_shm_name(a), "psm_", 4);
  assert_true(strlen(mproc_shm_name(a)) >= 20);
  assert_string_not_equal(mproc_shm_name(a), mproc_shm_name(b));
  mproc_shm_t *c = NULL;
  char slash[128];
  snprintf(slash, sizeof slash, "/%s", mproc_shm_name(a));
  assert_int_equal(mproc_shm_attach(&c, slash), 0); /* a leading '/' is accepted */
  assert_int_equal(mproc_shm_close(c), 0);
  assert_int_equal(mproc_shm_unlink(a), 0);
  assert_int_equal(mproc_shm_unlink(b), 0);
  assert_int_equal(mproc_shm_close(a), 0);
  assert_int_equal(mproc_shm_close(b), 0);
}

static void test_shm_named_bad_input(void **state) {
  (void)state;
  mproc_shm_t *s = NULL;
  char longname[MPROC_SHM_NAME_MAX + 2];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(mproc_shm_create(NULL, NULL, 10), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create(&s, NULL, 0), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create(&s, NULL, MPROC_SHM_SIZE_MAX + 1), MPROC_EMSGSIZE);
  assert_int_equal(mproc_shm_create(&s, NULL, (size_t)-1), MPROC_EMSGSIZE);
  assert_int_equal(mproc_shm_create(&s, longname, 10), MPROC_ENAMETOOLONG);
  assert_int_equal(mproc_shm_create(&s, "", 10), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create(&s, "a/b", 10), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create(&s, "..", 10), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "name must not start with '.'"));
  assert_int_equal(mproc_shm_create(&s, ".hidden", 10), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "name must not start with '.'"));
  assert_int_equal(mproc_shm_create(&s, "sp ace", 10), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "mproc_shm_create: name has a character"));
  assert_int_equal(mproc_shm_attach(&s, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_shm_attach(&s, longname), MPROC_ENAMETOOLONG);
  assert_int_equal(mproc_shm_attach(&s, "no_such_block_here"), MPROC_ENOENT);
  assert_null(s);
  assert_int_equal(mproc_shm_size(NULL, NULL), MPROC_EINVAL);
  assert_null(mproc_shm_ptr(NULL));
  assert_null(mproc_shm_name(NULL));
  assert_int_equal(mproc_shm_unlink(NULL), MPROC_EINVAL);
  assert_int_equal(mproc_shm_close(NULL), 0);
  /* use after close */
  assert_int_equal(mproc_shm_create(&s, NULL, 16), 0);
  assert_int_equal(mproc_shm_unlink(s), 0);
  assert_int_equal(mproc_shm_close(s), 0);
  assert_null(mproc_shm_ptr(s));
  assert_int_equal(mproc_shm_close(s), MPROC_EBADF);
  assert_non_null(strstr(mproc_last_error(), "closed"));
}

/* A child creates a block and dies without unlinking it: nothing stays in /dev/shm. */
static int body_create_and_die(void *arg, size_t len, void *payload) {
  (void)len, (void)payload;
  int *how = arg;
  mproc_shm_t *s = NULL;
  char name[64];
  snprintf(name, sizeof name, "orphan_%d", how[1]);
  if (mproc_shm_create(&s, name, 4096) != 0) return 1;
  if (how[0]) raise(SIGKILL);
  return 0; /* a forked child leaves with _exit(): no atexit cleanup either */
}

static void test_shm_creator_crash_leaves_nothing(void **state) {
  (void)state;
  int base = tu_count_shm();
  for (int how = 0; how <= 1; how++) {
    int arg[2] = {how, (int)getpid() * 2 + how};
    int code = join_code(start(body_create_and_die, arg, sizeof arg, MPROC_START_FORK, NULL));
    assert_int_equal(code, how ? -SIGKILL : 0);
    assert_int_equal(tu_count_shm(), base + 1);
    char name[64];
    snprintf(name, sizeof name, "orphan_%d", arg[1]);
    mproc_shm_t *s = NULL;
    if (how) {
      assert_int_equal(mproc_shm_attach(&s, name), MPROC_ENOENT); /* creator ended */
      assert_non_null(strstr(mproc_last_error(), "has ended"));
    } else {
      assert_true(mproc_shm_cleanup() >= 1);
    }
    assert_int_equal(tu_count_shm(), base);
  }
}

/* An unrelated process that creates a block and exits normally unlinks it at exit. */
static void test_shm_exit_unlinks_owned_names(void **state) {
  (void)state;
  int base = tu_count_shm();
  char name[64];
  snprintf(name, sizeof name, "exit_%d", (int)getpid());
  assert_int_equal(run_helper("create_and_exit", name), 0);
  assert_int_equal(tu_count_shm(), base);
  mproc_shm_t *s = NULL;
  assert_int_equal(mproc_shm_attach(&s, name), MPROC_ENOENT);
}

/* ---- leased named blocks ---- */

/* Shared with fork children: the block's name and two semaphores for the handshake. */
struct lease_ctl {
  char name[64];
  mproc_sem_t *attached; /* a child released it: it attached (or failed to) */
  mproc_sem_t *go;       /* the parent released it: the child may go on */
};

static int path_exists(const char *name) {
  char path[128];
  struct stat st;
  snprintf(path, sizeof path, "/dev/shm/mproc-%s", name);
  return stat(path, &st) == 0;
}

static mproc_shm_t *create_leased(const char *name, size_t size, unsigned max_users) {
  mproc_shm_opts_t o = MPROC_SHM_OPTS_INIT;
  o.lease = 1;
  o.max_users = max_users;
  mproc_shm_t *s = NULL;
  assert_int_equal(mproc_shm_create_ex(&s, name, size, &o), 0);
  return s;
}

static void ctl_init(struct lease_ctl *c, const char *tag) {
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "lease_%s_%d", tag, (int)getpid());
  assert_int_equal(mproc_sem_new(&c->attached, 0), 0);
  assert_int_equal(mproc_sem_new(&c->go, 0), 0);
}

static void ctl_free(struct lease_ctl *c) {
  assert_int_equal(mproc_sem_free(c->attached), 0);
  assert_int_equal(mproc_sem_free(c->go), 0);
}

/* Attach, report, wait for "go", then check the block is still there and write to it. */
static int body_lease_attach_wait(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct lease_ctl *c = payload;
  mproc_shm_t *s = NULL;
  int rc = mproc_shm_attach(&s, c->name);
  mproc_sem_release(c->attached);
  if (rc == MPROC_EFULL) return strstr(mproc_last_error(), "user slots taken") ? 50 : 51;
  if (rc != 0) return 52;
  if (mproc_sem_acquire(c->go, -1) != 0) return 53;
  if (!path_exists(c->name)) return 54; /* never unlinked under a live user */
  strcpy(mproc_shm_ptr(s), "child was here");
  return mproc_shm_close(s) == 0 ? 0 : 55;
}

/* Attach, report, then die by SIGKILL holding the lease. */
static int body_lease_attach_die(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct lease_ctl *c = payload;
  mproc_shm_t *s = NULL;
  if (mproc_shm_attach(&s, c->name) != 0) return 1;
  strcpy(mproc_shm_ptr(s), "dying");
  raise(SIGKILL);
  return 2;
}

/* Create a leased block and die by SIGKILL: its only user is gone. */
static int body_lease_create_die(void *arg, size_t len, void *payload) {
  (void)arg, (void)len;
  struct lease_ctl *c = payload;
  mproc_shm_opts_t o = MPROC_SHM_OPTS_INIT;
  o.lease = 1;
  mproc_shm_t *s = NULL;
  if (mproc_shm_create_ex(&s, c->name, 100, &o) != 0) return 1;
  raise(SIGKILL);
  return 2;
}

static void test_shm_lease_last_close_unlinks(void **state) {
  (void)state;
  struct lease_ctl c;
  ctl_init(&c, "last");
  mproc_shm_t *s = create_leased(c.name, 1000, 0);
  strcpy(mproc_shm_ptr(s), "shared");
  /* two more handles in this process: one table entry, counted per handle */
  mproc_shm_t *a = NULL, *b = NULL;
  assert_int_equal(mproc_shm_attach(&a, c.name), 0);
  assert_int_equal(mproc_shm_attach(&b, c.name), 0);
  assert_string_equal(mproc_shm_ptr(b), "shared");
  assert_int_equal(mproc_shm_close(s), 0); /* the creator closing does not end it */
  assert_true(mproc_shm_cleanup() >= 0);
  assert_true(path_exists(c.name));
  assert_int_equal(mproc_shm_close(a), 0);
  assert_true(path_exists(c.name));
  assert_int_equal(mproc_shm_close(b), 0); /* the last handle of the last user */
  assert_false(path_exists(c.name));
  assert_int_equal(mproc_shm_attach(&a, c.name), MPROC_ENOENT);
  /* the creator may still unlink it early: live mappings stay valid, closes do not fail */
  s = create_leased(c.name, 10, 0);
  assert_int_equal(mproc_shm_attach(&a, c.name), 0);
  assert_int_equal(mproc_shm_unlink(s), 0);
  assert_int_equal(mproc_shm_unlink(a), MPROC_ENOENT);
  assert_false(path_exists(c.name));
  /* a new block of the same name is not removed by the old block's last close */
  b = create_leased(c.name, 10, 0);
  assert_int_equal(mproc_shm_close(s), 0);
  assert_int_equal(mproc_shm_close(a), 0);
  assert_true(path_exists(c.name));
  assert_int_equal(mproc_shm_close(b), 0);
  assert_false(path_exists(c.name));
  ctl_free(&c);
}

static void test_shm_lease_attacher_keeps_it_alive(void **state) {
  (void)state;
  struct lease_ctl c;
  ctl_init(&c, "keep");
  mproc_shm_t *s = create_leased(c.name, 4096, 0);
  mproc_process_t *p = start(body_lease_attach_wait, NULL, 0, MPROC_START_FORK, &c);
  assert_int_equal(mproc_sem_acquire(c.attached, -1), 0);
  assert_int_equal(mproc_shm_close(s), 0); /* the creator leaves first */
  assert_true(path_exists(c.name));
  assert_true(mproc_shm_cleanup() >= 0); /* a sweep does not take it from the child */
  assert_true(path_exists(c.name));
  assert_int_equal(mproc_sem_release(c.go), 0);
  assert_int_equal(join_code(p), 0);
  assert_false(path_exists(c.name)); /* the child's close was the last */
  ctl_free(&c);
}

static void test_shm_lease_killed_attacher(void **state) {
  (void)state;
  struct lease_ctl c;
  ctl_init(&c, "killed");
  mproc_shm_t *s = create_leased(c.name, 4096, 0);
  assert_int_equal(join_code(start(body_lease_attach_die, NULL, 0, MPROC_START_FORK, &c)),
                   -SIGKILL);
  /* the dead user's entry neither removes the block from a live user ... */
  assert_true(mproc_shm_cleanup() >= 0);
  assert_true(path_exists(c.name));
  assert_string_equal(mproc_shm_ptr(s), "dying");
  /* ... nor stops others from using it */
  mproc_process_t *p = start(body_lease_attach_wait, NULL, 0, MPROC_START_FORK, &c);
  assert_int_equal(mproc_sem_acquire(c.attached, -1), 0);
  assert_int_equal(mproc_sem_release(c.go), 0);
  assert_int_equal(join_code(p), 0);
  assert_string_equal(mproc_shm_ptr(s), "child was here");
  assert_true(path_exists(c.name));
  /* ... nor keeps it alive: the last live user's close unlinks it */
  assert_int_equal(mproc_shm_close(s), 0);
  assert_false(path_exists(c.name));
  ctl_free(&c);
}

static void test_shm_lease_all_users_killed(void **state) {
  (void)state;
  struct lease_ctl c;
  ctl_init(&c, "allkilled");
  /* found by an attach: unlinked, and the attach fails */
  assert_int_equal(join_code(start(body_lease_create_die, NULL, 0, MPROC_START_FORK, &c)),
                   -SIGKILL);
  assert_true(path_exists(c.name));
  mproc_shm_t *s = NULL;
  assert_int_equal(mproc_shm_attach(&s, c.name), MPROC_ENOENT);
  assert_non_null(strstr(mproc_last_error(), "every user"));
  assert_null(s);
  assert_false(path_exists(c.name));
  /* found by a sweep */
  assert_int_equal(join_code(start(body_lease_create_die, NULL, 0, MPROC_START_FORK, &c)),
                   -SIGKILL);
  assert_true(path_exists(c.name));
  assert_true(mproc_shm_cleanup() >= 1);
  assert_false(path_exists(c.name));
  /* found by a create of the same name (it sweeps first) */
  assert_int_equal(join_code(start(body_lease_create_die, NULL, 0, MPROC_START_FORK, &c)),
                   -SIGKILL);
  s = create_leased(c.name, 10, 0);
  assert_int_equal(mproc_shm_close(s), 0);
  assert_false(path_exists(c.name));
  ctl_free(&c);
}

static void test_shm_lease_table_full(void **state) {
  (void)state;
  struct lease_ctl c;
  ctl_init(&c, "full");
  mproc_shm_t *s = create_leased(c.name, 64, 2); /* the creator and one more process */
  /* a dead user's entry is reclaimed, not counted */
  assert_int_equal(join_code(start(body_lease_attach_die, NULL, 0, MPROC_START_FORK, &c)),
                   -SIGKILL);
  mproc_process_t *p = start(body_lease_attach_wait, NULL, 0, MPROC_START_FORK, &c);
  assert_int_equal(mproc_sem_acquire(c.attached, -1), 0);
  /* a third live process: refused */
  mproc_process_t *q = start(body_lease_attach_wait, NULL, 0, MPROC_START_FORK, &c);
  assert_int_equal(mproc_sem_acquire(c.attached, -1), 0);
  assert_int_equal(join_code(q), 50); /* MPROC_EFULL, with a message naming the cause */
  /* more handles in a process already in the table need no entry */
  mproc_shm_t *a = NULL;
  assert_int_equal(mproc_shm_attach(&a, c.name), 0);
  assert_int_equal(mproc_shm_close(a), 0);
  assert_int_equal(mproc_sem_release(c.go), 0);
  assert_int_equal(join_code(p), 0);
  /* room again once the child left */
  p = start(body_lease_attach_wait, NULL, 0, MPROC_START_FORK, &c);
  assert_int_equal(mproc_sem_acquire(c.attached, -1), 0);
  assert_int_equal(mproc_sem_release(c.go), 0);
  assert_int_equal(join_code(p), 0);
  assert_int_equal(mproc_shm_close(s), 0);
  assert_false(path_exists(c.name));
  ctl_free(&c);
}

/* An exec'd process that exits (exit(), no close) as the last user unlinks the block. */
static void test_shm_lease_exit_releases(void **state) {
  (void)state;
  char name[64];
  snprintf(name, sizeof name, "lease_exit_%d", (int)getpid());
  assert_int_equal(run_helper("lease_create_and_exit", name), 0);
  assert_false(path_exists(name));
}

static void test_shm_lease_bad_input(void **state) {
  (void)state;
  mproc_shm_t *s = NULL;
  mproc_shm_opts_t o;
  assert_int_equal(mproc_shm_opts_init(NULL), MPROC_EINVAL);
  memset(&o, 0xff, sizeof o);
  assert_int_equal(mproc_shm_opts_init(&o), 0);
  assert_int_equal(o.size, sizeof o);
  assert_int_equal(o.lease, 0);
  assert_int_equal(o.max_users, 0);
  o.lease = 1;
  assert_int_equal(mproc_shm_create_ex(NULL, NULL, 10, &o), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 0, &o), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create_ex(&s, "a/b", 10, &o), MPROC_EINVAL);
  assert_int_equal(mproc_shm_create_ex(&s, NULL, MPROC_SHM_SIZE_MAX + 1, &o), MPROC_EMSGSIZE);
  o.size = 0;
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, &o), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "opts->size"));
  o.size = 1u << 20;
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, &o), MPROC_EINVAL);
  o.size = sizeof o;
  o.max_users = MPROC_SHM_LEASE_USERS_MAX + 1;
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, &o), MPROC_EINVAL);
  o.lease = 0;
  o.max_users = 2;
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, &o), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "needs opts->lease"));
  assert_null(s);
  /* opts NULL: a creator-owned block, as mproc_shm_create */
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, NULL), 0);
  assert_int_equal(mproc_shm_unlink(s), 0);
  assert_int_equal(mproc_shm_close(s), 0);
  /* an older caller's shorter struct (up to lease) is accepted */
  mproc_shm_opts_init(&o);
  o.size = offsetof(mproc_shm_opts_t, lease) + sizeof(int);
  o.lease = 1;
  o.max_users = 12345; /* beyond the caller's size: not read */
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 10, &o), 0);
  assert_int_equal(mproc_shm_close(s), 0);
  /* the largest table */
  o = (mproc_shm_opts_t)MPROC_SHM_OPTS_INIT;
  o.lease = 1;
  o.max_users = MPROC_SHM_LEASE_USERS_MAX;
  assert_int_equal(mproc_shm_create_ex(&s, NULL, 1, &o), 0);
  assert_int_equal(mproc_shm_close(s), 0);
}

static void test_shm_value_bad_input(void **state) {
  (void)state;
  int not_a_handle[32] = {0};
  mproc_value_t *v = NULL;
  mproc_array_t *a = NULL;
  int64_t x;
  assert_int_equal(mproc_value_new(NULL, 'i', NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_value_new(&v, 'x', NULL, NULL), MPROC_EINVAL);
  assert_non_null(strstr(mproc_last_error(), "unknown type code 'x'"));
  assert_int_equal(mproc_value_new(&v, 0, NULL, NULL), MPROC_EINVAL);
  assert_null(v);
  assert_int_equal(mproc_array_new(&a, 'i', 0, NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_array_new(&a, 'd', (size_t)-1, NULL, NULL), MPROC_EMSGSIZE);
  assert_int_equal(mproc_array_new(&a, 'd', MPROC_SHM_SIZE_MAX / 8, NULL, NULL), MPROC_EMSGSIZE);
  assert_int_equal(mproc_array_new(&a, 'u', 3, NULL, NULL), MPROC_EINVAL);
  assert_null(a);
  assert_int_equal(mproc_value_get(NULL, &x), MPROC_EINVAL);
  assert_int_equal(mproc_value_get((mproc_value_t *)not_a_handle, &x), MPROC_EBADF);
  assert_int_equal(mproc_value_fetch_add(NULL, 1, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_value_fetch_add((mproc_value_t *)not_a_handle, 1, NULL), MPROC_EBADF);
  assert_int_equal(mproc_value_load(NULL, NULL), MPROC_EINVAL);
  assert_null(mproc_value_ptr(NULL));
  assert_int_equal(mproc_array_length(NULL, NULL), MPROC_EINVAL);
  assert_int_equal(mproc_value_free(NULL), 0);
  assert_int_equal(mproc_array_free(NULL), 0);
  assert_int_equal(mproc_value_attach(&v, "garbage"), MPROC_EINVAL);
  assert_int_equal(mproc_value_opts_init(NULL), MPROC_EINVAL);
  /* Every unsigned type refuses a negative int64 alike; a 'Q' over INT64_MAX reads raw only. */
  for (const char *tc = "BHILQ"; *tc; tc++) {
    assert_int_equal(mproc_value_new(&v, *tc, NULL, NULL), 0);
    assert_int_equal(mproc_value_set_int64(v, -1), MPROC_ERANGE);
    assert_non_null(strstr(mproc_last_error(), "out of the range"));
    assert_int_equal(mproc_value_set_double(v, -1.0), MPROC_ERANGE);
    assert_int_equal(mproc_value_set_int64(v, 7), 0);
    assert_int_equal(mproc_value_get_int64(v, &x), 0);
    assert_int_equal(x, 7);
    assert_int_equal(mproc_value_free(v), 0);
  }
  unsigned long long big = 18446744073709551615ULL;
  assert_int_equal(mproc_value_new(&v, 'Q', &big, NULL), 0);
  assert_int_equal(mproc_value_get_int64(v, &x), MPROC_ERANGE);
  assert_non_null(strstr(mproc_last_error(), "over INT64_MAX"));
  unsigned long long back = 0;
  assert_int_equal(mproc_value_get(v, &back), 0);
  assert_true(back == big);
  assert_int_equal(mproc_value_free(v), 0);
  /* a value handle is not an array handle */
  assert_int_equal(mproc_value_new(&v, 'i', NULL, NULL), 0);
  size_t n;
  assert_int_equal(mproc_array_length((mproc_array_t *)v, &n), MPROC_EBADF);
  assert_int_equal(mproc_value_get(v, NULL), MPROC_EINVAL);
  char tok[8];
  assert_int_equal(mproc_value_export(v, tok, sizeof tok), MPROC_ENOSPC);
  /* use after free (registry-checked calls) */
  assert_int_equal(mproc_value_free(v), 0);
  assert_int_equal(mproc_value_get_int64(v, &x), MPROC_EBADF);
  assert_null(mproc_value_ptr(v));
  assert_int_equal(mproc_value_free(v), MPROC_EBADF);
  assert_non_null(strstr(mproc_last_error(), "freed"));
}

static int helper_main(const char *mode, const char *arg) {
  if (strcmp(mode, "values") == 0) {
    char vtok[MPROC_TOKEN_MAX], atok[MPROC_TOKEN_MAX];
    if (sscanf(arg, "%255s %255s", vtok, atok) != 2) return 98;
    return use_value_tokens(vtok, atok);
  }
  if (strcmp(mode, "create_and_exit") == 0) {
    mproc_shm_t *s = NULL;
    return mproc_shm_create(&s, arg, 100) == 0 ? 0 : 1; /* exit() unlinks it */
  }
  if (strcmp(mode, "lease_create_and_exit") == 0) {
    mproc_shm_opts_t o = MPROC_SHM_OPTS_INIT;
    o.lease = 1;
    mproc_shm_t *s = NULL, *a = NULL;
    if (mproc_shm_create_ex(&s, arg, 100, &o) != 0) return 1;
    if (mproc_shm_attach(&a, arg) != 0) return 2;
    return 0; /* exit() leaves the lease: the last user, so the name goes */
  }
  return 97;
}

int main(void) {
  const char *mode = getenv("MPROC_SHM_HELPER");
  if (mode) return helper_main(mode, getenv("MPROC_SHM_ARG") ? getenv("MPROC_SHM_ARG") : "");
  const struct CMUnitTest tests[] = {
      TEST(shm, value_types),
      TEST(shm, value_array_shared_with_child),
      TEST(shm, array_ops),
      TEST(shm, raw_and_given_lock),
      TEST(shm, atomics),
      TEST(shm, atomics_every_width),
      TEST(shm, counters_across_processes),
      TEST(shm, attach_from_other_processes),
      TEST(shm, named_block),
      TEST(shm, generated_name),
      TEST(shm, named_bad_input),
      TEST(shm, creator_crash_leaves_nothing),
      TEST(shm, exit_unlinks_owned_names),
      TEST(shm, value_bad_input),
      TEST(shm, lease_last_close_unlinks),
      TEST(shm, lease_attacher_keeps_it_alive),
      TEST(shm, lease_killed_attacher),
      TEST(shm, lease_all_users_killed),
      TEST(shm, lease_table_full),
      TEST(shm, lease_exit_releases),
      TEST(shm, lease_bad_input),
  };
  return tu_run("shm", tests);
}
