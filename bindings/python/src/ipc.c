/* Queues, sync and shared memory: the calls that block (waiting in slices) or take options. */

#include "mproc_py.h"

/* ptr_of(kind, handle) -> address: kind "value", "array" or "shm" (for ctypes / memoryview). */
PyObject *mproc_py_ptr_of(PyObject *self, PyObject *args) {
  (void)self;
  const char *kind;
  PyObject *h;
  void *p = NULL, *addr = NULL;
  if (!PyArg_ParseTuple(args, "sO", &kind, &h)) return NULL;
  if (!strcmp(kind, "value")) {
    if (mproc_py_ptr(h, &p, mproc_py_type_value) < 0) return NULL;
    addr = mproc_value_ptr((mproc_value_t *)p);
  } else if (!strcmp(kind, "array")) {
    if (mproc_py_ptr(h, &p, mproc_py_type_array) < 0) return NULL;
    addr = mproc_array_ptr((mproc_array_t *)p);
  } else {
    if (mproc_py_ptr(h, &p, mproc_py_type_shm) < 0) return NULL;
    addr = mproc_shm_ptr((mproc_shm_t *)p);
  }
  if (!addr) return mproc_py_raise(MPROC_EBADF);
  return PyLong_FromVoidPtr(addr);
}

static int mproc_py_opt_lock(PyObject *o, mproc_lock_t **lock) {
  *lock = NULL;
  if (o == Py_None) return 0;
  return mproc_py_ptr(o, (void **)lock, mproc_py_type_lock);
}

/* value_new(typecode, init bytes|None, raw, lock|None) -> value */
PyObject *mproc_py_value_new(PyObject *self, PyObject *args) {
  (void)self;
  int tc, raw;
  PyObject *init, *lk;
  if (!PyArg_ParseTuple(args, "COpO", &tc, &init, &raw, &lk)) return NULL;
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = raw;
  if (mproc_py_opt_lock(lk, &o.lock) < 0) return NULL;
  const void *ip = NULL;
  if (init != Py_None) {
    if (!PyBytes_Check(init)) return PyErr_Format(PyExc_TypeError, "init must be bytes");
    ip = PyBytes_AS_STRING(init);
  }
  mproc_value_t *v = NULL;
  int rc = mproc_value_new(&v, (char)tc, ip, &o);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(v, mproc_py_type_value);
}

/* array_new(typecode, length, init bytes|None, raw, lock|None) -> array */
PyObject *mproc_py_array_new(PyObject *self, PyObject *args) {
  (void)self;
  int tc, raw;
  Py_ssize_t n;
  PyObject *init, *lk;
  if (!PyArg_ParseTuple(args, "CnOpO", &tc, &n, &init, &raw, &lk)) return NULL;
  if (n < 0) return PyErr_Format(PyExc_ValueError, "negative length");
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = raw;
  if (mproc_py_opt_lock(lk, &o.lock) < 0) return NULL;
  const void *ip = NULL;
  if (init != Py_None) {
    if (!PyBytes_Check(init)) return PyErr_Format(PyExc_TypeError, "init must be bytes");
    ip = PyBytes_AS_STRING(init);
  }
  mproc_array_t *a = NULL;
  int rc = mproc_array_new(&a, (char)tc, (size_t)n, ip, &o);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(a, mproc_py_type_array);
}

/* ---- blocking calls: each waits through mproc_py_wait (helpers.c) ------------------------ */
static int mproc_py_sem_slice(void *s, double t) { return mproc_sem_acquire((mproc_sem_t *)s, t); }
/* sem_acquire(sem, timeout) -> True/False. Tries without blocking first, keeping the GIL. */
PyObject *mproc_py_sem_acquire(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *s;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &s, mproc_py_type_sem) < 0) return NULL;
  int rc = mproc_sem_acquire((mproc_sem_t *)s, 0);
  if (rc == MPROC_ETIMEDOUT && timeout != 0)
    rc = mproc_py_wait(mproc_py_sem_slice, s, timeout, MPROC_ETIMEDOUT, 0);
  return mproc_py_waited(rc);
}

/* cond_wait(cond, timeout) -> True/False. Between slices the caller holds the lock again, so a
 * notify (which needs the lock) cannot fall between two slices. */
