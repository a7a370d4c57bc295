// server/server_connection.hpp (internal) — ServerConnection: one accepted
// client connection: reads into its read buffer, parses and dispatches the
// requests found, decides when to write, linger and close (its ByteStream
// does the byte work), keeps its timer.
// Thread-safety: owned by its shard's reactor thread; completions and
// streamed writes reach it through the reactor's task queue.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http1/writer.hpp"
#include "net/byte_stream.hpp"
#include "net/io_batcher.hpp"
#include "net/read_buffer.hpp"
#include "net/ticks.hpp"
#include "portico/reactor.hpp"
#include "portico/router.hpp"
#include "server/exchange_taker.hpp"
#include "server/reactor_shard.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

struct ServerExchange;

// Whether a response of `status` carries a body (not 1xx, 204 or 304).
inline bool status_has_body(int status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

// Shape of one connection (all on its reactor's thread): read into a pooled
// block -> llhttp (paused at each message end) -> route + middleware +
// handler -> serialise into the shard's output -> after the whole read batch,
// one write for every response. Views a Request hands out are offsets into
// the read buffer, turned into string_views at dispatch; the buffer is not
// touched (no compaction, no consume) until the response is complete.
class ServerConnection final : public StreamHandler {
 public:
  ServerConnection(ReactorShard& shard, int fd) noexcept
      : timer_(&ServerConnection::on_timer, this), shard_(shard), stream_(fd) {}

  void open();
  void on_io(std::uint32_t events) noexcept override;
  void handle_io(std::uint32_t events) noexcept;
  // A deferred or offloaded response is complete (runs on the loop thread).
  void on_completion(ServerExchange* exchange) noexcept;
  // Completion::write(): one chunk of a streamed response (loop thread).
  void on_stream_write(ServerExchange* exchange, std::string_view bytes) noexcept;
  // Shutdown: close if idle, else close after the current response.
  void on_shutdown() noexcept;
  void force_close() noexcept;
  // Closes the connection if nothing is in progress on it.
  void close_if_idle() noexcept;
  // The batched send of this connection's output ended (IoBatcher::flush_sends).
  void on_sent(WriteStatus status) noexcept override;
  // The queued read into `room` ended with `result`: bytes or -errno
  // (IoBatcher::flush_reads).
  void on_received(std::span<char> room, ssize_t result, std::uint32_t events) noexcept override;
  // Where a queued read goes: the free part of the input buffer, made ready
  // (acquired, grown). Empty when it cannot be (read_input then answers).
  std::span<char> read_room() noexcept;
  bool idle() const noexcept { return exchange_ == nullptr && stream_.idle(); }
  std::size_t format_peer(char* out, std::size_t size) const noexcept;

  ServerConnection* prev = nullptr;
  ServerConnection* next = nullptr;

 private:
  friend class ClientStream;
  // kTaken: a StreamingHandler's route has the exchange (reading its body,
  // writing its response); the requests behind it wait. kTunnel: its taker
  // turned the connection into a raw byte tunnel (no HTTP any more). From
  // kDeferred on, the exchange being read is not finished by process_input().
  enum class Phase : std::uint8_t { kIdle, kHead, kBody, kDeferred, kTaken, kTunnel, kLinger };

  static void on_timer(Timer& timer, void* context) noexcept;
  // A request that stalled before its answer: 408, then on as after a write.
  void answer_timeout() noexcept;
  // `events`: what epoll reported (EPOLLRDHUP: the peer's FIN is queued).
  // Reads from round `first_round` on (on_received() did round 0).
  void read_input(std::uint32_t events, int first_round = 0) noexcept;
  // Acts on one read of `asked` bytes that returned `result` (bytes or
  // -errno); true if the connection should read again.
  bool take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept;
  void process_input() noexcept;
  void send_continue_if_due(ServerExchange& ex) noexcept;
  void dispatch() noexcept;
  // The Request's views and keep-alive, from the parsed head; false when the
  // target cannot be normalised (ServerOptions::normalize_target).
  bool fill_request(ServerExchange& ex) noexcept;
  // A request whose body follows, on a server with streaming routes: routes
  // it now and hands it to its taker if its route streams (true).
  bool dispatch_head() noexcept;
  // `whole`: the request (body and all) has been read.
  void start_streaming(bool whole) noexcept;
  // process_input() while taken: the body to the taker as it is parsed.
  void stream_body_input() noexcept;
  // The parser's body sink while taken: pieces go to the taker.
  static void on_body_piece(void* self, const char* at, std::size_t length) noexcept;
  // process_input() in a tunnel: the bytes read go to the taker raw.
  void tunnel_input() noexcept;
  // take_read() in a tunnel.
  bool take_tunnel_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept;
  // A FIN to the client once the tunnel's output is out, if one is due.
  void shutdown_if_due() noexcept;
  // Drops what the taker already has of the request (the body read so far)
  // so a streamed body never grows the read buffer.
  void consume_streamed() noexcept;
  // ClientStream's calls (client_stream.cpp).
  ClientWrite stream_write(std::string_view bytes) noexcept;
  // Bytes to the client: batched, or straight out, or kept in order.
  ClientWrite write_out(std::string_view bytes) noexcept;
  void stream_continue() noexcept;
  void stream_start_tunnel() noexcept;
  void stream_shutdown_write() noexcept;
  void stream_pause() noexcept;
  void stream_resume() noexcept;
  void stream_finish(bool close) noexcept;
  void stream_reply(int status, ErrorLabel label) noexcept;
  void stream_abort() noexcept;
  // The taken exchange is over (its response written): the next request.
  void end_streaming() noexcept;
  // Asks on_timer() to go on with input that waits (pipelined requests,
  // body bytes held back) from the loop rather than the caller's stack.
  void input_due() noexcept;
  MethodSet advertised(MethodSet routed) const noexcept;
  void run_handler() noexcept;
  void finish_response() noexcept;
  // Makes and writes the body source's pieces while the socket takes them.
  // True once the source is done (its last piece is the body), false while
  // the socket is full (write_pending() or on_sent() calls continue_source())
  // or once the connection closed.
  bool pump_source(ServerExchange& exchange) noexcept;
  // Resumes a body source that waited for the socket; finishes the exchange
  // once it is done.
  void continue_source() noexcept;
  // A body source waits and the socket has taken all before it.
  bool source_due() const noexcept;
  void complete_exchange() noexcept;
  // Local replies (local_replies.cpp). fail(): refuses the request being
  // read with `status` and closes after the answer.
  void fail(int status) noexcept;
  void write_local_reply(int status, ErrorLabel label, std::string_view extra_fields,
                         std::string_view body) noexcept;
  void refuse_out_of_buffers() noexcept;
  void write_continue() noexcept;
  using Framing = http1::Framing;
  void serialize(ServerExchange& exchange, std::string_view body) noexcept;
  void write_head(ServerExchange& exchange, Framing framing, std::size_t length) noexcept;
  // The status line, Server and Date: what every response starts with.
  void write_status_line(int status) noexcept;
  Framing framing_of(ServerExchange& exchange) noexcept;
  void append_chunk(ServerExchange& exchange, std::string_view bytes) noexcept;
  void run_afters(ServerExchange& exchange) noexcept;
  // Counts a refusal (fail(), refuse_out_of_buffers()) in the request
  // metrics: route "none", its duration from the phase's start.
  void meter_refusal(int status, ErrorLabel label) noexcept;
  void flush() noexcept;
  // What follows a flush once the output is all written: close or linger.
  void after_write() noexcept;
  // After a batched read or send: close if shutdown began meanwhile and the
  // connection is idle; update epoll interest and the timer (unless a send
  // is queued, whose on_sent() does it).
  void settle() noexcept;
  // Writes the batcher's output for this connection, then `body` (a big
  // one, not copied into it); a rest within `body_owner` (the string that
  // holds `body`, if any) is kept by taking that string over.
  void flush_with(std::string_view body, std::string* body_owner = nullptr) noexcept;
  // Writes the stream's pending output; once it is all out, lingers (close
  // after write) or serves the requests that waited.
  void write_pending() noexcept;
  void update_interest() noexcept;
  void update_timer() noexcept;
  void start_linger() noexcept;
  void close() noexcept;
  // Frees the connection once it is closed and no completion is out; the
  // last thing every entry point (on_io, on_timer, ...) does.
  void finish_entry() noexcept;
  std::optional<Ticks> deadline() const noexcept;
  Ticks now_ticks() const noexcept { return to_ticks(shard_.reactor.now()); }
  std::size_t input_limit() const noexcept;

  Timer timer_;
  ReactorShard& shard_;
  ByteStream stream_;
  std::uint32_t parsed_ = 0;  // bytes of in_ fed to the parser
  std::uint32_t requests_ = 0;
  ReadBuffer in_;
  ServerExchange* exchange_ = nullptr;
  // 32-bit millisecond stamps keep an idle connection in a 160-byte block.
  Ticks phase_start_ = 0;
  Ticks last_active_ = 0;
  Ticks armed_deadline_ = 0;
  Phase phase_ = Phase::kIdle;
  // With the three stamps and phase_ it fills 16 bytes.
  bool close_after_write_ = false;
  bool input_due_ = false;  // input_due(): on_timer() processes input
  // Taken and not reading (the body done or paused): epoll said readable.
  // Interest stays as it was (no epoll_ctl per exchange); the read waits.
  bool readable_ = false;
};

// An idle keep-alive connection costs this object and nothing else (no read
// buffer, no exchange, no output). 160 is a mimalloc size class, within the
// issue's budget of 256 bytes of process memory per idle connection (the
// reactor keeps 8-16 more: its fd table).
static_assert(sizeof(ServerConnection) <= 160, "idle connection state outgrew its budget");

}  // namespace detail
}  // namespace v0
}  // namespace portico
