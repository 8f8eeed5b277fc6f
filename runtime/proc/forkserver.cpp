// Forkserver protocol. Two socket pairs join the program and the helper:
//  - req (SOCK_STREAM): the program writes a Request header, the name and the argument bytes;
//    the helper forks and answers with a Reply whose ancillary data carries a pidfd of the
//    child (so the program can signal and poll it without pid-reuse races).
//  - evt (SOCK_SEQPACKET): the helper, the children's real parent, reaps them on SIGCHLD and
//    sends one Event {pid, wait status} per child; the program's supervisor reads them.
// Replies and events travel on different sockets, so an Event may arrive before the program
// has registered the pid; such statuses wait in `unclaimed_` (both maps live on the loop thread).
// The helper exits when the program closes req (orderly stop or crash): its daemon children
// die with it through PR_SET_PDEATHSIG; other children live on, as they would in Python.
#include "proc/forkserver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include "base/pidfd.hpp"
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "proc/process.hpp"
#include "proc/runtime.hpp"
#include "proc/spawn.hpp"

namespace mproc {
namespace {

struct Request {
  uint64_t fn;
  uint64_t payload;
  uint64_t arg_len;
  uint32_t name_len;
  int32_t daemon;
  int32_t parent_pid;
};
struct Reply {
  int32_t pid;
  int32_t err;  // errno of a failed fork, else 0
};
struct Event {
  int32_t pid;
  int32_t wstatus;
};

bool write_full(int fd, const void *buf, size_t len) {
  auto *p = static_cast<const char *>(buf);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool read_full(int fd, void *buf, size_t len) {
  auto *p = static_cast<char *>(buf);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void close_all_fds_except(int a, int b) {
  int lo = a < b ? a : b, hi = a < b ? b : a;
  if (lo > 3) close_range(3, lo - 1, 0);
  if (hi > lo + 1) close_range(lo + 1, hi - 1, 0);
  close_range(hi + 1, ~0U, 0);
}

void send_reply(int req, const Reply &r, int pidfd) {
  struct iovec iov = {const_cast<Reply *>(&r), sizeof r};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  if (pidfd >= 0) {
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
  }
  while (sendmsg(req, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void helper_main(int req, int evt) {
  close_all_fds_except(req, evt);
  // Ctrl-C goes to the whole foreground group: the helper must survive it (as Python's does);
  // its children get the program's disposition back.
  struct sigaction old_int;
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old_int);
  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old_mask);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) _exit(1);

  for (;;) {
    struct pollfd fds[2] = {{req, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        Event e = {pid, st};
        while (send(evt, &e, sizeof e, MSG_NOSIGNAL) < 0 && errno == EINTR) {
        }
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      Request rq;
      if (!read_full(req, &rq, sizeof rq)) break;  // the program closed or died
      std::string name(rq.name_len, '\0');
      std::vector<char> arg(rq.arg_len);
      if (!read_full(req, name.data(), name.size()) || !read_full(req, arg.data(), arg.size()))
        break;
      const pid_t helper = getpid();
      pid_t pid = fork();
      if (pid == 0) {
        close(req);
        close(evt);
        close(sfd);
        sigaction(SIGINT, &old_int, nullptr);
        sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        ProcessCore core;
        core.name = std::move(name);
        core.daemon = rq.daemon != 0;
        core.fn = reinterpret_cast<mproc_process_fn>(static_cast<uintptr_t>(rq.fn));
        core.payload = reinterpret_cast<void *>(static_cast<uintptr_t>(rq.payload));
        core.arg = std::move(arg);
        child_run(core, rq.parent_pid, helper);
      }
      Reply r = {pid, pid < 0 ? errno : 0};
      int pfd = pid > 0 ? pidfd_open(pid, 0) : -1;
      send_reply(req, r, pfd);
      if (pfd >= 0) close(pfd);
    }
  }
  _exit(0);
}

// The program's ends of every helper's sockets, closed in every other child the program forks,
// so that a helper sees EOF when the program itself ends. Plain atomics: read after fork().
constexpr int kMaxParentFds = 256;
std::atomic<int> g_parent_fds[kMaxParentFds];
struct ParentFdsInit {
  ParentFdsInit() {
    for (auto &fd : g_parent_fds) fd.store(-1);
  }
} g_parent_fds_init;

void parent_only_add(int fd) {
  for (auto &slot : g_parent_fds) {
    int expected = -1;
    if (slot.compare_exchange_strong(expected, fd)) return;
  }
}
void parent_only_remove(int fd) {
  for (auto &slot : g_parent_fds) {
    int expected = fd;
    if (slot.compare_exchange_strong(expected, -1)) return;
  }
}
}  // namespace

void forkserver_close_in_child() {
  for (auto &slot : g_parent_fds) {
    int v = slot.exchange(-1);
    if (v >= 0) close(v);
  }
}

int ForkServer::ensure_started() {
  std::lock_guard<std::mutex> g(mu_);
  return start_locked();
}

int ForkServer::start_locked() {
  if (pid_ > 0 && helper_gone_) {
    // The helper died (killed by someone): reap it and make a new one.
    parent_only_remove(req_.get());
    parent_only_remove(evt_.get());
    req_.reset();
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    wait_unwatched();  // else the new helper's socket could get the fd number still watched
    evt_.reset();
    pid_ = -1;
  }
  if (pid_ > 0) return 0;
  spawn_refuse_unguarded("a forkserver or pool start");
  helper_gone_ = false;
  Runtime &rt = Runtime::get();
  // Fork before starting the supervisor thread when it is not running yet: a helper forked
  // while a thread of ours is starting (and allocating) could inherit a lock held by it.
  int rq[2], ev[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rq) < 0)
    return fail_errno(errno, "socketpair");
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ev) < 0) {
    int e = errno;
    close(rq[0]);
    close(rq[1]);
    return fail_errno(e, "socketpair");
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {rq[0], rq[1], ev[0], ev[1]}) close(fd);
    return fail_errno(e, "fork (forkserver)");
  }
  if (pid == 0) helper_main(rq[1], ev[1]);
  close(rq[1]);
  close(ev[1]);
  fcntl(ev[0], F_SETFL, O_NONBLOCK);
  pid_ = pid;
  req_.reset(rq[0]);
  evt_.reset(ev[0]);
  parent_only_add(rq[0]);
  parent_only_add(ev[0]);
  int rc = rt.ensure_supervisor();
  if (rc < 0) {
    int saved = rc;
    parent_only_remove(rq[0]);
    parent_only_remove(ev[0]);
    req_.reset();
    evt_.reset();
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return saved;
  }
  watched_ = true;
  rc = rt.supervisor().watch_fd(evt_.get(), [this, fd = evt_.get()] {
    on_events(fd);
    watched_ = !helper_gone_;
    return watched_.load();
  });
  if (rc < 0) watched_ = false;
  return rc;
}

