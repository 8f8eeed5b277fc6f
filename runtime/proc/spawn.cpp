// Spawn protocol. The parent posix_spawn()s /proc/self/exe with its own argv (or the argv of the
// options) and a clean slate: empty signal mask, every signal at its default action, fds 0-2
// plus the fds the options pass (at the same numbers) and one end of a socket pair above them
// (fd 3 when none is passed), named by MPROC_SPAWN_FD in the environment.
// posix_spawn is vfork-based in glibc: nothing of a threaded parent (locks, allocator state)
// reaches the child, and it is fast. The parent then
//   - writes a Boot header, the body's registered name, the process name and the argument;
//   - waits (at most MPROC_SPAWN_TIMEOUT seconds, default 30) for an Ack {code, message}, or for
//     the child's end (EOF on the socket / its pidfd readable).
// mproc_spawn_guard() in the child reads the bootstrap, looks the name up, acknowledges and runs
// the body, then leaves through child_exit() as a forked child does. A spawned program that
// starts children before the guard acks an error and exits (no fork bomb); one that never
// reaches the guard is killed when the wait ends. Either way the start fails with a clear error.
#include "proc/spawn.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/names.hpp"
#include "base/pidfd.hpp"
#include "proc/process.hpp"
#include "proc/runtime.hpp"

extern char **environ;

namespace mproc {
namespace {

constexpr const char *kEnv = "MPROC_SPAWN_FD";
constexpr int kBootFd = 3;
constexpr uint32_t kMagic = 0x6d707370;  // "mpsp"

struct Boot {
  uint32_t magic;
  uint32_t fn_len;
  uint32_t name_len;
  int32_t daemon;
  int32_t parent_pid;
  int32_t pad;
  uint64_t arg_len;
};
struct Ack {
  int32_t code;  // 0: the body runs; else the MPROC_E* code of the failure
  uint32_t msg_len;
};

bool g_guarded = false;  // the guard has consumed this process's bootstrap

// The arguments this program was started with, read once (the library has no argv of its own).
const std::vector<std::string> &own_argv() {
  static std::vector<std::string> *args = [] {
    auto *v = new std::vector<std::string>;  // never freed: may be used during exit
    FILE *f = fopen("/proc/self/cmdline", "re");
    if (!f) return v;
    std::string cur;
    for (int ch; (ch = fgetc(f)) != EOF;) {
      if (ch) {
        cur.push_back(static_cast<char>(ch));
      } else {
        v->push_back(cur);
        cur.clear();
      }
    }
    fclose(f);
    return v;
  }();
  return *args;
}

double spawn_timeout() {
  const char *s = getenv("MPROC_SPAWN_TIMEOUT");
  double t = s ? strtod(s, nullptr) : 0;
  return t > 0 ? t : 30.0;
}

// This process's open fds from 3 up to (not including) limit.
std::vector<int> open_fds_below(int limit) {
  std::vector<int> fds;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return fds;
  const int own = dirfd(d);
  for (struct dirent *e; (e = readdir(d));) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] != '.' && fd >= 3 && fd < limit && fd != own) fds.push_back(fd);
  }
  closedir(d);
  return fds;
}

