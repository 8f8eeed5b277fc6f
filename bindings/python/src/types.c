/* Python-only C types of the extension _mproc: the hot paths of Lock/RLock and of a synchronized Value.
 *
 * `with lock:`, lock.acquire()/release() and Value.value are the calls a Python program makes
 * millions of times. Through a Python class each is a Python function call plus a SWIG call
 * (argument parsing, handle conversion): ~10x the cost of the lock itself. Here they are methods
 * and getsets of two small C base types (LockBase, ValueBase) that the package's classes
 * (mproc.synchronize.Lock/RLock, mproc.sharedctypes.Synchronized) derive from, so the
 * interpreter calls C directly. The uncontended acquire keeps the GIL (no thread switch); only a
 * blocking wait releases it, in slices, with PyErr_CheckSignals() between them so that Ctrl-C
 * raises KeyboardInterrupt as it does for multiprocessing's Lock. */
#include "mproc_py.h"

#include <structmember.h>


/* ---- LockBase --------------------------------------------------------------------------- */
typedef struct {
  PyObject_HEAD
  mproc_lock_t *lk;
  PyObject *h;     /* the SWIG handle object (what the package passes to _mproc calls) */
  int owned;       /* free the handle with the object (not for a *_get_lock borrowed lock) */
  int recursive;
} mproc_py_lock;

static PyTypeObject mproc_py_lock_type;

static int mproc_py_lock_ok(mproc_py_lock *self) {
  if (self->lk) return 1;
  PyErr_SetString(PyExc_ValueError, "lock is not initialized");
  return 0;
}

static int mproc_py_lock_slice(void *lk, double s) { return mproc_lock_acquire((mproc_lock_t *)lk, s); }
/* Finish an acquire with `timeout` (< 0 forever, 0 try) whose first try without blocking gave
 * rc: 1 acquired, 0 not (timeout), -1 raised. A dead owner raises OwnerDeadError with the
 * lock held. */
static int mproc_py_lock_wait(mproc_py_lock *self, int rc, double timeout) {
  if (rc == MPROC_ETIMEDOUT && timeout != 0) {
    rc = mproc_py_wait(mproc_py_lock_slice, self->lk, timeout, MPROC_ETIMEDOUT, 0);
    if (rc == MPROC_PY_RAISED) return -1;
  }
  if (rc == 0) return 1;
  /* A Lock already held by this thread: with a timeout Python's answer is False (it would wait
   * it out); blocking forever raises instead of deadlocking. */
  if (rc == MPROC_ETIMEDOUT || (rc == MPROC_EDEADLK && timeout >= 0)) return 0;
  mproc_py_raise(rc);
  return -1;
}

static int mproc_py_lock_take(mproc_py_lock *self, double timeout) {
  return mproc_py_lock_wait(self, mproc_lock_acquire(self->lk, 0), timeout);
}

/* Release: 0, or -1 with multiprocessing's exception for a release by a non-owner. */
static int mproc_py_lock_give(mproc_py_lock *self) {
  int rc = mproc_lock_release(self->lk);
  if (rc == 0) return 0;
  if (rc == MPROC_ENOTOWNER) {
    if (self->recursive)
      PyErr_SetString(PyExc_AssertionError,
                      "attempt to release recursive lock not owned by thread");
    else
      PyErr_SetString(PyExc_ValueError, "lock released by a thread that does not hold it");
    return -1;
  }
  mproc_py_raise(rc);
  return -1;
}

/* acquire() and acquire(True): the fast path, uncontended; no GIL release, no argument
 * parsing. A dead previous holder raises OwnerDeadError with the lock held (the caller asked
 * for the lock and owns it: it repairs the state, then releases). */
static PyObject *mproc_py_lock_acquire0(PyObject *o) {
  mproc_py_lock *self = (mproc_py_lock *)o;
  if (!self->lk && !mproc_py_lock_ok(self)) return NULL;
  int rc = mproc_lock_acquire(self->lk, 0);
  if (rc == 0) Py_RETURN_TRUE;
  int r = mproc_py_lock_wait(self, rc, -1);
  if (r < 0) return NULL;
  return PyBool_FromLong(r);
}