static int mproc_py_cond_slice(void *c, double t) { return mproc_cond_wait((mproc_cond_t *)c, t); }
PyObject *mproc_py_cond_wait(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *c;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c, mproc_py_type_cond) < 0) return NULL;
  return mproc_py_waited(mproc_py_wait(mproc_py_cond_slice, c, timeout, MPROC_ETIMEDOUT, 0));
}

static int mproc_py_event_slice(void *e, double t) { return mproc_event_wait((mproc_event_t *)e, t); }
/* event_wait(event, timeout) -> True/False */
PyObject *mproc_py_event_wait(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *e;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &e, mproc_py_type_event) < 0) return NULL;
  if (mproc_event_is_set((mproc_event_t *)e) == 1) Py_RETURN_TRUE;
  return mproc_py_waited(mproc_py_wait(mproc_py_event_slice, e, timeout, MPROC_ETIMEDOUT, 0));
}

/* Queue and pipe calls: a poll's "empty"/"full" counts as a slice that passed. */
typedef struct {
  void *h;
  const void *data;
  size_t len;
  void *out;
} mproc_py_msg_ctx;
static int mproc_py_put_slice(void *ctx, double t) {
  mproc_py_msg_ctx *c = (mproc_py_msg_ctx *)ctx;
  int rc = mproc_queue_put((mproc_queue_t *)c->h, c->data, c->len, t);
  return rc == MPROC_EFULL ? MPROC_ETIMEDOUT : rc;
}
static int mproc_py_get_slice(void *ctx, double t) {
  mproc_py_msg_ctx *c = (mproc_py_msg_ctx *)ctx;
  int rc = mproc_queue_get_alloc((mproc_queue_t *)c->h, &c->out, &c->len, t);
  return rc == MPROC_EEMPTY ? MPROC_ETIMEDOUT : rc;
}
/* The message a get took (a new bytes object), or NULL with the exception for rc. */
static PyObject *mproc_py_taken(int rc, mproc_py_msg_ctx *c) {
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  PyObject *b = PyBytes_FromStringAndSize((const char *)c->out, (Py_ssize_t)c->len);
  free(c->out);
  return b;
}


/* queue_put(queue, bytes, timeout) -> None; raises TimeoutError when full for timeout. */
PyObject *mproc_py_queue_put(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  Py_buffer b;
  double timeout;
  mproc_py_msg_ctx c = {NULL, NULL, 0, NULL};
  if (!PyArg_ParseTuple(args, "Oy*d", &h, &b, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_queue) < 0) {
    PyBuffer_Release(&b);
    return NULL;
  }
  c.data = b.buf;
  c.len = (size_t)b.len;
  int rc = mproc_py_wait(mproc_py_put_slice, &c, timeout, MPROC_ETIMEDOUT, 0);
  PyBuffer_Release(&b);
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

/* queue_get(queue, timeout) -> bytes; raises TimeoutError when empty for timeout. */
PyObject *mproc_py_queue_get(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  mproc_py_msg_ctx c = {NULL, NULL, 0, NULL};
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_queue) < 0) return NULL;
  return mproc_py_taken(mproc_py_wait(mproc_py_get_slice, &c, timeout, MPROC_ETIMEDOUT, 0), &c);
}

/* ---- large data (issue 20): a message in parts, and a taken message as a buffer ------------- */

typedef struct {
  void *h;
  const mproc_queue_part_t *parts;
  size_t n;
} mproc_py_putv_ctx;
static int mproc_py_putv_slice(void *ctx, double t) {
  mproc_py_putv_ctx *c = (mproc_py_putv_ctx *)ctx;
  int rc = mproc_queue_putv((mproc_queue_t *)c->h, c->parts, c->n, t);
  return rc == MPROC_EFULL ? MPROC_ETIMEDOUT : rc;
}

/* queue_putv(queue, [buffer, ...], timeout) -> None: the parts' concatenation as one message,
 * each part copied once, straight into the queue's shared memory (a pickle and the buffers it
 * left out of band, mproc/_oob.py). Raises TimeoutError when full for timeout. */
