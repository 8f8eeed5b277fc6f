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
static int mproc_py_recv_slice(void *ctx, double t) {
  mproc_py_msg_ctx *c = (mproc_py_msg_ctx *)ctx;
  return mproc_conn_recv_bytes_alloc((mproc_conn_t *)c->h, &c->out, &c->len, t);
}
/* The message a get/recv took (a new bytes object), or NULL with the exception for rc. */
static PyObject *mproc_py_taken(int rc, mproc_py_msg_ctx *c) {
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  PyObject *b = PyBytes_FromStringAndSize((const char *)c->out, (Py_ssize_t)c->len);
  free(c->out);
  return b;
}

/* Streamed puts (over a quarter of the default 2 MiB ring) wait in growing slices. */
#define MPROC_PY_STREAMED ((size_t)1 << 19)

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
  int rc = mproc_py_wait(mproc_py_put_slice, &c, timeout, MPROC_ETIMEDOUT,
                         c.len > MPROC_PY_STREAMED);
  PyBuffer_Release(&b);
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

/* queue_get(queue, timeout) -> bytes; raises TimeoutError when empty for timeout. A get that
 * has begun a streamed message finishes it whatever its slice (ring.cpp), so none is torn. */
PyObject *mproc_py_queue_get(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  mproc_py_msg_ctx c = {NULL, NULL, 0, NULL};
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_queue) < 0) return NULL;
  return mproc_py_taken(mproc_py_wait(mproc_py_get_slice, &c, timeout, MPROC_ETIMEDOUT, 0), &c);
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

/* conn_recv(conn, timeout) -> bytes. Only the first part of a message is waited for in slices;
 * the rest follows whatever the slice (pipe.cpp), so none is torn. */
PyObject *mproc_py_conn_recv(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  mproc_py_msg_ctx c = {NULL, NULL, 0, NULL};
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &c.h, mproc_py_type_conn) < 0) return NULL;
  return mproc_py_taken(mproc_py_wait(mproc_py_recv_slice, &c, timeout, MPROC_ETIMEDOUT, 0), &c);
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
