// gateway/upstream_connection.cpp — UpstreamConnection: connecting, sending
// the request, reading and parsing the response, deciding reuse (see
// upstream_connection.hpp). Runs on the owning reactor thread only.
#include "gateway/upstream_connection.hpp"

#include <sys/epoll.h>

#include <cerrno>
#include <utility>

#include "gateway/upstream_pool.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr int kMaxReadsPerEvent = 4;  // fairness between connections, as the server's

ConnectFailure failure_of(int error) noexcept {
  return error == ECONNREFUSED ? ConnectFailure::kRefused : ConnectFailure::kUnreachable;
}

}  // namespace

UpstreamConnection::UpstreamConnection(UpstreamPool& pool, int fd) noexcept
    : pool_(pool), timer_(&UpstreamConnection::on_timer, this), stream_(fd) {}

// ---- connecting -------------------------------------------------------------

void UpstreamConnection::connect(const sockaddr* address, socklen_t length,
                                 UpstreamHandler& handler, bool head_request) noexcept {
  start_exchange(handler, head_request);
  reused_ = false;
  state_ = State::kConnecting;
  Reactor& reactor = pool_.io().reactor;
  // Writability ends the connect (EPOLLERR/EPOLLHUP come unasked).
  if (!stream_.add(reactor, this, EPOLLOUT)) {
    connect_failure_ = ConnectFailure::kUnreachable;
    reactor.arm(timer_, std::chrono::milliseconds(0));
    return;
  }
  if (stream_.start_connect(address, length) == ConnectStatus::kFailed) {
    // Refused at once (loopback often is): reported from the loop, so the
    // caller of acquire() never sees its handler called back inside it.
    connect_failure_ = failure_of(errno);
    reactor.arm(timer_, std::chrono::milliseconds(0));
    return;
  }
  connect_failure_ = ConnectFailure::kTimeout;
  if (pool_.options().connect_timeout.count() > 0)
    reactor.arm(timer_, pool_.options().connect_timeout);
}

void UpstreamConnection::complete_connect(int error) noexcept {
  if (error != 0) {
    fail_connect(failure_of(error));
    return;
  }
  pool_.io().reactor.cancel(timer_);
  state_ = State::kBusy;
  update_interest();
  handler_->on_upstream_connected(*this);
  // The request may have been sent while connecting: it waits as pending.
  if (state_ == State::kBusy) write_pending();
}

void UpstreamConnection::fail_connect(ConnectFailure cause) noexcept {
  done_ = true;
  close();
  handler_->on_upstream_connect_failed(*this, cause);
}

// ---- exchanges ----------------------------------------------------------------

void UpstreamConnection::begin_exchange(UpstreamHandler& handler, bool head_request) noexcept {
  // The idle timeout's timer stays armed: firing while busy, it does nothing
  // (park() arms it again only if it is not armed).
  start_exchange(handler, head_request);
  reused_ = true;
  state_ = State::kBusy;
}

void UpstreamConnection::start_exchange(UpstreamHandler& handler, bool head_request) noexcept {
  handler_ = &handler;
  head_request_ = head_request;
  request_ended_ = false;
  early_response_ = false;
  upgraded_ = false;
  reusable_ = false;
  done_ = false;
  paused_ = false;
  want_writable_ = false;
  response_started_ = false;
  reuse_forbidden_ = false;
  tunnel_ = tunnel_eof_ = shut_due_ = write_shut_ = false;
  deferred_error_ = ErrorLabel::kNone;
  start_response();
}

void UpstreamConnection::start_response() noexcept {
  parser_.reset(http1::Mode::kResponse, &pool_.options().limits);
  parser_.stream_body(&UpstreamConnection::on_body_bytes, this);
  if (head_request_) parser_.expect_no_body();
  body_end_ = 0;
}

void UpstreamConnection::park() noexcept {
  state_ = State::kIdle;
  handler_ = nullptr;
  in_.release();
  parsed_ = 0;
  paused_ = false;  // a pause of the last exchange's response ends with it
  // Still reading: the upstream's FIN (or a stray byte) while idle closes it
  // at once, so it is never handed out.
  update_interest();
  // Lazy: a timer still armed from an earlier park() fires before this
  // deadline, and on_timer() arms it again for the rest. A connection
  // reused at once costs no wheel work.
  const std::chrono::milliseconds idle_timeout = pool_.options().idle_timeout;
  if (idle_timeout.count() > 0) {
    Reactor& reactor = pool_.io().reactor;
    idle_until_ = reactor.now() + idle_timeout;
    if (!timer_.armed()) reactor.arm(timer_, idle_timeout);
  }
}

