/* Trampolines that run Python callables in children and workers, the forking calls with their
 * fork hooks, the pool calls that move pickled bytes, the completion queue of pool callbacks, and
 * waiting in slices so that signal handlers run (PEP 475). */

#include "mproc_py.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

/* ---- handles ------------------------------------------------------------------------------- */
int mproc_py_ptr(PyObject *o, void **p, swig_type_info *ty) {
  if (SWIG_ConvertPtr(o, p, ty, 0) < 0 || !*p) {
    PyErr_Format(PyExc_TypeError, "expected a %s handle", ty->str);
    return -1;
  }
  return 0;
}

/* ---- trampolines (run in children) ----------------------------------------------------------
 * A child made by fork of a thread that held the GIL (directly, or through a zygote/forkserver
 * forked by such a thread) re-initialises the interpreter with PyOS_AfterFork_Child before any
 * other Python call. */
PyObject *mproc_py_run_task = NULL;     /* mproc._worker.run_task, in a worker */
pid_t mproc_py_spawned = 0; /* pid of a spawned interpreter (not a fork) in its guard */
static PyThreadState *mproc_py_worker_ts = NULL;

/* Format the pending Python exception as text (traceback included); never fails. */
void mproc_py_exc_text(char *buf, size_t cap) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  snprintf(buf, cap, "unknown Python error");
  PyObject *mod = PyImport_ImportModule("traceback");
  if (mod) {
    PyObject *lines = PyObject_CallMethod(mod, "format_exception", "OOO", type ? type : Py_None,
                                          value ? value : Py_None, tb ? tb : Py_None);
    if (lines) {
      PyObject *empty = PyUnicode_FromString("");
      PyObject *s = empty ? PyUnicode_Join(empty, lines) : NULL;
      const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
      if (u) snprintf(buf, cap, "%s", u);
      Py_XDECREF(s);
      Py_XDECREF(empty);
      Py_DECREF(lines);
    }
    Py_DECREF(mod);
  }
  PyErr_Clear();
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
}

/* A child's Python side: module._child_main(bytes of arg); its int result is the exit code (1
 * when it raised, after printing the error). The GIL is held. */
int mproc_py_child_main(const char *module, const void *arg, size_t len) {
  int code = 1;
  PyObject *mod = PyImport_ImportModule(module);
  PyObject *r = NULL;
  if (mod) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)arg, (Py_ssize_t)len);
    if (b) r = PyObject_CallMethod(mod, "_child_main", "O", b);
    Py_XDECREF(b);
    Py_DECREF(mod);
  }
  if (r) {
    code = (int)PyLong_AsLong(r);
    if (PyErr_Occurred()) code = 1;
    Py_DECREF(r);
  }
  if (PyErr_Occurred()) PyErr_Print();
  return code;
}

/* Process body: arg is what mproc.process packed; the result is the exit code. */
static int mproc_py_process_main(void *arg, size_t len, void *payload) {
  (void)payload;
  PyOS_AfterFork_Child();
  return mproc_py_child_main("mproc.process", arg, len);
}

/* Pool initializer: always installed, so every worker re-initialises the interpreter first,
 * then runs the user's initializer (if any) from the pickled bytes. */
int mproc_py_pool_init(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  if (mproc_py_spawned != getpid()) PyOS_AfterFork_Child();
  PyObject *mod = PyImport_ImportModule("mproc._worker");
  PyObject *r = NULL;
  if (mod) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)(arg ? arg : ""), (Py_ssize_t)len);
    if (b) r = PyObject_CallMethod(mod, "init_worker", "O", b);
    Py_XDECREF(b);
    if (r) mproc_py_run_task = PyObject_GetAttrString(mod, "run_task");
    Py_DECREF(mod);
  }
  if (!r || !mproc_py_run_task) {
    char text[1000];
    mproc_py_exc_text(text, sizeof text);
    return mproc_task_fail(ctx, MPROC_EINITFAILED, "%s", text);
  }
  Py_DECREF(r);
  /* Between tasks the worker waits in C: let its other Python threads (if any) run. */
  mproc_py_worker_ts = PyEval_SaveThread();
  return 0;
}

/* Pool task: run_task(memoryview of the argument) returns the tagged, pickled result. A Python
 * exception (tag 1: its pickled form and traceback text) is the task's failure, given to the
 * caller as the failure's bytes (mproc_task_fail_bytes), so the C pool counts it as failed. */