/* `with lock:` (same fast path). When the previous holder died, the exception leaves
 * __enter__, so __exit__ never runs and nothing in the caller's code could release the lock:
 * it is released here before OwnerDeadError is raised, and the with-block does not run. */
static PyObject *mproc_py_lock_enter(PyObject *o, PyObject *unused) {
  (void)unused;
  PyObject *r = mproc_py_lock_acquire0(o);
  if (r || !PyErr_Occurred()) return r;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyObject *code = value ? PyObject_GetAttrString(value, "mproc_code") : NULL;
  long c = code ? PyLong_AsLong(code) : 0;
  Py_XDECREF(code);
  PyErr_Clear();
  mproc_py_lock *self = (mproc_py_lock *)o;
  if (c == MPROC_EOWNERDEAD && value && mproc_lock_release(self->lk) == 0) {
    PyObject *exc = PyObject_CallFunction(
        (PyObject *)Py_TYPE(value), "s",
        "the previous holder of the lock died holding it: the with-block did not run and the "
        "lock is released (this thread does not hold it); the state it guards may be "
        "inconsistent");
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (!exc) return NULL;
    PyObject *cv = PyLong_FromLong(c);
    if (cv) {
      if (PyObject_SetAttrString(exc, "mproc_code", cv) < 0) PyErr_Clear();
      Py_DECREF(cv);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
  }
  PyErr_Restore(type, value, tb);
  return NULL;
}

/* acquire(block=True, timeout=None), as multiprocessing's Lock.acquire. */
static PyObject *mproc_py_lock_acquire_m(PyObject *o, PyObject *const *args, Py_ssize_t nargs,
                                         PyObject *kwnames) {
  mproc_py_lock *self = (mproc_py_lock *)o;
  if (nargs == 0 && !kwnames) return mproc_py_lock_acquire0(o);
  if (!mproc_py_lock_ok(self)) return NULL;
  PyObject *block = Py_True, *timeout = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs > 2) return PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments");
  if (nargs > 0) block = args[0];
  if (nargs > 1) timeout = args[1];
  for (Py_ssize_t i = 0; i < nkw; i++) {
    const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, i));
    if (!k) return NULL;
    if (!strcmp(k, "block") && nargs < 1) block = args[nargs + i];
    else if (!strcmp(k, "timeout") && nargs < 2) timeout = args[nargs + i];
    else
      return PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%s'", k);
  }
  int b = PyObject_IsTrue(block);
  if (b < 0) return NULL;
  double t = -1;
  if (!b) {
    t = 0;
  } else if (timeout != Py_None) {
    t = PyFloat_AsDouble(timeout);
    if (t == -1 && PyErr_Occurred()) return NULL;
    if (t < 0) t = 0;
  }
  int r = mproc_py_lock_take(self, t);
  if (r < 0) return NULL;
  return PyBool_FromLong(r);
}

