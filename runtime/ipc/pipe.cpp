// Pipes.
//
// Data. Each direction is an SpscRing (spsc.hpp: the ring a pool's workers use too) in one
// shared memfd mapping (made by mproc_pipe(), so processes forked later share it): messages of
// any size in frames of at most a quarter of the ring, published by a store of head and freed by
// a store of tail. A receiver reads the first frame's header without consuming it, so a
// too-small buffer loses nothing, and copies the frames straight into the caller's buffer.
//
// Liveness. The two ends also hold a connected AF_UNIX stream pair on which no data flows: the
// kernel closes an end once every process holding it has closed it or died, and the other end
// then reports POLLHUP. That is how a receiver sees end of file and a sender MPROC_EPIPE, also
// after fork and after a crash. The check is a system call (~1-3 us on a VM), so a sender skips
// it when the receiver proved alive: it says, in spin_until, that it is spinning on the ring right
// now (a process that died spinning stops saying so within microseconds), or the sender's
// futex_wake() just woke it, or it took a message within the last 100 us (kTookAliveNs).
//
// Waking. A receiver that finds the ring empty spins for an adaptive few microseconds (an answer
// within that time costs no system call on either side, so a ping-pong between two cores never
// sleeps; it does not spin while the sender last ran on its own CPU, where the sender could not
// run meanwhile). Then it sleeps on the ring's futex (SpscRing::sleep_for_data), in slices after
// which it checks the socket for hang-up; the ring's flag protocol loses no wake-up, and a sender
// learns from the wake-up that a live receiver was asleep.
// mproc_wait() sleeps in poll() instead, on the direction's eventfd (counted in `pollers`), and
// fileno() is an epoll set of that eventfd and the socket: once asked for, the handle counts
// itself in `watchers`. Sends signal the eventfd while either count is non-zero; `armed` says a
// count is (about to be) in it, so a burst signals once; a waiter clears `armed` before it drains
// the eventfd and then checks the ring, and a receive that empties the ring of a watched end
// drains it, so the fd is readable exactly while a message waits (or the peer is gone).
// A writer that finds the ring full spins, then sleeps on the ring's futex for room in slices,
// checking the socket between them.
#include "ipc/pipe.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

#include "base/error.hpp"
#include "base/futex.hpp"
#include "base/handles.hpp"
#include "base/interrupt.hpp"
#include "ipc/ring.hpp"

