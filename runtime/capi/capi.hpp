// Helpers shared by the C shims: argument checks and the exception barrier. A shim checks its
// arguments, makes one call into the core inside guard(), and returns its code.
#pragma once
#include <new>

#include "../error.hpp"

namespace mproc {

template <class F>
int guard(const char *fn, F &&body) noexcept {
  try {
    return api_result(fn, body());
  } catch (const std::bad_alloc &) {
    return api_result(fn, fail(MPROC_ENOMEM, "out of memory"));
  } catch (const std::exception &e) {
    return api_result(fn, fail(MPROC_EUNKNOWN, "internal error: %s", e.what()));
  } catch (...) {
    return api_result(fn, fail(MPROC_EUNKNOWN, "internal error"));
  }
}

// A timeout argument: negative (or +inf) waits forever, 0 polls; NaN is refused.
inline int check_timeout(double t) {
  return t == t ? 0 : fail(MPROC_EINVAL, "timeout is NaN (use a negative value to wait forever)");
}

}  // namespace mproc

#define MPROC_GUARD(...) ::mproc::guard(__func__, [&]() -> int { __VA_ARGS__ })
