#include "gateway/config_loader.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "gateway/config_checks.hpp"
#include "gateway/yaml_tree.hpp"
#include "portico/router.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

using Kind = YamlNode::Kind;

// Where the values validate() cross-checks came from, per route.
struct RouteMarks {
  YamlMark path;
  YamlMark cluster;
  std::uint32_t first_split = 0;   // in Decoder::split_marks_
  std::uint32_t first_canary = 0;  // in Decoder::canary_marks_
  bool path_plain = false;
};

constexpr std::uint64_t kMillion = 1'000'000;

std::string format_duration(ConfigDuration d) {
  const auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}
constexpr std::uint64_t kMaxSize = std::uint64_t{1} << 62;

// Decodes the tree into `config`. It is also the tree's ItemSink for
// `routes`, decoding each route as the parser completes it.
class Decoder final : public ReferenceSink, public ItemSink {
 public:
  Decoder(const YamlTree& tree, std::string_view file, GatewayConfig& config, ConfigResult& out,
          EndpointResolver resolve, std::size_t text_size)
      : tree_(tree),
        file_(file),
        config_(config),
        out_(out),
        resolve_(resolve),
        text_size_(text_size) {}

  // Everything but the streamed routes, once the tree is complete.
  void decode();
  void error(const ReferenceSite& site, std::string message) override;
  bool wants(std::string_view top_level_key) override;
  void item(const YamlTree& tree, const YamlNode& item) override;

 private:
  // ---- diagnostics ----
  void error(YamlMark mark, std::string message) {
    out_.errors.push_back({std::string(file_), mark.line, mark.column, std::move(message)});
  }
  std::string describe(const YamlNode& node) const {
    if (node.kind == Kind::kMapping) return "a mapping";
    if (node.kind == Kind::kSequence) return "a list";
    if (tree_.is_null(node)) return "nothing";
    std::string text(tree_.text(node).substr(0, 40));
    return node.plain ? "\"" + text + "\"" : "the quoted string \"" + text + "\"";
  }
  void wrong_type(std::string_view key, const YamlNode& node, std::string_view expected) {
    error(node.mark,
          std::string(key) + ": expected " + std::string(expected) + ", got " + describe(node));
  }

  // ---- shapes ----
  // Calls on(key, key_node, value) for every pair of `map`; reports unknown
  // keys (naming the known ones) and duplicates. False if `map` is not a
  // mapping (reported).
  template <std::size_t N, class OnField>
  bool fields(std::string_view what, const YamlNode& map,
              const std::array<std::string_view, N>& known, OnField&& on);
  bool is_mapping(std::string_view key, const YamlNode& node) {
    if (node.kind == Kind::kMapping) return true;
    wrong_type(key, node, "a mapping");
    return false;
  }
  bool is_list(std::string_view key, const YamlNode& node) {
    if (node.kind == Kind::kSequence) return true;
    wrong_type(key, node, "a list");
    return false;
  }
  template <class OnItem>
  void items(std::string_view key, const YamlNode& list, OnItem&& on) {
    if (!is_list(key, list)) return;
    std::size_t index = 0;
    for (const std::uint32_t child : tree_.children(list)) on(index++, tree_.node(child));
  }
  void missing(const YamlNode& map, std::string_view key) {
    error(map.mark, "missing required key \"" + std::string(key) + "\"");
  }

  // ---- values ----
  bool string_value(std::string_view key, const YamlNode& node, std::string& out) {
    if (node.kind != Kind::kScalar || tree_.is_null(node)) {
      wrong_type(key, node, "a string");
      return false;
    }
    out.assign(tree_.text(node));
    return true;
  }
  template <class T>
  bool integer(std::string_view key, const YamlNode& node, std::uint64_t min, std::uint64_t max,
               T& out);
  bool duration(std::string_view key, const YamlNode& node, bool zero_allowed, ConfigDuration& out);
  void string_list(std::string_view key, const YamlNode& node, std::vector<std::string>& out,
                   bool (*valid)(std::string_view) noexcept, std::string_view expected);

  // ---- blocks ----
  void listen(const YamlNode& node, ListenConfig& out);
  void admin(const YamlNode& node, AdminConfig& out);
  void server(const YamlNode& node, ServerLimits& out);
  void trusted_proxies(const YamlNode& node, std::vector<Cidr>& out);
  void access_log(const YamlNode& node, AccessLogConfig& out);
  void clusters(const YamlNode& node, std::vector<Cluster>& out);
  void cluster(const YamlNode& node, Cluster& out);
  void endpoints(const YamlNode& node, std::vector<Endpoint>& out);
  void health_check(const YamlNode& node, HealthCheck& out);
  void outlier_detection(const YamlNode& node, OutlierDetection& out);
  void circuit_breaker(const YamlNode& node, CircuitBreaker& out);
  void error_rate(const YamlNode& node, ErrorRateBreaker& out);
  void retry(const YamlNode& node, RetryPolicy& out);
  void routes(const YamlNode& node, std::vector<Route>& out);
  void route(const YamlNode& node, Route& out, RouteMarks& marks);
  void respond(const YamlNode& node, DirectResponse& out);
  void headers(std::string_view key, const YamlNode& node, HeaderRewrite& out);

