/* Python: processes, pools, async results, errors. Each is a METH_VARARGS function of
 * bindings/python/src/helpers.c (errors.c for the error map, numbers.c for packed numbers), declared in mproc_py.h. */


%native(py_process_new) PyObject *mproc_py_process_new(PyObject *self, PyObject *args);
%native(py_process_start) PyObject *mproc_py_process_start(PyObject *self, PyObject *args);
%native(py_forkserver_start) PyObject *mproc_py_forkserver_start(PyObject *self, PyObject *args);
%native(py_pool_new) PyObject *mproc_py_pool_new(PyObject *self, PyObject *args);
%native(py_pool_apply) PyObject *mproc_py_pool_apply(PyObject *self, PyObject *args);
%native(py_pool_apply_async) PyObject *mproc_py_pool_apply_async(PyObject *self, PyObject *args);
%native(py_pool_apply_block) PyObject *mproc_py_pool_apply_block(PyObject *self, PyObject *args);
%native(py_pool_map_async) PyObject *mproc_py_pool_map_async(PyObject *self, PyObject *args);
%native(py_pack_numbers) PyObject *mproc_py_pack_numbers(PyObject *self, PyObject *args);
%native(py_map_packed) PyObject *mproc_py_map_packed(PyObject *self, PyObject *args);
%native(py_unpack_numbers) PyObject *mproc_py_unpack_numbers(PyObject *self, PyObject *args);
%native(py_loads) PyObject *mproc_py_loads(PyObject *self, PyObject *args);
%native(py_pack_tuples) PyObject *mproc_py_pack_tuples(PyObject *self, PyObject *args);
%native(py_pack_strs) PyObject *mproc_py_pack_strs(PyObject *self, PyObject *args);
%native(py_starmap_packed) PyObject *mproc_py_starmap_packed(PyObject *self, PyObject *args);
%native(py_pool_stats) PyObject *mproc_py_pool_stats(PyObject *self, PyObject *args);
%native(py_pool_join) PyObject *mproc_py_pool_join(PyObject *self, PyObject *args);
%native(py_process_join) PyObject *mproc_py_process_join(PyObject *self, PyObject *args);
%native(py_feed_state) PyObject *mproc_py_feed_state(PyObject *self, PyObject *args);
%native(py_async_wait) PyObject *mproc_py_async_wait(PyObject *self, PyObject *args);
%native(py_async_get) PyObject *mproc_py_async_get(PyObject *self, PyObject *args);
%native(py_async_items) PyObject *mproc_py_async_items(PyObject *self, PyObject *args);
%native(py_async_next) PyObject *mproc_py_async_next(PyObject *self, PyObject *args);
%native(py_cbq_new) PyObject *mproc_py_cbq_new(PyObject *self, PyObject *args);
%native(py_cbq_pop) PyObject *mproc_py_cbq_pop(PyObject *self, PyObject *args);
%native(py_cbq_push) PyObject *mproc_py_cbq_push(PyObject *self, PyObject *args);
%native(py_set_error_map) PyObject *mproc_py_set_error_map(PyObject *self, PyObject *args);
%native(py_error_codes) PyObject *mproc_py_error_codes(PyObject *self, PyObject *args);
