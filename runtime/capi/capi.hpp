// Helpers shared by the C shims: argument checks and the exception barrier. A shim checks its
// arguments, makes one call into the core inside guard(), and returns its code.
#pragma once
#include <cstring>
#include <new>

#include "base/error.hpp"

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

// Largest `size` a versioned options struct may claim: a bigger one is garbage, not a newer
// caller (no options struct comes near it).
constexpr size_t kOptsMaxSize = 4096;

// Read a caller's versioned options struct into *out, which holds the defaults: in->size must
// cover at least the first version's fields (min_size); fields an older, shorter struct lacks
// keep their defaults. NULL `in` means all defaults.
template <class Opts>
int read_opts(const Opts *in, size_t min_size, const char *type, Opts *out) {
  if (!in) return 0;
  if (in->size < min_size || in->size > kOptsMaxSize)
    return fail(MPROC_EINVAL, "opts->size %zu is not a size of %s", in->size, type);
  memcpy(out, in, in->size < sizeof *out ? in->size : sizeof *out);
  out->size = sizeof *out;
  return 0;
}

// A timeout argument: negative (or +inf) waits forever, 0 polls; NaN is refused.
inline int check_timeout(double t) {
  return t == t ? 0 : fail(MPROC_EINVAL, "timeout is NaN (use a negative value to wait forever)");
}

}  // namespace mproc

#define MPROC_GUARD(...) ::mproc::guard(__func__, [&]() -> int { __VA_ARGS__ })
