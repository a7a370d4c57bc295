// server/server_connection.cpp — ServerConnection: reading, feeding the
// parser, flushing output (batched, pending, linger), epoll interest, timers
// and closing. Runs on the connection's reactor thread only.
#include "server/server_connection.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>

#include "net/sockets.hpp"
#include "portico/detail/syscalls.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr int kMaxReadsPerEvent = 4;  // fairness between connections
// Connections are edge-triggered: a level-triggered fd that was reported is
// put back on epoll's ready list and polled again at the next epoll_wait,
// once per request. A short read means the socket was drained, so one read
// per request still suffices; where a connection stops short of that it
// re-arms (see read_input and start_linger).
constexpr std::uint32_t kConnectionTrigger = EPOLLET;
constexpr std::chrono::milliseconds kLingerTimeout{2000};

}  // namespace

void ServerConnection::open() {
  ++shard_.connection_count;
  shard_.counters.open.store(shard_.connection_count, std::memory_order_relaxed);
  next = shard_.connections;
  if (next != nullptr) next->prev = this;
  shard_.connections = this;
  last_active_ = now_ticks();
  events_ = EPOLLIN | EPOLLRDHUP;
  if (shard_.reactor.add(fd_, events_ | kConnectionTrigger, this)) {
    close();
    finish_entry();
    return;
  }
  update_timer();
}

std::size_t ServerConnection::input_limit() const noexcept {
  const ServerOptions& options = shard_.core.options();
  // Head plus body, with room for chunk framing (de-chunking is in place, so
  // framing bytes stay in the buffer until the request completes).
  return options.max_header_bytes + 2 * options.max_body_bytes + 64 * 1024;
}

void ServerConnection::on_io(std::uint32_t events) noexcept {
  handle_io(events);
  finish_entry();  // frees the connection if handle_io closed it
}

void ServerConnection::handle_io(std::uint32_t events) noexcept {
  if (closed_) return;
  last_active_ = now_ticks();
  if (events & EPOLLERR) {
    close();
    return;
  }
  if (events & EPOLLOUT) {
    write_pending();
    if (closed_) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    if (phase_ == Phase::kLinger) {
      drain_linger();
      return;
    }
    if (exchange_ != nullptr && phase_ == Phase::kDeferred) {
      // Not reading while a deferred response is out. A hang-up means the
      // peer is gone: close the fd and wait for the completion. A half-close
      // still lets the response go out.
      if (events & EPOLLHUP) {
        close();
      } else if (events & EPOLLRDHUP) {
        peer_eof_ = true;
        update_interest();
      }
      return;
    }
    // Issued with the iteration's other reads; received() goes on from there.
    if (shard_.queue_read(this, events)) {
      queued_read_ = true;
      return;
    }
    read_input(events);
    if (closed_) return;
  }
  flush();
  if (closed_) return;
  update_interest();
  update_timer();
}

std::span<char> ServerConnection::read_room() noexcept {
  if (!in_.has_storage() && !in_.acquire(shard_.pool)) return {};
  std::span<char> tail = in_.tail();
  if (tail.empty() && in_.grow(input_limit())) tail = in_.tail();
  return tail;
}

void ServerConnection::read_input(std::uint32_t events, int first_round) noexcept {
  for (int round = first_round; round < kMaxReadsPerEvent; ++round) {
    const std::span<char> tail = read_room();
    if (tail.empty()) {
      if (!in_.has_storage()) {
        refuse_out_of_buffers();
      } else {
        fail(exchange_ != nullptr && exchange_->parser.head_complete() ? 413 : 431);
      }
      return;
    }
    const ssize_t n = sys::recv(fd_, tail.data(), tail.size());
    if (!take_read(n >= 0 ? n : -errno, tail.size(), events)) return;
  }
  // Read kMaxReadsPerEvent times without draining (a fast sender): yield to
  // the other connections. Edge-triggered, nothing would report these bytes
  // again, so re-arm: EPOLL_CTL_MOD queues the fd if it is still readable.
  if (shard_.reactor.modify(fd_, events_ | kConnectionTrigger, this)) close();
}

