/* A pool's data arena (issue 20): shared memory where the large buffers of Pool arguments and
 * results travel by reference instead of through the pool's rings (mproc/_oob.py, pool.py).
 *
 * One memfd per pool, made by the pool's process on first use. Each process maps the whole file
 * once, over a large reserved range of addresses (MAP_NORESERVE: addresses, not memory), so a
 * buffer is a pointer into that one mapping: nothing is mapped or unmapped per message, and an
 * extent stays where it is as the file grows. Workers open the file through
 * /proc/<pool's pid>/fd/<fd> (as forkserver and spawned pool workers open the pool's segment,
 * runtime/pool/worker.cpp), whatever their start method.
 *
 * Layout: a header (ArenaHead: the slot table) then extents, each a multiple of 64 KiB. A slot
 * names one extent and says who holds it:
 *   state 0  unused slot;  1  a free extent (reusable);  2  changing (one process owns the slot
 *   while it sets or frees it);  3  held: by `holder` (a pid), or by a message in flight (0).
 * An extent has exactly one holder at a time. The sender allocates it (holder = itself), copies
 * the buffer in, then hands it to the message (detach: holder 0); the receiver adopts it
 * (holder = itself) and frees it when its last object using it goes (the Extent's dealloc).
 * So nobody waits for anybody: a result the parent never reads costs its extent until the arena
 * goes, a message is never copied again, and every claim of a slot is one compare-and-swap.
 *
 * Crashes: an extent held by a process that died (a worker killed mid-task, with its arguments)
 * is found when the arena next needs to grow and freed then (reclaim). One a message carried
 * to a process that died before adopting it, or a result never read, stays until the arena is
 * freed; the memfd (no name anywhere) goes when the last process that maps it is gone, so
 * nothing outlives the pool and its objects, in /dev/shm or elsewhere.
 *
 * Freed extents keep their pages (faulted in already, in every process that touched them) while
 * the kept bytes stay under ARENA_KEEP; the others are returned to the system
 * (FALLOC_FL_PUNCH_HOLE) and faulted in again when reused. */
#define _GNU_SOURCE
#include "mproc_py.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define ARENA_MAGIC UINT64_C(0x6d70726f63617231) /* "mprocar1" */
#define ARENA_SLOTS 4096
#define ARENA_GRAIN ((uint64_t)64 << 10)
#define ARENA_KEEP ((uint64_t)256 << 20)

enum { SLOT_UNUSED = 0, SLOT_FREE = 1, SLOT_BUSY = 2, SLOT_HELD = 3 };

typedef struct {
  _Atomic uint32_t state;
  _Atomic int32_t holder;     /* pid holding a held extent; 0 while a message carries it */
  _Atomic uint64_t off;       /* written only by the process that set state to SLOT_BUSY */
  _Atomic uint64_t len;
  _Atomic uint32_t kept;      /* a free extent counted in ArenaHead.kept (pages kept) */
  uint32_t pad;
} ArenaSlot;

typedef struct {
  uint64_t magic;
  uint64_t id;                 /* random: tells this arena from another at the same fd */
  uint64_t limit;              /* extents end below this (the creator's reserved mapping) */
  uint64_t base;               /* extents start here (past this header) */
  _Atomic uint64_t end;        /* extents were handed out below this */
  _Atomic uint64_t kept;       /* bytes of free extents that keep their pages */
  _Atomic uint32_t used;       /* slots ever used: the scans stop here */
  _Atomic uint32_t pad;
  uint64_t pad2;
  ArenaSlot slots[ARENA_SLOTS];
} ArenaHead;

#define ARENA_BASE ((sizeof(ArenaHead) + ARENA_GRAIN - 1) / ARENA_GRAIN * ARENA_GRAIN)

typedef struct {
  PyObject_HEAD
  unsigned char *map; /* the whole file, reserved up to head->limit */
  uint64_t size;      /* bytes mapped */
  int fd;             /* -1 once retired: no more extents from this process */
  int owner_fd;       /* the fd in the creator (for /proc/<pid>/fd/<fd>) */
  pid_t owner;        /* the creator's pid */
  uint64_t id;
  PyObject *weakrefs; /* mproc._oob keeps a registry of arenas by id */
} ArenaObject;

