// Pool backends (mproc/backend.h): the registry of transports by name, and the parts of a pool
// whose workers are a transport's (MPI ranks, ...) rather than local processes: the claim on
// the backend (one pool at a time), starting a worker (its init message) and collecting results.
// The worker's side is serve_backend (worker.cpp).
#include <string.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/error.hpp"
#include "base/names.hpp"
#include "pool/pool.hpp"
#include "pool/wire.hpp"

namespace mproc {

namespace {
struct Backend {
  mproc_transport_t t;
  std::string name;
  bool busy = false;  // a pool uses it
};
std::mutex g_backends_mu;
std::map<std::string, std::unique_ptr<Backend>> &backends() {
  static auto *m = new std::map<std::string, std::unique_ptr<Backend>>;
  return *m;
}
}  // namespace

int backend_register(const mproc_transport_t &t) {
  if (t.size < sizeof(mproc_transport_t))
    return fail(MPROC_EINVAL, "t->size %zu is not sizeof(mproc_transport_t)", t.size);
  if (!t.name || !*t.name || !t.send || !t.recv || !t.release || t.nworkers < 1)
    return fail(MPROC_EINVAL, "a transport needs a name, send, recv, release and workers >= 1");
  if (strcmp(t.name, "local") == 0) return fail(MPROC_EINVAL, "'local' is the built-in backend");
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto &m = backends();
  if (m.count(t.name)) return fail(MPROC_EEXIST, "backend '%s' is registered already", t.name);
  auto b = std::make_unique<Backend>();
  b->t = t;
  b->name = t.name;
  b->t.name = b->name.c_str();
  m.emplace(b->name, std::move(b));
  return 0;
}

int backend_unregister(const char *name) {
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto &m = backends();
  auto it = m.find(name);
  if (it == m.end()) return fail(MPROC_ENOENT, "no backend '%s' is registered", name);
  if (it->second->busy) return fail(MPROC_EBUSY, "a pool uses backend '%s'", name);
  m.erase(it);
  return 0;
}

int backend_serve(const mproc_transport_t &t, int worker, void *payload) {
  if (t.size < sizeof(mproc_transport_t) || !t.send || !t.recv || !t.release)
    return fail(MPROC_EINVAL, "a transport needs its size, send, recv and release");
  int rc = serve_backend(t, worker, payload);
  return rc < 0 ? fail(rc, "the transport failed: %s", mproc_strerror(rc)) : 0;
}

int Pool::attach_backend(const mproc_pool_opts_t &o) {
  const char *want = o.backend;
  if (!want) want = getenv("MPROC_POOL_BACKEND");
  if (!want || !*want || strcmp(want, "local") == 0) return 0;
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto it = backends().find(want);
  if (it == backends().end())
    return fail(MPROC_ENOENT,
                "no pool backend '%s' is registered (an MPI pool needs libmproc-mpi and "
                "mproc_mpi_init(), see mproc/mpi.h)", want);
  Backend &b = *it->second;
  if (b.busy)
    return fail(MPROC_EBUSY, "a pool over backend '%s' is open already (one at a time)", want);
  if (o.task_timeout > 0 || o.max_tasks_per_child > 0)
    return fail(MPROC_ENOSYS, "task timeouts and max_tasks_per_child need workers the pool can "
                              "kill and replace: not on the '%s' backend", want);
  if (o.initializer && !fn_name(reinterpret_cast<uintptr_t>(o.initializer)))
    return fail(MPROC_EINVAL, "the initializer is not registered (mproc_init_register): the '%s' "
                              "backend runs functions by name", want);
  if (o.workers > b.t.nworkers)
    return fail(MPROC_EINVAL, "%d workers asked, the '%s' backend has %d", o.workers, want,
                b.t.nworkers);
  b.busy = true;
  transport_ = b.t;
  remote_ = true;
  attached_ = true;
  return 0;
}

void Pool::detach_backend() {
  if (!remote_ || !attached_) return;
  attached_ = false;
  std::lock_guard<std::mutex> g(g_backends_mu);
  auto it = backends().find(transport_.name);
  if (it != backends().end()) it->second->busy = false;
}

int Pool::spawn_remote(size_t i) {
  if (init_id_ == 0) init_id_ = next_id_++;
  const char *iname =
      opts_.initializer ? fn_name(reinterpret_cast<uintptr_t>(opts_.initializer)) : nullptr;
  WireHdr wh = {kWireMagic, static_cast<uint32_t>(iname ? strlen(iname) : 0)};
  TaskHdr th = {init_id_, kMsgInit, 0, 0, 0, 0};
  struct iovec iov[4] = {{&wh, sizeof wh},
                         {const_cast<char *>(iname), wh.name_len},
                         {&th, sizeof th},
                         {init_arg_.data(), init_arg_.size()}};
  new (slot(i)) SlotShm();
  workers_[i] = Worker();
  int rc = transport_.send(transport_.self, static_cast<int>(i), iov, 4,
                           iname ? "the pool's initializer" : "the pool's start");
  if (rc < 0)
    return fail(rc, "cannot reach worker %zu over the '%s' backend: %s", i, transport_.name,
                mproc_strerror(rc));
  return 0;
}

bool Pool::collect_remote() {
  bool any = false;
  for (int k = 0; k < 1024; k++) {
    void *m = nullptr;
    size_t len = 0;
    int w = -1;
    int rc = transport_.recv(transport_.self, 0, &w, &m, &len);
    if (rc == 0) break;
    if (rc < 0) {
      set_broken(rc, format("the '%s' backend failed to receive: %s", transport_.name,
                            mproc_strerror(rc)));
      break;
    }
    if (w >= 0 && static_cast<size_t>(w) < workers_.size()) on_result(static_cast<size_t>(w),
                                                                      static_cast<char *>(m), len);
    transport_.release(transport_.self, m);
    any = true;
  }
  return any;
}

}  // namespace mproc
