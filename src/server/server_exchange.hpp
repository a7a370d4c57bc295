// server/server_exchange.hpp (internal) — ServerExchange: one request/response
// exchange on a server connection: its parser (spans into the connection's
// read buffer), the Request and Response, and dispatch state.
// Thread-safety: owned by its connection's reactor thread, except while
// deferred or offloaded, when whoever holds its Completion owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http1/parser.hpp"
#include "portico/http.hpp"
#include "portico/server.hpp"
#include "server/routes.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ServerConnection;
class StreamingExchange;
struct ReactorShard;

struct ServerExchange {
  http1::Parser parser;  // the request being read: spans into the connection's read buffer
  Request request;
  Response response;
  ServerConnection* connection = nullptr;
  ReactorShard* shard = nullptr;
  ServerExchange* next_free = nullptr;

  std::string target_scratch;  // the normalised target, when it differs (capacity kept)
  // A StreamingHandler's route took the exchange (server/exchange_taker.hpp).
  StreamingExchange* streaming = nullptr;

  // Side by side, so reset() clears them with one store.
  bool keep_alive = true;     // set at dispatch; cleared by the response
  bool continue_due = false;  // Expect: 100-continue and the body is not all here
  bool stream_started = false;  // Completion::write() or a taker sent the head already
  bool request_done = false;   // taken: the request's last byte was read
  bool body_paused = false;    // taken: the taker asked for no more body for now
  bool write_blocked = false;  // taken: a write was held back; tell it when out
  // An Upgrade request that may carry another after it (keep_alive without
  // the upgrade): a taker that does not tunnel keeps the connection.
  bool upgrade_keep_alive = false;
  bool tunnel_eof = false;       // tunnel: the client's EOF went to the taker
  bool tunnel_shut_due = false;  // tunnel: a FIN to the client once output is out
  // Answered before its body came (no 100 Continue was sent): the connection
  // closes after the answer.
  bool answered_early = false;
  // The response's body source waits for the socket to take its pieces
  // (phase kDeferred, no Completion out): the connection owns the exchange.
  bool pumping = false;

  // Dispatch state.
  const RouteEntry* route = nullptr;
  const RouteRef* route_ref = nullptr;  // into the table: valid during dispatch only
  RouteRef route_hold;                  // held only while deferred: the table may change meanwhile
  std::size_t middleware_reached = 0;
  bool head_request = false;
  // Set when the server answers itself (LocalReplies): finish_response()
  // counts `label`, and logs and metrics can read it.
  bool local_reply = false;
  ErrorLabel label = ErrorLabel::kNone;
  // A StreamingHandler's route took it: the taker counts it in the request
  // metrics (it knows the outcome), not the server.
  bool taken = false;
  // Gateway: a canary request that went to the route's own cluster
  // (metrics' `fallback`), when the taker answered it at once.
  bool fallback = false;
  // When its first byte was read, by the reactor's loop clock: the start of
  // its duration in the request metrics (nginx's $request_time starts there too).
  std::chrono::steady_clock::time_point started{};
  // Body bytes streamed before the last piece (Completion::write(), a body
  // source): the metrics and the access log count them with it.
  std::uint64_t streamed_bytes = 0;

  // Ready for the next request on the connection (reactor_shard.cpp).
  void reset() noexcept;
  // Hands a finished deferred/offloaded exchange back to its reactor (any thread).
  void post_completion() noexcept;
};

struct ParamsAccess {
  static void rebind_names(Params& params, const std::string_view* names) noexcept {
    params.names_ = names;
  }
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
