// C ABI: queues. Thin shims over ipc/ring.cpp and ipc/queue.cpp.
#include <cstring>

#include "capi/capi.hpp"
#include "ipc/queue.hpp"
#include "ipc/ring_fast.hpp"
#include "proc/runtime.hpp"

using mproc::fail;
using mproc::HandleKind;

namespace {
// A queue handle is usable in any process that holds it (made before a fork, opened by name or
// received): there is no owner check, only the registry's.
int check(const mproc_queue_t *q) { return mproc::check_live(q, HandleKind::kQueue, "queue"); }

// A pending reserve (put side) or peek (get side) of this handle blocks the other calls of that
// side: they would write into, or take, the same slot.
int check_no_reserve(const mproc_queue_t *q) {
  return q->ring->reserving() ? fail(MPROC_EBUSY, "this handle has a reserve pending") : 0;
}
int check_no_peek(const mproc_queue_t *q) {
  return q->ring->peeking() ? fail(MPROC_EBUSY, "this handle has a peek pending") : 0;
}

int read_opts(const mproc_queue_opts_t *opts, mproc::RingConfig *cfg) {
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  if (int rc = mproc::read_opts(opts, offsetof(mproc_queue_opts_t, max_message) + sizeof(size_t),
                                "mproc_queue_opts_t", &o))
    return rc;
  if (o.capacity > mproc::kRingMaxCapacity)
    return fail(MPROC_EINVAL, "capacity %zu is over the limit of %zu", o.capacity,
                mproc::kRingMaxCapacity);
  if (o.max_message > MPROC_QUEUE_MSG_MAX)
    return fail(MPROC_EINVAL, "max_message %zu is over MPROC_QUEUE_MSG_MAX", o.max_message);
  cfg->capacity = o.capacity;
  cfg->maxsize = o.maxsize;
  cfg->max_message = o.max_message;
  return 0;
}

int make(mproc_queue_t **out, const mproc_queue_opts_t *opts, bool joinable) {
  mproc::RingConfig cfg;
  if (int rc = read_opts(opts, &cfg)) return rc;
  cfg.joinable = joinable;
  return mproc::queue_create(cfg, out);
}
}  // namespace

extern "C" {

MPROC_API int mproc_queue_opts_init(mproc_queue_opts_t *opts) {
  return MPROC_GUARD(if (!opts) return fail(MPROC_EINVAL, "opts is NULL");
                     *opts = mproc_queue_opts_t MPROC_QUEUE_OPTS_INIT; return 0;);
}

MPROC_API int mproc_queue_new(mproc_queue_t **out, const mproc_queue_opts_t *opts) {
  return MPROC_NEW(out, return make(out, opts, false););
}

MPROC_API int mproc_simple_queue_new(mproc_queue_t **out) {
  return MPROC_NEW(out, return make(out, nullptr, false););
}

MPROC_API int mproc_joinable_queue_new(mproc_queue_t **out, const mproc_queue_opts_t *opts) {
  return MPROC_NEW(out, return make(out, opts, true););
}

MPROC_API int mproc_queue_free(mproc_queue_t *q) {
  return MPROC_FREE(q, mproc::handle_unregister(q); delete q;);
}

namespace {
// The full paths of mproc_queue_put and _get: argument checks that report, waiting, messages of
// any size. Out of line, so the shims' fast paths keep nothing for them (they end in a jump).
__attribute__((noinline)) int queue_put_full(mproc_queue_t *q, const void *data, size_t len,
                                             double timeout) {
  return mproc::guard("mproc_queue_put", [&]() -> int {
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check(q)) return rc;
    if (!data && len) return fail(MPROC_EINVAL, "data is NULL but len is %zu", len);
    if (int rc = check_no_reserve(q)) return rc;
    return q->ring->put(data, len, timeout);
  });
}

__attribute__((noinline)) int queue_get_full(mproc_queue_t *q, void *buf, size_t cap,
                                             size_t *out_len, double timeout) {
  return mproc::guard("mproc_queue_get", [&]() -> int {
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check(q)) return rc;
    if (!out_len) return fail(MPROC_EINVAL, "out_len is NULL");
    if (!buf && cap) return fail(MPROC_EINVAL, "buf is NULL but cap is %zu", cap);
    if (int rc = check_no_peek(q)) return rc;
    return q->ring->get(buf, cap, out_len, nullptr, timeout);
  });
}
}  // namespace

