// server/access_log.cpp — access log lines and their flush (see
// access_log.hpp).
#include "server/access_log.hpp"

#include <fmt/format.h>
#include <sys/types.h>
#include <time.h>

#include <iterator>
#include <string_view>

#include "portico/detail/syscalls.hpp"

using namespace std::string_view_literals;  // literals appended with their length known

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", byte);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

void append_access_log(std::string& log, AccessLogFormat format, std::time_t second,
                       const Request& request, int status, std::size_t body_bytes) {
  char when[64];
  std::tm tm{};
  gmtime_r(&second, &tm);
  std::string_view peer = request.remote_address();
  if (format == AccessLogFormat::kCommon) {
    const std::size_t n = std::strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    fmt::format_to(std::back_inserter(log), "{} - - [{}] \"{} {} HTTP/1.{}\" {} {}\n",
                   peer.substr(0, peer.rfind(':')), std::string_view(when, n),
                   request.method_name(), request.target(), request.version_minor(), status,
                   body_bytes);
  } else {
    const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log.append("{\"time\":\""sv);
    log.append(when, n);
    log.append("\",\"remote\":"sv);
    append_json_string(log, peer);
    log.append(",\"method\":"sv);
    append_json_string(log, request.method_name());
    log.append(",\"target\":"sv);
    append_json_string(log, request.target());
    fmt::format_to(std::back_inserter(log), ",\"status\":{},\"bytes\":{}}}\n", status, body_bytes);
  }
}

void append_proxy_access_log(std::string& log, AccessLogFormat format, std::time_t second,
                             const ProxyLogEntry& entry) {
  char when[64];
  std::tm tm{};
  gmtime_r(&second, &tm);
  if (format == AccessLogFormat::kCommon) {
    const std::size_t n = std::strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    fmt::format_to(std::back_inserter(log), "{} - - [{}] \"{} {} HTTP/1.1\" {} {}\n", entry.client,
                   std::string_view(when, n), entry.method, entry.path, entry.status,
                   entry.bytes_out);
    return;
  }
  const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const auto field = [&log](std::string_view name, std::string_view value) {
    log.append(",\""sv);
    log.append(name);
    log.append("\":"sv);
    append_json_string(log, value);
  };
  const auto milliseconds = [&log](std::string_view name, double value) {
    if (value < 0) {
      fmt::format_to(std::back_inserter(log), ",\"{}\":null", name);
    } else {
      fmt::format_to(std::back_inserter(log), ",\"{}\":{:.3f}", name, value);
    }
  };
  log.append("{\"time\":\""sv);
  log.append(when, n);
  log.push_back('"');
  field("request_id", entry.request_id);
  field("trace_id", entry.trace_id);
  field("client", entry.client);
  field("method", entry.method);
  field("path", entry.path);
  field("route", entry.route);
  fmt::format_to(std::back_inserter(log), ",\"status\":{}", entry.status);
  field("error", entry.error);
  field("cluster", entry.cluster);
  field("upstream", entry.upstream);
  fmt::format_to(std::back_inserter(log),
                 ",\"retries\":{},\"fallback\":{},\"bytes_in\":{},\"bytes_out\":{}",
                 entry.retries, entry.fallback, entry.bytes_in, entry.bytes_out);
  milliseconds("duration_ms", entry.duration_ms);
  milliseconds("upstream_connect_ms", entry.upstream_connect_ms);
  milliseconds("upstream_first_byte_ms", entry.upstream_first_byte_ms);
  log.append("}\n"sv);
}

void flush_access_log(int fd, std::string& log) noexcept {
  std::size_t done = 0;
  while (done < log.size()) {
    const ssize_t n = sys::write(fd, log.data() + done, log.size() - done);
    if (n <= 0) break;  // a log that cannot be written is dropped, never blocks serving
    done += static_cast<std::size_t>(n);
  }
  log.clear();
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
