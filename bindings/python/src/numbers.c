/* Chunks of numbers, packed: a map's chunk of exact ints or floats (starmap's: tuples of them)
 * travels as native 8-byte values instead of a pickle (pack_numbers, pack_tuples), the worker
 * calls the function on them and packs the results as they come (map_packed, starmap_packed),
 * and they come back as a list of the same values (unpack_numbers; async_next in helpers.c).
 *
 * Making many objects at once, the other cost: pymalloc takes its 1 MiB arenas from mmap one at
 * a time, and each of their 256 pages faults on first touch. On this project's 2-core VM a fault
 * costs about 11 us, so the 10^6 ints of a map's results (32 MB) took 90-110 ms to make, nearly
 * all of the parent's time in a chunked map, while the same loop with those arenas in huge pages
 * took 9-11 ms. So while many objects are made at once (the numbers of a large chunk, or the
 * unpickling of a large pickle: loads), pymalloc's arena allocator is a huge-page one: arenas
 * carved in pairs out of 2 MiB regions advised MADV_HUGEPAGE, each region one fault. pymalloc
 * frees an arena with the allocator current then, the interpreter's own (munmap of the arena),
 * which is right for these too: they are plain anonymous mappings, and the kernel splits a huge
 * page when half of it goes. The swap is made only when the interpreter's arena allocator is its
 * own (the one seen first, living in the interpreter, with no context: CPython's mmap arenas on
 * Linux); with PYTHONMALLOC=malloc pymalloc asks for no arenas and nothing changes.
 * MPROC_HUGE_ARENAS=0 in the environment turns it off (to compare). */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include "mproc_py.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- huge-page arenas while many objects are made ----------------------------------------
 * One scope for the process, counted: it is begun and ended with the GIL held, and the Python
 * code a scope may run (pickle.loads calls constructors) may switch threads, so another thread
 * can begin and end its own inside it, or outlive it; the interpreter's allocator comes back when
 * the last one ends. Arenas made meanwhile by any thread are huge-page ones: plain mappings that
 * the interpreter's own allocator frees as it frees its own. */
enum { kHugeRegion = 2 << 20, kHugeMinItems = 16384, kHugeMinBytes = 256 << 10 };

static struct {
  PyObjectArenaAllocator prev;
  char *next; /* the unused part of the current region */
  size_t left;
  int depth;
} g_huge;

/* Taken by huge_alloc and by huge_end's unmap of the unused part: the allocator setting is the
 * process's, and an interpreter with a GIL of its own (Python 3.12+) may take an arena while
 * another's scope is open. */
static pthread_mutex_t g_huge_mu = PTHREAD_MUTEX_INITIALIZER;

static void *huge_alloc_locked(size_t size);
static void *huge_alloc(void *ctx, size_t size) {
  (void)ctx;
  pthread_mutex_lock(&g_huge_mu);
  void *r = huge_alloc_locked(size);
  pthread_mutex_unlock(&g_huge_mu);
  return r;
}

