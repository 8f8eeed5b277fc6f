// C ABI: pools and async results. Thin shims over pool/pool.cpp.
#include <mproc/queue.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/interrupt.hpp"
#include "base/names.hpp"
#include "capi/capi.hpp"
#include "pool/pool.hpp"
#include "proc/runtime.hpp"

using mproc::fail;
using mproc::HandleKind;
using mproc::Job;

namespace {
constexpr size_t kBulkMinBytes = 64 << 10;

int check_pool(const mproc_pool_t *p) {
  if (!p) return fail(MPROC_EINVAL, "pool is NULL");
  if (!mproc::handle_valid(p, HandleKind::kPool))
    return fail(MPROC_EBADF, "not a live pool handle (freed or never made)");
  if (p->owner_pid != mproc::current_pid())
    return fail(MPROC_EWRONGPROC, "the pool belongs to process %d", p->owner_pid);
  return 0;
}

int check_async(const mproc_async_t *r) {
  if (!r) return fail(MPROC_EINVAL, "result handle is NULL");
  if (!mproc::handle_valid(r, HandleKind::kOther))
    return fail(MPROC_EBADF, "not a live result handle (freed or never made)");
  return 0;
}

int read_async_opts(const mproc_async_opts_t *opts, mproc_async_opts_t *o) {
  *o = mproc_async_opts_t MPROC_ASYNC_OPTS_INIT;
  if (int rc = mproc::read_opts(opts, sizeof(size_t), "mproc_async_opts_t", o)) return rc;
  if (!(o->timeout >= 0)) return fail(MPROC_EINVAL, "task timeout %g is negative or NaN", o->timeout);
  return 0;
}

// A backend's or spawned pool runs functions by registered name; a backend cannot kill a worker
// for a timeout.
int check_remote(const mproc_pool_t *pool, const void *fn, const mproc_async_opts_t &o) {
  if (!pool->pool->remote() && !pool->pool->spawned()) return 0;
  if (!mproc::fn_name(reinterpret_cast<uintptr_t>(fn)))
    return fail(MPROC_EINVAL, "the function is not registered (mproc_task_register or "
                              "mproc_elem_register): the '%s' %s runs functions by name",
                pool->pool->backend(), pool->pool->remote() ? "backend" : "pool's spawned worker");
  if (!pool->pool->remote()) return 0;
  if (o.timeout > 0)
    return fail(MPROC_ENOSYS, "task timeouts need workers the pool can kill and replace: not on "
                              "the '%s' backend", pool->pool->backend());
  return 0;
}

size_t default_chunksize(size_t n, int workers) {
  size_t d = 4 * static_cast<size_t>(workers > 0 ? workers : 1);
  size_t c = (n + d - 1) / d;
  return c ? c : 1;
}

std::shared_ptr<Job> new_job(mproc::Pool &pool, Job::Kind kind, size_t n, size_t chunksize,
                             const mproc_async_opts_t &o) {
  auto job = std::make_shared<Job>();
  job->kind = kind;
  job->chunksize = chunksize ? chunksize : default_chunksize(n, pool.nworkers());
  for (size_t first = 0; first < n; first += job->chunksize)
    job->add_chunk(n - first < job->chunksize ? n - first : job->chunksize);
  job->timeout = o.timeout;
  job->cb = o.callback;
  job->ecb = o.error_callback;
  job->cb_payload = o.cb_payload;
  job->progress = o.progress;
  job->progress_payload = o.progress_payload;
  return job;
}

// Make the handle (when out is not NULL), then submit; an empty job is ready at once. With
// wait, the calling thread waits, helping the dispatcher (blocking apply and maps).
int submit(mproc_pool_t *pool, const std::shared_ptr<Job> &job, mproc_async_t **out,
           bool wait = false) {
  std::unique_ptr<mproc_async> h;
  if (out) {
    h = std::make_unique<mproc_async>();
    h->job = job;
    job->handle = h.get();
  }
  job->owner = pool;
  int rc = 0;
  if (job->nchunks == 0 && !job->lazy) {
    if (pool->pool->closed()) return fail(MPROC_ECLOSED, "the pool is closed or terminated");
    job->ready = true;
  } else if (wait) {
    rc = pool->pool->submit_and_wait(job);
    if (rc < 0 && rc != MPROC_EINTR) return rc;  // refused: no handle
  } else if (int src = pool->pool->submit(job)) {
    return src;
  }
  if (h) {
    mproc::handle_register(h.get(), HandleKind::kOther);
    *out = h.release();
  }
  return rc == MPROC_EINTR ? fail(MPROC_EINTR, "interrupted") : 0;
}

int fixed_job(mproc_pool_t *pool, mproc_elem_fn fn, const void *in, size_t in_size, void *out,
              size_t out_size, size_t n, const mproc_async_opts_t &o, std::shared_ptr<Job> *job_out) {
  if (!fn) return fail(MPROC_EINVAL, "element function is NULL");
  if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
  if (n > 0 && (!in || !out)) return fail(MPROC_EINVAL, "in or out is NULL with n = %zu", n);
  if (in_size == 0 || out_size == 0 || in_size > (1u << 30) || out_size > (1u << 30))
    return fail(MPROC_EINVAL, "element sizes must be 1 byte .. 1 GiB (in %zu, out %zu)",
                in_size, out_size);
  auto job = new_job(*pool->pool, Job::Kind::kFixed, n, o.chunksize, o);
  job->efn = fn;
  job->in = static_cast<const char *>(in);
  job->out = static_cast<char *>(out);
  job->in_size = in_size;
  job->out_size = out_size;
  // Large maps share their arrays with the workers through a segment: each element is copied
  // once in (here) and once out (as chunks complete) instead of through the rings.
  size_t bytes = n * (in_size + out_size);
  if (n > 0 && bytes >= kBulkMinBytes && !pool->pool->remote()) {
    if (int rc = pool->pool->bulk_segment(bytes, &job->bulk, &job->bulk_id)) return rc;
    memcpy(job->bulk->data(), in, n * in_size);
  }
  *job_out = std::move(job);
  return 0;
}

int var_job(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args, const size_t *lens,
            size_t n, size_t chunksize, const mproc_async_opts_t &o, std::shared_ptr<Job> *out) {
  if (!fn) return fail(MPROC_EINVAL, "task function is NULL");
  if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
  if (n > 0 && (!args || !lens)) return fail(MPROC_EINVAL, "args or lens is NULL with n = %zu", n);
  auto job = new_job(*pool->pool, Job::Kind::kVar, n, chunksize, o);
  job->fn = fn;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!args[i] && lens[i]) return fail(MPROC_EINVAL, "args[%zu] is NULL with length %zu", i, lens[i]);
    if (lens[i] > MPROC_QUEUE_MSG_MAX - total)
      return fail(MPROC_EMSGSIZE, "the arguments add up to more than %zu bytes (args[%zu] is %zu)",
                  static_cast<size_t>(MPROC_QUEUE_MSG_MAX), i, lens[i]);
    total += lens[i];
  }
  job->args.resize(total);
  job->arg_off.resize(n + 1);
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    job->arg_off[i] = at;
    if (lens[i]) memcpy(job->args.data() + at, args[i], lens[i]);
    at += lens[i];
  }
  job->arg_off[n] = at;
  *out = std::move(job);
  return 0;
}