PyObject *mproc_py_queue_putv(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h, *seq;
  double timeout;
  mproc_py_putv_ctx c = {NULL, NULL, 0};
  if (!PyArg_ParseTuple(args, "OOd", &h, &seq, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_queue) < 0) return NULL;
  PyObject *fast = PySequence_Fast(seq, "parts must be a sequence of buffers");
  if (!fast) return NULL;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  Py_buffer *views = PyMem_Calloc((size_t)n + 1, sizeof(Py_buffer));
  mproc_queue_part_t *parts = PyMem_Calloc((size_t)n + 1, sizeof(mproc_queue_part_t));
  Py_ssize_t got = 0;
  PyObject *result = NULL;
  if (!views || !parts) {
    PyErr_NoMemory();
    goto done;
  }
  for (; got < n; got++) {
    if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &views[got], PyBUF_SIMPLE) < 0)
      goto done;
    parts[got].data = views[got].buf;
    parts[got].len = (size_t)views[got].len;
  }
  c.parts = parts;
  c.n = (size_t)n;
  int rc = mproc_py_wait(mproc_py_putv_slice, &c, timeout, MPROC_ETIMEDOUT, 0);
  if (rc == MPROC_PY_RAISED) goto done;
  if (rc < 0) {
    mproc_py_raise(rc);
    goto done;
  }
  Py_INCREF(Py_None);
  result = Py_None;
done:
  for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
  PyMem_Free(views);
  PyMem_Free(parts);
  Py_DECREF(fast);
  return result;
}

/* A taken message as a Python object with the buffer protocol (writable): the message goes back
 * to the queue (mproc_msg_free) when the object does, i.e. when the last view of it (a numpy
 * array's base) is gone. */
typedef struct {
  PyObject_HEAD
  mproc_msg_t *m;
} mproc_py_msgbuf;

static void mproc_py_msgbuf_dealloc(PyObject *o) {
  mproc_msg_free(((mproc_py_msgbuf *)o)->m);
  Py_TYPE(o)->tp_free(o);
}
static int mproc_py_msgbuf_getbuffer(PyObject *o, Py_buffer *view, int flags) {
  mproc_msg_t *m = ((mproc_py_msgbuf *)o)->m;
  return PyBuffer_FillInfo(view, o, mproc_msg_data(m), (Py_ssize_t)mproc_msg_size(m), 0, flags);
}
static PyBufferProcs mproc_py_msgbuf_as_buffer = {mproc_py_msgbuf_getbuffer, NULL};
static PyTypeObject mproc_py_msgbuf_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mproc._mproc.QueueMessage",
    .tp_basicsize = sizeof(mproc_py_msgbuf),
    .tp_dealloc = mproc_py_msgbuf_dealloc,
    .tp_as_buffer = &mproc_py_msgbuf_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A message taken from a queue; its memory goes back to the queue with it.",
};

static int mproc_py_get_msg_slice(void *ctx, double t) {
  mproc_py_msg_ctx *c = (mproc_py_msg_ctx *)ctx;
  int rc = mproc_queue_get_msg((mproc_queue_t *)c->h, (mproc_msg_t **)&c->out, t);
  return rc == MPROC_EEMPTY ? MPROC_ETIMEDOUT : rc;
}

/* queue_get_msg(queue, timeout, small) -> bytes (a message under `small` bytes) or a memoryview
 * of the message's own memory, writable: for one put out of line, its shared memory (no copy).
 * Raises TimeoutError when empty for timeout. */
PyObject *mproc_py_queue_get_msg(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  Py_ssize_t small;
  mproc_py_msg_ctx c = {NULL, NULL, 0, NULL};
  if (!PyArg_ParseTuple(args, "Odn", &h, &timeout, &small)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_queue) < 0) return NULL;
  if (!mproc_py_msgbuf_type.tp_dict && PyType_Ready(&mproc_py_msgbuf_type) < 0) return NULL;
  int rc = mproc_py_wait(mproc_py_get_msg_slice, &c, timeout, MPROC_ETIMEDOUT, 0);
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  mproc_msg_t *m = (mproc_msg_t *)c.out;
  const size_t n = mproc_msg_size(m);
  if (n < (size_t)small) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)mproc_msg_data(m), (Py_ssize_t)n);
    mproc_msg_free(m);
    return b;
  }
  mproc_py_msgbuf *o = PyObject_New(mproc_py_msgbuf, &mproc_py_msgbuf_type);
  if (!o) {
    mproc_msg_free(m);
    return NULL;
  }
  o->m = m;
  PyObject *mv = PyMemoryView_FromObject((PyObject *)o);
  Py_DECREF(o);
  return mv;
}

