#include "gateway/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

namespace {

constexpr std::uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const std::uint8_t* bytes) noexcept {
  return std::memcmp(bytes, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0;
}

std::optional<Cidr> fail(std::string_view* error, std::string_view why) noexcept {
  if (error != nullptr) *error = why;
  return std::nullopt;
}

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text, std::string_view* error) noexcept {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  char buffer[INET6_ADDRSTRLEN] = {};
  if (address.empty() || address.size() >= sizeof buffer)
    return fail(error, "not an IPv4 or IPv6 address");
  std::memcpy(buffer, address.data(), address.size());

  Cidr cidr;
  if (::inet_pton(AF_INET, buffer, cidr.network_.data()) == 1) {
    cidr.v4_ = true;
  } else if (::inet_pton(AF_INET6, buffer, cidr.network_.data()) != 1) {
    return fail(error, "not an IPv4 or IPv6 address");
  }
  const int max_bits = cidr.v4_ ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || digits.size() > 3 || ec != std::errc() ||
        end != digits.data() + digits.size() || bits < 0 || bits > max_bits)
      return fail(error,
                  cidr.v4_ ? "prefix length must be 0 to 32" : "prefix length must be 0 to 128");
  }
  cidr.bits_ = static_cast<std::uint8_t>(bits);
  // Host bits must be zero.
  const int bytes = max_bits / 8;
  for (int i = 0; i < bytes; ++i) {
    const int kept = bits - 8 * i;  // bits of this byte inside the prefix
    const std::uint8_t mask = kept >= 8   ? 0xff
                              : kept <= 0 ? 0
                                          : static_cast<std::uint8_t>(0xff << (8 - kept));
    if ((cidr.network_[static_cast<std::size_t>(i)] & ~mask) != 0)
      return fail(error, "address has bits set past the prefix length");
  }
  return cidr;
}

bool Cidr::contains(std::span<const std::uint8_t> bytes) const noexcept {
  const std::uint8_t* address = bytes.data();
  if (bytes.size() == 16 && v4_ && is_v4_mapped(address)) {
    address += 12;
  } else if (bytes.size() != (v4_ ? 4u : 16u)) {
    return false;
  }
  const int whole = bits_ / 8;
  if (std::memcmp(address, network_.data(), static_cast<std::size_t>(whole)) != 0) return false;
  const int rest = bits_ % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (address[whole] & mask) == network_[static_cast<std::size_t>(whole)];
}

bool Cidr::contains(const sockaddr* address) const noexcept {
  if (address->sa_family == AF_INET) {
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof v4);
    return contains(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&v4.sin_addr), 4));
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof v6);
    return contains(std::span<const std::uint8_t>(v6.sin6_addr.s6_addr, 16));
  }
  return false;
}

std::size_t address_text(const sockaddr* address, char (&out)[46]) noexcept {
  const char* written = nullptr;
  if (address->sa_family == AF_INET) {
    // Every proxied request writes its client's address: no printf.
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof v4);
    const auto* bytes = reinterpret_cast<const unsigned char*>(&v4.sin_addr);
    std::size_t n = 0;
    for (int i = 0; i < 4; ++i) {
      unsigned value = bytes[i];
      if (value >= 100) out[n++] = static_cast<char>('0' + value / 100);
      if (value >= 10) out[n++] = static_cast<char>('0' + value / 10 % 10);
      out[n++] = static_cast<char>('0' + value % 10);
      if (i < 3) out[n++] = '.';
    }
    out[n] = '\0';
    return n;
  } else if (address->sa_family == AF_INET6) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof v6);
    if (is_v4_mapped(v6.sin6_addr.s6_addr))
      written = ::inet_ntop(AF_INET, v6.sin6_addr.s6_addr + 12, out, sizeof out);
    else
      written = ::inet_ntop(AF_INET6, &v6.sin6_addr, out, sizeof out);
  }
  return written == nullptr ? 0 : std::strlen(out);
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
