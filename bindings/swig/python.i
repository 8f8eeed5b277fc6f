/* Python part of mproc.i (included inside #ifdef SWIGPYTHON).
 *
 * GIL rules (see docs/python.md):
 *  - the module is built with -threads: every auto-wrapped call releases the GIL, so a blocking
 *    join/wait/get lets other Python threads run;
 *  - calls that fork (process start, pool creation, forkserver start) keep the GIL and are
 *    bracketed by PyOS_BeforeFork/PyOS_AfterFork_Parent: a child made by fork (directly or by a
 *    helper forked then) is a copy of a thread that held the GIL, and its first Python-side act
 *    is PyOS_AfterFork_Child (process body and pool initializer trampolines);
 *  - pool completion callbacks run on the pool's dispatcher thread, which never touches Python:
 *    the C callback only queues a cookie (py_cbq) that a Python thread of the package pops. */

/* The hand-written C of the extension is in bindings/python/src (mproc_py.h says how the two
 * halves of the module meet); here are only SWIG directives. */
%{
#include "mproc_py.h"
%}
%init %{
  if (mproc_py_init(m) < 0) return NULL;
%}

/* ---- status codes to exceptions (mproc_py_raise: bindings/python/src/errors.c) ------------- */

/* A negative status raises; 0 is None (so out-parameters become the value); > 0 is an int. */
%typemap(out) int {
  if ($1 < 0) {
    mproc_py_raise($1);
    SWIG_fail;
  }
  if ($1 == 0) {
    Py_INCREF(Py_None);
    $result = Py_None;
  } else {
    $result = PyLong_FromLong($1);
  }
}

/* Handle out-parameters: `T **out`, `T **out_a`, `T **out_b` are returned. */
%typemap(in, numinputs=0) SWIGTYPE **out ($*1_ltype tmp = NULL),
                          SWIGTYPE **out_a ($*1_ltype tmp = NULL),
                          SWIGTYPE **out_b ($*1_ltype tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) SWIGTYPE **out, SWIGTYPE **out_a, SWIGTYPE **out_b {
  $result = SWIG_Python_AppendOutput($result, SWIG_NewPointerObj(SWIG_as_voidptr(tmp$argnum), $*1_descriptor, 0));
}

/* size_t out-parameters. */
%typemap(in, numinputs=0) size_t *out (size_t tmp = 0), size_t *index (size_t tmp = 0) { $1 = &tmp; }
%typemap(argout) size_t *out, size_t *index {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromSize_t(tmp$argnum));
}
/* Borrowed C strings out (owned by the handle). */
%typemap(in, numinputs=0) const char **message (const char *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) const char **message {
  $result = SWIG_Python_AppendOutput($result, PyUnicode_DecodeUTF8(tmp$argnum ? tmp$argnum : "", tmp$argnum ? strlen(tmp$argnum) : 0, "replace"));
}

/* Byte buffers in: anything with the buffer protocol (bytes, bytearray, memoryview). */
%typemap(in) (const void *data, size_t len) (Py_buffer view) {
  if (PyObject_GetBuffer($input, &view, PyBUF_SIMPLE) < 0) SWIG_fail;
  $1 = view.buf;
  $2 = (size_t)view.len;
}
%typemap(freearg) (const void *data, size_t len) { PyBuffer_Release(&view$argnum); }

/* Malloc'ed byte buffers out (mproc_queue_get_alloc, mproc_conn_recv_bytes_alloc). */
%typemap(in, numinputs=0) (void **out, size_t *out_len) (void *tmp = NULL, size_t n = 0) {
  $1 = &tmp;
  $2 = &n;
}
%typemap(argout) (void **out, size_t *out_len) {
  $result = SWIG_Python_AppendOutput($result, PyBytes_FromStringAndSize((const char *)tmp$argnum, (Py_ssize_t)n$argnum));
  free(tmp$argnum);
}
%typemap(freearg) (void **out, size_t *out_len) { }

/* Tokens and names written to a caller's buffer come back as str. */
%typemap(in, numinputs=0) (char *buf, size_t cap) (char tmp[1024]) {
  tmp[0] = 0;
  $1 = tmp;
  $2 = sizeof tmp;
}
%typemap(argout) (char *buf, size_t cap) {
  Py_XDECREF($result);
  $result = PyUnicode_FromString(tmp$argnum);
}

/* Python helpers with their own argument handling and GIL management. */
%include "python_helpers.i"
%include "python_spawn.i"
#ifdef MPROC_WRAP_IPC
%include "python_ipc.i"
#endif