// mproc_queue_put and _get try the ring's fast path first (a granted side's small message,
// docs/queue.md), after the argument checks of their full path (which makes them again, to
// report what failed; a handle this thread did not use last goes there too, to the registry);
// the fast path calls nothing, neither throws nor records an error.
MPROC_API int mproc_queue_put(mproc_queue_t *q, const void *data, size_t len, double timeout) {
  if (mproc::handle_seen(q, HandleKind::kQueue) && timeout == timeout && (data || !len) &&
      !q->ring->reserving() && q->ring->put_fast(data, len) == 0)
    return 0;
  return queue_put_full(q, data, len, timeout);
}

MPROC_API int mproc_queue_putv(mproc_queue_t *q, const mproc_queue_part_t *parts, size_t n,
                               double timeout) {
  static_assert(sizeof(mproc_queue_part_t) == sizeof(mproc::RingPart), "same layout");
  return MPROC_WAIT_ON(q, timeout, {
    if (!parts && n) return fail(MPROC_EINVAL, "parts is NULL but n is %zu", n);
    for (size_t i = 0; i < n; i++)
      if (!parts[i].data && parts[i].len)
        return fail(MPROC_EINVAL, "parts[%zu].data is NULL but its len is %zu", i, parts[i].len);
    if (int rc = check_no_reserve(q)) return rc;
    return q->ring->put(reinterpret_cast<const mproc::RingPart *>(parts), n, timeout);
  });
}

MPROC_API int mproc_queue_get_msg(mproc_queue_t *q, mproc_msg_t **out, double timeout) {
  return MPROC_WAIT_ON(q, timeout, {
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    *out = nullptr;
    if (int rc = check_no_peek(q)) return rc;
    std::shared_ptr<mproc::BigOwner> owner = q->ring->big_owner();
    if (!owner) return MPROC_ENOMEM;
    auto *m = new mproc_msg{{}, std::move(owner)};
    if (int rc = q->ring->get_msg(&m->taken, timeout)) {
      delete m;
      return rc;
    }
    *out = m;
    return 0;
  });
}

MPROC_API void *mproc_msg_data(const mproc_msg_t *m) { return m ? m->taken.data : nullptr; }
MPROC_API size_t mproc_msg_size(const mproc_msg_t *m) { return m ? m->taken.size : 0; }

MPROC_API int mproc_msg_free(mproc_msg_t *m) {
  return MPROC_GUARD({
    if (!m) return 0;
    m->owner->release(&m->taken);
    delete m;
    return 0;
  });
}

MPROC_API int mproc_queue_get(mproc_queue_t *q, void *buf, size_t cap, size_t *out_len,
                              double timeout) {
  if (mproc::handle_seen(q, HandleKind::kQueue) && timeout == timeout && out_len &&
      (buf || !cap) && !q->ring->peeking() && q->ring->get_fast(buf, cap, out_len) == 0)
    return 0;
  return queue_get_full(q, buf, cap, out_len, timeout);
}

MPROC_API int mproc_queue_get_alloc(mproc_queue_t *q, void **out, size_t *out_len,
                                    double timeout) {
  return MPROC_WAIT_ON(q, timeout, {
    if (!out || !out_len) return fail(MPROC_EINVAL, "out or out_len is NULL");
    *out = nullptr;
    if (int rc = check_no_peek(q)) return rc;
    return q->ring->get(nullptr, 0, out_len, out, timeout);
  });
}

MPROC_API int mproc_queue_reserve(mproc_queue_t *q, size_t len, void **out, double timeout) {
  return MPROC_WAIT_ON(q, timeout, {
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    if (int rc = check_no_reserve(q)) return rc;
    return q->ring->reserve(len, out, timeout);
  });
}

MPROC_API int mproc_queue_commit(mproc_queue_t *q, size_t len) {
  return MPROC_ON(q, if (!q->ring->reserving()) return fail(MPROC_EINVAL, "nothing reserved");
                  return q->ring->commit(len););
}

MPROC_API int mproc_queue_cancel(mproc_queue_t *q) {
  return MPROC_ON(q, if (!q->ring->reserving()) return fail(MPROC_EINVAL, "nothing reserved");
                  return q->ring->cancel(););
}

MPROC_API int mproc_queue_peek(mproc_queue_t *q, const void **out, size_t *out_len,
                               double timeout) {
  return MPROC_WAIT_ON(q, timeout, {
    if (!out || !out_len) return fail(MPROC_EINVAL, "out or out_len is NULL");
    if (int rc = check_no_peek(q)) return rc;
    return q->ring->peek(out, out_len, timeout);
  });
}

