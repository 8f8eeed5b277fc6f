// libFuzzer target: a pool's worker ring (spsc.hpp) that the other process has filled with
// garbage. A pool's parent reads its workers' results from such rings, and a worker its tasks:
// the fuzz bytes overwrite the ring's control words (head, tail, capacity, flags) and then its
// data where the reader looks. read() must return a message or an error, never read outside the
// ring, allocate without bound or loop forever.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "ipc/spsc.hpp"

namespace {
constexpr uint64_t kCap = 4096;
alignas(64) unsigned char g_mem[sizeof(mproc::SpscHeader) + kCap];
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto *h = new (g_mem) mproc::SpscHeader();
  mproc::SpscRing::init(h, kCap);
  char *ring = reinterpret_cast<char *>(g_mem) + sizeof *h;
  mproc::SpscRing reader(h, ring, kCap);  // made while the header was sound, as the pool does
  const size_t hn = size < sizeof *h ? size : sizeof *h;
  memcpy(g_mem, data, hn);
  const uint64_t at = h->tail.load() & (kCap - 1);
  const size_t rest = size - hn < kCap ? size - hn : kCap;
  for (size_t i = 0; i < rest; i++) ring[(at + i) & (kCap - 1)] = static_cast<char>(data[hn + i]);
  std::vector<char> msg;
  for (int i = 0; i < 64; i++) {
    int rc = reader.read(msg);
    if (rc != 0) {
      if (rc != -EAGAIN && rc != -EIO) abort();
      break;
    }
    if (msg.size() > kCap * 64) abort();
  }
  return 0;
}
