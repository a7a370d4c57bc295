// server/server_connection.cpp — ServerConnection: reading, feeding the
// parser, deciding when output goes out (batched or straight to its stream),
// when to linger and close, timers. Runs on the connection's reactor thread
// only.
#include "server/server_connection.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>

#include "net/sockets.hpp"
#include "server/probes.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr int kMaxReadsPerEvent = 4;  // fairness between connections
constexpr std::chrono::milliseconds kLingerTimeout{2000};

}  // namespace

void ServerConnection::open() {
  ++shard_.connection_count;
  shard_.counters.open.store(shard_.connection_count, std::memory_order_relaxed);
  next = shard_.connections;
  if (next != nullptr) next->prev = this;
  shard_.connections = this;
  last_active_ = now_ticks();
  if (!stream_.add(shard_.reactor, this, EPOLLIN | EPOLLRDHUP)) {
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
  if (stream_.closed()) return;
  last_active_ = now_ticks();
  if (events & EPOLLERR) {
    close();
    return;
  }
  if (events & EPOLLOUT) {
    write_pending();
    if (stream_.closed()) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    if (phase_ == Phase::kLinger) {
      // Discards input until the peer closes (or the linger timer fires).
      if (stream_.drain_linger() == LingerStatus::kDone) close();
      return;
    }
    if (exchange_ != nullptr && phase_ == Phase::kTaken &&
        (exchange_->request_done || exchange_->body_paused)) {
      // Edge-triggered: this edge will not come again, so it is kept for
      // when the exchange wants input (end_streaming, stream_resume).
      if (events & EPOLLHUP) {
        close();
      } else {
        if (events & EPOLLIN) readable_ = true;
        if (events & EPOLLRDHUP) stream_.set_peer_eof();
      }
      return;
    }
    if (phase_ == Phase::kTunnel && (exchange_->body_paused || exchange_->tunnel_eof)) {
      // Paused: kept for stream_resume, as a taken body's edge. After the
      // client's EOF nothing more is read (a hang-up: the taker's output
      // fails, or it finishes).
      if (!exchange_->tunnel_eof) readable_ = true;
      return;
    }
    if (exchange_ != nullptr && phase_ == Phase::kDeferred) {
      // Not reading while a deferred response is out. A hang-up means the
      // peer is gone: close the fd and wait for the completion. A half-close
      // still lets the response go out.
      if (events & EPOLLHUP) {
        close();
      } else if (events & EPOLLRDHUP) {
        stream_.set_peer_eof();
        update_interest();
      }
      return;
    }
    // Issued with the iteration's other reads; on_received() goes on from
    // there. Without room, read_input answers 503/413/431.
    if (shard_.batcher.can_queue_read()) {
      if (const std::span<char> room = read_room(); !room.empty()) {
        shard_.batcher.queue_read(stream_, this, room, events);
        return;
      }
    }
    read_input(events);
    if (stream_.closed()) return;
  }
  flush();
  if (stream_.closed()) return;
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
    if (!take_read(stream_.receive(tail), tail.size(), events)) return;
  }
  // Read kMaxReadsPerEvent times without draining (a fast sender): yield to
  // the other connections. Edge-triggered, nothing would report these bytes
  // again, so re-arm.
  if (!stream_.rearm(shard_.reactor, this)) close();
}

bool ServerConnection::take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept {
  if (phase_ == Phase::kTunnel) return take_tunnel_read(result, asked, events);
  if (result == 0) {
    // The peer closed its sending side. Requests already complete in the
    // buffer were answered (or are deferred); a partial one can never
    // complete. flush() closes once the last response is out.
    stream_.set_peer_eof();
    if (exchange_ != nullptr && phase_ == Phase::kTaken) {
      // A request cut short can never complete; a whole one still gets its
      // response (then the connection closes).
      if (!exchange_->request_done) close();
      return false;
    }
    if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
      shard_.release_exchange(exchange_);
      exchange_ = nullptr;
      phase_ = Phase::kIdle;
    }
    return false;
  }
  switch (read_end(result)) {
    case ReadEnd::kBytes:
      break;
    case ReadEnd::kRetry:
      return true;
    case ReadEnd::kDrained:
      in_.release_if_empty();
      return false;
    case ReadEnd::kEof:  // handled above
    case ReadEnd::kFailed:
      close();
      return false;
  }
  in_.commit(static_cast<std::size_t>(result));
  process_input();
  if (stream_.closed() || close_after_write_ || phase_ == Phase::kDeferred || stream_.has_pending())
    return false;
  if (phase_ == Phase::kTaken && (exchange_->request_done || exchange_->body_paused)) {
    // A full read may have left bytes in the socket, and their edge is
    // spent: read again when the exchange wants input.
    if (static_cast<std::size_t>(result) == asked) readable_ = true;
    return false;
  }
  if (read_again(result, asked, events)) return true;
  in_.release_if_empty();
  return false;
}