namespace mproc {

namespace {

constexpr size_t kDirHdr = 256;                            // SpscHeader, padded
constexpr size_t kCap = static_cast<size_t>(256) << 10;    // ring bytes per direction
constexpr long kSpinMinNs = 2000;
// A sender skips its hang-up check (a system call) when the receiver took a message this
// recently: a send to a peer that died within this window is lost without MPROC_EPIPE, as one
// sent just before the death would be; the next send after it reports the hang-up.
constexpr uint64_t kTookAliveNs = 100000;
constexpr long kSpinMaxNs = 50000;
constexpr uint64_t kWriterSpinNs = 20000;
constexpr double kFirstSlice = 0.001;  // a sleeping receiver checks for hang-up after 1 ms,
constexpr double kSlice = 0.05;        // then every 50 ms
static_assert(sizeof(SpscHeader) <= kDirHdr, "pipe direction header fits its slot");

int peer_closed() { return fail(MPROC_EPIPE, "the other end is closed"); }

// Put a count in the eventfd unless one is there (or on its way) already.
void signal_evfd(SpscHeader *d, int evfd) {
  if (d->armed.exchange(1) != 0) return;
  const uint64_t one = 1;
  ssize_t r;
  do r = write(evfd, &one, sizeof one);
  while (r < 0 && errno == EINTR);  // EAGAIN: the count is at its maximum, hence readable
}

void drain_evfd(int evfd) {
  uint64_t v;
  ssize_t r;
  do r = read(evfd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
}

// poll() until the deadline, restarted after signals. > 0 ready, 0 timeout, or an error.
int poll_until(struct pollfd *p, nfds_t n, const Deadline &d) {
  for (;;) {
    struct timespec rel, *tp = nullptr;
    if (!d.infinite) {
      const uint64_t now = now_ns(), at = d.ns();
      const uint64_t left = at > now ? at - now : 0;
      rel.tv_sec = static_cast<time_t>(left / 1000000000ULL);
      rel.tv_nsec = static_cast<long>(left % 1000000000ULL);
      tp = &rel;
    }
    int r = ppoll(p, n, tp, nullptr);
    if (r >= 0) return r;
    if (errno != EINTR) return fail_errno(errno, "poll");
  }
}

// The peer's socket is closed (by every process that held it). Final once true.
bool hung_up(mproc_conn &c) {
  if (c.peer_gone) return true;
  struct pollfd p = {c.fd.get(), 0, 0};
  int r;
  do r = ::poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r > 0 && (p.revents & (POLLHUP | POLLERR))) c.peer_gone = true;
  return c.peer_gone;
}

// The receiver is asleep (or the ring was emptied while someone watches the fd): make the
// eventfd tell the truth again. Called by the receiver after the ring went empty.
void rearm_watched(mproc_conn &c) {
  SpscHeader *d = c.in.header();
  d->armed.store(0);
  drain_evfd(c.in_evfd);
  if (c.in.readable()) signal_evfd(d, c.in_evfd);
}

// Receiver: sleep on the futex until the ring has data, the peer hangs up or the deadline.
// 1 ready, 0 timeout, or (when interruptible) MPROC_EINTR.
int sleep_input(mproc_conn &c, const Deadline &dl, bool interruptible) {
  const InterruptWatch watch;
  for (double step = kFirstSlice;; step = kSlice) {
    const int r = c.in.sleep_for_data(Deadline::earlier(dl, Deadline::after(step)));
    if (c.in.readable()) return 1;
    if (r == -ETIMEDOUT) {
      if (hung_up(c)) return 1;
      if (dl.expired()) return 0;
    }
    if (interruptible && watch.fired()) return interrupted();
  }
}

// Receiver: wait until the ring has data or the peer hung up (1), the deadline (0) or, when
// interruptible, an interrupt (MPROC_EINTR). Spins first (unless polling), announcing it in
// spin_until so that senders skip their socket check.
int wait_input(mproc_conn &c, const Deadline &dl, bool poll, bool interruptible = true) {
  SpscHeader *d = c.in.header();
  if (c.in.readable() || c.peer_gone) return 1;
  if (poll) return hung_up(c) || c.in.readable() ? 1 : 0;
  const uint64_t t0 = now_ns();
  const uint64_t until = std::min(t0 + static_cast<uint64_t>(c.spin_ns), dl.ns());
  // Spinning is pointless while the sender last ran on this CPU: it cannot answer before we
  // give the CPU up (the check is cheap: glibc reads the CPU from rseq).
  const int32_t cpu = sched_getcpu() + 1;
  bool got = false;
  if (d->writer_cpu.load(std::memory_order_relaxed) != cpu) {
    d->spin_until.store(until, std::memory_order_relaxed);
    for (int i = 1;; i++) {
      if (c.in.readable()) {
        got = true;
        break;
      }
      cpu_relax();
      if ((i & 63) == 0 &&
          (now_ns() >= until || d->writer_cpu.load(std::memory_order_relaxed) == cpu))
        break;
    }
    d->spin_until.store(0, std::memory_order_relaxed);
  }
  if (got) return 1;
  const int r = sleep_input(c, dl, interruptible);
  // Adapt to how long the answer took, not to whether the spin caught it: a peer that had to be
  // woken answers late however quick it is, and spinning a little longer then catches it.
  const long waited = static_cast<long>(now_ns() - t0);
  if (r == 1 && waited <= kSpinMaxNs)
    c.spin_ns = std::min(std::max(c.spin_ns, waited + waited / 4), kSpinMaxNs);
  else
    c.spin_ns = std::max(c.spin_ns / 2, kSpinMinNs);
  return r;
}

// Sender: wait for `need` free bytes. 0, MPROC_EPIPE when the receiver is gone, or (when
// interruptible: before a message's first frame) MPROC_EINTR, or MPROC_ETIMEDOUT once `d` passed.
int wait_space(mproc_conn &c, size_t need, bool interruptible, const Deadline &d) {
  auto room = [&] { return c.out.has_room(need); };
  if (room()) return 0;
  const uint64_t until = now_ns() + kWriterSpinNs;
  for (int i = 1; !room(); i++) {
    cpu_relax();
    if ((i & 63) == 0 && now_ns() >= until) break;
  }
  const InterruptWatch watch;
  while (!room()) {
    if (hung_up(c)) return peer_closed();
    if (interruptible && watch.fired()) return interrupted();
    if (d.expired()) return fail(MPROC_ETIMEDOUT, "no room for the message before the timeout");
    // Slices, to re-check hang-up.
    c.out.sleep_for_room(need, Deadline::earlier(d, Deadline::after(0.05)));
  }
  return 0;
}

}  // namespace

// The mapping of both directions and their eventfds; the two handles made together share it.
struct PipeMem {
  void *base = nullptr;
  size_t len = 0;
  UniqueFd memfd;  // kept for conn_export (a spawned child maps it again)
  UniqueFd evfd[2];
  ~PipeMem() {
    if (base) munmap(base, len);
  }
  SpscHeader *dir(int i) const {
    return reinterpret_cast<SpscHeader *>(static_cast<char *>(base) +
                                          static_cast<size_t>(i) * (kDirHdr + kCap));
  }
  // Direction i as a ring (i < 0: none).
  SpscRing ring(int i) const {
    if (i < 0) return SpscRing();
    return SpscRing(dir(i), reinterpret_cast<char *>(dir(i)) + kDirHdr, kCap);
  }
};

int conn_pair(bool duplex, mproc_conn **a, mproc_conn **b) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return fail_errno(errno, "socketpair");
  UniqueFd sa(sv[0]), sb(sv[1]);
  const int ndir = duplex ? 2 : 1;
  auto mem = std::make_shared<PipeMem>();
  {
    UniqueFd m(memfd_create("mproc-pipe", MFD_CLOEXEC));
    if (!m.valid()) return fail_errno(errno, "memfd_create");
    const size_t len = static_cast<size_t>(ndir) * (kDirHdr + kCap);
    if (ftruncate(m.get(), static_cast<off_t>(len)) < 0) return fail_errno(errno, "ftruncate");
    void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, m.get(), 0);
    if (p == MAP_FAILED) return fail_errno(errno, "mmap");
    mem->base = p;
    mem->len = len;
    mem->memfd = std::move(m);
  }
  for (int i = 0; i < ndir; i++) {
    SpscRing::init(mem->dir(i), kCap);
    mem->evfd[i].reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!mem->evfd[i].valid()) return fail_errno(errno, "eventfd");
  }
  auto *x = new mproc_conn();
  auto *y = new mproc_conn();
  // Direction 0 carries y -> x; direction 1 (duplex only) x -> y.
  x->in = y->out = mem->ring(0);
  x->in_evfd = y->out_evfd = mem->evfd[0].get();
  if (duplex) {
    x->out = y->in = mem->ring(1);
    x->out_evfd = y->in_evfd = mem->evfd[1].get();
  } else {  // x receives, y sends; the socket too, for fds passed over it
    x->can_send = false;
    y->can_recv = false;
    shutdown(sa.get(), SHUT_WR);
    shutdown(sb.get(), SHUT_RD);
  }
  x->fd = std::move(sa);
  y->fd = std::move(sb);
  x->mem = mem;
  y->mem = std::move(mem);
  *a = x;
  *b = y;
  return 0;
}

