// gateway/resilience.cpp — shared endpoint health, ejections and the
// resilience thread's health checks (see resilience.hpp).
#include "gateway/resilience.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "gateway/upstream_pool.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {
namespace {

std::int64_t unix_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool same_check(const HealthCheck& a, const HealthCheck& b) noexcept {
  return a.path == b.path && a.interval == b.interval && a.timeout == b.timeout &&
         a.healthy_threshold == b.healthy_threshold &&
         a.unhealthy_threshold == b.unhealthy_threshold;
}

}  // namespace

// ---- the resilience thread's parts --------------------------------------------------

// Ends one ejection when it expires.
class Resilience::Expiry {
 public:
  Expiry(Resilience& owner, std::shared_ptr<ClusterShared> its_cluster,
         std::shared_ptr<EndpointHealth> its_endpoint, std::int64_t ends) noexcept
      : owner_(owner),
        cluster(std::move(its_cluster)),
        endpoint(std::move(its_endpoint)),
        until(ends),
        timer(&Expiry::on_timer, this) {}

  Resilience& owner_;
  std::shared_ptr<ClusterShared> cluster;
  std::shared_ptr<EndpointHealth> endpoint;
  std::int64_t until;  // the ejection it ends (a later one has its own)
  bool done = false;
  Timer timer;

 private:
  static void on_timer(Timer& timer, void* context) noexcept {
    (void)timer;
    auto* self = static_cast<Expiry*>(context);
    self->owner_.end_ejection(self);
  }
};

// One endpoint's active health check: `GET path` every interval on a
// connection of its own pool (kept alive between checks), a pass for a 2xx
// within the timeout.
class Resilience::Probe final : public UpstreamHandler {
 public:
  Probe(Resilience& owner, CheckTarget target)
      : owner_(owner),
        target_(std::move(target)),
        pool_(UpstreamIo{owner.loop_, owner.buffers_, owner.batcher_, owner.heap_},
              target_.address, target_.length, pool_options(target_.check)),
        interval_timer_(&Probe::on_interval, this),
        timeout_timer_(&Probe::on_check_timeout, this),
        request_(fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: portico-health-check\r\n"
                             "Accept: */*\r\n\r\n",
                             target_.check.path, target_.endpoint->address)) {
    owner_.loop_.arm(interval_timer_, std::chrono::milliseconds(0));  // the first check now
  }
  ~Probe() {
    if (connection_ != nullptr) pool_.release(*std::exchange(connection_, nullptr));
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  const CheckTarget& target() const noexcept { return target_; }

  void on_upstream_connected(UpstreamConnection&) noexcept override {}
  void on_upstream_connect_failed(UpstreamConnection&, ConnectFailure) noexcept override {
    finish(false);
  }
  void on_upstream_head(UpstreamConnection&, const UpstreamResponseHead& head) noexcept override {
    status_ = head.status;
  }
  void on_upstream_body(UpstreamConnection&, std::string_view) noexcept override {}
  void on_upstream_complete(UpstreamConnection&, bool) noexcept override {
    finish(status_ >= 200 && status_ < 300);
  }
  void on_upstream_error(UpstreamConnection&, ErrorLabel) noexcept override { finish(false); }
  void on_upstream_writable(UpstreamConnection&) noexcept override {}

 private:
  static UpstreamPoolOptions pool_options(const HealthCheck& check) {
    UpstreamPoolOptions options;
    options.connect_timeout = check.timeout;
    options.idle_timeout = std::chrono::milliseconds(0);  // the upstream's close is seen anyway
    options.max_idle_per_endpoint = 1;
    return options;
  }

  static void on_interval(Timer&, void* context) noexcept {
    auto* self = static_cast<Probe*>(context);
    self->start();
  }
  static void on_check_timeout(Timer&, void* context) noexcept {
    static_cast<Probe*>(context)->finish(false);
  }

  void start() noexcept {
    status_ = 0;
    connection_ = pool_.acquire(*this);
    if (connection_ == nullptr) {
      finish(false);
      return;
    }
    owner_.loop_.arm(timeout_timer_, target_.check.timeout);
    connection_->send(request_);
    connection_->end_request();
  }

  // One check's outcome; the next starts an interval later.
  void finish(bool pass) noexcept {
    owner_.loop_.cancel(timeout_timer_);
    if (connection_ != nullptr) pool_.release(*std::exchange(connection_, nullptr));
    owner_.check_result(*target_.cluster, *target_.endpoint, target_.check, pass, passes_,
                        failures_);
    owner_.loop_.arm(interval_timer_, target_.check.interval);
  }

  Resilience& owner_;
  CheckTarget target_;
  UpstreamPool pool_;
  Timer interval_timer_;
  Timer timeout_timer_;
  UpstreamConnection* connection_ = nullptr;
  int status_ = 0;
  unsigned passes_ = 0;
  unsigned failures_ = 0;
  std::string request_;
};

