// libFuzzer target: a pipe whose shared ring the sending process has filled with garbage. The fuzz
// bytes overwrite the receiving direction's control words (head, tail, flags) and then its ring,
// as a corrupt or hostile sender would, and the sender's end is closed (a live sender may keep a
// receiver waiting for the rest of a message, as a slow one would). The receiver then takes what
// it finds: each call must give a message or an error, never a crash, an out-of-bounds access or
// a hang.
#include "fuzz_check.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ipc/pipe.hpp"

namespace {

constexpr size_t kDir = 256 + (256 << 10);  // a direction's header slot and ring (pipe.cpp)
unsigned char g_buf[1 << 20];

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mproc_conn_t *a = nullptr, *b = nullptr;
  if (mproc_pipe(&a, &b, 1) != 0) {
    fprintf(stderr, "setup: %s\n", mproc_last_error());
    abort();
  }
  const bool live_sender = size > 0 && (data[0] & 1);
  if (size > 0) data++, size--;
  memcpy(reinterpret_cast<unsigned char *>(a->in.header()), data, size < kDir ? size : kDir);
  if (!live_sender) CHECK(mproc_conn_close(b));
  size_t len = 0;
  int rc = mproc_conn_poll(a, 0);
  CHECK(rc < 0 ? rc : 0);
  for (int i = 0; i < 4 && !live_sender; i++) {
    rc = mproc_conn_recv_bytes(a, g_buf, sizeof g_buf, &len, 0);
    CHECK(rc);
    if (rc == 0 && len > sizeof g_buf) abort();
  }
  // A live sender: only a message already complete is taken (the first frame says its size).
  if (live_sender) CHECK(mproc_conn_recv_bytes(a, g_buf, 0, &len, 0));
  CHECK(mproc_conn_send_bytes(a, "ping", 4));
  CHECK(mproc_conn_free(a));
  CHECK(mproc_conn_free(b));
  return 0;
}
