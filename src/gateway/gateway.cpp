// gateway/gateway.cpp — Gateway: a GatewayConfig made into a Snapshot and
// the server's route table, the traffic and admin servers, reload.
// Thread-safety: reload and admin views under `mutex_`; reactors read the
// published route table and the snapshots its routes hold.
#include "portico/gateway.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#if defined(PORTICO_HAVE_MIMALLOC)
#include <mimalloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <span>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "gateway/proxy.hpp"
#include "gateway/status_page.hpp"
#include "portico/metrics.hpp"

namespace portico {
inline namespace v0 {

using detail::gateway::ClusterState;
using detail::gateway::EndpointState;
using detail::gateway::RouteGroup;
using detail::gateway::RouteSet;
using detail::gateway::RouteTarget;
using detail::gateway::Snapshot;

namespace {

// "1.2.3.4:80" / "[::1]:80" / "name:80" into a socket address (a name is
// resolved: its first address).
bool endpoint_address(std::string_view text, sockaddr_storage& out, socklen_t& length,
                      std::string& error) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "endpoint \"" + std::string(text) + "\" is not [IPv6]:PORT";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = "endpoint \"" + std::string(text) + "\" has no port";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rc != 0) {
    error = "endpoint \"" + std::string(text) + "\": " + ::gai_strerror(rc);
    return false;
  }
  std::memcpy(&out, list->ai_addr, list->ai_addrlen);
  length = list->ai_addrlen;
  ::freeaddrinfo(list);
  return true;
}

detail::LbPolicy policy_of(LoadBalancer lb) noexcept {
  switch (lb) {
    case LoadBalancer::kRoundRobin:
      return detail::LbPolicy::kRoundRobin;
    case LoadBalancer::kLeastRequest:
      return detail::LbPolicy::kLeastRequest;
    case LoadBalancer::kRingHash:
      return detail::LbPolicy::kRingHash;
    case LoadBalancer::kMaglev:
      return detail::LbPolicy::kMaglev;
    case LoadBalancer::kRandom:
      return detail::LbPolicy::kRandom;
  }
  return detail::LbPolicy::kRoundRobin;
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// After a load or reload: what parsing and building freed goes back to the
// system instead of staying in the allocator's free lists (a big route file's
// transients would otherwise double the process's resident size).
void release_free_memory() noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
  // mimalloc decommits freed memory after a delay, on the freeing thread's
  // later activity, which an idle main thread never has: no delay here.
  const long page_delay = mi_option_get(mi_option_decommit_delay);
  const long segment_delay = mi_option_get(mi_option_segment_decommit_delay);
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
  mi_collect(true);
  mi_option_set(mi_option_decommit_delay, page_delay);
  mi_option_set(mi_option_segment_decommit_delay, segment_delay);
#else
  ::malloc_trim(0);
#endif
}

std::string_view cluster_name(const Snapshot& snapshot, std::uint32_t index) {
  return index < snapshot.clusters.size() ? std::string_view(snapshot.clusters[index].name)
                                          : std::string_view();
}

ConfigDiagnostic plain_error(std::string message) {
  ConfigDiagnostic diagnostic;
  diagnostic.message = std::move(message);
  return diagnostic;
}

// The access log's file descriptor (1 for /dev/stdout, the default).
int open_access_log(const AccessLogConfig& log) {
  if (log.format == AccessLogConfig::Format::kNone || log.path == "/dev/stdout") return 1;
  if (log.path == "/dev/stderr") return 2;
  const int fd = ::open(log.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::invalid_argument("access_log: cannot open " + log.path + ": " + std::strerror(errno));
  return fd;
}

ServerOptions server_options(const GatewayConfig& config, int access_log_fd) {
  ServerOptions options;
  options.access_log_fd = access_log_fd;
  options.host = config.listen.host;
  options.port = config.listen.port;
  options.threads = config.listen.threads;
  const ServerLimits& limits = config.server;
  options.max_request_line = limits.max_request_line;
  options.max_header_bytes = limits.max_header_bytes;
  options.max_header_count = limits.max_header_count;
  // 0: no limit; streamed bodies never grow the read buffer.
  options.max_body_bytes = limits.max_body_bytes == 0 ? SIZE_MAX / 4 : limits.max_body_bytes;
  options.max_connections = limits.max_connections;
  options.max_requests_per_connection = limits.max_requests_per_connection;
  options.header_timeout = limits.header_timeout;
  options.body_timeout = limits.body_timeout;
  options.idle_timeout = limits.idle_timeout;
  options.write_timeout = limits.write_timeout;
  options.shutdown_timeout = limits.shutdown_timeout;
  // A proxy forwards what it is asked: no redirects, no OPTIONS of its own
  // (GATEWAY.md: other methods get 405, OPTIONS too unless listed).
  options.redirect_trailing_slash = false;
  options.redirect_fixed_path = false;
  options.handle_options = false;
  options.normalize_target = true;  // the path routed is the path forwarded
  // Bodies stream through: a read moves 64 KiB, so a large body needs a
  // quarter of the loop turns (the blocks go back to the pool when empty).
  options.read_buffer_size = 64 * 1024;
  options.handle_signals = false;
  options.worker_threads = 1;
  options.metrics = config.metrics;
  switch (config.access_log.format) {
    case AccessLogConfig::Format::kNone:
      options.access_log = AccessLogFormat::kOff;
      break;
    case AccessLogConfig::Format::kCommon:
      options.access_log = AccessLogFormat::kCommon;
      break;
    case AccessLogConfig::Format::kJson:
      options.access_log = AccessLogFormat::kJson;
      break;
  }
  return options;
}

}  // namespace

class Gateway::Impl final : public detail::gateway::Runtime {
 public:
  explicit Impl(GatewayConfig config)
      : config_(std::move(config)),
        access_log_fd_(open_access_log(config_.access_log)),
        server_(server_options(config_, access_log_fd_)) {
    std::vector<ConfigDiagnostic> errors;
    std::shared_ptr<Snapshot> snapshot = build_snapshot(config_, errors);
    Routes routes;
    std::shared_ptr<RouteSet> set;
    if (snapshot) set = build_routes(config_, snapshot, routes, errors);
    if (!errors.empty()) throw std::invalid_argument(errors.front().to_string());
    // The routes live on in the route set (and /routes reads them there).
    std::vector<Route>().swap(config_.routes);
    install_resilience(*snapshot);
    snapshot_ = std::move(snapshot);
    route_set_ = std::move(set);
    server_.routes(std::move(routes), RouteRetention::kFrozenOnly);
    release_free_memory();
  }

