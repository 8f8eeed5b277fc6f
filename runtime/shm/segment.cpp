#include "shm/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "base/error.hpp"

namespace mproc {

Segment::Segment(Segment &&o) noexcept
    : fd_(std::move(o.fd_)), addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

Segment &Segment::operator=(Segment &&o) noexcept {
  if (this != &o) {
    reset();
    fd_ = std::move(o.fd_);
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

Segment::~Segment() { reset(); }

void Segment::reset() {
  if (addr_) munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
  fd_.reset();
}

int Segment::create(size_t size, const char *debug_name, Segment *out) {
  if (size == 0) return fail(MPROC_EINVAL, "segment size is 0");
  UniqueFd fd(memfd_create(debug_name ? debug_name : "mproc", MFD_CLOEXEC));
  if (!fd.valid()) return fail_errno(errno, "memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(size)) < 0) return fail_errno(errno, "ftruncate");
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return fail_errno(errno, "mmap");
  out->reset();
  out->fd_ = std::move(fd);
  out->addr_ = p;
  out->size_ = size;
  return 0;
}

int Segment::attach_fd(int fd, size_t size, Segment *out) {
  if (fd < 0) return fail(MPROC_EINVAL, "bad fd %d", fd);
  if (size == 0) {
    struct stat st;
    if (fstat(fd, &st) < 0) return fail_errno(errno, "fstat");
    size = static_cast<size_t>(st.st_size);
    if (size == 0) return fail(MPROC_EINVAL, "segment of fd %d is empty", fd);
  }
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own.valid()) return fail_errno(errno, "dup");
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, own.get(), 0);
  if (p == MAP_FAILED) return fail_errno(errno, "mmap");
  out->reset();
  out->fd_ = std::move(own);
  out->addr_ = p;
  out->size_ = size;
  return 0;
}

}  // namespace mproc
