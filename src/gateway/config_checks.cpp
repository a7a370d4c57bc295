#include "gateway/config_checks.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "portico/router.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_label_char(unsigned char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '_';
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

}  // namespace

bool is_http_token(std::string_view text) noexcept {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool is_field_value(std::string_view text) noexcept {
  for (const char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool is_host_name(std::string_view text) noexcept {
  if (text.empty() || text.size() > 253) return false;
  std::size_t label = 0;
  for (const char c : text) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (is_label_char(static_cast<unsigned char>(c)) && ++label <= 63) {
      continue;
    } else {
      return false;
    }
  }
  return label != 0;
}

bool is_host_pattern(std::string_view text) noexcept {
  if (text.starts_with("*.")) text.remove_prefix(2);
  return is_host_name(text) || is_ip_literal(text);
}

bool is_ip_literal(std::string_view text) noexcept {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char buffer[INET6_ADDRSTRLEN];
  text.copy(buffer, text.size());
  buffer[text.size()] = '\0';
  unsigned char out[16];
  return inet_pton(AF_INET, buffer, out) == 1 || inet_pton(AF_INET6, buffer, out) == 1;
}

std::optional<EndpointAddress> split_endpoint_address(std::string_view address) noexcept {
  EndpointAddress out;
  std::string_view port;
  if (address.starts_with('[')) {
    const std::size_t close = address.find(']');
    if (close == std::string_view::npos || address.substr(close + 1, 1) != ":") return std::nullopt;
    out.host = address.substr(1, close - 1);
    out.bracketed = true;
    port = address.substr(close + 2);
  } else {
    const std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    out.host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port[0] == '0' || ec != std::errc{} || end != port.data() + port.size() ||
      value == 0 || value > 65535 || out.host.empty()) {
    return std::nullopt;
  }
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

std::string endpoint_address_problem(std::string_view address) {
  const auto split = split_endpoint_address(address);
  if (!split) {
    return "endpoint address " + quoted(address) +
           " is not host:port or [IPv6]:port (port 1-65535)";
  }
  if (split->bracketed) {
    char buffer[INET6_ADDRSTRLEN];
    unsigned char out[16];
    if (split->host.size() >= sizeof buffer)
      return "endpoint address " + quoted(address) + ": not an IPv6 address in brackets";
    split->host.copy(buffer, split->host.size());
    buffer[split->host.size()] = '\0';
    if (inet_pton(AF_INET6, buffer, out) != 1) {
      return "endpoint address " + quoted(address) + ": not an IPv6 address in brackets";
    }
    return {};
  }
  if (!is_ip_literal(split->host) && !is_host_name(split->host)) {
    return "endpoint address " + quoted(address) + ": " + quoted(split->host) +
           " is neither an IPv4 address nor a host name (IPv6 goes in brackets)";
  }
  return {};
}

std::optional<HashOn> parse_hash_on(std::string_view text) {
  if (text == "client_ip") return HashOn{HashOn::Kind::kClientIp, {}};
  if (text == "path") return HashOn{HashOn::Kind::kPath, {}};
  if (text.starts_with("header:") && is_http_token(text.substr(7))) {
    return HashOn{HashOn::Kind::kHeader, std::string(text.substr(7))};
  }
  return std::nullopt;
}

std::optional<ConfigDuration> parse_duration(std::string_view text, bool zero_allowed,
                                             std::string& problem) {
  if (text == "0") {
    if (zero_allowed) return ConfigDuration::zero();
    problem = "must be more than 0";
    return std::nullopt;
  }
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view unit = text.substr(digits);
  std::uint64_t scale = 0;
  if (unit == "ms") scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m") scale = 60'000;
  if (unit == "h") scale = 3'600'000;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  // A year in milliseconds fits easily; past that is a typo.
  constexpr std::uint64_t kMaxMilliseconds = 366ull * 24 * 3'600'000;
  if (digits == 0 || scale == 0 || ec != std::errc{} || end != text.data() + digits) {
    problem = "expected a duration: an integer and ms, s, m or h (250ms, 5s, 2m, 1h)" +
              std::string(zero_allowed ? ", or 0" : "");
    return std::nullopt;
  }
  if (value > kMaxMilliseconds / scale) {
    problem = "duration longer than a year";
    return std::nullopt;
  }
  if (value == 0) {
    problem = zero_allowed ? "write 0 alone to disable" : "must be more than 0";
    return std::nullopt;
  }
  return ConfigDuration(static_cast<ConfigDuration::rep>(value * scale));
}

std::optional<RetryOn> parse_retry_on(std::string_view text) noexcept {
  if (text == "connect_failure") return RetryOn::kConnectFailure;
  if (text == "reset") return RetryOn::kReset;
  if (text == "timeout") return RetryOn::kTimeout;
  if (text == "502") return RetryOn::k502;
  if (text == "503") return RetryOn::k503;
  if (text == "504") return RetryOn::k504;
  return std::nullopt;
}

void check_references(const GatewayConfig& config, ReferenceSink& sink) {
  std::unordered_set<std::string_view> clusters;
  clusters.reserve(config.clusters.size());
  for (const Cluster& cluster : config.clusters) clusters.insert(cluster.name);
  const auto missing = [&](std::string_view name) { return "no cluster named " + quoted(name); };

  // One table per Host a route can be chosen by, as the gateway routes: a
  // route with hosts [a, b] is in a's table and b's; one without hosts is in
  // the table for any Host. Tables for other hosts never conflict.
  std::unordered_map<std::string, Router<std::uint32_t>> tables;
  Router<std::uint32_t>& any_host = tables[std::string()];
  any_host.reserve(config.routes.size());
  std::string host_key;
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const Route& route = config.routes[i];
    using Field = ReferenceSite::Field;
    if (!route.cluster.empty() && !clusters.contains(route.cluster)) {
      sink.error({i, Field::kCluster, 0, 0}, missing(route.cluster));
    }
    for (std::size_t s = 0; s < route.split.size(); ++s) {
      if (!clusters.contains(route.split[s].cluster)) {
        sink.error({i, Field::kSplitCluster, s, 0}, missing(route.split[s].cluster));
      }
    }
    const std::vector<CanaryRule>& canary = route.options.value_or_default().canary;
    for (std::size_t c = 0; c < canary.size(); ++c) {
      if (!clusters.contains(canary[c].cluster)) {
        sink.error({i, Field::kCanaryCluster, c, 0}, missing(canary[c].cluster));
      }
    }

    const auto add_to = [&](Router<std::uint32_t>& table) {
      const auto handler = static_cast<std::uint32_t>(i);
      if (route.methods.empty()) {
        if (RouteError error = table.add_any(route.path, handler)) {
          sink.error({i, Field::kPath, 0, error.position()}, error.message());
        }
        return;
      }
      for (const std::string& method : route.methods) {
        if (RouteError error = table.add(method, route.path, handler)) {
          // A method that is no token is the value checks' to report.
          if (error.code() == make_error_code(RouteErrc::kBadMethod)) continue;
          // One error per route (a bad pattern fails every method alike), at
          // its path: the route's line.
          sink.error({i, Field::kPath, 0, error.position()}, error.message());
          return;
        }
      }
    };
    if (route.path.empty()) continue;  // reported where the path is checked
    if (route.hosts.empty()) {
      add_to(any_host);
    } else {
      for (const std::string& host : route.hosts) {
        // Host names compare without case.
        host_key.assign(host);
        for (char& c : host_key) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        add_to(tables[host_key]);
      }
    }
  }
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