typedef struct {
  PyObject_HEAD
  ArenaObject *arena;
  uint32_t slot;
  uint64_t off;
  uint64_t nbytes;    /* the buffer's length (the extent may be longer) */
  pid_t holder;       /* this process, while it holds the extent; 0 once detached */
  void *prev, *next;  /* in the list of extents this process holds (see held_add) */
} ExtentObject;

static PyTypeObject arena_type, extent_type;

static ArenaHead *head_of(ArenaObject *a) { return (ArenaHead *)a->map; }

/* ---- Extents held by this process, made private in a forked child -------------------------
 * A forked child inherits the parent's arrays over held extents as views of the shared file:
 * without this, the parent's later writes (or the extent's reuse once the parent frees it) would
 * show in the child's copy of an ordinary object, and the child's writes in the parent's. So the
 * child replaces each held extent, at the same address, with private memory holding a copy (as
 * runtime/ipc's received queue messages are). The list has its own mutex, not the GIL: the C
 * runtime forks replacement pool workers from a thread that does not hold the GIL. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static ExtentObject *held_first;

static void held_prepare(void) { pthread_mutex_lock(&held_mu); }
static void held_parent(void) { pthread_mutex_unlock(&held_mu); }
static void held_child(void) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (ExtentObject *x = held_first; x; x = (ExtentObject *)x->next) {
    unsigned char *at = x->arena->map + x->off;
    const size_t len = (size_t)((x->nbytes + page - 1) / page * page);
    if (!len) continue;
    void *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED) continue; /* no memory: the child keeps the shared view */
    memcpy(tmp, at, len);
    if (mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, at) == MAP_FAILED) munmap(tmp, len);
  }
  held_first = NULL; /* the child holds none of them (their holder is the parent) */
  pthread_mutex_unlock(&held_mu);
}
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static void held_install(void) { pthread_atfork(held_prepare, held_parent, held_child); }

static void held_add(ExtentObject *x) {
  pthread_once(&held_once, held_install);
  pthread_mutex_lock(&held_mu);
  x->prev = NULL;
  x->next = held_first;
  if (held_first) held_first->prev = x;
  held_first = x;
  pthread_mutex_unlock(&held_mu);
}
static void held_remove(ExtentObject *x) {
  pthread_mutex_lock(&held_mu);
  if (x->prev || held_first == x) {
    if (x->prev) ((ExtentObject *)x->prev)->next = x->next;
    else held_first = (ExtentObject *)x->next;
    if (x->next) ((ExtentObject *)x->next)->prev = x->prev;
  }
  x->prev = x->next = NULL;
  pthread_mutex_unlock(&held_mu);
}

static PyObject *arena_oserror(const char *what, int e) {
  return PyErr_Format(PyExc_OSError, "pool data arena: %s: %s", what, strerror(e));
}

/* ---- the slot table ------------------------------------------------------------------------ */

/* A free extent goes back to the table: its pages are kept while the budget allows. */
static void slot_free(ArenaObject *a, ArenaSlot *s) {
  ArenaHead *h = head_of(a);
  const uint64_t len = atomic_load(&s->len);
  int keep = 0;
  if (a->fd >= 0) {
    uint64_t k = atomic_load(&h->kept);
    while (k + len <= ARENA_KEEP && !keep)
      keep = atomic_compare_exchange_weak(&h->kept, &k, k + len);
    if (!keep)
      (void)fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)atomic_load(&s->off), (off_t)len);
  }
  atomic_store(&s->kept, (uint32_t)keep);
  atomic_store(&s->holder, 0);
  atomic_store(&s->state, SLOT_FREE);
}

/* Give back the extent of slot i held by this process (nothing if it is not held). */
static void slot_release(ArenaObject *a, uint32_t i) {
  ArenaSlot *s = &head_of(a)->slots[i];
  uint32_t want = SLOT_HELD;
  if (atomic_compare_exchange_strong(&s->state, &want, SLOT_BUSY)) slot_free(a, s);
}