void ForkServer::on_events(int fd) {
  for (;;) {
    Event e;
    ssize_t n = recv(fd, &e, sizeof e, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: all read
    if (n == 0) {
      // The helper is gone: its children's statuses are lost. End each waiting child when its
      // pidfd says it has ended, with 255 as the status.
      for (auto &kv : waiting_) {
        auto c = kv.second;
        Runtime::get().supervisor().watch_fd(c->pidfd.get(), [c] {
          c->mark_exited(255);
          return false;
        });
      }
      waiting_.clear();
      helper_gone_ = true;
      return;
    }
    if (n != sizeof e) continue;
    int code = exitcode_from_wstatus(e.wstatus);
    auto it = waiting_.find(e.pid);
    if (it != waiting_.end()) {
      it->second->mark_exited(code);
      waiting_.erase(it);
    } else {
      unclaimed_[e.pid] = code;
    }
  }
}

int ForkServer::gone() {
  helper_gone_ = true;  // the next start (or mproc_forkserver_start) makes a new one
  return fail(MPROC_EPIPE, "the forkserver helper is gone%s",
              auto_restart_ ? "" : " (start it again: mproc_forkserver_start)");
}

int ForkServer::start_child(const std::shared_ptr<ProcessCore> &c) {
  std::lock_guard<std::mutex> g(mu_);
  if (pid_ > 0 && helper_gone_ && !auto_restart_)
    return fail(MPROC_EPIPE, "the forkserver helper is gone (start it again from a thread that "
                             "may fork: mproc_forkserver_start)");
  int rc = start_locked();
  if (rc < 0) return rc;
  Request rq = {};
  rq.fn = reinterpret_cast<uintptr_t>(c->fn);
  rq.payload = reinterpret_cast<uintptr_t>(c->payload);
  rq.arg_len = c->arg.size();
  rq.name_len = static_cast<uint32_t>(c->name.size());
  rq.daemon = c->daemon;
  rq.parent_pid = getpid();
  if (helper_gone_ || !write_full(req_.get(), &rq, sizeof rq) ||
      !write_full(req_.get(), c->name.data(), c->name.size()) ||
      !write_full(req_.get(), c->arg.data(), c->arg.size())) {
    return gone();
  }
  Reply r = {};
  struct iovec iov = {&r, sizeof r};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  ssize_t n;
  do {
    n = recvmsg(req_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof r)) return gone();
  int pidfd = -1;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      memcpy(&pidfd, CMSG_DATA(cm), sizeof(int));
  if (r.pid <= 0) {
    if (pidfd >= 0) close(pidfd);
    return fail_errno(r.err, "fork (in the forkserver)");
  }
  if (pidfd < 0) return fail(MPROC_EMFILE, "no pidfd received from the forkserver");
  {
    std::lock_guard<std::mutex> cg(c->mu);
    c->pid = r.pid;
    c->pidfd.reset(pidfd);
    c->state = ProcessCore::State::kRunning;
  }
  const int pid = r.pid;
  return Runtime::get().supervisor().post([this, c, pid](uv_loop_t *) {
    auto it = unclaimed_.find(pid);
    if (it != unclaimed_.end()) {
      c->mark_exited(it->second);
      unclaimed_.erase(it);
    } else {
      waiting_[pid] = c;
    }
  });
}

// Let the supervisor see the helper's EOF and drop its watch before evt_ is closed (the helper
// has been reaped: the EOF is there).
void ForkServer::wait_unwatched() {
  Supervisor &sup = Runtime::get().supervisor();
  if (sup.running() && !sup.on_loop_thread()) {
    for (int i = 0; i < 2000 && watched_; i++) usleep(1000);
    sup.sync();
  }
}

void ForkServer::stop() {
  std::lock_guard<std::mutex> g(mu_);
  if (pid_ <= 0) return;
  parent_only_remove(req_.get());
  parent_only_remove(evt_.get());
  req_.reset();  // the helper sees EOF and exits
  int st;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  wait_unwatched();
  evt_.reset();
  pid_ = -1;
  waiting_.clear();
  unclaimed_.clear();
}

}  // namespace mproc
