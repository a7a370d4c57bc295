// portico/gateway_config.hpp — the gateway's configuration as plain data
// (GatewayConfig, every key of GATEWAY.md's "Configuration file" with its
// default), the strict YAML loader and validate().
// Thread-safety: a GatewayConfig is a value; a const one may be read from any
// number of threads. load()/parse() share nothing between calls.
// Lifetimes: everything is owned; no view outlives its GatewayConfig.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico {
inline namespace v0 {

// Durations are whole milliseconds: the file's smallest unit is `ms`.
using ConfigDuration = std::chrono::milliseconds;

// ---- top-level blocks -------------------------------------------------------

struct ListenConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port
  unsigned threads = 1;       // 0: one per CPU
};

struct AdminConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9901;
};

// Downstream limits and timeouts (`server:`). A zero timeout disables it.
struct ServerLimits {
  std::size_t max_request_line = 8192;
  std::size_t max_header_bytes = 65536;
  std::size_t max_header_count = 100;
  std::size_t max_body_bytes = 0;  // 0: no limit
  std::size_t max_connections = 65536;
  std::size_t max_requests_per_connection = 0;  // 0: unlimited
  ConfigDuration header_timeout = std::chrono::seconds(10);
  ConfigDuration body_timeout = std::chrono::seconds(30);
  ConfigDuration idle_timeout = std::chrono::seconds(60);
  ConfigDuration write_timeout = std::chrono::seconds(30);
  ConfigDuration shutdown_timeout = std::chrono::seconds(10);
};

// An address block from `trusted_proxies` ("10.0.0.0/8", "fd00::/8"; a bare
// address is a /32 or /128). Host bits are zero.
struct Cidr {
  std::array<std::uint8_t, 16> address{};  // network order; v4 uses the first 4
  std::uint8_t prefix_length = 0;
  bool v6 = false;

  // "10.0.0.0/8" and the like; nullopt when malformed or when bits past the
  // prefix are set ("10.0.0.1/8").
  static std::optional<Cidr> parse(std::string_view text);
  // REQUIRES: `ip` is 4 bytes (IPv4) or 16 (IPv6), network order.
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 blocks.
  bool contains(std::span<const std::uint8_t> ip) const noexcept;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

struct AccessLogConfig {
  enum class Format : std::uint8_t { kNone, kCommon, kJson };
  Format format = Format::kNone;
  std::string path = "/dev/stdout";
};

// ---- clusters ---------------------------------------------------------------

struct Endpoint {
  // "IP:PORT" or "[IPv6]:PORT" once loaded: the loader resolves a DNS name
  // into one endpoint per address. A config built in code may hold a name;
  // validate() checks only its shape.
  std::string address;
  std::uint32_t weight = 1;  // 1-1000
  // The name this endpoint was resolved from, empty when written as an IP.
  std::string resolved_from;
};

enum class LoadBalancer : std::uint8_t { kRoundRobin, kLeastRequest, kRingHash, kMaglev, kRandom };

// What ring_hash and maglev hash: `client_ip`, `path` or `header:NAME`.
struct HashOn {
  enum class Kind : std::uint8_t { kClientIp, kHeader, kPath };
  Kind kind = Kind::kClientIp;
  std::string header;  // kHeader only
};

struct HealthCheck {
  std::string path = "/healthz";
  ConfigDuration interval = std::chrono::seconds(1);
  ConfigDuration timeout = std::chrono::milliseconds(500);
  unsigned healthy_threshold = 2;
  unsigned unhealthy_threshold = 2;
};

struct OutlierDetection {
  unsigned consecutive_5xx = 5;
  unsigned consecutive_connect_failures = 5;
  ConfigDuration base_ejection = std::chrono::seconds(30);
  ConfigDuration max_ejection = std::chrono::seconds(300);
  unsigned max_ejection_percent = 50;  // 0-100
};

struct ErrorRateBreaker {
  double threshold = 0.5;  // (0, 1]
  unsigned min_requests = 20;
  ConfigDuration window = std::chrono::seconds(10);
  ConfigDuration open_for = std::chrono::seconds(5);
};

// Its defaults apply when the block is absent.
struct CircuitBreaker {
  std::size_t max_connections = 1024;
  std::size_t max_requests = 1024;
  std::size_t max_pending = 256;
  std::size_t max_retries = 3;
  std::optional<ErrorRateBreaker> error_rate;  // absent: no error-rate breaker
};

// The conditions `retry_on` names, as bits.
enum class RetryOn : std::uint8_t {
  kConnectFailure = 1,
  kReset = 2,
  kTimeout = 4,
  k502 = 8,
  k503 = 16,
  k504 = 32,
};

struct RetryPolicy {
  static constexpr std::uint8_t kAllConditions = 63;
  unsigned attempts = 2;                          // retries after the first try
  std::uint8_t retry_on = kAllConditions;         // RetryOn bits
  std::optional<ConfigDuration> per_try_timeout;  // absent: only the route timeout
  std::size_t buffer_bytes = 65536;
  unsigned budget_percent = 20;  // 0-100
  unsigned min_concurrency = 3;