static int mproc_py_task_run(mproc_task_ctx_t *ctx, const void *arg, size_t len, int fail_bytes) {
  PyEval_RestoreThread(mproc_py_worker_ts);
  int rc = 0;
  PyObject *mv = PyMemoryView_FromMemory((char *)(arg ? arg : ""), (Py_ssize_t)len, PyBUF_READ);
  PyObject *r = mv ? PyObject_CallOneArg(mproc_py_run_task, mv) : NULL;
  Py_XDECREF(mv);
  char *data;
  Py_ssize_t n;
  if (r && PyBytes_AsStringAndSize(r, &data, &n) == 0) {
    if (fail_bytes && n > 0 && data[0] == 1)
      rc = mproc_task_fail_bytes(ctx, MPROC_ETASKFAILED, data, (size_t)n);
    else
      rc = mproc_task_return(ctx, data, (size_t)n);
  } else {
    char text[1000];
    mproc_py_exc_text(text, sizeof text);
    rc = mproc_task_fail(ctx, MPROC_ETASKFAILED, "%s", text);
  }
  Py_XDECREF(r);
  mproc_py_worker_ts = PyEval_SaveThread();
  return rc;
}
int mproc_py_task(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  return mproc_py_task_run(ctx, arg, len, 1);
}
/* The task of a blocking apply: mproc_pool_apply gives back a success's bytes only, so a
 * Python exception (tag 1) is returned as the result; the package decodes both tags. */
int mproc_py_task_apply(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  (void)payload;
  return mproc_py_task_run(ctx, arg, len, 0);
}

/* ---- forking calls ------------------------------------------------------------------------- */
PyObject *mproc_py_process_new(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer arg;
  const char *name = NULL;
  int daemon = 0, method = 0;
  if (!PyArg_ParseTuple(args, "y*zii", &arg, &name, &daemon, &method)) return NULL;
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.name = name;
  o.daemon = daemon;
  o.start_method = method;
  mproc_process_t *p = NULL;
  int rc = mproc_process_new(&p, mproc_py_process_main, arg.buf, (size_t)arg.len, &o);
  PyBuffer_Release(&arg);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(p, mproc_py_type_process);
}