static PyObject *mproc_py_lock_release_m(PyObject *o, PyObject *unused) {
  (void)unused;
  mproc_py_lock *self = (mproc_py_lock *)o;
  if (!self->lk && !mproc_py_lock_ok(self)) return NULL;
  if (mproc_py_lock_give(self) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *mproc_py_lock_exit(PyObject *o, PyObject *const *args, Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return mproc_py_lock_release_m(o, NULL);
}

/* _own(handle, owned=True): take the SWIG lock handle (freed with the object when owned). */
static PyObject *mproc_py_lock_own(PyObject *o, PyObject *args) {
  mproc_py_lock *self = (mproc_py_lock *)o;
  PyObject *h;
  int owned = 1;
  void *p;
  if (!PyArg_ParseTuple(args, "O|p", &h, &owned)) return NULL;
  if (mproc_py_ptr(h, &p, mproc_py_type_lock) < 0) return NULL;
  if (self->lk) return PyErr_Format(PyExc_RuntimeError, "lock already initialized");
  int rec = mproc_lock_is_recursive((mproc_lock_t *)p);
  if (rec < 0) return mproc_py_raise(rec);
  Py_INCREF(h);
  self->h = h;
  self->lk = (mproc_lock_t *)p;
  self->owned = owned;
  self->recursive = rec;
  Py_RETURN_NONE;
}

static void mproc_py_lock_dealloc(PyObject *o) {
  mproc_py_lock *self = (mproc_py_lock *)o;
  if (self->lk && self->owned) mproc_lock_free(self->lk);
  self->lk = NULL;
  Py_CLEAR(self->h);
  Py_TYPE(o)->tp_free(o);
}

static PyMethodDef mproc_py_lock_methods[] = {
  {"acquire", (PyCFunction)(void (*)(void))mproc_py_lock_acquire_m, METH_FASTCALL | METH_KEYWORDS,
   "acquire(block=True, timeout=None) -> bool"},
  {"release", mproc_py_lock_release_m, METH_NOARGS, "release()"},
  {"__enter__", mproc_py_lock_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)(void (*)(void))mproc_py_lock_exit, METH_FASTCALL, NULL},
  {"_own", mproc_py_lock_own, METH_VARARGS, "_own(handle, owned=True)"},
  {NULL, NULL, 0, NULL}};

static PyMemberDef mproc_py_lock_members[] = {
  {"_h", T_OBJECT, offsetof(mproc_py_lock, h), READONLY, "the _mproc lock handle"},
  {NULL, 0, 0, 0, NULL}};

static PyTypeObject mproc_py_lock_type = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "mproc._mproc.LockBase",
  .tp_basicsize = sizeof(mproc_py_lock),
  .tp_dealloc = mproc_py_lock_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
  .tp_doc = "C base of mproc.Lock and mproc.RLock",
  .tp_methods = mproc_py_lock_methods,
  .tp_members = mproc_py_lock_members,
  .tp_new = PyType_GenericNew,
};

/* ---- ValueBase ---------------------------------------------------------------------------
 * The synchronized wrapper of a shared scalar: `value` reads and writes the shared memory
 * directly under the wrapper's lock (a LockBase), with ctypes' conversions for numbers; other
 * type codes (e.g. 'c') go through the ctypes object. */
typedef struct {
  PyObject_HEAD
  PyObject *obj;   /* the ctypes object over the shared memory (keeps the segment alive) */
  PyObject *lock;  /* a LockBase */
  PyObject *h;     /* the SWIG value handle */
  void *ptr;
  char code;
} mproc_py_value;

static int mproc_py_value_init(PyObject *o, PyObject *args, PyObject *kw) {
  mproc_py_value *self = (mproc_py_value *)o;
  PyObject *obj, *lock, *h;
  void *p;
  (void)kw;
  if (!PyArg_ParseTuple(args, "OOO", &obj, &lock, &h)) return -1;
  if (!PyObject_TypeCheck(lock, &mproc_py_lock_type) || !((mproc_py_lock *)lock)->lk) {
    PyErr_SetString(PyExc_TypeError, "expected an mproc Lock or RLock");
    return -1;
  }
  if (mproc_py_ptr(h, &p, mproc_py_type_value) < 0) return -1;
  void *addr = mproc_value_ptr((mproc_value_t *)p);
  if (!addr) {
    mproc_py_raise(MPROC_EBADF);
    return -1;
  }
  Py_INCREF(obj);
  Py_INCREF(lock);
  Py_INCREF(h);
  Py_XSETREF(self->obj, obj);
  Py_XSETREF(self->lock, lock);
  Py_XSETREF(self->h, h);
  self->ptr = addr;
  self->code = (char)mproc_value_typecode((mproc_value_t *)p);
  return 0;
}

static void mproc_py_value_dealloc(PyObject *o) {
  mproc_py_value *self = (mproc_py_value *)o;
  Py_CLEAR(self->obj);
  Py_CLEAR(self->lock);
  Py_CLEAR(self->h);
  Py_TYPE(o)->tp_free(o);
}

