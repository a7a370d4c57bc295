// net/sockets.hpp (internal) — socket set-up and naming: addresses from text,
// listening sockets, a peer's address as text. Every system call goes through
// the seam (portico/detail/syscalls.hpp).
// Thread-safety: free functions on caller-owned values; any thread.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace portico {
inline namespace v0 {
namespace detail {

// `host` (IPv4, IPv6, or IPv6 in brackets) and `port` as a socket address.
// False when `host` is neither.
bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& address,
                   socklen_t& length) noexcept;
void set_port(sockaddr_storage& address, std::uint16_t port) noexcept;
// A non-blocking listening socket bound to `address` (SO_REUSEADDR, and
// SO_REUSEPORT when `reuse_port`); -1 with `error` set on failure.
int open_listener(const sockaddr_storage& address, socklen_t length, bool reuse_port, int backlog,
                  std::error_code& error) noexcept;
// A non-blocking stream socket of `family` for an outgoing connection, with
// TCP_NODELAY (a request head is written whole; Nagle would hold back a
// body's last segment); -1 with `error` set on failure.
int open_client_socket(int family, std::error_code& error) noexcept;
// The port `fd` is bound to (getsockname); 0 if it cannot be told.
std::uint16_t local_port(int fd) noexcept;
// The peer of `fd` as "host:port" or "[v6]:port" (getpeername), written to
// `out` with a terminating NUL; the length, 0 when unknown or `fd` < 0.
std::size_t format_peer(int fd, char* out, std::size_t size) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