int result_code(const Job &job) {
  if (job.err == 0) return 0;
  return fail(job.err, "%s%s", job.err == MPROC_ETASKFAILED ? "task failed: " : "",
              job.err_msg.c_str());
}
}  // namespace

extern "C" {

MPROC_API int mproc_task_return(mproc_task_ctx_t *ctx, const void *data, size_t len) {
  return MPROC_GUARD({
    if (!ctx) return fail(MPROC_EINVAL, "task context is NULL");
    if (!data && len) return fail(MPROC_EINVAL, "data is NULL with length %zu", len);
    if (len > MPROC_QUEUE_MSG_MAX)
      return fail(MPROC_EMSGSIZE, "a result of %zu bytes is over the limit of %zu bytes", len,
                  static_cast<size_t>(MPROC_QUEUE_MSG_MAX));
    ctx->out->resize(ctx->item_start);
    if (len) ctx->out->insert(ctx->out->end(), static_cast<const char *>(data),
                              static_cast<const char *>(data) + len);
    return 0;
  });
}

MPROC_API int mproc_task_fail(mproc_task_ctx_t *ctx, int code, const char *fmt, ...) {
  if (code == 0) code = MPROC_ETASKFAILED;
  if (!ctx) return code;
  ctx->msg.clear();
  if (fmt) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
      ctx->msg.resize(static_cast<size_t>(n) + 1);
      vsnprintf(&ctx->msg[0], ctx->msg.size(), fmt, ap2);
      ctx->msg.resize(static_cast<size_t>(n));
    }
    va_end(ap2);
  }
  return code;
}

