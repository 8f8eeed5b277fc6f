/* mproc: shared memory (the counterparts of multiprocessing.Value / Array / RawValue / RawArray
 * and multiprocessing.shared_memory.SharedMemory). See docs/shm.md.
 *
 * Values and arrays live in shared arenas (small objects do not cost a page or an fd each). Made
 * before a child starts, they are shared with it (fork); another process attaches them from a
 * token made by *_export (see sync.h: the exporter must hold the object while the other attaches).
 * Type codes are Python's: 'b' 'B' 'h' 'H' 'i' 'I' 'l' 'L' 'q' 'Q' (integers of the C types
 * signed/unsigned char, short, int, long, long long), 'f' float, 'd' double, 'c' char. */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <stdint.h>

#include "common.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every type code, as a string. */
#define MPROC_TYPECODES "bBhHiIlLqQfdc"
/* Largest array or named block, in bytes. */
#define MPROC_SHM_SIZE_MAX ((size_t)1 << 40)
/* Longest name of a named block (bytes, without the terminating NUL). */
#define MPROC_SHM_NAME_MAX 200

/* Size in bytes of one element of a type code (> 0), or MPROC_EINVAL for an unknown code. */
MPROC_API int mproc_typecode_size(char typecode);

typedef struct mproc_value_opts {
  size_t size;        /* sizeof(mproc_value_opts_t); set by MPROC_VALUE_OPTS_INIT */
  int raw;            /* non-zero: no lock at all (RawValue / RawArray) */
  mproc_lock_t *lock; /* NULL: a new RLock of its own; else this Lock or RLock (shared, not
                         consumed: the value keeps its own reference) */
} mproc_value_opts_t;

#define MPROC_VALUE_OPTS_INIT { sizeof(mproc_value_opts_t), 0, NULL }
/* Fill opts with defaults. Errors: MPROC_EINVAL (NULL). */
MPROC_API int mproc_value_opts_init(mproc_value_opts_t *opts);

/* ---- Value ---------------------------------------------------------------------------------- */

typedef struct mproc_value mproc_value_t;

/* Make a shared value; init points to one element of the type (NULL: zero). opts may be NULL.
 * Free with mproc_value_free(). Errors: MPROC_EINVAL (NULL out, unknown type code, bad opts),
 * MPROC_EBADF (bad opts->lock), MPROC_ENOMEM, MPROC_EMFILE. */
MPROC_API int mproc_value_new(mproc_value_t **out, char typecode, const void *init,
                              const mproc_value_opts_t *opts);
/* Copy the value to out (mproc_typecode_size bytes), under its lock. Errors: MPROC_EINVAL. */
MPROC_API int mproc_value_get(mproc_value_t *v, void *out);
/* Store the value from in (mproc_typecode_size bytes), under its lock. Errors: MPROC_EINVAL. */
MPROC_API int mproc_value_set(mproc_value_t *v, const void *in);
/* Read / write converting from / to double. Errors: MPROC_ERANGE (not representable: out of
 * range, or not integral for an integer type), MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_value_get_double(mproc_value_t *v, double *out);
MPROC_API int mproc_value_set_double(mproc_value_t *v, double x);
/* Read / write an integer ('c' too). Errors: MPROC_EINVAL ('f' or 'd'), MPROC_ERANGE. */
MPROC_API int mproc_value_get_int64(mproc_value_t *v, int64_t *out);
MPROC_API int mproc_value_set_int64(mproc_value_t *v, int64_t x);
/* The raw element (no locking), or NULL for a bad handle. */
MPROC_API void *mproc_value_ptr(mproc_value_t *v);
/* The type code (a char > 0), or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_value_typecode(const mproc_value_t *v);
/* The value's lock (owned by the value: do not free). Errors: MPROC_EINVAL (a raw value). */
MPROC_API int mproc_value_get_lock(mproc_value_t *v, mproc_lock_t **out);

/* Atomic operations on integer values (not 'f' 'd' 'c'), lock-free, ignoring the value's lock.
 * Arithmetic wraps at the type's width; 8-byte unsigned values above INT64_MAX read as negative.
 * Errors: MPROC_EINVAL (not an integer type), MPROC_ERANGE (operand out of the type's range). */
