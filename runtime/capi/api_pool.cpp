// C ABI: pools, jobs and async results. Each call checks its handle and arguments and forwards
// to the core (pool/pool.hpp, pool/job.hpp), which builds, runs and delivers jobs.
#include <unistd.h>

#include <cstdarg>

#include "base/handles.hpp"
#include "base/names.hpp"
#include "capi/capi.hpp"
#include "pool/pool.hpp"
#include "proc/runtime.hpp"

using mproc::fail;
using mproc::HandleKind;
using mproc::Job;
using Iter = mproc::Job::Iter;

namespace {
int check(const mproc_pool_t *p) {
  if (!p) return fail(MPROC_EINVAL, "pool is NULL");
  if (!mproc::handle_valid(p, HandleKind::kPool))
    return fail(MPROC_EBADF, "not a live pool handle (freed or never made)");
  if (p->owner_pid != mproc::current_pid())
    return fail(MPROC_EWRONGPROC, "the pool belongs to process %d", p->owner_pid);
  return 0;
}

int check(const mproc_async_t *r) { return mproc::check_live(r, HandleKind::kOther, "result"); }

int read_async_opts(const mproc_async_opts_t *opts, mproc_async_opts_t *o) {
  *o = mproc_async_opts_t MPROC_ASYNC_OPTS_INIT;
  if (int rc = mproc::read_opts(opts, sizeof(size_t), "mproc_async_opts_t", o)) return rc;
  if (!(o->timeout >= 0))
    return fail(MPROC_EINVAL, "task timeout %g is negative or NaN", o->timeout);
  return 0;
}

// The *_async calls (and imap): check the pool and the options, build the job with
// build(options, &job), and hand back its result handle.
template <class Build>
int submit_async(mproc_pool_t *pool, const mproc_async_opts_t *opts, mproc_async_t **out,
                 Build build) {
  if (int rc = check(pool)) return rc;
  mproc_async_opts_t o;
  if (int rc = read_async_opts(opts, &o)) return rc;
  std::shared_ptr<Job> job;
  if (int rc = build(o, &job)) return rc;
  return job->submit(pool, out, false);
}

}  // namespace

extern "C" {

MPROC_API int mproc_task_return(mproc_task_ctx_t *ctx, const void *data, size_t len) {
  return MPROC_GUARD({
    if (!ctx) return fail(MPROC_EINVAL, "task context is NULL");
    if (!data && len) return fail(MPROC_EINVAL, "data is NULL with length %zu", len);
    return ctx->set_result(data, len);
  });
}

MPROC_API int mproc_task_fail(mproc_task_ctx_t *ctx, int code, const char *fmt, ...) {
  if (code == 0) code = MPROC_ETASKFAILED;
  if (!ctx) return code;
  va_list ap;
  va_start(ap, fmt);
  ctx->set_failure(fmt, ap);
  va_end(ap);
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
  return MPROC_NEW(out, {
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
  return MPROC_ON(pool, return pool->pool->nworkers(););
}

MPROC_API int mproc_pool_apply_async(mproc_pool_t *pool, mproc_task_fn fn, const void *arg,
                                     size_t len, const mproc_async_opts_t *opts,
                                     mproc_async_t **out) {
  return MPROC_NEW(out, return submit_async(pool, opts, out, [&](auto &o, auto *job) {
    return Job::apply(*pool->pool, fn, arg, len, o, job);
  }););
}

MPROC_API int mproc_pool_apply(mproc_pool_t *pool, mproc_task_fn fn, const void *arg, size_t len,
                               void **out, size_t *out_len) {
  return MPROC_GUARD({
    if (out) *out = nullptr;
    if (out_len) *out_len = 0;
    if (int rc = check(pool)) return rc;
    std::shared_ptr<Job> job;
    if (int rc = Job::apply(*pool->pool, fn, arg, len, MPROC_ASYNC_OPTS_INIT, &job)) return rc;
    if (int rc = job->submit(pool, nullptr, true)) return rc;
    return job->copy_value(out, out_len);
  });
}

MPROC_API int mproc_pool_map_async(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                                   const size_t *lens, size_t n, const mproc_async_opts_t *opts,
                                   mproc_async_t **out) {
  return MPROC_NEW(out, return submit_async(pool, opts, out, [&](auto &o, auto *job) {
    return Job::var(*pool->pool, fn, args, lens, n, Iter::kNone, o, job);
  }););
}

MPROC_API int mproc_pool_map(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                             const size_t *lens, size_t n, size_t chunksize, mproc_async_t **out) {
  return MPROC_NEW(out, {
    if (int rc = check(pool)) return rc;
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    o.chunksize = chunksize;
    std::shared_ptr<Job> job;
    if (int rc = Job::var(*pool->pool, fn, args, lens, n, Iter::kNone, o, &job)) return rc;
    if (int rc = job->submit(pool, out, true)) return rc;
    return job->result();
  });
}

MPROC_API int mproc_pool_map_fixed_async(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                         size_t in_size, void *out, size_t out_size, size_t n,
                                         const mproc_async_opts_t *opts, mproc_async_t **out_r) {
  return MPROC_GUARD({
    if (!out_r) return fail(MPROC_EINVAL, "out_r is NULL");
    *out_r = nullptr;
    return submit_async(pool, opts, out_r, [&](auto &o, auto *job) {
      return Job::fixed(*pool->pool, fn, in, in_size, out, out_size, n, o, job);
    });
  });
}

MPROC_API int mproc_pool_map_fixed(mproc_pool_t *pool, mproc_elem_fn fn, const void *in,
                                   size_t in_size, void *out, size_t out_size, size_t n,
                                   size_t chunksize, size_t *failed_index) {
  return MPROC_GUARD({
    if (failed_index) *failed_index = SIZE_MAX;
    if (int rc = check(pool)) return rc;
    mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
    o.chunksize = chunksize;
    std::shared_ptr<Job> job;
    if (int rc = Job::fixed(*pool->pool, fn, in, in_size, out, out_size, n, o, &job)) return rc;
    if (int rc = job->submit(pool, nullptr, true)) return rc;
    if (failed_index) *failed_index = job->failed_index();
    return job->result();
  });
}

MPROC_API int mproc_pool_imap(mproc_pool_t *pool, mproc_task_fn fn, const void *const *args,
                              const size_t *lens, size_t n, int ordered,
                              const mproc_async_opts_t *opts, mproc_async_t **out) {
  Iter iter = ordered ? Iter::kOrdered : Iter::kUnordered;
  return MPROC_NEW(out, return submit_async(pool, opts, out, [&](auto &o, auto *job) {
    return Job::var(*pool->pool, fn, args, lens, n, iter, o, job);
  }););
}

MPROC_API int mproc_pool_imap_lazy(mproc_pool_t *pool, mproc_task_fn fn, mproc_next_fn next,
                                   void *next_payload, int ordered, size_t max_inflight,
                                   const mproc_async_opts_t *opts, mproc_async_t **out) {
  Iter iter = ordered ? Iter::kOrdered : Iter::kUnordered;
  return MPROC_NEW(out, return submit_async(pool, opts, out, [&](auto &o, auto *job) {
    return Job::lazy(*pool->pool, fn, next, next_payload, iter, max_inflight, o, job);
  }););
}

MPROC_API int mproc_pool_close(mproc_pool_t *pool) {
  return MPROC_ON(pool, return pool->pool->close(););
}

MPROC_API int mproc_pool_terminate(mproc_pool_t *pool) {
  return MPROC_ON(pool, return pool->pool->terminate(););
}

MPROC_API int mproc_pool_join(mproc_pool_t *pool, double timeout) {
  return MPROC_WAIT_ON(pool, timeout, return pool->pool->join(timeout, true););
}

MPROC_API int mproc_pool_free(mproc_pool_t *pool) {
  return MPROC_FREE(pool, {
    mproc::handle_unregister(pool);
    pool->pool->terminate();
    pool->pool->join(-1);
    delete pool;
  });
}

MPROC_API int mproc_pool_stats(const mproc_pool_t *pool, mproc_worker_stats_t *out, size_t cap) {
  return MPROC_ON(pool, if (!out && cap) return fail(MPROC_EINVAL, "out is NULL with cap %zu", cap);
                  return pool->pool->stats(out, cap););
}

MPROC_API int mproc_async_get(mproc_async_t *r, double timeout, const void **data, size_t *len) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = check(r)) return rc;
    if (int rc = r->job->await(timeout)) return rc;
    return r->job->value(data, len);
  });
}

