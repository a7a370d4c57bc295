// tests/integration/raw_upstream.hpp — RawUpstream: an upstream made of raw
// sockets that misbehaves on purpose, for the gateway's integration tests. A
// thread accepts on 127.0.0.1:0; each connection runs the test's behaviour
// (a lambda given a RawConnection: read the request, then send bytes, reset,
// stall, close) on a thread of its own. Gates: named one-shot signals a test
// and a behaviour wait on, so nothing synchronises by sleeping.
// Thread-safety: RawUpstream's members may be called from any thread; a
// RawConnection belongs to its behaviour's thread. Every socket has a 5 s
// receive and send timeout, so a gateway that hangs fails a test instead of
// blocking it.
// Lifetimes: the destructor stops accepting, opens every gate, shuts every
// connection's socket down (a behaviour blocked on it wakes) and joins every
// behaviour: state a behaviour captured by reference must be declared
// before the RawUpstream.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace portico::testing {

// A one-shot signal between threads: open() once, wait() until it is (or
// the timeout passes: false).
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return open_; });
  }
  bool is_open() {
    std::lock_guard lock(mutex_);
    return open_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

// How a connection ended, seen from the upstream's side.
enum class PeerEnd {
  kClosed,   // read EOF: the gateway closed it
  kReset,    // ECONNRESET or EPIPE
  kTimeout,  // still open when the timeout passed
};

inline const char* to_string(PeerEnd end) noexcept {
  switch (end) {
    case PeerEnd::kClosed:
      return "closed";
    case PeerEnd::kReset:
      return "reset";
    case PeerEnd::kTimeout:
      return "timeout";
  }
  return "?";
}

class RawUpstream;

// One accepted connection, as a behaviour drives it.
class RawConnection {
 public:
  RawConnection(RawUpstream& upstream, int fd, std::size_t index)
      : upstream_(upstream), fd_(fd), index_(index) {}
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // 1 for the first connection accepted, 2 for the next, ...
  std::size_t index() const noexcept { return index_; }
  int fd() const noexcept { return fd_; }
  // Every byte read so far.
  const std::string& received() const noexcept { return in_; }

  // Reads until a request head is in (CR LF CR LF); returns it (empty when
  // the connection ended first). Bytes after it stay for read_body().
  std::string read_head() {
    for (;;) {
      const std::size_t end = in_.find("\r\n\r\n", consumed_);
      if (end != std::string::npos) {
        std::string head = in_.substr(consumed_, end + 4 - consumed_);
        consumed_ = end + 4;
        return head;
      }
      if (!receive_some()) return {};
    }
  }
  // Reads the body the head announced (Content-Length or chunked, up to the
  // last chunk's CR LF CR LF); false when the connection ended first.
  bool read_body(std::string_view head) {
    const std::string lower = lowercase(head);
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        const std::size_t end = in_.find("0\r\n\r\n", consumed_);
        if (end != std::string::npos &&
            (end == consumed_ || in_.compare(end - 2, 2, "\r\n") == 0)) {
          consumed_ = end + 5;
          return true;
        }
        if (!receive_some()) return false;
      }
    }
    const std::size_t at = lower.find("content-length:");
    const std::size_t length =
        at == std::string::npos ? 0 : std::strtoul(lower.c_str() + at + 15, nullptr, 10);
    while (in_.size() - consumed_ < length) {
      if (!receive_some()) return false;
    }
    consumed_ += length;
    return true;
  }
  // A whole request: read_head() then read_body(); empty when it ended first.
  std::string read_request() {
    std::string head = read_head();
    if (head.empty() || !read_body(head)) return {};
    return head;
  }

  // Writes every byte; false when the peer is gone (EPIPE, ECONNRESET).
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // A response with this status, body and Content-Length, keep-alive.
  bool respond(int status, std::string_view body) {
    return send("HTTP/1.1 " + std::to_string(status) + " Whatever\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + std::string(body));
  }
  // Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
  void reset() {
    if (fd_ < 0) return;
    const linger hard{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close();
  }
  // A FIN after whatever was sent.
  void close();
  // The upstream's gate called `name` (made on first use).
  Gate& gate(std::string_view name);
  // Reads (and keeps) whatever comes until the gateway ends the connection
  // or `timeout` passes.
  PeerEnd wait_end(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return PeerEnd::kTimeout;
      pollfd p{fd_, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return PeerEnd::kTimeout;
      char chunk[16 * 1024];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return PeerEnd::kClosed;
      if (n < 0) return errno == EAGAIN ? PeerEnd::kTimeout : PeerEnd::kReset;
      in_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  static std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
  }
  bool receive_some() {
    char chunk[16 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      in_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
  }

  RawUpstream& upstream_;
  int fd_;
  std::size_t index_;
  std::string in_;
  std::size_t consumed_ = 0;  // bytes of in_ read_head()/read_body() took
};

class RawUpstream {
 public:
  using Behaviour = std::function<void(RawConnection&)>;

  explicit RawUpstream(Behaviour behaviour) : behaviour_(std::move(behaviour)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listen_fd_, 64), 0);
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RawUpstream() {
    // shutdown() wakes the blocked accept() (it returns EINVAL on Linux).
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(listen_fd_);
    {
      std::lock_guard lock(mutex_);
      for (auto& [name, gate] : gates_) gate->open();
      for (const int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& thread : connections_) thread.join();
  }
  RawUpstream(const RawUpstream&) = delete;
  RawUpstream& operator=(const RawUpstream&) = delete;

  // The gate called `name`, made on first use (by the test or a behaviour,
  // whichever comes first); the destructor opens it.
  Gate& gate(std::string_view name) {
    std::lock_guard lock(mutex_);
    std::unique_ptr<Gate>& gate = gates_[std::string(name)];
    if (!gate) gate = std::make_unique<Gate>();
    return *gate;
  }

  // Connections accepted, and behaviours that returned, so far.
  std::size_t accepted() {
    std::lock_guard lock(mutex_);
    return accepted_;
  }
  std::size_t finished() {
    std::lock_guard lock(mutex_);
    return finished_;
  }
  // Waits until `count` behaviours have returned; false at the timeout.
  bool wait_finished(std::size_t count,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return finished_ >= count; });
  }

  std::uint16_t port = 0;

 private:
  void accept_loop() {
    for (;;) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      const timeval five{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &five, sizeof five);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard lock(mutex_);
      const std::size_t index = ++accepted_;
      open_fds_.insert(fd);
      connections_.emplace_back([this, fd, index] {
        {
          RawConnection connection(*this, fd, index);
          behaviour_(connection);
        }
        {
          std::lock_guard done(mutex_);
          ++finished_;
        }
        changed_.notify_all();
      });
      changed_.notify_all();
    }
  }

  friend class RawConnection;
  // Closes a connection's fd under the lock, so the destructor never shuts
  // down a number the kernel has given to another socket.
  void close_fd(int fd) {
    std::lock_guard lock(mutex_);
    open_fds_.erase(fd);
    ::close(fd);
  }

  Behaviour behaviour_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::list<std::thread> connections_;
  std::map<std::string, std::unique_ptr<Gate>, std::less<>> gates_;
  std::set<int> open_fds_;
  std::size_t accepted_ = 0;
  std::size_t finished_ = 0;
};

inline void RawConnection::close() {
  if (fd_ >= 0) upstream_.close_fd(std::exchange(fd_, -1));
}

inline Gate& RawConnection::gate(std::string_view name) {
  return upstream_.gate(name);
}

// The first raw upstream the gateway tests had: every connection gets a
// response with both Content-Length and Transfer-Encoding (a framing error),
// then the connection is read until the gateway closes it.
class GarbageUpstream : public RawUpstream {
 public:
  GarbageUpstream()
      : RawUpstream([](RawConnection& connection) {
          if (connection.read_head().empty()) return;
          connection.send(
              "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc");
          connection.wait_end();
        }) {}
};

}  // namespace portico::testing
