// C ABI: version, errors, cpu count. A thin shim over base/error.cpp.
#include <sched.h>
#include <unistd.h>

#include "capi/capi.hpp"

extern "C" {

MPROC_API unsigned int mproc_version(void) { return MPROC_VERSION_HEX; }

MPROC_API const char *mproc_version_string(void) {
#define MPROC__STR2(x) #x
#define MPROC__STR(x) MPROC__STR2(x)
  return MPROC__STR(MPROC_VERSION_MAJOR) "." MPROC__STR(MPROC_VERSION_MINOR) "." MPROC__STR(
      MPROC_VERSION_PATCH);
}

MPROC_API const char *mproc_strerror(int code) {
  switch (code) {
    case 0:
      return "success";
#define MPROC__STRERROR(name, value, msg) \
  case value:                             \
    return msg;
      MPROC_ERRNO_MAP(MPROC__STRERROR)
#undef MPROC__STRERROR
    default:
      return "unknown error code";
  }
}

MPROC_API const char *mproc_err_name(int code) {
  switch (code) {
    case 0:
      return "MPROC_OK";
#define MPROC__ERRNAME(name, value, msg) \
  case value:                            \
    return "MPROC_" #name;
      MPROC_ERRNO_MAP(MPROC__ERRNAME)
#undef MPROC__ERRNAME
    default:
      return "MPROC_E?";
  }
}

MPROC_API const char *mproc_last_error(void) { return mproc::last_error_text(); }
MPROC_API int mproc_last_error_code(void) { return mproc::last_error_code(); }
MPROC_API void mproc_clear_error(void) { mproc::clear_error(); }

MPROC_API int mproc_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // extern "C"