PyObject *mproc_py_process_start(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *p;
  if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
  if (mproc_py_ptr(h, &p, mproc_py_type_process) < 0) return NULL;
  PyOS_BeforeFork();
  int rc = mproc_process_start((mproc_process_t *)p);
  if (rc == MPROC_EPIPE && mproc_forkserver_start() == 0)  /* the helper died: restart, retry */
    rc = mproc_process_start((mproc_process_t *)p);
  PyOS_AfterFork_Parent();
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

PyObject *mproc_py_forkserver_start(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  PyOS_BeforeFork();
  int rc = mproc_forkserver_start();
  PyOS_AfterFork_Parent();
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_NONE;
}

/* pool_new(workers, method, max_tasks_per_child, task_timeout, init_bytes[, backend]) -> pool.
 * backend None or "local": local workers (MPROC_POOL_BACKEND is read by the package, not by the
 * core, for these pools); else a registered backend ("mpi": mproc.mpi), whose workers run the
 * trampolines by their registered names. */
PyObject *mproc_py_pool_new(PyObject *self, PyObject *args) {
  (void)self;
  int workers, method, max_tasks;
  double timeout;
  Py_buffer init;
  const char *backend = NULL;
  if (!PyArg_ParseTuple(args, "iiidy*|z", &workers, &method, &max_tasks, &timeout, &init,
                        &backend))
    return NULL;
  int remote = backend && strcmp(backend, "local") != 0;
  if (remote && mproc_py_spawn_register() < 0) {
    PyBuffer_Release(&init);
    return NULL;
  }
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = workers;
  o.start_method = method;
  o.max_tasks_per_child = max_tasks;
  o.task_timeout = timeout;
  o.initializer = mproc_py_pool_init;
  o.init_arg = init.len ? init.buf : NULL;
  o.init_arg_len = (size_t)init.len;
  o.backend = remote ? backend : "local";
  mproc_pool_t *pool = NULL;
  int rc;
  if (remote) { /* nothing is forked: the dispatcher starts, the workers are told by message */
    Py_BEGIN_ALLOW_THREADS
    rc = mproc_pool_new(&pool, &o);
    Py_END_ALLOW_THREADS
  } else {
    PyOS_BeforeFork();
    rc = mproc_pool_new(&pool, &o);
    if (rc == MPROC_EPIPE && mproc_forkserver_start() == 0)
      rc = mproc_pool_new(&pool, &o);
    PyOS_AfterFork_Parent();
  }
  PyBuffer_Release(&init);
  if (rc < 0) return mproc_py_raise(rc);
  return MPROC_PY_NEWPTR(pool, mproc_py_type_pool);
}

/* ---- completion queue: the dispatcher thread's callbacks, popped by a Python thread -------- */
typedef struct mproc_py_cbnode {
  struct mproc_py_cbq *q;
  long long cookie;
  struct mproc_py_cbnode *next;
} mproc_py_cbnode;
typedef struct mproc_py_cbq {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mproc_py_cbnode *head, *tail;
} mproc_py_cbq;

static void mproc_py_cbq_put(mproc_py_cbq *q, mproc_py_cbnode *n) {
  n->next = NULL;
  pthread_mutex_lock(&q->mu);
  if (q->tail) q->tail->next = n; else q->head = n;
  q->tail = n;
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
}
/* Runs on the pool's dispatcher thread: no Python here. */
static void mproc_py_cbq_fire(mproc_async_t *r, void *payload) {
  (void)r;
  mproc_py_cbnode *n = (mproc_py_cbnode *)payload;
  mproc_py_cbq_put(n->q, n);
}
static void mproc_py_cbq_destroy(PyObject *cap) {
  mproc_py_cbq *q = (mproc_py_cbq *)PyCapsule_GetPointer(cap, "mproc.cbq");
  if (!q) return;
  while (q->head) {
    mproc_py_cbnode *n = q->head;
    q->head = n->next;
    free(n);
  }
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
  free(q);
}
static mproc_py_cbq *mproc_py_cbq_of(PyObject *o) {
  return (mproc_py_cbq *)PyCapsule_GetPointer(o, "mproc.cbq");
}
PyObject *mproc_py_cbq_new(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  mproc_py_cbq *q = (mproc_py_cbq *)calloc(1, sizeof *q);
  if (!q) return PyErr_NoMemory();
  pthread_mutex_init(&q->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cv, &ca);
  pthread_condattr_destroy(&ca);
  return PyCapsule_New(q, "mproc.cbq", mproc_py_cbq_destroy);
}
/* cbq_pop(q, timeout) -> cookie, or None when timeout (< 0: forever) passed first. */
PyObject *mproc_py_cbq_pop(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *cap;
  double timeout;
  if (!PyArg_ParseTuple(args, "Od", &cap, &timeout)) return NULL;
  mproc_py_cbq *q = mproc_py_cbq_of(cap);
  if (!q) return NULL;
  mproc_py_cbnode *n = NULL;
  Py_BEGIN_ALLOW_THREADS
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (timeout >= 0) {
    until.tv_sec += (time_t)timeout;
    until.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&q->mu);
  while (!q->head) {
    if (timeout < 0) {
      pthread_cond_wait(&q->cv, &q->mu);
    } else if (pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  n = q->head;
  if (n) {
    q->head = n->next;
    if (!q->head) q->tail = NULL;
  }
  pthread_mutex_unlock(&q->mu);
  Py_END_ALLOW_THREADS
  if (!n) Py_RETURN_NONE;
  long long cookie = n->cookie;
  free(n);
  return PyLong_FromLongLong(cookie);
}
/* cbq_push(q, cookie): wake the popping thread (used to stop it). */
PyObject *mproc_py_cbq_push(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *cap;
  long long cookie;
  if (!PyArg_ParseTuple(args, "OL", &cap, &cookie)) return NULL;
  mproc_py_cbq *q = mproc_py_cbq_of(cap);
  if (!q) return NULL;
  mproc_py_cbnode *n = (mproc_py_cbnode *)calloc(1, sizeof *n);
  if (!n) return PyErr_NoMemory();
  n->q = q;
  n->cookie = cookie;
  mproc_py_cbq_put(q, n);
  Py_RETURN_NONE;
}

/* Fill async opts; with a queue, a node carrying the cookie is the callbacks' payload. */
static int mproc_py_async_opts(mproc_async_opts_t *o, double timeout, size_t chunksize,
                               PyObject *cbq, long long cookie, mproc_py_cbnode **node) {
  *o = (mproc_async_opts_t)MPROC_ASYNC_OPTS_INIT;
  o->timeout = timeout;
  o->chunksize = chunksize;
  *node = NULL;
  if (cbq && cbq != Py_None) {
    mproc_py_cbq *q = mproc_py_cbq_of(cbq);
    if (!q) return -1;
    mproc_py_cbnode *n = (mproc_py_cbnode *)calloc(1, sizeof *n);
    if (!n) {
      PyErr_NoMemory();
      return -1;
    }
    n->q = q;
    n->cookie = cookie;
    o->callback = mproc_py_cbq_fire;
    o->error_callback = mproc_py_cbq_fire;
    o->cb_payload = n;
    *node = n;
  }
  return 0;
}

/* ---- waiting: in slices, so that signal handlers run (PEP 475) ------------------------------
 * A wait runs without the GIL, and Python's C signal handler only sets a flag that the main
 * thread acts on: a wait in one piece would run the handlers (Ctrl-C's KeyboardInterrupt, an
 * alarm's exception) only when it is over. So every blocking call of the binding waits through
 * mproc_py_wait: slices of MPROC_PY_SLICE seconds, PyErr_CheckSignals() (GIL held) between them;
 * a handler that raises ends the wait with its exception, else the wait goes on with the time
 * left. MPROC_PY_RAISED: a Python exception is set. */

double mproc_py_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One slice of a wait: the blocking call with `slice` seconds as its timeout (0: poll), run
 * without the GIL. It returns `again` (the mproc_py_wait argument) when the slice passed. */

/* Wait with fn (timeout < 0: forever) until it returns anything but `again` or MPROC_EINTR.
 * Returns fn's result, `again` once the timeout passed (after one last poll), or
 * MPROC_PY_RAISED. grow: each slice twice as long as the one before (a streamed queue put that
 * a slice ends half-way is withdrawn, so a long transfer needs a slice as long as itself). */
int mproc_py_wait(mproc_py_slice_fn fn, void *ctx, double timeout, int again, int grow) {
  double until = mproc_py_now() + timeout, len = MPROC_PY_SLICE;
  for (;;) {
    double s = len;
    if (timeout >= 0) {
      double left = until - mproc_py_now();
      if (left < s) s = left > 0 ? left : 0;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fn(ctx, s);
    Py_END_ALLOW_THREADS
    if (rc != again && rc != MPROC_EINTR) return rc;
    if (PyErr_CheckSignals() < 0) return MPROC_PY_RAISED;
    if (timeout >= 0 && mproc_py_now() >= until) return again;
    if (grow) len *= 2;
  }
}

/* True, False (timed out) or NULL (raised) from a wait whose slices end with MPROC_ETIMEDOUT. */
PyObject *mproc_py_waited(int rc) {
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc == 0) Py_RETURN_TRUE;
  if (rc == MPROC_ETIMEDOUT) Py_RETURN_FALSE;
  return mproc_py_raise(rc);
}

static int mproc_py_async_slice(void *r, double s) { return mproc_async_wait((mproc_async_t *)r, s); }
/* Wait for r: 0 when ready, MPROC_EAGAIN when the timeout passed, MPROC_PY_RAISED. */
static int mproc_py_wait_async(mproc_async_t *r, double timeout) {
  return mproc_py_wait(mproc_py_async_slice, r, timeout, MPROC_EAGAIN, 0);
}

/* The bytes of a result: a success's, or those of a Python task's failure (tag 1, made by
 * mproc._worker.encode_error); any other failure raises. */
static PyObject *mproc_py_result(int rc, const void *data, size_t len) {
  if (rc < 0 && !(data && len > 0 && ((const char *)data)[0] == 1)) return mproc_py_raise(rc);
  return PyBytes_FromStringAndSize((const char *)(data ? data : ""), (Py_ssize_t)len);
}

/* ---- progress: the payload of a map's progress callback -----------------------------------
 * The callback runs on the pool's dispatcher thread and only stores two counters, which the
 * waiting Python thread reads between its slices. The pool may call in after the result handle
 * is freed: the Python package keeps the feed (a capsule) until it is quiet. (Python's imap
 * reads its input in the caller's thread and sends it as map jobs: nothing here runs Python.) */
typedef struct mproc_py_feed {
  size_t done, total;      /* atomics: written by the dispatcher, read under the GIL */
} mproc_py_feed;

static void mproc_py_feed_progress(size_t done, size_t total, void *payload) {
  mproc_py_feed *f = (mproc_py_feed *)payload;
  __atomic_store_n(&f->total, total, __ATOMIC_RELAXED);
  __atomic_store_n(&f->done, done, __ATOMIC_RELEASE);
}
static void mproc_py_feed_destroy(PyObject *cap) {
  mproc_py_feed *f = (mproc_py_feed *)PyCapsule_GetPointer(cap, "mproc.feed");
  free(f);
}
static mproc_py_feed *mproc_py_feed_new(PyObject **cap) {
  mproc_py_feed *f = (mproc_py_feed *)calloc(1, sizeof *f);
  if (!f) {
    PyErr_NoMemory();
    return NULL;
  }
  *cap = PyCapsule_New(f, "mproc.feed", mproc_py_feed_destroy);
  if (!*cap) {
    free(f);
    return NULL;
  }
  return f;
}
/* feed_state(feed) -> (done, total, quiet): quiet when the pool will not call the feed again. */
PyObject *mproc_py_feed_state(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *cap;
  if (!PyArg_ParseTuple(args, "O", &cap)) return NULL;
  mproc_py_feed *f = (mproc_py_feed *)PyCapsule_GetPointer(cap, "mproc.feed");
  if (!f) return NULL;
  size_t done = __atomic_load_n(&f->done, __ATOMIC_ACQUIRE);
  size_t total = __atomic_load_n(&f->total, __ATOMIC_RELAXED);
  int quiet = total > 0 && done >= total;
  return Py_BuildValue("(nnO)", (Py_ssize_t)done, (Py_ssize_t)total, quiet ? Py_True : Py_False);
}

/* ---- pool calls ---------------------------------------------------------------------------- */
/* pool_apply(pool, bytes, task_timeout) -> bytes: submit and wait without the GIL. Interrupted
 * (KeyboardInterrupt), the task is canceled. */
PyObject *mproc_py_pool_apply(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  Py_buffer arg;
  double timeout;
  void *pool;
  if (!PyArg_ParseTuple(args, "Oy*d", &h, &arg, &timeout)) return NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0) {
    PyBuffer_Release(&arg);
    return NULL;
  }
  mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
  o.timeout = timeout;
  int rc;
  PyObject *res = NULL;
  mproc_async_t *r = NULL;
  const void *data = NULL;
  size_t len = 0;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_pool_apply_async((mproc_pool_t *)pool, mproc_py_task, arg.buf, (size_t)arg.len, &o, &r);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&arg);
  if (rc == 0) rc = mproc_py_wait_async(r, -1);
  if (rc == MPROC_PY_RAISED) {
    mproc_async_cancel(r);
  } else {
    if (rc == 0) rc = mproc_async_get(r, 0, &data, &len);
    res = mproc_py_result(rc, data, len);
  }
  mproc_async_free(r);
  return res;
}

/* ---- Ctrl-C during a blocking apply ----------------------------------------------------------
 * pool_apply_block runs mproc_pool_apply, whose calling thread does the dispatcher's work (no
 * thread hand-offs: the fast path), in one piece without the GIL. Python's SIGINT handler only
 * sets a flag, so a SIGINT handler of ours, chained in front of it, calls mproc_interrupt() while
 * the main thread waits there: the wait returns MPROC_EINTR and PyErr_CheckSignals() raises
 * KeyboardInterrupt. Outside that wait the handler only passes the signal on, so an interrupt is
 * never left pending for a later wait. The package takes this path only on the main thread
 * with Python's default SIGINT handler in place (any other handler may want the wait to go on:
 * those calls wait in slices, as before). */
static volatile sig_atomic_t mproc_py_apply_waiting = 0;
static struct sigaction mproc_py_sigint_next;   /* the handler ours passes the signal on to */

static void mproc_py_on_sigint(int sig, siginfo_t *info, void *uc) {
  if (mproc_py_apply_waiting) mproc_interrupt();
  const struct sigaction *n = &mproc_py_sigint_next;
  if (n->sa_flags & SA_SIGINFO) {
    if (n->sa_sigaction) n->sa_sigaction(sig, info, uc);
  } else if (n->sa_handler != SIG_DFL && n->sa_handler != SIG_IGN && n->sa_handler) {
    n->sa_handler(sig);
  }
}

/* Put our handler in front of the current SIGINT handler unless it is there already (Python
 * replaces it whenever signal.signal(SIGINT, ...) is called). 1 when in place. */
static int mproc_py_sigint_hook(void) {
  struct sigaction cur;
  if (sigaction(SIGINT, NULL, &cur) < 0) return 0;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == mproc_py_on_sigint) return 1;
  if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
    return 0;
  mproc_py_sigint_next = cur;  /* ours is not installed: nothing reads it now */
  struct sigaction sa = cur;
  sa.sa_sigaction = mproc_py_on_sigint;
  sa.sa_flags = cur.sa_flags | SA_SIGINFO;
  return sigaction(SIGINT, &sa, NULL) == 0;
}

