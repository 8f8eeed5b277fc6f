// The spawn start method: a fresh exec of the program (posix_spawn), its body found by name.
#pragma once
#include <memory>

namespace mproc {

struct ProcessCore;

// Exec the child, send it the bootstrap and wait for its acknowledgement; on success the core
// is running and watched as a forked child. 0 or a negative code (recorded).
int start_spawn(const std::shared_ptr<ProcessCore> &core);
// mproc_spawn_guard(): 0 in a program not started by spawn; in a spawned child, never returns.
int spawn_guard();
// Called before any child is started: a spawned child that has not passed the guard tells its
// parent and exits here (a program without the guard must not start children of its own).
void spawn_refuse_unguarded(const char *what);

}  // namespace mproc