  const YamlTree& tree_;
  std::string_view file_;
  GatewayConfig& config_;
  ConfigResult& out_;
  EndpointResolver resolve_;
  std::size_t text_size_;
  bool routes_streamed_ = false;
  // Owned: the tree's text under a key is gone once its route is decoded.
  std::vector<RouteMarks> route_marks_;
  std::vector<YamlMark> split_marks_;
  std::vector<YamlMark> canary_marks_;
};

template <std::size_t N, class OnField>
bool Decoder::fields(std::string_view what, const YamlNode& map,
                     const std::array<std::string_view, N>& known, OnField&& on) {
  if (!is_mapping(what, map)) return false;
  const auto children = tree_.children(map);
  // Duplicates: pairwise for the small mappings a config is made of, a hash
  // map for big ones (a `clusters` block with thousands of names).
  constexpr std::size_t kPairwiseLimit = 16;
  std::unordered_map<std::string_view, YamlMark> seen;
  const std::size_t pairs = children.size() / 2;
  if (pairs > kPairwiseLimit) seen.reserve(pairs);
  for (std::size_t i = 0; i + 1 < children.size(); i += 2) {
    const YamlNode& key_node = tree_.node(children[i]);
    const YamlNode& value = tree_.node(children[i + 1]);
    if (key_node.kind != Kind::kScalar) continue;  // reported by the tree
    const std::string_view key = tree_.text(key_node);
    std::optional<YamlMark> first;
    if (pairs > kPairwiseLimit) {
      const auto [it, inserted] = seen.try_emplace(key, key_node.mark);
      if (!inserted) first = it->second;
    } else {
      for (std::size_t j = 0; j < i; j += 2) {
        const YamlNode& earlier = tree_.node(children[j]);
        if (earlier.kind == Kind::kScalar && tree_.text(earlier) == key) {
          first = earlier.mark;
          break;
        }
      }
    }
    if (first) {
      error(key_node.mark, "duplicate key \"" + std::string(key) + "\" (first at " +
                               std::to_string(first->line) + ":" + std::to_string(first->column) +
                               ")");
      continue;
    }
    if constexpr (N > 0) {
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string message =
            "unknown key \"" + std::string(key) + "\" in " + std::string(what) + " (expected ";
        for (std::size_t k = 0; k < N; ++k) {
          message += k == 0 ? "" : (k + 1 == N ? " or " : ", ");
          message += known[k];
        }
        error(key_node.mark, message + ")");
        continue;
      }
    }
    on(key, key_node, value);
  }
  return true;
}

template <class T>
bool Decoder::integer(std::string_view key, const YamlNode& node, std::uint64_t min,
                      std::uint64_t max, T& out) {
  const auto expected = [&] {
    return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  };
  if (node.kind != Kind::kScalar || !node.plain || tree_.is_null(node)) {
    wrong_type(key, node, expected());
    return false;
  }
  const std::string_view text = tree_.text(node);
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // No sign, no leading zero (YAML 1.1 would read 010 as octal).
  const bool digits_only =
      !text.empty() && text[0] >= '0' && text[0] <= '9' && !(text.size() > 1 && text[0] == '0');
  if (!digits_only || ec != std::errc{} || end != text.data() + text.size() || value < min ||
      value > max) {
    wrong_type(key, node, expected());
    return false;
  }
  out = static_cast<T>(value);
  return true;
}

bool Decoder::duration(std::string_view key, const YamlNode& node, bool zero_allowed,
                       ConfigDuration& out) {
  // Quoted too: JSON can write a duration only as a string.
  if (node.kind != Kind::kScalar || tree_.is_null(node)) {
    wrong_type(
        key, node,
        zero_allowed ? "a duration (250ms, 5s, 2m, 1h) or 0" : "a duration (250ms, 5s, 2m, 1h)");
    return false;
  }
  std::string problem;
  const auto value = parse_duration(tree_.text(node), zero_allowed, problem);
  if (!value) {
    error(node.mark, std::string(key) + ": " + problem + ", got " + describe(node));
    return false;
  }
  out = *value;
  return true;
}

