// Functions registered by name: how a task reaches a worker that runs another image of the
// program (a pool backend such as MPI), where function addresses mean nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mproc {

enum class FnKind { kTask = 1, kElem = 2, kInit = 3, kProcess = 4 };

// Register fn under name. 0, or MPROC_EINVAL / ENAMETOOLONG / EEXIST (recorded with fail()).
int register_fn(const char *name, FnKind kind, uintptr_t fn);
// The name fn was registered under (valid for the life of the process), or nullptr.
const char *fn_name(uintptr_t fn);
// The function registered under name with that kind, or 0.
uintptr_t fn_lookup(const char *name, size_t len, FnKind kind);
// Every registration as {name, kind, fn}, in name order (a spawned pool worker maps the
// parent's function addresses to its own through it).
struct FnEntry {
  std::string name;
  FnKind kind;
  uintptr_t fn;
};
std::vector<FnEntry> fn_entries();

}  // namespace mproc