int conn_send(mproc_conn &c, const void *data, size_t len, const Deadline &dl) {
  SpscRing &ring = c.out;
  SpscHeader *d = ring.header();
  if (c.peer_gone) return peer_closed();
  // A receiver spinning on the ring right now is alive, and so, for this purpose, is one that
  // took a message a moment ago (a ping-pong's answer comes before the peer spins again).
  const uint64_t t_now = now_ns();
  bool alive = d->spin_until.load(std::memory_order_relaxed) > t_now ||
               t_now - d->took_at.load(std::memory_order_relaxed) < kTookAliveNs;
  const int32_t cpu = sched_getcpu() + 1;
  if (d->writer_cpu.load(std::memory_order_relaxed) != cpu)
    d->writer_cpu.store(cpu, std::memory_order_relaxed);
  const struct iovec iov = {const_cast<void *>(data), len};
  int pi = 0;
  size_t off = 0, po = 0;
  // With a deadline, a message that fits in the ring waits for room for all its frames before
  // the first goes in, so that it never stops half sent; a longer one streams and, once begun,
  // is finished whatever the deadline (as it is not interrupted after its first frame).
  if (!dl.infinite) {
    uint64_t all = 0;
    size_t o = 0;
    do {
      const size_t part = std::min<size_t>(len - o, ring.max_payload());
      all += SpscRing::frame_bytes(part);
      o += part;
    } while (o < len);
    if (all <= ring.capacity())
      if (int rc = wait_space(c, all, true, dl)) return rc;
  }
  do {
    const size_t part = std::min<size_t>(len - off, ring.max_payload());
    // Once begun, a message is finished (no interrupt or timeout after its first frame).
    if (int rc = wait_space(c, SpscRing::frame_bytes(part), off == 0, off == 0 ? dl : Deadline()))
      return rc;
    ring.put_frame(len, off == 0, part, &iov, 1, &pi, &po);
    if (ring.publish() > 0) alive = true;  // a live reader was asleep
    if (d->pollers.load() || d->watchers.load()) signal_evfd(d, c.out_evfd);
    off += part;
  } while (off < len);
  // Sent into a ring that nobody may read any more: say so (the message is lost, as on a socket
  // whose peer closed).
  if (!alive && hung_up(c)) return peer_closed();
  return 0;
}

