// Rounding sizes and offsets up to an alignment.
#pragma once
#include <cstdint>

namespace mproc {

constexpr uint64_t round_up(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }
// To a cache line: shared structures that different processes write sit on lines of their own.
constexpr uint64_t round64(uint64_t n) { return round_up(n, 64); }

}  // namespace mproc
