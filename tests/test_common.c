/* The C ABI basics: version, error table, thread-local last error, cpu count. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "testutil.h"

static void test_common_version(void **state) {
  (void)state;
  assert_int_equal(mproc_version(), MPROC_VERSION_HEX);
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", MPROC_VERSION_MAJOR, MPROC_VERSION_MINOR,
           MPROC_VERSION_PATCH);
  assert_string_equal(mproc_version_string(), expect);
  assert_int_equal(MPROC_MAKE_VERSION(1, 2, 3), 0x010203);
}

static void test_common_error_table(void **state) {
  (void)state;
  static const int codes[] = {
#define X(name, value, msg) MPROC_##name,
      MPROC_ERRNO_MAP(X)
#undef X
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_true(codes[i] < 0);
    assert_string_not_equal(mproc_strerror(codes[i]), "unknown error code");
    assert_memory_equal(mproc_err_name(codes[i]), "MPROC_E", 7);
    for (size_t j = 0; j < i; j++) assert_int_not_equal(codes[i], codes[j]);
  }
  assert_string_equal(mproc_strerror(MPROC_ETIMEDOUT), "timed out");
  assert_string_equal(mproc_err_name(MPROC_EWORKERDIED), "MPROC_EWORKERDIED");
  assert_string_equal(mproc_strerror(0), "success");
  assert_string_equal(mproc_strerror(12345), "unknown error code");
  assert_int_equal(MPROC_ETIMEDOUT, -110); /* negative errno where one fits */
  assert_true(MPROC_EOWNERDEAD < 0 && MPROC_EWORKERDIED <= -3000);
}

static void *other_thread(void *arg) {
  (void)arg;
  /* A fresh thread has no error; its own failure does not touch the main thread's. */
  int clean = mproc_last_error()[0] == '\0' && mproc_last_error_code() == 0;
  mproc_process_start(NULL);
  int own = strstr(mproc_last_error(), "mproc_process_start") != NULL;
  return (void *)(long)(clean && own);
}

static void test_common_last_error_is_per_thread(void **state) {
  (void)state;
  mproc_clear_error();
  assert_int_equal(mproc_process_join(NULL, 1), MPROC_EINVAL);
  assert_string_equal(mproc_last_error(), "mproc_process_join: process handle is NULL");
  assert_int_equal(mproc_last_error_code(), MPROC_EINVAL);
  pthread_t t;
  void *ok = NULL;
  assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
  pthread_join(t, &ok);
  assert_true(ok != NULL);
  assert_string_equal(mproc_last_error(), "mproc_process_join: process handle is NULL");
  mproc_clear_error();
  assert_string_equal(mproc_last_error(), "");
  assert_int_equal(mproc_last_error_code(), 0);
}

static void test_common_cpu_count(void **state) {
  (void)state;
  assert_true(mproc_cpu_count() >= 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(common, version),
      TEST(common, error_table),
      TEST(common, last_error_is_per_thread),
      TEST(common, cpu_count),
  };
  return tu_run("common", tests);
}
