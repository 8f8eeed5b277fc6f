// The table of functions registered by name (see names.hpp).
#include "base/names.hpp"

#include <cstring>
#include <map>
#include <mutex>

#include "base/error.hpp"

namespace mproc {
namespace {

constexpr size_t kMaxName = 255;

struct Entry {
  FnKind kind;
  uintptr_t fn;
};

struct Table {
  std::mutex mu;
  std::map<std::string, Entry> by_name;  // nodes are stable: fn_name hands out their keys
  std::map<uintptr_t, const std::string *> by_fn;
};

Table &table() {
  static Table *t = new Table;  // never destroyed: tasks may look names up during exit
  return *t;
}

const char *kind_name(FnKind k) {
  return k == FnKind::kTask ? "task" : k == FnKind::kElem ? "element"
                             : k == FnKind::kInit ? "init" : "process";
}

}  // namespace

int register_fn(const char *name, FnKind kind, uintptr_t fn) {
  if (!name || !*name) return fail(MPROC_EINVAL, "name is NULL or empty");
  if (!fn) return fail(MPROC_EINVAL, "function is NULL");
  size_t len = strnlen(name, kMaxName + 1);
  if (len > kMaxName) return fail(MPROC_ENAMETOOLONG, "names are at most %zu bytes", kMaxName);
  Table &t = table();
  std::lock_guard<std::mutex> g(t.mu);
  auto it = t.by_name.find(name);
  if (it != t.by_name.end()) {
    if (it->second.fn == fn && it->second.kind == kind) return 0;
    return fail(MPROC_EEXIST, "'%s' is registered already for another %s function", name,
                kind_name(it->second.kind));
  }
  auto f = t.by_fn.find(fn);
  if (f != t.by_fn.end())
    return fail(MPROC_EEXIST, "the function is registered already as '%s'", f->second->c_str());
  auto ins = t.by_name.emplace(name, Entry{kind, fn});
  t.by_fn.emplace(fn, &ins.first->first);
  return 0;
}

const char *fn_name(uintptr_t fn) {
  Table &t = table();
  std::lock_guard<std::mutex> g(t.mu);
  auto f = t.by_fn.find(fn);
  return f == t.by_fn.end() ? nullptr : f->second->c_str();
}

uintptr_t fn_lookup(const char *name, size_t len, FnKind kind) {
  Table &t = table();
  std::lock_guard<std::mutex> g(t.mu);
  auto it = t.by_name.find(std::string(name, len));
  if (it == t.by_name.end() || it->second.kind != kind) return 0;
  return it->second.fn;
}

std::vector<FnEntry> fn_entries() {
  Table &t = table();
  std::lock_guard<std::mutex> g(t.mu);
  std::vector<FnEntry> out;
  for (auto &kv : t.by_name) out.push_back({kv.first, kv.second.kind, kv.second.fn});
  return out;
}

}  // namespace mproc
