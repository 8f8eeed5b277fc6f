#include "runtime.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "error.hpp"
#include "forkserver.hpp"
#include "pool.hpp"
#include "process.hpp"

namespace mproc {
namespace {
// Plain pthread mutexes: a forked child re-initialises them (another thread of the parent may
// have held them at the moment of the fork).
pthread_mutex_t g_rt_mu = PTHREAD_MUTEX_INITIALIZER;
Runtime *g_rt = nullptr;

pthread_mutex_t g_handles_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_pid{0};
std::unordered_map<const void *, HandleKind> *g_handles = nullptr;

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

int current_pid() {
  int pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    Runtime::get();  // makes sure the fork handler that resets the cache is registered
    pid = getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

void Runtime::after_fork_child() {
  g_pid.store(0, std::memory_order_relaxed);
  g_rt_mu = PTHREAD_MUTEX_INITIALIZER;
  g_handles_mu = PTHREAD_MUTEX_INITIALIZER;
  g_rt = nullptr;  // the parent's runtime (threads, loop, forkserver) does not exist here
  forkserver_close_in_child();
}

int Runtime::ensure_supervisor() {
  std::lock_guard<std::mutex> g(mu_);
  return sup_.start();
}

ForkServer &Runtime::forkserver() {
  std::lock_guard<std::mutex> g(mu_);
  if (!fs_) fs_ = std::make_unique<ForkServer>();
  return *fs_;
}

int Runtime::shutdown() {
  const int self = getpid();
  pools_shutdown();  // pools first: their dispatchers would replace workers ended below
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
  std::lock_guard<std::mutex> g(mu_);
  sup_.stop();
  if (fs_) fs_->stop();
  return 0;
}

void handle_register(const void *h, HandleKind kind) {
  pthread_mutex_lock(&g_handles_mu);
  if (!g_handles) g_handles = new std::unordered_map<const void *, HandleKind>();
  (*g_handles)[h] = kind;
  pthread_mutex_unlock(&g_handles_mu);
}

// The last handle this thread found live, valid while no handle was unregistered since: a loop
// of calls on one handle (put/get, send/recv) skips the registry's lock and hash lookup.
std::atomic<uint64_t> g_unregistered{0};
// initial-exec: read inline on every call of a shim, not through __tls_get_addr (24 bytes of the
// static TLS that glibc keeps for libraries, as t_cached_tid)
__thread const void *t_live __attribute__((tls_model("initial-exec"))) = nullptr;
__thread HandleKind t_live_kind __attribute__((tls_model("initial-exec")));
__thread uint64_t t_live_gen __attribute__((tls_model("initial-exec"))) = 0;

void handle_unregister(const void *h) {
  pthread_mutex_lock(&g_handles_mu);
  if (g_handles) g_handles->erase(h);
  g_unregistered.fetch_add(1, std::memory_order_acq_rel);
  pthread_mutex_unlock(&g_handles_mu);
}

bool handle_valid(const void *h, HandleKind kind) {
  if (!h) return false;
  const uint64_t gen = g_unregistered.load(std::memory_order_acquire);
  if (h == t_live && kind == t_live_kind && gen == t_live_gen) return true;
  pthread_mutex_lock(&g_handles_mu);
  bool ok = false;
  if (g_handles) {
    auto it = g_handles->find(h);
    ok = it != g_handles->end() && it->second == kind;
  }
  pthread_mutex_unlock(&g_handles_mu);
  if (ok) {
    t_live = h;
    t_live_kind = kind;
    t_live_gen = gen;
  }
  return ok;
}

void for_each_handle(HandleKind kind, const std::function<void(void *)> &fn) {
  pthread_mutex_lock(&g_handles_mu);
  if (g_handles)
    for (auto &kv : *g_handles)
      if (kv.second == kind) fn(const_cast<void *>(kv.first));
  pthread_mutex_unlock(&g_handles_mu);
}

}  // namespace mproc