MPROC_API int mproc_task_fail_bytes(mproc_task_ctx_t *ctx, int code, const void *data, size_t len) {
  if (code == 0) code = MPROC_ETASKFAILED;
  if (!ctx || (!data && len)) return code;
  ctx->msg.assign(static_cast<const char *>(data), len);
  return code;
}

MPROC_API int mproc_task_worker(const mproc_task_ctx_t *ctx) {
  return MPROC_GUARD({ return ctx ? ctx->worker : fail(MPROC_EINVAL, "task context is NULL"); });
}

MPROC_API int mproc_task_register(const char *name, mproc_task_fn fn) {
  return MPROC_GUARD(
      { return mproc::register_fn(name, mproc::FnKind::kTask, reinterpret_cast<uintptr_t>(fn)); });
}

MPROC_API int mproc_elem_register(const char *name, mproc_elem_fn fn) {
  return MPROC_GUARD(
      { return mproc::register_fn(name, mproc::FnKind::kElem, reinterpret_cast<uintptr_t>(fn)); });
}

MPROC_API int mproc_init_register(const char *name, mproc_init_fn fn) {
  return MPROC_GUARD(
      { return mproc::register_fn(name, mproc::FnKind::kInit, reinterpret_cast<uintptr_t>(fn)); });
}

MPROC_API const char *mproc_task_name(const void *fn) {
  return fn ? mproc::fn_name(reinterpret_cast<uintptr_t>(fn)) : nullptr;
}

MPROC_API int mproc_backend_register(const mproc_transport_t *t) {
  return MPROC_GUARD({
    if (!t) return fail(MPROC_EINVAL, "transport is NULL");
    return mproc::backend_register(*t);
  });
}

MPROC_API int mproc_backend_unregister(const char *name) {
  return MPROC_GUARD({
    if (!name) return fail(MPROC_EINVAL, "name is NULL");
    return mproc::backend_unregister(name);
  });
}

MPROC_API int mproc_backend_serve(const mproc_transport_t *t, int worker, void *payload) {
  return MPROC_GUARD({
    if (!t) return fail(MPROC_EINVAL, "transport is NULL");
    return mproc::backend_serve(*t, worker, payload);
  });
}

MPROC_API int mproc_pool_opts_init(mproc_pool_opts_t *opts) {
  if (!opts) return mproc::api_result(__func__, fail(MPROC_EINVAL, "opts is NULL"));
  *opts = mproc_pool_opts_t MPROC_POOL_OPTS_INIT;
  return 0;
}

MPROC_API int mproc_async_opts_init(mproc_async_opts_t *opts) {
  if (!opts) return mproc::api_result(__func__, fail(MPROC_EINVAL, "opts is NULL"));
  *opts = mproc_async_opts_t MPROC_ASYNC_OPTS_INIT;
  return 0;
}

