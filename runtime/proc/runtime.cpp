#include "proc/runtime.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "base/error.hpp"
#include "proc/forkserver.hpp"
#include "proc/process.hpp"

namespace mproc {
namespace {
// Plain pthread mutexes: a forked child re-initialises them (another thread of the parent may
// have held them at the moment of the fork).
pthread_mutex_t g_rt_mu = PTHREAD_MUTEX_INITIALIZER;
Runtime *g_rt = nullptr;


void at_exit_shutdown() {
  // Only a runtime that exists in this process is shut down.
  pthread_mutex_lock(&g_rt_mu);
  Runtime *rt = g_rt;
  pthread_mutex_unlock(&g_rt_mu);
  if (rt) rt->shutdown();
}

void register_hooks_once() {
  static bool done = false;  // guarded by g_rt_mu
  if (done) return;
  done = true;
  pthread_atfork(nullptr, nullptr, &Runtime::after_fork_child);
  atexit(at_exit_shutdown);
}
}  // namespace

Runtime::Runtime() {
  // MPROC_START_METHOD=fork|forkserver|spawn picks the default without changing the program.
  const char *m = getenv("MPROC_START_METHOD");
  if (!m) return;
  if (!strcmp(m, "forkserver")) default_method = MPROC_START_FORKSERVER;
  if (!strcmp(m, "spawn")) default_method = MPROC_START_SPAWN;
}

Runtime &Runtime::get() {
  pthread_mutex_lock(&g_rt_mu);
  register_hooks_once();
  if (!g_rt) g_rt = new Runtime();  // never deleted: a child must not run its destructor
  Runtime *rt = g_rt;
  pthread_mutex_unlock(&g_rt_mu);
  return *rt;
}

void Runtime::after_fork_child() {
  g_rt_mu = PTHREAD_MUTEX_INITIALIZER;
  g_rt = nullptr;  // the parent's runtime (threads, loop, forkserver) does not exist here
  forkserver_close_in_child();
}

int Runtime::ensure_supervisor() {
  std::lock_guard<std::mutex> g(mu_);
  return sup_.start();
}

void Runtime::before_shutdown(void (*fn)()) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto f : before_shutdown_)
    if (f == fn) return;
  before_shutdown_.push_back(fn);
}

ForkServer &Runtime::forkserver() {
  std::lock_guard<std::mutex> g(mu_);
  if (!fs_) fs_ = std::make_unique<ForkServer>();
  return *fs_;
}

int Runtime::shutdown() {
  const int self = getpid();
  std::vector<void (*)()> first;
  {
    std::lock_guard<std::mutex> g(mu_);
    first = before_shutdown_;
  }
  for (auto fn : first) fn();  // pools first: their dispatchers would replace workers ended below
  std::vector<std::shared_ptr<ProcessCore>> kids;
  for_each_handle(HandleKind::kProcess, [&](void *h) {
    auto &core = static_cast<mproc_process *>(h)->core;
    if (core->owner_pid == self && core->alive()) kids.push_back(core);
  });
  // As Python: daemons are terminated, everyone is joined. A daemon that ignores SIGTERM for a
  // second is killed.
  for (auto &c : kids)
    if (c->daemon) process_signal(*c, SIGTERM);
  for (auto &c : kids) {
    if (c->daemon && c->wait_exit(1.0) != 0) process_signal(*c, SIGKILL);
    c->wait_exit(-1);
  }
  ForkServer *fs;
  {
    std::lock_guard<std::mutex> g(mu_);
    sup_.stop();
    fs = fs_.get();  // made once, never freed
  }
  // Not under mu_: a forkserver starting takes its own lock, then mu_ (ensure_supervisor).
  if (fs) fs->stop();
  return 0;
}

}  // namespace mproc
