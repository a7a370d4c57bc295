// gateway/resilience.hpp (internal) — what every reactor shares about a
// cluster's endpoints: whether each is healthy (active checks), whether it
// is ejected (passive outlier detection) and so whether balancers may pick
// it; and the process's one resilience thread, which runs the checks and
// ends ejections when they expire.
// Thread-safety: an EndpointHealth's atomics are read by any thread; its
// state changes (healthy, ejected) under Resilience's mutex, made by
// reactors (an ejection) and by the resilience thread (checks, expiries).
// Lifetimes: EndpointHealth and ClusterShared are shared by every Snapshot
// that names them and by the registry of the current one, so an endpoint
// keeps its health and ejections across reloads while its cluster keeps
// its address.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/io_batcher.hpp"
#include "net/state_heap.hpp"
#include "portico/buffer_pool.hpp"
#include "portico/gateway_config.hpp"
#include "portico/reactor.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

struct EndpointHealth {
  explicit EndpointHealth(std::string endpoint_address) : address(std::move(endpoint_address)) {}

  const std::string address;
  // Healthy and not ejected: balancers may pick it.
  std::atomic<bool> available{true};
  std::atomic<bool> healthy{true};  // the active checks' verdict; endpoints start healthy
  // Unix time in milliseconds the ejection ends; 0: not ejected.
  std::atomic<std::int64_t> ejected_until_ms{0};
  std::atomic<std::uint32_t> ejections{0};
  // Passive outlier detection, counted from every reactor.
  std::atomic<std::uint32_t> consecutive_5xx{0};
  std::atomic<std::uint32_t> consecutive_connect_failures{0};
};

// The error_rate breaker (GATEWAY.md, circuit_breaker.error_rate): requests
// and errors counted over `window` in ten slices, every reactor writing;
// open past the threshold, half-open after open_for, when a few probe
// requests decide.
class ErrorRateState {
 public:
  enum class State : std::uint8_t { kClosed, kOpen, kHalfOpen };
  enum class Admit : std::uint8_t { kYes, kProbe, kNo };
  // Requests let through at once while half-open.
  static constexpr std::uint32_t kProbes = 3;

  // Whether a request may go now (`now`: steady clock nanoseconds).
  Admit admit(std::int64_t now) noexcept;
  // A request admitted by admit() ended: an error (5xx, reset, timeout,
  // connect failure) or not.
  void record(const ErrorRateBreaker& settings, std::int64_t now, bool error, bool probe) noexcept;
  // A probe ended without an outcome (the client went first).
  void abandon_probe() noexcept { probes_.fetch_sub(1, std::memory_order_relaxed); }
  State state() const noexcept { return state_.load(std::memory_order_relaxed); }

 private:
  struct Slice {
    std::atomic<std::int64_t> index{-1};
    std::atomic<std::uint32_t> requests{0};
    std::atomic<std::uint32_t> errors{0};
  };
  void open(const ErrorRateBreaker& settings, std::int64_t now) noexcept;

  std::atomic<State> state_{State::kClosed};
  std::atomic<std::int64_t> open_until_{0};
  std::atomic<std::uint32_t> probes_{0};
  Slice slices_[10];
};

struct ClusterShared {
  explicit ClusterShared(std::string cluster_name) : name(std::move(cluster_name)) {}

  const std::string name;
  // The circuit breaker's counts, all reactors together.
  std::atomic<std::uint32_t> requests{0};  // in flight (admitted, not ended)
  std::atomic<std::uint32_t> pending{0};   // waiting for room
  std::atomic<std::uint32_t> retries{0};   // retries in flight
  // Upstream connections open (connecting, busy or pooled), written by pools.
  std::shared_ptr<std::atomic<std::uint32_t>> connections =
      std::make_shared<std::atomic<std::uint32_t>>(0);
  ErrorRateState error_rate;
  // How many of the current config's endpoints are unavailable: 0 lets a
  // pick skip reading each endpoint's flag.
  std::atomic<std::uint32_t> unavailable{0};
  // The current config's endpoints (under Resilience's mutex).
  std::vector<std::shared_ptr<EndpointHealth>> endpoints;
};

// A cluster's resilience settings and shared state, as a Snapshot holds it.
struct ClusterResilience {
  std::shared_ptr<ClusterShared> health;
  std::vector<std::shared_ptr<EndpointHealth>> endpoints;  // the snapshot's order
  std::optional<HealthCheck> check;
  std::optional<OutlierDetection> outlier;
  CircuitBreaker breaker;
  std::optional<RetryPolicy> retry;  // a route's own replaces it
};

// What the resilience thread checks: one endpoint of one cluster.
struct CheckTarget {
  std::shared_ptr<ClusterShared> cluster;
  std::shared_ptr<EndpointHealth> endpoint;
  sockaddr_storage address{};
  socklen_t length = 0;
  HealthCheck check;
};

class Resilience {
 public:
  // Starts the resilience thread.
  Resilience();
  ~Resilience();
  Resilience(const Resilience&) = delete;
  Resilience& operator=(const Resilience&) = delete;

  // The shared health of `cluster`'s endpoints (by address), reused from
  // the current config where it has them. Changes nothing current: a
  // reload that fails after this leaves everything as it was.
  ClusterResilience bind(const Cluster& cluster);
  // Makes `clusters` (bound above) the current config: their endpoints are
  // the ones ejection percentages count and checks probe; endpoints of a
  // cluster without checks are healthy again.
  void install(const std::vector<const ClusterResilience*>& clusters,
               std::vector<CheckTarget> targets);

  // ---- outcomes, from any reactor -------------------------------------------
  void connect_failed(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept;
  void connected(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept;
  // A response (or failure) after the request went: a 5xx status, a reset,
  // an invalid response or a timeout is a server error.
  void responded(const ClusterResilience& cluster, std::uint32_t endpoint,
                 bool server_error) noexcept;

  // ---- for the resilience thread's own parts --------------------------------
  class Probe;
  class Expiry;
  void check_result(ClusterShared& cluster, EndpointHealth& endpoint, const HealthCheck& check,
                    bool pass, unsigned& passes, unsigned& failures) noexcept;
  void end_ejection(Expiry* expiry) noexcept;

 private:
  void eject(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept;
  // available = healthy && !ejected, and the cluster's count of the
  // unavailable. REQUIRES: mutex_ held.
  void refresh(ClusterShared& cluster, EndpointHealth& endpoint) noexcept;
  void run_install(std::vector<CheckTarget> targets);

  std::mutex mutex_;
  // The current config's clusters, by name.
  std::unordered_map<std::string, std::shared_ptr<ClusterShared>> clusters_;

  // The resilience thread's own (touched only there once it runs).
  Reactor loop_;
  BufferPool buffers_;
  IoBatcher batcher_;
  StateHeap heap_;
  std::unordered_map<const EndpointHealth*, std::unique_ptr<Probe>> probes_;
  std::vector<std::unique_ptr<Expiry>> expiries_;
  std::thread thread_;
};

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
