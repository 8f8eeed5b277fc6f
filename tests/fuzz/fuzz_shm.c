/* libFuzzer target: shared-memory headers that another process of the same user has overwritten.
 * The first byte picks:
 *   even: a named block (/dev/shm/mproc-<name>): the fuzz bytes overwrite the end of its file,
 *         i.e. the trailer (size, creator, lease table size) and the lease table, then another
 *         handle attaches by name and both are closed;
 *   odd:  an arena of small objects (a memfd reached through /proc/<pid>/fd/<n> by tokens):
 *         the fuzz bytes overwrite its header (allocator state) and the first blocks, then the
 *         token is attached, a value is read and written, another is allocated, all are freed.
 * Calls must return 0 or an error with a message; nothing may touch memory outside the mapping,
 * crash or hang. Lock words are cleared: a live holder may legitimately keep the others waiting,
 * and taking a lock over from a dead one costs a 50 ms sleep (tests/test_shm.c covers it). */
#include "fuzz_check.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


static void unlocked(unsigned char *p) { memset(p, 0, 4); }

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static void named_block(const uint8_t *d, size_t n) {
  if (n < 3) return;
  char name[48], path[64];
  snprintf(name, sizeof name, "fuzz_shm_%d", (int)getpid());
  snprintf(path, sizeof path, "/dev/shm/mproc-%s", name);
  mproc_shm_opts_t o = MPROC_SHM_OPTS_INIT;
  o.lease = d[0] & 1;
  o.max_users = o.lease ? d[1] % 8 : 0;
  size_t size = 1 + d[2];
  d += 3, n -= 3;
  mproc_shm_t *s = NULL;
  if (mproc_shm_create_ex(&s, name, size, &o) != 0) {
    fprintf(stderr, "setup: %s\n", mproc_last_error());
    abort();
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) abort();
  size_t fsize = (size_t)st.st_size, k = n < fsize ? n : fsize;
  unsigned char *m = mmap(NULL, fsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) abort();
  memcpy(m + fsize - k, d, k);
  /* The lease lock: where the creator has it, and where the (new) trailer says it is. */
  uint64_t tsize;
  memcpy(&tsize, m + fsize - 64 + 8, 8);
  unlocked(m + round64(size));
  if (tsize < fsize && round64(tsize) + 4 <= fsize) unlocked(m + round64(tsize));
  munmap(m, fsize);
  close(fd);
  mproc_shm_t *other = NULL;
  int rc = mproc_shm_attach(&other, name);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_shm_close(other));
  CHECK(mproc_shm_unlink(s));
  CHECK(mproc_shm_close(s));
  unlink(path); /* a fuzzed trailer may keep the library from removing it */
}

static void arena(const uint8_t *d, size_t n) {
  mproc_value_t *v = NULL, *w = NULL, *x = NULL;
  char tok[MPROC_TOKEN_MAX];
  int fd;
  if (mproc_value_new(&v, 'q', NULL, NULL) != 0 ||
      mproc_value_export(v, tok, sizeof tok) < 0 ||
      sscanf(tok, "mproc:V:%*d:%d:", &fd) != 1) {
    fprintf(stderr, "setup: %s\n", mproc_last_error());
    abort();
  }
  struct stat st;
  if (fstat(fd, &st) < 0) abort();
  unsigned char *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) abort();
  memcpy(m, d, n < (size_t)st.st_size ? n : (size_t)st.st_size);
  unlocked(m + 24); /* the arena's allocator lock (ArenaHeader.mu) */
  munmap(m, (size_t)st.st_size);
  int rc = mproc_value_attach(&w, tok);
  CHECK(rc);
  if (rc == 0) {
    int64_t i;
    CHECK(mproc_value_load(w, &i));
    CHECK(mproc_value_store(w, 7));
    CHECK(mproc_value_free(w));
  }
  rc = mproc_value_new(&x, 'd', NULL, NULL);
  CHECK(rc);
  if (rc == 0) {
    CHECK(mproc_value_set_double(x, 1.5));
    CHECK(mproc_value_free(x));
  }
  CHECK(mproc_value_free(v));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) arena(data + 1, size - 1);
  else named_block(data + 1, size - 1);
  return 0;
}
