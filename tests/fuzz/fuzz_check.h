/* The fuzz targets' one check: every call returns 0 or a negative code with a message in
 * mproc_last_error(); anything else aborts (a finding). C and C++. */
#pragma once
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_check(int rc, const char *file, int line) {
  if (rc > 0 || (rc < 0 && (!mproc_last_error() || !*mproc_last_error()))) {
    fprintf(stderr, "%s:%d: %d without a message\n", file, line, rc);
    abort();
  }
}
#define CHECK(rc) fuzz_check((rc), __FILE__, __LINE__)
