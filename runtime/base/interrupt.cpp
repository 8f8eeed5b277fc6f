#include "base/interrupt.hpp"

#include <signal.h>
#include <string.h>

#include <atomic>

namespace mproc {
namespace {
std::atomic<uint32_t> g_generation{0};
std::atomic<uint32_t> g_pending{0};
struct sigaction g_old_sigint;
std::atomic<bool> g_installed{false};

void on_sigint(int sig) {
  // A second Ctrl-C before anyone took the first one ends the program as the default would.
  if (g_pending.load()) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  interrupt_now();
}
}  // namespace

uint32_t interrupt_generation() { return g_generation.load(std::memory_order_acquire); }

bool interrupted_since(uint32_t gen) {
  if (g_pending.exchange(0) != 0) return true;
  return g_generation.load(std::memory_order_acquire) != gen;
}

void interrupt_now() {
  g_generation.fetch_add(1, std::memory_order_release);
  g_pending.store(1, std::memory_order_release);
}

int install_sigint(bool on) {
  if (on) {
    if (g_installed.exchange(true)) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(SIGINT, &sa, &g_old_sigint) == 0 ? 0 : -1;
  }
  if (!g_installed.exchange(false)) return 0;
  return sigaction(SIGINT, &g_old_sigint, nullptr) == 0 ? 0 : -1;
}

}  // namespace mproc
