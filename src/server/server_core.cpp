// server/server_core.cpp — ServerCore: start (listeners, shards, workers),
// publishing route tables, stop, wait, the worker loop and stats.
// Thread-safety: see server_core.hpp.
#include "server/server_core.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "net/sockets.hpp"
#include "portico/detail/syscalls.hpp"
#include "server/local_replies.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

void ServerCore::replace_routes(Routes table, RouteRetention retention) {
  std::lock_guard lock(routes_mutex_);
  routes_ = std::move(table);
  routes_frozen_only_ = retention == RouteRetention::kFrozenOnly;
  // Kept for routes added later, without the room it grew into.
  if (!routes_frozen_only_) routes_.impl_->router.shrink_to_fit();
  if (!started_.load(std::memory_order_acquire)) return;
  publish_locked();
  // A whole table replaced (a gateway's reload) is often large: free it once
  // every reactor has passed a quiescent point (publish_locked() woke them),
  // rather than at the next change, which may be hours away. Bounded: a
  // reactor stuck in a handler only delays the free to the next publish.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (unsigned round = 0; table_->reclaim() != 0; ++round) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (round < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

FrozenRouter<RouteRef> ServerCore::freeze_routes_locked() {
  // Set before the table that needs it: a request is routed at its head
  // only when some route streams.
  if (routes_.impl_->streaming > 0) streaming_routes_.store(true, std::memory_order_relaxed);
  if (!routes_frozen_only_) return routes_.impl_->router.freeze();
  FrozenRouter<RouteRef> frozen = std::move(routes_.impl_->router).freeze();
  routes_ = Routes();
  return frozen;
}

void ServerCore::publish_locked() {
  table_->publish(freeze_routes_locked());
  // Wake every reactor so it passes a quiescent point soon; the old table is
  // freed by a later publish (or when the server goes).
  for (auto& shard : shards_) (void)shard->reactor.try_post([] {});
}

std::error_code ServerCore::start(std::string& message, std::uint16_t& bound_port) {
  if (started_.load(std::memory_order_acquire)) {
    message = "the server was already started";
    return std::make_error_code(std::errc::operation_in_progress);
  }
  const unsigned threads =
      options_.threads != 0 ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!parse_address(options_.host, options_.port, address, length)) {
    message = "host '" + options_.host + "' is not an IPv4 or IPv6 address";
    return std::make_error_code(std::errc::invalid_argument);
  }

  // Listeners: one per reactor with SO_REUSEPORT, so the kernel spreads
  // accepts. A fixed port is first probed without SO_REUSEPORT, so another
  // process on it is an error rather than a silent share of its traffic.
  std::vector<int> fds;
  auto close_all = [&fds] {
    for (int fd : fds) sys::close(fd);
  };
  std::error_code error;
  if (options_.port != 0 && threads > 1) {
    const int probe = open_listener(address, length, false, 1, error);
    if (probe < 0) {
      message =
          fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, error.message());
      return error;
    }
    sys::close(probe);
  }
  for (unsigned i = 0; i < threads; ++i) {
    const int fd = open_listener(address, length, threads > 1, options_.backlog, error);
    if (fd < 0) {
      close_all();
      message =
          fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, error.message());
      return error;
    }
    fds.push_back(fd);
    if (i == 0) {
      const std::uint16_t port = local_port(fd);
      set_port(address, port);
      bound_port = port;
    }
  }

  try {
    {
      std::lock_guard lock(routes_mutex_);
      table_ = std::make_unique<RouteTable>(freeze_routes_locked(), threads + 8);
    }
    for (unsigned i = 0; i < threads; ++i) {
      auto shard = std::make_unique<ReactorShard>(*this, options_);
      shard->listener.fd = fds[i];
      if (std::error_code add_error = shard->reactor.add(fds[i], EPOLLIN, &shard->listener)) {
        throw std::system_error(add_error, "epoll_ctl");
      }
      shard->reader.emplace(*table_->register_reader());
      shards_.push_back(std::move(shard));
    }
    fds.clear();  // owned by the listeners now
    jobs_ = std::make_unique<MpmcQueue<ServerExchange*>>(
        std::max<std::size_t>(2, options_.worker_queue_capacity));
  } catch (const std::exception& e) {
    for (auto& shard : shards_) {
      shard->listener.close();
      shard->reader.reset();
    }
    shards_.clear();
    close_all();
    message = std::string("cannot start the server: ") + e.what();
    if (const auto* se = dynamic_cast<const std::system_error*>(&e)) return se->code();
    return std::make_error_code(std::errc::not_enough_memory);
  }

  started_.store(true, std::memory_order_release);
  // With handle_signals, the server's threads never take SIGINT/SIGTERM:
  // run() waits for them on the caller's thread.
  sigset_t previous_mask;
  if (options_.handle_signals) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, &previous_mask);
  }
  for (unsigned i = 0; i < std::max(1u, options_.worker_threads); ++i) {
    workers_.emplace_back([this] { worker_main(); });
  }
  running_reactors_.store(static_cast<int>(threads), std::memory_order_release);
  for (auto& owned : shards_) {
    ReactorShard* shard = owned.get();
    shard->thread = std::thread([shard] { shard->thread_main(); });
  }
  if (options_.handle_signals) pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return {};
}

