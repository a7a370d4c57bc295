// net/byte_stream.hpp (internal) — ByteStream: one connected socket as bytes,
// no HTTP: fd, epoll interest, pending output, linger, the peer's EOF, close.
// Thread-safety: owned by one reactor thread; keeps no views (unwritten bytes are copied).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "portico/reactor.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class IoBatcher;

// What a write did. The connection decides what each means for it (close,
// linger, time the stall); the stream only keeps the bytes in order.
enum class WriteStatus : std::uint8_t {
  kWritten,   // all of it went out
  kProgress,  // some went out; the rest waits (pending) for EPOLLOUT
  kBlocked,   // none went out (the socket buffer is full); it waits
  kFailed,    // the connection is broken (reset, EPIPE): close it
};

// How a non-blocking connect started.
enum class ConnectStatus : std::uint8_t {
  kInProgress,  // wait for EPOLLOUT, then finish_connect()
  kFailed,      // refused or unreachable at once; errno says which
};

enum class LingerStatus : std::uint8_t {
  kDraining,  // the peer has not closed yet: drain again on EPOLLIN
  kDone,      // the peer closed (or the socket failed): close now
};

// A connection owns one ByteStream (composition) and passes its reactor and
// itself as the IoHandler where epoll is touched: the stream stays 16 bytes,
// within an idle connection's budget.
// What one ByteStream::receive() result asks of an edge-triggered read loop;
// every reader (server, tunnel, upstream) reads the same way.
enum class ReadEnd : std::uint8_t {
  kBytes,    // result > 0
  kEof,      // the peer closed its sending side
  kRetry,    // interrupted: read again
  kDrained,  // nothing more until the next edge
  kFailed,   // reset or another error
};
inline ReadEnd read_end(ssize_t result) noexcept {
  if (result > 0) return ReadEnd::kBytes;
  if (result == 0) return ReadEnd::kEof;
  if (result == -EINTR) return ReadEnd::kRetry;
  if (result == -EAGAIN || result == -EWOULDBLOCK) return ReadEnd::kDrained;
  return ReadEnd::kFailed;
}
// After `result` bytes of `asked`: whether to read again now. A full read
// may have left bytes (no new edge comes for them); a short one drained the
// socket, unless a FIN came with its bytes (EPOLLRDHUP), which brings no
// edge either.
inline bool read_again(ssize_t result, std::size_t asked, std::uint32_t events) noexcept {
  return static_cast<std::size_t>(result) == asked || (events & EPOLLRDHUP) != 0;
}

class ByteStream {
 public:
  explicit ByteStream(int fd) noexcept : fd_(fd) {}
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  // -1 once closed (a batched op then skips it).
  int fd() const noexcept { return fd_; }
  bool closed() const noexcept { return fd_ < 0; }
  bool has_pending() const noexcept { return pending_ != nullptr; }
  bool peer_eof() const noexcept { return peer_eof_; }
  // The peer shut down its sending side (a read returned 0, or EPOLLRDHUP).
  void set_peer_eof() noexcept { peer_eof_ = true; }
  bool send_queued() const noexcept { return send_queued_; }
  bool read_queued() const noexcept { return read_queued_; }
  // Output must wait behind bytes not written yet (pending, or a queued
  // send whose remainder goes in front of it).
  bool blocked() const noexcept { return pending_ != nullptr || send_queued_; }
  // Nothing pending and no batched op out.
  bool idle() const noexcept { return pending_ == nullptr && !send_queued_ && !read_queued_; }

  // ---- connecting (an upstream connection; a server's stream never is) ----
  // Starts a non-blocking connect of this stream's socket to `address`. A
  // connect that completes at once is reported like one in progress: the
  // socket is writable at once, so one completion path serves both.
  ConnectStatus start_connect(const sockaddr* address, socklen_t length) noexcept;
  bool connecting() const noexcept { return connecting_; }
  // EPOLLOUT (or EPOLLERR/EPOLLHUP) came while connecting: 0 when connected,
  // else the errno the connect failed with (SO_ERROR).
  int finish_connect() noexcept;