static int mproc_py_join_queue_slice(void *q, double t) {
  return mproc_queue_join((mproc_queue_t *)q, t);
}
/* queue_join(queue, timeout) -> True/False */
PyObject *mproc_py_queue_join(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *q;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &q, mproc_py_type_queue) < 0) return NULL;
  return mproc_py_waited(mproc_py_wait(mproc_py_join_queue_slice, q, timeout, MPROC_ETIMEDOUT, 0));
}

static int mproc_py_poll_slice(void *c, double t) {
  int rc = mproc_conn_poll((mproc_conn_t *)c, t);
  return rc == 0 ? MPROC_ETIMEDOUT : rc > 0 ? 0 : rc;
}
/* conn_poll(conn, timeout) -> True/False */
PyObject *mproc_py_conn_poll(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *c;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c, mproc_py_type_conn) < 0) return NULL;
  return mproc_py_waited(mproc_py_wait(mproc_py_poll_slice, c, timeout, MPROC_ETIMEDOUT, 0));
}

/* ---- Barrier.wait ----------------------------------------------------------------------------
 * A barrier wait cannot be cut in plain slices: a timeout breaks the barrier (as in Python). So
 * the caller arrives (mproc_barrier_arrive: the last party runs the action and releases the
 * others), then awaits its ticket in slices, whose timeouts leave the barrier whole. At the
 * caller's own timeout, or when a signal handler raises, it gives the ticket up
 * (mproc_barrier_cancel): the barrier breaks, as Python's does when its wait raises, unless the
 * generation passed meanwhile. */
typedef struct {
  mproc_barrier_t *b;
  uint64_t ticket;
} mproc_py_barrier_ticket;

static int mproc_py_barrier_slice(void *arg, double t) {
  mproc_py_barrier_ticket *k = (mproc_py_barrier_ticket *)arg;
  return mproc_barrier_await(k->b, k->ticket, t);
}

/* barrier_wait(barrier, timeout) -> arrival index; BrokenBarrierError when broken/timed out. */
PyObject *mproc_py_barrier_wait(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *b;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &b, mproc_py_type_barrier) < 0) return NULL;
  mproc_py_barrier_ticket k = {(mproc_barrier_t *)b, 0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_barrier_arrive(k.b, &k.ticket);
  Py_END_ALLOW_THREADS
  if (rc >= 0) {
    rc = mproc_py_wait(mproc_py_barrier_slice, &k, timeout, MPROC_ETIMEDOUT, 0);
    if (rc == MPROC_PY_RAISED || rc == MPROC_ETIMEDOUT) {
      const int c = mproc_barrier_cancel(k.b, k.ticket);
      if (rc == MPROC_ETIMEDOUT && c >= 0) rc = c;  /* it passed just before the give-up */
    }
  }
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  return PyLong_FromLong(rc);
}

/* Barrier action: a Python callable of this process, run by the last party to arrive (on its
 * thread, which released the GIL while waiting). */
static int mproc_py_barrier_action(void *payload) {
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *r = PyObject_CallNoArgs((PyObject *)payload);
  int rc = 0;
  if (!r) {
    PyErr_Print();
    rc = 1;
  }
  Py_XDECREF(r);
  PyGILState_Release(g);
  return rc;
}

/* barrier_new(parties, action|None) -> barrier; the caller keeps `action` alive. */
PyObject *mproc_py_barrier_new(PyObject *self, PyObject *args) {
  (void)self;
  unsigned int parties;
  PyObject *action;
  if (!PyArg_ParseTuple(args, "IO", &parties, &action)) return NULL;
  mproc_barrier_t *b = NULL;
  int rc = mproc_barrier_new(&b, parties, action == Py_None ? NULL : mproc_py_barrier_action,
                             action == Py_None ? NULL : action);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(b, mproc_py_type_barrier);
}

PyObject *mproc_py_barrier_attach(PyObject *self, PyObject *args) {
  (void)self;
  const char *token;
  PyObject *action;
  if (!PyArg_ParseTuple(args, "sO", &token, &action)) return NULL;
  mproc_barrier_t *b = NULL;
  int rc = mproc_barrier_attach(&b, token, action == Py_None ? NULL : mproc_py_barrier_action,
                                action == Py_None ? NULL : action);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(b, mproc_py_type_barrier);
}