/* Free the extents whose holder died (see top). */
static void arena_reclaim(ArenaObject *a) {
  ArenaHead *h = head_of(a);
  const uint32_t used = atomic_load(&h->used);
  const pid_t me = getpid();
  for (uint32_t i = 0; i < used && i < ARENA_SLOTS; i++) {
    ArenaSlot *s = &h->slots[i];
    const pid_t p = atomic_load(&s->holder);
    if (atomic_load(&s->state) != SLOT_HELD || p <= 0 || p == me) continue;
    if (kill(p, 0) == 0 || errno != ESRCH) continue;
    /* The holder field first: only a dead holder left it at p, so nobody else can be using or
     * freeing the slot once it is taken from p. */
    int32_t hp = p;
    if (!atomic_compare_exchange_strong(&s->holder, &hp, -1)) continue;
    uint32_t want = SLOT_HELD;
    if (atomic_compare_exchange_strong(&s->state, &want, SLOT_BUSY)) slot_free(a, s);
  }
}

/* A held extent of at least n bytes for this process: its slot in *slot. 0, or -1 with an
 * exception (MemoryError: no room; OSError). */
static int arena_alloc(ArenaObject *a, uint64_t n, uint32_t *slot) {
  ArenaHead *h = head_of(a);
  if (a->fd < 0) {
    PyErr_SetString(PyExc_ValueError, "pool data arena is closed");
    return -1;
  }
  const uint64_t need = (n + ARENA_GRAIN - 1) / ARENA_GRAIN * ARENA_GRAIN;
  if (n == 0 || need < n || need > h->limit) {
    PyErr_Format(PyExc_MemoryError, "pool data arena: no extent of %llu bytes",
                 (unsigned long long)n);
    return -1;
  }
  const pid_t me = getpid();
  ArenaSlot *s = NULL;
  for (int pass = 0; pass < 2 && !s; pass++) {
    /* A free extent that fits, at most twice the need. */
    const uint32_t used = atomic_load(&h->used);
    for (uint32_t i = 0; i < used && i < ARENA_SLOTS; i++) {
      ArenaSlot *c = &h->slots[i];
      if (atomic_load(&c->state) != SLOT_FREE) continue;
      const uint64_t len = atomic_load(&c->len);
      if (len < need || len / 2 > need) continue;
      uint32_t want = SLOT_FREE;
      if (atomic_compare_exchange_strong(&c->state, &want, SLOT_BUSY)) {
        if (atomic_load(&c->len) < need) {  /* changed between the look and the claim */
          atomic_store(&c->state, SLOT_FREE);
          continue;
        }
        s = c;
        break;
      }
    }
    if (!s && pass == 0) arena_reclaim(a);  /* before the file grows */
  }
  int fresh = 0;
  if (s) {
    if (atomic_load(&s->kept)) {
      atomic_fetch_sub(&h->kept, atomic_load(&s->len));
      atomic_store(&s->kept, 0);
    } else {
      fresh = 1;  /* its pages were returned */
    }
  } else {
    for (uint32_t i = 0; i < ARENA_SLOTS && !s; i++) {
      uint32_t want = SLOT_UNUSED;
      if (atomic_load(&h->slots[i].state) == SLOT_UNUSED &&
          atomic_compare_exchange_strong(&h->slots[i].state, &want, SLOT_BUSY)) {
        s = &h->slots[i];
        uint32_t u = atomic_load(&h->used);
        while (u < i + 1 && !atomic_compare_exchange_weak(&h->used, &u, i + 1)) {
        }
      }
    }
    if (!s) {
      PyErr_SetString(PyExc_MemoryError, "pool data arena: every slot is in use");
      return -1;
    }
    /* The end moves only when the extent fits: one that does not leaves the range for smaller
     * ones (a fetch_add would lose the rest of the range to a single failed large put). */
    uint64_t off = atomic_load(&h->end);
    while (off >= h->base && off <= h->limit && need <= h->limit - off &&
           !atomic_compare_exchange_weak(&h->end, &off, off + need)) {
    }
    if (off < h->base || off > h->limit || need > h->limit - off) {
      atomic_store(&s->state, SLOT_UNUSED);  /* no room at the end: the arena is full */
      PyErr_Format(PyExc_MemoryError, "pool data arena full (%llu bytes)",
                   (unsigned long long)h->limit);
      return -1;
    }
    atomic_store(&s->off, off);
    atomic_store(&s->len, need);
    atomic_store(&s->kept, 0);
    fresh = 1;
  }
  const uint64_t off = atomic_load(&s->off), len = atomic_load(&s->len);
  if (fresh) {
    /* Pages first (no memory: an error here, not a SIGBUS at the first write), then the page
     * tables in one call rather than a fault per page at the copy. */
    /* A descriptor of our own for the call without the GIL: another thread may retire the
     * arena (closing a->fd, whose number a new open() may then reuse) meanwhile. */
    const int fd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : 0;
    if (fd >= 0) {
      Py_BEGIN_ALLOW_THREADS
      rc = fallocate(fd, 0, (off_t)off, (off_t)len);
      if (rc == 0) (void)madvise(a->map + off, len, MADV_POPULATE_WRITE);
      Py_END_ALLOW_THREADS
    }
    const int e = errno;
    if (fd >= 0) close(fd);
    if (rc != 0) {
      atomic_store(&s->kept, 0);
      atomic_store(&s->state, SLOT_FREE);
      if (e == ENOSPC || e == ENOMEM)
        PyErr_Format(PyExc_MemoryError, "pool data arena: no memory for %llu bytes",
                     (unsigned long long)n);
      else
        arena_oserror("fallocate", e);
      return -1;
    }
  }
  atomic_store(&s->holder, me);
  atomic_store(&s->state, SLOT_HELD);
  *slot = (uint32_t)(s - h->slots);
  return 0;
}