// ---- Resilience -------------------------------------------------------------------------

Resilience::Resilience()
    : thread_([this] {
        buffers_.bind_to_current_thread();
        loop_.run();
      }) {}

Resilience::~Resilience() {
  // The checks' connections and timers go on their own thread.
  loop_.post([this] {
    probes_.clear();
    expiries_.clear();
    loop_.stop();
  });
  thread_.join();
}

ClusterResilience Resilience::bind(const Cluster& cluster) {
  ClusterResilience out;
  out.check = cluster.health_check;
  out.outlier = cluster.outlier_detection;
  out.breaker = cluster.circuit_breaker;
  out.retry = cluster.retry;
  std::lock_guard lock(mutex_);
  const auto found = clusters_.find(cluster.name);
  out.health = found != clusters_.end() ? found->second : std::make_shared<ClusterShared>(cluster.name);
  for (const Endpoint& endpoint : cluster.endpoints) {
    std::shared_ptr<EndpointHealth> health;
    for (const auto& known : out.health->endpoints) {
      if (known->address == endpoint.address) health = known;
    }
    for (const auto& bound : out.endpoints) {  // the same address twice: one endpoint's health
      if (bound->address == endpoint.address) health = bound;
    }
    out.endpoints.push_back(health ? health : std::make_shared<EndpointHealth>(endpoint.address));
  }
  return out;
}

void Resilience::install(const std::vector<const ClusterResilience*>& clusters,
                         std::vector<CheckTarget> targets) {
  {
    std::lock_guard lock(mutex_);
    std::unordered_map<std::string, std::shared_ptr<ClusterShared>> current;
    for (const ClusterResilience* cluster : clusters) {
      ClusterShared& health = *cluster->health;
      health.endpoints = cluster->endpoints;
      for (const auto& endpoint : health.endpoints) {
        // Without checks (now), the checks' verdict no longer holds; without
        // outlier detection, neither do ejections.
        if (!cluster->check) endpoint->healthy.store(true, std::memory_order_relaxed);
        if (!cluster->outlier) endpoint->ejected_until_ms.store(0, std::memory_order_relaxed);
        refresh(health, *endpoint);
      }
      current.emplace(health.name, cluster->health);
    }
    clusters_ = std::move(current);
  }
  loop_.post([this, targets = std::move(targets)]() mutable { run_install(std::move(targets)); });
}

void Resilience::run_install(std::vector<CheckTarget> targets) {
  std::unordered_map<const EndpointHealth*, std::unique_ptr<Probe>> probes;
  for (CheckTarget& target : targets) {
    const EndpointHealth* key = target.endpoint.get();
    if (probes.count(key) != 0) continue;
    const auto kept = probes_.find(key);
    if (kept != probes_.end() && same_check(kept->second->target().check, target.check) &&
        std::memcmp(&kept->second->target().address, &target.address, target.length) == 0) {
      probes.emplace(key, std::move(kept->second));
      continue;
    }
    try {
      probes.emplace(key, std::make_unique<Probe>(*this, std::move(target)));
    } catch (...) {
      // Out of memory: that endpoint goes unchecked (it stays as it is).
    }
  }
  probes_ = std::move(probes);  // those not kept close their connections
}

