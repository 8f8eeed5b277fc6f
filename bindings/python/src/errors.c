/* Status codes to Python exceptions: the package's {code: class} map (set_error_map), the
 * raise every binding call ends with on a negative status, and the module's init. */

#include "mproc_py.h"

#include <string.h>

static PyObject *mproc_py_errmap = NULL;     /* {code: exception class}, set by the package */
static PyObject *mproc_py_errdefault = NULL; /* class for codes not in the map */

/* The text of a core message without its leading "mproc_<function>: ": a Python caller never
 * called that C function (and the exception's type already says what failed). */
static const char *mproc_py_message(const char *msg) {
  if (strncmp(msg, "mproc_", 6) != 0) return msg;
  const char *p = msg + 6;
  while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') p++;
  if (p[0] == ':' && p[1] == ' ' && p[2]) return p + 2;
  return msg;
}

/* msg without " with code -<n>" where -<n> is one of the core's own codes (the pool's
 * "initializer failed ... with code -3012: <traceback>"): a number that means nothing to a
 * Python caller, whose exception's type already says it. Written to buf (cap bytes). */
static const char *mproc_py_drop_code(const char *msg, char *buf, size_t cap) {
  const char *at = strstr(msg, " with code -");
  if (!at) return msg;
  const char *p = at + 12;
  long n = 0;
  while (*p >= '0' && *p <= '9' && n < 100000) n = n * 10 + (*p++ - '0');
  if (p == at + 12 || n < 1000) return msg; /* an errno or a C user's status: kept */
  size_t head = (size_t)(at - msg);
  if (head + strlen(p) + 1 > cap) return msg;
  memcpy(buf, msg, head);
  strcpy(buf + head, p);
  return buf;
}

/* Raise the exception for `code` with this thread's mproc_last_error() text; returns NULL. */
PyObject *mproc_py_raise(int code) {
  const char *msg = mproc_last_error();
  if (!msg || !*msg) msg = mproc_strerror(code);
  char buf[16384];
  msg = mproc_py_drop_code(mproc_py_message(msg), buf, sizeof buf);
  PyObject *cls = NULL;
  if (mproc_py_errmap) {
    PyObject *k = PyLong_FromLong(code);
    if (k) {
      cls = PyDict_GetItemWithError(mproc_py_errmap, k);
      Py_DECREF(k);
    }
    if (PyErr_Occurred()) return NULL;
  }
  if (!cls) cls = mproc_py_errdefault ? mproc_py_errdefault : PyExc_RuntimeError;
  PyObject *exc = PyObject_CallFunction(cls, "s", msg);
  if (!exc) return NULL;
  PyObject *c = PyLong_FromLong(code);
  if (c) {
    if (PyObject_SetAttrString(exc, "mproc_code", c) < 0) PyErr_Clear();
    Py_DECREF(c);
  }
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

/* set_error_map({code: class}, default_class) */
PyObject *mproc_py_set_error_map(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *map, *dflt;
  if (!PyArg_ParseTuple(args, "O!O", &PyDict_Type, &map, &dflt)) return NULL;
  Py_INCREF(map);
  Py_INCREF(dflt);
  Py_XSETREF(mproc_py_errmap, map);
  Py_XSETREF(mproc_py_errdefault, dflt);
  Py_RETURN_NONE;
}

/* ---- module init ------------------------------------------------------------------------------ */
#define MPROC_PY_DEFINE_TYPE(kind) swig_type_info *mproc_py_type_##kind = NULL;
MPROC_PY_HANDLE_TYPES(MPROC_PY_DEFINE_TYPE)
#undef MPROC_PY_DEFINE_TYPE

int mproc_py_types_init(PyObject *m);   /* types.c */

int mproc_py_init(PyObject *m) {
  /* SWIG's module init has registered the type table: look each handle type up by its C name. */
#define MPROC_PY_LOOKUP_TYPE(kind)                                                       \
  mproc_py_type_##kind = SWIG_TypeQuery("mproc_" #kind "_t *");                         \
  if (!mproc_py_type_##kind) {                                                           \
    PyErr_SetString(PyExc_ImportError, "_mproc: SWIG type mproc_" #kind "_t * not found"); \
    return -1;                                                                           \
  }
  MPROC_PY_HANDLE_TYPES(MPROC_PY_LOOKUP_TYPE)
#undef MPROC_PY_LOOKUP_TYPE
  return mproc_py_types_init(m);
}