MPROC_API int mproc_pool_new(mproc_pool_t **out, const mproc_pool_opts_t *opts) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
    if (int rc = mproc::read_opts(opts, offsetof(mproc_pool_opts_t, ring_bytes) + sizeof(size_t),
                                  "mproc_pool_opts_t", &o))
      return rc;
    if (o.workers < 0 || o.workers > 4096)
      return fail(MPROC_EINVAL, "workers must be 0 (cpu count) or 1..4096, not %d", o.workers);
    if (o.max_tasks_per_child < 0)
      return fail(MPROC_EINVAL, "negative max_tasks_per_child %d", o.max_tasks_per_child);
    if (!(o.task_timeout >= 0))
      return fail(MPROC_EINVAL, "task timeout %g is negative or NaN", o.task_timeout);
    if (!o.init_arg && o.init_arg_len) return fail(MPROC_EINVAL, "init_arg is NULL with a length");
    if (o.start_method < 0 || o.start_method > MPROC_START_SPAWN)
      return fail(MPROC_EINVAL, "unknown start method %d", o.start_method);
    if (o.argv && o.start_method != MPROC_START_SPAWN)
      return fail(MPROC_EINVAL, "argv is for the spawn start method only");
    if (o.ring_bytes > (size_t(1) << 30)) return fail(MPROC_EINVAL, "ring_bytes over 1 GiB");
    auto h = std::make_unique<mproc_pool>();
    h->owner_pid = getpid();
    h->pool = std::make_unique<mproc::Pool>();
    if (int rc = h->pool->start(o)) return rc;
    mproc::handle_register(h.get(), HandleKind::kPool);
    *out = h.release();
    return 0;
  });
}

MPROC_API int mproc_pool_workers(const mproc_pool_t *pool) {
  return MPROC_GUARD({
    if (int rc = check_pool(pool)) return rc;
    return pool->pool->nworkers();
  });
}

MPROC_API int mproc_pool_apply_async(mproc_pool_t *pool, mproc_task_fn fn, const void *arg,
                                     size_t len, const mproc_async_opts_t *opts,
                                     mproc_async_t **out) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_pool(pool)) return rc;
    if (!arg && len) return fail(MPROC_EINVAL, "arg is NULL with length %zu", len);
    mproc_async_opts_t o;
    if (int rc = read_async_opts(opts, &o)) return rc;
    const void *args[1] = {arg};
    size_t lens[1] = {len};
    std::shared_ptr<Job> job;
    if (int rc = var_job(pool, fn, args, lens, 1, 1, o, &job)) return rc;
    job->apply = true;
    return submit(pool, job, out);
  });
}

MPROC_API int mproc_pool_apply(mproc_pool_t *pool, mproc_task_fn fn, const void *arg, size_t len,
                               void **out, size_t *out_len) {
  return MPROC_GUARD({
    if (out) *out = nullptr;
    if (out_len) *out_len = 0;
    if (int rc = check_pool(pool)) return rc;
    if (!arg && len) return fail(MPROC_EINVAL, "arg is NULL with length %zu", len);
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    const void *args[1] = {arg};
    size_t lens[1] = {len};
    std::shared_ptr<Job> job;
    if (int rc = var_job(pool, fn, args, lens, 1, 1, o, &job)) return rc;
    job->apply = true;
    if (int rc = submit(pool, job, nullptr, true)) return rc;
    if (int rc = result_code(*job)) return rc;
    const auto &v = job->item(0).value;
    if (out) {
      void *copy = malloc(v.size() ? v.size() : 1);
      if (!copy) return fail(MPROC_ENOMEM, "out of memory for a %zu-byte result", v.size());
      if (!v.empty()) memcpy(copy, v.data(), v.size());
      *out = copy;
    }
    if (out_len) *out_len = v.size();
    return 0;
  });
}

MPROC_API int mproc_pool_map_async(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                                   const size_t *lens, size_t n, const mproc_async_opts_t *opts,
                                   mproc_async_t **out) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_pool(pool)) return rc;
    mproc_async_opts_t o;
    if (int rc = read_async_opts(opts, &o)) return rc;
    std::shared_ptr<Job> job;
    if (int rc = var_job(pool, fn, args, lens, n, o.chunksize, o, &job)) return rc;
    return submit(pool, job, out);
  });
}