int conn_recv(mproc_conn &c, void *buf, size_t cap, size_t *out_len, void **out_buf,
              double timeout) {
  SpscRing &ring = c.in;
  if (!ring.readable()) {
    int r = wait_input(c, Deadline::after(timeout), timeout == 0);
    if (r < 0) return r;
    if (r == 0) return fail(MPROC_ETIMEDOUT, "timeout after %g s", timeout);
    if (!ring.readable()) return peer_closed();  // hung up, and everything sent was received
  }
  auto corrupt = [&] {
    return fail(MPROC_EIO, "corrupt pipe frame at %llu",
                static_cast<unsigned long long>(ring.header()->tail.load()));
  };
  SpscFrame f;
  if (ring.peek(&f) != 0 || !f.first || f.len > f.total || f.total > MPROC_QUEUE_MSG_MAX)
    return corrupt();
  const size_t len = static_cast<size_t>(f.total);
  char *dst;
  if (out_buf) {
    dst = static_cast<char *>(malloc(len ? len : 1));
    if (!dst) return fail(MPROC_ENOMEM, "cannot allocate %zu bytes for a message", len);
  } else {
    if (len > cap) {
      *out_len = len;
      return fail(MPROC_EMSGSIZE, "message of %zu bytes does not fit the buffer of %zu bytes",
                  len, cap);
    }
    dst = static_cast<char *>(buf);
  }
  size_t got = 0;
  for (;;) {
    ring.take(f, dst + got);
    got += f.len;
    if (got == len) break;
    // The rest follows: wait for it whatever the timeout (the sender is writing it).
    int r = 1;
    if (!ring.readable()) r = wait_input(c, Deadline::after(-1), false, false);
    if (r < 0 || !ring.readable()) {
      if (out_buf) free(dst);
      return r < 0 ? r : fail(MPROC_EPIPE, "the other end closed in the middle of a message");
    }
    if (ring.peek(&f) != 0 || f.first || f.len > len - got) {
      if (out_buf) free(dst);
      return corrupt();
    }
  }
  SpscHeader *d = ring.header();
  if (d->watchers.load(std::memory_order_relaxed) && !ring.readable()) rearm_watched(c);
  d->took_at.store(now_ns(), std::memory_order_relaxed);
  *out_len = len;
  if (out_buf) *out_buf = dst;
  return 0;
}

