#include "gateway/request_ids.hpp"

#include <sys/random.h>

#include <bit>
#include <cstring>
#include <ctime>

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

namespace {


bool is_lower_hex(std::string_view s) noexcept {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zeros(std::string_view s) noexcept {
  return s.find_first_not_of('0') == std::string_view::npos;
}

// xoshiro256** (Blackman and Vigna): 32 bytes of state and a few cycles a
// number. Ids need to be unpredictable enough not to collide, not to be
// secret, so a seeded fast generator serves where getrandom per id would
// be a system call per request.
class Xoshiro256 {
 public:
  Xoshiro256() noexcept {
    std::uint64_t seed[4] = {};
    if (::getrandom(seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
      // No entropy source (a seccomp sandbox): the clock and this object's
      // address still keep threads and processes apart.
      timespec now{};
      ::clock_gettime(CLOCK_REALTIME, &now);
      seed[0] = static_cast<std::uint64_t>(now.tv_nsec) ^ reinterpret_cast<std::uintptr_t>(this);
      seed[1] = static_cast<std::uint64_t>(now.tv_sec);
    }
    // SplitMix64 spreads the seed so no state word is zero.
    std::uint64_t x = seed[0] ^ seed[1] ^ seed[2] ^ seed[3];
    for (int i = 0; i < 4; ++i) {
      x += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s_[i] = (z ^ (z >> 31)) ^ seed[i];
    }
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// Eight lowercase hex digits of `value`, a word at a time: each nibble
// spread into a byte, then '0' added, and 'a' - '0' - 10 more where it is
// 10 or above.
void write_hex8(char* out, std::uint32_t value) noexcept {
  std::uint64_t x = value;
  x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
  x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
  x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0fULL;
  const std::uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  if constexpr (std::endian::native == std::endian::little)
    x = __builtin_bswap64(x);  // the most significant digit first
  std::memcpy(out, &x, 8);
}

void write_hex(char* out, std::uint64_t value) noexcept {
  write_hex8(out, static_cast<std::uint32_t>(value >> 32));
  write_hex8(out + 8, static_cast<std::uint32_t>(value));
}

// `count` hex digits (a multiple of 16) of fresh randomness, never all zeros.
void random_hex(char* out, std::size_t count) noexcept {
  for (;;) {
    bool zero = true;
    for (std::size_t i = 0; i < count; i += 16) {
      const std::uint64_t r = random_u64();
      zero = zero && r == 0;
      write_hex(out + i, r);
    }
    if (!zero) return;
  }
}

}  // namespace

bool request_id_is_sane(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (const char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool parse_traceparent(std::string_view value, TraceParent& out) noexcept {
  // "00-" 32 hex "-" 16 hex "-" 2 hex: 55 bytes exactly for version 00.
  if (value.size() != 55 || value.substr(0, 3) != "00-" || value[35] != '-' || value[52] != '-')
    return false;
  const std::string_view trace_id = value.substr(3, 32);
  const std::string_view parent_id = value.substr(36, 16);
  const std::string_view flags = value.substr(53, 2);
  if (!is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags)) return false;
  if (all_zeros(trace_id) || all_zeros(parent_id)) return false;
  out = {trace_id, parent_id, flags};
  return true;
}

std::uint64_t random_u64() noexcept {
  thread_local Xoshiro256 generator;
  return generator.next();
}

void RequestIds::decide(std::string_view client_request_id,
                        std::string_view client_traceparent) noexcept {
  generated_request_id_ = !request_id_is_sane(client_request_id);
  if (generated_request_id_) {
    client_request_id_ = {};
    random_hex(request_id_digits_, 32);
  } else {
    client_request_id_ = client_request_id;
  }

  std::memcpy(traceparent_, "00-", 3);
  traceparent_[35] = '-';
  traceparent_[52] = '-';
  TraceParent parent;
  trace_started_ = !parse_traceparent(client_traceparent, parent);
  if (trace_started_) {
    random_hex(traceparent_ + 3, 32);
    std::memcpy(traceparent_ + 53, "00", 2);
  } else {
    std::memcpy(traceparent_ + 3, parent.trace_id.data(), 32);
    std::memcpy(traceparent_ + 53, parent.flags.data(), 2);
  }
  random_hex(traceparent_ + 36, 16);
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
