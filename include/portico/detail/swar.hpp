// portico/detail/swar.hpp — word-at-a-time byte search (SIMD within a
// register), shared by the router's segment scan and the server's header
// checks. Standard library only.
#pragma once

#include <cstdint>
#include <cstring>

namespace portico {
inline namespace v0 {
namespace detail {

inline constexpr std::uint64_t kOnes = 0x0101010101010101ull;
inline constexpr std::uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full;

// The high bit of each byte of `x` that is zero, and no other bit (exact:
// no false positives from borrows). `x ^ (kOnes * c)` finds bytes equal to c.
inline std::uint64_t zero_bytes(std::uint64_t x) noexcept {
  return ~(((x & kLow7) + kLow7) | x | kLow7);
}

inline std::uint64_t load64(const void* p) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
