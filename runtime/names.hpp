// Functions registered by name: how a task reaches a worker that runs another image of the
// program (a pool backend such as MPI), where function addresses mean nothing.
#pragma once
#include <cstdint>
#include <string>

namespace mproc {

enum class FnKind { kTask = 1, kElem = 2, kInit = 3, kProcess = 4 };

// Register fn under name. 0, or MPROC_EINVAL / ENAMETOOLONG / EEXIST (recorded with fail()).
int register_fn(const char *name, FnKind kind, uintptr_t fn);
// The name fn was registered under (valid for the life of the process), or nullptr.
const char *fn_name(uintptr_t fn);
// The function registered under name with that kind, or 0.
uintptr_t fn_lookup(const char *name, size_t len, FnKind kind);

}  // namespace mproc