/* pool_apply_block(pool, bytes) -> bytes (tag 0 result or tag 1 Python failure). For the main
 * thread with Python's default SIGINT handler: Ctrl-C raises KeyboardInterrupt (the task goes
 * on in its worker; its result is dropped). */
PyObject *mproc_py_pool_apply_block(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *pool;
  Py_buffer arg;
  if (!PyArg_ParseTuple(args, "Oy*", &h, &arg)) return NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0) {
    PyBuffer_Release(&arg);
    return NULL;
  }
  mproc_py_sigint_hook();
  void *out = NULL;
  size_t len = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  mproc_py_apply_waiting = 1;
  rc = mproc_pool_apply((mproc_pool_t *)pool, mproc_py_task_apply, arg.buf, (size_t)arg.len,
                        &out, &len);
  mproc_py_apply_waiting = 0;
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&arg);
  if (rc == MPROC_EINTR) {
    if (PyErr_CheckSignals() < 0) return NULL;
    PyErr_SetNone(PyExc_KeyboardInterrupt);  /* the interrupt came from a Ctrl-C all the same */
    return NULL;
  }
  if (rc < 0) return mproc_py_raise(rc);
  PyObject *res = PyBytes_FromStringAndSize((const char *)(out ? out : ""), (Py_ssize_t)len);
  free(out);
  return res;
}