/* queue_new(kind, maxsize): kind 0 Queue, 1 SimpleQueue, 2 JoinableQueue. */
PyObject *mproc_py_queue_new(PyObject *self, PyObject *args) {
  (void)self;
  int kind;
  Py_ssize_t maxsize;
  if (!PyArg_ParseTuple(args, "in", &kind, &maxsize)) return NULL;
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  o.maxsize = maxsize > 0 ? (size_t)maxsize : 0;
  mproc_queue_t *q = NULL;
  int rc = kind == 1 ? mproc_simple_queue_new(&q)
                     : kind == 2 ? mproc_joinable_queue_new(&q, &o) : mproc_queue_new(&q, &o);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(q, mproc_py_type_queue);
}
/* shm_create_ex(name|None, size, lease, max_users) -> shm (mproc_shm_create_ex). */
PyObject *mproc_py_shm_create_ex(PyObject *self, PyObject *args) {
  (void)self;
  const char *name;
  Py_ssize_t size;
  int lease;
  unsigned int max_users;
  if (!PyArg_ParseTuple(args, "znpI", &name, &size, &lease, &max_users)) return NULL;
  if (size < 0) {
    PyErr_SetString(PyExc_ValueError, "'size' must be a positive integer");
    return NULL;
  }
  mproc_shm_opts_t o = MPROC_SHM_OPTS_INIT;
  o.lease = lease;
  o.max_users = max_users;
  mproc_shm_t *s = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_shm_create_ex(&s, name, (size_t)size, &o);
  Py_END_ALLOW_THREADS
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(s, mproc_py_type_shm);
}

/* ---- pipes: large messages without extra copies or fresh pages (issue 20) --------------------
 * A pipe's message travels through the pipe's ring (streamed when larger than it), so its
 * bytes are copied once in and once out whatever is done here. What was on top: the sender
 * joined a pickle and its out-of-band buffers into a new bytearray, and the receiver took the
 * message into a malloc'ed buffer and copied it into a new bytes object. On this VM a fresh page
 * costs about 11 us to fault in, so an 8 MiB array cost each side some 2,000 faults (20+ ms) per
 * message, ten times the copies. Now the sender gathers the parts into a buffer of its thread
 * that is kept (faulted in once), and the receiver takes a large message straight into memory of
 * its own, advised MADV_HUGEPAGE (a few faults), which the objects loads() makes view. */

#include <pthread.h>
#include <sys/mman.h>

enum { kHugeGrain = 2 << 20 };
#define MPROC_PY_SCRATCH_KEEP ((size_t)32 << 20) /* a thread's send buffer kept up to this */

/* Memory of its own, mapped for one message; unmapped with the last view of it. */
typedef struct {
  PyObject_HEAD
  void *p;
  size_t len, maplen;
} mproc_py_bigbuf;

static void mproc_py_bigbuf_dealloc(PyObject *o) {
  mproc_py_bigbuf *b = (mproc_py_bigbuf *)o;
  if (b->p) munmap(b->p, b->maplen);
  Py_TYPE(o)->tp_free(o);
}
static int mproc_py_bigbuf_getbuffer(PyObject *o, Py_buffer *view, int flags) {
  mproc_py_bigbuf *b = (mproc_py_bigbuf *)o;
  return PyBuffer_FillInfo(view, o, b->p, (Py_ssize_t)b->len, 0, flags);
}
static PyBufferProcs mproc_py_bigbuf_as_buffer = {mproc_py_bigbuf_getbuffer, NULL};
static PyTypeObject mproc_py_bigbuf_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mproc._mproc.PipeMessage",
    .tp_basicsize = sizeof(mproc_py_bigbuf),
    .tp_dealloc = mproc_py_bigbuf_dealloc,
    .tp_as_buffer = &mproc_py_bigbuf_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A large message received from a pipe, in memory of its own.",
};

/* len bytes of fresh anonymous memory in huge pages where the system gives them, or NULL. */
static void *mproc_py_huge_map(size_t len, size_t *maplen) {
  *maplen = (len + kHugeGrain - 1) / kHugeGrain * kHugeGrain;
  void *p = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  madvise(p, *maplen, MADV_HUGEPAGE); /* advice only */
  return p;
}

