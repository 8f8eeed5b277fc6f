// C ABI: processes and the runtime. Thin shims over proc/process.cpp and proc/runtime.cpp.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/interrupt.hpp"
#include "base/names.hpp"
#include "capi/capi.hpp"
#include "proc/forkserver.hpp"
#include "proc/process.hpp"
#include "proc/runtime.hpp"
#include "proc/spawn.hpp"

using mproc::fail;
using mproc::HandleKind;
using mproc::ProcessCore;
using mproc::Runtime;

namespace {
// A live handle (enough for the calls that only read it); the others must also be made in this
// process.
int check_live(const mproc_process_t *p) {
  return mproc::check_live(p, HandleKind::kProcess, "process");
}
int check(const mproc_process_t *p) {
  if (int rc = check_live(p)) return rc;
  if (p->core->owner_pid != mproc::current_pid())
    return fail(MPROC_EWRONGPROC, "handle belongs to process %d, not to this process %d",
                p->core->owner_pid, static_cast<int>(getpid()));
  return 0;
}

// With p->core->mu held: MPROC_ENOTSTARTED unless the process was started.
int check_started(const mproc_process_t *p) {
  if (p->core->state != ProcessCore::State::kNew) return 0;
  return fail(MPROC_ENOTSTARTED, "process '%s' was never started", p->core->name.c_str());
}

bool valid_method(int m) {
  return m == MPROC_START_FORK || m == MPROC_START_FORKSERVER || m == MPROC_START_SPAWN;
}
}  // namespace