/* ---- Extent: a held extent as a Python buffer --------------------------------------------- */

static PyObject *extent_new(ArenaObject *a, uint32_t slot, uint64_t nbytes) {
  ExtentObject *x = PyObject_New(ExtentObject, &extent_type);
  if (!x) {
    slot_release(a, slot);
    return NULL;
  }
  Py_INCREF(a);
  x->arena = a;
  x->slot = slot;
  x->off = atomic_load(&head_of(a)->slots[slot].off);
  x->nbytes = nbytes;
  x->holder = getpid();
  held_add(x);
  return (PyObject *)x;
}

static void extent_dealloc(PyObject *o) {
  ExtentObject *x = (ExtentObject *)o;
  /* Only the holder gives it back (not a forked child that inherited the object). */
  if (x->holder && x->holder == getpid()) {
    held_remove(x);
    slot_release(x->arena, x->slot);
  }
  Py_DECREF(x->arena);
  PyObject_Free(o);
}

static int extent_getbuffer(PyObject *o, Py_buffer *view, int flags) {
  ExtentObject *x = (ExtentObject *)o;
  if (!x->holder) {
    PyErr_SetString(PyExc_BufferError, "extent handed to a message");
    return -1;
  }
  return PyBuffer_FillInfo(view, o, x->arena->map + x->off, (Py_ssize_t)x->nbytes, 0, flags);
}

/* detach() -> bytes: the extent's reference for a message (slot, offset, length; 24 bytes);
 * the object no longer holds it (the message does). */
static PyObject *extent_detach(PyObject *o, PyObject *unused) {
  (void)unused;
  ExtentObject *x = (ExtentObject *)o;
  if (!x->holder) return PyErr_Format(PyExc_ValueError, "extent detached already");
  if (x->holder != getpid())
    return PyErr_Format(PyExc_ValueError, "extent held by another process (its parent)");
  unsigned char ref[24];
  const uint64_t slot = x->slot;
  memcpy(ref, &slot, 8);
  memcpy(ref + 8, &x->off, 8);
  memcpy(ref + 16, &x->nbytes, 8);
  atomic_store(&head_of(x->arena)->slots[x->slot].holder, 0);
  held_remove(x);
  x->holder = 0;
  return PyBytes_FromStringAndSize((const char *)ref, 24);
}

static PyMethodDef extent_methods[] = {
    {"detach", extent_detach, METH_NOARGS, "The reference for a message; the message holds it."},
    {NULL, NULL, 0, NULL}};
static PyBufferProcs extent_as_buffer = {extent_getbuffer, NULL};
static PyTypeObject extent_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mproc._mproc.ArenaExtent",
    .tp_basicsize = sizeof(ExtentObject),
    .tp_dealloc = extent_dealloc,
    .tp_as_buffer = &extent_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = extent_methods,
    .tp_doc = "A buffer in a pool's data arena; its memory goes back to the arena with it.",
};

/* ---- Arena -------------------------------------------------------------------------------- */

