// net/byte_stream.cpp — ByteStream: interest, writes and pending output,
// linger and close (see byte_stream.hpp). Runs on the owning reactor thread.
#include "net/byte_stream.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

// Streams are edge-triggered: a level-triggered fd that was reported is put
// back on epoll's ready list and polled again at the next epoll_wait, once
// per request. A short read means the socket was drained, so one read per
// request still suffices; where a reader stops short of that it re-arms
// (rearm(), and start_linger drains at once).
constexpr std::uint32_t kTrigger = EPOLLET;

bool would_block(int error) noexcept {
  return error == EAGAIN || error == EWOULDBLOCK;
}

}  // namespace

bool ByteStream::add(Reactor& reactor, IoHandler* handler, std::uint32_t interest) noexcept {
  interest_ = static_cast<std::uint16_t>(interest);
  return !reactor.add(fd_, interest | kTrigger, handler);
}

bool ByteStream::change_interest(Reactor& reactor, IoHandler* handler,
                                 std::uint32_t want) noexcept {
  interest_ = static_cast<std::uint16_t>(want);
  return !reactor.modify(fd_, want | kTrigger, handler);
}

bool ByteStream::rearm(Reactor& reactor, IoHandler* handler) noexcept {
  return !reactor.modify(fd_, interest_ | kTrigger, handler);
}

ConnectStatus ByteStream::start_connect(const sockaddr* address, socklen_t length) noexcept {
  // EINTR leaves the attempt going on in the background, as EINPROGRESS does.
  if (sys::connect(fd_, address, length) == 0 || errno == EINPROGRESS || errno == EINTR) {
    connecting_ = true;
    return ConnectStatus::kInProgress;
  }
  return ConnectStatus::kFailed;
}

int ByteStream::finish_connect() noexcept {
  connecting_ = false;
  int error = 0;
  socklen_t length = sizeof error;
  if (sys::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
  return error;
}

ssize_t ByteStream::receive(std::span<char> room) noexcept {
  const ssize_t n = sys::recv(fd_, room.data(), room.size());
  return n >= 0 ? n : -errno;
}

WriteStatus ByteStream::write(std::string_view head, std::string_view tail,
                              std::string* tail_owner) {
  ssize_t n;
  if (tail.empty()) {
    n = sys::send(fd_, head.data(), head.size());
  } else {
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(tail.data()), tail.size()}};
    n = sys::sendv(fd_, iov, 2);
  }
  if (n == static_cast<ssize_t>(head.size() + tail.size())) return WriteStatus::kWritten;
  if (n < 0 && !would_block(errno)) return WriteStatus::kFailed;
  keep_unwritten(head, tail, n > 0 ? static_cast<std::size_t>(n) : 0, tail_owner);
  return n > 0 ? WriteStatus::kProgress : WriteStatus::kBlocked;
}

void ByteStream::append_pending(std::string_view head, std::string_view tail) {
  if (pending_ == nullptr) pending_ = std::make_unique<Pending>();
  pending_->bytes.append(head);
  pending_->bytes.append(tail);
}

void ByteStream::keep_unwritten(std::string_view head, std::string_view tail, std::size_t written,
                                std::string* tail_owner) {
  if (tail_owner != nullptr && written >= head.size() && pending_ == nullptr &&
      tail.data() == tail_owner->data() && tail.size() == tail_owner->size()) {
    // The rest lies within the owner's string: keep that string, not a copy.
    pending_ = std::make_unique<Pending>();
    pending_->bytes = std::move(*tail_owner);
    pending_->offset = written - head.size();
    return;
  }
  if (written < head.size()) {
    head.remove_prefix(written);
  } else {
    tail.remove_prefix(written - head.size());
    head = {};
  }
  std::string rest;
  const std::string_view before = pending_ != nullptr
                                      ? std::string_view(pending_->bytes).substr(pending_->offset)
                                      : std::string_view();
  rest.reserve(head.size() + tail.size() + before.size());
  rest.append(head);
  rest.append(tail);
  rest.append(before);
  if (pending_ == nullptr) pending_ = std::make_unique<Pending>();
  pending_->bytes = std::move(rest);
  pending_->offset = 0;
}

WriteStatus ByteStream::write_pending() noexcept {
  Pending& pending = *pending_;
  const ssize_t n =
      sys::send(fd_, pending.bytes.data() + pending.offset, pending.bytes.size() - pending.offset);
  if (n < 0) return would_block(errno) ? WriteStatus::kBlocked : WriteStatus::kFailed;
  pending.offset += static_cast<std::size_t>(n);
  if (pending.offset < pending.bytes.size()) return WriteStatus::kProgress;
  pending_.reset();
  return WriteStatus::kWritten;
}

WriteStatus ByteStream::take_short_send(std::string_view bytes, ssize_t result) {
  if (result < 0 && !would_block(static_cast<int>(-result))) return WriteStatus::kFailed;
  // The socket buffer is full: the rest goes ahead of anything appended
  // since (write_pending wrote none of it while the send was queued).
  keep_unwritten(bytes, {}, result > 0 ? static_cast<std::size_t>(result) : 0);
  return result > 0 ? WriteStatus::kProgress : WriteStatus::kBlocked;
}

void ByteStream::shutdown_write() noexcept {
  // A failure (the peer reset meanwhile) shows at the next read or write.
  (void)sys::shutdown(fd_, SHUT_WR);
}

LingerStatus ByteStream::start_linger() noexcept {
  (void)sys::shutdown(fd_, SHUT_WR);
  // Bytes that arrived before now bring no new edge: drain them here.
  return drain_linger();
}

LingerStatus ByteStream::drain_linger() noexcept {
  char sink[4096];
  for (;;) {
    const ssize_t n = sys::recv(fd_, sink, sizeof sink);
    if (n > 0) continue;
    if (n < 0 && would_block(errno)) return LingerStatus::kDraining;
    return LingerStatus::kDone;
  }
}

void ByteStream::close(Reactor& reactor) noexcept {
  if (fd_ < 0) return;
  (void)reactor.remove(fd_);
  sys::close(fd_);
  fd_ = -1;
  pending_.reset();
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
