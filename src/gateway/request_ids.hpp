// gateway/request_ids.hpp (internal) — what identifies a proxied request:
// its X-Request-Id (the client's when sane, else 128 random bits in hex)
// and its W3C trace context (traceparent version 00: the trace id kept or
// started, a new parent id for the hop to the upstream).
// Thread-safety: the random ids come from a generator per thread, seeded
// from the OS on first use; a RequestIds belongs to one thread at a time.
// Lifetimes: request_id() may view the client's head (see decide()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

// The longest X-Request-Id kept as the client sent it.
inline constexpr std::size_t kMaxRequestIdBytes = 200;

// 1 to kMaxRequestIdBytes bytes, each visible ASCII (0x21-0x7E).
bool request_id_is_sane(std::string_view id) noexcept;

// A parsed traceparent (W3C Trace Context, version 00): lowercase hex,
// neither id all zeros. Any other version is treated as invalid.
struct TraceParent {
  std::string_view trace_id;   // 32 hex digits
  std::string_view parent_id;  // 16 hex digits
  std::string_view flags;      // 2 hex digits
};
bool parse_traceparent(std::string_view value, TraceParent& out) noexcept;

// 64 bits from this thread's generator (xoshiro256**, seeded by getrandom).
std::uint64_t random_u64() noexcept;

// `value` as 16 lowercase hex digits at `out`, the most significant first.
void write_hex(char* out, std::uint64_t value) noexcept;
// `high` then `low` as 32 lowercase hex digits at `out`.
void write_hex(char* out, std::uint64_t high, std::uint64_t low) noexcept;

// The ids of one request. Copyable: the generated digits live inside it.
class RequestIds {
 public:
  // Decides both ids from what the client sent (empty views when absent).
  // `client_request_id` is kept when sane, viewed, not copied: the client's
  // head must outlive request_id(). A valid `client_traceparent` keeps its
  // trace id and flags; else a new trace starts with flags 00 (the gateway
  // records no spans itself, so it does not claim the trace as sampled).
  void decide(std::string_view client_request_id, std::string_view client_traceparent) noexcept;

  std::string_view request_id() const noexcept {
    return generated_request_id_ ? std::string_view(request_id_digits_, 32) : client_request_id_;
  }
  bool request_id_generated() const noexcept { return generated_request_id_; }
  std::string_view trace_id() const noexcept { return {traceparent_ + 3, 32}; }
  std::string_view span_id() const noexcept { return {traceparent_ + 36, 16}; }
  // "00-<trace id>-<span id>-<flags>", what the upstream receives.
  std::string_view traceparent() const noexcept { return {traceparent_, sizeof traceparent_}; }
  bool trace_started() const noexcept { return trace_started_; }

 private:
  std::string_view client_request_id_;
  char request_id_digits_[32] = {};
  char traceparent_[55] = {};
  bool generated_request_id_ = false;
  bool trace_started_ = false;
};

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
