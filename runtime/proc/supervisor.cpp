#include "proc/supervisor.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>

#include "base/error.hpp"
#include "base/thread.hpp"

namespace mproc {
namespace {
struct FdWatch : LoopHandle {
  uv_poll_t poll{};
  std::function<bool()> on_readable;
};
struct TimerWatch : LoopHandle {
  uv_timer_t timer{};
  std::function<void()> fn;
};
void delete_loop_handle(uv_handle_t *h) { delete static_cast<LoopHandle *>(h->data); }
}  // namespace

void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, delete_loop_handle);
}

Supervisor::~Supervisor() { stop(); }

int Supervisor::start() {
  if (running_) return 0;
  int rc = uv_loop_init(&loop_);
  if (rc != 0) return fail(MPROC_EAGAIN, "uv_loop_init: %s", uv_strerror(rc));
  rc = uv_async_init(&loop_, &async_, &Supervisor::on_async);
  if (rc != 0) {
    uv_loop_close(&loop_);
    return fail(MPROC_EAGAIN, "uv_async_init: %s", uv_strerror(rc));
  }
  async_.data = this;
  child_epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (child_epfd_ < 0 || uv_poll_init(&loop_, &child_poll_, child_epfd_) != 0) {
    int e = errno;
    if (child_epfd_ >= 0) close(child_epfd_);
    child_epfd_ = -1;
    uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    return fail_errno(e, "epoll_create1");
  }
  child_poll_.data = this;
  uv_poll_start(&child_poll_, UV_READABLE, &Supervisor::on_children);
  stopping_ = false;
  try {
    thread_ = thread_without_signals([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  } catch (const std::system_error &e) {
    uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&child_poll_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    close(child_epfd_);
    child_epfd_ = -1;
    return fail(MPROC_EAGAIN, "cannot start the supervisor thread: %s", e.what());
  }
  running_ = true;
  return 0;
}

void Supervisor::stop() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  uv_async_send(&async_);
  thread_.join();
  uv_loop_close(&loop_);
  close(child_epfd_);
  child_epfd_ = -1;
  {
    std::lock_guard<std::mutex> g(child_mu_);
    children_.clear();
  }
  running_ = false;
}

int Supervisor::watch_child(int fd, std::function<bool()> on_exit) {
  if (!running_) return fail(MPROC_ECLOSED, "the supervisor is not running");
  {
    std::lock_guard<std::mutex> g(child_mu_);
    children_[fd] = std::move(on_exit);
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(child_epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    std::lock_guard<std::mutex> g(child_mu_);
    children_.erase(fd);
    return fail_errno(e, "epoll_ctl");
  }
  return 0;
}

void Supervisor::unwatch_child(int fd) {
  if (!running_) return;
  std::lock_guard<std::mutex> g(child_mu_);
  if (children_.erase(fd)) epoll_ctl(child_epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Supervisor::on_children(uv_poll_t *h, int, int) {
  auto *self = static_cast<Supervisor *>(h->data);
  struct epoll_event evs[64];
  int n = epoll_wait(self->child_epfd_, evs, 64, 0);
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    std::function<bool()> cb;
    {
      std::lock_guard<std::mutex> g(self->child_mu_);
      auto it = self->children_.find(fd);
      if (it == self->children_.end()) continue;
      cb = it->second;
    }
    // Called without the lock: it takes the child's own mutex, which a joiner may hold while
    // it calls unwatch_child().
    if (!cb()) self->unwatch_child(fd);
  }
}

int Supervisor::post(std::function<void(uv_loop_t *)> fn) {
  if (!running_) return fail(MPROC_ECLOSED, "the supervisor is not running");
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
  return 0;
}

int Supervisor::watch_fd(int fd, std::function<bool()> on_readable) {
  return post([fd, cb = std::move(on_readable)](uv_loop_t *loop) mutable {
    auto *w = new FdWatch;
    w->on_readable = std::move(cb);
    if (uv_poll_init(loop, &w->poll, fd) != 0) {
      delete w;
      return;
    }
    w->poll.data = static_cast<LoopHandle *>(w);
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t *p, int, int) {
      auto *watch = static_cast<FdWatch *>(static_cast<LoopHandle *>(p->data));
      if (!watch->on_readable()) {
        uv_poll_stop(p);
        close_handle(reinterpret_cast<uv_handle_t *>(p));
      }
    });
  });
}

int Supervisor::after(double seconds, std::function<void()> fn) {
  uint64_t ms = seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000.0 + 0.999);
  return post([ms, cb = std::move(fn)](uv_loop_t *loop) mutable {
    auto *t = new TimerWatch;
    t->fn = std::move(cb);
    uv_timer_init(loop, &t->timer);
    t->timer.data = static_cast<LoopHandle *>(t);
    uv_timer_start(&t->timer, [](uv_timer_t *h) {
      auto *tw = static_cast<TimerWatch *>(static_cast<LoopHandle *>(h->data));
      tw->fn();
      close_handle(reinterpret_cast<uv_handle_t *>(h));
    }, ms, 0);
  });
}

void Supervisor::sync() {
  if (!running_ || on_loop_thread()) return;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  if (post([&](uv_loop_t *) {
        std::lock_guard<std::mutex> g(m);
        done = true;
        cv.notify_all();
      }) < 0)
    return;
  std::unique_lock<std::mutex> g(m);
  cv.wait(g, [&] { return done; });
}

void Supervisor::drain() {
  std::vector<std::function<void(uv_loop_t *)>> work;
  bool stopping;
  {
    std::lock_guard<std::mutex> g(mu_);
    work.swap(queue_);
    stopping = stopping_;
  }
  for (auto &fn : work) fn(&loop_);
  if (stopping) {
    // Close every handle; uv_run returns once their close callbacks have run.
    uv_walk(
        &loop_,
        [](uv_handle_t *h, void *self) {
          if (uv_is_closing(h)) return;
          auto *sup = static_cast<Supervisor *>(self);
          if (h == reinterpret_cast<uv_handle_t *>(&sup->async_) ||
              h == reinterpret_cast<uv_handle_t *>(&sup->child_poll_))
            uv_close(h, nullptr);
          else
            close_handle(h);
        },
        this);
  }
}

void Supervisor::on_async(uv_async_t *h) { static_cast<Supervisor *>(h->data)->drain(); }

}  // namespace mproc
