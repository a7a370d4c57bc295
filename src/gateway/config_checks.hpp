// gateway/config_checks.hpp — the rules GatewayConfig's values obey, shared by
// the YAML loader (which reports them at a line and column) and validate()
// (which reports them at a field path), so a file and a config built in code
// pass the same checks.
// Thread-safety: pure functions; the checks share nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "portico/gateway_config.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// An HTTP token (RFC 9110 §5.6.2): a method or a field name.
bool is_http_token(std::string_view text) noexcept;
// Field-value bytes (RFC 9110 §5.5): no CR, LF or NUL.
bool is_field_value(std::string_view text) noexcept;
// A DNS name as a Host can carry it ("api.example.com", "localhost").
bool is_host_name(std::string_view text) noexcept;
// A route's `hosts` entry: a host name, or "*." and a host name.
bool is_host_pattern(std::string_view text) noexcept;
// An IPv4 or IPv6 literal (no brackets).
bool is_ip_literal(std::string_view text) noexcept;

// An endpoint address split: "host:port" or "[v6]:port". nullopt when the
// shape is wrong or the port is not 1-65535; `bracketed` says the host was an
// IPv6 literal in brackets.
struct EndpointAddress {
  std::string_view host;
  std::uint16_t port = 0;
  bool bracketed = false;
};
std::optional<EndpointAddress> split_endpoint_address(std::string_view address) noexcept;
// Why `address` is not an endpoint address, or empty when it is one (a name
// counts: it is resolved, not checked, here).
std::string endpoint_address_problem(std::string_view address);

// "client_ip", "path" or "header:NAME".
std::optional<HashOn> parse_hash_on(std::string_view text);

// A duration: an integer and ms, s, m or h; "0" alone when `zero_allowed`.
// Returns why not in `problem` when it is not one.
std::optional<ConfigDuration> parse_duration(std::string_view text, bool zero_allowed,
                                             std::string& problem);

// The retry_on names: connect_failure, reset, timeout, 502, 503, 504.
std::optional<RetryOn> parse_retry_on(std::string_view text) noexcept;

// Where a reference or route check failed, for the loader to turn into a
// line and column and validate() into a field path.
struct ReferenceSite {
  enum class Field : std::uint8_t { kPath, kCluster, kSplitCluster, kCanaryCluster };
  std::size_t route = 0;
  Field field = Field::kPath;
  std::size_t index = 0;   // the split or canary entry
  std::size_t offset = 0;  // kPath: the byte of the pattern at fault
};

class ReferenceSink {
 public:
  virtual void error(const ReferenceSite& site, std::string message) = 0;

 protected:
  ~ReferenceSink() = default;
};

// Clusters named by routes, splits and canaries exist; every route's pattern
// goes into a router table per Host (as the gateway will build them), and
// the router's errors (bad patterns, conflicts) are reported at the path.
void check_references(const GatewayConfig& config, ReferenceSink& sink);

}  // namespace detail
}  // namespace v0
}  // namespace portico
