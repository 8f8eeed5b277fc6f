/* Python-only helpers for queues, sync and shared memory (included when MPROC_WRAP_IPC). */
%{
/* ptr_of(kind, handle) -> address: kind "value", "array" or "shm" (for ctypes / memoryview). */
static PyObject *mproc_py_ptr_of(PyObject *self, PyObject *args) {
  (void)self;
  const char *kind;
  PyObject *h;
  void *p = NULL, *addr = NULL;
  if (!PyArg_ParseTuple(args, "sO", &kind, &h)) return NULL;
  if (!strcmp(kind, "value")) {
    if (mproc_py_ptr(h, &p, SWIGTYPE_p_mproc_value) < 0) return NULL;
    addr = mproc_value_ptr((mproc_value_t *)p);
  } else if (!strcmp(kind, "array")) {
    if (mproc_py_ptr(h, &p, SWIGTYPE_p_mproc_array) < 0) return NULL;
    addr = mproc_array_ptr((mproc_array_t *)p);
  } else {
    if (mproc_py_ptr(h, &p, SWIGTYPE_p_mproc_shm) < 0) return NULL;
    addr = mproc_shm_ptr((mproc_shm_t *)p);
  }
  if (!addr) return mproc_py_raise(MPROC_EBADF);
  return PyLong_FromVoidPtr(addr);
}

static int mproc_py_opt_lock(PyObject *o, mproc_lock_t **lock) {
  *lock = NULL;
  if (o == Py_None) return 0;
  return mproc_py_ptr(o, (void **)lock, SWIGTYPE_p_mproc_lock);
}

/* value_new(typecode, init bytes|None, raw, lock|None) -> value */
static PyObject *mproc_py_value_new(PyObject *self, PyObject *args) {
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
  return MPROC_PY_NEWPTR(v, SWIGTYPE_p_mproc_value);
}

/* array_new(typecode, length, init bytes|None, raw, lock|None) -> array */
static PyObject *mproc_py_array_new(PyObject *self, PyObject *args) {
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
  return MPROC_PY_NEWPTR(a, SWIGTYPE_p_mproc_array);
}

/* lock_acquire(lock, timeout) -> True/False (timed out); raises OwnerDead (lock held) etc.
 * Tries without blocking first, so the uncontended case keeps the GIL (no thread switch). */
static PyObject *mproc_py_lock_acquire(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *lk;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &lk, SWIGTYPE_p_mproc_lock) < 0) return NULL;
  int rc = mproc_lock_acquire((mproc_lock_t *)lk, 0);
  if (rc == MPROC_ETIMEDOUT && timeout != 0) {
    Py_BEGIN_ALLOW_THREADS
    rc = mproc_lock_acquire((mproc_lock_t *)lk, timeout);
    Py_END_ALLOW_THREADS
  }
  if (rc == 0) Py_RETURN_TRUE;
  /* A Lock already held by this thread: with a timeout Python's answer is False (it would wait
   * it out); blocking forever raises instead of deadlocking. */
  if (rc == MPROC_ETIMEDOUT || (rc == MPROC_EDEADLK && timeout >= 0)) Py_RETURN_FALSE;
  return mproc_py_raise(rc);
}

static PyObject *mproc_py_lock_release(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *lk;
  if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
  if (mproc_py_ptr(h, &lk, SWIGTYPE_p_mproc_lock) < 0) return NULL;
  int rc = mproc_lock_release((mproc_lock_t *)lk);
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

/* sem_acquire(sem, timeout) -> True/False, same fast path. */
static PyObject *mproc_py_sem_acquire(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *s;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &s, SWIGTYPE_p_mproc_sem) < 0) return NULL;
  int rc = mproc_sem_acquire((mproc_sem_t *)s, 0);
  if (rc == MPROC_ETIMEDOUT && timeout != 0) {
    Py_BEGIN_ALLOW_THREADS
    rc = mproc_sem_acquire((mproc_sem_t *)s, timeout);
    Py_END_ALLOW_THREADS
  }
  if (rc == 0) Py_RETURN_TRUE;
  if (rc == MPROC_ETIMEDOUT) Py_RETURN_FALSE;
  return mproc_py_raise(rc);
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
static PyObject *mproc_py_barrier_new(PyObject *self, PyObject *args) {
  (void)self;
  unsigned int parties;
  PyObject *action;
  if (!PyArg_ParseTuple(args, "IO", &parties, &action)) return NULL;
  mproc_barrier_t *b = NULL;
  int rc = mproc_barrier_new(&b, parties, action == Py_None ? NULL : mproc_py_barrier_action,
                             action == Py_None ? NULL : action);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(b, SWIGTYPE_p_mproc_barrier);
}

static PyObject *mproc_py_barrier_attach(PyObject *self, PyObject *args) {
  (void)self;
  const char *token;
  PyObject *action;
  if (!PyArg_ParseTuple(args, "sO", &token, &action)) return NULL;
  mproc_barrier_t *b = NULL;
  int rc = mproc_barrier_attach(&b, token, action == Py_None ? NULL : mproc_py_barrier_action,
                                action == Py_None ? NULL : action);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(b, SWIGTYPE_p_mproc_barrier);
}

/* queue_new(kind, maxsize): kind 0 Queue, 1 SimpleQueue, 2 JoinableQueue. */
static PyObject *mproc_py_queue_new(PyObject *self, PyObject *args) {
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
  return MPROC_PY_NEWPTR(q, SWIGTYPE_p_mproc_queue);
}
/* shm_create_ex(name|None, size, lease, max_users) -> shm (mproc_shm_create_ex). */
static PyObject *mproc_py_shm_create_ex(PyObject *self, PyObject *args) {
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
  return MPROC_PY_NEWPTR(s, SWIGTYPE_p_mproc_shm);
}
%}


%native(shm_create_ex) PyObject *mproc_py_shm_create_ex(PyObject *self, PyObject *args);
%native(ptr_of) PyObject *mproc_py_ptr_of(PyObject *self, PyObject *args);
%native(value_new) PyObject *mproc_py_value_new(PyObject *self, PyObject *args);
%native(array_new) PyObject *mproc_py_array_new(PyObject *self, PyObject *args);
%native(lock_acquire) PyObject *mproc_py_lock_acquire(PyObject *self, PyObject *args);
%native(lock_release) PyObject *mproc_py_lock_release(PyObject *self, PyObject *args);
%native(sem_acquire) PyObject *mproc_py_sem_acquire(PyObject *self, PyObject *args);
%native(barrier_new) PyObject *mproc_py_barrier_new(PyObject *self, PyObject *args);
%native(barrier_attach) PyObject *mproc_py_barrier_attach(PyObject *self, PyObject *args);
%native(queue_new) PyObject *mproc_py_queue_new(PyObject *self, PyObject *args);