void Decoder::string_list(std::string_view key, const YamlNode& node, std::vector<std::string>& out,
                          bool (*valid)(std::string_view) noexcept, std::string_view expected) {
  items(key, node, [&](std::size_t, const YamlNode& item) {
    std::string value;
    if (!string_value(key, item, value)) return;
    if (!valid(value)) {
      wrong_type(key, item, expected);
      return;
    }
    out.push_back(std::move(value));
  });
}

// ---- top level ----------------------------------------------------------------

bool Decoder::wants(std::string_view top_level_key) {
  // The first `routes` only: a second is a duplicate key, reported as such.
  if (top_level_key != "routes" || routes_streamed_) return false;
  routes_streamed_ = true;
  // A route takes 30 bytes of YAML or more; reserved pages cost nothing
  // until used, and the vectors never regrow on the way.
  config_.routes.reserve(text_size_ / 30);
  route_marks_.reserve(text_size_ / 30);
  return true;
}

void Decoder::item(const YamlTree&, const YamlNode& node) {
  route(node, config_.routes.emplace_back(), route_marks_.emplace_back());
}

void Decoder::decode() {
  GatewayConfig& config = config_;
  const YamlNode& root = tree_.root();
  if (tree_.is_null(root)) return;  // an empty document: every default
  static constexpr std::array<std::string_view, 8> kKeys{
      "listen", "admin", "server", "trusted_proxies", "access_log", "via", "clusters", "routes"};
  fields("the top level", root, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           if (key == "listen") {
             listen(value, config.listen);
           } else if (key == "admin") {
             config.admin.emplace();
             admin(value, *config.admin);
           } else if (key == "server") {
             server(value, config.server);
           } else if (key == "trusted_proxies") {
             trusted_proxies(value, config.trusted_proxies);
           } else if (key == "access_log") {
             access_log(value, config.access_log);
           } else if (key == "via") {
             if (string_value(key, value, config.via) && !config.via.empty() &&
                 !is_http_token(config.via)) {
               wrong_type(key, value, "an HTTP token (a pseudonym like portico) or \"\"");
             }
           } else if (key == "clusters") {
             clusters(value, config.clusters);
           } else if (key == "routes" && !value.streamed) {
             routes(value, config.routes);
           }
         });
}

void Decoder::listen(const YamlNode& node, ListenConfig& out) {
  static constexpr std::array<std::string_view, 3> kKeys{"host", "port", "threads"};
  fields("listen", node, kKeys, [&](std::string_view key, const YamlNode&, const YamlNode& value) {
    if (key == "host") {
      if (string_value(key, value, out.host) && !is_ip_literal(out.host) &&
          !is_host_name(out.host)) {
        wrong_type(key, value, "an IP address or a host name");
      }
    } else if (key == "port") {
      integer(key, value, 0, 65535, out.port);
    } else {
      integer(key, value, 0, 1024, out.threads);
    }
  });
}

void Decoder::admin(const YamlNode& node, AdminConfig& out) {
  static constexpr std::array<std::string_view, 2> kKeys{"host", "port"};
  fields("admin", node, kKeys, [&](std::string_view key, const YamlNode&, const YamlNode& value) {
    if (key == "host") {
      if (string_value(key, value, out.host) && !is_ip_literal(out.host) &&
          !is_host_name(out.host)) {
        wrong_type(key, value, "an IP address or a host name");
      }
    } else {
      integer(key, value, 0, 65535, out.port);
    }
  });
}

void Decoder::server(const YamlNode& node, ServerLimits& out) {
  static constexpr std::array<std::string_view, 11> kKeys{
      "max_request_line", "max_header_bytes", "max_header_count",
      "max_body_bytes",   "max_connections",  "max_requests_per_connection",
      "header_timeout",   "body_timeout",     "idle_timeout",
      "write_timeout",    "shutdown_timeout"};
  fields("server", node, kKeys, [&](std::string_view key, const YamlNode&, const YamlNode& value) {
    constexpr std::uint64_t kMaxHead = std::uint64_t{1} << 30;
    if (key == "max_request_line")
      integer(key, value, 16, kMaxHead, out.max_request_line);
    else if (key == "max_header_bytes")
      integer(key, value, 16, kMaxHead, out.max_header_bytes);
    else if (key == "max_header_count")
      integer(key, value, 1, 65536, out.max_header_count);
    else if (key == "max_body_bytes")
      integer(key, value, 0, kMaxSize, out.max_body_bytes);
    else if (key == "max_connections")
      integer(key, value, 1, 16 * kMillion, out.max_connections);
    else if (key == "max_requests_per_connection")
      integer(key, value, 0, std::numeric_limits<std::uint32_t>::max(),
              out.max_requests_per_connection);
    else if (key == "header_timeout")
      duration(key, value, true, out.header_timeout);
    else if (key == "body_timeout")
      duration(key, value, true, out.body_timeout);
    else if (key == "idle_timeout")
      duration(key, value, true, out.idle_timeout);
    else if (key == "write_timeout")
      duration(key, value, true, out.write_timeout);
    else
      duration(key, value, true, out.shutdown_timeout);
  });
}