static void *huge_alloc_locked(size_t size) {
  if (size == 0 || size > kHugeRegion || kHugeRegion % size != 0)
    return g_huge.prev.alloc(g_huge.prev.ctx, size);
  if (g_huge.left < size) {
    if (g_huge.left) munmap(g_huge.next, g_huge.left);
    g_huge.left = 0;
    /* twice the size, then the ends cut off: a region aligned to its size, as a huge page is */
    char *p = (char *)mmap(NULL, 2 * (size_t)kHugeRegion, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return g_huge.prev.alloc(g_huge.prev.ctx, size);
    char *a = (char *)(((uintptr_t)p + kHugeRegion - 1) & ~(uintptr_t)(kHugeRegion - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (a + kHugeRegion < p + 2 * (size_t)kHugeRegion)
      munmap(a + kHugeRegion, (size_t)(p + 2 * (size_t)kHugeRegion - (a + kHugeRegion)));
    madvise(a, kHugeRegion, MADV_HUGEPAGE); /* advice: without huge pages it works as before */
    g_huge.next = a;
    g_huge.left = kHugeRegion;
  }
  void *r = g_huge.next;
  g_huge.next += size;
  g_huge.left -= size;
  return r;
}

static void huge_free(void *ctx, void *ptr, size_t size) {
  (void)ctx;
  munmap(ptr, size); /* what the interpreter's own allocator does with an arena */
}

/* Whether the interpreter's arena allocator is the one it started with, its own. */
static int huge_usable(void) {
  static int state = -1; /* -1 not checked, 0 no, 1 yes */
  static PyObjectArenaAllocator first;
  PyObjectArenaAllocator cur;
  PyObject_GetArenaAllocator(&cur);
  if (state < 0) {
    const char *env = getenv("MPROC_HUGE_ARENAS");
    Dl_info a, b;
    state = !(env && strcmp(env, "0") == 0) && cur.ctx == NULL && cur.alloc && cur.free &&
            dladdr((void *)cur.alloc, &a) && dladdr((void *)&PyObject_Malloc, &b) &&
            a.dli_fname && b.dli_fname && strcmp(a.dli_fname, b.dli_fname) == 0;
    first = cur;
  }
  return state == 1 && cur.ctx == first.ctx && cur.alloc == first.alloc && cur.free == first.free;
}

static __thread int t_huge_depth; /* the scopes of this thread among g_huge.depth */

/* A child forked inside some thread's scope has only the forking thread: the scopes of the
 * others will never end there, so they are forgotten (and the interpreter's allocator is back
 * if the forking thread has none open). */
static void huge_after_fork_child(void) {
  /* a thread that held the mutex at the fork is not here (forks are made with the GIL held, so
   * only an interpreter with a GIL of its own could have been inside huge_alloc) */
  pthread_mutex_init(&g_huge_mu, NULL);
  if (g_huge.depth == t_huge_depth) return;
  g_huge.depth = t_huge_depth;
  if (g_huge.depth == 0) {
    PyObject_SetArenaAllocator(&g_huge.prev);
    if (g_huge.left) munmap(g_huge.next, g_huge.left);
    g_huge.left = 0;
  }
}

/* Begin a scope for about `items` objects (small ones begin none); pass what it returns to
 * huge_end, on the same thread. The GIL is held. */
static int huge_begin(Py_ssize_t items) {
  static int hooked;
  if (items < kHugeMinItems) return 0;
  if (g_huge.depth == 0) {
    if (!huge_usable()) return 0;
    if (!hooked) hooked = pthread_atfork(NULL, NULL, huge_after_fork_child) == 0;
    PyObject_GetArenaAllocator(&g_huge.prev);
    PyObjectArenaAllocator mine = {NULL, huge_alloc, huge_free};
    PyObject_SetArenaAllocator(&mine);
  }
  g_huge.depth++;
  t_huge_depth++;
  return 1;
}

static void huge_end(int begun) {
  if (!begun) return;
  t_huge_depth--;
  if (--g_huge.depth > 0) return;
  PyObject_SetArenaAllocator(&g_huge.prev);
  pthread_mutex_lock(&g_huge_mu);
  if (g_huge.left) munmap(g_huge.next, g_huge.left);
  g_huge.left = 0;
  pthread_mutex_unlock(&g_huge_mu);
}

/* loads(data[, buffers]) -> pickle.loads(data, buffers=buffers), in a scope of huge-page arenas
 * when data is large (a chunk's items in a worker, a chunk's results in the parent: 10^5 new
 * objects). */
PyObject *mproc_py_loads(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *arg, *buffers = NULL;
  if (!PyArg_ParseTuple(args, "O|O", &arg, &buffers)) return NULL;
  static PyObject *loads;
  if (!loads) {
    PyObject *m = PyImport_ImportModule("pickle");
    loads = m ? PyObject_GetAttrString(m, "loads") : NULL;
    Py_XDECREF(m);
    if (!loads) return NULL;
  }
  PyObject *kw = NULL;
  if (buffers && buffers != Py_None) {
    kw = Py_BuildValue("{sO}", "buffers", buffers);
    if (!kw) return NULL;
  }
  Py_ssize_t len = 0;
  if (PyBytes_Check(arg)) {
    len = PyBytes_GET_SIZE(arg);
  } else if (PyMemoryView_Check(arg)) {
    len = PyMemoryView_GET_BUFFER(arg)->len;
  }
  /* a pickle of 256 KiB makes some 10^4 objects or more; a few bytes per object */
  const int begun = huge_begin(len >= kHugeMinBytes ? kHugeMinItems : 0);
  PyObject *a = PyTuple_Pack(1, arg);
  PyObject *r = a ? PyObject_Call(loads, a, kw) : NULL;
  Py_XDECREF(a);
  Py_XDECREF(kw);
  huge_end(begun);
  return r;
}

/* A list of the n packed numbers at buf ('q': int64, 'd': double). */
PyObject *mproc_py_unpacked(const char *buf, Py_ssize_t n, char mode) {
  PyObject *list = PyList_New(n);
  if (!list) return NULL;
  const int begun = huge_begin(n);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *o;
    if (mode == 'q') {
      long long v;
      memcpy(&v, buf + 8 * i, 8);
      o = PyLong_FromLongLong(v);
    } else {
      double v;
      memcpy(&v, buf + 8 * i, 8);
      o = PyFloat_FromDouble(v);
    }
    if (!o) {
      huge_end(begun);
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, o);
  }
  huge_end(begun);
  return list;
}

/* The window seq[start:stop] of a pack_* call's arguments (seq, head[, start, stop]; fmt says
 * which are optional): 1 with *items and *n set, 0 when there is nothing to pack (not an exact
 * list or tuple, an empty window), -1 with an exception. */
static int pack_window(PyObject *args, const char *fmt, const char **head, Py_ssize_t *head_len,
                       PyObject ***items, Py_ssize_t *n) {
  PyObject *seq;
  Py_ssize_t start = 0, stop = PY_SSIZE_T_MAX;
  *head = "";
  *head_len = 0;
  if (!PyArg_ParseTuple(args, fmt, &seq, head, head_len, &start, &stop)) return -1;
  if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) return 0;
  const Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
  if (start < 0) start = 0;
  if (stop > len) stop = len;
  if (start >= stop) return 0;
  *items = PySequence_Fast_ITEMS(seq) + start;
  *n = stop - start;
  return 1;
}

/* ---- chunks of ASCII strings ---------------------------------------------------------------
 * A map over text is as common as one over numbers, and pickle costs both ends as much for a
 * chunk of short strings (the parent's pickling of 10^6 short strings: 90 ms, a worker's
 * unpickling of 125,000 of them with their page faults: 30 ms). So a chunk of exact str objects
 * that are all ASCII is packed: b"U", the count (uint32), each length (uint32), then the
 * characters; the other side makes each string from its bytes. Other strings (non-ASCII ones
 * would have to be encoded, or have their UTF-8 cached in the caller's objects) are pickled. */

/* A list of the strings packed at p (b"U" first), len bytes; NULL with ValueError if it is not
 * such a chunk. */
static PyObject *unpacked_strs(const char *p, size_t len) {
  uint32_t n;
  if (len < 5 || p[0] != 'U') goto bad;
  memcpy(&n, p + 1, 4);
  if ((len - 5) / 4 < n) goto bad;
  const char *lens = p + 5, *c = p + 5 + 4 * (size_t)n, *end = p + len;
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t k;
    memcpy(&k, lens + 4 * (size_t)i, 4);
    total += k;
  }
  if (total != (size_t)(end - c)) goto bad;
  PyObject *list = PyList_New(n);
  if (!list) return NULL;
  const int begun = huge_begin(n);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t k;
    memcpy(&k, lens + 4 * (size_t)i, 4);
    PyObject *o = PyUnicode_DecodeASCII(c, k, NULL); /* ASCII as packed: a non-ASCII byte raises */
    if (!o) {
      huge_end(begun);
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, o);
    c += k;
  }
  huge_end(begun);
  return list;