bool UpstreamConnection::poolable() const noexcept {
  return reusable() && !stream_.has_pending() && !stream_.send_queued() &&
         !stream_.read_queued() && !stream_.peer_eof() && in_.size() == parsed_;
}

void UpstreamConnection::close() noexcept {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  pool_.io().reactor.cancel(timer_);
  stream_.close(pool_.io().reactor);
  // A queued read still writes into the buffer: kept until on_received.
  if (!stream_.read_queued()) in_.release();
}

void UpstreamConnection::release_when_unused() noexcept {
  released_ = true;
  finish_entry();
}

void UpstreamConnection::finish_entry() noexcept {
  if (!released_ || entered_ != 0 || stream_.send_queued() || stream_.read_queued()) return;
  pool_.destroy(this);
}

// ---- writing ------------------------------------------------------------------

bool UpstreamConnection::send(std::string_view head, std::string_view tail) {
  if (state_ == State::kClosed) return false;
  if (state_ == State::kConnecting || stream_.blocked()) {
    stream_.append_pending(head, tail);
    want_writable_ = true;
    return false;
  }
  IoBatcher& batcher = pool_.io().batcher;
  WriteStatus status;
  if (batcher.own_output().empty()) {
    // With the iteration's other sends, as the server's responses go.
    batcher.out.append(head);
    // OutputBuffer::append memcpys from data(): null for an empty view.
    if (!tail.empty()) batcher.out.append(tail);
    if (batcher.queue_send(stream_, this)) return true;
    status = stream_.write(batcher.own_output());
    batcher.drop_own_output();
  } else {
    // Someone's output is being serialised after the batch mark: ours must
    // not join it, so it goes straight out.
    status = stream_.write(head, tail);
  }
  switch (status) {
    case WriteStatus::kWritten:
      return true;
    case WriteStatus::kFailed:
      fail_later(ErrorLabel::kUpstreamReset);
      return false;
    case WriteStatus::kProgress:
    case WriteStatus::kBlocked:
      want_writable_ = true;
      update_interest();
      return false;
  }
  return false;
}

void UpstreamConnection::write_pending() noexcept {
  if (!stream_.has_pending() || stream_.send_queued()) return;
  switch (stream_.write_pending()) {
    case WriteStatus::kFailed:
      fail(ErrorLabel::kUpstreamReset);
      return;
    case WriteStatus::kBlocked:
    case WriteStatus::kProgress:
      update_interest();
      return;
    case WriteStatus::kWritten:
      update_interest();
      after_output();
      return;
  }
}

bool UpstreamConnection::all_sent() noexcept {
  if (state_ == State::kBusy && !stream_.blocked()) return true;
  want_writable_ = true;
  return false;
}

void UpstreamConnection::shutdown_write() noexcept {
  if (state_ != State::kBusy || write_shut_) return;
  if (stream_.blocked()) {
    // After the output that waits: after_output() sends it, then tells.
    shut_due_ = true;
    want_writable_ = true;
    return;
  }
  stream_.shutdown_write();
  write_shut_ = true;
}

void UpstreamConnection::after_output() noexcept {
  if (state_ != State::kBusy || stream_.has_pending() || stream_.send_queued()) return;
  if (std::exchange(shut_due_, false)) {
    stream_.shutdown_write();
    write_shut_ = true;
  }
  if (!want_writable_) return;
  want_writable_ = false;
  handler_->on_upstream_writable(*this);
}

void UpstreamConnection::on_sent(WriteStatus status) noexcept {
  ++entered_;
  if (state_ == State::kBusy) {
    switch (status) {
      case WriteStatus::kWritten:
        if (stream_.has_pending()) {
          write_pending();  // output sent while the batch was out
        } else {
          after_output();
        }
        break;
      case WriteStatus::kFailed:
        fail(ErrorLabel::kUpstreamReset);
        break;
      case WriteStatus::kProgress:
      case WriteStatus::kBlocked:
        want_writable_ = true;
        update_interest();
        break;
    }
  }
  --entered_;
  finish_entry();
}

void UpstreamConnection::update_interest() noexcept {
  if (state_ == State::kClosed || state_ == State::kConnecting) return;
  const bool reading = !paused_ && !stream_.peer_eof();
  if (!stream_.update_interest(pool_.io().reactor, this, reading))
    fail_later(ErrorLabel::kUpstreamReset);
}

void UpstreamConnection::pause_reading() noexcept {
  paused_ = true;
  update_interest();
}

