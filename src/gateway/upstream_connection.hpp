// gateway/upstream_connection.hpp (internal) — UpstreamConnection: one
// connection to an upstream endpoint: non-blocking connect, the request's
// bytes out, the response parsed (http1::Parser in response mode) and handed
// to its UpstreamHandler as a head and body pieces, reuse decided; after a
// 101 the handler may make it a raw byte tunnel.
// Thread-safety: owned by one reactor thread (its UpstreamPool's).
// Lifetimes: a head's field views and body pieces point into the read
// buffer; they are valid until the handler's callback returns.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "http1/parser.hpp"
#include "net/byte_stream.hpp"
#include "net/io_batcher.hpp"
#include "net/read_buffer.hpp"
#include "net/state_heap.hpp"
#include "portico/reactor.hpp"
#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class UpstreamConnection;
class UpstreamPool;

// Why a connect failed. Every cause is labelled upstream_connect_failure (a
// connect timeout too: an endpoint that cannot be reached, retried and
// ejected as one, as Envoy does).
enum class ConnectFailure : std::uint8_t {
  kRefused,      // ECONNREFUSED: nothing listens there
  kTimeout,      // connect_timeout passed
  kUnreachable,  // any other error (no route, no socket: EMFILE, ...)
};

// A response head, as parsed. Views point into the read buffer.
struct UpstreamResponseHead {
  int status = 0;
  int version_minor = 1;
  std::span<const http1::Field> fields;
  const char* base = nullptr;  // what the fields' Spans are offsets from
  std::uint32_t head_length = 0;  // base[0, head_length): the head as sent
  bool chunked = false;
  bool has_content_length = false;
  std::uint64_t content_length = 0;

  std::string_view name(const http1::Field& field) const noexcept { return field.name.view(base); }
  std::string_view value(const http1::Field& field) const noexcept {
    return field.value.view(base);
  }
};

// The owner of an exchange on an UpstreamConnection (the proxy). Each call
// runs on the reactor thread; the handler may call UpstreamPool::release()
// from on_upstream_complete, on_upstream_error and on_upstream_connect_failed
// (and only then is the connection gone when the call returns).
class UpstreamHandler {
 public:
  // The connect completed (a pooled connection handed out is connected
  // already and gets no call).
  virtual void on_upstream_connected(UpstreamConnection& connection) noexcept = 0;
  // The connect failed; the connection is closed: release it.
  virtual void on_upstream_connect_failed(UpstreamConnection& connection,
                                          ConnectFailure cause) noexcept = 0;
  // A 1xx other than 101 (100, 102, 103) came before the response. Ignored
  // unless overridden.
  virtual void on_upstream_informational(UpstreamConnection& connection,
                                         const UpstreamResponseHead& head) noexcept {
    (void)connection;
    (void)head;
  }
  // The response head (a 101 too: the bytes after it are not HTTP).
  virtual void on_upstream_head(UpstreamConnection& connection,
                                const UpstreamResponseHead& head) noexcept = 0;
  // A piece of the body (de-chunked), in order.
  virtual void on_upstream_body(UpstreamConnection& connection, std::string_view bytes) noexcept = 0;
  // The response is complete. `reusable`: the exchange was complete and
  // well-framed, keep-alive, the request fully sent before the response
  // came, and nothing followed it: release() pools it.
  virtual void on_upstream_complete(UpstreamConnection& connection, bool reusable) noexcept = 0;
  // The exchange failed (kUpstreamReset, kUpstreamProtocolError); the
  // connection is closed: release it.
  virtual void on_upstream_error(UpstreamConnection& connection, ErrorLabel label) noexcept = 0;
  // Output that waited (send() returned false, or all_sent() said not yet)
  // has all gone out.
  virtual void on_upstream_writable(UpstreamConnection& connection) noexcept = 0;
  // Tunnel (after start_tunnel(); a handler that calls it overrides both):
  // raw bytes from the upstream, in order (the first may have come with
  // the 101). Valid during the call.
  virtual void on_upstream_tunnel_data(UpstreamConnection& connection,
                                       std::string_view bytes) noexcept {
    (void)connection;
    (void)bytes;
  }
  // Tunnel: the upstream shut down its sending side; it may still read.
  virtual void on_upstream_tunnel_end(UpstreamConnection& connection) noexcept { (void)connection; }
  // The pieces of one read have all been handed on (a proxy writes what it
  // gathered from them in one go). Ignored unless overridden.
  virtual void on_upstream_read_done(UpstreamConnection& connection) noexcept {
    (void)connection;
  }