/* pool_apply_async(pool, bytes, task_timeout, cbq|None, cookie) -> async */
PyObject *mproc_py_pool_apply_async(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h, *cbq;
  Py_buffer arg;
  double timeout;
  long long cookie;
  void *pool;
  if (!PyArg_ParseTuple(args, "Oy*dOL", &h, &arg, &timeout, &cbq, &cookie)) return NULL;
  mproc_async_opts_t o;
  mproc_py_cbnode *node = NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0 ||
      mproc_py_async_opts(&o, timeout, 0, cbq, cookie, &node) < 0) {
    PyBuffer_Release(&arg);
    return NULL;
  }
  mproc_async_t *r = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = mproc_pool_apply_async((mproc_pool_t *)pool, mproc_py_task, arg.buf, (size_t)arg.len, &o, &r);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&arg);
  if (rc < 0) {
    free(node);
    return mproc_py_raise(rc);
  }
  return MPROC_PY_NEWPTR(r, mproc_py_type_async);
}

/* pool_map_async(pool, [bytes], chunksize, task_timeout, mode, cbq|None, cookie, progress)
 *   -> (async, feed|None)
 * mode: 0 map, 1 imap (ordered), 2 imap_unordered. progress: make a feed whose counters
 * (feed_state) follow the map. */