static void arena_dealloc(PyObject *o) {
  ArenaObject *a = (ArenaObject *)o;
  if (a->weakrefs) PyObject_ClearWeakRefs(o);
  if (a->map) munmap(a->map, a->size);
  if (a->fd >= 0) close(a->fd);
  PyObject_Free(o);
}

/* put(buffer) -> Extent holding a copy of the buffer's bytes (one copy, the GIL released). */
static PyObject *arena_put(PyObject *o, PyObject *arg) {
  ArenaObject *a = (ArenaObject *)o;
  Py_buffer b;
  if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
  uint32_t slot;
  if (arena_alloc(a, (uint64_t)b.len, &slot) < 0) {
    PyBuffer_Release(&b);
    return NULL;
  }
  unsigned char *dst = a->map + atomic_load(&head_of(a)->slots[slot].off);
  if (b.len >= (1 << 20)) {
    Py_BEGIN_ALLOW_THREADS
    memcpy(dst, b.buf, (size_t)b.len);
    Py_END_ALLOW_THREADS
  } else {
    memcpy(dst, b.buf, (size_t)b.len);
  }
  const uint64_t n = (uint64_t)b.len;
  PyBuffer_Release(&b);
  return extent_new(a, slot, n);
}

/* adopt(ref) -> Extent: take the extent a message carried (ref as made by detach()). */
static PyObject *arena_adopt(PyObject *o, PyObject *arg) {
  ArenaObject *a = (ArenaObject *)o;
  Py_buffer b;
  if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
  uint64_t slot = UINT64_MAX, off = 0, nbytes = 0;
  if (b.len == 24) {
    memcpy(&slot, b.buf, 8);
    memcpy(&off, (const char *)b.buf + 8, 8);
    memcpy(&nbytes, (const char *)b.buf + 16, 8);
  }
  PyBuffer_Release(&b);
  ArenaHead *h = head_of(a);
  ArenaSlot *s = slot < ARENA_SLOTS ? &h->slots[slot] : NULL;
  if (!s || atomic_load(&s->state) != SLOT_HELD || atomic_load(&s->holder) != 0 ||
      atomic_load(&s->off) != off || off < h->base || nbytes > atomic_load(&s->len) ||
      off > a->size || atomic_load(&s->len) > a->size - off)
    return PyErr_Format(PyExc_ValueError,
                        "corrupt or stale reference to the pool data arena (slot %llu)",
                        (unsigned long long)slot);
  atomic_store(&s->holder, getpid());
  if (nbytes >= (1 << 20)) (void)madvise(a->map + off, nbytes, MADV_POPULATE_READ);
  return extent_new(a, (uint32_t)slot, nbytes);
}

/* retire(): no more extents from this process (closes its fd); the mapping stays while objects
 * use it. */
static PyObject *arena_retire(PyObject *o, PyObject *unused) {
  (void)unused;
  ArenaObject *a = (ArenaObject *)o;
  if (a->fd >= 0) close(a->fd);
  a->fd = -1;
  Py_RETURN_NONE;
}

/* stats() -> (extents held or in flight, their bytes, free extents keeping pages, bytes used by
 * extents of the file). */
static PyObject *arena_stats(PyObject *o, PyObject *unused) {
  (void)unused;
  ArenaHead *h = head_of((ArenaObject *)o);
  unsigned long long held = 0, held_bytes = 0;
  const uint32_t used = atomic_load(&h->used);
  for (uint32_t i = 0; i < used && i < ARENA_SLOTS; i++)
    if (atomic_load(&h->slots[i].state) == SLOT_HELD) {
      held++;
      held_bytes += atomic_load(&h->slots[i].len);
    }
  return Py_BuildValue("KKKK", held, held_bytes, (unsigned long long)atomic_load(&h->kept),
                       (unsigned long long)(atomic_load(&h->end) - h->base));
}

static PyObject *arena_get_coords(PyObject *o, void *unused) {
  (void)unused;
  ArenaObject *a = (ArenaObject *)o;
  return Py_BuildValue("iiK", (int)a->owner, a->owner_fd, (unsigned long long)a->id);
}