MPROC_API int mproc_async_wait(mproc_async_t *r, double timeout) {
  return MPROC_WAIT_ON(r, timeout, return r->job->await(timeout););
}

MPROC_API int mproc_async_wait_any(mproc_async_t *const *rs, size_t n, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (!rs || n == 0) return fail(MPROC_EINVAL, "no results to wait for");
    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i = 0; i < n; i++) {
      if (int rc = check(rs[i])) return fail(rc, "rs[%zu]: %s", i, mproc::last_error_text());
      jobs.push_back(rs[i]->job);
    }
    int found = -1;
    auto any = [&] {
      for (size_t i = 0; i < jobs.size(); i++)
        if (jobs[i]->ready()) {
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
  return MPROC_ON(r, return r->job->ready() ? 1 : 0;);
}

MPROC_API int mproc_async_successful(const mproc_async_t *r) {
  return MPROC_ON(r, return r->job->successful(););
}

MPROC_API size_t mproc_async_count(const mproc_async_t *r) {
  size_t n = 0;
  MPROC_ON(r, n = r->job->count(); return 0;);
  return n;
}

MPROC_API int mproc_async_item(const mproc_async_t *r, size_t i, const void **data, size_t *len) {
  return MPROC_GUARD({
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = check(r)) return rc;
    return r->job->item_result(i, data, len);
  });
}

MPROC_API int mproc_async_next(mproc_async_t *r, double timeout, size_t *index, const void **data,
                               size_t *len) {
  return MPROC_GUARD({
    if (data) *data = nullptr;
    if (len) *len = 0;
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check(r)) return rc;
    return r->job->next(&r->iter_item, index, data, len, timeout);
  });
}

MPROC_API int mproc_async_error(const mproc_async_t *r, int *task_code, size_t *index,
                                const char **message) {
  return MPROC_ON(r, return r->job->error(task_code, index, message););
}

MPROC_API int mproc_async_cancel(mproc_async_t *r) {
  return MPROC_ON(r, return r->job->cancel(););
}

MPROC_API int mproc_async_free(mproc_async_t *r) {
  return MPROC_FREE(r, mproc::handle_unregister(r); r->job->drop_handle(); delete r;);
}

}  // extern "C"