typedef struct {
  mproc_conn_t *c;
  char small[4096];
  size_t len;
  int need; /* the message is larger than small: len is its size, it is kept */
} mproc_py_recv_ctx;

static int mproc_py_recv_msg_slice(void *ctx, double t) {
  mproc_py_recv_ctx *c = (mproc_py_recv_ctx *)ctx;
  int rc = mproc_conn_recv_bytes(c->c, c->small, sizeof c->small, &c->len, t);
  if (rc == MPROC_EMSGSIZE) {
    c->need = 1;
    return 0;
  }
  return rc;
}

/* conn_recv_msg(conn, timeout, big) -> bytes, or for a message of `big` bytes or more a
 * memoryview of memory of its own (writable). Only the wait for the message is cut in slices;
 * the rest follows whatever the slice (pipe.cpp), so none is torn. */
PyObject *mproc_py_conn_recv_msg(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  Py_ssize_t big;
  mproc_py_recv_ctx *c = (mproc_py_recv_ctx *)PyMem_Malloc(sizeof *c);
  if (!c) return PyErr_NoMemory();
  c->need = 0;
  c->len = 0;
  PyObject *r = NULL;
  if (!PyArg_ParseTuple(args, "Odn", &h, &timeout, &big) ||
      mproc_py_ptr(h, (void **)&c->c, mproc_py_type_conn) < 0)
    goto done;
  if (!mproc_py_bigbuf_type.tp_dict && PyType_Ready(&mproc_py_bigbuf_type) < 0) goto done;
  int rc = mproc_py_wait(mproc_py_recv_msg_slice, c, timeout, MPROC_ETIMEDOUT, 0);
  if (rc == MPROC_PY_RAISED) goto done;
  if (rc < 0) {
    r = mproc_py_raise(rc);
    goto done;
  }
  if (!c->need) {
    r = PyBytes_FromStringAndSize(c->small, (Py_ssize_t)c->len);
    goto done;
  }
  /* The message is kept: take it into memory of its size (a streamed one arrives as the
   * sender writes it, as with mproc_conn_recv_bytes_alloc). */
  size_t len = c->len, got = 0, maplen = 0;
  void *dst;
  PyObject *owner;
  if ((Py_ssize_t)len >= big) {
    dst = mproc_py_huge_map(len, &maplen);
    if (!dst) {
      r = PyErr_NoMemory();
      goto done;
    }
    mproc_py_bigbuf *b = PyObject_New(mproc_py_bigbuf, &mproc_py_bigbuf_type);
    if (!b) {
      munmap(dst, maplen);
      goto done;
    }
    b->p = dst;
    b->len = len;
    b->maplen = maplen;
    owner = (PyObject *)b;
  } else {
    owner = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (!owner) goto done;
    dst = PyBytes_AS_STRING(owner);
  }
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_conn_recv_bytes(c->c, dst, len, &got, -1.0);
  Py_END_ALLOW_THREADS
  if (rc < 0 || got != len) {
    Py_DECREF(owner);
    if (rc == MPROC_EPIPE) /* the sender went in the middle of it: as multiprocessing says */
      PyErr_SetString(PyExc_OSError, "got end of file during message");
    else
      mproc_py_raise(rc < 0 ? rc : MPROC_EIO);
    goto done;
  }
  if (PyBytes_Check(owner)) {
    r = owner;
  } else {
    r = PyMemoryView_FromObject(owner);
    Py_DECREF(owner);
  }
done:
  PyMem_Free(c);
  return r;
}

/* A thread's send buffer for gathered messages: kept (its pages faulted in once) while it is
 * under MPROC_PY_SCRATCH_KEEP, and unmapped when the thread ends (a key's destructor); a larger
 * message gets memory for itself. A send owns the buffer while it runs: a signal handler that
 * sends on a pipe while this send waits for room gets memory of its own (and may leave its
 * buffer as the kept one, if it is the larger). */
typedef struct {
  char *p;
  size_t len;
} mproc_py_scratch_t;
static pthread_key_t mproc_py_scratch_key;
static pthread_once_t mproc_py_scratch_once = PTHREAD_ONCE_INIT;
static int mproc_py_scratch_ok;

