// net/ticks.hpp (internal) — Ticks: a reactor's clock in 32-bit milliseconds,
// for the timestamps a connection keeps. Plain values and pure functions:
// usable from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace portico {
inline namespace v0 {
namespace detail {

// Milliseconds of a reactor's clock in 32 bits (wrapping every 49 days),
// compared by signed difference.
using Ticks = std::uint32_t;
inline Ticks to_ticks(std::chrono::steady_clock::time_point t) noexcept {
  return static_cast<Ticks>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}
inline bool ticks_before(Ticks a, Ticks b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
