// server/exchange_taker.hpp (internal) — routes whose exchanges are taken
// over at the request head (the gateway's proxy): the request body streams
// to the taker as it is read, and the taker writes the response itself,
// with backpressure both ways. A taker may turn the connection into a raw
// two-way byte tunnel (an Upgrade its upstream accepted with 101).
// Thread-safety: everything here runs on the connection's reactor thread.
// Lifetimes: a ClientStream is valid from take() until the taker calls
// finish() or abort(), or the connection calls on_client_gone() or
// on_request_error(); after those the taker never touches it again.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ServerConnection;
struct ServerExchange;
struct ReactorShard;

// What a write to the client did.
enum class ClientWrite : std::uint8_t {
  kAccepted,  // taken; more may follow now
  kBlocked,   // taken, but the client is slow: wait for on_client_writable()
  kFailed,    // the connection is broken: abandon the exchange, then abort()
};

// The client side of a taken exchange, as its taker sees it.
class ClientStream {
 public:
  ClientStream() noexcept = default;
  explicit ClientStream(ServerConnection* connection) noexcept : connection_(connection) {}

  // The reactor the exchange runs on: its loop, buffers, batched I/O, heap,
  // the Date line.
  ReactorShard& shard() const noexcept;
  // The peer's address (false when the socket has none any more).
  bool peer(sockaddr_storage& out) const noexcept;
  // The exchange's `id` in USDT probes (server/probes.hpp), as the server's
  // own probes give it.
  std::uint64_t probe_id() const noexcept { return reinterpret_cast<std::uintptr_t>(connection_); }

  // Writes response bytes (the head, then the body as framed for the
  // client). Bytes that cannot go out now are kept in order.
  ClientWrite write(std::string_view bytes) noexcept;
  // Backpressure on the request body (in a tunnel, on the raw input): no
  // bytes after the read being handled until resume_body().
  void pause_body() noexcept;
  void resume_body() noexcept;
  // Expect: 100-continue: the taker is ready for the body (its upstream
  // took the request head). Writes `100 Continue` if the client asked for
  // it, no response byte went out and the body is not all read; else
  // nothing. The server never sends it itself for a taken exchange, so a
  // final answer given before (reply()) comes without one, and closes.
  void send_continue() noexcept;
  // Raw mode: from now on the connection carries no HTTP. The bytes read
  // after the request head (already here, and all later ones) go to the
  // taker's on_tunnel_data(), from the loop (never inside this call); the
  // client's EOF to on_tunnel_end(); write() writes raw bytes. The tunnel
  // times out after the server's idle_timeout with no byte either way, and
  // ends with finish() (the connection then closes, once its output is out)
  // or abort().
  // REQUIRES: the request is read whole; its response head (the 101) is written.
  void start_tunnel() noexcept;
  // Tunnel: a FIN to the client once the output written so far is out (the
  // other side's EOF, relayed); the client may still send.
  void shutdown_write() noexcept;
  // The response is complete: the connection serves its next request
  // (`close`: it closes once the response is out).
  void finish(bool close) noexcept;
  // Before any byte was written: the server answers `status` itself (502,
  // 503 + Retry-After, 504), labelled `label`, then as finish().
  void reply(int status, ErrorLabel label) noexcept;
  // The response cannot be completed: the connection closes now (a client
  // reading a chunked or sized body then sees it cut short).
  void abort() noexcept;

 private:
  ServerConnection* connection_ = nullptr;
};

// One taken exchange, as its connection sees it.
class StreamingExchange {
 public:
  // A piece of the request body (de-chunked), in order. Valid during the call.
  virtual void on_request_body(std::string_view bytes) noexcept = 0;
  // The request's last byte has been read.
  virtual void on_request_end() noexcept = 0;
  // Output that was blocked has all gone out.
  virtual void on_client_writable() noexcept = 0;
  // The request body turned bad (a malformed chunk, over max_body_bytes):
  // the connection answers `status` if no response byte went out, else
  // closes. The taker abandons the exchange (never touches the client again).
  virtual void on_request_error(int status) noexcept = 0;
  // The client went away (closed, reset, timed out): abandon the exchange.
  virtual void on_client_gone() noexcept = 0;
  // Tunnel (after ClientStream::start_tunnel()): raw bytes from the client,
  // in order. Valid during the call. Both tunnel calls come from inside the
  // connection's read: the taker ends the exchange (finish(), abort()) from
  // its own callbacks or the loop, never inside them.
  virtual void on_tunnel_data(std::string_view bytes) noexcept = 0;
  // Tunnel: the client shut down its sending side (no more on_tunnel_data);
  // it may still read.
  virtual void on_tunnel_end() noexcept = 0;

 protected:
  ~StreamingExchange() = default;
};

// A route's taker, shared by every reactor.
class ExchangeTaker {
 public:
  virtual ~ExchangeTaker() = default;
  // The request head is parsed and routed: `exchange` holds the Request
  // (its views valid during this call only: the head's bytes may be
  // consumed once the body streams) and its parser. Returns the exchange
  // that takes over, or nullptr when the taker answered at once by filling
  // exchange.response (a local reply: 400, 503, ...), which the server then
  // writes like a handler's.
  virtual StreamingExchange* take(ClientStream client, ServerExchange& exchange) noexcept = 0;
  // The route pattern this taker serves, when it knows it and keeps it as
  // long as the taker lives (the gateway's routes): the route's name in the
  // request metrics is then interned at its first request, not when the
  // route is added, so a config of 120,000 routes interns only those that
  // see traffic. "": interned when added.
  virtual std::string_view route_pattern() const noexcept { return {}; }
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
