// server/client_stream.cpp — the client side of a taken exchange: what a
// StreamingHandler's exchange calls (ClientStream), and how the connection
// streams the request body to it and ends the exchange.
// Thread-safety: the connection's reactor thread only.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "portico/detail/syscalls.hpp"
#include "server/exchange_taker.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

// Larger writes go straight to the socket from the caller's bytes (a body
// relayed from an upstream's read buffer); smaller ones join the reactor's
// batched output.
constexpr std::size_t kBatchedWriteLimit = 64 * 1024;

}  // namespace

// ---- ClientStream ---------------------------------------------------------------

ReactorShard& ClientStream::shard() const noexcept {
  return connection_->shard_;
}

bool ClientStream::peer(sockaddr_storage& out) const noexcept {
  const int fd = connection_->stream_.fd();
  if (fd < 0) return false;
  ReactorShard::PeerAddress& known = connection_->shard_.peer_addresses[fd & 255];
  if (known.connection != connection_) {
    sockaddr_storage asked{};
    socklen_t length = sizeof asked;
    if (sys::getpeername(fd, reinterpret_cast<sockaddr*>(&asked), &length) != 0) return false;
    if (length > sizeof known.address) {
      out = asked;
      return true;
    }
    known.connection = connection_;
    known.length = length;
    std::memcpy(&known.address, &asked, length);
  }
  out = sockaddr_storage{};
  std::memcpy(&out, &known.address, known.length);
  return true;
}

ClientWrite ClientStream::write(std::string_view bytes) noexcept {
  return connection_->stream_write(bytes);
}
void ClientStream::pause_body() noexcept {
  connection_->stream_pause();
}
void ClientStream::resume_body() noexcept {
  connection_->stream_resume();
}
void ClientStream::send_continue() noexcept {
  connection_->stream_continue();
}
void ClientStream::start_tunnel() noexcept {
  connection_->stream_start_tunnel();
}
void ClientStream::shutdown_write() noexcept {
  connection_->stream_shutdown_write();
}
void ClientStream::finish(bool close) noexcept {
  connection_->stream_finish(close);
}
void ClientStream::reply(int status, ErrorLabel label) noexcept {
  connection_->stream_reply(status, label);
}
void ClientStream::abort() noexcept {
  connection_->stream_abort();
}

// ---- the connection's side -------------------------------------------------------

void ServerConnection::on_body_piece(void* self, const char* at, std::size_t length) noexcept {
  auto* connection = static_cast<ServerConnection*>(self);
  if (StreamingExchange* taken = connection->exchange_->streaming)
    taken->on_request_body({at, length});
}

void ServerConnection::consume_streamed() noexcept {
  // The head's bytes go too: the Request's views were the taker's during
  // take() only.
  if (!exchange_->parser.can_rebase()) return;
  in_.consume(parsed_);
  parsed_ = 0;
}

void ServerConnection::input_due() noexcept {
  input_due_ = true;
  armed_deadline_ = now_ticks();
  shard_.reactor.arm(timer_, std::chrono::milliseconds(0));
}

ClientWrite ServerConnection::stream_write(std::string_view bytes) noexcept {
  if (stream_.closed()) return ClientWrite::kFailed;
  exchange_->stream_started = true;
  return write_out(bytes);
}

ClientWrite ServerConnection::write_out(std::string_view bytes) noexcept {
  ServerExchange& ex = *exchange_;
  last_active_ = now_ticks();
  if (bytes.empty()) return ClientWrite::kAccepted;
  if (stream_.blocked()) {
    stream_.append_pending(bytes);
    ex.write_blocked = true;
    update_interest();
    update_timer();
    return ClientWrite::kBlocked;
  }
  IoBatcher& batcher = shard_.batcher;
  if (bytes.size() <= kBatchedWriteLimit && batcher.own_output().empty()) {
    batcher.out.append(bytes);
    if (batcher.queue_send(stream_, this)) return ClientWrite::kAccepted;
    batcher.drop_own_output();
  }
  switch (stream_.write(bytes)) {
    case WriteStatus::kWritten:
      return ClientWrite::kAccepted;
    case WriteStatus::kProgress:
    case WriteStatus::kBlocked:
      ex.write_blocked = true;
      update_interest();
      update_timer();
      return ClientWrite::kBlocked;
    case WriteStatus::kFailed:
      break;
  }
  return ClientWrite::kFailed;
}

void ServerConnection::stream_continue() noexcept {
  ServerExchange& ex = *exchange_;
  // Only while the client waits for it: no answer began, the body is not
  // all here (a client that did not wait needs none).
  if (!ex.continue_due || ex.stream_started || ex.request_done || stream_.closed() ||
      close_after_write_)
    return;
  ex.continue_due = false;
  shard_.counters.count_reply(ErrorLabel::kNone);
  if (write_out(http1::kContinue) == ClientWrite::kFailed) close_after_write_ = true;
}