MPROC_API int mproc_pool_map(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                             const size_t *lens, size_t n, size_t chunksize, mproc_async_t **out) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_pool(pool)) return rc;
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    o.chunksize = chunksize;
    std::shared_ptr<Job> job;
    if (int rc = var_job(pool, fn, args, lens, n, o.chunksize, o, &job)) return rc;
    if (int rc = submit(pool, job, out, true)) return rc;
    return result_code(*job);
  });
}

MPROC_API int mproc_pool_map_fixed_async(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                         size_t in_size, void *out, size_t out_size, size_t n,
                                         const mproc_async_opts_t *opts, mproc_async_t **out_r) {
  return MPROC_GUARD({
    if (!out_r) return fail(MPROC_EINVAL, "out_r is NULL");
    *out_r = nullptr;
    if (int rc = check_pool(pool)) return rc;
    mproc_async_opts_t o;
    if (int rc = read_async_opts(opts, &o)) return rc;
    std::shared_ptr<Job> job;
    if (int rc = fixed_job(pool, fn, in, in_size, out, out_size, n, o, &job)) return rc;
    return submit(pool, job, out_r);
  });
}

MPROC_API int mproc_pool_map_fixed(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                   size_t in_size, void *out, size_t out_size, size_t n,
                                   size_t chunksize, size_t *failed_index) {
  return MPROC_GUARD({
    if (failed_index) *failed_index = SIZE_MAX;
    if (int rc = check_pool(pool)) return rc;
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    o.chunksize = chunksize;
    std::shared_ptr<Job> job;
    if (int rc = fixed_job(pool, fn, in, in_size, out, out_size, n, o, &job)) return rc;
    if (int rc = submit(pool, job, nullptr, true)) return rc;
    if (failed_index && job->err) *failed_index = job->err_index;
    return result_code(*job);
  });
}

MPROC_API int mproc_pool_imap(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                              const size_t *lens, size_t n, int ordered,
                              const mproc_async_opts_t *opts, mproc_async_t **out) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_pool(pool)) return rc;
    mproc_async_opts_t o;
    if (int rc = read_async_opts(opts, &o)) return rc;
    std::shared_ptr<Job> job;
    // imap's default chunk is 1, as Python's.
    if (int rc = var_job(pool, fn, args, lens, n, o.chunksize ? o.chunksize : 1, o, &job)) return rc;
    job->iter = ordered ? Job::Iter::kOrdered : Job::Iter::kUnordered;
    return submit(pool, job, out);
  });
}

MPROC_API int mproc_pool_imap_lazy(mproc_pool_t *pool, mproc_task_fn fn, mproc_next_fn next,
                                   void *next_payload, int ordered, size_t max_inflight,
                                   const mproc_async_opts_t *opts, mproc_async_t **out) {
  return MPROC_GUARD({
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_pool(pool)) return rc;
    if (!fn) return fail(MPROC_EINVAL, "task function is NULL");
    if (!next) return fail(MPROC_EINVAL, "input callback is NULL");
    mproc_async_opts_t o;
    if (int rc = read_async_opts(opts, &o)) return rc;
    if (int rc = check_remote(pool, reinterpret_cast<const void *>(fn), o)) return rc;
    auto job = new_job(*pool->pool, Job::Kind::kVar, 0, o.chunksize ? o.chunksize : 1, o);
    job->fn = fn;
    job->iter = ordered ? Job::Iter::kOrdered : Job::Iter::kUnordered;
    job->lazy = true;
    job->source_done = false;
    job->next_fn = next;
    job->next_payload = next_payload;
    job->bound = max_inflight ? max_inflight
                              : 4 * static_cast<size_t>(pool->pool->nworkers()) * job->chunksize;
    if (job->bound < job->chunksize) job->bound = job->chunksize;
    return submit(pool, job, out);
  });
}

MPROC_API int mproc_pool_close(mproc_pool_t *pool) {
  return MPROC_GUARD({
    if (int rc = check_pool(pool)) return rc;
    return pool->pool->close();
  });
}