MPROC_API int mproc_value_load(mproc_value_t *v, int64_t *out);
MPROC_API int mproc_value_store(mproc_value_t *v, int64_t x);
/* Store x; *old (may be NULL) gets the previous value. */
MPROC_API int mproc_value_exchange(mproc_value_t *v, int64_t x, int64_t *old);
/* If the value equals *expected, store desired and return 1; else write the current value to
 * *expected and return 0. Errors: as above. */
MPROC_API int mproc_value_compare_exchange(mproc_value_t *v, int64_t *expected, int64_t desired);
/* Add / subtract delta; *old (may be NULL) gets the previous value. The one-call answer to the
 * `counter.value += 1` race. */
MPROC_API int mproc_value_fetch_add(mproc_value_t *v, int64_t delta, int64_t *old);
MPROC_API int mproc_value_fetch_sub(mproc_value_t *v, int64_t delta, int64_t *old);

/* Token for another process (names the value's lock too); see mproc_lock_export. */
MPROC_API int mproc_value_export(const mproc_value_t *v, char *buf, size_t cap);
/* Attach from a token; see mproc_lock_attach. Free with mproc_value_free(). */
MPROC_API int mproc_value_attach(mproc_value_t **out, const char *token);
/* Release this handle (the memory goes when no process holds one). NULL is a no-op.
 * Errors: MPROC_EBADF. */
MPROC_API int mproc_value_free(mproc_value_t *v);

/* ---- Array ---------------------------------------------------------------------------------- */

typedef struct mproc_array mproc_array_t;

/* Make a shared array of `length` (>= 1) elements; init points to `length` elements (NULL:
 * zeros). opts may be NULL. Free with mproc_array_free(). Errors: MPROC_EINVAL (NULL out, unknown
 * type code, length 0, bad opts), MPROC_EMSGSIZE (over MPROC_SHM_SIZE_MAX), MPROC_ENOMEM. */
MPROC_API int mproc_array_new(mproc_array_t **out, char typecode, size_t length, const void *init,
                              const mproc_value_opts_t *opts);
/* Number of elements. Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_array_length(const mproc_array_t *a, size_t *out);
/* Copy element i to / from one element at out / in, under the lock. Errors: MPROC_ERANGE (index
 * out of range), MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_array_get(mproc_array_t *a, size_t i, void *out);
MPROC_API int mproc_array_set(mproc_array_t *a, size_t i, const void *in);
/* Element i converted from / to double or int64; errors as for the value forms plus ERANGE. */
MPROC_API int mproc_array_get_double(mproc_array_t *a, size_t i, double *out);
MPROC_API int mproc_array_set_double(mproc_array_t *a, size_t i, double x);
MPROC_API int mproc_array_get_int64(mproc_array_t *a, size_t i, int64_t *out);
MPROC_API int mproc_array_set_int64(mproc_array_t *a, size_t i, int64_t x);
/* Copy `count` elements starting at `start` out of / into the array, under the lock (a slice).
 * Errors: MPROC_ERANGE (slice out of range), MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_array_read(mproc_array_t *a, size_t start, size_t count, void *out);
MPROC_API int mproc_array_write(mproc_array_t *a, size_t start, size_t count, const void *in);
/* The raw elements (no locking), or NULL for a bad handle. */
MPROC_API void *mproc_array_ptr(mproc_array_t *a);
/* The type code (a char > 0), or MPROC_EINVAL / MPROC_EBADF. */
MPROC_API int mproc_array_typecode(const mproc_array_t *a);
/* The array's lock (owned by the array: do not free). Errors: MPROC_EINVAL (a raw array). */
MPROC_API int mproc_array_get_lock(mproc_array_t *a, mproc_lock_t **out);
/* Token for another process; see mproc_lock_export. */
MPROC_API int mproc_array_export(const mproc_array_t *a, char *buf, size_t cap);
/* Attach from a token; see mproc_lock_attach. Free with mproc_array_free(). */
MPROC_API int mproc_array_attach(mproc_array_t **out, const char *token);
/* Release this handle. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_array_free(mproc_array_t *a);

/* ---- Named blocks (SharedMemory) ------------------------------------------------------------ */