void ServerConnection::stream_start_tunnel() noexcept {
  ServerExchange& ex = *exchange_;
  assert(phase_ == Phase::kTaken && ex.request_done);
  phase_ = Phase::kTunnel;
  ex.continue_due = false;
  // The head is the taker's no more; what follows it is the tunnel's.
  if (parsed_ != 0) in_.consume(parsed_);
  parsed_ = 0;
  // A FIN seen meanwhile may have bytes before it: a read finds both.
  if (stream_.peer_eof()) readable_ = true;
  if (in_.size() > 0 || readable_) input_due();
  update_interest();
  update_timer();
}

void ServerConnection::stream_shutdown_write() noexcept {
  exchange_->tunnel_shut_due = true;
  shutdown_if_due();
}

void ServerConnection::shutdown_if_due() noexcept {
  if (phase_ != Phase::kTunnel || stream_.closed() || !exchange_->tunnel_shut_due ||
      stream_.blocked())
    return;
  exchange_->tunnel_shut_due = false;
  stream_.shutdown_write();
}

void ServerConnection::tunnel_input() noexcept {
  ServerExchange& ex = *exchange_;
  if (ex.body_paused || parsed_ == in_.size()) return;
  const std::string_view bytes(in_.data() + parsed_, in_.size() - parsed_);
  parsed_ = static_cast<std::uint32_t>(in_.size());
  if (ex.streaming != nullptr) ex.streaming->on_tunnel_data(bytes);
  if (stream_.closed() || phase_ != Phase::kTunnel) return;
  in_.consume(parsed_);
  parsed_ = 0;
}

bool ServerConnection::take_tunnel_read(ssize_t result, std::size_t asked,
                                        std::uint32_t events) noexcept {
  ServerExchange& ex = *exchange_;
  if (result == 0) {
    stream_.set_peer_eof();
    in_.release_if_empty();
    if (!std::exchange(ex.tunnel_eof, true) && ex.streaming != nullptr) {
      ex.streaming->on_tunnel_end();
    } else {
      update_interest();
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
  tunnel_input();
  if (stream_.closed() || phase_ != Phase::kTunnel) return false;
  if (ex.body_paused) {
    // As a paused body: the edge is spent, read again on resume.
    if (static_cast<std::size_t>(result) == asked) readable_ = true;
    return false;
  }
  if (read_again(result, asked, events)) return true;
  in_.release_if_empty();
  return false;
}

void ServerConnection::stream_pause() noexcept {
  exchange_->body_paused = true;
  update_interest();
  update_timer();
}

void ServerConnection::stream_resume() noexcept {
  exchange_->body_paused = false;
  // Body bytes read and not parsed yet (or a readable edge seen meanwhile)
  // are taken from the loop, not here inside the taker's call.
  if (parsed_ < in_.size() || readable_) input_due();
  update_interest();
  update_timer();
}

void ServerConnection::stream_finish(bool close) noexcept {
  // A tunnel's connection carries no more HTTP: it closes.
  if (close || phase_ == Phase::kTunnel) exchange_->keep_alive = false;
  end_streaming();
}

void ServerConnection::stream_reply(int status, ErrorLabel label) noexcept {
  ServerExchange& ex = *exchange_;
  ex.streaming = nullptr;
  ex.local_reply = true;
  ex.label = label;
  Response& res = ex.response;
  res.status(status);
  if (status == 503) {
    res.header("Retry-After",
               fmt::format_int(shard_.core.options().retry_after_seconds).c_str());
  }
  res.text(reason_phrase(status));
  if (!ex.request_done) ex.keep_alive = false;
  finish_response();  // into the reactor's output; counts the label
  end_streaming();
}

void ServerConnection::stream_abort() noexcept {
  exchange_->streaming = nullptr;
  close();
  finish_entry();
}

void ServerConnection::end_streaming() noexcept {
  ServerExchange& ex = *exchange_;
  ex.streaming = nullptr;
  // A body not read to its end cannot be skipped to the next request.
  if (!ex.request_done || !ex.keep_alive || shard_.shutting_down) close_after_write_ = true;
  complete_exchange();
  flush();  // a reply written into the reactor's output; else close or linger
  if (!stream_.closed()) {
    // Requests pipelined behind this one, from the loop.
    if (!close_after_write_ && (in_.size() > 0 || readable_)) input_due();
    update_interest();
    update_timer();
  }
  finish_entry();
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