bad:
  PyErr_SetString(PyExc_ValueError, "not a chunk of packed numbers or strings");
  return NULL;
}

static PyObject *unpacked_tuples(const char *p, size_t len);

PyObject *mproc_py_unpacked_at(const char *p, size_t len) {
  if (len >= 1 && p[0] == 'U') return unpacked_strs(p, len);
  if (len >= 1 && p[0] == 'T') return unpacked_tuples(p, len);
  if (len < 1 || (p[0] != 'q' && p[0] != 'd') || (len - 1) % 8 != 0) {
    PyErr_SetString(PyExc_ValueError, "not a chunk of packed numbers or strings");
    return NULL;
  }
  return mproc_py_unpacked(p + 1, (Py_ssize_t)((len - 1) / 8), p[0]);
}

/* pack_strs(list or tuple, head, start, stop) -> bytes or None: the items of seq[start:stop]
 * packed as above when every one is an exact str of ASCII characters; None otherwise. */
PyObject *mproc_py_pack_strs(PyObject *self, PyObject *args) {
  (void)self;
  const char *head;
  Py_ssize_t head_len, n;
  PyObject **items;
  const int w = pack_window(args, "Oy#nn", &head, &head_len, &items, &n);
  if (w < 0) return NULL;
  if (w == 0 || n > (Py_ssize_t)UINT32_MAX) Py_RETURN_NONE;
  size_t chars = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *o = items[i];
    if (!PyUnicode_CheckExact(o) || PyUnicode_READY(o) < 0 || !PyUnicode_IS_ASCII(o) ||
        PyUnicode_GET_LENGTH(o) > (Py_ssize_t)UINT32_MAX) {
      PyErr_Clear();
      Py_RETURN_NONE;
    }
    chars += (size_t)PyUnicode_GET_LENGTH(o);
  }
  const size_t at = (size_t)head_len + 5 + 4 * (size_t)n;
  if (chars > (size_t)PY_SSIZE_T_MAX - at) return PyErr_NoMemory();
  PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(at + chars));
  if (!out) return NULL;
  char *p = PyBytes_AS_STRING(out);
  memcpy(p, head, (size_t)head_len);
  p += head_len;
  *p++ = 'U';
  const uint32_t count = (uint32_t)n;
  memcpy(p, &count, 4);
  char *lens = p + 4, *c = PyBytes_AS_STRING(out) + at;
  for (Py_ssize_t i = 0; i < n; i++) {
    const uint32_t k = (uint32_t)PyUnicode_GET_LENGTH(items[i]);
    memcpy(lens + 4 * i, &k, 4);
    memcpy(c, PyUnicode_1BYTE_DATA(items[i]), k);
    c += k;
  }
  return out;
}

