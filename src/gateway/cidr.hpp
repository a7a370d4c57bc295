// gateway/cidr.hpp (internal) — Cidr: an IPv4 or IPv6 network
// (`10.0.0.0/8`, `::1/128`, or an address alone), parsed from text, and
// whether a peer's address lies in one; what trusted_proxies holds.
// Thread-safety: immutable values. Lifetimes: nothing is viewed.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

class Cidr {
 public:
  // "ADDRESS/BITS" or "ADDRESS" (all bits). Bits past the prefix must be
  // zero ("10.1.0.0/8" is refused: it most likely says something else than
  // meant). On failure `error`, when given, says why.
  static std::optional<Cidr> parse(std::string_view text,
                                   std::string_view* error = nullptr) noexcept;

  // An AF_INET or AF_INET6 address; an IPv4-mapped IPv6 address
  // (::ffff:a.b.c.d, what a dual-stack socket reports) matches as the IPv4
  // address it carries. Any other family: false.
  bool contains(const sockaddr* address) const noexcept;
  // `bytes` is 4 (IPv4) or 16 (IPv6) bytes in network order.
  bool contains(std::span<const std::uint8_t> bytes) const noexcept;

  bool is_v4() const noexcept { return v4_; }
  int prefix_bits() const noexcept { return bits_; }

  bool operator==(const Cidr&) const = default;

 private:
  std::array<std::uint8_t, 16> network_{};
  std::uint8_t bits_ = 0;
  bool v4_ = false;
};

// Whether `address` lies in any of `networks`. An empty list returns before
// looking at the address.
inline bool in_any(std::span<const Cidr> networks, const sockaddr* address) noexcept {
  for (const Cidr& network : networks) {
    if (network.contains(address)) return true;
  }
  return false;
}

// The address of `address` as text without port or brackets ("192.0.2.1",
// "2001:db8::1"), what X-Forwarded-For carries; a mapped IPv6 address as
// its IPv4 form. Returns the length written into `out` (0 for another
// family).
std::size_t address_text(const sockaddr* address, char (&out)[46]) noexcept;

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