  // Registers with `reactor` for `interest` (EPOLLIN, EPOLLRDHUP, EPOLLOUT),
  // edge-triggered. False on failure (the caller closes).
  bool add(Reactor& reactor, IoHandler* handler, std::uint32_t interest) noexcept;
  // Interest: reading if `reading`, writing while output is pending. Only a
  // change costs a system call. False on failure (the caller closes).
  bool update_interest(Reactor& reactor, IoHandler* handler, bool reading) noexcept {
    const std::uint32_t want =
        (reading ? EPOLLIN | EPOLLRDHUP : 0u) | (pending_ != nullptr ? EPOLLOUT : 0u);
    return want == interest_ || change_interest(reactor, handler, want);
  }
  // Edge-triggered, stopping short of draining the socket means no new edge:
  // EPOLL_CTL_MOD queues the fd again if it is still readable.
  bool rearm(Reactor& reactor, IoHandler* handler) noexcept;

  // One recv(2) into `room`: bytes, 0 at the peer's EOF, or -errno.
  ssize_t receive(std::span<char> room) noexcept;

  // Writes `head` then `tail` (one sendmsg when `tail` is not empty).
  // REQUIRES: !blocked(). kProgress/kBlocked keep the rest as pending.
  // When `tail_owner` holds `tail` (a big body), a rest within it is kept by
  // taking the string over instead of copying it.
  WriteStatus write(std::string_view head, std::string_view tail = {},
                    std::string* tail_owner = nullptr);
  // Puts `head` then `tail` behind the output not written yet.
  void append_pending(std::string_view head, std::string_view tail = {});
  // Writes what is pending. REQUIRES: has_pending() && !send_queued().
  // kWritten: nothing is pending any more.
  WriteStatus write_pending() noexcept;
  // A batched send of `bytes` returned `result` (bytes or -errno): keeps its
  // unwritten rest ahead of what was appended while it was queued. kWritten
  // says the batch went out whole; pending output may still wait behind it.
  WriteStatus take_sent(std::string_view bytes, ssize_t result) {
    if (result == static_cast<ssize_t>(bytes.size())) return WriteStatus::kWritten;
    return take_short_send(bytes, result);
  }
  // Drops output not written yet (the connection is broken).
  void drop_pending() noexcept { pending_.reset(); }

  // Sends a FIN (shutdown(SHUT_WR)) while still reading: a tunnel relays
  // its other side's EOF. REQUIRES: !blocked() (the last bytes are out).
  void shutdown_write() noexcept;

  // Half-closes (our last bytes are out) and drains what the peer still
  // sends, so those bytes are not destroyed by a reset (closing with unread
  // input sends RST).
  LingerStatus start_linger() noexcept;
  // Discards input until the peer closes.
  LingerStatus drain_linger() noexcept;

  // Leaves epoll, closes the fd, drops pending output. Batched ops still
  // out see fd -1.
  void close(Reactor& reactor) noexcept;

 private:
  friend class IoBatcher;  // sets and clears the queued flags

  bool change_interest(Reactor& reactor, IoHandler* handler, std::uint32_t want) noexcept;
  WriteStatus take_short_send(std::string_view bytes, ssize_t result);
  // A write of `head` then `tail` took `written` bytes: keeps the rest,
  // ahead of anything already pending.
  void keep_unwritten(std::string_view head, std::string_view tail, std::size_t written,
                      std::string* tail_owner = nullptr);

  struct Pending {
    std::string bytes;
    std::size_t offset = 0;
  };

  int fd_;
  std::uint16_t interest_ = 0;  // current epoll interest (the low 16 bits hold them all)
  bool peer_eof_ : 1 = false;
  bool send_queued_ : 1 = false;  // output waits in the IoBatcher's queued sends
  bool read_queued_ : 1 = false;  // a read waits in the IoBatcher's queued reads
  bool connecting_ : 1 = false;   // start_connect() ran, finish_connect() not yet
  // Output a write could not take yet (rare: the socket buffer was full).
  std::unique_ptr<Pending> pending_;
};

static_assert(sizeof(ByteStream) <= 16, "a stream is part of every idle connection");

}  // namespace detail
}  // namespace v0
}  // namespace portico
