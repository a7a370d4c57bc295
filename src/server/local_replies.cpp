// server/local_replies.cpp — every answer the server writes itself, and the
// label each one carries (see local_replies.hpp).
// Thread-safety: LocalReplies where the exchange is owned; the
// ServerConnection members on the connection's reactor thread.
#include "server/local_replies.hpp"

#include <optional>

#include "http1/writer.hpp"

#include <fmt/format.h>

#include "server/probes.hpp"
#include "server/request_metrics.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

using namespace std::string_view_literals;  // literals appended with their length known

namespace portico {
inline namespace v0 {

std::string_view label_name(ErrorLabel label) noexcept {
  switch (label) {
    case ErrorLabel::kNone:
      return "none";
    case ErrorLabel::kRouteNotFound:
      return "route_not_found";
    case ErrorLabel::kMethodNotAllowed:
      return "method_not_allowed";
    case ErrorLabel::kBadRequest:
      return "bad_request";
    case ErrorLabel::kTooLarge:
      return "too_large";
    case ErrorLabel::kClientTimeout:
      return "client_timeout";
    case ErrorLabel::kInternalError:
      return "internal_error";
    case ErrorLabel::kOverflow:
      return "overflow";
    case ErrorLabel::kUpstreamConnectFailure:
      return "upstream_connect_failure";
    case ErrorLabel::kUpstreamReset:
      return "upstream_reset";
    case ErrorLabel::kUpstreamProtocolError:
      return "upstream_protocol_error";
    case ErrorLabel::kUpstreamTimeout:
      return "upstream_timeout";
    case ErrorLabel::kNoHealthyUpstream:
      return "no_healthy_upstream";
    case ErrorLabel::kCircuitOpen:
      return "circuit_open";
  }
  return "none";
}

namespace detail {
namespace {

void mark(ServerExchange& ex, ErrorLabel label) noexcept {
  ex.local_reply = true;
  ex.label = label;
}

}  // namespace

// ---- answers to a dispatched request ------------------------------------------

void LocalReplies::not_found(ServerExchange& ex) {
  mark(ex, ErrorLabel::kRouteNotFound);
  ex.response.status(404);
  ex.response.text("Not Found");
}

void LocalReplies::method_not_allowed(ServerExchange& ex, std::string_view allow) {
  mark(ex, ErrorLabel::kMethodNotAllowed);
  ex.response.status(405);
  ex.response.header("Allow", allow);
  ex.response.text("Method Not Allowed");  // as 404 says "Not Found"
}

void LocalReplies::options(ServerExchange& ex, std::string_view allow) {
  mark(ex, ErrorLabel::kNone);
  ex.response.status(200);
  ex.response.header("Allow", allow);
}

void LocalReplies::redirect(ServerExchange& ex, int status, std::string_view location) {
  mark(ex, ErrorLabel::kNone);
  ex.response.status(status);
  ex.response.header("Location", location);
}

void LocalReplies::bad_request(ServerExchange& ex) {
  mark(ex, ErrorLabel::kBadRequest);
  ex.keep_alive = false;
  ex.response.status(400);
  ex.response.text("Bad Request");
}

void LocalReplies::overflow(ServerExchange& ex, unsigned retry_after_seconds) {
  mark(ex, ErrorLabel::kOverflow);
  Response& res = ex.response;
  res.reset();
  res.status(503);
  res.header("Retry-After", fmt::format_int(retry_after_seconds).c_str());
  res.text("Service Unavailable");
}

void LocalReplies::internal_error(ServerExchange& ex, std::string_view body) noexcept {
  mark(ex, ErrorLabel::kInternalError);
  Response& res = ex.response;
  const bool deferred = res.deferred_;
  res.reset();
  res.deferred_ = deferred;
  res.status(500);
  if (!body.empty()) res.text(body);
}

void LocalReplies::invalid_status(ServerExchange& ex) noexcept {
  mark(ex, ErrorLabel::kInternalError);
  ex.response.status_ = 500;
}

ErrorLabel refusal_label(int status) noexcept {
  switch (status) {
    case 408:
      return ErrorLabel::kClientTimeout;
    case 413:
    case 414:
    case 431:
      return ErrorLabel::kTooLarge;
    case 503:
      return ErrorLabel::kOverflow;
    default:
      return status >= 500 && status != 505 ? ErrorLabel::kInternalError : ErrorLabel::kBadRequest;
  }
}

// ---- refusals, written straight to the output -----------------------------------

void ServerConnection::write_local_reply(int status, ErrorLabel label,
                                         std::string_view extra_fields,
                                         std::string_view body) noexcept {
  OutputBuffer& out = shard_.batcher.out;
  write_status_line(status);
  if (!body.empty()) out.append("Content-Type: text/plain\r\n"sv);
  out.append(extra_fields);
  const fmt::format_int length(body.size());
  out.append("Content-Length: "sv);
  out.append({length.data(), length.size()});
  out.append("\r\nConnection: close\r\n\r\n"sv);
  out.append(body);
  bump(status >= 500 ? shard_.counters.responses_5xx : shard_.counters.responses_4xx);
  shard_.counters.count_reply(label);
}

void ServerConnection::meter_refusal(int status, ErrorLabel label) noexcept {
  if (!shard_.core.options().metrics) return;
  // A taken exchange's refusal is counted by its taker (on_request_error()).
  if (exchange_ != nullptr && exchange_->taken) return;
  std::optional<Method> method;
  if (exchange_ != nullptr && phase_ != Phase::kDeferred && in_.has_storage()) {
    const http1::Span token = exchange_->parser.method();
    if (token.length != 0 && token.end() <= in_.size())
      method = parse_method(token.view(in_.data()));
  }
  const std::uint64_t took_ms = static_cast<std::uint32_t>(now_ticks() - phase_start_);
  shard_.request_metrics.record(series_key(0, method_index(method), status, label, false),
                                took_ms * 1'000'000, 0, 0);
}

void ServerConnection::fail(int status) noexcept {
  // A request past its head (request_start fired) that ends here: 408, 413,
  // a malformed body. A taken one's taker fired request_done already.
  PORTICO_PROBE4_IF(exchange_ != nullptr && phase_ == Phase::kBody, request_done, probe_id(this),
                    status, std::size_t{0}, static_cast<unsigned>(refusal_label(status)));
  meter_refusal(status, refusal_label(status));
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  if (status == 408) bump(shard_.counters.timeouts);
  write_local_reply(status, refusal_label(status), "", reason_phrase(status));
  close_after_write_ = true;
  phase_ = Phase::kIdle;
}

void ServerConnection::refuse_out_of_buffers() noexcept {
  // Answer what we can and shed this connection.
  bump(shard_.counters.rejected_503);
  meter_refusal(503, ErrorLabel::kOverflow);
  write_local_reply(503, ErrorLabel::kOverflow, "Retry-After: 1\r\n", "");
  close_after_write_ = true;
}

void ServerConnection::write_continue() noexcept {
  // The client waits for this before sending the body.
  http1::write_continue(shard_.batcher.out);
  shard_.counters.count_reply(ErrorLabel::kNone);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
