// Starting children and tracking their end.
//
// fork: the caller forks; the parent opens a pidfd for the child (no pid-reuse race: the child
// cannot be reaped before we waitid on that pidfd) and hands it to the supervisor, whose uv_poll
// fires when the child ends; waitid(P_PIDFD) then reaps exactly that child, never anyone else's.
// forkserver: see forkserver.cpp; the helper reaps and reports the status over a socket.
// spawn: see spawn.cpp; once started, its child is tracked exactly as a forked one.
#include "proc/process.hpp"

#include <signal.h>
#include "base/pidfd.hpp"
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/interrupt.hpp"
#include "proc/forkserver.hpp"
#include "proc/runtime.hpp"
#include "proc/spawn.hpp"

namespace mproc {

void ProcessCore::mark_exited(int code) {
  {
    std::lock_guard<std::mutex> g(mu);
    if (state == State::kExited) return;
    exitcode = code;
    state = State::kExited;
  }
  cv.notify_all();
  if (on_exit) on_exit();
}

bool ProcessCore::try_reap() {
  {
    std::lock_guard<std::mutex> g(mu);
    if (state == State::kExited) return true;
    siginfo_t si{};
    int r;
    do {
      r = waitid(P_PIDFD, pidfd.get(), &si, WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0 || si.si_pid == 0) return false;
    exitcode = exitcode_from_siginfo(si.si_code, si.si_status);
    state = State::kExited;
  }
  cv.notify_all();
  if (on_exit) on_exit();
  return true;
}

int ProcessCore::wait_exit(double timeout, bool interruptible) {
  Deadline d = Deadline::after(timeout);
  const uint32_t gen = interrupt_generation();
  if (direct_child()) {
    // The joiner watches the pidfd itself; the supervisor lets go of it meanwhile, so that a
    // joined child's end wakes one thread, not two. It takes it back if the join gives up.
    Supervisor &sup = Runtime::get().supervisor();
    sup.unwatch_child(pidfd.get());
    int rc = MPROC_ETIMEDOUT;
    for (;;) {
      {
        std::lock_guard<std::mutex> g(mu);
        if (state == State::kExited) return 0;
      }
      int ms = d.poll_ms();
      if (interruptible && (ms < 0 || ms > 50)) ms = 50;
      struct pollfd pf = {pidfd.get(), POLLIN, 0};
      int r = poll(&pf, 1, ms);
      if (r < 0 && errno != EINTR) break;
      if (try_reap()) return 0;
      if (interruptible && interrupted_since(gen)) {
        rc = MPROC_EINTR;
        break;
      }
      if (d.expired()) break;
    }
    // Give the child back to the supervisor (if it is not running any more, the next join,
    // is_alive or shutdown reaps the child).
    if (auto self = self_ref.lock()) sup.watch_child(pidfd.get(), [self] { return !self->try_reap(); });
    if (try_reap()) return 0;
    if (rc != MPROC_ETIMEDOUT || d.expired()) return rc;
    // poll() itself failed: wait for the supervisor's wake-up below.
  }
  std::unique_lock<std::mutex> g(mu);
  auto done = [this] { return state == State::kExited; };
  if (interruptible) return wait_interruptible(g, cv, d, done);
  if (timeout < 0) {
    cv.wait(g, done);
    return 0;
  }
  auto dur = std::chrono::duration<double>(timeout);
  if (!cv.wait_for(g, std::chrono::duration_cast<std::chrono::steady_clock::duration>(dur), done))
    return MPROC_ETIMEDOUT;
  return 0;
}

bool ProcessCore::alive() {
  {
    std::lock_guard<std::mutex> g(mu);
    if (state != State::kRunning) return false;
  }
  // A child of ours: ask the kernel rather than wait for the supervisor's wake-up.
  if (direct_child() && owner_pid == current_pid()) return !try_reap();
  return true;
}

int exitcode_from_siginfo(int cld_code, int status) {
  if (cld_code == CLD_EXITED) return status;
  return -status;  // CLD_KILLED, CLD_DUMPED
}

int exitcode_from_wstatus(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return -WTERMSIG(wstatus);
  return 255;
}

[[noreturn]] void child_exit(int code) {
  // Join this child's own children (as Python's _exit_function does), then leave without
  // atexit handlers or destructors of the parent's state.
  Runtime::get().shutdown();
  fflush(stdout);
  fflush(stderr);
  _exit(code & 0xff);
}

// A fault in a child must end the child with that signal: a crash handler inherited from the
// parent (a test framework's longjmp, a debugger hook) would resume the parent's code in the
// child. Other dispositions are kept, as Python's fork keeps them.
void reset_fault_signals() {
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT, SIGTRAP}) {
    struct sigaction sa = {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

[[noreturn]] void child_run(ProcessCore &core, int logical_parent, int real_parent) {
  // pthread_atfork has already abandoned the parent's runtime.
  reset_fault_signals();
  Runtime &rt = Runtime::get();
  rt.current_name = core.name;
  rt.parent_pid = logical_parent;
  if (core.daemon) {
    // Killed when the parent ends, also by a crash; a parent already gone means we are orphaned.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != real_parent) _exit(255);
  }
  int rc = core.fn(core.arg.empty() ? nullptr : core.arg.data(), core.arg.size(), core.payload);
  child_exit(rc);
}

namespace {
int start_fork(const std::shared_ptr<ProcessCore> &c) {
  // The supervisor thread is started after the fork when it is not running yet: a child forked
  // while a thread is starting could inherit a lock that thread holds (seen with ASan's
  // allocator). The child cannot end unnoticed meanwhile: its pidfd stays readable.
  // Buffered output would otherwise be printed by the parent and again by the child.
  fflush(stdout);
  fflush(stderr);
  const int parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return fail_errno(errno, "fork");
  if (pid == 0) child_run(*c, parent, parent);

  UniqueFd fd(pidfd_open(pid, 0));
  if (!fd.valid()) {
    int err = errno;
    kill_and_reap(pid);
    return fail_errno(err, "pidfd_open");
  }
  return track_child(c, pid, std::move(fd));
}
}  // namespace

int track_child(const std::shared_ptr<ProcessCore> &c, int pid, UniqueFd pidfd) {
  Runtime &rt = Runtime::get();
  const int fd = pidfd.get();
  {
    std::lock_guard<std::mutex> g(c->mu);
    c->pid = pid;
    c->pidfd = std::move(pidfd);
    c->state = ProcessCore::State::kRunning;
  }
  // The supervisor reaps the child when nobody joins it (is_alive, shutdown, pools).
  c->self_ref = c;
  int rc = rt.ensure_supervisor();
  if (rc == 0) rc = rt.supervisor().watch_child(fd, [c] { return !c->try_reap(); });
  if (rc < 0) {
    // No supervisor: reap synchronously so that no zombie remains.
    c->mark_exited(kill_and_reap(pid));
    return rc;
  }
  return 0;
}

int kill_and_reap(int pid) {
  kill(pid, SIGKILL);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return exitcode_from_wstatus(st);
}

int process_start(const std::shared_ptr<ProcessCore> &c) {
  spawn_refuse_unguarded("mproc_process_start");
  switch (c->method) {
    case MPROC_START_FORK:
      return start_fork(c);
    case MPROC_START_SPAWN:
      return start_spawn(c);
    case MPROC_START_FORKSERVER:
      return (c->server ? *c->server : Runtime::get().forkserver()).start_child(c);
    default:
      return fail(MPROC_ENOSYS, "start method %d is not available", c->method);
  }
}

int process_signal(ProcessCore &c, int signo) {
  std::lock_guard<std::mutex> g(c.mu);
  if (c.state == ProcessCore::State::kNew) return fail(MPROC_ENOTSTARTED, "process not started");
  if (c.state == ProcessCore::State::kExited) return 0;
  // The pidfd stays valid until the handle is freed: no signal can reach a recycled pid.
  if (pidfd_send_signal(c.pidfd.get(), signo, nullptr, 0) < 0) {
    if (errno == ESRCH) return 0;  // ended, not yet reaped
    return fail_errno(errno, "pidfd_send_signal");
  }
  return 0;
}

}  // namespace mproc