  ~Impl() override {
    stop();
    wait();
    if (access_log_fd_ > 2) ::close(access_log_fd_);
  }

  std::error_code start() {
    if (std::error_code error = server_.start()) {
      setup_error_ = server_.setup_error();
      return error;
    }
    if (config_.admin) {
      admin_ = std::make_unique<Server>(admin_options());
      add_admin_routes(*admin_);
      if (std::error_code error = admin_->start()) {
        setup_error_ = admin_->setup_error();
        server_.stop();
        server_.wait();
        return error;
      }
    }
    ready_.store(true, std::memory_order_release);
    return {};
  }

  // The traffic server drains; the admin listener stays up meanwhile (its
  // /ready answers 503) and stops once the drain is over (wait()).
  void stop() noexcept {
    ready_.store(false, std::memory_order_release);
    server_.stop();
  }

  void wait() {
    server_.wait();
    if (admin_) {
      admin_->stop();
      admin_->wait();
    }
  }

  std::vector<ConfigDiagnostic> reload(GatewayConfig config) {
    std::vector<ConfigDiagnostic> errors = config.validate();
    std::lock_guard lock(mutex_);
    std::shared_ptr<Snapshot> snapshot;
    Routes routes;
    std::shared_ptr<RouteSet> set;
    if (errors.empty()) snapshot = build_snapshot(config, errors);
    if (errors.empty()) set = build_routes(config, snapshot, routes, errors);
    if (!errors.empty()) {
      reloads_failed_.fetch_add(1, std::memory_order_relaxed);
      return errors;
    }
    std::vector<Route>().swap(config.routes);
    // The listener, admin and server keys stay as first loaded.
    config.listen = config_.listen;
    config.admin = config_.admin;
    config.server = config_.server;
    config.access_log = config_.access_log;
    config_ = std::move(config);
    install_resilience(*snapshot);
    snapshot_ = std::move(snapshot);
    route_set_ = std::move(set);
    server_.routes(std::move(routes), RouteRetention::kFrozenOnly);
    reloads_ok_.fetch_add(1, std::memory_order_relaxed);
    release_free_memory();
    collect_due_.store(true, std::memory_order_relaxed);
    return {};
  }

  bool take_collect_due() noexcept {
    return collect_due_.exchange(false, std::memory_order_relaxed);
  }

