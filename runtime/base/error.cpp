#include "base/error.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace mproc {
namespace {
struct LastError {
  int code = 0;
  bool prefixed = false;
  char text[512] = "";
};
thread_local LastError t_err;
}  // namespace

int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_err.text, sizeof t_err.text, fmt, ap);
  va_end(ap);
  t_err.code = code;
  t_err.prefixed = false;
  return code;
}

int errno_to_code(int err) {
  switch (err) {
#define MPROC__ERRNO_CASE(name, value, msg) \
  case -(value):                           \
    return (value);
    MPROC_ERRNO_MAP(MPROC__ERRNO_CASE)
#undef MPROC__ERRNO_CASE
    case ENFILE:
      return MPROC_EMFILE;
    case E2BIG:
      return MPROC_EMSGSIZE;
    default:
      return MPROC_EUNKNOWN;
  }
}

int fail_errno(int err, const char *what) {
  return fail(errno_to_code(err), "%s: %s", what, strerror(err));
}

int api_result(const char *fn, int rc) {
  if (rc >= 0) return rc;
  if (t_err.code != rc || t_err.text[0] == '\0') {
    // The core returned a code without recording a cause: use the generic text.
    fail(rc, "%s", mproc_strerror(rc));
  }
  if (!t_err.prefixed) {
    char tmp[2 * sizeof t_err.text];
    snprintf(tmp, sizeof tmp, "%s: %s", fn, t_err.text);
    memcpy(t_err.text, tmp, sizeof t_err.text - 1);  // keeps the terminating NUL of text
    t_err.text[sizeof t_err.text - 1] = '\0';
    t_err.prefixed = true;
  }
  return rc;
}

void clear_error() {
  t_err.code = 0;
  t_err.prefixed = false;
  t_err.text[0] = '\0';
}
const char *last_error_text() { return t_err.text; }
int last_error_code() { return t_err.code; }

}  // namespace mproc
