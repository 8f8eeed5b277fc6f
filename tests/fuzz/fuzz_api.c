/* libFuzzer target: what callers pass in from outside, through the public API only.
 * The first byte picks an entry point; the rest is its input:
 *   0  a named block's name (create, attach, unlink): the allowed characters and the '.' rule
 *   1  a queue name (mproc_queue_open)
 *   2  an object token (value, array, lock, semaphore, event attach)
 *   3  a live object's real token with fuzz bytes written over it (reaches the arena checks)
 *   4  option structs: the bytes become mproc_queue_opts_t / mproc_shm_opts_t /
 *      mproc_value_opts_t (size field and all), plus an array length and typecode
 * Every call must return 0 or a negative code with a message, and leave nothing behind.
 * Names and tokens may name any process's descriptors (/proc/<pid>/fd/<n>): the target points
 * them at its own pid, so that fuzzing never touches another program's objects. */
#include "fuzz_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* The pid field of "mproc:<k>:<pid>:..." or "mproc-queue:<pid>:..." becomes ours. */
static void own_pid(char *s, size_t cap) {
  char *p = NULL;
  if (strncmp(s, "mproc-queue:", 12) == 0) p = s + 12;
  else if (strncmp(s, "mproc:", 6) == 0 && s[6] && s[7] == ':') p = s + 8;
  if (!p) return;
  char *e = strchr(p, ':');
  if (!e) e = p + strlen(p);
  char pid[16];
  int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
  size_t tail = strlen(e) + 1;
  if ((size_t)(p - s) + (size_t)n + tail > cap) return;
  memmove(p + n, e, tail);
  memcpy(p, pid, (size_t)n);
}

static void names(const char *s) {
  mproc_shm_t *shm = NULL;
  int rc = mproc_shm_create(&shm, s, 64);
  CHECK(rc);
  if (rc == 0) {
    mproc_shm_t *again = NULL;
    rc = mproc_shm_attach(&again, s);
    CHECK(rc);
    if (rc == 0) CHECK(mproc_shm_close(again));
    CHECK(mproc_shm_unlink(shm));
    CHECK(mproc_shm_close(shm));
  } else {
    rc = mproc_shm_attach(&shm, s);  /* EEXIST: another program's block may have that name */
    CHECK(rc);
    if (rc == 0) CHECK(mproc_shm_close(shm));
  }
}

static void queue_name(char *s, size_t cap) {
  own_pid(s, cap);
  mproc_queue_t *q = NULL;
  int rc = mproc_queue_open(&q, s);
  CHECK(rc);
  if (rc == 0) {
    char buf[16];
    size_t n;
    CHECK(mproc_queue_get(q, buf, sizeof buf, &n, 0));
    CHECK(mproc_queue_free(q));
  }
}

static void tokens(char *s, size_t cap) {
  own_pid(s, cap);
  mproc_value_t *v = NULL;
  mproc_array_t *a = NULL;
  mproc_lock_t *l = NULL;
  mproc_sem_t *m = NULL;
  mproc_event_t *e = NULL;
  int rc = mproc_value_attach(&v, s);
  CHECK(rc);
  if (rc == 0) {
    double d;
    CHECK(mproc_value_get_double(v, &d));
    CHECK(mproc_value_free(v));
  }
  rc = mproc_array_attach(&a, s);
  CHECK(rc);
  if (rc == 0) {
    size_t n = 0;
    CHECK(mproc_array_length(a, &n));
    if (n) {
      double d;
      CHECK(mproc_array_get_double(a, n - 1, &d));
    }
    CHECK(mproc_array_free(a));
  }
  rc = mproc_lock_attach(&l, s);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_lock_free(l));
  rc = mproc_sem_attach(&m, s);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_sem_free(m));
  rc = mproc_event_attach(&e, s);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_event_free(e));
}

/* Real objects whose tokens mode 3 corrupts (made once, kept for the whole run). */
static char g_tok[4][MPROC_TOKEN_MAX];