// Write everything (non-blocking socket) while watching for an early Ack or the child's end.
// 0, or 1 when the socket became readable first (the child answered early), or an error.
int send_all(int sock, int pidfd, const char *p, size_t len, const Deadline &d) {
  while (len > 0) {
    ssize_t n = send(sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return 1;  // EPIPE: the child is gone; read why below
    struct pollfd pf[2] = {{sock, POLLOUT | POLLIN, 0}, {pidfd, POLLIN, 0}};
    int r = poll(pf, 2, d.poll_ms());
    if (r < 0 && errno != EINTR) return fail_errno(errno, "poll");
    if (pf[0].revents & POLLIN || pf[1].revents) return 1;
    if (r == 0 && d.expired()) return MPROC_ETIMEDOUT;
  }
  return 0;
}

bool read_full(int fd, void *buf, size_t len) {
  auto *p = static_cast<char *>(buf);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Wait for the child's Ack. 0 when it runs the body, else the failure (recorded).
int wait_ack(int sock, int pidfd, const Deadline &d, double timeout) {
  for (;;) {
    struct pollfd pf[2] = {{sock, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int r = poll(pf, 2, d.poll_ms());
    if (r < 0 && errno != EINTR) return fail_errno(errno, "poll");
    if (pf[0].revents) break;
    if (pf[1].revents) {
      // Ended: an Ack it wrote before exiting is still in the socket.
      pf[0].revents = 0;
      if (poll(pf, 1, 0) == 1) break;
      return fail(MPROC_ECHILD, "the spawned program ended before it called mproc_spawn_guard()");
    }
    if (r == 0 && d.expired())
      return fail(MPROC_ECHILD,
                  "the spawned program did not call mproc_spawn_guard() within %g s (killed; "
                  "MPROC_SPAWN_TIMEOUT sets the wait)", timeout);
  }
  Ack a{};
  if (!read_full(sock, &a, sizeof a))
    return fail(MPROC_ECHILD, "the spawned program ended before it called mproc_spawn_guard()");
  if (a.code == 0) return 0;
  std::string msg(a.msg_len > 4096 ? 4096 : a.msg_len, '\0');
  if (!read_full(sock, msg.data(), msg.size())) msg = "(no detail)";
  return fail(a.code < 0 ? a.code : MPROC_EUNKNOWN, "spawned child: %s", msg.c_str());
}

void send_ack(int fd, int code, const std::string &msg) {
  Ack a = {code, static_cast<uint32_t>(msg.size())};
  std::string out(reinterpret_cast<const char *>(&a), sizeof a);
  out += msg;
  const char *p = out.data();
  size_t len = out.size();
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

// The bootstrap fd of this process when it is a spawned child that has not passed the guard.
int boot_fd() {
  const char *v = getenv(kEnv);
  if (!v || g_guarded) return -1;
  char *end = nullptr;
  long fd = strtol(v, &end, 10);
  struct stat st;
  if (*end || fd < 0 || fd > 1 << 20 || fstat(static_cast<int>(fd), &st) < 0 ||
      !S_ISSOCK(st.st_mode))
    return -1;
  return static_cast<int>(fd);
}

[[noreturn]] void child_fail(int fd, int code, const std::string &msg) {
  send_ack(fd, code, msg);
  fprintf(stderr, "mproc: spawned child %d: %s\n", static_cast<int>(getpid()), msg.c_str());
  _exit(255);
}

}  // namespace

void spawn_refuse_unguarded(const char *what) {
  int fd = boot_fd();
  if (fd < 0) return;
  child_fail(fd, MPROC_ECHILD,
             std::string("the spawned program called ") + what +
                 " before mproc_spawn_guard(): call the guard early in main()");
}

int spawn_guard() {
  int fd = boot_fd();
  unsetenv(kEnv);  // not for this child's own children
  if (fd < 0) return 0;
  g_guarded = true;
  Boot b{};
  if (!read_full(fd, &b, sizeof b) || b.magic != kMagic) _exit(255);  // parent gone or not ours
  std::string fn(b.fn_len, '\0'), name(b.name_len, '\0');
  std::vector<char> arg(b.arg_len);
  if (!read_full(fd, fn.data(), fn.size()) || !read_full(fd, name.data(), name.size()) ||
      !read_full(fd, arg.data(), arg.size()))
    _exit(255);
  uintptr_t f = fn_lookup(fn.data(), fn.size(), FnKind::kProcess);
  if (!f)
    child_fail(fd, MPROC_ENOENT, "no process function is registered as '" + fn +
                                     "' (register it before mproc_spawn_guard())");
  if (b.daemon) {
    // Killed when the parent ends; a parent already gone means we are orphaned.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != b.parent_pid) _exit(255);
  }
  reset_fault_signals();  // handlers the program installed before the guard (a sanitizer's)
  Runtime &rt = Runtime::get();
  rt.current_name = name;
  rt.parent_pid = b.parent_pid;
  send_ack(fd, 0, "");
  close(fd);
  auto body = reinterpret_cast<mproc_process_fn>(f);
  child_exit(body(arg.empty() ? nullptr : arg.data(), arg.size(), nullptr));
}

int start_spawn(const std::shared_ptr<ProcessCore> &c) {
  spawn_refuse_unguarded("mproc_process_start");
  const char *fn = fn_name(reinterpret_cast<uintptr_t>(c->fn));
  if (!fn || fn_lookup(fn, strlen(fn), FnKind::kProcess) != reinterpret_cast<uintptr_t>(c->fn))
    return fail(MPROC_EINVAL, "the body of '%s' is not registered: a spawned child finds it by "
                "name (mproc_process_register)", c->name.c_str());
  const std::vector<std::string> &args = c->exec_argv.empty() ? own_argv() : c->exec_argv;
  if (args.empty()) return fail(MPROC_ENOENT, "cannot read this program's arguments");
  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  // The bootstrap socket goes above every passed fd; nothing else of ours is inherited.
  int boot_fd = kBootFd;
  for (int fd : c->pass_fds) boot_fd = std::max(boot_fd, fd + 1);
  std::string env_fd = std::string(kEnv) + "=" + std::to_string(boot_fd);
  std::vector<char *> envp;
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, kEnv, strlen(kEnv)) != 0 || (*e)[strlen(kEnv)] != '=') envp.push_back(*e);
  envp.push_back(env_fd.data());
  envp.push_back(nullptr);

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return fail_errno(errno, "socketpair");
  UniqueFd sock(sv[0]), child_end(sv[1]);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  // dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29); the fds below the socket that are not
  // passed are closed one by one, everything above it at once.
  posix_spawn_file_actions_adddup2(&fa, sv[1], boot_fd);
  for (int fd : c->pass_fds) posix_spawn_file_actions_adddup2(&fa, fd, fd);
  if (!c->pass_fds.empty())
    for (int fd : open_fds_below(boot_fd))
      if (std::find(c->pass_fds.begin(), c->pass_fds.end(), fd) == c->pass_fds.end())
        posix_spawn_file_actions_addclose(&fa, fd);
  posix_spawn_file_actions_addclosefrom_np(&fa, boot_fd + 1);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = -1;
  const char *path = c->exec_argv.empty() ? "/proc/self/exe" : argv[0];
  int err = posix_spawn(&pid, path, &fa, &at, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (err) return fail(errno_to_code(err), "posix_spawn %s: %s", path, strerror(err));
  child_end.reset();
  UniqueFd pidfd(pidfd_open(pid, 0));
  if (!pidfd.valid()) {
    int e = errno;
    kill_and_reap(pid);
    return fail_errno(e, "pidfd_open");
  }

  Boot b = {kMagic, static_cast<uint32_t>(strlen(fn)), static_cast<uint32_t>(c->name.size()),
            c->daemon, static_cast<int32_t>(getpid()), 0, c->arg.size()};
  const double timeout = spawn_timeout();
  const Deadline d = Deadline::after(timeout);
  std::string head(reinterpret_cast<const char *>(&b), sizeof b);
  head += fn;
  head += c->name;
  int rc = send_all(sock.get(), pidfd.get(), head.data(), head.size(), d);
  if (rc == 0) rc = send_all(sock.get(), pidfd.get(), c->arg.data(), c->arg.size(), d);
  if (rc >= 0) {
    rc = wait_ack(sock.get(), pidfd.get(), d, timeout);
  } else if (rc == MPROC_ETIMEDOUT) {
    rc = fail(MPROC_ECHILD, "the spawned program did not call mproc_spawn_guard() within %g s "
              "(killed; MPROC_SPAWN_TIMEOUT sets the wait)", timeout);
  }
  if (rc < 0) {
    kill_and_reap(pid);  // not reaped by anyone else before: the pid is still ours
    return rc;
  }
  return track_child(c, pid, std::move(pidfd));
}

}  // namespace mproc
