/* Status codes to Python exceptions: the package's {code: class} map (set_error_map), the
 * raise every binding call ends with on a negative status, and the module's init. */

#include "mproc_py.h"

static PyObject *mproc_py_errmap = NULL;     /* {code: exception class}, set by the package */
static PyObject *mproc_py_errdefault = NULL; /* class for codes not in the map */

/* Raise the exception for `code` with this thread's mproc_last_error() text; returns NULL. */
PyObject *mproc_py_raise(int code) {
  const char *msg = mproc_last_error();
  if (!msg || !*msg) msg = mproc_strerror(code);
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