void UpstreamConnection::resume_reading() noexcept {
  if (!paused_) return;
  paused_ = false;
  update_interest();
  // Bytes that came while paused bring no new edge: re-arming queues the
  // fd again if it is readable (the read runs from the loop, not in here).
  if (state_ == State::kBusy && !stream_.rearm(pool_.io().reactor, this))
    fail_later(ErrorLabel::kUpstreamReset);
}

// ---- reading ------------------------------------------------------------------

void UpstreamConnection::on_io(std::uint32_t events) noexcept {
  ++entered_;
  switch (state_) {
    case State::kConnecting:
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        int error = stream_.finish_connect();
        // A hang-up with no error: the socket never connected.
        if (error == 0 && (events & EPOLLHUP)) error = ENOTCONN;
        complete_connect(error);
      }
      break;
    case State::kIdle:
      // Pooled connections expect nothing: a FIN, a reset or a stray byte
      // all mean it cannot serve another request.
      pool_.drop_idle(*this);
      break;
    case State::kBusy:
      if (events & EPOLLERR) {
        fail(ErrorLabel::kUpstreamReset);
        break;
      }
      if (events & EPOLLOUT) write_pending();
      if (state_ != State::kBusy || paused_) break;
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        IoBatcher& batcher = pool_.io().batcher;
        if (batcher.can_queue_read()) {
          if (const std::span<char> room = read_room(); !room.empty()) {
            batcher.queue_read(stream_, this, room, events);
            break;
          }
        }
        read_input(events, 0);
      }
      break;
    case State::kClosed:
      break;
  }
  --entered_;
  finish_entry();
}

std::span<char> UpstreamConnection::read_room() noexcept {
  if (!in_.has_storage() && !in_.acquire(pool_.io().buffers)) return {};
  std::span<char> tail = in_.tail();
  // A head larger than a block grows the buffer up to the head limit (the
  // parser refuses past it); body bytes are consumed as they are handed on.
  if (tail.empty() && in_.grow(pool_.options().limits.max_header_bytes + 4096)) tail = in_.tail();
  return tail;
}

void UpstreamConnection::on_received(std::span<char> room, ssize_t result,
                                     std::uint32_t events) noexcept {
  ++entered_;
  if (state_ == State::kBusy) {
    if (take_read(result, room.size(), events) && state_ == State::kBusy && !paused_)
      read_input(events, 1);
  } else if (state_ == State::kIdle) {
    if (result != -EAGAIN && result != -EWOULDBLOCK) pool_.drop_idle(*this);
  } else if (state_ == State::kClosed) {
    in_.release();
  }
  --entered_;
  finish_entry();
}

void UpstreamConnection::read_input(std::uint32_t events, int first_round) noexcept {
  for (int round = first_round; round < kMaxReadsPerEvent; ++round) {
    const std::span<char> room = read_room();
    if (room.empty()) {
      // Out of read buffers (a head too large is the parser's to refuse).
      fail(ErrorLabel::kOverflow);
      return;
    }
    if (!take_read(stream_.receive(room), room.size(), events)) return;
  }
  // A fast sender: yield to the other connections; edge-triggered, so re-arm.
  if (!stream_.rearm(pool_.io().reactor, this)) fail(ErrorLabel::kUpstreamReset);
}

bool UpstreamConnection::take_read(ssize_t result, std::size_t asked,
                                   std::uint32_t events) noexcept {
  if (result == 0) {
    stream_.set_peer_eof();
    at_eof();
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
      fail(ErrorLabel::kUpstreamReset);
      return false;
  }
  in_.commit(static_cast<std::size_t>(result));
  response_started_ = true;
  process_input();
  if (state_ != State::kBusy || paused_) return false;
  if (read_again(result, asked, events)) return true;
  in_.release_if_empty();
  return false;
}

void UpstreamConnection::on_body_bytes(void* self, const char* at, std::size_t length) noexcept {
  auto& connection = *static_cast<UpstreamConnection*>(self);
  connection.body_end_ = static_cast<std::uint32_t>(at + length - connection.in_.data());
  // The handler may release the connection here; the parser runs on to the
  // end of this read regardless, so later pieces are dropped, not delivered.
  if (connection.state_ == State::kBusy && !connection.done_)
    connection.handler_->on_upstream_body(connection, {at, length});
}

void UpstreamConnection::tunnel_input() noexcept {
  if (parsed_ < in_.size()) {
    const std::string_view bytes(in_.data() + parsed_, in_.size() - parsed_);
    parsed_ = static_cast<std::uint32_t>(in_.size());
    handler_->on_upstream_tunnel_data(*this, bytes);
    if (state_ != State::kBusy) return;  // released: the buffer went with it
  }
  in_.consume(parsed_);
  parsed_ = 0;
}