static void mproc_py_scratch_free(void *v) {
  mproc_py_scratch_t *k = (mproc_py_scratch_t *)v;
  if (k->p) munmap(k->p, k->len);
  free(k);
}
static void mproc_py_scratch_init(void) {
  mproc_py_scratch_ok = pthread_key_create(&mproc_py_scratch_key, mproc_py_scratch_free) == 0;
}
/* The thread's kept buffer record (NULL when there can be none). */
static mproc_py_scratch_t *mproc_py_scratch(void) {
  pthread_once(&mproc_py_scratch_once, mproc_py_scratch_init);
  if (!mproc_py_scratch_ok) return NULL;
  mproc_py_scratch_t *k = (mproc_py_scratch_t *)pthread_getspecific(mproc_py_scratch_key);
  if (!k && (k = (mproc_py_scratch_t *)calloc(1, sizeof *k)) != NULL &&
      pthread_setspecific(mproc_py_scratch_key, k) != 0) {
    free(k);
    k = NULL;
  }
  return k;
}

typedef struct {
  mproc_conn_t *c;
  const char *data;
  size_t len;
} mproc_py_send_ctx;
static int mproc_py_send_slice(void *ctx, double t) {
  mproc_py_send_ctx *s = (mproc_py_send_ctx *)ctx;
  return mproc_conn_send_bytes_timeout(s->c, s->data, s->len, t);
}

/* conn_send_parts(conn, [buffer, ...]) -> None: the parts' concatenation as one message (a
 * pickle and the buffers it left out of band, mproc/_oob.py), gathered in the thread's send
 * buffer (one part is sent from where it is). The wait for room is cut in slices (signal handlers run; Ctrl-C raises before
 * anything is sent); a message longer than the ring then streams to its end. */
PyObject *mproc_py_conn_send_parts(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h, *seq, *fast = NULL, *result = NULL;
  mproc_py_send_ctx s = {NULL, NULL, 0};
  mproc_py_scratch_t *keep = NULL;
  char *own = NULL;
  size_t ownlen = 0;
  if (!PyArg_ParseTuple(args, "OO", &h, &seq)) return NULL;
  if (mproc_py_ptr(h, (void **)&s.c, mproc_py_type_conn) < 0) return NULL;
  fast = PySequence_Fast(seq, "parts must be a sequence of buffers");
  if (!fast) return NULL;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  Py_buffer *views = (Py_buffer *)PyMem_Calloc((size_t)(n ? n : 1), sizeof(Py_buffer));
  Py_ssize_t got = 0;
  size_t total = 0;
  if (!views) {
    PyErr_NoMemory();
    goto done;
  }
  for (; got < n; got++) {
    if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &views[got], PyBUF_C_CONTIGUOUS) < 0)
      goto done;
    total += (size_t)views[got].len;
  }
  if (n == 1) { /* one part: sent from where it is */
    s.data = (const char *)views[0].buf;
    s.len = total;
    goto send;
  }
  /* take the kept buffer (or make one) for this call */
  keep = mproc_py_scratch();
  if (keep && keep->p && total <= keep->len) {
    own = keep->p;
    ownlen = keep->len;
    keep->p = NULL;
    keep->len = 0;
  } else {
    own = (char *)mproc_py_huge_map(total, &ownlen);
    if (!own) {
      PyErr_NoMemory();
      goto done;
    }
  }
  char *dst = own;
  size_t at = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    memcpy(dst + at, views[i].buf, (size_t)views[i].len);
    at += (size_t)views[i].len;
  }
  s.data = dst;
  s.len = total;
send:;
  int rc = mproc_py_wait(mproc_py_send_slice, &s, -1.0, MPROC_ETIMEDOUT, 0);
  if (rc == MPROC_PY_RAISED) goto done;
  if (rc < 0) {
    mproc_py_raise(rc);
    goto done;
  }
  Py_INCREF(Py_None);
  result = Py_None;
done:
  if (own) {
    /* keep the larger of this buffer and one a nested send may have left, under the limit */
    keep = keep ? keep : mproc_py_scratch();
    if (keep && ownlen <= MPROC_PY_SCRATCH_KEEP && ownlen > keep->len) {
      if (keep->p) munmap(keep->p, keep->len);
      keep->p = own;
      keep->len = ownlen;
    } else {
      munmap(own, ownlen);
    }
  }
  for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
  PyMem_Free(views);
  Py_DECREF(fast);
  return result;
}