int conn_poll(mproc_conn &c, double timeout) {
  return wait_input(c, Deadline::after(timeout), timeout == 0);
}

int conn_fileno(mproc_conn &c) {
  if (!c.can_recv) return c.fd.get();
  if (!c.poll_fd.valid()) {
    UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return fail_errno(errno, "epoll_create1");
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.fd = c.in_evfd;
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.in_evfd, &ev) < 0)
      return fail_errno(errno, "epoll_ctl");
    ev.events = 0;  // hang-up and errors are always reported
    ev.data.fd = c.fd.get();
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) < 0)
      return fail_errno(errno, "epoll_ctl");
    c.poll_fd = std::move(ep);
  }
  if (c.watching != getpid()) {
    c.watching = getpid();
    c.in.header()->watchers.fetch_add(1);
    if (c.in.readable()) signal_evfd(c.in.header(), c.in_evfd);
  }
  return c.poll_fd.get();
}

void conn_close(mproc_conn &c) {
  if (c.in.valid() && c.watching == getpid()) c.in.header()->watchers.fetch_sub(1);
  c.watching = 0;
  c.poll_fd.reset();
  c.fd.reset();
  c.in = c.out = SpscRing();
  c.in_evfd = c.out_evfd = -1;
  c.mem.reset();
}

int conn_socket_of(int fd) {
  int sock = fd;
  for_each_handle(HandleKind::kPipe, [&](void *h) {
    auto *c = static_cast<mproc_conn *>(h);
    if (c->poll_fd.valid() && c->poll_fd.get() == fd) sock = c->fd.get();
  });
  return sock;
}

int wait_sources(const std::vector<WaitSource> &src, int *ready, double timeout) {
  const Deadline d = Deadline::after(timeout);
  // A conn takes two slots (its eventfd, its socket for hang-up) and counts as a sleeper, so
  // that sends signal its eventfd meanwhile.
  std::vector<struct pollfd> pf;
  std::vector<size_t> at(src.size());
  std::vector<char> pending(src.size(), 0);
  for (size_t i = 0; i < src.size(); i++) {
    at[i] = pf.size();
    if (mproc_conn *c = src[i].conn) {
      pf.push_back({c->in_evfd, POLLIN, 0});
      pf.push_back({c->fd.get(), 0, 0});
      c->in.header()->pollers.fetch_add(1);
    } else {
      pf.push_back({src[i].fd, POLLIN, 0});
    }
  }
  const InterruptWatch watch;
  int n = 0;
  for (bool first = true;; first = false) {
    for (size_t i = 0; i < src.size(); i++)
      if (mproc_conn *c = src[i].conn)
        if (c->in.header()->armed.exchange(0) != 0 || pending[i]) drain_evfd(c->in_evfd);
    int r = poll_until(pf.data(), pf.size(), first ? Deadline::after(0) : InterruptWatch::slice(d));
    if (r < 0) {
      n = r;
      break;
    }
    n = 0;
    for (size_t i = 0; i < src.size(); i++) {
      const struct pollfd &p = pf[at[i]];
      bool ok;
      if (mproc_conn *c = src[i].conn) {
        if (pf[at[i] + 1].revents & (POLLHUP | POLLERR)) c->peer_gone = true;
        ok = c->peer_gone || c->in.readable();
        pending[i] = (p.revents & POLLIN) != 0;
      } else {
        ok = r > 0 && p.revents != 0;
        // A queue's fifo can be readable with nothing left to take: check the ring itself.
        if (ok && src[i].ring) ok = src[i].ring->ready_for_get();
      }
      ready[i] = ok ? 1 : 0;
      n += ready[i];
    }
    if (n > 0 || d.expired()) break;
    if (watch.fired()) {
      n = interrupted();
      break;
    }
  }
  for (const WaitSource &s : src)
    if (s.conn) s.conn->in.header()->pollers.fetch_sub(1);
  return n;
}

