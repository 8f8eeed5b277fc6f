/* mproc: common definitions of the C ABI (version, export macro, error codes).
 * ABI promise: libraries with the same MPROC_VERSION_MAJOR are ABI compatible. */
#ifndef MPROC_COMMON_H
#define MPROC_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPROC_VERSION_MAJOR 0
#define MPROC_VERSION_MINOR 1
#define MPROC_VERSION_PATCH 0
#define MPROC_MAKE_VERSION(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define MPROC_VERSION_HEX \
  MPROC_MAKE_VERSION(MPROC_VERSION_MAJOR, MPROC_VERSION_MINOR, MPROC_VERSION_PATCH)

#if defined(MPROC_BUILDING) && defined(__GNUC__)
#  define MPROC_API __attribute__((visibility("default")))
#else
#  define MPROC_API
#endif

/* The one error table. XX(name, value, message): negative errno values where one fits,
 * -3000 and below for mproc's own conditions. */
#define MPROC_ERRNO_MAP(XX)                                                   \
  XX(EPERM, -1, "operation not permitted")                                    \
  XX(ENOENT, -2, "no such file or name")                                      \
  XX(ESRCH, -3, "no such process")                                            \
  XX(EINTR, -4, "interrupted")                                                \
  XX(EIO, -5, "i/o error")                                                    \
  XX(EBADF, -9, "bad or freed handle")                                        \
  XX(ECHILD, -10, "no child process")                                         \
  XX(EAGAIN, -11, "resource temporarily unavailable")                         \
  XX(ENOMEM, -12, "out of memory")                                            \
  XX(EACCES, -13, "permission denied")                                        \
  XX(EBUSY, -16, "resource busy")                                             \
  XX(EEXIST, -17, "already exists")                                           \
  XX(EINVAL, -22, "invalid argument")                                         \
  XX(EMFILE, -24, "too many open files")                                      \
  XX(ENOSPC, -28, "no space left")                                            \
  XX(EPIPE, -32, "broken pipe")                                               \
  XX(ERANGE, -34, "value out of range")                                       \
  XX(EDEADLK, -35, "deadlock would occur")                                    \
  XX(ENAMETOOLONG, -36, "name too long")                                      \
  XX(ENOSYS, -38, "not implemented")                                          \
  XX(EMSGSIZE, -90, "message or argument too large")                          \
  XX(ETIMEDOUT, -110, "timed out")                                            \
  XX(ECANCELED, -125, "canceled")                                             \
  XX(EOWNERDEAD, -130, "previous owner died")                                 \
  XX(ENOTSTARTED, -3001, "process not started")                               \
  XX(ESTARTED, -3002, "process already started")                              \
  XX(ECLOSED, -3003, "object is closed")                                      \
  XX(EWORKERDIED, -3004, "worker process died")                               \
  XX(EEMPTY, -3005, "empty")                                                  \
  XX(EFULL, -3006, "full")                                                    \
  XX(EBROKEN, -3007, "broken (barrier aborted or reset)")                     \
  XX(ENOTOWNER, -3008, "caller does not own it")                              \
  XX(EWRONGPROC, -3009, "handle belongs to another process")                  \
  XX(ETASKFAILED, -3010, "task failed")                                       \
  XX(ERUNNING, -3011, "process still running")                                \
  XX(EINITFAILED, -3012, "pool initializer failed")                           \
  XX(EITEREND, -3013, "no more results")                                      \
  XX(EUNKNOWN, -3999, "unknown error")

typedef enum mproc_errno {
  MPROC_OK = 0,
#define MPROC__ERR_ENUM(name, value, msg) MPROC_##name = (value),
  MPROC_ERRNO_MAP(MPROC__ERR_ENUM)
#undef MPROC__ERR_ENUM
  MPROC__ERR_END = -4000
} mproc_errno_t;

/* Run-time version as MPROC_VERSION_HEX; compare with the header's to detect a mismatch. */
MPROC_API unsigned int mproc_version(void);
/* Run-time version as "MAJOR.MINOR.PATCH" (static storage). */
MPROC_API const char *mproc_version_string(void);
/* Human text for an error code (static storage; never NULL). */
MPROC_API const char *mproc_strerror(int code);
/* Name of an error code, e.g. "MPROC_ETIMEDOUT" (static storage; never NULL). */
MPROC_API const char *mproc_err_name(int code);
/* Detail of the last error on this thread, naming the failing call and the cause, e.g.
 * "mproc_process_join: timeout after 0.5 s". Valid until this thread's next mproc call. */
MPROC_API const char *mproc_last_error(void);
/* Code of the last error on this thread (0 if the last failing call has been cleared). */
MPROC_API int mproc_last_error_code(void);
/* Forget this thread's last error. */
MPROC_API void mproc_clear_error(void);

/* Number of CPUs this process may run on (at least 1). */
MPROC_API int mproc_cpu_count(void);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_COMMON_H */