  ConfigResult reload_file() {
    std::string path;
    {
      std::lock_guard lock(mutex_);
      path = config_path_;
    }
    if (path.empty()) {
      ConfigResult result;
      result.errors.push_back(plain_error("no config file to reload (started without --config)"));
      reloads_failed_.fetch_add(1, std::memory_order_relaxed);
      return result;
    }
    ConfigResult result = GatewayConfig::load(path);
    if (!result.ok()) {
      reloads_failed_.fetch_add(1, std::memory_order_relaxed);
      return result;
    }
    result.errors = reload(std::move(*result.config));
    result.config.reset();
    return result;
  }

  StreamingHandler proxy(std::string_view cluster) {
    std::lock_guard lock(mutex_);
    const std::uint32_t index = snapshot_->cluster_index(cluster);
    if (index == detail::kNoEndpoint)
      throw std::invalid_argument("no cluster \"" + std::string(cluster) + "\" in the gateway");
    auto set = std::make_shared<RouteSet>();
    set->snapshot = snapshot_;
    set->patterns = "(embedded)";
    RouteTarget& target = set->targets.emplace_back();
    target.snapshot = snapshot_.get();
    target.pattern = set->patterns;
    target.cluster = index;
    target.timeout = std::chrono::milliseconds(0);
    set->members.push_back(&target);
    set->groups.emplace_back(*this, std::span<const RouteTarget* const>(set->members));
    return RouteSet::handler(set, 0);
  }

  std::string clusters_json() const {
    std::shared_ptr<const Snapshot> snapshot;
    {
      std::lock_guard lock(mutex_);
      snapshot = snapshot_;
    }
    std::string out = "{";
    bool first_cluster = true;
    for (const ClusterState& cluster : snapshot->clusters) {
      std::string endpoints;
      bool first = true;
      for (std::size_t e = 0; e < cluster.endpoints.size(); ++e) {
        const EndpointState& endpoint = cluster.endpoints[e];
        const UpstreamTotals pools = upstream_totals(cluster.name, endpoint.address);
        const detail::gateway::EndpointHealth& health = *cluster.resilience.endpoints[e];
        const std::int64_t until = health.ejected_until_ms.load(std::memory_order_relaxed);
        endpoints += fmt::format(
            "{}{{\"address\": {}, \"weight\": {}, \"healthy\": {}, \"ejected_until\": {}, "
            "\"ejections\": {}, \"requests_in_flight\": {}, \"pooled_connections\": {}}}",
            first ? "" : ", ", json_string(endpoint.address), endpoint.weight,
            health.healthy.load(std::memory_order_relaxed),
            until == 0 ? std::string("null") : std::to_string((until + 999) / 1000),
            health.ejections.load(std::memory_order_relaxed), pools.active, pools.pooled);
        first = false;
      }
      const detail::gateway::ClusterShared& shared = *cluster.resilience.health;
      std::string_view breaker = "closed";
      if (cluster.resilience.breaker.error_rate) {
        switch (shared.error_rate.state()) {
          case detail::gateway::ErrorRateState::State::kOpen:
            breaker = "open";
            break;
          case detail::gateway::ErrorRateState::State::kHalfOpen:
            breaker = "half_open";
            break;
          case detail::gateway::ErrorRateState::State::kClosed:
            break;
        }
      }
      out += fmt::format(
          "{}{}: {{\"breaker\": \"{}\", \"requests_in_flight\": {}, \"pending\": {}, "
          "\"connections\": {}, \"endpoints\": [{}]}}",
          first_cluster ? "" : ", ", json_string(cluster.name), breaker,
          shared.requests.load(std::memory_order_relaxed),
          shared.pending.load(std::memory_order_relaxed),
          shared.connections->load(std::memory_order_relaxed), endpoints);
      first_cluster = false;
    }
    out += "}\n";
    return out;
  }

  // GET /metrics: the traffic server's request series (per reactor, merged
  // now), then the upstream series of the config in force: counters from
  // every reactor's pools, gauges from the shared health and breaker state.
  std::string metrics() const {
    std::string out;
    server_.append_metrics(out);
    append_upstream_metrics(out);
    return out;
  }

  // The same, written a piece at a time as the client reads it: a gateway
  // with thousands of routes that saw traffic scrapes megabytes, never held
  // whole. Both snapshots are taken now.
  Response::BodySource metrics_source() const {
    std::string upstream;
    append_upstream_metrics(upstream);
    return [request = server_.metrics_source(), upstream = std::move(upstream)](
               std::string& out) mutable {
      if (request(out)) return true;
      out += upstream;
      return false;
    };
  }