extern "C" {

MPROC_API int mproc_process_opts_init(mproc_process_opts_t *opts) {
  return MPROC_GUARD(if (!opts) return fail(MPROC_EINVAL, "opts is NULL");
                     *opts = mproc_process_opts_t MPROC_PROCESS_OPTS_INIT; return 0;);
}

MPROC_API int mproc_process_new(mproc_process_t **out, mproc_process_fn fn, const void *arg,
                                size_t len, const mproc_process_opts_t *opts) {
  return MPROC_NEW(out, {
    if (!fn) return fail(MPROC_EINVAL, "process function is NULL");
    if (!arg && len > 0) return fail(MPROC_EINVAL, "argument is NULL but its length is %zu", len);
    if (len > MPROC_PROCESS_ARG_MAX)
      return fail(MPROC_EMSGSIZE, "argument of %zu bytes is over the limit of %zu", len,
                  MPROC_PROCESS_ARG_MAX);
    mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
    if (int rc = mproc::read_opts(opts, offsetof(mproc_process_opts_t, payload) + sizeof(void *),
                                  "mproc_process_opts_t", &o))
      return rc;
    if (o.start_method != MPROC_START_DEFAULT && !valid_method(o.start_method))
      return fail(MPROC_EINVAL, "unknown start method %d", o.start_method);
    const int method =
        o.start_method == MPROC_START_DEFAULT ? Runtime::get().default_method.load()
                                              : o.start_method;
    if (method == MPROC_START_SPAWN && o.payload)
      return fail(MPROC_EINVAL, "a payload pointer cannot reach a spawned child (pass bytes)");
    if (o.argv && method != MPROC_START_SPAWN)
      return fail(MPROC_EINVAL, "argv is for the spawn start method only");
    if (o.argv && !o.argv[0]) return fail(MPROC_EINVAL, "argv is empty");
    if ((o.fds || o.nfds) && method != MPROC_START_SPAWN)
      return fail(MPROC_EINVAL, "fds are for the spawn start method only (others inherit all)");
    if (!o.fds && o.nfds) return fail(MPROC_EINVAL, "fds is NULL but nfds is %zu", o.nfds);
    for (size_t i = 0; i < o.nfds; i++)
      if (o.fds[i] < 3 || fcntl(o.fds[i], F_GETFD) < 0)
        return fail(MPROC_EBADF, "fds[%zu] = %d is not an open fd above 2", i, o.fds[i]);
    if (o.name && strlen(o.name) > MPROC_PROCESS_NAME_MAX)
      return fail(MPROC_ENAMETOOLONG, "name is longer than %d bytes", MPROC_PROCESS_NAME_MAX);

    auto h = std::make_unique<mproc_process>();
    h->core = std::make_shared<ProcessCore>();
    ProcessCore &c = *h->core;
    Runtime &rt = Runtime::get();
    c.name = o.name ? o.name : "Process-" + std::to_string(++rt.counter);
    c.daemon = o.daemon != 0;
    c.method = method;
    for (const char *const *a = o.argv; a && *a; a++) c.exec_argv.emplace_back(*a);
    if (o.nfds) c.pass_fds.assign(o.fds, o.fds + o.nfds);
    c.fn = fn;
    c.payload = o.payload;
    if (len) c.arg.assign(static_cast<const char *>(arg), static_cast<const char *>(arg) + len);
    c.owner_pid = getpid();
    mproc::handle_register(h.get(), HandleKind::kProcess);
    *out = h.release();
    return 0;
  });
}

MPROC_API int mproc_process_start(mproc_process_t *p) {
  return MPROC_ON(p, {
    {
      std::lock_guard<std::mutex> g(p->core->mu);
      if (p->core->state != ProcessCore::State::kNew)
        return fail(MPROC_ESTARTED, "process '%s' was already started", p->core->name.c_str());
    }
    return mproc::process_start(p->core);
  });
}

MPROC_API int mproc_process_join(mproc_process_t *p, double timeout) {
  // check(p) also makes a child joining its own handle EWRONGPROC.
  return MPROC_WAIT_ON(p, timeout, {
    {
      std::lock_guard<std::mutex> g(p->core->mu);
      if (int rc = check_started(p)) return rc;
    }
    int rc = p->core->wait_exit(timeout, true);
    if (rc == MPROC_EINTR) return fail(MPROC_EINTR, "interrupted");
    if (rc != 0) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
    return 0;
  });
}

MPROC_API int mproc_process_is_alive(const mproc_process_t *p) {
  return MPROC_ON(p, return p->core->alive() ? 1 : 0;);
}

MPROC_API int mproc_process_pid(const mproc_process_t *p) {
  return MPROC_GUARD({
    if (int rc = check_live(p)) return rc;
    std::lock_guard<std::mutex> g(p->core->mu);
    if (int rc = check_started(p)) return rc;
    return p->core->pid;
  });
}

MPROC_API int mproc_process_exitcode(const mproc_process_t *p, int *out) {
  return MPROC_ON(p, {
    if (!out) return fail(MPROC_EINVAL, "out is NULL");
    std::lock_guard<std::mutex> g(p->core->mu);
    if (int rc = check_started(p)) return rc;
    if (p->core->state == ProcessCore::State::kRunning)
      return fail(MPROC_ERUNNING, "process '%s' (pid %d) is still running", p->core->name.c_str(),
                  p->core->pid);
    *out = p->core->exitcode;
    return 0;
  });
}

MPROC_API const char *mproc_process_name(const mproc_process_t *p) {
  if (!p || !mproc::handle_valid(p, HandleKind::kProcess)) {
    mproc::api_result(__func__, fail(p ? MPROC_EBADF : MPROC_EINVAL, "bad process handle"));
    return nullptr;
  }
  return p->core->name.c_str();
}

MPROC_API int mproc_process_daemon(const mproc_process_t *p) {
  return MPROC_GUARD(if (int rc = check_live(p)) return rc; return p->core->daemon ? 1 : 0;);
}

MPROC_API int mproc_process_sentinel(const mproc_process_t *p) {
  return MPROC_ON(p, {
    std::lock_guard<std::mutex> g(p->core->mu);
    if (int rc = check_started(p)) return rc;
    return p->core->pidfd.get();
  });
}

MPROC_API int mproc_process_signal(mproc_process_t *p, int signo) {
  return MPROC_ON(p, if (signo <= 0 || signo >= NSIG)
                      return fail(MPROC_EINVAL, "bad signal number %d", signo);
                  return mproc::process_signal(*p->core, signo););
}

MPROC_API int mproc_process_terminate(mproc_process_t *p) {
  return MPROC_ON(p, return mproc::process_signal(*p->core, SIGTERM););
}

MPROC_API int mproc_process_kill(mproc_process_t *p) {
  return MPROC_ON(p, return mproc::process_signal(*p->core, SIGKILL););
}

MPROC_API int mproc_process_free(mproc_process_t *p) {
  return MPROC_GUARD({
    if (!p) return 0;
    if (int rc = check_live(p)) return rc;
    if (p->core->owner_pid == getpid() && p->core->alive())
      return fail(MPROC_ERUNNING, "process '%s' (pid %d) is still running; join or kill it first",
                  p->core->name.c_str(), p->core->pid);
    mproc::handle_unregister(p);
    delete p;
    return 0;
  });
}

MPROC_API int mproc_set_start_method(int method) {
  return MPROC_GUARD({
    if (!valid_method(method)) return fail(MPROC_EINVAL, "unknown start method %d", method);
    Runtime::get().default_method = method;
    return 0;
  });
}

MPROC_API int mproc_process_register(const char *name, mproc_process_fn fn) {
  return MPROC_GUARD({
    return mproc::register_fn(name, mproc::FnKind::kProcess, reinterpret_cast<uintptr_t>(fn));
  });
}

MPROC_API int mproc_spawn_guard(void) { return MPROC_GUARD({ return mproc::spawn_guard(); }); }

MPROC_API int mproc_get_start_method(void) { return Runtime::get().default_method.load(); }

MPROC_API int mproc_forkserver_start(void) {
  return MPROC_GUARD({ return Runtime::get().forkserver().ensure_started(); });
}

MPROC_API int mproc_set_forkserver_autorestart(int on) {
  return MPROC_GUARD({
    Runtime::get().forkserver().set_auto_restart(on != 0);
    return 0;
  });
}

MPROC_API const char *mproc_current_name(void) { return Runtime::get().current_name.c_str(); }

MPROC_API int mproc_parent_pid(void) { return Runtime::get().parent_pid; }

MPROC_API int mproc_active_children(mproc_process_t **out, size_t cap) {
  return MPROC_GUARD({
    if (!out && cap > 0) return fail(MPROC_EINVAL, "out is NULL but cap is %zu", cap);
    const int self = getpid();
    size_t n = 0;
    mproc::for_each_handle(HandleKind::kProcess, [&](void *h) {
      auto *p = static_cast<mproc_process_t *>(h);
      if (p->core->owner_pid != self || !p->core->alive()) return;
      if (n < cap) out[n] = p;
      ++n;
    });
    return static_cast<int>(n);
  });
}

MPROC_API void mproc_interrupt(void) { mproc::interrupt_now(); }

MPROC_API int mproc_handle_sigint(int on) {
  return MPROC_GUARD({
    if (mproc::install_sigint(on != 0) < 0) return mproc::fail_errno(errno, "sigaction");
    return 0;
  });
}

MPROC_API int mproc_shutdown(void) {
  return MPROC_GUARD({ return Runtime::get().shutdown(); });
}

}  // extern "C"
