// Queue handles: the shared ring plus how other processes reach it (a name, or its fds passed
// over a Unix socket). The ring protocol itself is in ring.cpp.
#pragma once
#include <mproc/queue.h>

#include <memory>

#include "ipc/ring.hpp"

struct mproc_queue {
  std::unique_ptr<mproc::Ring> ring;
};

// A message taken out of a queue (mproc_queue_get_msg): its bytes, and the owner that returns
// its shared memory to the queue.
struct mproc_msg {
  mproc::TakenMsg taken;
  std::shared_ptr<mproc::BigOwner> owner;
};

namespace mproc {

// A handle over a new ring, or over a ring reached by name / socket. 0 or a recorded error.
int queue_create(const RingConfig &cfg, mproc_queue **out);
int queue_open(const char *name, mproc_queue **out);
int queue_recv(int sockfd, mproc_queue **out);
// "mproc-queue:<pid>:<memfd>:<fifo>:<token>": /proc/<pid>/fd/<n> of a process holding it.
int queue_name(const Ring &r, char *buf, size_t cap);
// One message on the socket: the name's token, with the two fds attached (SCM_RIGHTS).
int queue_send(const Ring &r, int sockfd);

}  // namespace mproc