/* unpack_numbers(buffer, at) -> list: the numbers packed by pack_numbers or map_packed (or the
 * strings of pack_strs, the tuples of pack_tuples), whose format byte (b"q", b"d", b"U" or b"T")
 * is at offset at; the same values and types as the packed ones. */
PyObject *mproc_py_unpack_numbers(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer b;
  Py_ssize_t at;
  if (!PyArg_ParseTuple(args, "y*n", &b, &at)) return NULL;
  PyObject *r = NULL;
  if (at < 0 || at >= b.len)
    PyErr_SetString(PyExc_ValueError, "not a chunk of packed numbers or strings");
  else
    r = mproc_py_unpacked_at((const char *)b.buf + at, (size_t)(b.len - at));
  PyBuffer_Release(&b);
  return r;
}

/* pack_numbers(list or tuple[, head[, start, stop]]) -> bytes or None: head, then b"q" and the
 * items (of seq[start:stop], without making that slice) as native
 * int64s when every item is exactly an int that fits, or b"d" and native doubles when every item
 * is exactly a float; None otherwise (bool, int subclasses, big ints, mixed types: those are
 * pickled). The other side reads it back with unpack_numbers (or memoryview(b)[at + 1:].cast(fmt)):
 * the same values and types as unpickling (a double's bits are kept, NaN payloads and -0.0
 * included) without pickle's per-item opcodes (a chunk of ints or floats is a map's common
 * case). Native byte order: both ends run on this machine (or, over MPI, on the same kind). */
PyObject *mproc_py_pack_numbers(PyObject *self, PyObject *args) {
  (void)self;
  const char *head;
  Py_ssize_t head_len, n;
  PyObject **items;
  const int w = pack_window(args, "O|y#nn", &head, &head_len, &items, &n);
  if (w <= 0) {
    if (w < 0) return NULL;
    Py_RETURN_NONE;
  }
  int ints = PyLong_CheckExact(items[0]);
  if (!ints && !PyFloat_CheckExact(items[0])) Py_RETURN_NONE;
  PyObject *out = PyBytes_FromStringAndSize(NULL, head_len + 1 + 8 * n);
  if (!out) return NULL;
  char *p = PyBytes_AS_STRING(out);
  memcpy(p, head, (size_t)head_len);
  p += head_len;
  *p++ = ints ? 'q' : 'd';
  for (Py_ssize_t i = 0; i < n; i++, p += 8) {
    PyObject *o = items[i];
    if (ints) {
      int overflow = 0;
      long long v;
      if (!PyLong_CheckExact(o) || ((v = PyLong_AsLongLongAndOverflow(o, &overflow)), overflow)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
      }
      memcpy(p, &v, 8);
    } else {
      if (!PyFloat_CheckExact(o)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
      }
      double v = PyFloat_AS_DOUBLE(o);
      memcpy(p, &v, 8);
    }
  }
  return out;
}