 protected:
  ~UpstreamHandler() = default;
};

// What upstream connections use of their reactor: the loop, its read
// buffers, its batched I/O and its heap for connection state (a server
// shard's own, when wired).
struct UpstreamIo {
  Reactor& reactor;
  BufferPool& buffers;
  IoBatcher& batcher;
  StateHeap& heap;
};

class UpstreamConnection final : public StreamHandler {
 public:
  enum class State : std::uint8_t {
    kConnecting,  // connect in progress (output may already wait)
    kBusy,        // handed out: an exchange is in progress or about to be
    kIdle,        // in its pool, waiting to be handed out
    kClosed,      // the socket is closed; the object waits for release()
  };

  UpstreamConnection(UpstreamPool& pool, int fd) noexcept;
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  State state() const noexcept { return state_; }
  // Handed out from the pool rather than newly connected: a failure before
  // any response byte may be the upstream's idle close (GATEWAY.md: the
  // request is then sent once more on a new connection).
  bool reused() const noexcept { return reused_; }
  // A byte of the response (or of an interim 1xx) arrived.
  bool response_started() const noexcept { return response_started_; }
  // The response came before the request was all sent (then not reusable).
  bool early_response() const noexcept { return early_response_; }
  // The response was a 101: the connection is the proxy's tunnel now.
  bool upgraded() const noexcept { return upgraded_; }
  int fd() const noexcept { return stream_.fd(); }

  // ---- the request (the handler's side) ------------------------------------
  // Sends `head` then `tail` (a request head and the body bytes at hand: one
  // call, one batched send). Before the connect completes they wait. True
  // when the connection can take more now; false: wait for
  // on_upstream_writable (the bytes are kept meanwhile).
  bool send(std::string_view head, std::string_view tail = {});
  // The request's last byte has been given to send().
  void end_request() noexcept { request_ended_ = true; }
  // Whether every byte given to send() has gone out; if not,
  // on_upstream_writable() follows once it has.
  bool all_sent() noexcept;
  // The connection is not pooled after this exchange whatever its response
  // (an Upgrade was sent: be safe if the upstream half switched).
  void forbid_reuse() noexcept { reuse_forbidden_ = true; }
  // Raw mode, from on_upstream_head() of a 101: the bytes after the head
  // (those of this read first) go to on_upstream_tunnel_data(), the
  // upstream's EOF to on_upstream_tunnel_end(); send() sends raw bytes. The
  // exchange never completes: the handler releases it (it is never pooled).
  void start_tunnel() noexcept { tunnel_ = true; }
  // Tunnel: a FIN to the upstream once the output given so far is out.
  void shutdown_write() noexcept;
  // The FIN shutdown_write() asked for has gone.
  bool write_shut() const noexcept { return write_shut_; }
  // Backpressure on the response: no read (and so no body piece) after the
  // read being handled until resume_reading(). Pieces already read still
  // come (the parser cannot stop inside a read).
  void pause_reading() noexcept;
  void resume_reading() noexcept;
  bool reading_paused() const noexcept { return paused_; }