MPROC_API int mproc_pool_terminate(mproc_pool_t *pool) {
  return MPROC_GUARD({
    if (int rc = check_pool(pool)) return rc;
    return pool->pool->terminate();
  });
}

MPROC_API int mproc_pool_join(mproc_pool_t *pool, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_pool(pool)) return rc;
    return pool->pool->join(timeout, true);
  });
}

MPROC_API int mproc_pool_free(mproc_pool_t *pool) {
  return MPROC_GUARD({
    if (!pool) return 0;
    if (int rc = check_pool(pool)) return rc;
    mproc::handle_unregister(pool);
    pool->pool->terminate();
    pool->pool->join(-1);
    delete pool;
    return 0;
  });
}

MPROC_API int mproc_pool_stats(const mproc_pool_t *pool, mproc_worker_stats_t *out, size_t cap) {
  return MPROC_GUARD({
    if (int rc = check_pool(pool)) return rc;
    if (!out && cap) return fail(MPROC_EINVAL, "out is NULL with cap %zu", cap);
    return pool->pool->stats(out, cap);
  });
}

MPROC_API int mproc_async_get(mproc_async_t *r, double timeout, const void **data, size_t *len) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = check_async(r)) return rc;
    Job &job = *r->job;
    int w = job.wait(timeout);
    if (w == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (w != 0) return fail(MPROC_EAGAIN, "result not ready after %g s", timeout);
    int rc = result_code(job);
    if (job.apply && job.kind == Job::Kind::kVar) {
      const auto &v = job.item(0).value;
      if (data) *data = v.empty() ? nullptr : v.data();
      if (len) *len = v.size();
    }
    return rc;
  });
}

MPROC_API int mproc_async_wait(mproc_async_t *r, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_async(r)) return rc;
    int w = r->job->wait(timeout);
    if (w == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (w != 0) return fail(MPROC_EAGAIN, "result not ready after %g s", timeout);
    return 0;
  });
}

MPROC_API int mproc_async_wait_any(mproc_async_t *const *rs, size_t n, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (!rs || n == 0) return fail(MPROC_EINVAL, "no results to wait for");
    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i = 0; i < n; i++) {
      if (int rc = check_async(rs[i])) return fail(rc, "rs[%zu]: %s", i, mproc::last_error_text());
      jobs.push_back(rs[i]->job);
    }
    int found = -1;
    auto any = [&] {
      for (size_t i = 0; i < jobs.size(); i++)
        if (jobs[i]->ready.load()) {
          found = static_cast<int>(i);
          return true;
        }
      return false;
    };
    int rc = mproc::wait_any_ready(any, timeout);
    if (rc == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (rc != 0) return fail(MPROC_EAGAIN, "none ready after %g s", timeout);
    return found;
  });
}

MPROC_API int mproc_async_ready(const mproc_async_t *r) {
  return MPROC_GUARD({
    if (int rc = check_async(r)) return rc;
    return r->job->ready.load() ? 1 : 0;
  });
}

MPROC_API int mproc_async_successful(const mproc_async_t *r) {
  return MPROC_GUARD({
    if (int rc = check_async(r)) return rc;
    if (!r->job->ready.load()) return fail(MPROC_EAGAIN, "result is not ready");
    return r->job->err == 0 ? 1 : 0;
  });
}

MPROC_API size_t mproc_async_count(const mproc_async_t *r) {
  size_t n = 0;
  MPROC_GUARD({
    if (int rc = check_async(r)) return rc;
    n = r->job->n;
    return 0;
  });
  return n;
}

MPROC_API int mproc_async_item(const mproc_async_t *r, size_t i, const void **data, size_t *len) {
  return MPROC_GUARD({
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = check_async(r)) return rc;
    Job &job = *r->job;
    if (i >= job.n) return fail(MPROC_ERANGE, "item %zu of %zu", i, job.n);
    if (!job.ready.load()) return fail(MPROC_EAGAIN, "result is not ready");
    if (job.kind == Job::Kind::kFixed) {
      if (job.err && i == job.err_index) return fail(job.err, "%s", job.err_msg.c_str());
      return 0;
    }
    if (job.iter != Job::Iter::kNone) return fail(MPROC_EINVAL, "an imap's items are read with mproc_async_next");
    const Job::Item &it = job.item(i);
    if (data) *data = it.value.empty() ? nullptr : it.value.data();
    if (len) *len = it.value.size();
    if (it.code) {
      return fail(it.code, "item %zu: %.*s", i, static_cast<int>(it.value.size()),
                  it.value.data());
    }
    return 0;
  });
}