void ServerCore::worker_main() {
  for (;;) {
    ServerExchange* ex = nullptr;
    jobs_->pop(ex);
    if (ex == nullptr) return;  // shutdown sentinel
    try {
      ex->route->local().handler(ex->request, ex->response);
    } catch (...) {
      LocalReplies::internal_error(*ex);
    }
    ex->post_completion();
  }
}

void ServerCore::stop() noexcept {
  if (!started_.load(std::memory_order_acquire)) return;
  for (auto& owned : shards_) {
    ReactorShard* shard = owned.get();
    (void)shard->reactor.post([shard] { shard->begin_shutdown(); });
  }
}

void ServerCore::wait() {
  std::lock_guard lock(wait_mutex_);
  if (joined_ || !started_.load(std::memory_order_acquire)) return;
  for (auto& shard : shards_) {
    if (shard->thread.joinable()) shard->thread.join();
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) jobs_->push(nullptr);
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  // A Completion posted from a thread of the host's own may still be inside
  // post(), its task already run: the shards must outlive that call.
  for (auto& shard : shards_) {
    while (shard->foreign_posts.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }
  for (auto& shard : shards_) shard->listener.close();
  if (table_) (void)table_->reclaim();
  joined_ = true;
}

ServerStats ServerCore::stats() const noexcept {
  ServerStats s;
  if (!started_.load(std::memory_order_acquire)) return s;
  for (const auto& shard : shards_) {
    const ReactorStatsCounters& c = shard->counters;
    constexpr auto r = std::memory_order_relaxed;
    s.connections_accepted += c.accepted.load(r);
    s.connections_rejected += c.rejected.load(r);
    s.connections_open += c.open.load(r);
    s.requests += c.requests.load(r);
    s.responses_4xx += c.responses_4xx.load(r);
    s.responses_5xx += c.responses_5xx.load(r);
    s.rejected_503 += c.rejected_503.load(r);
    s.timeouts += c.timeouts.load(r);
    s.bad_requests += c.bad_requests.load(r);
    s.timer_arms += shard->reactor.stats().timer_arms;
    for (std::size_t i = 0; i < kErrorLabelCount; ++i)
      s.replies_by_label[i] += c.replies[i].load(r);
  }
  std::lock_guard lock(routes_mutex_);
  s.route_tables_retired = table_ ? table_->pending_reclaim() : 0;
  return s;
}

MetricsSnapshot ServerCore::metrics_snapshot() const {
  MetricsSnapshot snapshot;
  snapshot.server = stats();
  if (!started_.load(std::memory_order_acquire)) return snapshot;
  std::vector<KeyedSeries> collected;
  for (const auto& shard : shards_) {
    shard->request_metrics.collect(collected);
    snapshot.series_dropped += shard->request_metrics.dropped();
  }
  merge_series(collected, snapshot.requests, snapshot.phases);
  return snapshot;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
