#include "portico/gateway_config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "gateway/config_checks.hpp"
#include "gateway/config_loader.hpp"

namespace portico {
inline namespace v0 {

// ---- Cidr ---------------------------------------------------------------------

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  char buffer[INET6_ADDRSTRLEN];
  if (address.empty() || address.size() >= sizeof buffer) return std::nullopt;
  address.copy(buffer, address.size());
  buffer[address.size()] = '\0';
  Cidr out;
  if (inet_pton(AF_INET, buffer, out.address.data()) == 1) {
    out.v6 = false;
  } else if (inet_pton(AF_INET6, buffer, out.address.data()) == 1) {
    out.v6 = true;
  } else {
    return std::nullopt;
  }
  const unsigned bits = out.v6 ? 128 : 32;
  unsigned prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || (digits.size() > 1 && digits[0] == '0') || ec != std::errc{} ||
        end != digits.data() + digits.size() || prefix > bits) {
      return std::nullopt;
    }
  }
  out.prefix_length = static_cast<std::uint8_t>(prefix);
  // Bits past the prefix must be zero: "10.0.0.1/8" is a typo for one or the other.
  for (unsigned bit = prefix; bit < bits; ++bit) {
    if ((out.address[bit / 8] >> (7 - bit % 8)) & 1) return std::nullopt;
  }
  return out;
}

bool Cidr::contains(std::span<const std::uint8_t> ip) const noexcept {
  static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6 && ip.size() == 16 && std::memcmp(ip.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
    ip = ip.subspan(12);
  }
  if (ip.size() != (v6 ? 16u : 4u)) return false;
  const unsigned whole = prefix_length / 8;
  if (std::memcmp(ip.data(), address.data(), whole) != 0) return false;
  const unsigned rest = prefix_length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (ip[whole] & mask) == address[whole];
}

// ---- diagnostics --------------------------------------------------------------

