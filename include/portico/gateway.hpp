// portico/gateway.hpp — Gateway: a reverse proxy and load balancer over
// portico::Server, configured by a GatewayConfig (GATEWAY.md): routes to
// upstream clusters, bodies streamed both ways, hot reload, an admin
// listener. Run it whole, or proxy some routes of a host's own Server.
// Thread-safety: every member may be called from any thread; reload() and
// the admin listener's /reload serialise on one lock.
// Lifetimes: a Gateway must outlive every Server it handed proxy() handlers
// to (stop that server first).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "portico/gateway_config.hpp"
#include "portico/server.hpp"

namespace portico {
inline namespace v0 {

class Gateway {
 public:
  // REQUIRES: config.validate() is empty (GatewayConfig::load checks it).
  // Throws std::invalid_argument when it is not, with the first error.
  explicit Gateway(GatewayConfig config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // ---- a whole gateway ----------------------------------------------------
  // Binds config.listen (and config.admin, when set) and starts serving.
  // Errors: address in use (the message names it), bad host.
  std::error_code start();
  // The message of the error start() returned.
  const std::string& setup_error() const noexcept;
  // start() (unless started), then serve until SIGINT or SIGTERM (a
  // graceful drain) or stop(); SIGHUP reloads the config file.
  std::error_code run();
  void stop() noexcept;
  void wait();
  // The bound ports (after start(); 0 without an admin listener).
  std::uint16_t port() const noexcept;
  std::uint16_t admin_port() const noexcept;
  // The traffic server (its stats, for instance).
  Server& server() noexcept;

  // ---- hot reload ---------------------------------------------------------
  // Replaces routes and clusters in one step: requests in flight finish on
  // the old ones; pools of endpoints that remain are kept, removed ones
  // close once idle. An invalid config changes nothing; its errors are
  // returned. Listener, admin and server keys keep their first values.
  std::vector<ConfigDiagnostic> reload(GatewayConfig config);
  // The file reload_file() reads (SIGHUP, POST /reload on the admin listener).
  void set_config_path(std::string path);
  ConfigResult reload_file();
  // Reloads so far, by result.
  std::uint64_t reloads_ok() const noexcept;
  std::uint64_t reloads_failed() const noexcept;

  // ---- embedding ----------------------------------------------------------
  // A handler for a host's own Server that proxies to `cluster` (a cluster
  // of this gateway's config), streaming both ways, with upstream pools on
  // the host server's reactors: server.any("/api/*rest", gw.proxy("users")).
  // The forwarded path is the request's own. Throws std::invalid_argument
  // for an unknown cluster.
  StreamingHandler proxy(std::string_view cluster);

  // ---- admin views (GATEWAY.md, Admin listener) ---------------------------
  std::string clusters_json() const;
  std::string routes_json() const;
  // GET /metrics: Prometheus text format 0.0.4, the traffic server's
  // request series (Server::metrics()) and the upstream series.
  std::string metrics() const;
  // The same a piece at a time, for Response::body_source() (what the admin
  // listener serves): never held whole, however many routes saw traffic.
  Response::BodySource metrics_source() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace v0
}  // namespace portico
