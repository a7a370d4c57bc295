// tests/tcp_pair.hpp — TcpPair: connected TCP sockets on 127.0.0.1 for tests
// of byte-level code: `first` non-blocking (ours), `second` blocking (the peer).
// Thread-safety: a plain value; both fds close with it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <gtest/gtest.h>

struct TcpPair {
  int first = -1;
  int second = -1;
  // `buffer` > 0: the size of first's send and second's receive buffers, so
  // that a little output fills them.
  explicit TcpPair(int buffer = 0) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      ADD_FAILURE() << "listen: " << errno;
      return;
    }
    second = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Before connect: the receive window is agreed then.
    if (buffer > 0) ::setsockopt(second, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    if (::connect(second, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "connect: " << errno;
    }
    first = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (buffer > 0) ::setsockopt(first, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    ::close(listener);
  }
  ~TcpPair() {
    if (first >= 0) ::close(first);
    if (second >= 0) ::close(second);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;
  // Hands `first` to an owner that closes it itself.
  int release_first() { return std::exchange(first, -1); }
};