void UpstreamConnection::process_input() noexcept {
  if (tunnel_) {
    if (state_ == State::kBusy) tunnel_input();
    return;
  }
  while (state_ == State::kBusy && !done_) {
    if (parsed_ == in_.size()) return;
    const bool head_was_done = parser_.head_complete();
    const http1::Progress progress =
        parser_.execute(in_.data(), parsed_, static_cast<std::uint32_t>(in_.size()));
    parsed_ = progress.at;
    switch (progress.event) {
      case http1::Event::kNeedMore:
        // Body bytes handed on can go, unless framing after them is half
        // parsed (a trailer's spans are offsets into this buffer).
        if (parser_.head_complete() && parsed_ == body_end_) {
          in_.consume(parsed_);
          parsed_ = body_end_ = 0;
        }
        handler_->on_upstream_read_done(*this);
        return;
      case http1::Event::kHead:
      case http1::Event::kMessage: {
        if (!head_was_done) {
          const int status = parser_.status();
          const UpstreamResponseHead head{status,
                                          parser_.version_minor(),
                                          parser_.fields(),
                                          in_.data(),
                                          parsed_,
                                          parser_.chunked(),
                                          parser_.has_content_length(),
                                          parser_.content_length()};
          if (!request_sent()) early_response_ = true;
          if (status < 200 && status != 101) {
            // An interim response: the final one follows on this connection.
            handler_->on_upstream_informational(*this, head);
            if (state_ != State::kBusy) return;
            in_.consume(parsed_);
            parsed_ = 0;
            start_response();
            continue;
          }
          upgraded_ = parser_.upgrade();
          handler_->on_upstream_head(*this, head);
          if (state_ != State::kBusy) return;
          if (tunnel_) {
            // The rest of this read is the tunnel's first bytes.
            in_.consume(parsed_);
            parsed_ = body_end_ = 0;
            tunnel_input();
            return;
          }
        }
        in_.consume(parsed_);
        parsed_ = body_end_ = 0;
        if (progress.event == http1::Event::kMessage) finish_response(true);
        continue;
      }
      case http1::Event::kError:
        fail(ErrorLabel::kUpstreamProtocolError);
        return;
    }
  }
}

void UpstreamConnection::at_eof() noexcept {
  if (done_ || state_ != State::kBusy) return;
  if (tunnel_) {
    update_interest();  // reads no more
    if (!std::exchange(tunnel_eof_, true)) handler_->on_upstream_tunnel_end(*this);
    return;
  }
  // A close-delimited body ends here; anything else is cut short.
  if (parser_.head_complete() &&
      parser_.finish(in_.data(), parsed_).event == http1::Event::kMessage) {
    finish_response(true);
    return;
  }
  fail(ErrorLabel::kUpstreamReset);
}

void UpstreamConnection::finish_response(bool well_framed) noexcept {
  done_ = true;
  if (!request_sent()) early_response_ = true;
  reusable_ = well_framed && parser_.keep_alive() && !early_response_ && !upgraded_ &&
              !reuse_forbidden_ && !stream_.peer_eof() && in_.size() == parsed_;
  handler_->on_upstream_complete(*this, reusable_);
}

void UpstreamConnection::fail(ErrorLabel label) noexcept {
  if (state_ == State::kClosed) return;
  const bool report = !done_;
  done_ = true;
  reusable_ = false;
  close();
  if (report) handler_->on_upstream_error(*this, label);
}

void UpstreamConnection::fail_later(ErrorLabel label) noexcept {
  if (deferred_error_ != ErrorLabel::kNone) return;
  deferred_error_ = label;
  pool_.io().reactor.arm(timer_, std::chrono::milliseconds(0));
}

void UpstreamConnection::on_timer(Timer& timer, void* context) noexcept {
  (void)timer;
  auto& self = *static_cast<UpstreamConnection*>(context);
  ++self.entered_;
  switch (self.state_) {
    case State::kConnecting:
      self.fail_connect(self.connect_failure_);
      break;
    case State::kIdle: {
      Reactor& reactor = self.pool_.io().reactor;
      if (reactor.now() < self.idle_until_) {
        // Armed at an earlier park(): parked again since.
        reactor.arm(self.timer_,
                    std::chrono::ceil<std::chrono::milliseconds>(self.idle_until_ - reactor.now()));
        break;
      }
      self.pool_.drop_idle(self);  // idle_timeout
      break;
    }
    case State::kBusy:
      // Else the idle timeout's timer, armed before this exchange: nothing.
      if (self.deferred_error_ != ErrorLabel::kNone) self.fail(self.deferred_error_);
      break;
    case State::kClosed:
      break;
  }
  --self.entered_;
  self.finish_entry();
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