void Decoder::trusted_proxies(const YamlNode& node, std::vector<Cidr>& out) {
  items("trusted_proxies", node, [&](std::size_t, const YamlNode& item) {
    std::string text;
    if (!string_value("trusted_proxies", item, text)) return;
    if (auto cidr = Cidr::parse(text)) {
      out.push_back(*cidr);
    } else {
      error(item.mark, "trusted_proxies: \"" + text +
                           "\" is not an address block (10.0.0.0/8, fd00::/8, 192.0.2.7) "
                           "with the bits past its prefix zero");
    }
  });
}

void Decoder::access_log(const YamlNode& node, AccessLogConfig& out) {
  static constexpr std::array<std::string_view, 2> kKeys{"format", "path"};
  fields("access_log", node, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           std::string text;
           if (!string_value(key, value, text)) return;
           if (key == "path") {
             if (text.empty()) wrong_type(key, value, "a file path");
             out.path = std::move(text);
           } else if (text == "none") {
             out.format = AccessLogConfig::Format::kNone;
           } else if (text == "common") {
             out.format = AccessLogConfig::Format::kCommon;
           } else if (text == "json") {
             out.format = AccessLogConfig::Format::kJson;
           } else {
             wrong_type(key, value, "none, common or json");
           }
         });
}

// ---- clusters -----------------------------------------------------------------

void Decoder::clusters(const YamlNode& node, std::vector<Cluster>& out) {
  static constexpr std::array<std::string_view, 0> kAnyName{};
  fields("clusters", node, kAnyName,
         [&](std::string_view name, const YamlNode& key, const YamlNode& value) {
           const bool valid_name =
               !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                        (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
               });
           if (!valid_name) {
             error(key.mark, "cluster name \"" + std::string(name) +
                                 "\": use letters, digits, '-', '_' and '.'");
           }
           Cluster& cluster_out = out.emplace_back();
           cluster_out.name.assign(name);
           cluster(value, cluster_out);
         });
}

void Decoder::cluster(const YamlNode& node, Cluster& out) {
  static constexpr std::array<std::string_view, 10> kKeys{
      "endpoints",       "lb",
      "hash_on",         "connect_timeout",
      "idle_timeout",    "max_idle_per_endpoint",
      "health_check",    "outlier_detection",
      "circuit_breaker", "retry"};
  bool have_endpoints = false;
  const bool mapping = fields(
      "a cluster", node, kKeys,
      [&](std::string_view key, const YamlNode&, const YamlNode& value) {
        if (key == "endpoints") {
          have_endpoints = true;
          endpoints(value, out.endpoints);
        } else if (key == "lb") {
          std::string text;
          if (!string_value(key, value, text)) return;
          if (text == "round_robin")
            out.lb = LoadBalancer::kRoundRobin;
          else if (text == "least_request")
            out.lb = LoadBalancer::kLeastRequest;
          else if (text == "ring_hash")
            out.lb = LoadBalancer::kRingHash;
          else if (text == "maglev")
            out.lb = LoadBalancer::kMaglev;
          else if (text == "random")
            out.lb = LoadBalancer::kRandom;
          else
            wrong_type(key, value, "round_robin, least_request, ring_hash, maglev or random");
        } else if (key == "hash_on") {
          std::string text;
          if (!string_value(key, value, text)) return;
          if (auto parsed = parse_hash_on(text)) {
            out.hash_on = std::move(*parsed);
          } else {
            wrong_type(key, value, "client_ip, path or header:NAME");
          }
        } else if (key == "connect_timeout") {
          duration(key, value, false, out.connect_timeout);
        } else if (key == "idle_timeout") {
          duration(key, value, false, out.idle_timeout);
        } else if (key == "max_idle_per_endpoint") {
          integer(key, value, 0, kMillion, out.max_idle_per_endpoint);
        } else if (key == "health_check") {
          health_check(value, out.health_check.emplace());
        } else if (key == "outlier_detection") {
          outlier_detection(value, out.outlier_detection.emplace());
        } else if (key == "circuit_breaker") {
          circuit_breaker(value, out.circuit_breaker);
        } else {
          retry(value, out.retry.emplace());
        }
      });
  if (!mapping) return;
  if (!have_endpoints) missing(node, "endpoints");
}

