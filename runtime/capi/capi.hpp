// Helpers shared by the C shims: argument checks and the exception barrier. A shim checks its
// arguments, makes one call into the core inside guard(), and returns its code.
#pragma once
#include <mproc/sync.h>

#include <cstdint>
#include <cstring>
#include <new>

#include "base/error.hpp"
#include "base/handles.hpp"

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

// A handle argument: NULL is MPROC_EINVAL; one that is not `live` (the registry does not hold it
// as its kind, or its magic is wrong) is MPROC_EBADF. `gone` says how a handle stops being live.
inline int report_live(const void *h, bool live, const char *what, const char *gone = "freed") {
  if (!h) return fail(MPROC_EINVAL, "%s handle is NULL", what);
  return live ? 0 : fail(MPROC_EBADF, "not a live %s handle (%s or never made)", what, gone);
}
template <class H>
int check_live(const H *h, HandleKind kind, const char *what) {
  return report_live(h, h && handle_valid(h, kind), what);
}
template <class H>
int check_live(const H *h, HandleKind kind, uint32_t magic, const char *what,
               const char *gone = "freed") {
  return report_live(h, h && handle_valid(h, kind) && h->magic == magic, what, gone);
}

// A pointer argument that must not be NULL.
inline int check_ptr(const void *p, const char *what) {
  return p ? 0 : fail(MPROC_EINVAL, "%s is NULL", what);
}

// The tokens of shared objects: the buffer an export writes into, and a token to attach.
inline int check_token_buf(const char *buf, size_t cap) {
  if (!buf) return fail(MPROC_EINVAL, "buf is NULL");
  return cap ? 0 : fail(MPROC_ENOSPC, "cap is 0");
}
inline int check_token(const char *token) {
  if (!token) return fail(MPROC_EINVAL, "token is NULL");
  if (strnlen(token, MPROC_TOKEN_MAX) >= MPROC_TOKEN_MAX)
    return fail(MPROC_EINVAL, "token is longer than MPROC_TOKEN_MAX");
  return 0;
}

}  // namespace mproc

// The body of a public call, run inside guard() under the call's name. The variants check their
// handle first with the file's check() for its type (and, for a wait, the timeout before it);
// _NEW checks and clears the out-parameter of a constructor; _FREE makes NULL a no-op.
#define MPROC_GUARD(...) ::mproc::guard(__func__, [&]() -> int { __VA_ARGS__ })
#define MPROC_ON(h, ...) MPROC_GUARD(if (int rc = check(h)) return rc; __VA_ARGS__)
#define MPROC_WAIT_ON(h, timeout, ...)                                 \
  MPROC_GUARD(if (int rc = ::mproc::check_timeout(timeout)) return rc; \
              if (int rc = check(h)) return rc; __VA_ARGS__)
#define MPROC_NEW(out, ...) \
  MPROC_GUARD(if (int rc = ::mproc::check_ptr(out, "out")) return rc; *(out) = nullptr; __VA_ARGS__)
#define MPROC_FREE(h, ...) \
  MPROC_GUARD(if (!(h)) return 0; if (int rc = check(h)) return rc; __VA_ARGS__ return 0;)