std::string ConfigDiagnostic::to_string() const {
  if (line == 0) return file.empty() ? message : file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

// ---- loading ------------------------------------------------------------------

ConfigResult GatewayConfig::load(const std::string& path) {
  ConfigResult failed;
  const auto fail = [&](int error) {
    failed.errors.push_back({path, 0, 0, std::string("cannot read: ") + std::strerror(error)});
    return failed;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    const int error = S_ISREG(info.st_mode) ? errno : EINVAL;
    ::close(fd);
    return fail(error);
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  if (size == 0) {
    ::close(fd);
    return parse({}, path);
  }
  // Mapped, not copied: a big route file is parsed straight from the page
  // cache, pages present up front (MAP_POPULATE) rather than faulted one by one.
  void* bytes = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const int map_error = errno;
  ::close(fd);
  if (bytes == MAP_FAILED) return fail(map_error);
  ConfigResult result = parse(std::string_view(static_cast<const char*>(bytes), size), path);
  ::munmap(bytes, size);
  return result;
}

ConfigResult GatewayConfig::parse(std::string_view text, std::string_view name) {
  return detail::parse_gateway_config(text, name, detail::resolve_with_getaddrinfo);
}

const Cluster* GatewayConfig::find_cluster(std::string_view name) const noexcept {
  for (const Cluster& cluster : clusters) {
    if (cluster.name == name) return &cluster;
  }
  return nullptr;
}

// ---- validate() ----------------------------------------------------------------

namespace {

// Errors at a field path ("routes[3].cluster: ..."), for configs built in code.
class FieldErrors final : public detail::ReferenceSink {
 public:
  explicit FieldErrors(std::vector<ConfigDiagnostic>& out) : out_(out) {}

  void at(const std::string& where, std::string message) {
    out_.push_back({{}, 0, 0, where + ": " + std::move(message)});
  }
  void error(const detail::ReferenceSite& site, std::string message) override {
    std::string where = "routes[" + std::to_string(site.route) + "]";
    switch (site.field) {
      case detail::ReferenceSite::Field::kPath:
        where += ".path";
        break;
      case detail::ReferenceSite::Field::kCluster:
        where += ".cluster";
        break;
      case detail::ReferenceSite::Field::kSplitCluster:
        where += ".split[" + std::to_string(site.index) + "].cluster";
        break;
      case detail::ReferenceSite::Field::kCanaryCluster:
        where += ".canary[" + std::to_string(site.index) + "].cluster";
        break;
    }
    at(where, std::move(message));
  }

 private:
  std::vector<ConfigDiagnostic>& out_;
};

bool positive(ConfigDuration d) {
  return d > ConfigDuration::zero();
}
bool not_negative(ConfigDuration d) {
  return d >= ConfigDuration::zero();
}

void check_retry(FieldErrors& errors, const std::string& where, const RetryPolicy& retry) {
  if (retry.attempts > 10) errors.at(where + ".attempts", "must be from 0 to 10");
  if (retry.retry_on == 0 || (retry.retry_on & ~RetryPolicy::kAllConditions) != 0) {
    errors.at(where + ".retry_on", "name at least one condition, and only known ones");
  }
  if (retry.per_try_timeout && !positive(*retry.per_try_timeout)) {
    errors.at(where + ".per_try_timeout", "must be more than 0");
  }
  if (retry.budget_percent > 100) errors.at(where + ".budget_percent", "must be from 0 to 100");
}

void check_headers(FieldErrors& errors, const std::string& where, const HeaderRewrite& headers) {
  for (const auto& [name, value] : headers.add) {
    if (!detail::is_http_token(name))
      errors.at(where + ".add", "\"" + name + "\" is not a header name");
    if (!detail::is_field_value(value))
      errors.at(where + ".add." + name, "CR, LF or NUL in a header value");
  }
  for (const std::string& name : headers.remove) {
    if (!detail::is_http_token(name))
      errors.at(where + ".remove", "\"" + name + "\" is not a header name");
  }
}

void check_values(const GatewayConfig& config, FieldErrors& errors) {
  const auto check_host = [&](const std::string& where, const std::string& host) {
    if (!detail::is_ip_literal(host) && !detail::is_host_name(host)) {
      errors.at(where, "\"" + host + "\" is neither an IP address nor a host name");
    }
  };
  check_host("listen.host", config.listen.host);
  if (config.listen.threads > 1024) errors.at("listen.threads", "must be from 0 to 1024");
  if (config.admin) check_host("admin.host", config.admin->host);
  const ServerLimits& server = config.server;
  for (const auto& [name, value] : {std::pair{"header_timeout", server.header_timeout},
                                    {"body_timeout", server.body_timeout},
                                    {"idle_timeout", server.idle_timeout},
                                    {"write_timeout", server.write_timeout},
                                    {"shutdown_timeout", server.shutdown_timeout}}) {
    if (!not_negative(value)) errors.at(std::string("server.") + name, "must not be negative");
  }
  if (server.max_request_line < 16) errors.at("server.max_request_line", "must be at least 16");
  if (server.max_header_bytes < 16) errors.at("server.max_header_bytes", "must be at least 16");
  if (server.max_header_count == 0) errors.at("server.max_header_count", "must be at least 1");
  if (server.max_connections == 0) errors.at("server.max_connections", "must be at least 1");
  if (!config.via.empty() && !detail::is_http_token(config.via)) {
    errors.at("via", "must be an HTTP token or empty");
  }
  if (config.access_log.path.empty()) errors.at("access_log.path", "must not be empty");

  std::unordered_set<std::string_view> names;
  for (std::size_t c = 0; c < config.clusters.size(); ++c) {
    const Cluster& cluster = config.clusters[c];
    const std::string where = "clusters[" + std::to_string(c) + "]";
    if (cluster.name.empty()) errors.at(where + ".name", "must not be empty");
    if (!names.insert(cluster.name).second) {
      errors.at(where + ".name", "a second cluster named \"" + cluster.name + "\"");
    }
    if (cluster.endpoints.empty())
      errors.at(where + ".endpoints", "a cluster needs at least one endpoint");
    for (std::size_t e = 0; e < cluster.endpoints.size(); ++e) {
      const Endpoint& endpoint = cluster.endpoints[e];
      const std::string at = where + ".endpoints[" + std::to_string(e) + "]";
      if (std::string problem = detail::endpoint_address_problem(endpoint.address);
          !problem.empty()) {
        errors.at(at + ".address", problem);
      }
      if (endpoint.weight < 1 || endpoint.weight > 1000)
        errors.at(at + ".weight", "must be from 1 to 1000");
    }
    if (cluster.hash_on.kind == HashOn::Kind::kHeader &&
        !detail::is_http_token(cluster.hash_on.header)) {
      errors.at(where + ".hash_on", "header:NAME needs a header name");
    }
    if (!positive(cluster.connect_timeout))
      errors.at(where + ".connect_timeout", "must be more than 0");
    if (!positive(cluster.idle_timeout)) errors.at(where + ".idle_timeout", "must be more than 0");
    if (const auto& hc = cluster.health_check) {
      if (!hc->path.starts_with('/'))
        errors.at(where + ".health_check.path", "must start with '/'");
      if (!positive(hc->interval) || !positive(hc->timeout)) {
        errors.at(where + ".health_check", "interval and timeout must be more than 0");
      }
      if (hc->healthy_threshold < 1 || hc->unhealthy_threshold < 1) {
        errors.at(where + ".health_check", "thresholds must be at least 1");
      }
    }
    if (const auto& od = cluster.outlier_detection) {
      if (!positive(od->base_ejection) || od->max_ejection < od->base_ejection) {
        errors.at(where + ".outlier_detection",
                  "base_ejection must be more than 0 and at most max_ejection");
      }
      if (od->max_ejection_percent > 100) {
        errors.at(where + ".outlier_detection.max_ejection_percent", "must be from 0 to 100");
      }
    }
    const CircuitBreaker& breaker = cluster.circuit_breaker;
    if (breaker.max_connections == 0 || breaker.max_requests == 0) {
      errors.at(where + ".circuit_breaker", "max_connections and max_requests must be at least 1");
    }
    if (const auto& rate = breaker.error_rate) {
      if (!(rate->threshold > 0 && rate->threshold <= 1)) {
        errors.at(where + ".circuit_breaker.error_rate.threshold", "must be above 0 and at most 1");
      }
      if (rate->min_requests == 0 || !positive(rate->window) || !positive(rate->open_for)) {
        errors.at(where + ".circuit_breaker.error_rate",
                  "min_requests, window and open_for must be more than 0");
      }
    }
    if (cluster.retry) check_retry(errors, where + ".retry", *cluster.retry);
  }

  for (std::size_t r = 0; r < config.routes.size(); ++r) {
    const Route& route = config.routes[r];
    const std::string where = "routes[" + std::to_string(r) + "]";
    if (route.path.empty()) errors.at(where + ".path", "required");
    for (const std::string& host : route.hosts) {
      if (!detail::is_host_pattern(host))
        errors.at(where + ".hosts", "\"" + host + "\" is not a host name or \"*.\" wildcard");
    }
    for (const std::string& method : route.methods) {
      if (!detail::is_http_token(method))
        errors.at(where + ".methods", "\"" + method + "\" is not an HTTP token");
    }
    const RouteExtras& options = route.options.value_or_default();
    const int targets =
        (route.cluster.empty() ? 0 : 1) + (route.split.empty() ? 0 : 1) + (options.respond ? 1 : 0);
    if (targets != 1) errors.at(where, "a route takes exactly one of cluster, split or respond");
    for (std::size_t s = 0; s < route.split.size(); ++s) {
      if (route.split[s].weight < 1 || route.split[s].weight > 1000) {
        errors.at(where + ".split[" + std::to_string(s) + "].weight", "must be from 1 to 1000");
      }
    }
    if (options.respond && (options.respond->status < 200 || options.respond->status > 599)) {
      errors.at(where + ".respond.status", "must be from 200 to 599");
    }
    for (std::size_t c = 0; c < options.canary.size(); ++c) {
      const CanaryRule& rule = options.canary[c];
      if (!detail::is_http_token(rule.header) || !detail::is_field_value(rule.value)) {
        errors.at(where + ".canary[" + std::to_string(c) + "]",
                  "needs a header name and a header value");
      }
    }
    if (!options.strip_prefix.empty() && !options.strip_prefix.starts_with('/')) {
      errors.at(where + ".strip_prefix", "must start with '/'");
    }
    if (!not_negative(route.timeout)) errors.at(where + ".timeout", "must not be negative");
    if (options.retry) check_retry(errors, where + ".retry", *options.retry);
    check_headers(errors, where + ".request_headers", options.request_headers);
    check_headers(errors, where + ".response_headers", options.response_headers);
  }
}

}  // namespace

std::vector<ConfigDiagnostic> GatewayConfig::validate() const {
  std::vector<ConfigDiagnostic> out;
  FieldErrors errors(out);
  check_values(*this, errors);
  detail::check_references(*this, errors);
  return out;
}

}  // namespace v0
}  // namespace portico