bool ServerConnection::take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept {
  if (result == 0) {
    // The peer closed its sending side. Requests already complete in the
    // buffer were answered (or are deferred); a partial one can never
    // complete. flush() closes once the last response is out.
    peer_eof_ = true;
    if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
      shard_.release_exchange(exchange_);
      exchange_ = nullptr;
      phase_ = Phase::kIdle;
    }
    return false;
  }
  if (result < 0) {
    if (result == -EINTR) return true;
    if (result == -EAGAIN || result == -EWOULDBLOCK) {
      in_.release_if_empty();
      return false;
    }
    close();
    return false;
  }
  in_.commit(static_cast<std::size_t>(result));
  process_input();
  if (closed_ || close_after_write_ || phase_ == Phase::kDeferred || pending_ != nullptr)
    return false;
  if (static_cast<std::size_t>(result) < asked) {
    // A short read drained the socket; more bytes bring a new edge. But a
    // FIN that came with these bytes brings none: read on to see it.
    if (events & EPOLLRDHUP) return true;
    in_.release_if_empty();
    return false;
  }
  return true;
}

void ServerConnection::received(std::span<char> room, ssize_t result,
                                std::uint32_t events) noexcept {
  queued_read_ = false;
  if (!closed_) {
    if (take_read(result, room.size(), events) && !closed_) read_input(events, 1);
    if (!closed_) flush();
    settle();
  }
  finish_entry();
}

void ServerConnection::process_input() noexcept {
  const ServerOptions& options = shard_.core.options();
  while (!closed_ && !close_after_write_ && phase_ != Phase::kDeferred) {
    const std::size_t available = in_.size() - parsed_;
    if (available == 0) break;
    if (exchange_ == nullptr) {
      try {
        exchange_ = shard_.acquire_exchange(this);
      } catch (...) {
        fail(503);
        return;
      }
      phase_ = Phase::kHead;
      phase_start_ = now_ticks();
    }
    ServerExchange& ex = *exchange_;
    const http1::Progress progress =
        ex.parser.execute(in_.data(), parsed_, static_cast<std::uint32_t>(in_.size()));
    parsed_ = progress.at;
    switch (progress.event) {
      case http1::Event::kNeedMore:
        if (!ex.parser.head_complete() && parsed_ > options.max_header_bytes) {
          fail(431);
          return;
        }
        send_continue_if_due(ex);
        return;
      case http1::Event::kHead:
        phase_ = Phase::kBody;
        phase_start_ = now_ticks();
        ex.continue_due = ex.parser.expect_continue();
        if (parsed_ == in_.size()) send_continue_if_due(ex);
        continue;  // the body, or as much of it as is here
      case http1::Event::kMessage:
        dispatch();
        if (phase_ == Phase::kDeferred || closed_) return;
        complete_exchange();
        continue;
      case http1::Event::kError:
        bump(shard_.counters.bad_requests);
        fail(ex.parser.error_status());
        return;
    }
  }
}

// Expect: 100-continue with the body not all here: the client waits for
// this before sending it.
void ServerConnection::send_continue_if_due(ServerExchange& ex) noexcept {
  if (!ex.continue_due || closed_ || close_after_write_) return;
  ex.continue_due = false;
  write_continue();
}

void ServerConnection::complete_exchange() noexcept {
  in_.consume(parsed_);
  parsed_ = 0;
  shard_.release_exchange(exchange_);
  exchange_ = nullptr;
  phase_ = Phase::kIdle;
  last_active_ = now_ticks();
}

void ServerConnection::on_completion(ServerExchange* exchange) noexcept {
  assert(exchange == exchange_);
  (void)exchange;
  --shard_.deferred_outstanding;
  if (closed_) {
    // The peer left (or shutdown forced a close) while the response was out.
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
    in_.release();
    finish_entry();
    return;
  }
  phase_ = Phase::kHead;
  finish_response();
  complete_exchange();
  process_input();  // requests pipelined behind the deferred one
  flush();
  if (!closed_) {
    update_interest();
    update_timer();
  }
  finish_entry();
}

void ServerConnection::on_shutdown() noexcept {
  close_if_idle();
  finish_entry();
  // Otherwise the response in progress goes out with Connection: close
  // (dispatch sees shutting_down); the drain deadline bounds the wait.
}

void ServerConnection::close_if_idle() noexcept {
  if (!closed_ && idle() && phase_ != Phase::kLinger && in_.size() == 0) close();
}

void ServerConnection::force_close() noexcept {
  close();
  finish_entry();
}

