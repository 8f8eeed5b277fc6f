/* Python: the spawn start method; bindings/python/src/spawn.c. */

%native(py_spawn_process_new) PyObject *mproc_py_spawn_process_new(PyObject *self, PyObject *args);
%native(py_spawn_process_start) PyObject *mproc_py_spawn_process_start(PyObject *self, PyObject *args);
%native(py_spawn_pool_new) PyObject *mproc_py_spawn_pool_new(PyObject *self, PyObject *args);
%native(py_spawn_guard) PyObject *mproc_py_spawn_guard(PyObject *self, PyObject *args);