void Decoder::endpoints(const YamlNode& node, std::vector<Endpoint>& out) {
  if (node.kind == Kind::kSequence && node.count == 0) {
    error(node.mark, "endpoints: a cluster needs at least one endpoint");
    return;
  }
  items("endpoints", node, [&](std::size_t, const YamlNode& item) {
    static constexpr std::array<std::string_view, 2> kKeys{"address", "weight"};
    Endpoint endpoint;
    const YamlNode* address = nullptr;
    bool have_address = false;
    const bool mapping = fields("an endpoint", item, kKeys,
                                [&](std::string_view key, const YamlNode&, const YamlNode& value) {
                                  if (key == "address") {
                                    have_address = true;
                                    if (string_value(key, value, endpoint.address))
                                      address = &value;
                                  } else {
                                    integer(key, value, 1, 1000, endpoint.weight);
                                  }
                                });
    if (!mapping) return;
    if (address == nullptr) {
      if (!have_address) missing(item, "address");
      return;
    }
    if (std::string problem = endpoint_address_problem(endpoint.address); !problem.empty()) {
      error(address->mark, "address: " + problem);
      return;
    }
    const EndpointAddress split = *split_endpoint_address(endpoint.address);
    if (split.bracketed || is_ip_literal(split.host)) {
      out.push_back(std::move(endpoint));
      return;
    }
    // A name: every address it resolves to is an endpoint of the cluster.
    std::string resolve_error;
    const std::vector<std::string> addresses = resolve_(std::string(split.host), resolve_error);
    if (addresses.empty()) {
      error(address->mark, "address: cannot resolve \"" + std::string(split.host) +
                               "\": " + (resolve_error.empty() ? "no address" : resolve_error));
      return;
    }
    for (const std::string& ip : addresses) {
      Endpoint& resolved = out.emplace_back();
      const bool v6 = ip.find(':') != std::string::npos;
      resolved.address = (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(split.port);
      resolved.weight = endpoint.weight;
      resolved.resolved_from = endpoint.address;
    }
  });
}

void Decoder::health_check(const YamlNode& node, HealthCheck& out) {
  static constexpr std::array<std::string_view, 5> kKeys{
      "path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"};
  fields("health_check", node, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           if (key == "path") {
             if (string_value(key, value, out.path) &&
                 (!out.path.starts_with('/') || !is_field_value(out.path))) {
               wrong_type(key, value, "a path starting with '/'");
             }
           } else if (key == "interval") {
             duration(key, value, false, out.interval);
           } else if (key == "timeout") {
             duration(key, value, false, out.timeout);
           } else if (key == "healthy_threshold") {
             integer(key, value, 1, 1000, out.healthy_threshold);
           } else {
             integer(key, value, 1, 1000, out.unhealthy_threshold);
           }
         });
}

void Decoder::outlier_detection(const YamlNode& node, OutlierDetection& out) {
  static constexpr std::array<std::string_view, 5> kKeys{
      "consecutive_5xx", "consecutive_connect_failures", "base_ejection", "max_ejection",
      "max_ejection_percent"};
  const YamlNode* ejection = nullptr;  // the later of the two written
  fields("outlier_detection", node, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           if (key == "consecutive_5xx") {
             integer(key, value, 0, 1000, out.consecutive_5xx);
           } else if (key == "consecutive_connect_failures") {
             integer(key, value, 0, 1000, out.consecutive_connect_failures);
           } else if (key == "base_ejection") {
             if (duration(key, value, false, out.base_ejection)) ejection = &value;
           } else if (key == "max_ejection") {
             if (duration(key, value, false, out.max_ejection)) ejection = &value;
           } else {
             integer(key, value, 0, 100, out.max_ejection_percent);
           }
         });
  // Either may break the order: base_ejection alone past the default max.
  if (ejection != nullptr && out.max_ejection < out.base_ejection) {
    error(ejection->mark, "max_ejection (" + format_duration(out.max_ejection) +
                              ") is shorter than base_ejection (" +
                              format_duration(out.base_ejection) + ")");
  }
}

void Decoder::circuit_breaker(const YamlNode& node, CircuitBreaker& out) {
  static constexpr std::array<std::string_view, 5> kKeys{
      "max_connections", "max_requests", "max_pending", "max_retries", "error_rate"};
  fields("circuit_breaker", node, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           if (key == "max_connections")
             integer(key, value, 1, 16 * kMillion, out.max_connections);
           else if (key == "max_requests")
             integer(key, value, 1, 16 * kMillion, out.max_requests);
           else if (key == "max_pending")
             integer(key, value, 0, 16 * kMillion, out.max_pending);
           else if (key == "max_retries")
             integer(key, value, 0, 16 * kMillion, out.max_retries);
           else {
             error_rate(value, out.error_rate.emplace());
           }
         });
}

