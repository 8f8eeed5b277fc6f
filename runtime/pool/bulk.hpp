// The segment a large fixed-size map shares with the workers (its input and output arrays): one
// is kept and reused while no job holds it, because its pages are mapped in the workers already
// (a worker maps a segment once, by its id, and keeps the last one it saw).
#pragma once
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "shm/segment.hpp"

namespace mproc {

class BulkCache {
 public:
  // A segment of at least `bytes` in *out, its id (unique in this process) in *id.
  int get(size_t bytes, std::shared_ptr<Segment> *out, uint64_t *id) {
    std::lock_guard<std::mutex> g(mu_);
    if (seg_ && seg_.use_count() == 1 && seg_->size() >= bytes) {
      *out = seg_;
      *id = id_;
      return 0;
    }
    auto seg = std::make_shared<Segment>();
    if (int rc = Segment::create(bytes, "mproc-map", seg.get())) return rc;
    static std::atomic<uint64_t> ids{0};
    seg_ = seg;
    id_ = (static_cast<uint64_t>(getpid()) << 32) | ++ids;
    *out = std::move(seg);
    *id = id_;
    return 0;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Segment> seg_;
  uint64_t id_ = 0;
};

}  // namespace mproc
