// server/server_exchange.hpp (internal) — ServerExchange: one request/response
// exchange on a server connection: parse state (spans into the connection's
// read buffer), the Request and Response, and dispatch state.
// Thread-safety: owned by its connection's reactor thread, except while
// deferred or offloaded, when whoever holds its Completion owns it.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/http.hpp"
#include "portico/server.hpp"
#include "server/routes.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ServerConnection;
struct ReactorShard;

struct Span {
  std::uint32_t offset = 0;
  std::uint32_t length = 0;
  void extend(std::uint32_t at, std::uint32_t n) noexcept {
    if (length == 0) offset = at;
    length += n;
  }
  std::string_view view(const char* base) const noexcept { return {base + offset, length}; }
};

struct ServerExchange {
  llhttp_t parser;
  Request request;
  Response response;
  ServerConnection* connection = nullptr;
  ReactorShard* shard = nullptr;
  ServerExchange* next_free = nullptr;

  // Parse state: spans into the connection's input buffer.
  Span method, url, field, value, body;
  std::vector<std::pair<Span, Span>> header_spans;  // capacity kept across requests
  int error_status = 0;                             // set by a callback that rejects the request
  bool url_done = false;
  bool headers_done = false;
  bool expect_continue = false;
  bool keep_alive = true;
  bool upgrade = false;
  bool stream_started = false;  // Completion::write() sent the head already

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

  // Ready for the next request on the connection (reactor_shard.cpp).
  void reset() noexcept;
  // The parse state only (request_parser.cpp).
  void reset_parse() noexcept;
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
