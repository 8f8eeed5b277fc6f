// Pipes: a connected pair of Unix stream sockets carrying framed messages (a 64-bit length, then
// the bytes), and wait() over several pipes, queues, processes and fds.
#pragma once
#include <poll.h>

#include <mproc/queue.h>

#include <cstdint>
#include <vector>

#include "fd.hpp"

struct mproc_conn {
  mproc::UniqueFd fd;
  bool can_send = true;
  bool can_recv = true;
  // A received length whose message has not been taken yet (buffer too small, or interrupted).
  unsigned char hdr[8] = {};
  size_t hdr_have = 0;
  // How long a receive retries a non-blocking recv() before it sleeps (adapted per message).
  long spin_ns = 50000;
};

namespace mproc {

class Ring;

int conn_pair(bool duplex, mproc_conn **a, mproc_conn **b);
int conn_send(mproc_conn &c, const void *data, size_t len);
// Receive into buf, or into a malloc'ed buffer when out_buf is not NULL.
int conn_recv(mproc_conn &c, void *buf, size_t cap, size_t *out_len, void **out_buf,
              double timeout);
// 1 ready, 0 not within the timeout, or an error.
int conn_poll(mproc_conn &c, double timeout);
inline bool conn_has_header(const mproc_conn &c) { return c.hdr_have == sizeof c.hdr; }

// One object of wait(): a pollable fd, and for queues the ring (whose fifo may wake spuriously)
// and for conns a buffered header that makes them ready without the fd.
struct WaitSource {
  int fd = -1;
  Ring *ring = nullptr;
  bool preready = false;
};
// Poll the sources until one is ready or the timeout; set ready[i]; return how many.
int wait_sources(const std::vector<WaitSource> &src, int *ready, double timeout);

}  // namespace mproc
