// server/access_log.hpp (internal) — the access log: one line per response,
// in the common log format or as JSON, gathered in a reactor's string and
// written once per loop iteration.
// Thread-safety: each reactor formats into and flushes its own string.
#pragma once

#include <cstddef>
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
// Writes `log` to `fd` and clears it. A log that cannot be written is
// dropped: the log never blocks serving.
void flush_access_log(int fd, std::string& log) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