  void append_upstream_metrics(std::string& out) const {
    std::shared_ptr<const Snapshot> snapshot;
    {
      std::lock_guard lock(mutex_);
      snapshot = snapshot_;
    }
    struct Row {
      const ClusterState* cluster;
      const EndpointState* endpoint;
      const detail::gateway::EndpointHealth* health;
      UpstreamTotals totals;
    };
    std::vector<Row> rows;
    for (const ClusterState& cluster : snapshot->clusters) {
      for (std::size_t e = 0; e < cluster.endpoints.size(); ++e) {
        rows.push_back({&cluster, &cluster.endpoints[e], cluster.resilience.endpoints[e].get(),
                        upstream_totals(cluster.name, cluster.endpoints[e].address)});
      }
    }
    const auto labels = [&out](const Row& row) {
      out += "{cluster=\"";
      append_label_value(out, row.cluster->name);
      out += "\",endpoint=\"";
      append_label_value(out, row.endpoint->address);
      out += '"';
    };
    const auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                            auto value) {
      fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                     type);
      for (const Row& row : rows) {
        out += name;
        labels(row);
        fmt::format_to(std::back_inserter(out), "}} {}\n", value(row));
      }
    };
    constexpr auto relaxed = std::memory_order_relaxed;
    family("portico_upstream_requests_total", "counter",
           "Requests sent to an upstream endpoint (every try, retries included).",
           [](const Row& row) { return row.totals.requests; });
    family("portico_upstream_connect_failures_total", "counter",
           "Upstream connects refused, timed out or impossible.",
           [](const Row& row) { return row.totals.connect_failures; });
    fmt::format_to(std::back_inserter(out),
                   "# HELP portico_upstream_connections Upstream connections now: active (handed "
                   "to an exchange or connecting) or pooled (idle).\n"
                   "# TYPE portico_upstream_connections gauge\n");
    for (const Row& row : rows) {
      for (const bool active : {true, false}) {
        out += "portico_upstream_connections";
        labels(row);
        fmt::format_to(std::back_inserter(out), ",state=\"{}\"}} {}\n",
                       active ? "active" : "pooled",
                       active ? row.totals.active : row.totals.pooled);
      }
    }
    family("portico_upstream_healthy", "gauge",
           "1 while the endpoint passes its health checks (endpoints start healthy), else 0.",
           [](const Row& row) { return row.health->healthy.load(relaxed) ? 1 : 0; });
    family("portico_upstream_ejections_total", "counter",
           "Times outlier detection ejected the endpoint.",
           [](const Row& row) { return row.health->ejections.load(relaxed); });
    family("portico_upstream_retries_total", "counter", "Retries sent to the endpoint.",
           [](const Row& row) { return row.totals.retries; });
    out +=
        "# HELP portico_breaker_open 1 while the cluster's error-rate breaker is open (0 "
        "closed or half-open).\n# TYPE portico_breaker_open gauge\n";
    for (const ClusterState& cluster : snapshot->clusters) {
      const bool open = cluster.resilience.breaker.error_rate &&
                        cluster.resilience.health->error_rate.state() ==
                            detail::gateway::ErrorRateState::State::kOpen;
      out += "portico_breaker_open{cluster=\"";
      append_label_value(out, cluster.name);
      fmt::format_to(std::back_inserter(out), "\"}} {}\n", open ? 1 : 0);
    }
    fmt::format_to(std::back_inserter(out),
                   "# HELP portico_reloads_total Configuration reloads, by result.\n"
                   "# TYPE portico_reloads_total counter\n"
                   "portico_reloads_total{{result=\"ok\"}} {}\n"
                   "portico_reloads_total{{result=\"failed\"}} {}\n",
                   reloads_ok_.load(relaxed), reloads_failed_.load(relaxed));
  }

  std::string routes_json() const {
    std::shared_ptr<const RouteSet> set;
    {
      std::lock_guard lock(mutex_);
      set = route_set_;
    }
    const Snapshot& snapshot = *set->snapshot;
    std::string out = "[";
    bool first = true;
    for (const RouteTarget& route : set->targets) {
      const RouteTarget::Extras& more = route.more();
      std::string hosts;
      for (const std::string& host : more.hosts) hosts += (hosts.empty() ? "" : ", ") + json_string(host);
      std::string methods;
      for (unsigned id = 0; id < kStandardMethodCount; ++id) {
        if ((route.methods >> id & 1u) == 0) continue;
        methods += (methods.empty() ? "" : ", ") + json_string(method_name(static_cast<Method>(id)));
      }
      for (const std::string& method : more.other_methods)
        methods += (methods.empty() ? "" : ", ") + json_string(method);
      std::string target;
      if (route.respond) {
        target = fmt::format("\"respond\": {{\"status\": {}}}", more.respond_status);
      } else if (!more.split.empty()) {
        std::string split;
        for (const RouteTarget::Weighted& weighted : more.split) {
          split += fmt::format("{}{{\"cluster\": {}, \"weight\": {}}}", split.empty() ? "" : ", ",
                               json_string(cluster_name(snapshot, weighted.cluster)), weighted.weight);
        }
        target = "\"split\": [" + split + "]";
      } else {
        target = "\"cluster\": " + json_string(cluster_name(snapshot, route.cluster));
      }
      std::string canary;
      for (const RouteTarget::Canary& rule : more.canary) {
        canary += fmt::format("{}{{\"header\": {}, \"value\": {}, \"cluster\": {}}}",
                              canary.empty() ? "" : ", ", json_string(rule.header),
                              json_string(rule.value), json_string(cluster_name(snapshot, rule.cluster)));
      }
      out += fmt::format("{}{{\"path\": {}, \"hosts\": [{}], \"methods\": [{}], {}, \"canary\": [{}]}}",
                         first ? "" : ", ", json_string(route.pattern), hosts, methods, target,
                         canary);
      first = false;
    }
    out += "]\n";
    return out;
  }

  void set_config_path(std::string path) {
    std::lock_guard lock(mutex_);
    config_path_ = std::move(path);
  }

  Server& server() noexcept { return server_; }
  Server* admin() noexcept { return admin_.get(); }
  const std::string& setup_error() const noexcept { return setup_error_; }
  std::uint64_t reloads_ok() const noexcept { return reloads_ok_.load(std::memory_order_relaxed); }
  std::uint64_t reloads_failed() const noexcept {
    return reloads_failed_.load(std::memory_order_relaxed);
  }

 private:
  std::shared_ptr<Snapshot> build_snapshot(const GatewayConfig& config,
                                           std::vector<ConfigDiagnostic>& errors) {
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->generation = next_generation_.fetch_add(1, std::memory_order_relaxed) + 1;
    snapshot->via = config.via;
    snapshot->resilience = &resilience_;
    for (const portico::Cidr& cidr : config.trusted_proxies) {
      std::string text;
      char address[INET6_ADDRSTRLEN] = {};
      ::inet_ntop(cidr.v6 ? AF_INET6 : AF_INET, cidr.address.data(), address, sizeof address);
      text = fmt::format("{}/{}", address, cidr.prefix_length);
      if (auto parsed = detail::gateway::Cidr::parse(text)) snapshot->trusted_proxies.push_back(*parsed);
    }
    snapshot->clusters.reserve(config.clusters.size());
    for (const Cluster& cluster : config.clusters) {
      ClusterState& state = snapshot->clusters.emplace_back();
      state.name = cluster.name;
      std::vector<detail::BalancerEndpoint> endpoints;
      for (const Endpoint& endpoint : cluster.endpoints) {
        EndpointState& target = state.endpoints.emplace_back();
        target.address = endpoint.address;
        target.weight = endpoint.weight;
        std::string error;
        if (!endpoint_address(endpoint.address, target.sockaddr, target.length, error)) {
          errors.push_back(plain_error("cluster \"" + cluster.name + "\": " + error));
          return nullptr;
        }
      }
      for (const EndpointState& target : state.endpoints)
        endpoints.push_back({target.address, target.weight});
      std::string error;
      std::optional<detail::BalancerTable> table =
          detail::BalancerTable::build(policy_of(cluster.lb), endpoints, {}, error);
      if (!table) {
        errors.push_back(plain_error("cluster \"" + cluster.name + "\": " + error));
        return nullptr;
      }
      state.table.emplace(std::move(*table));
      switch (cluster.hash_on.kind) {
        case HashOn::Kind::kClientIp:
          state.hash_on.source = detail::HashOn::Source::kClientIp;
          break;
        case HashOn::Kind::kHeader:
          state.hash_on.source = detail::HashOn::Source::kHeader;
          state.hash_on.header = cluster.hash_on.header;
          break;
        case HashOn::Kind::kPath:
          state.hash_on.source = detail::HashOn::Source::kPath;
          break;
      }
      state.pool.connect_timeout = cluster.connect_timeout;
      state.pool.idle_timeout = cluster.idle_timeout;
      state.pool.max_idle_per_endpoint = cluster.max_idle_per_endpoint;
      state.resilience = resilience_.bind(cluster);
      state.pool.connections = state.resilience.health->connections;
    }
    return snapshot;
  }

  // Makes `snapshot`'s clusters the ones health checks probe and ejection
  // limits count.
  void install_resilience(const Snapshot& snapshot) {
    std::vector<const detail::gateway::ClusterResilience*> clusters;
    std::vector<detail::gateway::CheckTarget> targets;
    for (const ClusterState& cluster : snapshot.clusters) {
      const detail::gateway::ClusterResilience& shared = cluster.resilience;
      clusters.push_back(&shared);
      if (!shared.check) continue;
      for (std::size_t i = 0; i < cluster.endpoints.size(); ++i) {
        targets.push_back({shared.health, shared.endpoints[i], cluster.endpoints[i].sockaddr,
                           cluster.endpoints[i].length, *shared.check});
      }
    }
    resilience_.install(clusters, std::move(targets));
  }

  // The route set of `config` (null on errors), its groups added to `routes`.
  // Routes sharing a path are told apart by method, then by Host. Built in
  // a few allocations: a table of 120,000 routes is kept whole in memory.
  std::shared_ptr<RouteSet> build_routes(const GatewayConfig& config,
                                         const std::shared_ptr<Snapshot>& snapshot, Routes& routes,
                                         std::vector<ConfigDiagnostic>& errors) {
    const std::vector<Route>& from = config.routes;
    const std::uint32_t count = static_cast<std::uint32_t>(from.size());
    auto set = std::make_shared<RouteSet>();
    set->snapshot = snapshot;
    set->targets.reserve(count);
    for (const Route& route : from) {
      RouteTarget& target = set->targets.emplace_back();
      target.snapshot = snapshot.get();
      if (!route.hosts.empty()) target.edit().hosts = route.hosts;
      for (const std::string& method : route.methods) {
        if (const std::optional<Method> standard = parse_method(method)) {
          target.methods |= static_cast<std::uint16_t>(1u << static_cast<unsigned>(*standard));
        } else {
          target.edit().other_methods.push_back(method);
        }
      }
      target.timeout = route.timeout;
      if (const DirectResponse* respond = route.respond()) {
        target.respond = true;
        RouteTarget::Extras& answer = target.edit();
        answer.respond_status = static_cast<int>(respond->status);
        answer.respond_body = respond->body;
        answer.respond_type = respond->content_type;
      } else if (!route.split.empty()) {
        RouteTarget::Extras& split = target.edit();
        for (const WeightedCluster& weighted : route.split) {
          split.split.push_back({snapshot->cluster_index(weighted.cluster), weighted.weight});
          split.split_total += weighted.weight;
        }
        target.cluster = split.split.front().cluster;
      } else {
        target.cluster = snapshot->cluster_index(route.cluster);
      }
      if (route.options) {
        const auto& options = *route.options;
        RouteTarget::Extras& more = target.edit();
        for (const CanaryRule& rule : options.canary)
          more.canary.push_back({rule.header, rule.value, snapshot->cluster_index(rule.cluster)});
        more.retry = options.retry;
        more.strip_prefix = options.strip_prefix;
        more.host_rewrite = options.host_rewrite;
        for (const auto& [name, value] : options.request_headers.add)
          more.request_add.push_back({name, value});
        more.request_remove = options.request_headers.remove;
        for (const auto& [name, value] : options.response_headers.add)
          more.response_add.push_back({name, value});
        more.response_remove = options.response_headers.remove;
        more.bind_views();
      }
      if (!target.respond && target.cluster == detail::kNoEndpoint) {
        errors.push_back(plain_error("route \"" + route.path + "\": unknown cluster"));
        return nullptr;
      }
    }

    // The routes of each path, in file order; the paths in the order they
    // first appear (the order they reach the router, which reports conflicts).
    std::vector<std::uint32_t> order(count);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return from[a].path < from[b].path;
    });
    struct Range {
      std::uint32_t begin, end;  // in `order`
    };
    std::vector<Range> paths;
    std::size_t pattern_bytes = 0;
    for (std::uint32_t i = 0; i < count;) {
      std::uint32_t j = i + 1;
      while (j < count && from[order[j]].path == from[order[i]].path) ++j;
      paths.push_back({i, j});
      pattern_bytes += from[order[i]].path.size();
      i = j;
    }
    std::sort(paths.begin(), paths.end(),
              [&](const Range& a, const Range& b) { return order[a.begin] < order[b.begin]; });
    set->patterns.reserve(pattern_bytes);  // never reallocated: the targets view it
    for (const Range& range : paths) {
      const std::string_view path = from[order[range.begin]].path;
      const std::string_view pattern(set->patterns.data() + set->patterns.size(), path.size());
      set->patterns.append(path);
      for (std::uint32_t k = range.begin; k < range.end; ++k) set->targets[order[k]].pattern = pattern;
    }

    // Per method: the routes listing it (HEAD wherever GET is, forwarded as
    // HEAD), then those taking any method; and a group of the latter alone.
    struct GroupSpec {
      std::string_view method;  // empty: any method
      std::string_view pattern;
      std::uint32_t begin, size;  // in `members`
    };
    std::vector<GroupSpec> specs;
    std::vector<std::uint32_t> members;
    std::vector<std::pair<std::string_view, std::uint32_t>> listed;
    std::vector<std::uint32_t> any;
    for (const Range& range : paths) {
      listed.clear();
      any.clear();
      for (std::uint32_t k = range.begin; k < range.end; ++k) {
        const std::uint32_t index = order[k];
        const Route& route = from[index];
        if (route.methods.empty()) {
          any.push_back(index);
          continue;
        }
        for (const std::string& method : route.methods) {
          listed.emplace_back(method, index);
          if (method == "GET") listed.emplace_back("HEAD", index);
        }
      }
      std::stable_sort(listed.begin(), listed.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      listed.erase(std::unique(listed.begin(), listed.end()), listed.end());
      const std::string_view pattern = set->targets[order[range.begin]].pattern;
      for (std::size_t i = 0; i < listed.size();) {
        GroupSpec& spec = specs.emplace_back(GroupSpec{listed[i].first, pattern,
                                                       static_cast<std::uint32_t>(members.size()), 0});
        for (; i < listed.size() && listed[i].first == spec.method; ++i) members.push_back(listed[i].second);
        members.insert(members.end(), any.begin(), any.end());
        spec.size = static_cast<std::uint32_t>(members.size()) - spec.begin;
      }
      if (!any.empty()) {
        specs.push_back({{}, pattern, static_cast<std::uint32_t>(members.size()),
                         static_cast<std::uint32_t>(any.size())});
        members.insert(members.end(), any.begin(), any.end());
      }
    }

    set->members.reserve(members.size());
    for (const std::uint32_t index : members) set->members.push_back(&set->targets[index]);
    set->groups.reserve(specs.size());  // never reallocated: the handlers point in
    for (const GroupSpec& spec : specs) {
      set->groups.emplace_back(
          *this, std::span<const RouteTarget* const>(set->members.data() + spec.begin, spec.size));
    }
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const GroupSpec& spec = specs[i];
      RouteError error = spec.method.empty()
                             ? routes.add_any(spec.pattern, RouteSet::handler(set, i))
                             : routes.add(spec.method, spec.pattern, RouteSet::handler(set, i));
      if (error) {
        errors.push_back(plain_error("route \"" + std::string(spec.pattern) + "\": " + error.message()));
        return nullptr;
      }
    }
    return set;
  }

  ServerOptions admin_options() const {
    ServerOptions options;
    options.host = config_.admin->host;
    options.port = config_.admin->port;
    options.threads = 1;
    options.worker_threads = 1;
    options.handle_signals = false;
    options.server_name = "portico-admin";
    return options;
  }

  void add_admin_routes(Server& admin) {
    admin.get("/healthz", [](Request&, Response& res) { res.text("ok\n"); });
    admin.get("/ready", [this](Request&, Response& res) {
      if (ready_.load(std::memory_order_acquire)) {
        res.text("ready\n");
      } else {
        res.status(503).text("draining\n");
      }
    });
    admin.get("/", [](Request&, Response& res) {
      res.header("Cache-Control", "no-store");
      res.body(detail::status_page_html(), "text/html; charset=utf-8");
    });
    admin.get("/clusters", [this](Request&, Response& res) { res.json(clusters_json()); });
    admin.get("/routes", [this](Request&, Response& res) { res.json(routes_json()); });
    admin.get("/metrics", [this](Request&, Response& res) {
      res.body_source(metrics_source(), "text/plain; version=0.0.4; charset=utf-8");
    });
    admin.post("/reload", [this](Request&, Response& res) { answer_reload(res); },
               RouteOptions{.blocking = true});
  }

  void answer_reload(Response& res) {
    const ConfigResult result = reload_file();
    if (result.ok()) {
      std::size_t clusters = 0;
      std::size_t routes = 0;
      {
        std::lock_guard lock(mutex_);
        clusters = snapshot_->clusters.size();
        routes = route_set_->targets.size();
      }
      res.json(fmt::format("{{\"ok\": true, \"routes\": {}, \"clusters\": {}}}\n", routes, clusters));
      return;
    }
    std::string errors;
    for (const ConfigDiagnostic& error : result.errors)
      errors += (errors.empty() ? "" : ", ") + json_string(error.to_string());
    res.status(400).json("{\"ok\": false, \"errors\": [" + errors + "]}\n");
  }

  mutable std::mutex mutex_;
  // Before the servers: their routes' snapshots point to it.
  detail::gateway::Resilience resilience_;
  GatewayConfig config_;
  std::string config_path_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::shared_ptr<const RouteSet> route_set_;
  int access_log_fd_ = -1;
  Server server_;
  std::unique_ptr<Server> admin_;
  std::string setup_error_;
  std::atomic<bool> ready_{false};
  std::atomic<std::uint64_t> next_generation_{0};
  std::atomic<std::uint64_t> reloads_ok_{0};
  // Set by a reload: the config it replaced may have been allocated by
  // another thread (the first, by the one that made the Gateway), whose
  // allocator pages are only given back by a collect on that thread.
  std::atomic<bool> collect_due_{false};
  std::atomic<std::uint64_t> reloads_failed_{0};
};