void ServerConnection::flush() noexcept {
  if (closed_) {
    shard_.drop_own_output();
    return;
  }
  const std::string_view own = shard_.own_output();
  if (!own.empty()) {
    if (pending_ != nullptr || queued_send_) {
      append_pending(own);
      shard_.drop_own_output();
      write_pending();
      return;
    }
    if (shard_.queue_send(this)) {
      queued_send_ = true;
      return;  // sent() finishes the flush once the batch has gone out
    }
    const ssize_t n = sys::send(fd_, own.data(), own.size());
    if (n == static_cast<ssize_t>(own.size())) {
      shard_.drop_own_output();
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      shard_.drop_own_output();
      close();
      return;
    } else {
      keep_unwritten(own, {}, n > 0 ? static_cast<std::size_t>(n) : 0);
      shard_.drop_own_output();
    }
  }
  after_write();
}

void ServerConnection::append_pending(std::string_view head, std::string_view tail) {
  if (pending_ == nullptr) pending_ = std::make_unique<Pending>();
  pending_->bytes.append(head);
  pending_->bytes.append(tail);
}

void ServerConnection::keep_unwritten(std::string_view head, std::string_view tail,
                                      std::size_t written) {
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
  last_active_ = now_ticks();
}

void ServerConnection::settle() noexcept {
  if (shard_.shutting_down) close_if_idle();  // on_shutdown() skipped us
  if (!closed_ && !queued_send_) {
    update_interest();
    update_timer();
  }
}

void ServerConnection::after_write() noexcept {
  if (pending_ == nullptr && phase_ != Phase::kLinger && phase_ != Phase::kDeferred) {
    if (peer_eof_) {
      // Everything the peer sent before its FIN has been answered.
      close();
    } else if (close_after_write_) {
      start_linger();
    }
  }
}

void ServerConnection::sent(std::string_view bytes, ssize_t result) noexcept {
  queued_send_ = false;
  if (!closed_) {
    if (result == static_cast<ssize_t>(bytes.size())) {
      // Output flushed while this send was queued waits in pending_.
      if (pending_ != nullptr) write_pending();
    } else if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
      close();
    } else {
      // The socket buffer is full: keep the rest, ahead of anything flushed
      // since (write_pending sent none of it while the send was queued).
      keep_unwritten(bytes, {}, result > 0 ? static_cast<std::size_t>(result) : 0);
    }
    if (!closed_) after_write();
    settle();
  }
  finish_entry();
}

void ServerConnection::flush_with(std::string_view body) noexcept {
  if (closed_) {
    shard_.drop_own_output();
    return;
  }
  const std::string_view own = shard_.own_output();
  if (pending_ != nullptr || queued_send_) {
    append_pending(own, body);
    shard_.drop_own_output();
    return;
  }
  iovec iov[2] = {{const_cast<char*>(own.data()), own.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  const ssize_t n = sys::sendv(fd_, iov, 2);
  const std::size_t total = own.size() + body.size();
  if (n == static_cast<ssize_t>(total)) {
    shard_.drop_own_output();
    return;
  }
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    // The connection is broken; close once the current dispatch unwinds.
    shard_.drop_own_output();
    close_after_write_ = true;
    pending_.reset();
    return;
  }
  keep_unwritten(own, body, n > 0 ? static_cast<std::size_t>(n) : 0);
  shard_.drop_own_output();
}

void ServerConnection::write_pending() noexcept {
  // While a batched send is queued, its bytes go first: sent() calls back.
  if (pending_ == nullptr || closed_ || queued_send_) return;
  Pending& pending = *pending_;
  const ssize_t n =
      sys::send(fd_, pending.bytes.data() + pending.offset, pending.bytes.size() - pending.offset);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    close();
    return;
  }
  pending.offset += static_cast<std::size_t>(n);
  last_active_ = now_ticks();
  if (pending.offset < pending.bytes.size()) return;
  pending_.reset();
  if (close_after_write_) {
    start_linger();
    return;
  }
  // Requests that arrived while output was blocked.
  process_input();
  flush();
}

void ServerConnection::start_linger() noexcept {
  // Half-close and drain what the client still sends, so our last response
  // is not destroyed by a reset (closing with unread input sends RST).
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  in_.release();
  parsed_ = 0;
  (void)sys::shutdown(fd_, SHUT_WR);
  phase_ = Phase::kLinger;
  phase_start_ = now_ticks();
  // Bytes that arrived before now bring no new edge: drain them here.
  drain_linger();
}

// Discards input until the peer closes (or the linger timer fires).
void ServerConnection::drain_linger() noexcept {
  char sink[4096];
  for (;;) {
    const ssize_t n = sys::recv(fd_, sink, sizeof sink);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close();
    return;
  }
}