void ServerConnection::on_received(std::span<char> room, ssize_t result,
                                   std::uint32_t events) noexcept {
  if (!stream_.closed()) {
    if (take_read(result, room.size(), events) && !stream_.closed()) read_input(events, 1);
    if (!stream_.closed()) flush();
    settle();
  }
  finish_entry();
}

void ServerConnection::process_input() noexcept {
  if (phase_ == Phase::kTaken) {
    stream_body_input();
    return;
  }
  if (phase_ == Phase::kTunnel) {
    tunnel_input();
    return;
  }
  while (!stream_.closed() && !close_after_write_ && phase_ != Phase::kDeferred) {
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
      exchange_->started = shard_.reactor.now();
    }
    ServerExchange& ex = *exchange_;
    const http1::Progress progress =
        ex.parser.execute(in_.data(), parsed_, static_cast<std::uint32_t>(in_.size()));
    parsed_ = progress.at;
    switch (progress.event) {
      case http1::Event::kNeedMore:
        send_continue_if_due(ex);
        return;
      case http1::Event::kHead:
        phase_ = Phase::kBody;
        phase_start_ = now_ticks();
        ex.continue_due = ex.parser.expect_continue();
        PORTICO_PROBE5(request_start, probe_id(this), in_.data() + ex.parser.method().offset,
                       ex.parser.method().length, in_.data() + ex.parser.target().offset,
                       ex.parser.target().length);
        if (shard_.core.streaming_routes() && dispatch_head()) {
          // A taker sends 100 Continue itself once it is ready for the body
          // (ClientStream::send_continue): a proxy once its upstream has the
          // request head.
          if (phase_ == Phase::kTaken) {
            stream_body_input();
          } else {
            complete_exchange();  // answered at once (the body unread): it closes
          }
          return;
        }
        if (parsed_ == in_.size()) send_continue_if_due(ex);
        continue;  // the body, or as much of it as is here
      case http1::Event::kMessage:
        // Head and body parsed in one go (no kHead came): the head is parsed now.
        PORTICO_PROBE5_IF(phase_ == Phase::kHead, request_start, probe_id(this),
                          in_.data() + ex.parser.method().offset, ex.parser.method().length,
                          in_.data() + ex.parser.target().offset, ex.parser.target().length);
        dispatch();
        // Deferred, taken, or lingering: the exchange is not done here.
        if (phase_ >= Phase::kDeferred || stream_.closed()) return;
        complete_exchange();
        continue;
      case http1::Event::kError:
        bump(shard_.counters.bad_requests);
        fail(ex.parser.error_status());
        return;
    }
  }
}

void ServerConnection::stream_body_input() noexcept {
  ServerExchange& ex = *exchange_;
  while (!stream_.closed() && !ex.request_done && !ex.body_paused && parsed_ < in_.size()) {
    const http1::Progress progress =
        ex.parser.execute(in_.data(), parsed_, static_cast<std::uint32_t>(in_.size()));
    parsed_ = progress.at;
    switch (progress.event) {
      case http1::Event::kNeedMore:
        consume_streamed();
        return;
      case http1::Event::kHead:
        continue;  // not after a head: the parser stops there once
      case http1::Event::kMessage:
        ex.request_done = true;
        ex.streaming->on_request_end();
        return;
      case http1::Event::kError: {
        // The body turned bad mid-stream: the taker abandons the exchange;
        // the client gets the refusal, or a cut-short response.
        bump(shard_.counters.bad_requests);
        std::exchange(ex.streaming, nullptr)->on_request_error(ex.parser.error_status());
        if (ex.stream_started) {
          close();
        } else {
          fail(ex.parser.error_status());
        }
        return;
      }
    }
  }
}

// Expect: 100-continue with the body not all here: the client waits for
// this before sending it.
void ServerConnection::send_continue_if_due(ServerExchange& ex) noexcept {
  if (!ex.continue_due || stream_.closed() || close_after_write_) return;
  ex.continue_due = false;
  write_continue();
}

