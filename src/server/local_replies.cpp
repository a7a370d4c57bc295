// server/local_replies.cpp — the answers the server writes itself rather
// than a handler: requests refused on bad input or a timeout, and the 500
// that replaces a failed handler's response.
// Thread-safety: on the connection's reactor thread, except
// ServerExchange::internal_error (whoever owns the exchange).
#include <fmt/format.h>

#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

using namespace std::string_view_literals;  // literals appended with their length known

namespace portico {
inline namespace v0 {
namespace detail {

void ServerExchange::internal_error(Response& res) noexcept {
  const bool deferred = res.deferred_;
  res.reset();
  res.deferred_ = deferred;
  res.status(500);
  res.text("Internal Server Error");
}

void ServerConnection::write_simple(int status, std::string_view extra_fields,
                                    std::string_view body) noexcept {
  OutputBuffer& out = shard_.out;
  write_status_line(status);
  if (!body.empty()) out.append("Content-Type: text/plain\r\n"sv);
  out.append(extra_fields);
  const fmt::format_int length(body.size());
  out.append("Content-Length: "sv);
  out.append({length.data(), length.size()});
  out.append("\r\nConnection: close\r\n\r\n"sv);
  out.append(body);
  bump(status >= 500 ? shard_.counters.responses_5xx : shard_.counters.responses_4xx);
}

void ServerConnection::fail(int status) noexcept {
  if (exchange_ != nullptr && phase_ != Phase::kDeferred) {
    shard_.release_exchange(exchange_);
    exchange_ = nullptr;
  }
  if (status == 408) bump(shard_.counters.timeouts);
  write_simple(status, "", reason_phrase(status));
  close_after_write_ = true;
  phase_ = Phase::kIdle;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