void Resilience::check_result(ClusterShared& cluster, EndpointHealth& endpoint,
                              const HealthCheck& check, bool pass, unsigned& passes,
                              unsigned& failures) noexcept {
  const bool healthy = endpoint.healthy.load(std::memory_order_relaxed);
  if (pass) {
    failures = 0;
    ++passes;
    if (healthy || passes < check.healthy_threshold) return;
  } else {
    passes = 0;
    ++failures;
    if (!healthy || failures < check.unhealthy_threshold) return;
  }
  std::lock_guard lock(mutex_);
  endpoint.healthy.store(pass, std::memory_order_relaxed);
  refresh(cluster, endpoint);
}

void Resilience::refresh(ClusterShared& cluster, EndpointHealth& endpoint) noexcept {
  endpoint.available.store(endpoint.healthy.load(std::memory_order_relaxed) &&
                               endpoint.ejected_until_ms.load(std::memory_order_relaxed) == 0,
                           std::memory_order_relaxed);
  std::uint32_t unavailable = 0;
  for (const auto& member : cluster.endpoints)
    unavailable += member->available.load(std::memory_order_relaxed) ? 0 : 1;
  cluster.unavailable.store(unavailable, std::memory_order_relaxed);
}

// ---- the error_rate breaker ------------------------------------------------------------

ErrorRateState::Admit ErrorRateState::admit(std::int64_t now) noexcept {
  State state = state_.load(std::memory_order_acquire);
  if (state == State::kClosed) return Admit::kYes;
  if (state == State::kOpen) {
    if (now < open_until_.load(std::memory_order_relaxed)) return Admit::kNo;
    state_.compare_exchange_strong(state, State::kHalfOpen, std::memory_order_acq_rel);
  }
  std::uint32_t probes = probes_.load(std::memory_order_relaxed);
  do {
    if (probes >= kProbes) return Admit::kNo;
  } while (!probes_.compare_exchange_weak(probes, probes + 1, std::memory_order_relaxed));
  return Admit::kProbe;
}

void ErrorRateState::record(const ErrorRateBreaker& settings, std::int64_t now, bool error,
                            bool probe) noexcept {
  if (probe) {
    probes_.fetch_sub(1, std::memory_order_relaxed);
    if (error) {
      open(settings, now);
    } else if (state_.load(std::memory_order_relaxed) == State::kHalfOpen) {
      for (Slice& slice : slices_) slice.index.store(-1, std::memory_order_relaxed);
      state_.store(State::kClosed, std::memory_order_release);  // a probe passed
    }
    return;
  }
  if (state_.load(std::memory_order_relaxed) != State::kClosed) return;
  const std::int64_t width = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(settings.window).count() / 10, 1);
  const std::int64_t index = now / width;
  Slice& slice = slices_[index % 10];
  std::int64_t seen = slice.index.load(std::memory_order_relaxed);
  if (seen != index && slice.index.compare_exchange_strong(seen, index, std::memory_order_relaxed)) {
    slice.requests.store(0, std::memory_order_relaxed);  // a new slice (a count racing in is lost)
    slice.errors.store(0, std::memory_order_relaxed);
  }
  slice.requests.fetch_add(1, std::memory_order_relaxed);
  if (!error) return;
  slice.errors.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  for (const Slice& each : slices_) {
    const std::int64_t at = each.index.load(std::memory_order_relaxed);
    if (at < 0 || at <= index - 10) continue;  // outside the window
    requests += each.requests.load(std::memory_order_relaxed);
    errors += each.errors.load(std::memory_order_relaxed);
  }
  if (requests >= settings.min_requests &&
      static_cast<double>(errors) >= settings.threshold * static_cast<double>(requests))
    open(settings, now);
}

void ErrorRateState::open(const ErrorRateBreaker& settings, std::int64_t now) noexcept {
  open_until_.store(now + std::chrono::duration_cast<std::chrono::nanoseconds>(settings.open_for).count(),
                    std::memory_order_relaxed);
  state_.store(State::kOpen, std::memory_order_release);
}