/* ---- results packed as they come ----------------------------------------------------------
 * A chunk's results go straight into the bytes returned (sized by the chunk's length, then cut
 * to fit) while they are exact ints that fit, or exact floats; at the first that is not, the
 * results so far become objects again and the rest is a plain list. Each result is dropped once
 * packed, so a chunk of 10^5 never has 10^5 result objects alive at once: their memory is reused
 * instead of new allocator arenas being faulted in (on a 2-core VM a worker spent 3/4 of a large
 * chunk's time in those page faults; a separate buffer and its copy into the bytes cost a fresh
 * megabyte more per chunk of 125,000). */
typedef struct {
  PyObject *out;  /* the bytes being filled, or NULL once list is made */
  PyObject *list; /* the results as objects (not packable), or NULL */
  Py_ssize_t at;  /* where the values start in out: after the head and the format byte */
  Py_ssize_t n, cap;
  char mode; /* 'q', 'd', 'x' (not packable), 0 (no result yet) */
} packer;

static int packer_init(packer *k, Py_ssize_t cap, Py_ssize_t head_len) {
  k->list = NULL;
  k->at = head_len + 1;
  k->n = 0;
  k->cap = cap < 1 ? 1 : cap;
  k->mode = 0;
  k->out = PyBytes_FromStringAndSize(NULL, k->at + 8 * k->cap);
  return k->out ? 0 : -1;
}

static void packer_clear(packer *k) {
  Py_CLEAR(k->out);
  Py_CLEAR(k->list);
}

/* Take one result (a new reference, consumed); -1 with an exception set. */
static int packer_add(packer *k, PyObject *r) {
  if (!k->list) {
    if (!k->mode) k->mode = PyLong_CheckExact(r) ? 'q' : PyFloat_CheckExact(r) ? 'd' : 'x';
    int overflow = 0;
    long long q = 0;
    const int ok = k->mode == 'q'
                       ? PyLong_CheckExact(r) && ((q = PyLong_AsLongLongAndOverflow(r, &overflow)), !overflow)
                       : k->mode == 'd' && PyFloat_CheckExact(r);
    if (ok) {
      if (k->n == k->cap) {
        if (_PyBytes_Resize(&k->out, k->at + 16 * k->cap) < 0) { /* k->out is NULL then */
          Py_DECREF(r);
          return -1;
        }
        k->cap *= 2;
      }
      char *p = PyBytes_AS_STRING(k->out) + k->at + 8 * k->n;
      if (k->mode == 'q') {
        memcpy(p, &q, 8);
      } else {
        const double d = PyFloat_AS_DOUBLE(r);
        memcpy(p, &d, 8);
      }
      k->n++;
      Py_DECREF(r);
      return 0;
    }
    if (PyErr_Occurred()) { /* not a fit is not an error; anything else is */
      Py_DECREF(r);
      return -1;
    }
    k->list = k->mode == 'x' ? PyList_New(0)
                             : mproc_py_unpacked(PyBytes_AS_STRING(k->out) + k->at, k->n, k->mode);
    Py_CLEAR(k->out);
    if (!k->list) {
      Py_DECREF(r);
      return -1;
    }
  }
  const int rc = PyList_Append(k->list, r);
  Py_DECREF(r);
  return rc;
}

/* The packed bytes (head, format byte, values) or the list; the packer is empty after. */
static PyObject *packer_finish(packer *k, const char *head, Py_ssize_t head_len) {
  PyObject *r;
  if (k->list) {
    r = k->list;
    k->list = NULL;
  } else if (k->n == 0) {
    r = PyList_New(0);
  } else {
    char *p = PyBytes_AS_STRING(k->out);
    memcpy(p, head, (size_t)head_len);
    p[head_len] = k->mode;
    if (k->n < k->cap && _PyBytes_Resize(&k->out, k->at + 8 * k->n) < 0) return NULL;
    r = k->out;
    k->out = NULL;
  }
  packer_clear(k);
  return r;
}