  bool retries_on(RetryOn condition) const noexcept {
    return (retry_on & static_cast<std::uint8_t>(condition)) != 0;
  }
};

struct Cluster {
  std::string name;
  std::vector<Endpoint> endpoints;  // at least one
  LoadBalancer lb = LoadBalancer::kRoundRobin;
  HashOn hash_on;
  ConfigDuration connect_timeout = std::chrono::seconds(1);
  ConfigDuration idle_timeout = std::chrono::seconds(60);
  std::size_t max_idle_per_endpoint = 64;
  std::optional<HealthCheck> health_check;            // absent: no active checks
  std::optional<OutlierDetection> outlier_detection;  // absent: no passive ejection
  CircuitBreaker circuit_breaker;
  std::optional<RetryPolicy> retry;  // absent: no retries
};

// ---- routes -----------------------------------------------------------------

struct WeightedCluster {
  std::string cluster;
  std::uint32_t weight = 1;  // 1-1000
};

struct DirectResponse {
  unsigned status = 200;  // 200-599
  std::string body;
  std::string content_type = "text/plain";
};

struct CanaryRule {
  std::string header;
  std::string value;  // exact, case-sensitive
  std::string cluster;
};

struct HeaderRewrite {
  std::vector<std::pair<std::string, std::string>> add;  // sets, replacing
  std::vector<std::string> remove;                       // drops every field of the name
};

// What a route does besides choosing where to go. Most routes of a big table
// set none of it, so a Route keeps it out of line (see Route::options).
struct RouteExtras {
  std::vector<CanaryRule> canary;    // tried first, in order
  std::string strip_prefix;          // empty: none
  std::string host_rewrite;          // empty: the client's Host
  std::optional<RetryPolicy> retry;  // replaces the cluster's
  HeaderRewrite request_headers;
  HeaderRewrite response_headers;
  std::optional<DirectResponse> respond;  // see Route::respond()
};

// An optional T held out of line, copied deeply: a value type whose empty
// state costs one pointer.
template <class T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(const Boxed& other) : value_(other.value_ ? std::make_unique<T>(*other.value_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& other) {
    if (this != &other) value_ = other.value_ ? std::make_unique<T>(*other.value_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  ~Boxed() = default;

  explicit operator bool() const noexcept { return value_ != nullptr; }
  // The value, made (default) first when there is none.
  T& emplace() {
    if (!value_) value_ = std::make_unique<T>();
    return *value_;
  }
  // REQUIRES: *this holds a value.
  T& operator*() noexcept { return *value_; }
  const T& operator*() const noexcept { return *value_; }
  T* operator->() noexcept { return value_.get(); }
  const T* operator->() const noexcept { return value_.get(); }
  T* get() noexcept { return value_.get(); }
  const T* get() const noexcept { return value_.get(); }
  // The value, or a default T when there is none.
  const T& value_or_default() const noexcept {
    static const T kDefault{};
    return value_ ? *value_ : kDefault;
  }

 private:
  std::unique_ptr<T> value_;
};

struct Route {
  std::string path;                  // a router pattern
  std::vector<std::string> hosts;    // empty: any Host; "*.example.com" wildcards
  std::vector<std::string> methods;  // empty: any method
  // Exactly one of cluster, split and respond (in options).
  std::string cluster;
  std::vector<WeightedCluster> split;
  ConfigDuration timeout = std::chrono::seconds(15);  // 0: none
  Boxed<RouteExtras> options;                        // empty: every option at its default

  // The route's direct answer, or null when it forwards.
  const DirectResponse* respond() const noexcept {
    const RouteExtras* set = options.get();
    if (set == nullptr || !set->respond.has_value()) return nullptr;
    return &set->respond.value();
  }
};

// ---- diagnostics ------------------------------------------------------------

// One error or notice. `line` and `column` are 1-based; 0 when the message
// has no position (validate() of a config built in code), in which case
// `message` starts with where it is ("routes[3].cluster: ...").
struct ConfigDiagnostic {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string message;

  // "FILE:LINE:COLUMN: message", or the message alone without a position.
  std::string to_string() const;
  friend bool operator==(const ConfigDiagnostic&, const ConfigDiagnostic&) = default;
};

struct ConfigResult;

// ---- the configuration ------------------------------------------------------

struct GatewayConfig {
  ListenConfig listen;
  std::optional<AdminConfig> admin;  // absent: no admin listener
  ServerLimits server;
  std::vector<Cidr> trusted_proxies;
  AccessLogConfig access_log;
  std::string via = "portico";    // "" sends no Via
  // Request and upstream metrics (ServerOptions::metrics). No key in the
  // file: portico-gateway turns them off with PORTICO_METRICS=off in its
  // environment, to measure what they cost.
  bool metrics = true;
  std::vector<Cluster> clusters;  // in file order; names unique
  std::vector<Route> routes;      // in file order

  // Reads and parses the file at `path`; names it `path` in diagnostics.
  static ConfigResult load(const std::string& path);
  // Parses `text` (YAML, or JSON, which is YAML); `name` is the FILE of
  // diagnostics. Resolves endpoint names (getaddrinfo, blocking) and makes
  // validate()'s checks, reporting them at their line and column.
  static ConfigResult parse(std::string_view text, std::string_view name);

  // The checks a config built in code needs as much as a file: values in
  // range, clusters named by routes and canaries exist, route patterns and
  // conflicts as the router takes them. Errors carry no position.
  std::vector<ConfigDiagnostic> validate() const;

  // The cluster called `name`, or null.
  const Cluster* find_cluster(std::string_view name) const noexcept;
};

// What load() and parse() return: the config when there is no error; every
// error otherwise, in file order. Notices (remarks that are not errors; none
// is made today, every key of GATEWAY.md being active) come either way.
struct ConfigResult {
  std::optional<GatewayConfig> config;  // set exactly when errors is empty
  std::vector<ConfigDiagnostic> errors;
  std::vector<ConfigDiagnostic> notices;

  bool ok() const noexcept { return errors.empty(); }
};

}  // namespace v0
}  // namespace portico
