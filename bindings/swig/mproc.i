/* The one SWIG interface of mproc's C ABI, for every target language.
 *
 * Language-neutral part: the public headers are %included as they are, with
 *  - every `int` status return checked: a negative value raises the language's exception carrying
 *    mproc_last_error() (MPROC_OK becomes "no value" so out-parameters become the return value);
 *  - handle out-parameters (`T **out`) and scalar out-parameters returned as values;
 *  - byte buffers `(const void *data, size_t len)` taken from the language's byte strings;
 *  - calls that take C function pointers (task, process body, callbacks) are left to each
 *    language's section, which supplies trampolines into its own interpreter.
 * Language-specific parts live in the marked #ifdef blocks (Python: bindings/swig/python.i; Lua:
 * bindings/swig/lua.i). */
%module(docstring="mproc C ABI (private: import the mproc package)") _mproc

%{
#include <mproc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
%}

%include <stdint.i>
%include <typemaps.i>

/* ---- what no script language calls directly ------------------------------------------------- */
%ignore mproc_task_fail;            /* varargs: trampolines call it themselves */
%ignore mproc_task_return;
%ignore mproc_task_worker;
%ignore mproc_process_new;          /* function pointers: per-language wrappers below */
%ignore mproc_process_start;        /* forks: each language brackets it with its fork hooks */
%ignore mproc_forkserver_start;
%ignore mproc_process_register;     /* function pointers; the spawn guard runs a body in-line */
%ignore mproc_spawn_guard;
%ignore mproc_conn_fds;             /* an int array out: the token of mproc_conn_export has them */
%ignore mproc_pool_new;
%ignore mproc_pool_apply;
%ignore mproc_pool_apply_async;
%ignore mproc_pool_map;
%ignore mproc_pool_map_async;
%ignore mproc_pool_map_fixed;
%ignore mproc_pool_map_fixed_async;
%ignore mproc_pool_imap;
%ignore mproc_pool_imap_lazy;
%ignore mproc_async_wait_any;
%ignore mproc_shm_create_ex;
%ignore mproc_shm_opts;
%ignore mproc_shm_opts_init;
%ignore mproc_pool_stats;
%ignore mproc_async_get;
%ignore mproc_async_item;
%ignore mproc_async_next;
%ignore mproc_active_children;
%ignore mproc_process_opts_init;
%ignore mproc_pool_opts_init;
%ignore mproc_async_opts_init;
%ignore mproc_process_opts;
%ignore mproc_pool_opts;
%ignore mproc_async_opts;
%ignore mproc_worker_stats;
%ignore mproc_queue_opts;
%ignore mproc_queue_opts_init;
%ignore mproc_queue_stats;
%ignore mproc_queue_get;            /* caller-sized buffers: mproc_queue_get_alloc is wrapped */
%ignore mproc_queue_putv;           /* large data: hand-written (Python: py_queue_putv, ...) */
%ignore mproc_queue_part;
%ignore mproc_queue_get_msg;
%ignore mproc_msg_data;
%ignore mproc_msg_size;
%ignore mproc_msg_free;
%ignore mproc_queue_reserve;        /* zero-copy forms: C only */
%ignore mproc_queue_commit;
%ignore mproc_queue_cancel;
%ignore mproc_queue_peek;
%ignore mproc_queue_release;
%ignore mproc_conn_recv_bytes;
%ignore mproc_wait_item;
%ignore mproc_wait;
%ignore mproc_value_opts;
%ignore mproc_value_opts_init;
%ignore mproc_value_new;
%ignore mproc_array_new;
%ignore mproc_value_get;
%ignore mproc_value_set;
%ignore mproc_value_ptr;
%ignore mproc_array_get;
%ignore mproc_array_set;
%ignore mproc_array_read;
%ignore mproc_array_write;
%ignore mproc_array_ptr;
%ignore mproc_shm_ptr;
%ignore mproc_cond_wait_for;
%ignore mproc_barrier_new;
%ignore mproc_barrier_attach;
%ignore MPROC__ERR_END;

/* Scalar out-parameters become return values (SWIG's typemaps.i, available in every language). */
%apply int *OUTPUT { int *out };
%apply int *OUTPUT { int *task_code };
%apply double *OUTPUT { double *out };
%apply int64_t *OUTPUT { int64_t *out };
%apply int64_t *OUTPUT { int64_t *old };
%apply int64_t *INOUT { int64_t *expected };

#ifdef SWIGPYTHON
%include "python.i"
#elif defined(SWIGLUA)
%include "lua.i"
#else
/* Other languages: a negative status raises SWIG's portable runtime error with the detail. */
%include <exception.i>
%typemap(out) int {
  if ($1 < 0) SWIG_exception(SWIG_RuntimeError, mproc_last_error());
  $result = SWIG_From_int($1);
}
#endif

%include "mproc/common.h"
%include "mproc/process.h"
%include "mproc/pool.h"
#ifdef MPROC_WRAP_IPC
%include "mproc/sync.h"
%include "mproc/shm.h"
%include "mproc/queue.h"
#endif