MPROC_API int mproc_queue_release(mproc_queue_t *q) {
  return MPROC_ON(q, if (!q->ring->peeking()) return fail(MPROC_EINVAL, "nothing peeked");
                  return q->ring->release(););
}

MPROC_API int mproc_queue_qsize(const mproc_queue_t *q, size_t *out) {
  return MPROC_ON(q, if (!out) return fail(MPROC_EINVAL, "out is NULL");
                  *out = q->ring->qsize(); return 0;);
}

MPROC_API int mproc_queue_empty(const mproc_queue_t *q) {
  return MPROC_ON(q, return q->ring->qsize() == 0 ? 1 : 0;);
}

MPROC_API int mproc_queue_full(const mproc_queue_t *q) {
  return MPROC_ON(q, return q->ring->full() ? 1 : 0;);
}

MPROC_API int mproc_queue_close(mproc_queue_t *q) {
  return MPROC_ON(q, return q->ring->close(););
}

MPROC_API int mproc_queue_is_closed(const mproc_queue_t *q) {
  return MPROC_ON(q, return q->ring->closed() ? 1 : 0;);
}

MPROC_API int mproc_queue_task_done(mproc_queue_t *q) {
  return MPROC_ON(q, if (!q->ring->joinable()) return fail(MPROC_EINVAL, "not a joinable queue");
                  return q->ring->task_done(););
}

MPROC_API int mproc_queue_join(mproc_queue_t *q, double timeout) {
  return MPROC_WAIT_ON(q, timeout,
                       if (!q->ring->joinable()) return fail(MPROC_EINVAL, "not a joinable queue");
                       return q->ring->join(timeout););
}

MPROC_API int mproc_queue_stats(const mproc_queue_t *q, mproc_queue_stats_t *out) {
  return MPROC_ON(q, {
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    if (out->size < offsetof(mproc_queue_stats_t, lost) + sizeof(uint64_t))
      return fail(MPROC_EINVAL, "out->size %zu is not a size of mproc_queue_stats_t", out->size);
    mproc::RingStats s = q->ring->stats();
    out->puts = s.puts;
    out->gets = s.gets;
    out->producer_deaths = s.producer_deaths;
    out->consumer_deaths = s.consumer_deaths;
    out->dropped = s.dropped;
    out->lost = s.lost;
    if (out->size >= offsetof(mproc_queue_stats_t, revokes) + sizeof(uint64_t)) {
      out->grants = s.grants;
      out->revokes = s.revokes;
    }
    if (out->size >= offsetof(mproc_queue_stats_t, big_bytes) + sizeof(uint64_t)) {
      out->big_messages = s.big_messages;
      out->big_bytes = s.big_bytes;
    }
    if (out->size >= offsetof(mproc_queue_stats_t, consumer_revokes) + sizeof(uint64_t)) {
      out->consumer_grants = s.consumer_grants;
      out->consumer_revokes = s.consumer_revokes;
    }
    return 0;
  });
}

MPROC_API int mproc_queue_fileno(mproc_queue_t *q) {
  return MPROC_ON(q, return q->ring->fileno(););
}

MPROC_API int mproc_queue_name(const mproc_queue_t *q, char *buf, size_t cap) {
  return MPROC_ON(q, if (!buf) return fail(MPROC_EINVAL, "buf is NULL");
                  return mproc::queue_name(*q->ring, buf, cap););
}

MPROC_API int mproc_queue_open(mproc_queue_t **out, const char *name) {
  return MPROC_NEW(out, if (!name) return fail(MPROC_EINVAL, "name is NULL");
                   return mproc::queue_open(name, out););
}

MPROC_API int mproc_queue_send_handle(const mproc_queue_t *q, int sockfd) {
  return MPROC_ON(q, if (sockfd < 0) return fail(MPROC_EBADF, "bad socket fd %d", sockfd);
                  return mproc::queue_send(*q->ring, sockfd););
}

MPROC_API int mproc_queue_recv_handle(mproc_queue_t **out, int sockfd) {
  return MPROC_NEW(out, if (sockfd < 0) return fail(MPROC_EBADF, "bad socket fd %d", sockfd);
                   return mproc::queue_recv(sockfd, out););
}

}  // extern "C"
