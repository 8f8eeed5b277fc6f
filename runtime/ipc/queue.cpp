#include "ipc/queue.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"
#include "base/handles.hpp"
#include "ipc/pipe.hpp"

namespace mproc {
namespace {

constexpr uint32_t kHandleMagic = 0x4851504d;  // "MPQH"

// The message queue_send() writes: framed like a pipe message (a 64-bit length first), so it
// can travel on an mproc_conn_t's socket between ordinary messages.
struct HandleMsg {
  uint64_t len;  // sizeof(HandleMsg) - 8
  uint32_t magic;
  uint32_t nfds;
  uint64_t token;
};

int adopt(std::unique_ptr<Ring> ring, mproc_queue **out) {
  auto *q = new mproc_queue{std::move(ring)};
  handle_register(q, HandleKind::kQueue);
  *out = q;
  return 0;
}

}  // namespace

int queue_create(const RingConfig &cfg, mproc_queue **out) {
  std::unique_ptr<Ring> r;
  if (int rc = Ring::create(cfg, &r)) return rc;
  return adopt(std::move(r), out);
}

int queue_name(const Ring &r, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "mproc-queue:%d:%d:%d:%016" PRIx64, static_cast<int>(getpid()),
                   r.memfd(), r.fifo_fd(), r.token());
  if (n < 0 || static_cast<size_t>(n) >= cap)
    return fail(MPROC_ERANGE, "buffer of %zu bytes is too small for the name", cap);
  return 0;
}

int queue_open(const char *name, mproc_queue **out) {
  int pid, mfd, ffd, used = 0;
  uint64_t token;
  if (sscanf(name, "mproc-queue:%d:%d:%d:%" SCNx64 "%n", &pid, &mfd, &ffd, &token, &used) != 4 ||
      name[used] != '\0' || pid <= 0 || mfd < 0 || ffd < 0)
    return fail(MPROC_EINVAL, "'%.100s' is not a queue name", name);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, mfd);
  UniqueFd m(open(path, O_RDWR | O_CLOEXEC));
  if (!m.valid())
    return errno == EACCES || errno == EPERM
               ? fail(MPROC_EACCES, "no access to the queue of process %d", pid)
               : fail(MPROC_ENOENT, "queue '%s' is gone (%s)", name, strerror(errno));
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, ffd);
  UniqueFd f(open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!f.valid()) return fail(MPROC_ENOENT, "queue '%s' is gone (%s)", name, strerror(errno));
  std::unique_ptr<Ring> r;
  if (int rc = Ring::attach(std::move(m), std::move(f), token, &r)) return rc;
  return adopt(std::move(r), out);
}

namespace {
// Handles travel as SCM_RIGHTS over a connected Unix socket: say so before sendmsg/recvmsg would.
int check_unix_socket(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return errno == EBADF ? fail(MPROC_EBADF, "fd %d is not open", fd) : fail_errno(errno, "fstat");
  int domain = 0;
  socklen_t len = sizeof domain;
  if (!S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
      domain != AF_UNIX)
    return fail(MPROC_EINVAL,
                "fd %d is not a Unix socket (pass a connected AF_UNIX socket or a pipe's fileno)",
                fd);
  return 0;
}
}  // namespace

int queue_send(const Ring &r, int sockfd) {
  sockfd = conn_socket_of(sockfd);
  if (int rc = check_unix_socket(sockfd)) return rc;
  HandleMsg m{sizeof(HandleMsg) - 8, kHandleMagic, 2, r.token()};
  int fds[2] = {r.memfd(), r.fifo_fd()};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = {&m, sizeof m};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n;
  do n = sendmsg(sockfd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EPIPE ? fail(MPROC_EPIPE, "peer closed") : fail_errno(errno, "sendmsg");
  // A stream socket may take part of it: the rest goes without fds.
  for (size_t off = static_cast<size_t>(n); off < sizeof m;) {
    ssize_t k = send(sockfd, reinterpret_cast<char *>(&m) + off, sizeof m - off, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno == EPIPE ? fail(MPROC_EPIPE, "peer closed") : fail_errno(errno, "send");
    off += static_cast<size_t>(k);
  }
  return 0;
}

int queue_recv(int sockfd, mproc_queue **out) {
  sockfd = conn_socket_of(sockfd);
  if (int rc = check_unix_socket(sockfd)) return rc;
  HandleMsg m{};
  UniqueFd fds[2];
  int nfds = 0;
  size_t got = 0;
  while (got < sizeof m) {
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {reinterpret_cast<char *>(&m) + got, sizeof m - got};
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(sockfd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "recvmsg");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (nfds < 2) fds[nfds++].reset(fd);
        else close(fd);
      }
    }
    if (n == 0) return fail(MPROC_EPIPE, "peer closed before sending a queue");
    got += static_cast<size_t>(n);
  }
  if (m.len != sizeof m - 8 || m.magic != kHandleMagic || nfds != 2)
    return fail(MPROC_EINVAL, "the message is not a queue handle");
  std::unique_ptr<Ring> r;
  if (int rc = Ring::attach(std::move(fds[0]), std::move(fds[1]), m.token, &r)) return rc;
  return adopt(std::move(r), out);
}

}  // namespace mproc
