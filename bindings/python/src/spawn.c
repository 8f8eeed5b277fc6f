/* The spawn start method: the body of a spawned interpreter (registered by name, as every
 * spawn body is), the calls that make such a process or pool, and the guard that a new
 * interpreter calls to receive its process (mproc.spawn.spawn_main). */

#include "mproc_py.h"

/* Runs inside mproc_spawn_guard(), called from Python with the GIL held: the interpreter is a
 * fresh one (no PyOS_AfterFork_Child). The result is the exit code. */
static int mproc_py_spawn_main(void *arg, size_t len, void *payload) {
  (void)payload;
  return mproc_py_child_main("mproc.spawn", arg, len);
}

/* The Python bodies, tasks and initializer, by the names both sides register (also for a pool
 * on a backend: helpers.c). */
int mproc_py_spawn_register(void) {
  int rc = mproc_process_register("mproc.python.spawn", mproc_py_spawn_main);
  if (rc == 0) rc = mproc_init_register("mproc.python.pool_init", mproc_py_pool_init);
  if (rc == 0) rc = mproc_task_register("mproc.python.task", mproc_py_task);
  if (rc == 0) rc = mproc_task_register("mproc.python.task_apply", mproc_py_task_apply);
  if (rc < 0) mproc_py_raise(rc);
  return rc;
}

/* Parse a list of str into a NULL-terminated array (freed by the caller); NULL on error. */
static const char **mproc_py_argv(PyObject *list) {
  Py_ssize_t n = PyList_GET_SIZE(list);
  const char **argv = (const char **)calloc((size_t)n + 1, sizeof *argv);
  if (!argv) {
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    argv[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
    if (!argv[i]) {
      free(argv);
      return NULL;
    }
  }
  return argv;
}

/* spawn_process_new(arg, name, daemon, argv, fds) -> process handle, not started: `argv` (a list
 * of str) runs mproc.spawn.spawn_main, which receives `arg`; `fds` (a list of int) are passed. */
PyObject *mproc_py_spawn_process_new(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer arg;
  const char *name = NULL;
  int daemon = 0;
  PyObject *list, *fdlist;
  if (!PyArg_ParseTuple(args, "y*ziO!O!", &arg, &name, &daemon, &PyList_Type, &list,
                        &PyList_Type, &fdlist))
    return NULL;
  PyObject *res = NULL;
  const char **argv = mproc_py_argv(list);
  Py_ssize_t nfds = PyList_GET_SIZE(fdlist);
  int *fds = (int *)calloc((size_t)nfds + 1, sizeof *fds);
  if (!argv) goto done;
  if (!fds) {
    PyErr_NoMemory();
    goto done;
  }
  for (Py_ssize_t i = 0; i < nfds; i++) {
    fds[i] = (int)PyLong_AsLong(PyList_GET_ITEM(fdlist, i));
    if (PyErr_Occurred()) goto done;
  }
  if (mproc_py_spawn_register() < 0) goto done;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.name = name;
  o.daemon = daemon;
  o.start_method = MPROC_START_SPAWN;
  o.argv = argv;
  o.fds = fds;
  o.nfds = (size_t)nfds;
  mproc_process_t *p = NULL;
  int rc = mproc_process_new(&p, mproc_py_spawn_main, arg.buf, (size_t)arg.len, &o);
  if (rc < 0) mproc_py_raise(rc);
  else res = MPROC_PY_NEWPTR(p, mproc_py_type_process);
done:
  free(argv);
  free(fds);
  PyBuffer_Release(&arg);
  return res;
}

/* spawn_process_start(h): exec and wait for the child's acknowledgement without the GIL (nothing
 * is forked: no fork hooks). */
PyObject *mproc_py_spawn_process_start(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *p;
  if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
  if (mproc_py_ptr(h, &p, mproc_py_type_process) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_process_start((mproc_process_t *)p);
  Py_END_ALLOW_THREADS
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

/* spawn_pool_new(workers, max_tasks_per_child, task_timeout, init_bytes, argv) -> pool of
 * spawned interpreters; made without the GIL (each worker is waited for). */
PyObject *mproc_py_spawn_pool_new(PyObject *self, PyObject *args) {
  (void)self;
  int workers, max_tasks;
  double timeout;
  Py_buffer init;
  PyObject *list;
  if (!PyArg_ParseTuple(args, "iidy*O!", &workers, &max_tasks, &timeout, &init, &PyList_Type,
                        &list))
    return NULL;
  PyObject *res = NULL;
  const char **argv = mproc_py_argv(list);
  if (!argv || mproc_py_spawn_register() < 0) goto done;
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = workers;
  o.start_method = MPROC_START_SPAWN;
  o.max_tasks_per_child = max_tasks;
  o.task_timeout = timeout;
  o.initializer = mproc_py_pool_init;
  o.init_arg = init.len ? init.buf : NULL;
  o.init_arg_len = (size_t)init.len;
  o.backend = "local";
  o.argv = argv;
  mproc_pool_t *pool = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_pool_new(&pool, &o);
  Py_END_ALLOW_THREADS
  if (rc < 0) mproc_py_raise(rc);
  else res = MPROC_PY_NEWPTR(pool, mproc_py_type_pool);
done:
  free(argv);
  PyBuffer_Release(&init);
  return res;
}

/* spawn_guard(): None in an interpreter not started by spawn; in a spawned one, runs the process
 * and exits (never returns). */
PyObject *mproc_py_spawn_guard(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  if (mproc_py_spawn_register() < 0) return NULL;
  mproc_py_spawned = getpid();
  int rc = mproc_spawn_guard();
  mproc_py_spawned = 0; /* returned: not a spawned child */
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}
