// C ABI: pipes and wait(). Thin shims over ipc/pipe.cpp.
#include <mproc/process.h>

#include <vector>

#include "capi/capi.hpp"
#include "ipc/pipe.hpp"
#include "ipc/queue.hpp"
#include "proc/runtime.hpp"

using mproc::fail;
using mproc::HandleKind;

namespace {
// A live handle (closing and freeing need no more); the other calls also need it open.
int check_live(const mproc_conn_t *c) {
  return mproc::check_live(c, HandleKind::kPipe, "connection");
}
int check(const mproc_conn_t *c) {
  if (int rc = check_live(c)) return rc;
  if (!c->fd.valid()) return fail(MPROC_ECLOSED, "connection is closed");
  return 0;
}
int check_recv(const mproc_conn_t *c) {
  if (int rc = check(c)) return rc;
  if (!c->can_recv) return fail(MPROC_EPERM, "connection is send-only");
  return 0;
}
}  // namespace

extern "C" {

MPROC_API int mproc_pipe(mproc_conn_t **out_a, mproc_conn_t **out_b, int duplex) {
  return MPROC_GUARD({
    if (!out_a || !out_b) return fail(MPROC_EINVAL, "out_a or out_b is NULL");
    *out_a = *out_b = nullptr;
    if (int rc = mproc::conn_pair(duplex != 0, out_a, out_b)) return rc;
    mproc::handle_register(*out_a, HandleKind::kPipe);
    mproc::handle_register(*out_b, HandleKind::kPipe);
    return 0;
  });
}

MPROC_API int mproc_conn_fds(const mproc_conn_t *c, int *out, size_t cap) {
  return MPROC_ON(c, if (!out && cap) return fail(MPROC_EINVAL, "out is NULL but cap is %zu", cap);
                  return mproc::conn_fds(*c, out, cap););
}

MPROC_API int mproc_conn_export(const mproc_conn_t *c, char *buf, size_t cap) {
  return MPROC_ON(c, if (!buf) return fail(MPROC_EINVAL, "buf is NULL");
                  return mproc::conn_export(*c, buf, cap););
}

MPROC_API int mproc_conn_attach(mproc_conn_t **out, const char *token) {
  return MPROC_GUARD({
    if (!out || !token) return fail(MPROC_EINVAL, "out or token is NULL");
    *out = nullptr;
    if (int rc = mproc::conn_attach(token, out)) return rc;
    mproc::handle_register(*out, HandleKind::kPipe);
    return 0;
  });
}

namespace {
int send_checked(mproc_conn_t *c, const void *data, size_t len, double timeout) {
  if (!c->can_send) return fail(MPROC_EPERM, "connection is receive-only");
  if (!data && len) return fail(MPROC_EINVAL, "data is NULL but len is %zu", len);
  if (len > MPROC_QUEUE_MSG_MAX)
    return fail(MPROC_EMSGSIZE, "message of %zu bytes is over MPROC_QUEUE_MSG_MAX", len);
  return mproc::conn_send(*c, data, len, mproc::Deadline::after(timeout));
}
}  // namespace

MPROC_API int mproc_conn_send_bytes(mproc_conn_t *c, const void *data, size_t len) {
  return MPROC_ON(c, return send_checked(c, data, len, -1););
}

MPROC_API int mproc_conn_send_bytes_timeout(mproc_conn_t *c, const void *data, size_t len,
                                            double timeout) {
  return MPROC_WAIT_ON(c, timeout, return send_checked(c, data, len, timeout););
}

MPROC_API int mproc_conn_recv_bytes(mproc_conn_t *c, void *buf, size_t cap, size_t *out_len,
                                    double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_recv(c)) return rc;
    if (!out_len) return fail(MPROC_EINVAL, "out_len is NULL");
    if (!buf && cap) return fail(MPROC_EINVAL, "buf is NULL but cap is %zu", cap);
    return mproc::conn_recv(*c, buf, cap, out_len, nullptr, timeout);
  });
}