PyObject *mproc_py_pool_map_async(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h, *items, *cbq;
  Py_ssize_t chunksize;
  double timeout;
  int mode, progress;
  long long cookie;
  void *pool;
  if (!PyArg_ParseTuple(args, "OO!ndiOLp", &h, &PyList_Type, &items, &chunksize, &timeout, &mode,
                        &cbq, &cookie, &progress))
    return NULL;
  if (chunksize < 0) {
    PyErr_SetString(PyExc_ValueError, "chunksize must be positive");
    return NULL;
  }
  mproc_async_opts_t o;
  mproc_py_cbnode *node = NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0 ||
      mproc_py_async_opts(&o, timeout, (size_t)chunksize, cbq, cookie, &node) < 0)
    return NULL;
  PyObject *cap = NULL;
  if (progress) {
    mproc_py_feed *f = mproc_py_feed_new(&cap);
    if (!f) {
      free(node);
      return NULL;
    }
    o.progress = mproc_py_feed_progress;
    o.progress_payload = f;
  }
  Py_ssize_t n = PyList_GET_SIZE(items);
  const void **ptrs = (const void **)malloc(sizeof(void *) * (size_t)(n ? n : 1));
  size_t *lens = (size_t *)malloc(sizeof(size_t) * (size_t)(n ? n : 1));
  if (!ptrs || !lens) {
    free(ptrs);
    free(lens);
    free(node);
    Py_XDECREF(cap);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *it = PyList_GET_ITEM(items, i);
    if (!PyBytes_Check(it)) {
      free(ptrs);
      free(lens);
      free(node);
      Py_XDECREF(cap);
      PyErr_SetString(PyExc_TypeError, "map items must be bytes");
      return NULL;
    }
    ptrs[i] = PyBytes_AS_STRING(it);
    lens[i] = (size_t)PyBytes_GET_SIZE(it);
  }
  mproc_async_t *r = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS  /* items stay alive: the caller holds the list */
  if (mode == 0) {
    rc = mproc_pool_map_async((mproc_pool_t *)pool, mproc_py_task, ptrs, lens, (size_t)n, &o, &r);
  } else {
    rc = mproc_pool_imap((mproc_pool_t *)pool, mproc_py_task, ptrs, lens, (size_t)n, mode == 1, &o, &r);
  }
  Py_END_ALLOW_THREADS
  free(ptrs);
  free(lens);
  if (rc < 0) {
    free(node);
    Py_XDECREF(cap);
    return mproc_py_raise(rc);
  }
  PyObject *hr = MPROC_PY_NEWPTR(r, mproc_py_type_async);
  if (!cap) {
    Py_INCREF(Py_None);
    cap = Py_None;
  }
  return Py_BuildValue("(NN)", hr, cap);
}

