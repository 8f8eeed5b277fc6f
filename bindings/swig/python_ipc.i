/* Python: queues, sync, shared memory, pools' data arenas (included when MPROC_WRAP_IPC);
 * bindings/python/src/ipc.c and arena.c. */

%native(py_shm_create_ex) PyObject *mproc_py_shm_create_ex(PyObject *self, PyObject *args);
%native(py_ptr_of) PyObject *mproc_py_ptr_of(PyObject *self, PyObject *args);
%native(py_value_new) PyObject *mproc_py_value_new(PyObject *self, PyObject *args);
%native(py_array_new) PyObject *mproc_py_array_new(PyObject *self, PyObject *args);
%native(py_sem_acquire) PyObject *mproc_py_sem_acquire(PyObject *self, PyObject *args);
%native(py_cond_wait) PyObject *mproc_py_cond_wait(PyObject *self, PyObject *args);
%native(py_event_wait) PyObject *mproc_py_event_wait(PyObject *self, PyObject *args);
%native(py_barrier_wait) PyObject *mproc_py_barrier_wait(PyObject *self, PyObject *args);
%native(py_queue_put) PyObject *mproc_py_queue_put(PyObject *self, PyObject *args);
%native(py_queue_get) PyObject *mproc_py_queue_get(PyObject *self, PyObject *args);
%native(py_queue_putv) PyObject *mproc_py_queue_putv(PyObject *self, PyObject *args);
%native(py_queue_get_msg) PyObject *mproc_py_queue_get_msg(PyObject *self, PyObject *args);
%native(py_queue_join) PyObject *mproc_py_queue_join(PyObject *self, PyObject *args);
%native(py_conn_poll) PyObject *mproc_py_conn_poll(PyObject *self, PyObject *args);
%native(py_conn_recv_msg) PyObject *mproc_py_conn_recv_msg(PyObject *self, PyObject *args);
%native(py_conn_send_parts) PyObject *mproc_py_conn_send_parts(PyObject *self, PyObject *args);
%native(py_barrier_new) PyObject *mproc_py_barrier_new(PyObject *self, PyObject *args);
%native(py_barrier_attach) PyObject *mproc_py_barrier_attach(PyObject *self, PyObject *args);
%native(py_queue_new) PyObject *mproc_py_queue_new(PyObject *self, PyObject *args);
%native(py_arena_new) PyObject *mproc_py_arena_new(PyObject *self, PyObject *args);
%native(py_arena_open) PyObject *mproc_py_arena_open(PyObject *self, PyObject *args);