void Decoder::error_rate(const YamlNode& node, ErrorRateBreaker& out) {
  static constexpr std::array<std::string_view, 4> kKeys{"threshold", "min_requests", "window",
                                                         "open_for"};
  fields("error_rate", node, kKeys,
         [&](std::string_view key, const YamlNode&, const YamlNode& value) {
           if (key == "threshold") {
             // A plain decimal in (0, 1]: "0.5", "1".
             const std::string_view text =
                 value.kind == Kind::kScalar && value.plain ? tree_.text(value) : "";
             double parsed = 0;
             const bool decimal =
                 !text.empty() && text.find_first_not_of("0123456789.") == std::string_view::npos;
             const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
             if (!decimal || ec != std::errc{} || end != text.data() + text.size() ||
                 !(parsed > 0) || parsed > 1) {
               wrong_type(key, value, "a number above 0 and at most 1");
               return;
             }
             out.threshold = parsed;
           } else if (key == "min_requests") {
             integer(key, value, 1, 16 * kMillion, out.min_requests);
           } else if (key == "window") {
             duration(key, value, false, out.window);
           } else {
             duration(key, value, false, out.open_for);
           }
         });
}

void Decoder::retry(const YamlNode& node, RetryPolicy& out) {
  static constexpr std::array<std::string_view, 6> kKeys{"attempts",        "retry_on",
                                                         "per_try_timeout", "buffer_bytes",
                                                         "budget_percent",  "min_concurrency"};
  fields("retry", node, kKeys, [&](std::string_view key, const YamlNode&, const YamlNode& value) {
    if (key == "attempts") {
      integer(key, value, 0, 10, out.attempts);
    } else if (key == "retry_on") {
      out.retry_on = 0;
      items(key, value, [&](std::size_t, const YamlNode& item) {
        const auto condition =
            item.kind == Kind::kScalar ? parse_retry_on(tree_.text(item)) : std::nullopt;
        if (!condition) {
          wrong_type(key, item, "connect_failure, reset, timeout, 502, 503 or 504");
          return;
        }
        out.retry_on |= static_cast<std::uint8_t>(*condition);
      });
      if (value.kind == Kind::kSequence && value.count == 0) {
        error(value.mark, "retry_on: name at least one condition (or leave retry out)");
      }
    } else if (key == "per_try_timeout") {
      ConfigDuration timeout{};
      if (duration(key, value, false, timeout)) out.per_try_timeout = timeout;
    } else if (key == "buffer_bytes") {
      integer(key, value, 0, std::uint64_t{1} << 30, out.buffer_bytes);
    } else if (key == "budget_percent") {
      integer(key, value, 0, 100, out.budget_percent);
    } else {
      integer(key, value, 0, kMillion, out.min_concurrency);
    }
  });
}

// ---- routes -------------------------------------------------------------------

void Decoder::routes(const YamlNode& node, std::vector<Route>& out) {
  if (node.kind == Kind::kSequence) {
    out.reserve(node.count);
    route_marks_.reserve(node.count);
  }
  items("routes", node, [&](std::size_t, const YamlNode& item) {
    route(item, out.emplace_back(), route_marks_.emplace_back());
  });
}