static PyMethodDef arena_methods[] = {
    {"put", arena_put, METH_O, "put(buffer) -> extent with a copy of the buffer"},
    {"adopt", arena_adopt, METH_O, "adopt(ref) -> extent a message carried"},
    {"retire", arena_retire, METH_NOARGS, "no more extents from this process"},
    {"stats", arena_stats, METH_NOARGS, "(held, held bytes, kept bytes, file bytes)"},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef arena_getset[] = {
    {"coords", arena_get_coords, NULL, "(pid, fd, id): how another process opens it", NULL},
    {NULL, NULL, NULL, NULL, NULL}};
static PyTypeObject arena_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mproc._mproc.PoolArena",
    .tp_basicsize = sizeof(ArenaObject),
    .tp_weaklistoffset = offsetof(ArenaObject, weakrefs),
    .tp_dealloc = arena_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = arena_methods,
    .tp_getset = arena_getset,
    .tp_doc = "A pool's shared memory for large arguments and results.",
};

static int arena_types_ready(void) {
  if (!arena_type.tp_dict && PyType_Ready(&arena_type) < 0) return -1;
  if (!extent_type.tp_dict && PyType_Ready(&extent_type) < 0) return -1;
  return 0;
}

static ArenaObject *arena_object(unsigned char *map, uint64_t size, int fd, pid_t owner,
                                 int owner_fd, uint64_t id) {
  ArenaObject *a = PyObject_New(ArenaObject, &arena_type);
  if (!a) {
    munmap(map, size);
    close(fd);
    return NULL;
  }
  a->map = map;
  a->size = size;
  a->fd = fd;
  a->owner = owner;
  a->owner_fd = owner_fd;
  a->id = id;
  a->weakrefs = NULL;
  return a;
}

/* arena_new() -> a new arena of this process. */
PyObject *mproc_py_arena_new(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  if (arena_types_ready() < 0) return NULL;
  /* Workers open the arena through /proc/<pid>/fd, which a process that is not dumpable does
   * not allow: such a pool has no arena (its data goes through the rings, as without one). */
  if (prctl(PR_GET_DUMPABLE) != 1) return arena_oserror("not dumpable, so workers could not open it", EPERM);
  int fd = memfd_create("mproc-pool-data", MFD_CLOEXEC);
  if (fd < 0) return arena_oserror("memfd_create", errno);
  if (ftruncate(fd, (off_t)ARENA_BASE) < 0) {
    const int e = errno;
    close(fd);
    return arena_oserror("ftruncate", e);
  }
  /* The largest range of addresses the process lets us reserve (RLIMIT_AS may be set). */
  void *p = MAP_FAILED;
  uint64_t size = 0;
  for (int sh = 40; sh >= 30 && p == MAP_FAILED; sh -= 2) {
    size = (uint64_t)1 << sh;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  }
  if (p == MAP_FAILED) {
    const int e = errno;
    close(fd);
    return arena_oserror("mmap", e);
  }
  ArenaHead *h = (ArenaHead *)p;
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
    id = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)p;
  h->id = id;
  h->limit = size;
  h->base = ARENA_BASE;
  atomic_store(&h->end, ARENA_BASE);
  h->magic = ARENA_MAGIC;
  return (PyObject *)arena_object(p, size, fd, getpid(), fd, id);
}

/* arena_open(pid, fd, id) -> the arena of another process (a pool's, in its worker). */
PyObject *mproc_py_arena_open(PyObject *self, PyObject *args) {
  (void)self;
  int pid, ofd;
  unsigned long long id;
  if (!PyArg_ParseTuple(args, "iiK", &pid, &ofd, &id)) return NULL;
  if (arena_types_ready() < 0) return NULL;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, ofd);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return arena_oserror(path, errno);
  ArenaHead head;
  struct stat st;
  if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < ARENA_BASE ||
      pread(fd, &head, offsetof(ArenaHead, end), 0) != (ssize_t)offsetof(ArenaHead, end) ||
      head.magic != ARENA_MAGIC || head.id != id || head.base != ARENA_BASE ||
      head.limit < ARENA_BASE) {
    close(fd);
    return PyErr_Format(PyExc_ValueError, "%s is not the pool data arena it should be", path);
  }
  void *p = mmap(NULL, head.limit, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    close(fd);
    return arena_oserror("mmap", e);
  }
  return (PyObject *)arena_object(p, head.limit, fd, (pid_t)pid, ofd, id);
}
