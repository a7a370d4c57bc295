// server/access_log.hpp (internal) — the access log: one line per response,
// in the common log format or as JSON, gathered in a reactor's string and
// written once per loop iteration.
// Thread-safety: each reactor formats into and flushes its own string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <ctime>
#include <string>

#include "portico/http.hpp"
#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// Appends the line for `request`, answered with `status` and `body_bytes`
// bytes of body at `second` (UTC), to `log`. REQUIRES: format is not kOff.
void append_access_log(std::string& log, AccessLogFormat format, std::time_t second,
                       const Request& request, int status, std::size_t body_bytes);
// One proxied exchange, as the gateway's access log line names it
// (GATEWAY.md, "Metrics and access log").
struct ProxyLogEntry {
  std::string_view request_id, trace_id, client, method, path, route, error, cluster, upstream;
  int status = 0;  // what the client got; 0 when nothing was sent
  unsigned retries = 0;
  bool fallback = false;
  std::uint64_t bytes_in = 0;   // request body bytes
  std::uint64_t bytes_out = 0;  // response body bytes
  double duration_ms = 0;
  double upstream_connect_ms = -1;     // < 0: not reached (written as null)
  double upstream_first_byte_ms = -1;  // < 0: not reached
};
void append_proxy_access_log(std::string& log, AccessLogFormat format, std::time_t second,
                             const ProxyLogEntry& entry);

// Writes `log` to `fd` and clears it. A log that cannot be written is
// dropped: the log never blocks serving.
void flush_access_log(int fd, std::string& log) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
