// Pipes. A pair of AF_UNIX SOCK_STREAM sockets (SOCK_SEQPACKET caps a message at the socket
// buffer size; a stream does not). Every message is a 64-bit length and the bytes. A receiver
// reads the length first and keeps it in the handle, so a too-small buffer loses nothing.
// Sends use MSG_NOSIGNAL: a closed peer is MPROC_EPIPE, never SIGPIPE.
// A receiver that finds nothing retries a non-blocking recv() for a short adaptive time before
// it sleeps in the kernel: an answer that comes within microseconds then costs no scheduler
// wake-up on either side (the bulk of a round trip). The budget doubles when the spin caught a
// message and halves when it did not, within kSpinMinNs..kSpinMaxNs, so an idle receiver burns
// at most kSpinMaxNs of CPU per receive.
#include "pipe.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "error.hpp"
#include "futex.hpp"
#include "ring.hpp"

namespace mproc {
namespace {

constexpr long kSpinMinNs = 20000;
constexpr long kSpinMaxNs = 100000;

long elapsed_ns(const struct timespec &t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec);
}

int peer_closed() { return fail(MPROC_EPIPE, "the other end is closed"); }

// Wait for input on fd until the deadline: 1 ready, 0 timeout.
int wait_readable(int fd, const Deadline &d) {
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, d.poll_ms());
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return fail_errno(errno, "poll");
  }
}

}  // namespace

int conn_pair(bool duplex, mproc_conn **a, mproc_conn **b) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return fail_errno(errno, "socketpair");
  auto *x = new mproc_conn();
  auto *y = new mproc_conn();
  x->fd.reset(sv[0]);
  y->fd.reset(sv[1]);
  if (!duplex) {  // a receives, b sends
    x->can_send = false;
    y->can_recv = false;
    shutdown(sv[0], SHUT_WR);
    shutdown(sv[1], SHUT_RD);
  }
  *a = x;
  *b = y;
  return 0;
}

int conn_send(mproc_conn &c, const void *data, size_t len) {
  uint64_t n64 = len;
  struct iovec iov[2] = {{&n64, sizeof n64}, {const_cast<void *>(data), len}};
  struct msghdr mh = {};
  mh.msg_iov = iov;
  mh.msg_iovlen = len ? 2 : 1;
  size_t left = sizeof n64 + len;
  while (left > 0) {
    ssize_t k = sendmsg(c.fd.get(), &mh, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) return peer_closed();
      return fail_errno(errno, "sendmsg");
    }
    left -= static_cast<size_t>(k);
    while (k > 0) {  // step over what was written
      size_t s = static_cast<size_t>(k) < mh.msg_iov->iov_len ? static_cast<size_t>(k)
                                                               : mh.msg_iov->iov_len;
      mh.msg_iov->iov_base = static_cast<char *>(mh.msg_iov->iov_base) + s;
      mh.msg_iov->iov_len -= s;
      k -= static_cast<ssize_t>(s);
      if (mh.msg_iov->iov_len == 0 && mh.msg_iovlen > 1) {
        mh.msg_iov++;
        mh.msg_iovlen--;
      }
    }
  }
  return 0;
}

int conn_recv(mproc_conn &c, void *buf, size_t cap, size_t *out_len, void **out_buf,
              double timeout) {
  const Deadline d = Deadline::after(timeout);
  // Spin first (not for a poll: timeout 0), then without a timeout block in recv() itself: one
  // system call fewer than poll() + recv().
  bool spinning = timeout != 0 && c.hdr_have < sizeof c.hdr;
  struct timespec t0 = {0, 0};
  if (spinning) clock_gettime(CLOCK_MONOTONIC, &t0);
  while (c.hdr_have < sizeof c.hdr) {
    const int flags = spinning || !d.infinite ? MSG_DONTWAIT : 0;
    ssize_t k = recv(c.fd.get(), c.hdr + c.hdr_have, sizeof c.hdr - c.hdr_have, flags);
    if (k > 0) {
      if (spinning && c.spin_ns < kSpinMaxNs) c.spin_ns *= 2;
      spinning = false;
      c.hdr_have += static_cast<size_t>(k);
      continue;
    }
    if (k == 0) {
      c.hdr_have = 0;
      return peer_closed();
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return peer_closed();
    if (errno != EAGAIN) return fail_errno(errno, "recv");
    if (spinning) {
      if (elapsed_ns(t0) < c.spin_ns && !d.expired()) {
        cpu_relax();
        continue;
      }
      spinning = false;
      if (c.spin_ns > kSpinMinNs) c.spin_ns /= 2;
      if (d.infinite) continue;  // now block in recv()
    }
    int r = wait_readable(c.fd.get(), d);
    if (r < 0) return r;
    if (r == 0) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
  }
  uint64_t n64;
  memcpy(&n64, c.hdr, sizeof n64);
  if (n64 > MPROC_QUEUE_MSG_MAX)
    return fail(MPROC_EIO, "corrupt message length %llu", static_cast<unsigned long long>(n64));
  const size_t len = static_cast<size_t>(n64);
  char *dst;
  if (out_buf) {
    dst = static_cast<char *>(malloc(len ? len : 1));
    if (!dst) return fail(MPROC_ENOMEM, "cannot allocate %zu bytes for a message", len);
  } else {
    if (len > cap) {
      *out_len = len;
      return fail(MPROC_EMSGSIZE, "message of %zu bytes does not fit the buffer of %zu bytes",
                  len, cap);
    }
    dst = static_cast<char *>(buf);
  }
  // The body follows its length: wait for it whatever the timeout (the sender is writing it).
  size_t got = 0;
  while (got < len) {
    ssize_t k = recv(c.fd.get(), dst + got, len - got, MSG_WAITALL);
    if (k > 0) {
      got += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    c.hdr_have = 0;
    if (out_buf) free(dst);
    if (k == 0 || errno == ECONNRESET)
      return fail(MPROC_EPIPE, "the other end closed in the middle of a message");
    return fail_errno(errno, "recv");
  }
  c.hdr_have = 0;
  *out_len = len;
  if (out_buf) *out_buf = dst;
  return 0;
}

int conn_poll(mproc_conn &c, double timeout) {
  if (conn_has_header(c)) return 1;
  return wait_readable(c.fd.get(), Deadline::after(timeout));
}

int wait_sources(const std::vector<WaitSource> &src, int *ready, double timeout) {
  const Deadline d = Deadline::after(timeout);
  std::vector<struct pollfd> pf(src.size());
  for (size_t i = 0; i < src.size(); i++) pf[i] = {src[i].fd, POLLIN, 0};
  for (bool first = true;; first = false) {
    int r = ::poll(pf.data(), pf.size(), first ? 0 : d.poll_ms());
    if (r < 0 && errno != EINTR) return fail_errno(errno, "poll");
    int n = 0;
    for (size_t i = 0; i < src.size(); i++) {
      bool ok = src[i].preready || (r > 0 && pf[i].revents != 0);
      // A queue's fifo can be readable with nothing left to take: check the ring itself.
      if (ok && src[i].ring) ok = src[i].ring->ready_for_get();
      ready[i] = ok ? 1 : 0;
      n += ready[i];
    }
    if (n > 0) return n;
    if (d.expired()) return 0;
  }
}

}  // namespace mproc