MPROC_API int mproc_conn_recv_bytes_alloc(mproc_conn_t *c, void **out, size_t *out_len,
                                          double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (int rc = check_recv(c)) return rc;
    if (!out || !out_len) return fail(MPROC_EINVAL, "out or out_len is NULL");
    *out = nullptr;
    return mproc::conn_recv(*c, nullptr, 0, out_len, out, timeout);
  });
}

MPROC_API int mproc_conn_poll(mproc_conn_t *c, double timeout) {
  return MPROC_GUARD(if (int rc = mproc::check_timeout(timeout)) return rc;
                     if (int rc = check_recv(c)) return rc; return mproc::conn_poll(*c, timeout););
}

MPROC_API int mproc_conn_fileno(const mproc_conn_t *c) {
  return MPROC_ON(c, return mproc::conn_fileno(*const_cast<mproc_conn_t *>(c)););
}

MPROC_API int mproc_conn_socket(const mproc_conn_t *c) {
  return MPROC_ON(c, return c->fd.get(););
}

MPROC_API int mproc_conn_close(mproc_conn_t *c) {
  return MPROC_GUARD(if (int rc = check_live(c)) return rc; mproc::conn_close(*c); return 0;);
}

MPROC_API int mproc_conn_free(mproc_conn_t *c) {
  return MPROC_GUARD({
    if (!c) return 0;
    if (int rc = check_live(c)) return rc;
    mproc::handle_unregister(c);
    mproc::conn_close(*c);
    delete c;
    return 0;
  });
}

// mproc_wait polls up to two fds per item: more than this would only fail in poll() (EINVAL).
constexpr size_t kWaitMax = 1u << 20;

MPROC_API int mproc_wait(mproc_wait_item_t *items, size_t n, double timeout) {
  return MPROC_GUARD({
    if (int rc = mproc::check_timeout(timeout)) return rc;
    if (!items && n) return fail(MPROC_EINVAL, "items is NULL but n is %zu", n);
    if (n > kWaitMax)
      return fail(MPROC_EINVAL, "n is %zu, over the limit of %zu items", n, kWaitMax);
    std::vector<mproc::WaitSource> src(n);
    for (size_t i = 0; i < n; i++) {
      mproc_wait_item_t &it = items[i];
      it.ready = 0;
      switch (it.kind) {
        case MPROC_WAIT_CONN: {
          auto *c = static_cast<mproc_conn_t *>(it.handle);
          if (int rc = check_recv(c)) return rc;
          src[i].conn = c;
          break;
        }
        case MPROC_WAIT_QUEUE: {
          auto *q = static_cast<mproc_queue_t *>(it.handle);
          if (!q) return fail(MPROC_EINVAL, "item %zu: queue handle is NULL", i);
          if (!mproc::handle_valid(q, HandleKind::kQueue))
            return fail(MPROC_EBADF, "item %zu: not a live queue handle", i);
          src[i].fd = q->ring->fileno();
          src[i].ring = q->ring.get();
          break;
        }
        case MPROC_WAIT_PROCESS: {
          int fd = mproc_process_sentinel(static_cast<mproc_process_t *>(it.handle));
          if (fd < 0) return fd;
          src[i].fd = fd;
          break;
        }
        case MPROC_WAIT_FD:
          if (it.fd < 0) return fail(MPROC_EBADF, "item %zu: bad fd %d", i, it.fd);
          src[i].fd = it.fd;
          break;
        default:
          return fail(MPROC_EINVAL, "item %zu: unknown kind %d", i, it.kind);
      }
    }
    std::vector<int> ready(n);
    int r = mproc::wait_sources(src, ready.data(), timeout);
    if (r > 0)
      for (size_t i = 0; i < n; i++) items[i].ready = ready[i];
    return r;
  });
}

}  // extern "C"