void ServerConnection::update_interest() noexcept {
  if (closed_) return;
  std::uint32_t want = 0;
  const bool reading =
      phase_ == Phase::kLinger ||
      (phase_ != Phase::kDeferred && pending_ == nullptr && !close_after_write_ && !peer_eof_);
  if (reading) want |= EPOLLIN | EPOLLRDHUP;
  if (pending_ != nullptr) want |= EPOLLOUT;
  if (want != events_) {
    events_ = want;
    if (shard_.reactor.modify(fd_, want | kConnectionTrigger, this)) close();
  }
}

std::optional<Ticks> ServerConnection::deadline() const noexcept {
  const ServerOptions& options = shard_.core.options();
  std::chrono::milliseconds timeout{0};
  Ticks start = phase_start_;
  if (phase_ == Phase::kLinger) {
    timeout = kLingerTimeout;
  } else if (pending_ != nullptr) {
    timeout = options.write_timeout;
    start = last_active_;
  } else {
    switch (phase_) {
      case Phase::kIdle:
        timeout = options.idle_timeout;
        start = last_active_;
        break;
      case Phase::kHead:
        timeout = options.header_timeout;
        break;
      case Phase::kBody:
        timeout = options.body_timeout;
        break;
      default:
        return std::nullopt;
    }
  }
  if (timeout.count() <= 0) return std::nullopt;
  // Timeouts are clamped below 2^30 ms so the wrapping comparison holds.
  return static_cast<Ticks>(start + std::min<std::int64_t>(timeout.count(), INT32_MAX / 2));
}

void ServerConnection::update_timer() noexcept {
  if (closed_) return;
  const auto due = deadline();
  if (!due) {
    shard_.reactor.cancel(timer_);
    return;
  }
  // Lazy: a later deadline leaves the armed (earlier) one in place; when it
  // fires, on_timer re-arms for the remainder. No wheel work per request.
  if (!timer_.armed() || ticks_before(*due, armed_deadline_)) {
    armed_deadline_ = *due;
    const auto delay = static_cast<std::int32_t>(*due - now_ticks());
    shard_.reactor.arm(timer_, std::chrono::milliseconds(std::max(delay, 0)));
  }
}

void ServerConnection::on_timer(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* self = static_cast<ServerConnection*>(context);
  // A queued read runs later this iteration and re-arms the timer after it.
  if (self->closed_ || self->queued_read_) return;
  const auto due = self->deadline();
  const Ticks now = self->now_ticks();
  if (!due) return;
  if (ticks_before(now, *due)) {
    self->armed_deadline_ = *due;
    self->shard_.reactor.arm(self->timer_,
                             std::chrono::milliseconds(static_cast<std::int32_t>(*due - now)));
    return;
  }
  switch (self->phase_) {
    case Phase::kHead:
    case Phase::kBody:
      if (self->pending_ == nullptr) {
        self->fail(408);
        self->flush();
        if (!self->closed_) {
          self->update_interest();
          self->update_timer();
        }
        break;
      }
      [[fallthrough]];
    default:
      // A stalled write or a stalled request counts; an idle keep-alive
      // connection or a lingering close ending is routine.
      if (self->pending_ != nullptr ||
          (self->phase_ != Phase::kLinger && self->phase_ != Phase::kIdle))
        bump(self->shard_.counters.timeouts);
      self->close();
      break;
  }
  self->finish_entry();
}

void ServerConnection::close() noexcept {
  if (closed_) return;
  closed_ = true;
  shard_.reactor.cancel(timer_);
  (void)shard_.reactor.remove(fd_);
  sys::close(fd_);
  fd_ = -1;
  pending_.reset();
  shard_.drop_own_output();
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  // A deferred exchange still views the input buffer: keep it until then.
  if (exchange_ == nullptr) in_.release();
  if (prev != nullptr) {
    prev->next = next;
  } else {
    shard_.connections = next;
  }
  if (next != nullptr) next->prev = prev;
  prev = next = nullptr;
  --shard_.connection_count;
  shard_.counters.open.store(shard_.connection_count, std::memory_order_relaxed);
}

void ServerConnection::finish_entry() noexcept {
  // A closed connection still in a batch is freed by its sent()/received().
  if (!closed_ || exchange_ != nullptr || queued_send_ || queued_read_) return;
  ReactorShard& shard = shard_;
  shard.heap.destroy(this);
  shard.maybe_finish_shutdown();
}

std::size_t ServerConnection::format_peer(char* out, std::size_t size) const noexcept {
  return detail::format_peer(fd_, out, size);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