  // ---- the pool's side -----------------------------------------------------
  // Starts connecting to `address` for `handler`; a failure is reported from
  // the reactor loop, never from inside this call.
  void connect(const sockaddr* address, socklen_t length, UpstreamHandler& handler,
               bool head_request) noexcept;
  // Hands a pooled connection out for a new exchange.
  void begin_exchange(UpstreamHandler& handler, bool head_request) noexcept;
  // Into the pool: watches for the upstream's close, arms the idle timer.
  void park() noexcept;
  // Whether the exchange ended so that the connection may serve another.
  bool reusable() const noexcept { return state_ == State::kBusy && done_ && reusable_; }
  void close() noexcept;
  // Frees the object once nothing refers to it any more (no batched op out,
  // not inside one of its own callbacks); else the last of those does.
  void release_when_unused() noexcept;
  // Whether it may go back to the pool now: reusable, nothing in flight.
  bool poolable() const noexcept;

  // Intrusive links of the pool's idle list.
  UpstreamConnection* prev = nullptr;
  UpstreamConnection* next = nullptr;

  void on_io(std::uint32_t events) noexcept override;
  void on_sent(WriteStatus status) noexcept override;
  void on_received(std::span<char> room, ssize_t result, std::uint32_t events) noexcept override;

 private:
  static void on_timer(Timer& timer, void* context) noexcept;
  static void on_body_bytes(void* self, const char* at, std::size_t length) noexcept;

  void complete_connect(int error) noexcept;
  void fail_connect(ConnectFailure cause) noexcept;
  void start_exchange(UpstreamHandler& handler, bool head_request) noexcept;
  void start_response() noexcept;
  // Reports `label` from the reactor loop (a zero timer), not from inside
  // the handler's call that found it.
  void fail_later(ErrorLabel label) noexcept;
  std::span<char> read_room() noexcept;
  void read_input(std::uint32_t events, int first_round) noexcept;
  // Acts on one read of `asked` bytes; true to read again.
  bool take_read(ssize_t result, std::size_t asked, std::uint32_t events) noexcept;
  void process_input() noexcept;
  // process_input() in a tunnel: the bytes read go to the handler raw.
  void tunnel_input() noexcept;
  void at_eof() noexcept;
  void finish_response(bool well_framed) noexcept;
  void fail(ErrorLabel label) noexcept;
  void write_pending() noexcept;
  void after_output() noexcept;
  void update_interest() noexcept;
  bool request_sent() const noexcept {
    return request_ended_ && !stream_.has_pending() && !stream_.send_queued();
  }
  // The end of every entry point: frees the object if it was released.
  void finish_entry() noexcept;

  UpstreamPool& pool_;
  UpstreamHandler* handler_ = nullptr;
  Timer timer_;
  Reactor::Clock::time_point idle_until_{};  // parked: the idle timeout ends then
  ByteStream stream_;
  ReadBuffer in_;
  std::uint32_t parsed_ = 0;  // bytes of in_ fed to the parser
  std::uint32_t body_end_ = 0;  // where the last body piece of this read ended
  http1::Parser parser_;
  State state_ = State::kConnecting;
  ErrorLabel deferred_error_ = ErrorLabel::kNone;  // fail_later()'s label
  ConnectFailure connect_failure_ = ConnectFailure::kTimeout;  // when the timer ends a connect
  bool head_request_ = false;
  bool reused_ = false;
  bool request_ended_ = false;
  bool response_started_ = false;
  bool early_response_ = false;
  bool upgraded_ = false;
  bool reusable_ = false;   // set when the response completed as reusable
  bool done_ = false;       // the exchange ended (complete or failed)
  bool paused_ = false;
  bool want_writable_ = false;  // send() returned false; tell when drained
  bool released_ = false;   // the pool let go of it: free once unused
  bool reuse_forbidden_ = false;  // forbid_reuse()
  bool tunnel_ = false;           // start_tunnel(): raw bytes, no HTTP
  bool tunnel_eof_ = false;       // the upstream's EOF went to the handler
  bool shut_due_ = false;         // a FIN once pending output is out
  bool write_shut_ = false;       // that FIN went
  std::uint8_t entered_ = 0;  // nesting of its own entry points
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