Gateway::Gateway(GatewayConfig config) {
  if (std::vector<ConfigDiagnostic> errors = config.validate(); !errors.empty())
    throw std::invalid_argument(errors.front().to_string());
  impl_ = std::make_unique<Impl>(std::move(config));
}

Gateway::~Gateway() = default;

std::error_code Gateway::start() {
  return impl_->start();
}
const std::string& Gateway::setup_error() const noexcept {
  return impl_->setup_error();
}

std::error_code Gateway::run() {
  // SIGINT/SIGTERM drain, SIGHUP reloads: blocked before the servers'
  // threads start (they inherit the mask), taken here by sigtimedwait.
  sigset_t signals;
  sigset_t previous;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  if (!impl_->server().running()) {
    if (std::error_code error = start()) {
      pthread_sigmask(SIG_SETMASK, &previous, nullptr);
      return error;
    }
  }
  while (impl_->server().running()) {
    const timespec tick{0, 100 * 1000 * 1000};
    const int signal_number = sigtimedwait(&signals, nullptr, &tick);
    // This thread loaded the first config: what a reload freed of it comes
    // back to the system only through this thread's own collect.
    if (impl_->take_collect_due()) release_free_memory();
    if (signal_number == SIGINT || signal_number == SIGTERM) {
      stop();
    } else if (signal_number == SIGHUP) {
      const ConfigResult result = reload_file();
      for (const ConfigDiagnostic& error : result.errors)
        std::fprintf(stderr, "reload: %s\n", error.to_string().c_str());
      std::fprintf(stderr, "reload: %s\n", result.ok() ? "ok" : "failed; the old config serves");
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  wait();
  return {};
}

void Gateway::stop() noexcept {
  impl_->stop();
}
void Gateway::wait() {
  impl_->wait();
}
std::uint16_t Gateway::port() const noexcept {
  return impl_->server().port();
}
std::uint16_t Gateway::admin_port() const noexcept {
  Server* admin = impl_->admin();
  return admin != nullptr ? admin->port() : 0;
}
Server& Gateway::server() noexcept {
  return impl_->server();
}
std::vector<ConfigDiagnostic> Gateway::reload(GatewayConfig config) {
  return impl_->reload(std::move(config));
}
void Gateway::set_config_path(std::string path) {
  impl_->set_config_path(std::move(path));
}
ConfigResult Gateway::reload_file() {
  return impl_->reload_file();
}
std::uint64_t Gateway::reloads_ok() const noexcept {
  return impl_->reloads_ok();
}
std::uint64_t Gateway::reloads_failed() const noexcept {
  return impl_->reloads_failed();
}
StreamingHandler Gateway::proxy(std::string_view cluster) {
  return impl_->proxy(cluster);
}
std::string Gateway::clusters_json() const {
  return impl_->clusters_json();
}
std::string Gateway::routes_json() const {
  return impl_->routes_json();
}
std::string Gateway::metrics() const {
  return impl_->metrics();
}

Response::BodySource Gateway::metrics_source() const {
  return impl_->metrics_source();
}

}  // namespace v0
}  // namespace portico