void Decoder::route(const YamlNode& node, Route& out, RouteMarks& marks) {
  static constexpr std::array<std::string_view, 13> kKeys{
      "path",    "hosts",           "methods",         "cluster",      "split",
      "respond", "canary",          "strip_prefix",    "host_rewrite", "timeout",
      "retry",   "request_headers", "response_headers"};
  bool have_path = false;
  const YamlNode* strip_prefix = nullptr;
  // cluster, split and respond as written (more than two is one error).
  std::array<const YamlNode*, 2> targets{};
  std::size_t target_count = 0;
  const auto add_target = [&](const YamlNode& key_node) {
    if (target_count < targets.size()) targets[target_count] = &key_node;
    ++target_count;
  };
  const bool mapping = fields(
      "a route", node, kKeys,
      [&](std::string_view key, const YamlNode& key_node, const YamlNode& value) {
        if (key == "path") {
          have_path = true;
          marks.path = value.mark;
          marks.path_plain = value.plain;
          if (string_value(key, value, out.path) && out.path.empty()) {
            wrong_type(key, value, "a route pattern");
          }
        } else if (key == "hosts") {
          string_list(key, value, out.hosts, is_host_pattern,
                      "a host name, a \"*.\" wildcard or an IP address");
        } else if (key == "methods") {
          items(key, value, [&](std::size_t, const YamlNode& item) {
            std::string method;
            if (!string_value(key, item, method)) return;
            std::string upper = method;
            for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
            if (!is_http_token(method)) {
              wrong_type(key, item, "a method (an HTTP token such as GET)");
            } else if (upper != method && parse_method(upper)) {
              error(item.mark, "methods: \"" + method + "\" is not " + upper +
                                   " (methods are case-sensitive)");
            } else {
              out.methods.push_back(std::move(method));
            }
          });
        } else if (key == "cluster") {
          add_target(key_node);
          marks.cluster = value.mark;
          if (string_value(key, value, out.cluster) && out.cluster.empty()) {
            wrong_type(key, value, "a cluster name");
          }
        } else if (key == "split") {
          add_target(key_node);
          if (value.kind == Kind::kSequence && value.count == 0) {
            error(value.mark, "split: list at least one cluster");
          }
          items(key, value, [&](std::size_t, const YamlNode& item) {
            static constexpr std::array<std::string_view, 2> kSplitKeys{"cluster", "weight"};
            WeightedCluster& entry = out.split.emplace_back();
            if (out.split.size() == 1)
              marks.first_split = static_cast<std::uint32_t>(split_marks_.size());
            YamlMark& mark = split_marks_.emplace_back(item.mark);
            bool have_cluster = false;
            if (!fields("a split entry", item, kSplitKeys,
                        [&](std::string_view k, const YamlNode&, const YamlNode& v) {
                          if (k == "cluster") {
                            have_cluster = true;
                            mark = v.mark;
                            string_value(k, v, entry.cluster);
                          } else {
                            integer(k, v, 1, 1000, entry.weight);
                          }
                        })) {
              return;
            }
            if (!have_cluster) missing(item, "cluster");
          });
        } else if (key == "respond") {
          add_target(key_node);
          respond(value, out.options.emplace().respond.emplace());
        } else if (key == "canary") {
          items(key, value, [&](std::size_t, const YamlNode& item) {
            static constexpr std::array<std::string_view, 3> kCanaryKeys{"header", "value",
                                                                         "cluster"};
            std::vector<CanaryRule>& canary = out.options.emplace().canary;
            CanaryRule& rule = canary.emplace_back();
            if (canary.size() == 1)
              marks.first_canary = static_cast<std::uint32_t>(canary_marks_.size());
            YamlMark& mark = canary_marks_.emplace_back(item.mark);
            std::array<bool, 3> have{};
            if (!fields("a canary rule", item, kCanaryKeys,
                        [&](std::string_view k, const YamlNode&, const YamlNode& v) {
                          if (k == "header") {
                            have[0] = true;
                            if (string_value(k, v, rule.header) && !is_http_token(rule.header)) {
                              wrong_type(k, v, "a header name (an HTTP token)");
                            }
                          } else if (k == "value") {
                            have[1] = true;
                            if (string_value(k, v, rule.value) && !is_field_value(rule.value)) {
                              wrong_type(k, v, "a header value (no CR, LF or NUL)");
                            }
                          } else {
                            have[2] = true;
                            mark = v.mark;
                            string_value(k, v, rule.cluster);
                          }
                        })) {
              return;
            }
            for (std::size_t k = 0; k < have.size(); ++k) {
              if (!have[k]) missing(item, kCanaryKeys[k]);
            }
          });
        } else if (key == "strip_prefix") {
          std::string& prefix = out.options.emplace().strip_prefix;
          if (string_value(key, value, prefix)) {
            strip_prefix = &value;
            if (!prefix.starts_with('/')) wrong_type(key, value, "a path prefix starting with '/'");
          }
        } else if (key == "host_rewrite") {
          std::string& rewrite = out.options.emplace().host_rewrite;
          if (string_value(key, value, rewrite)) {
            const auto split = split_endpoint_address(rewrite);
            const std::string_view host = split ? split->host : std::string_view(rewrite);
            if (!is_host_name(host) && !is_ip_literal(host)) {
              wrong_type(key, value, "a host name or IP address, with an optional :port");
            }
          }
        } else if (key == "timeout") {
          duration(key, value, true, out.timeout);
        } else if (key == "retry") {
          retry(value, out.options.emplace().retry.emplace());
        } else if (key == "request_headers") {
          headers(key, value, out.options.emplace().request_headers);
        } else {
          headers(key, value, out.options.emplace().response_headers);
        }
      });
  if (!mapping) return;
  if (!have_path) missing(node, "path");
  if (target_count == 0) {
    error(node.mark, "a route needs one of cluster, split or respond");
  } else if (target_count > 1) {
    error(targets[1]->mark,
          std::string(tree_.text(*targets[1])) + ": a route takes exactly one of " +
              "cluster, split or respond (it has " + std::string(tree_.text(*targets[0])) + ")");
  }
  if (strip_prefix != nullptr && out.options->strip_prefix.starts_with('/')) {
    // Checkable where the pattern's static start is at least as long.
    const std::string& prefix = out.options->strip_prefix;
    const std::string_view pattern = out.path;
    const std::string_view fixed = pattern.substr(0, pattern.find_first_of(":*{"));
    if (prefix.size() <= fixed.size() && !fixed.starts_with(prefix)) {
      error(strip_prefix->mark, "strip_prefix: \"" + prefix + "\" does not begin the path");
    }
  }
}