/* map_packed(func, iterable, head) -> bytes or list: list(map(func, iterable)) packed as
 * pack_numbers(results, head) packs it, or the list itself when pack_numbers would give None. */
PyObject *mproc_py_map_packed(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *fn, *seq;
  const char *head = "";
  Py_ssize_t head_len = 0;
  if (!PyArg_ParseTuple(args, "OOy#", &fn, &seq, &head, &head_len)) return NULL;
  PyObject *it = PyObject_GetIter(seq);
  if (!it) return NULL;
  const Py_ssize_t hint = PyObject_LengthHint(seq, 64);
  packer k;
  if (hint < 0 || packer_init(&k, hint, head_len) < 0) {
    Py_DECREF(it);
    return NULL;
  }
  PyObject *item;
  while ((item = PyIter_Next(it))) {
    PyObject *r = PyObject_CallOneArg(fn, item);
    Py_DECREF(item);
    if (!r || packer_add(&k, r) < 0) goto fail;
  }
  if (PyErr_Occurred()) goto fail;
  Py_DECREF(it);
  return packer_finish(&k, head, head_len);
fail:
  packer_clear(&k);
  Py_DECREF(it);
  return NULL;
}

/* ---- starmap chunks of tuples of numbers ---------------------------------------------------
 * starmap's common input, tuples of a few ints or floats, pickled and unpickled, cost the worker
 * a new tuple and new ints per item: 16 MB of fresh objects per chunk of 125,000 pairs, most of
 * its time in page faults. Packed, the worker makes each row's arguments as it calls the
 * function and drops them. */
enum { kMaxArity = 16 };

/* pack_tuples(list or tuple, head, start, stop) -> bytes or None: the items of seq[start:stop]
 * when every one is an exact tuple of the same length k (1-16) whose element at each position
 * is, in every item, an exact int that fits int64 or an exact float: head, b"T", k as a byte,
 * the k format bytes (b"q" or b"d"), then the values row by row (native order). None otherwise:
 * such a chunk is pickled. */
PyObject *mproc_py_pack_tuples(PyObject *self, PyObject *args) {
  (void)self;
  const char *head;
  Py_ssize_t head_len, n;
  PyObject **items;
  const int w = pack_window(args, "Oy#nn", &head, &head_len, &items, &n);
  if (w <= 0) {
    if (w < 0) return NULL;
    Py_RETURN_NONE;
  }
  if (!PyTuple_CheckExact(items[0])) Py_RETURN_NONE;
  const Py_ssize_t k = PyTuple_GET_SIZE(items[0]);
  if (k < 1 || k > kMaxArity) Py_RETURN_NONE;
  char fmt[kMaxArity];
  for (Py_ssize_t j = 0; j < k; j++) {
    PyObject *e = PyTuple_GET_ITEM(items[0], j);
    fmt[j] = PyLong_CheckExact(e) ? 'q' : PyFloat_CheckExact(e) ? 'd' : 0;
    if (!fmt[j]) Py_RETURN_NONE;
  }
  const Py_ssize_t at = head_len + 2 + k;
  if (n > (PY_SSIZE_T_MAX - at) / 8 / k) return PyErr_NoMemory();
  PyObject *out = PyBytes_FromStringAndSize(NULL, at + 8 * k * n);
  if (!out) return NULL;
  char *p = PyBytes_AS_STRING(out);
  memcpy(p, head, (size_t)head_len);
  p[head_len] = 'T';
  p[head_len + 1] = (char)k;
  memcpy(p + head_len + 2, fmt, (size_t)k);
  p += at;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = items[i];
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != k) goto not_packable;
    for (Py_ssize_t j = 0; j < k; j++, p += 8) {
      PyObject *e = PyTuple_GET_ITEM(t, j);
      if (fmt[j] == 'q') {
        int overflow = 0;
        long long v;
        if (!PyLong_CheckExact(e) || ((v = PyLong_AsLongLongAndOverflow(e, &overflow)), overflow))
          goto not_packable;
        memcpy(p, &v, 8);
      } else {
        if (!PyFloat_CheckExact(e)) goto not_packable;
        const double v = PyFloat_AS_DOUBLE(e);
        memcpy(p, &v, 8);
      }
    }
  }
  return out;
not_packable:
  Py_DECREF(out);
  if (PyErr_Occurred()) return NULL;
  Py_RETURN_NONE;
}