// ---- passive outlier detection ----------------------------------------------------------

void Resilience::connect_failed(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept {
  if (!cluster.outlier) return;
  EndpointHealth& health = *cluster.endpoints[endpoint];
  const std::uint32_t count =
      health.consecutive_connect_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (count >= cluster.outlier->consecutive_connect_failures) eject(cluster, endpoint);
}

void Resilience::connected(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept {
  if (!cluster.outlier) return;
  std::atomic<std::uint32_t>& count = cluster.endpoints[endpoint]->consecutive_connect_failures;
  // Read first: a healthy endpoint's counter is written by no reactor.
  if (count.load(std::memory_order_relaxed) != 0) count.store(0, std::memory_order_relaxed);
}

void Resilience::responded(const ClusterResilience& cluster, std::uint32_t endpoint,
                           bool server_error) noexcept {
  if (!cluster.outlier) return;
  std::atomic<std::uint32_t>& count = cluster.endpoints[endpoint]->consecutive_5xx;
  if (!server_error) {
    if (count.load(std::memory_order_relaxed) != 0) count.store(0, std::memory_order_relaxed);
    return;
  }
  if (count.fetch_add(1, std::memory_order_relaxed) + 1 >= cluster.outlier->consecutive_5xx)
    eject(cluster, endpoint);
}

void Resilience::eject(const ClusterResilience& cluster, std::uint32_t endpoint) noexcept {
  const OutlierDetection& outlier = *cluster.outlier;
  const std::shared_ptr<EndpointHealth>& health = cluster.endpoints[endpoint];
  std::int64_t until = 0;
  {
    std::lock_guard lock(mutex_);
    if (health->ejected_until_ms.load(std::memory_order_relaxed) != 0) return;
    const std::vector<std::shared_ptr<EndpointHealth>>& members = cluster.health->endpoints;
    if (std::find(members.begin(), members.end(), health) == members.end()) return;  // reloaded away
    std::size_t ejected = 0;
    for (const auto& member : members)
      ejected += member->ejected_until_ms.load(std::memory_order_relaxed) != 0 ? 1 : 0;
    // Never more than max_ejection_percent of the cluster at once.
    if ((ejected + 1) * 100 > std::size_t{outlier.max_ejection_percent} * members.size()) return;
    const std::uint32_t times = health->ejections.load(std::memory_order_relaxed) + 1;
    health->ejections.store(times, std::memory_order_relaxed);
    const auto length = std::min<std::chrono::milliseconds>(outlier.base_ejection * times,
                                                            outlier.max_ejection);
    until = unix_ms() + std::max<std::int64_t>(length.count(), 1);
    health->ejected_until_ms.store(until, std::memory_order_relaxed);
    health->consecutive_5xx.store(0, std::memory_order_relaxed);
    health->consecutive_connect_failures.store(0, std::memory_order_relaxed);
    refresh(*cluster.health, *health);
  }
  const auto delay = std::chrono::milliseconds(until - unix_ms());
  loop_.post([this, cluster = cluster.health, health, until, delay] {
    std::erase_if(expiries_, [](const std::unique_ptr<Expiry>& expiry) { return expiry->done; });
    try {
      expiries_.push_back(std::make_unique<Expiry>(*this, cluster, health, until));
      loop_.arm(expiries_.back()->timer, std::max(delay, std::chrono::milliseconds(0)));
    } catch (...) {
      std::lock_guard lock(mutex_);  // no timer to end it: end it now
      if (health->ejected_until_ms.load(std::memory_order_relaxed) == until) {
        health->ejected_until_ms.store(0, std::memory_order_relaxed);
        refresh(*cluster, *health);
      }
    }
  });
}

void Resilience::end_ejection(Expiry* expiry) noexcept {
  expiry->done = true;
  std::lock_guard lock(mutex_);
  EndpointHealth& health = *expiry->endpoint;
  if (health.ejected_until_ms.load(std::memory_order_relaxed) != expiry->until) return;
  health.ejected_until_ms.store(0, std::memory_order_relaxed);
  refresh(*expiry->cluster, health);
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