/* async_wait(r, timeout) -> bool ready (timeout < 0: forever); Ctrl-C raises. */
PyObject *mproc_py_async_wait(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *r;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &r, mproc_py_type_async) < 0) return NULL;
  int rc = mproc_py_wait_async((mproc_async_t *)r, timeout);
  if (rc == MPROC_PY_RAISED) return NULL;
  if (rc == MPROC_EAGAIN) Py_RETURN_FALSE;
  if (rc < 0) return mproc_py_raise(rc);
  Py_RETURN_TRUE;
}

/* async_get(r, timeout) -> bytes (an apply's result or Python failure; b"" for a map) */
PyObject *mproc_py_async_get(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *r;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &r, mproc_py_type_async) < 0) return NULL;
  int rc = timeout == 0 ? 0 : mproc_py_wait_async((mproc_async_t *)r, timeout);
  if (rc == MPROC_PY_RAISED) return NULL;
  const void *data = NULL;
  size_t len = 0;
  if (rc == 0) rc = mproc_async_get((mproc_async_t *)r, 0, &data, &len);
  return mproc_py_result(rc, data, len);
}

/* async_items(r) -> [bytes | (code, message)] for a ready map. */
PyObject *mproc_py_async_items(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *r;
  if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
  if (mproc_py_ptr(h, &r, mproc_py_type_async) < 0) return NULL;
  size_t n = mproc_async_count((mproc_async_t *)r);
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (!list) return NULL;
  for (size_t i = 0; i < n; i++) {
    const void *data = NULL;
    size_t len = 0;
    int rc = mproc_async_item((mproc_async_t *)r, i, &data, &len);
    PyObject *it;
    if (rc < 0 && !(data && len > 0 && ((const char *)data)[0] == 1))
      it = Py_BuildValue("(is)", rc, mproc_last_error());
    else
      it = PyBytes_FromStringAndSize((const char *)(data ? data : ""), (Py_ssize_t)len);
    if (!it) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, it);
  }
  return list;
}

typedef struct {
  mproc_async_t *r;
  size_t index;
  const void *data;
  size_t len;
} mproc_py_next_ctx;
static int mproc_py_next_slice(void *ctx, double s) {
  mproc_py_next_ctx *c = (mproc_py_next_ctx *)ctx;
  return mproc_async_next(c->r, s, &c->index, &c->data, &c->len);
}

