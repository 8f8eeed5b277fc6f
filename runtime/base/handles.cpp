#include "base/handles.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <unordered_map>

namespace mproc {
namespace {
// A plain pthread mutex: a forked child re-initialises it (another thread of the parent may have
// held it at the moment of the fork).
pthread_mutex_t g_handles_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_pid{0};
std::unordered_map<const void *, HandleKind> *g_handles = nullptr;
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

void after_fork_child() {
  g_pid.store(0, std::memory_order_relaxed);
  g_handles_mu = PTHREAD_MUTEX_INITIALIZER;
}
void register_atfork() { pthread_atfork(nullptr, nullptr, &after_fork_child); }
}  // namespace

int current_pid() {
  int pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pthread_once(&g_atfork_once, register_atfork);  // the child's cache is reset
    pid = getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

void handle_register(const void *h, HandleKind kind) {
  pthread_once(&g_atfork_once, register_atfork);  // a forked child re-initialises the lock
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

bool handle_lookup(const void *h, HandleKind kind, uint64_t gen) {
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