void ServerConnection::complete_exchange() noexcept {
  // Nothing parsed (a tunnel's end): the input buffer may be released.
  if (parsed_ != 0) in_.consume(parsed_);
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
  if (stream_.closed()) {
    // The peer left (or shutdown forced a close) while the response was out.
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
    in_.release();
    finish_entry();
    return;
  }
  phase_ = Phase::kHead;
  finish_response();
  // Unless its body source waits for the socket (or the peer left meanwhile).
  if (phase_ != Phase::kDeferred && !stream_.closed()) {
    complete_exchange();
    process_input();  // requests pipelined behind the deferred one
  }
  flush();
  if (!stream_.closed()) {
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
  if (!stream_.closed() && idle() && phase_ != Phase::kLinger && in_.size() == 0) close();
}

void ServerConnection::force_close() noexcept {
  close();
  finish_entry();
}

void ServerConnection::flush() noexcept {
  IoBatcher& batcher = shard_.batcher;
  if (stream_.closed()) {
    batcher.drop_own_output();
    return;
  }
  const std::string_view own = batcher.own_output();
  if (!own.empty()) {
    if (stream_.blocked()) {
      stream_.append_pending(own);
      batcher.drop_own_output();
      write_pending();
      return;
    }
    // on_sent() finishes the flush once the batch has gone out.
    if (batcher.queue_send(stream_, this)) return;
    const WriteStatus status = stream_.write(own);
    batcher.drop_own_output();
    if (status == WriteStatus::kFailed) {
      close();
      return;
    }
    if (status != WriteStatus::kWritten) last_active_ = now_ticks();
  }
  after_write();
}

void ServerConnection::settle() noexcept {
  if (shard_.shutting_down) close_if_idle();  // on_shutdown() skipped us
  if (!stream_.closed() && !stream_.send_queued()) {
    update_interest();
    update_timer();
  }
}

void ServerConnection::after_write() noexcept {
  // A batched send still queued (a taken exchange's last bytes, written
  // before it finished) must go out before the FIN or the close: on_sent()
  // comes back here once it has.
  if (!stream_.has_pending() && !stream_.send_queued() && phase_ != Phase::kLinger &&
      phase_ != Phase::kDeferred && phase_ != Phase::kTaken && phase_ != Phase::kTunnel) {
    if (stream_.peer_eof()) {
      // Everything the peer sent before its FIN has been answered.
      close();
    } else if (close_after_write_) {
      start_linger();
    }
  }
}

void ServerConnection::on_sent(WriteStatus status) noexcept {
  if (!stream_.closed()) {
    switch (status) {
      case WriteStatus::kWritten:
        // Output flushed while this send was queued waits as pending.
        if (stream_.has_pending()) {
          write_pending();
        } else if (source_due()) {
          continue_source();
        } else {
          shutdown_if_due();
        }
        break;
      case WriteStatus::kFailed:
        close();
        break;
      case WriteStatus::kProgress:
      case WriteStatus::kBlocked:
        last_active_ = now_ticks();
        break;
    }
    if (!stream_.closed()) after_write();
    settle();
  }
  finish_entry();
}

void ServerConnection::flush_with(std::string_view body, std::string* body_owner) noexcept {
  IoBatcher& batcher = shard_.batcher;
  if (stream_.closed()) {
    batcher.drop_own_output();
    return;
  }
  const std::string_view own = batcher.own_output();
  if (stream_.blocked()) {
    stream_.append_pending(own, body);
    batcher.drop_own_output();
    return;
  }
  const WriteStatus status = stream_.write(own, body, body_owner);
  batcher.drop_own_output();
  if (status == WriteStatus::kFailed) {
    // The connection is broken; close once the current dispatch unwinds.
    close_after_write_ = true;
  } else if (status != WriteStatus::kWritten) {
    last_active_ = now_ticks();
  }
}

void ServerConnection::write_pending() noexcept {
  // While a batched send is queued, its bytes go first: on_sent() calls back.
  if (!stream_.has_pending() || stream_.send_queued()) return;
  switch (stream_.write_pending()) {
    case WriteStatus::kBlocked:
      return;
    case WriteStatus::kFailed:
      close();
      return;
    case WriteStatus::kProgress:
      last_active_ = now_ticks();
      return;
    case WriteStatus::kWritten:
      last_active_ = now_ticks();
      break;
  }
  if (source_due()) {
    continue_source();
    return;
  }
  if (close_after_write_) {
    start_linger();
    return;
  }
  if (phase_ == Phase::kTaken || phase_ == Phase::kTunnel) {
    shutdown_if_due();
    if (std::exchange(exchange_->write_blocked, false) && exchange_->streaming != nullptr)
      exchange_->streaming->on_client_writable();
    return;
  }
  // Requests that arrived while output was blocked.
  process_input();
  flush();
}

void ServerConnection::start_linger() noexcept {
  // The stream half-closes and drains, so the last response is not
  // destroyed by a reset; what was read is of no use any more.
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  in_.release();
  parsed_ = 0;
  phase_ = Phase::kLinger;
  phase_start_ = now_ticks();
  if (stream_.start_linger() == LingerStatus::kDone) close();
}

void ServerConnection::update_interest() noexcept {
  if (stream_.closed()) return;
  // A taken exchange that reads no more keeps its interest: handle_io()
  // notes a readable edge instead (readable_).
  // A tunnel reads whatever its output does: its two directions are apart.
  const bool reading = phase_ == Phase::kLinger ||
                       (phase_ == Phase::kTunnel && !stream_.peer_eof()) ||
                       (phase_ != Phase::kDeferred && !stream_.has_pending() &&
                        !close_after_write_ && !stream_.peer_eof());
  if (!stream_.update_interest(shard_.reactor, this, reading)) close();
}

std::optional<Ticks> ServerConnection::deadline() const noexcept {
  const ServerOptions& options = shard_.core.options();
  std::chrono::milliseconds timeout{0};
  Ticks start = phase_start_;
  if (phase_ == Phase::kLinger) {
    timeout = kLingerTimeout;
  } else if (stream_.has_pending()) {
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
      case Phase::kTunnel:
        // No byte either way for this long (GATEWAY.md: a route's timeout
        // does not apply to a tunnel, the idle timeout does).
        timeout = options.idle_timeout;
        start = last_active_;
        break;
      case Phase::kTaken:
        // The body as it comes; after it, the taker times the exchange.
        if (exchange_->request_done || exchange_->body_paused) return std::nullopt;
        timeout = options.body_timeout;
        start = last_active_;
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
  // input_due()'s zero timer is out: on_timer() updates it after.
  if (stream_.closed() || input_due_) return;
  const auto due = deadline();
  // Lazy: no deadline, or a later one, leaves the armed (earlier) one in
  // place; when it fires, on_timer finds none, or re-arms for the
  // remainder. An exchange that the taker times (a proxied request) and
  // the idle time after it then cost no wheel work.
  if (!due) return;
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
  if (self->stream_.closed() || self->stream_.read_queued()) return;
  if (self->input_due_) {
    self->input_due_ = false;
    if (std::exchange(self->readable_, false)) {
      self->read_input(EPOLLIN);  // reads, then processes what it read
    } else {
      self->process_input();
    }
    if (self->stream_.closed()) {
      self->finish_entry();
      return;
    }
    self->flush();
    if (!self->stream_.closed()) {
      self->update_interest();
      self->update_timer();
    }
    self->finish_entry();
    return;
  }
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
    case Phase::kTaken:
      if (!self->stream_.has_pending() && !self->exchange_->stream_started) {
        // The body stalled before any response: the taker lets go, 408.
        std::exchange(self->exchange_->streaming, nullptr)->on_client_gone();
        self->answer_timeout();
        break;
      }
      bump(self->shard_.counters.timeouts);
      self->close();
      break;
    case Phase::kHead:
    case Phase::kBody:
      if (!self->stream_.has_pending()) {
        self->answer_timeout();
        break;
      }
      [[fallthrough]];
    default:
      // A stalled write or a stalled request counts; an idle keep-alive
      // connection or tunnel, or a lingering close ending, is routine.
      if (self->stream_.has_pending() ||
          (self->phase_ != Phase::kLinger && self->phase_ != Phase::kIdle &&
           self->phase_ != Phase::kTunnel))
        bump(self->shard_.counters.timeouts);
      self->close();
      break;
  }
  self->finish_entry();
}

void ServerConnection::answer_timeout() noexcept {
  fail(408);
  flush();
  if (!stream_.closed()) {
    update_interest();
    update_timer();
  }
}

void ServerConnection::close() noexcept {
  if (stream_.closed()) return;
  shard_.reactor.cancel(timer_);
  // Its remembered peer address must not pass to the next connection here.
  ReactorShard::PeerAddress& known = shard_.peer_addresses[stream_.fd() & 255];
  if (known.connection == this) known.connection = nullptr;
  stream_.close(shard_.reactor);
  shard_.batcher.drop_own_output();
  if (exchange_ != nullptr && (phase_ == Phase::kTaken || phase_ == Phase::kTunnel) &&
      exchange_->streaming != nullptr) {
    // The client is gone: the taker abandons the exchange.
    std::exchange(exchange_->streaming, nullptr)->on_client_gone();
  }
  // A deferred exchange belongs to its Completion until done(), unless its
  // body source was pumping (the Completion is done, or there was none).
  if (exchange_ != nullptr && (phase_ != Phase::kDeferred || exchange_->pumping)) {
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
  // A closed connection still in a batch is freed by its on_sent()/on_received().
  if (!stream_.closed() || exchange_ != nullptr || stream_.send_queued() || stream_.read_queued())
    return;
  ReactorShard& shard = shard_;
  shard.heap.destroy(this);
  shard.maybe_finish_shutdown();
}

std::size_t ServerConnection::format_peer(char* out, std::size_t size) const noexcept {
  return detail::format_peer(stream_.fd(), out, size);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
