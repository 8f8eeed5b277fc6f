// A shared-memory segment: a memfd (anonymous: nothing appears in /dev/shm) mapped MAP_SHARED.
// Made before a fork it is shared with the child; its fd can be passed to an unrelated process
// (SCM_RIGHTS) which maps it with Segment::attach_fd().
#pragma once
#include <cstddef>

#include "base/fd.hpp"

namespace mproc {

class Segment {
 public:
  Segment() = default;
  Segment(Segment &&o) noexcept;
  Segment &operator=(Segment &&o) noexcept;
  Segment(const Segment &) = delete;
  Segment &operator=(const Segment &) = delete;
  ~Segment();

  // A new zero-filled segment of `size` bytes (> 0). 0 or a negative code (recorded).
  static int create(size_t size, const char *debug_name, Segment *out);
  // Map a segment from an fd (dup'ed; the caller keeps its fd). size 0: use the fd's size.
  static int attach_fd(int fd, size_t size, Segment *out);

  void *data() const { return addr_; }
  size_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  bool valid() const { return addr_ != nullptr; }
  void reset();

 private:
  UniqueFd fd_;
  void *addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mproc