void Decoder::respond(const YamlNode& node, DirectResponse& out) {
  static constexpr std::array<std::string_view, 3> kKeys{"status", "body", "content_type"};
  const YamlNode* body = nullptr;
  fields("respond", node, kKeys, [&](std::string_view key, const YamlNode&, const YamlNode& value) {
    if (key == "status") {
      integer(key, value, 200, 599, out.status);
    } else if (key == "body") {
      // `body:` with nothing is an empty body, not an error.
      if (tree_.is_null(value) && tree_.text(value).empty()) {
        out.body.clear();
      } else if (string_value(key, value, out.body)) {
        body = &value;
      }
    } else if (string_value(key, value, out.content_type) && !is_field_value(out.content_type)) {
      wrong_type(key, value, "a header value (no CR, LF or NUL)");
    }
  });
  if (body != nullptr && !out.body.empty() && (out.status == 204 || out.status == 304)) {
    error(body->mark, "body: a " + std::to_string(out.status) + " response has no body");
  }
}

void Decoder::headers(std::string_view key, const YamlNode& node, HeaderRewrite& out) {
  static constexpr std::array<std::string_view, 2> kKeys{"add", "remove"};
  fields(key, node, kKeys, [&](std::string_view k, const YamlNode&, const YamlNode& value) {
    if (k == "remove") {
      string_list(k, value, out.remove, is_http_token, "a header name (an HTTP token)");
      return;
    }
    static constexpr std::array<std::string_view, 0> kAnyName{};
    fields("add", value, kAnyName,
           [&](std::string_view name, const YamlNode& name_node, const YamlNode& v) {
             if (!is_http_token(name)) {
               error(name_node.mark,
                     "add: \"" + std::string(name) + "\" is not a header name (an HTTP token)");
               return;
             }
             std::string text;
             if (!string_value(name, v, text)) return;
             if (!is_field_value(text)) {
               wrong_type(name, v, "a header value (no CR, LF or NUL)");
               return;
             }
             out.add.emplace_back(std::string(name), std::move(text));
           });
  });
}

void Decoder::error(const ReferenceSite& site, std::string message) {
  const RouteMarks& marks = route_marks_[site.route];
  YamlMark mark = marks.path;
  switch (site.field) {
    case ReferenceSite::Field::kPath:
      // A plain scalar on one line: the column of the byte at fault.
      if (marks.path_plain) mark.column += static_cast<std::uint32_t>(site.offset);
      break;
    case ReferenceSite::Field::kCluster:
      mark = marks.cluster;
      break;
    case ReferenceSite::Field::kSplitCluster:
      mark = split_marks_[marks.first_split + site.index];
      break;
    case ReferenceSite::Field::kCanaryCluster:
      mark = canary_marks_[marks.first_canary + site.index];
      break;
  }
  error(mark, std::move(message));
}

}  // namespace

std::vector<std::string> resolve_with_getaddrinfo(const std::string& host, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
    error = gai_strerror(rc);
    return {};
  }
  std::vector<std::string> out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    char text[NI_MAXHOST];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) !=
        0) {
      continue;
    }
    if (std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
  }
  freeaddrinfo(list);
  return out;
}

namespace {

// File order: by line, then column; equal positions keep their order.
void sort_by_position(std::vector<ConfigDiagnostic>& diagnostics) {
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) {
                     return a.line != b.line ? a.line < b.line : a.column < b.column;
                   });
}

}  // namespace

ConfigResult parse_gateway_config(std::string_view text, std::string_view name,
                                  EndpointResolver resolve) {
  ConfigResult result;
  GatewayConfig config;
  auto tree = std::make_unique<YamlTree>();
  Decoder decoder(*tree, name, config, result, resolve, text.size());
  std::vector<YamlError> yaml_errors;
  const bool parsed = tree->parse(text, yaml_errors, &decoder);
  if (!parsed) {
    // The YAML itself is wrong: its errors alone, not those of routes
    // decoded before the parser stopped.
    result.errors.clear();
    for (YamlError& e : yaml_errors) {
      result.errors.push_back(
          {std::string(name), e.mark.line, e.mark.column, std::move(e.message)});
    }
    // A key found not to be a scalar is reported when its mapping closes.
    sort_by_position(result.errors);
    return result;
  }
  decoder.decode();
  // The route marks hold what the check needs; the tree's memory goes first.
  tree.reset();
  // A cluster that failed to decode is still listed by name, so routes naming
  // it do not report a second error.
  check_references(config, decoder);
  sort_by_position(result.errors);
  sort_by_position(result.notices);
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
