// How a submission is cut into chunks, and how far a lazy input is read ahead. Python's rules,
// so that a program moved from multiprocessing gets the same batching.
#pragma once
#include <cstddef>

namespace mproc {

struct ChunkPolicy {
  // A fixed map at least this large shares its arrays with the workers through a segment.
  static constexpr size_t kBulkMinBytes = 64 << 10;

  // map and map_async: the size asked for, else ceil(n / (4 * workers)) (at least 1).
  static size_t map(size_t asked, size_t n, int workers) {
    if (asked) return asked;
    size_t d = 4 * static_cast<size_t>(workers > 0 ? workers : 1);
    size_t c = (n + d - 1) / d;
    return c ? c : 1;
  }
  // imap and imap_unordered: the size asked for, else 1, as Python's.
  static size_t imap(size_t asked) { return asked ? asked : 1; }
  // A lazy imap: how many items may be taken from the input and not yet read back (asked, else
  // 4 chunks per worker; never under one chunk).
  static size_t lazy_bound(size_t asked, int workers, size_t chunksize) {
    size_t b = asked ? asked : 4 * static_cast<size_t>(workers) * chunksize;
    return b < chunksize ? chunksize : b;
  }
};

}  // namespace mproc
