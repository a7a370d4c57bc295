// server/local_replies.hpp (internal) — every answer the server writes itself
// rather than a handler, each with its ErrorLabel, counted by label per reactor.
// Thread-safety: LocalReplies runs where the exchange is owned (its reactor, or
// the worker or Completion holding it); counting happens on the reactor.
//
// Those that answer a dispatched request (404, 405 + Allow, OPTIONS, 301/308,
// 503 + Retry-After, 500) fill its Response here and go out as a handler's
// would. Those that refuse a request being read (400/413/414/417/431/505, 408,
// 503) and 100 Continue are written straight to the output by ServerConnection
// (fail, write_local_reply, refuse_out_of_buffers, write_continue; defined in
// local_replies.cpp), then the connection closes.
#pragma once

#include <string_view>

#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

struct ServerExchange;

// Each fills the exchange's response as the server's answer and sets
// `ex.local_reply` and `ex.label`; finish_response() counts the label.
struct LocalReplies {
  static void not_found(ServerExchange& ex);
  static void method_not_allowed(ServerExchange& ex, std::string_view allow);
  // 200 + Allow: OPTIONS answered for a path, or for the server ("*").
  static void options(ServerExchange& ex, std::string_view allow);
  // 301 or 308 to `location`.
  static void redirect(ServerExchange& ex, int status, std::string_view location);
  // 400 and close: a request refused once dispatched (its target cannot be
  // normalised).
  static void bad_request(ServerExchange& ex);
  // 503 + Retry-After: the worker queue is full.
  static void overflow(ServerExchange& ex, unsigned retry_after_seconds);
  // 500 in place of whatever the response held (still deferred if it was),
  // with `body` as text/plain when not empty: a handler threw (the default),
  // an after-middleware threw or a Completion was dropped (no body).
  static void internal_error(ServerExchange& ex,
                             std::string_view body = "Internal Server Error") noexcept;
  // The handler set a status outside 100-999: it goes out as 500.
  static void invalid_status(ServerExchange& ex) noexcept;
};

// The label of a request refused with `status` before it was dispatched
// (malformed, over a limit, timed out, or no memory to serve it).
ErrorLabel refusal_label(int status) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
