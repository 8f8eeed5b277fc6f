// Pipes: a shared-memory ring per direction carrying framed messages, a Unix socket pair that
// says whether the other end is still open, and wait() over several pipes, queues, processes
// and fds. The protocol is described at the top of pipe.cpp.
#pragma once
#include <poll.h>

#include <mproc/queue.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/fd.hpp"
#include "ipc/spsc.hpp"

namespace mproc {
struct PipeMem;
}  // namespace mproc

struct mproc_conn {
  // One end of a connected AF_UNIX stream pair. No data travels on it: the kernel counts its
  // holders across forks, so the peer sees POLLHUP once every copy of this end is closed. It
  // also carries fds (mproc_queue_send_handle).
  mproc::UniqueFd fd;
  std::shared_ptr<mproc::PipeMem> mem;  // the rings and wake-up fds, shared with the other end
  mproc::SpscRing in;                   // the direction this end receives (invalid: send-only)
  mproc::SpscRing out;                  // the direction this end sends (invalid: receive-only)
  int in_evfd = -1;                     // eventfd of `in` (owned by mem)
  int out_evfd = -1;                    // eventfd of `out` (owned by mem)
  mproc::UniqueFd poll_fd;              // epoll set made by the first fileno() (receiving ends)
  int watching = 0;                     // pid that counted itself in in->watchers
  bool can_send = true;
  bool can_recv = true;
  bool peer_gone = false;  // the socket reported hang-up (final)
  long spin_ns = 20000;    // how long a receive spins before it sleeps (adapted per message)
};

namespace mproc {

class Ring;

int conn_pair(bool duplex, mproc_conn **a, mproc_conn **b);
// Send one message; d bounds the wait before it begins (see pipe.cpp). MPROC_ETIMEDOUT: nothing
// of it was sent.
int conn_send(mproc_conn &c, const void *data, size_t len, const Deadline &d);
// Receive into buf, or into a malloc'ed buffer when out_buf is not NULL.
int conn_recv(mproc_conn &c, void *buf, size_t cap, size_t *out_len, void **out_buf,
              double timeout);
// 1 ready, 0 not within the timeout, or an error.
int conn_poll(mproc_conn &c, double timeout);
// The pollable fd: readable while a message waits or the peer is closed. The first call makes
// sends signal it. For a send-only end, the socket.
int conn_fileno(mproc_conn &c);
// Close this end (the handle stays, reporting MPROC_ECLOSED).
void conn_close(mproc_conn &c);
// The socket behind `fd` when it is the fileno() of a live connection of this process, else fd:
// lets mproc_queue_send_handle() take a connection's fileno as it did when that was the socket.
int conn_socket_of(int fd);
// For a process that holds the end's fds at the same numbers (a spawned child): its fds
// (returns how many, at most 4), a token naming them, and a handle made from the token (it
// takes the fds over).
int conn_fds(const mproc_conn &c, int *out, size_t cap);
int conn_export(const mproc_conn &c, char *buf, size_t cap);
int conn_attach(const char *token, mproc_conn **out);

// One object of wait(): a pollable fd, and for queues the ring (whose fifo may wake spuriously)
// and for conns the connection (whose ring is checked directly).
struct WaitSource {
  int fd = -1;
  Ring *ring = nullptr;
  mproc_conn *conn = nullptr;
};
// Poll the sources until one is ready or the timeout; set ready[i]; return how many.
int wait_sources(const std::vector<WaitSource> &src, int *ready, double timeout);

}  // namespace mproc