static void make_objects(void) {
  static mproc_value_t *v;
  static mproc_array_t *a;
  static mproc_lock_t *l;
  static mproc_sem_t *m;
  double init[4] = {1, 2, 3, 4};
  mproc_value_opts_t vo = MPROC_VALUE_OPTS_INIT;
  if (mproc_value_new(&v, 'd', NULL, &vo) || mproc_array_new(&a, 'd', 4, init, NULL) ||
      mproc_lock_new(&l) || mproc_sem_new(&m, 1) ||
      mproc_value_export(v, g_tok[0], MPROC_TOKEN_MAX) < 0 ||
      mproc_array_export(a, g_tok[1], MPROC_TOKEN_MAX) < 0 ||
      mproc_lock_export(l, g_tok[2], MPROC_TOKEN_MAX) < 0 ||
      mproc_sem_export(m, g_tok[3], MPROC_TOKEN_MAX) < 0) {
    fprintf(stderr, "setup: %s\n", mproc_last_error());
    abort();
  }
}

static void corrupt_token(const uint8_t *d, size_t n) {
  if (n < 1) return;
  char t[MPROC_TOKEN_MAX];
  memcpy(t, g_tok[d[0] % 4], MPROC_TOKEN_MAX);
  size_t len = strlen(t);
  for (size_t i = 1; i + 1 < n; i += 2) {  /* (position, byte) pairs; position past the end cuts */
    size_t at = d[i] % (len + 1);
    t[at] = (char)d[i + 1];
    if (at == len || d[i + 1] == 0) len = strlen(t);
    if (at == len && d[i + 1]) t[++len] = '\0';
  }
  tokens(t, sizeof t);
}

static void options(const uint8_t *d, size_t n) {
  /* The struct as the caller passed it: a buffer of up to 4 KiB (opts->size may say up to that
   * much) holding the fuzz bytes, the rest zero. */
  static unsigned char buf[4096 + 64];
  memset(buf, 0, sizeof buf);
  memcpy(buf, d, n < sizeof buf ? n : sizeof buf);
  mproc_queue_t *q = NULL;
  int rc = mproc_queue_new(&q, (const mproc_queue_opts_t *)buf);
  CHECK(rc);
  if (rc == 0) {
    char m[8] = "abcdefg", out[8];
    size_t len;
    CHECK(mproc_queue_put(q, m, sizeof m, 0));
    CHECK(mproc_queue_get(q, out, sizeof out, &len, 0));
    CHECK(mproc_queue_free(q));
  }
  mproc_shm_t *s = NULL;
  char name[32];
  snprintf(name, sizeof name, "fuzz_opts_%d", (int)getpid());
  size_t size;
  memcpy(&size, buf + 32, sizeof size);
  rc = mproc_shm_create_ex(&s, name, size % (1u << 20), (const mproc_shm_opts_t *)buf);
  CHECK(rc);
  if (rc == 0) {
    CHECK(mproc_shm_unlink(s));
    CHECK(mproc_shm_close(s));
  }
  mproc_value_t *v = NULL;
  mproc_value_opts_t vo;
  memcpy(&vo, buf, sizeof vo);
  vo.lock = NULL;  /* a pointer: the caller's to get right */
  rc = mproc_value_new(&v, (char)buf[40], NULL, &vo);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_value_free(v));
  mproc_array_t *a = NULL;
  size_t length;
  memcpy(&length, buf + 48, sizeof length);
  /* Lengths whose byte size overflows, or modest ones (a valid huge array is only slow). */
  length = buf[42] & 1 ? SIZE_MAX - length % 256 : length % 65536;
  rc = mproc_array_new(&a, (char)buf[41], length, NULL, &vo);
  CHECK(rc);
  if (rc == 0) CHECK(mproc_array_free(a));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    make_objects();
    ready = 1;
  }
  if (size < 1) return 0;
  char s[MPROC_TOKEN_MAX + 64];
  size_t n = size - 1 < sizeof s - 1 ? size - 1 : sizeof s - 1;
  memcpy(s, data + 1, n);
  s[n] = '\0';
  switch (data[0] % 5) {
    case 0: names(s); break;
    case 1: queue_name(s, sizeof s); break;
    case 2: tokens(s, sizeof s); break;
    case 3: corrupt_token(data + 1, size - 1); break;
    case 4: options(data + 1, size - 1); break;
  }
  return 0;
}