MPROC_API int mproc_async_next(mproc_async_t *r, double timeout, size_t *index, const void **data,
                               size_t *len) {
  return MPROC_GUARD({
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_async(r)) return rc;
    Job &job = *r->job;
    if (job.iter == Job::Iter::kNone) return fail(MPROC_EINVAL, "not an imap result");
    std::unique_lock<std::mutex> g(job.mu);
    auto at_end = [&] { return job.source_done && job.delivered >= job.n; };
    auto has_next = [&] {
      if (job.iter == Job::Iter::kOrdered) return job.next_ordered < job.n && job.item(job.next_ordered).ready;
      return !job.unordered.empty();
    };
    auto can_return = [&] { return has_next() || at_end(); };
    int w = mproc::wait_interruptible(g, job.cv, mproc::Deadline::after(timeout), can_return);
    if (w == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (w != 0) return fail(MPROC_EAGAIN, "no result within %g s", timeout);
    if (!has_next()) {
      if (job.end_code && !job.end_reported) {
        job.end_reported = true;
        return fail(job.end_code, "%s", job.end_msg.c_str());
      }
      return fail(MPROC_EITEREND, "all %zu results were read", job.n);
    }
    size_t i;
    if (job.iter == Job::Iter::kOrdered) {
      i = job.next_ordered++;
    } else {
      i = job.unordered.front();
      job.unordered.pop_front();
    }
    job.delivered++;
    if (index) *index = i;
    Job::Item &it = job.item(i);
    it.delivered = true;
    r->iter_item.swap(it.value);  // each item is handed out once
    int code = it.code;
    job.trim();
    bool refill = job.lazy && job.starved && job.n - job.delivered + job.chunksize <= job.bound;
    if (refill) job.starved = false;
    g.unlock();
    if (refill && mproc::handle_valid(job.owner, HandleKind::kPool)) job.owner->pool->wake();
    if (data) *data = r->iter_item.empty() ? nullptr : r->iter_item.data();
    if (len) *len = r->iter_item.size();
    if (code) {
      return fail(code, "item %zu: %.*s", i, static_cast<int>(r->iter_item.size()),
                  r->iter_item.data());
    }
    return 0;
  });
}

MPROC_API int mproc_async_error(const mproc_async_t *r, int *task_code, size_t *index,
                                const char **message) {
  return MPROC_GUARD({
    if (int rc = check_async(r)) return rc;
    Job &job = *r->job;
    if (!job.ready.load()) return fail(MPROC_EAGAIN, "result is not ready");
    if (task_code) *task_code = job.task_code;
    if (index) *index = job.err ? job.err_index : SIZE_MAX;
    if (message) *message = job.err_msg.c_str();
    return job.err;
  });
}

MPROC_API int mproc_async_cancel(mproc_async_t *r) {
  return MPROC_GUARD({
    if (int rc = check_async(r)) return rc;
    std::shared_ptr<Job> job = r->job;
    if (job->ready.load()) return 0;
    if (!mproc::handle_valid(job->owner, HandleKind::kPool))
      return fail(MPROC_ECLOSED, "the pool of this result was freed");
    return job->owner->pool->cancel(job);
  });
}

MPROC_API int mproc_async_free(mproc_async_t *r) {
  return MPROC_GUARD({
    if (!r) return 0;
    if (int rc = check_async(r)) return rc;
    mproc::handle_unregister(r);
    {
      std::lock_guard<std::mutex> g(r->job->mu);
      r->job->handle = nullptr;
    }
    delete r;
    return 0;
  });
}

}  // extern "C"
