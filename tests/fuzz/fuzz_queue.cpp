// libFuzzer target: a queue whose shared memory another process of the same user has filled with
// garbage. The fuzz bytes overwrite the ring's header (indices, counters, lock words, limits)
// and then the data ring where the reader looks (Ring::overwrite_shared), as a corrupt or hostile
// peer would; then this process uses the queue through the public calls, never waiting (timeout
// 0). Each call must give a message or an error; nothing may read or write outside the mapping,
// crash or hang (libFuzzer's -timeout makes a hang a finding).
#include "fuzz_check.h"
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ipc/queue.hpp"

namespace {

constexpr size_t kCap = 1 << 16, kMap = 4096 + 2 * kCap;  // the ring's mapping (ring.cpp)
unsigned char g_buf[1 << 18];  // larger than the ring: a record's own length bounds the copy
size_t g_runs, g_guarded;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A read past the ring must fault, not land in a neighbouring mapping: leave a hole of the
  // ring's size right below a PROT_NONE page. mmap puts a new mapping at the top of the highest
  // hole that fits, so the ring ends at the guard (counted: it nearly always does).
  auto *hole = static_cast<unsigned char *>(
      mmap(nullptr, kMap + 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (hole == MAP_FAILED) abort();
  munmap(hole, kMap);
  mproc_queue_opts_t o = MPROC_QUEUE_OPTS_INIT;
  o.capacity = kCap;
  mproc_queue_t *q = nullptr;
  if (mproc_queue_new(&q, &o) != 0) {
    fprintf(stderr, "setup: %s\n", mproc_last_error());
    abort();
  }
  // One message out of line first, so that the file holds an extent (at 4096 + kCap, 128 KiB) a
  // fuzzed BIG record can name; the header's extent table is then fuzzed with the rest.
  static unsigned char big[100000];
  CHECK(mproc_queue_put(q, big, sizeof big, 0));
  g_guarded += q->ring->overwrite_shared(data, size) == hole + kMap;
  if (++g_runs % 4096 == 0 && g_guarded < g_runs / 2)
    fprintf(stderr, "fuzz_queue: only %zu of %zu rings had the guard page\n", g_guarded, g_runs);

  size_t len = 0;
  // The allocating get, for a message whose announced size is modest (a 1 TiB one would only
  // fail with MPROC_ENOMEM, but the fuzzer counts the attempt as a finding).
  if (mproc_queue_get(q, nullptr, 0, &len, 0) == MPROC_EMSGSIZE && len <= sizeof g_buf) {
    void *m = nullptr;
    CHECK(mproc_queue_get_alloc(q, &m, &len, 0));
    free(m);
  }
  for (int i = 0; i < 4; i++) {
    int rc = mproc_queue_get(q, g_buf, sizeof g_buf, &len, 0);
    CHECK(rc);
    if (rc == 0 && len > sizeof g_buf) abort();
  }
  const void *p = nullptr;
  int rc = mproc_queue_peek(q, &p, &len, 0);
  CHECK(rc);
  if (rc == 0) {
    memcpy(g_buf, p, len < sizeof g_buf ? len : sizeof g_buf);  // the caller reads it all
    CHECK(mproc_queue_release(q));
  }
  CHECK(mproc_queue_put(q, "hello", 5, 0));
  void *w = nullptr;
  rc = mproc_queue_reserve(q, 64, &w, 0);
  CHECK(rc);
  if (rc == 0) {
    memset(w, 'x', 64);
    CHECK(mproc_queue_commit(q, 64));
  }
  CHECK(mproc_queue_get(q, g_buf, sizeof g_buf, &len, 0));
  mproc_queue_stats_t st = {};
  st.size = sizeof st;
  CHECK(mproc_queue_stats(q, &st));
  CHECK(mproc_queue_qsize(q, &len));
  (void)mproc_queue_empty(q);
  (void)mproc_queue_full(q);
  CHECK(mproc_queue_free(q));
  munmap(hole + kMap, 4096);
  return 0;
}