static int mproc_py_value_ready(mproc_py_value *self) {
  if (self->lock) return 1;
  PyErr_SetString(PyExc_ValueError, "value is not initialized");
  return 0;
}

/* Read the shared scalar (lock held). */
static PyObject *mproc_py_value_read(mproc_py_value *self) {
  void *p = self->ptr;
  switch (self->code) {
    case 'b': return PyLong_FromLong(*(signed char *)p);
    case 'B': return PyLong_FromLong(*(unsigned char *)p);
    case 'h': return PyLong_FromLong(*(short *)p);
    case 'H': return PyLong_FromLong(*(unsigned short *)p);
    case 'i': return PyLong_FromLong(*(int *)p);
    case 'I': return PyLong_FromUnsignedLong(*(unsigned int *)p);
    case 'l': return PyLong_FromLong(*(long *)p);
    case 'L': return PyLong_FromUnsignedLong(*(unsigned long *)p);
    case 'q': return PyLong_FromLongLong(*(long long *)p);
    case 'Q': return PyLong_FromUnsignedLongLong(*(unsigned long long *)p);
    case 'f': return PyFloat_FromDouble(*(float *)p);
    case 'd': return PyFloat_FromDouble(*(double *)p);
    default: return PyObject_GetAttrString(self->obj, "value");
  }
}

/* Write the shared scalar (lock held), converting as ctypes does: integers wrap silently, a
 * float is refused for an integer type. 0 or -1. */
static int mproc_py_value_write(mproc_py_value *self, PyObject *v) {
  void *p = self->ptr;
  char c = self->code;
  if (c == 'f' || c == 'd') {
    double d = PyFloat_AsDouble(v);
    if (d == -1 && PyErr_Occurred()) return -1;
    if (c == 'f') *(float *)p = (float)d;
    else *(double *)p = d;
    return 0;
  }
  switch (c) {
    case 'b': case 'B': case 'h': case 'H': case 'i': case 'I': case 'l': case 'L': case 'q':
    case 'Q':
      break;
    default:
      return PyObject_SetAttrString(self->obj, "value", v);
  }
  if (PyFloat_Check(v)) {
    PyErr_Format(PyExc_TypeError, "int expected instead of float");
    return -1;
  }
  unsigned long long x = PyLong_AsUnsignedLongLongMask(v);
  if (x == (unsigned long long)-1 && PyErr_Occurred()) return -1;
  switch (c) {
    case 'b': case 'B': *(unsigned char *)p = (unsigned char)x; break;
    case 'h': case 'H': *(unsigned short *)p = (unsigned short)x; break;
    case 'i': case 'I': *(unsigned int *)p = (unsigned int)x; break;
    case 'l': case 'L': *(unsigned long *)p = (unsigned long)x; break;
    default: *(unsigned long long *)p = x; break;
  }
  return 0;
}

/* Take the wrapper's lock: a new reference to it (a blocking wait lets other threads run, which
 * might re-initialize the wrapper meanwhile), or NULL with an exception. */
static mproc_py_lock *mproc_py_value_lock(mproc_py_value *self) {
  if (!mproc_py_value_ready(self)) return NULL;
  mproc_py_lock *lk = (mproc_py_lock *)self->lock;
  Py_INCREF(lk);
  int rc = mproc_lock_acquire(lk->lk, 0);
  if (rc != 0) {
    int r = mproc_py_lock_wait(lk, rc, -1);
    if (r <= 0) {
      if (r == 0) PyErr_SetString(PyExc_RuntimeError, "lock not acquired");
      Py_DECREF(lk);
      return NULL;
    }
  }
  return lk;
}

/* Give back what mproc_py_value_lock took: 0, or -1 with an exception. */
static int mproc_py_value_unlock(mproc_py_lock *lk) {
  int rc = mproc_py_lock_give(lk);
  Py_DECREF(lk);
  return rc;
}

static PyObject *mproc_py_value_get(PyObject *o, void *closure) {
  (void)closure;
  mproc_py_value *self = (mproc_py_value *)o;
  mproc_py_lock *lk = mproc_py_value_lock(self);
  if (!lk) return NULL;
  PyObject *v = mproc_py_value_read(self);
  if (mproc_py_value_unlock(lk) < 0) Py_CLEAR(v);
  return v;
}

