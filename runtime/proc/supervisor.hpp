// The supervisor: one thread running a libuv loop for the runtime. It watches children (pidfd
// polled with uv_poll_t, then waitid(P_PIDFD)), file descriptors of helpers (the forkserver's
// event socket) and timers. Work is handed to the loop with post(), which wakes it through a
// uv_async_t; callbacks run on the supervisor thread.
#pragma once
#include <uv.h>

#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mproc {

// Every libuv handle the supervisor owns (except its own async) has `data` pointing to a
// LoopHandle, which close_handle() deletes once libuv is done with the handle.
struct LoopHandle {
  virtual ~LoopHandle() = default;
};
void close_handle(uv_handle_t *h);

class Supervisor {
 public:
  Supervisor() = default;
  Supervisor(const Supervisor &) = delete;
  Supervisor &operator=(const Supervisor &) = delete;
  ~Supervisor();

  // Start the loop thread (idempotent). Returns 0 or a negative MPROC_E* code.
  int start();
  // Close every handle, stop the loop and join its thread. Pending callbacks are run first.
  void stop();
  bool running() const { return running_; }
  // Run fn on the loop thread, soon. Returns a negative code if the supervisor is not running.
  int post(std::function<void(uv_loop_t *)> fn);
  // Call on_readable (on the loop thread) each time fd is readable, until it returns false;
  // the fd is not closed by the supervisor.
  int watch_fd(int fd, std::function<bool()> on_readable);
  // Watch a child's pidfd without waking the loop thread: the fd joins an epoll set of the
  // supervisor's (one uv_poll watches the set). on_exit runs on the loop thread when the fd is
  // readable, until it returns false. Thread-safe. Errors: MPROC_ECLOSED, errno codes.
  int watch_child(int fd, std::function<bool()> on_exit);
  // Forget a child's fd (its joiner reaped it). Thread-safe; unknown fds are ignored.
  void unwatch_child(int fd);
  // Run fn on the loop thread after `seconds`; cancel by closing the returned handle on the loop
  // thread is not offered: fn decides itself whether it is still relevant.
  int after(double seconds, std::function<void()> fn);
  // Wait until everything posted before has run on the loop thread (no-op when not running).
  void sync();
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  static void on_async(uv_async_t *h);
  static void on_children(uv_poll_t *h, int status, int events);
  void drain();

  uv_loop_t loop_{};
  uv_async_t async_{};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void(uv_loop_t *)>> queue_;
  bool stopping_ = false;
  bool running_ = false;
  int child_epfd_ = -1;
  uv_poll_t child_poll_{};
  std::mutex child_mu_;
  std::unordered_map<int, std::function<bool()>> children_;
};

}  // namespace mproc