// ---- an end for a process that holds its fds at the same numbers (a spawned child) ----------

namespace {
constexpr const char *kConnToken = "mproc-conn";
int dir_index(const mproc_conn &c, const SpscRing &r) {
  return !r.valid() ? -1 : r.header() == c.mem->dir(0) ? 0 : 1;
}
}  // namespace

int conn_fds(const mproc_conn &c, int *out, size_t cap) {
  int all[4] = {c.fd.get(), c.mem->memfd.get(), c.mem->evfd[0].get(), c.mem->evfd[1].get()};
  int n = 0;
  for (int fd : all)
    if (fd >= 0) {
      if (static_cast<size_t>(n) < cap) out[n] = fd;
      n++;
    }
  return n;
}

int conn_export(const mproc_conn &c, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "%s:%d:%d:%zu:%d:%d:%d:%d", kConnToken, c.fd.get(),
                   c.mem->memfd.get(), c.mem->len, c.mem->evfd[0].get(), c.mem->evfd[1].get(),
                   dir_index(c, c.in), dir_index(c, c.out));
  if (n < 0 || static_cast<size_t>(n) >= cap)
    return fail(MPROC_ERANGE, "buffer of %zu bytes is too small for the token", cap);
  return n;
}

int conn_attach(const char *token, mproc_conn **out) {
  int sock, memfd, ev[2], in, outd, used = 0;
  size_t len;
  if (sscanf(token, "mproc-conn:%d:%d:%zu:%d:%d:%d:%d%n", &sock, &memfd, &len, &ev[0], &ev[1],
             &in, &outd, &used) != 7 || token[used] || (in < 0 && outd < 0) || in > 1 ||
      outd > 1 || len == 0 || len > 2 * (kDirHdr + kCap))
    return fail(MPROC_EINVAL, "not a connection token: '%.80s'", token);
  struct stat st;
  if (fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode) || fstat(memfd, &st) < 0 ||
      static_cast<size_t>(st.st_size) != len)
    return fail(MPROC_EBADF, "this process does not hold the connection's fds (pass them to "
                             "the child: mproc_process_opts_t.fds)");
  for (int d : {in, outd})
    if (d >= 0 && fcntl(ev[d], F_GETFD) < 0)
      return fail(MPROC_EBADF, "this process does not hold the connection's wake-up fds");
  void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED) return fail_errno(errno, "mmap");
  auto mem = std::make_shared<PipeMem>();
  mem->base = p;
  mem->len = len;
  mem->memfd.reset(memfd);  // taken over: the fds of the token now belong to the handle
  for (int i = 0; i < 2; i++)
    if (ev[i] >= 0) mem->evfd[i].reset(ev[i]);
  auto *c = new mproc_conn();
  c->fd.reset(sock);
  c->in = mem->ring(in);
  c->out = mem->ring(outd);
  c->in_evfd = in >= 0 ? ev[in] : -1;
  c->out_evfd = outd >= 0 ? ev[outd] : -1;
  c->can_recv = c->in.valid();
  c->can_send = c->out.valid();
  c->mem = std::move(mem);
  *out = c;
  return 0;
}

}  // namespace mproc
