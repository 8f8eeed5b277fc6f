// Error recording for the core: a thread-local code + message that the C ABI reports through
// mproc_last_error(). Core functions record the cause with fail(); the C shims prefix the name of
// the public call with api_result().
#pragma once
#include <mproc/common.h>

namespace mproc {

// Record `code` with a printf-style cause for this thread; returns `code` (always negative).
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Record errno `err` as an mproc code, naming what failed; returns the code.
int fail_errno(int err, const char *what);
// Map an errno value to an MPROC_E* code.
int errno_to_code(int err);
// In a C shim: when rc < 0, prefix the recorded cause with the public function's name.
int api_result(const char *fn, int rc);
void clear_error();
const char *last_error_text();
int last_error_code();

}  // namespace mproc