/* A block of shared bytes with a name any process of the same user can attach. Names are
 * 1..MPROC_SHM_NAME_MAX characters of [A-Za-z0-9._-], not starting with '.' (an optional leading
 * '/' is ignored); the file is /dev/shm/mproc-<name>, made with O_EXCL and mode 0600. The
 * creator owns the lifetime
 * (unless leased, below): attaching never unlinks; the name goes when the creator calls
 * mproc_shm_unlink, or when the creator process ends (at exit, or, if it crashed, at the next
 * create/attach/cleanup). */
typedef struct mproc_shm mproc_shm_t;

/* Create a zero-filled block of size bytes (1..MPROC_SHM_SIZE_MAX); name NULL generates an
 * unguessable one. Close with mproc_shm_close(). Errors: MPROC_EINVAL (NULL out, bad name, size
 * 0), MPROC_ENAMETOOLONG, MPROC_EMSGSIZE (too big), MPROC_EEXIST, MPROC_ENOSPC, MPROC_EACCES. */
MPROC_API int mproc_shm_create(mproc_shm_t **out, const char *name, size_t size);
/* Attach the block of that name (a leased block: as one more user). Close with mproc_shm_close().
 * Errors: MPROC_EINVAL, MPROC_ENAMETOOLONG, MPROC_ENOENT (no such block, or its creator / all its
 * users have ended), MPROC_EACCES, MPROC_EFULL (a leased block's table of users is full). */
MPROC_API int mproc_shm_attach(mproc_shm_t **out, const char *name);
/* The block's name (owned by the handle), or NULL for a bad handle. */
MPROC_API const char *mproc_shm_name(const mproc_shm_t *s);
/* The block's size in bytes (as created). Errors: MPROC_EINVAL, MPROC_EBADF. */
MPROC_API int mproc_shm_size(const mproc_shm_t *s, size_t *out);
/* The block's memory in this process, or NULL for a bad handle. */
MPROC_API void *mproc_shm_ptr(const mproc_shm_t *s);
/* Remove the name (mappings stay valid; later attaches fail). Errors: MPROC_ENOENT (already
 * unlinked), MPROC_EBADF, MPROC_EINVAL. */
MPROC_API int mproc_shm_unlink(mproc_shm_t *s);
/* Unmap and release the handle. Does not unlink, except a leased block that this was the last
 * live user of. NULL is a no-op. Errors: MPROC_EBADF. */
MPROC_API int mproc_shm_close(mproc_shm_t *s);
/* Remove the names of blocks whose creator has ended, and of leased blocks whose users have all
 * ended (done by every create too). Returns how many were removed (>= 0). */
MPROC_API int mproc_shm_cleanup(void);

/* Leased blocks: the name lives while a process uses the block (see docs/shm.md). Each process
 * that creates or attaches one takes an entry (pid and start time) in a table in the block; the
 * name is unlinked when the last live user closes it or exits, and a block whose users all died
 * is unlinked by the next create/attach/cleanup that finds it. */
/* Default and largest number of processes a leased block's table holds. */
#define MPROC_SHM_LEASE_USERS_DEFAULT 64
#define MPROC_SHM_LEASE_USERS_MAX 4096

typedef struct mproc_shm_opts {
  size_t size;        /* sizeof(mproc_shm_opts_t); set by MPROC_SHM_OPTS_INIT */
  int lease;          /* non-zero: lifetime follows the users, not the creator */
  unsigned max_users; /* leased: table size (0: MPROC_SHM_LEASE_USERS_DEFAULT) */
} mproc_shm_opts_t;

#define MPROC_SHM_OPTS_INIT { sizeof(mproc_shm_opts_t), 0, 0 }
/* Fill opts with defaults. Errors: MPROC_EINVAL (NULL). */
MPROC_API int mproc_shm_opts_init(mproc_shm_opts_t *opts);
/* mproc_shm_create with options (opts NULL: the same as mproc_shm_create). Close with
 * mproc_shm_close(). Errors: those of mproc_shm_create; MPROC_EINVAL also for bad opts (size,
 * max_users over MPROC_SHM_LEASE_USERS_MAX or set without lease). */
MPROC_API int mproc_shm_create_ex(mproc_shm_t **out, const char *name, size_t size,
                                  const mproc_shm_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_SHM_H */
