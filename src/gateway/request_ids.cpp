#include "gateway/request_ids.hpp"

#include <sys/random.h>

#include <bit>
#include <cstring>
#include <ctime>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// This thread's generator, constructed (seeded) on first use. Callers take
// it once per request: each access to a thread_local with a constructor
// goes through its initialisation check.
Xoshiro256& generator() noexcept {
  thread_local Xoshiro256 generator;
  return generator;
}

#if defined(__SSE2__)
// Bytes of nibbles (0-15) as lowercase hex digits: '0' added to each, and
// 'a' - '0' - 10 more where it is above 9.
inline __m128i hex_ascii(__m128i nibbles) noexcept {
  const __m128i letters =
      _mm_and_si128(_mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
  return _mm_add_epi8(_mm_add_epi8(nibbles, _mm_set1_epi8('0')), letters);
}
// The high and the low nibble of each byte of `bytes`.
inline __m128i high_nibbles(__m128i bytes) noexcept {
  return _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0f));
}
inline __m128i low_nibbles(__m128i bytes) noexcept {
  return _mm_and_si128(bytes, _mm_set1_epi8(0x0f));
}
// A value's bytes as they are written: the most significant first.
inline long long digit_order(std::uint64_t value) noexcept {
  return static_cast<long long>(__builtin_bswap64(value));
}
#else
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
#endif

}  // namespace

// With SSE2, one register holds a value's 16 digits (two values' 32): the
// nibbles of each byte are split, interleaved high first, and turned into
// ASCII 16 bytes at a time.
void write_hex(char* out, std::uint64_t value) noexcept {
#if defined(__SSE2__)
  const __m128i bytes = _mm_cvtsi64_si128(digit_order(value));
  const __m128i digits = _mm_unpacklo_epi8(high_nibbles(bytes), low_nibbles(bytes));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), hex_ascii(digits));
#else
  write_hex8(out, static_cast<std::uint32_t>(value >> 32));
  write_hex8(out + 8, static_cast<std::uint32_t>(value));
#endif
}

void write_hex(char* out, std::uint64_t high, std::uint64_t low) noexcept {
#if defined(__SSE2__)
  const __m128i bytes = _mm_set_epi64x(digit_order(low), digit_order(high));
  const __m128i highs = high_nibbles(bytes);
  const __m128i lows = low_nibbles(bytes);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), hex_ascii(_mm_unpacklo_epi8(highs, lows)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), hex_ascii(_mm_unpackhi_epi8(highs, lows)));
#else
  write_hex(out, high);
  write_hex(out + 16, low);
#endif
}

namespace {

// `count` hex digits (16 or 32) of fresh randomness, never all zeros.
void random_hex(Xoshiro256& random, char* out, std::size_t count) noexcept {
  for (;;) {
    const std::uint64_t high = random.next();
    if (count == 16) {
      write_hex(out, high);
      if (high != 0) return;
      continue;
    }
    const std::uint64_t low = random.next();
    write_hex(out, high, low);
    if ((high | low) != 0) return;
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
  return generator().next();
}

void RequestIds::decide(std::string_view client_request_id,
                        std::string_view client_traceparent) noexcept {
  // A copy in registers: the digits' stores could alias the thread's state.
  Xoshiro256& thread_generator = generator();
  Xoshiro256 random = thread_generator;
  generated_request_id_ = !request_id_is_sane(client_request_id);
  if (generated_request_id_) {
    client_request_id_ = {};
    random_hex(random, request_id_digits_, 32);
  } else {
    client_request_id_ = client_request_id;
  }

  std::memcpy(traceparent_, "00-", 3);
  traceparent_[35] = '-';
  traceparent_[52] = '-';
  TraceParent parent;
  trace_started_ = !parse_traceparent(client_traceparent, parent);
  if (trace_started_) {
    random_hex(random, traceparent_ + 3, 32);
    std::memcpy(traceparent_ + 53, "00", 2);
  } else {
    std::memcpy(traceparent_ + 3, parent.trace_id.data(), 32);
    std::memcpy(traceparent_ + 53, parent.flags.data(), 2);
  }
  random_hex(random, traceparent_ + 36, 16);
  thread_generator = random;
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