/* starmap_packed(func, buffer, head) -> bytes or list: [func(*row) for row in rows] for the rows
 * packed by pack_tuples (buffer starts at its b"T"), its results packed as map_packed packs
 * them. */
PyObject *mproc_py_starmap_packed(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *fn;
  Py_buffer b;
  const char *head;
  Py_ssize_t head_len;
  if (!PyArg_ParseTuple(args, "Oy*y#", &fn, &b, &head, &head_len)) return NULL;
  const char *p = (const char *)b.buf;
  const Py_ssize_t k = b.len >= 2 ? (unsigned char)p[1] : 0;
  if (b.len < 2 || p[0] != 'T' || k < 1 || k > kMaxArity || b.len < 2 + k ||
      (b.len - 2 - k) % (8 * k) != 0) {
    PyBuffer_Release(&b);
    PyErr_SetString(PyExc_ValueError, "not a chunk of packed tuples");
    return NULL;
  }
  const char *fmt = p + 2;
  for (Py_ssize_t j = 0; j < k; j++)
    if (fmt[j] != 'q' && fmt[j] != 'd') {
      PyBuffer_Release(&b);
      PyErr_SetString(PyExc_ValueError, "not a chunk of packed tuples");
      return NULL;
    }
  const char *v = p + 2 + k;
  const Py_ssize_t rows = (b.len - 2 - k) / (8 * k);
  packer pk;
  if (packer_init(&pk, rows, head_len) < 0) {
    PyBuffer_Release(&b);
    return NULL;
  }
  PyObject *argv[kMaxArity];
  for (Py_ssize_t i = 0; i < rows; i++) {
    Py_ssize_t made = 0;
    for (; made < k; made++, v += 8) {
      if (fmt[made] == 'q') {
        long long q;
        memcpy(&q, v, 8);
        argv[made] = PyLong_FromLongLong(q);
      } else {
        double d;
        memcpy(&d, v, 8);
        argv[made] = PyFloat_FromDouble(d);
      }
      if (!argv[made]) break;
    }
    PyObject *r = made == k ? PyObject_Vectorcall(fn, argv, (size_t)k, NULL) : NULL;
    for (Py_ssize_t j = 0; j < made; j++) Py_DECREF(argv[j]);
    if (!r || packer_add(&pk, r) < 0) {
      packer_clear(&pk);
      PyBuffer_Release(&b);
      return NULL;
    }
  }
  PyBuffer_Release(&b);
  return packer_finish(&pk, head, head_len);
}

/* A list of the tuples packed at p by pack_tuples (b"T" first), len bytes: a chunk's results
 * that are such tuples (_worker._pack_results); NULL with ValueError if it is not one. */
static PyObject *unpacked_tuples(const char *p, size_t len) {
  const Py_ssize_t k = len >= 2 ? (unsigned char)p[1] : 0;
  if (len < 2 || k < 1 || k > kMaxArity || len < (size_t)(2 + k) || (len - 2 - k) % (8 * k) != 0)
    goto bad;
  const char *fmt = p + 2, *v = p + 2 + k;
  for (Py_ssize_t j = 0; j < k; j++)
    if (fmt[j] != 'q' && fmt[j] != 'd') goto bad;
  const Py_ssize_t rows = (Py_ssize_t)((len - 2 - k) / (8 * k));
  PyObject *list = PyList_New(rows);
  if (!list) return NULL;
  const int begun = huge_begin(rows * (k + 1));
  for (Py_ssize_t i = 0; i < rows; i++) {
    PyObject *t = PyTuple_New(k);
    if (!t) goto fail;
    PyList_SET_ITEM(list, i, t);
    for (Py_ssize_t j = 0; j < k; j++, v += 8) {
      PyObject *o;
      if (fmt[j] == 'q') {
        long long q;
        memcpy(&q, v, 8);
        o = PyLong_FromLongLong(q);
      } else {
        double d;
        memcpy(&d, v, 8);
        o = PyFloat_FromDouble(d);
      }
      if (!o) goto fail;
      PyTuple_SET_ITEM(t, j, o);
    }
  }
  huge_end(begun);
  return list;
fail:
  huge_end(begun);
  Py_DECREF(list); /* rows not made yet are NULL: list_dealloc skips them */
  return NULL;
bad:
  PyErr_SetString(PyExc_ValueError, "not a chunk of packed numbers or strings");
  return NULL;
}
