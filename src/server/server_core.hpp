// server/server_core.hpp (internal) — ServerCore: what a Server owns behind
// its public face: options, routes and their published table, the reactor
// shards, the worker pool for blocking handlers, start/stop/wait and stats.
// Thread-safety: route changes, stats() and stop() from any thread (routes
// under a lock); start() and wait() from the thread that owns the Server.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "http1/parser.hpp"
#include "portico/metrics.hpp"
#include "portico/mpmc_queue.hpp"
#include "portico/server.hpp"
#include "server/reactor_shard.hpp"
#include "server/routes.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

struct ServerExchange;

class ServerCore {
 public:
  explicit ServerCore(const ServerOptions& options) : options_(options) {
    server_line_ =
        options.server_name.empty() ? std::string() : "Server: " + options.server_name + "\r\n";
    limits_ = http1::Limits{.max_request_line = options.max_request_line,
                            .max_header_bytes = options.max_header_bytes,
                            .max_header_count = options.max_header_count,
                            .max_body_bytes = options.max_body_bytes};
  }
  ~ServerCore() { stop_and_wait(); }

  // Applies `change` (a call on the route set) under the routes lock and, once
  // started, publishes the new table. Every route change goes through here.
  template <class Change>
  RouteError change_routes(Change&& change) {
    std::lock_guard lock(routes_mutex_);
    if (routes_frozen_only_) {
      return RouteError(RouteErrc::kFrozen, 0,
                        "the route table was published with RouteRetention::kFrozenOnly: "
                        "build a Routes and publish it whole with routes()");
    }
    RouteError error = change(routes_);
    if (!error && started_.load(std::memory_order_acquire)) publish_locked();
    return error;
  }
  void use(Middleware middleware) { middleware_.push_back(std::move(middleware)); }
  void replace_routes(Routes table, RouteRetention retention);
  std::error_code start(std::string& message, std::uint16_t& port);
  void stop() noexcept;
  void wait();
  void stop_and_wait() noexcept {
    stop();
    wait();
  }
  bool running() const noexcept { return running_reactors_.load(std::memory_order_acquire) > 0; }
  bool started() const noexcept { return started_.load(std::memory_order_acquire); }
  ServerStats stats() const noexcept;
  MetricsSnapshot metrics_snapshot() const;

  const ServerOptions& options() const noexcept { return options_; }
  const std::string& server_line() const noexcept { return server_line_; }
  const http1::Limits& limits() const noexcept { return limits_; }
  std::vector<Middleware>& middleware() noexcept { return middleware_; }
  RouteTable& table() noexcept { return *table_; }
  // Some route (now or before) has a StreamingHandler.
  bool streaming_routes() const noexcept { return streaming_routes_.load(std::memory_order_relaxed); }
  bool offload(ServerExchange* exchange) noexcept { return jobs_ && jobs_->try_push(exchange); }
  void reactor_exited() noexcept { running_reactors_.fetch_sub(1, std::memory_order_acq_rel); }

 private:
  void publish_locked();
  void worker_main();

  ServerOptions options_;
  http1::Limits limits_;  // the parser's, from options_
  std::string server_line_;
  std::vector<Middleware> middleware_;
  mutable std::mutex routes_mutex_;  // serialises route changes and publishing
  Routes routes_;
  // routes_ is published by moving its builder into the frozen table, then
  // emptied (RouteRetention::kFrozenOnly): no route can be added to it.
  bool routes_frozen_only_ = false;
  // The frozen table of routes_ (consumed with routes_frozen_only_).
  // REQUIRES: routes_mutex_ held.
  FrozenRouter<RouteRef> freeze_routes_locked();
  std::unique_ptr<RouteTable> table_;
  std::vector<std::unique_ptr<ReactorShard>> shards_;
  std::unique_ptr<MpmcQueue<ServerExchange*>> jobs_;
  std::vector<std::thread> workers_;
  std::atomic<int> running_reactors_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> streaming_routes_{false};
  std::mutex wait_mutex_;
  bool joined_ = false;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
