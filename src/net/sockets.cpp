// net/sockets.cpp — socket set-up and naming (see sockets.hpp).
#include "net/sockets.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

}  // namespace

bool parse_address(const std::string& host, std::uint16_t port, sockaddr_storage& address,
                   socklen_t& length) noexcept {
  address = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  std::string bare = host;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
    bare = bare.substr(1, bare.size() - 2);
  if (::inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

void set_port(sockaddr_storage& address, std::uint16_t port) noexcept {
  if (address.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(port);
  }
}

int open_listener(const sockaddr_storage& address, socklen_t length, bool reuse_port, int backlog,
                  std::error_code& error) noexcept {
  const int fd = sys::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = last_error();
    return -1;
  }
  const int one = 1;
  (void)sys::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && sys::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    error = last_error();
    sys::close(fd);
    return -1;
  }
  if (sys::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0 ||
      sys::listen(fd, backlog) != 0) {
    error = last_error();
    sys::close(fd);
    return -1;
  }
  return fd;
}

int open_client_socket(int family, std::error_code& error) noexcept {
  const int fd = sys::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = last_error();
    return -1;
  }
  const int one = 1;
  if (sys::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    error = last_error();
    sys::close(fd);
    return -1;
  }
  return fd;
}

std::uint16_t local_port(int fd) noexcept {
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  sys::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  return ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                          : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

std::size_t format_peer(int fd, char* out, std::size_t size) noexcept {
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  // Asked for rarely (access log, handlers that want it), so the address is
  // not kept: an idle connection stays small.
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (fd < 0 || sys::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return 0;
  if (peer.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&peer);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
    const int n = std::snprintf(out, size, "%s:%u", host, port);
    return n > 0 ? std::min(static_cast<std::size_t>(n), size - 1) : 0;
  }
  if (peer.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    const int n = std::snprintf(out, size, "[%s]:%u", host, port);
    return n > 0 ? std::min(static_cast<std::size_t>(n), size - 1) : 0;
  }
  return 0;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