static int mproc_py_value_set(PyObject *o, PyObject *v, void *closure) {
  (void)closure;
  mproc_py_value *self = (mproc_py_value *)o;
  if (!v) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete value");
    return -1;
  }
  mproc_py_lock *lk = mproc_py_value_lock(self);
  if (!lk) return -1;
  int rc = mproc_py_value_write(self, v);
  if (mproc_py_value_unlock(lk) < 0) rc = -1;
  return rc;
}

static PyObject *mproc_py_value_get_lock(PyObject *o, PyObject *unused) {
  (void)unused;
  mproc_py_value *self = (mproc_py_value *)o;
  if (!mproc_py_value_ready(self)) return NULL;
  Py_INCREF(self->lock);
  return self->lock;
}

static PyObject *mproc_py_value_get_obj(PyObject *o, PyObject *unused) {
  (void)unused;
  mproc_py_value *self = (mproc_py_value *)o;
  if (!mproc_py_value_ready(self)) return NULL;
  Py_INCREF(self->obj);
  return self->obj;
}

static PyObject *mproc_py_value_enter(PyObject *o, PyObject *unused) {
  mproc_py_value *self = (mproc_py_value *)o;
  if (!mproc_py_value_ready(self)) return NULL;
  return mproc_py_lock_enter(self->lock, unused);
}

static PyObject *mproc_py_value_exit(PyObject *o, PyObject *const *args, Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  mproc_py_value *self = (mproc_py_value *)o;
  if (!mproc_py_value_ready(self)) return NULL;
  return mproc_py_lock_release_m(self->lock, NULL);
}

static PyMethodDef mproc_py_value_methods[] = {
  {"get_lock", mproc_py_value_get_lock, METH_NOARGS, "the lock that guards value"},
  {"get_obj", mproc_py_value_get_obj, METH_NOARGS, "the ctypes object over the shared memory"},
  {"__enter__", mproc_py_value_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)(void (*)(void))mproc_py_value_exit, METH_FASTCALL, NULL},
  {NULL, NULL, 0, NULL}};

static PyGetSetDef mproc_py_value_getset[] = {
  {"value", mproc_py_value_get, mproc_py_value_set, "the shared value (under the lock)", NULL},
  {NULL, NULL, NULL, NULL, NULL}};

static PyMemberDef mproc_py_value_members[] = {
  {"_obj", T_OBJECT, offsetof(mproc_py_value, obj), READONLY, NULL},
  {"_lock", T_OBJECT, offsetof(mproc_py_value, lock), READONLY, NULL},
  {"_h", T_OBJECT, offsetof(mproc_py_value, h), READONLY, NULL},
  {NULL, 0, 0, 0, NULL}};

static PyTypeObject mproc_py_value_type = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "mproc._mproc.ValueBase",
  .tp_basicsize = sizeof(mproc_py_value),
  .tp_dealloc = mproc_py_value_dealloc,
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
  .tp_doc = "C base of mproc.sharedctypes.Synchronized: ValueBase(ctypes_obj, lock, handle)",
  .tp_methods = mproc_py_value_methods,
  .tp_members = mproc_py_value_members,
  .tp_getset = mproc_py_value_getset,
  .tp_init = mproc_py_value_init,
  .tp_new = PyType_GenericNew,
};

int mproc_py_types_init(PyObject *m) {
  if (PyType_Ready(&mproc_py_lock_type) < 0 || PyType_Ready(&mproc_py_value_type) < 0) return -1;
  Py_INCREF(&mproc_py_lock_type);
  if (PyModule_AddObject(m, "LockBase", (PyObject *)&mproc_py_lock_type) < 0) return -1;
  Py_INCREF(&mproc_py_value_type);
  if (PyModule_AddObject(m, "ValueBase", (PyObject *)&mproc_py_value_type) < 0) return -1;
  return 0;
}