/* async_next(r, timeout[, numbers]) -> (index, bytes); raises for a failed item (other than a
 * Python exception: its bytes come), EITEREND at the end, EAGAIN on timeout; Ctrl-C raises.
 * With numbers true, an item of packed numbers or strings (tag 3, then the format byte:
 * _worker.run_task) comes as their list, made straight from the result's memory (no bytes copy
 * in between). */
PyObject *mproc_py_async_next(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  int numbers = 0;
  void *r;
  if (!PyArg_ParseTuple(args, "Od|p", &h, &timeout, &numbers)) return NULL;
  if (mproc_py_ptr(h, &r, mproc_py_type_async) < 0) return NULL;
  mproc_py_next_ctx c = {(mproc_async_t *)r, 0, NULL, 0};
  int rc = mproc_py_wait(mproc_py_next_slice, &c, timeout, MPROC_EAGAIN, 0);
  if (rc == MPROC_PY_RAISED) return NULL;
  const void *data = c.data;
  size_t len = c.len, index = c.index;
  const char *d = (const char *)data;
  PyObject *b;
  if (numbers && rc == 0 && len >= 2 && d[0] == 3)
    b = mproc_py_unpacked_at(d + 1, len - 1);
  else
    b = mproc_py_result(rc, data, len);
  if (!b) return NULL;
  return Py_BuildValue("(nN)", (Py_ssize_t)index, b);
}

/* pool_join(pool, timeout) -> bool joined (timeout < 0: forever); Ctrl-C raises. */
static int mproc_py_join_slice(void *pool, double s) {
  return mproc_pool_join((mproc_pool_t *)pool, s);
}
PyObject *mproc_py_pool_join(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *pool;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0) return NULL;
  return mproc_py_waited(mproc_py_wait(mproc_py_join_slice, pool, timeout, MPROC_ETIMEDOUT, 0));
}

/* process_join(process, timeout) -> True (ended) / False (timed out). */
static int mproc_py_process_slice(void *p, double s) {
  return mproc_process_join((mproc_process_t *)p, s);
}
PyObject *mproc_py_process_join(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  double timeout;
  void *p;
  if (!PyArg_ParseTuple(args, "Od", &h, &timeout)) return NULL;
  if (mproc_py_ptr(h, &p, mproc_py_type_process) < 0) return NULL;
  return mproc_py_waited(mproc_py_wait(mproc_py_process_slice, p, timeout, MPROC_ETIMEDOUT, 0));
}

/* pool_stats(pool) -> [(pid, tasks, busy_seconds, restarts, last_exit)] */
PyObject *mproc_py_pool_stats(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *h;
  void *pool;
  if (!PyArg_ParseTuple(args, "O", &h)) return NULL;
  if (mproc_py_ptr(h, &pool, mproc_py_type_pool) < 0) return NULL;
  int n = mproc_pool_workers((mproc_pool_t *)pool);
  if (n < 0) return mproc_py_raise(n);
  mproc_worker_stats_t *st = (mproc_worker_stats_t *)calloc((size_t)(n ? n : 1), sizeof *st);
  if (!st) return PyErr_NoMemory();
  int got;
  Py_BEGIN_ALLOW_THREADS
  got = mproc_pool_stats((mproc_pool_t *)pool, st, (size_t)n);
  Py_END_ALLOW_THREADS
  if (got < 0) {
    free(st);
    return mproc_py_raise(got);
  }
  if (got > n) got = n;
  PyObject *list = PyList_New(got);
  for (int i = 0; list && i < got; i++) {
    PyObject *t = Py_BuildValue("(iKdii)", st[i].pid, st[i].tasks, st[i].busy_seconds,
                                st[i].restarts, st[i].last_exit);
    if (!t) {
      Py_CLEAR(list);
      break;
    }
    PyList_SET_ITEM(list, i, t);
  }
  free(st);
  return list;
}


/* error_codes() -> {"MPROC_EINVAL": -22, ...} from the one error table. */
PyObject *mproc_py_error_codes(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  PyObject *d = PyDict_New();
#define MPROC_PY_ERR(name, value, msg)                                   \
  if (d) {                                                               \
    PyObject *v = PyLong_FromLong(value);                                \
    if (!v || PyDict_SetItemString(d, "MPROC_" #name, v) < 0) Py_CLEAR(d); \
    Py_XDECREF(v);                                                       \
  }
  MPROC_ERRNO_MAP(MPROC_PY_ERR)
#undef MPROC_PY_ERR
  return d;
}
