// server/reactor_shard.hpp (internal) — ReactorShard: everything one reactor
// thread owns: its reactor, buffer pool, listener, connections, pooled
// exchanges, its IoBatcher, the Date line, the access log, shutdown.
// Thread-safety: every member belongs to the shard's thread, except
// `counters` (read by any thread) and `reactor.post()`.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "net/io_batcher.hpp"
#include "net/state_heap.hpp"
#include "portico/buffer_pool.hpp"
#include "portico/reactor.hpp"
#include "portico/server.hpp"
#include "server/listener.hpp"
#include "server/request_metrics.hpp"
#include "server/routes.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ServerCore;
class ServerConnection;
struct ServerExchange;

// Relaxed single-writer counters: the owning reactor bumps, anyone reads.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

struct ReactorStatsCounters {
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, requests{0}, responses_4xx{0},
      responses_5xx{0}, rejected_503{0}, timeouts{0}, bad_requests{0};
  std::atomic<std::size_t> open{0};
  // Local replies by label (ServerStats::replies_by_label).
  std::array<std::atomic<std::uint64_t>, kErrorLabelCount> replies{};

  void count_reply(ErrorLabel label) noexcept { bump(replies[static_cast<std::size_t>(label)]); }
};

// State another layer keeps per reactor (the gateway's upstream pools and
// balancers): made on the reactor's thread when first needed, destroyed
// there once every client connection is closed.
struct ShardExtension {
  virtual ~ShardExtension() = default;
};

struct ReactorShard {
  ReactorShard(ServerCore& core_ref, const ServerOptions& options);

  ServerCore& core;
  Reactor reactor;
  BufferPool pool;
  std::optional<RouteTable::Reader> reader;
  Listener listener;
  StateHeap heap;
  std::thread thread;

  // Serialised output and the batched reads and sends of every stream this
  // reactor serves.
  IoBatcher batcher;
  std::string date_line;
  // "HTTP/1.1 200 OK", Server and Date: what most responses start with, in
  // one append (refreshed with date_line).
  std::string ok_head;
  std::time_t date_second = 0;
  std::string access_log;
  // A body source's piece (Response::body_source), its capacity kept.
  std::string source_piece;

  ServerExchange* free_exchanges = nullptr;
  std::size_t free_exchange_count = 0;
  ServerConnection* connections = nullptr;  // intrusive list of every live connection
  std::size_t connection_count = 0;
  std::size_t deferred_outstanding = 0;
  bool shutting_down = false;
  // Posts from other threads (a Completion's write or done(), maybe on a
  // thread nobody joins) still inside reactor.post(): the queue may hand
  // the task to the reactor, and the server go, before post() returns, so
  // ServerCore::wait() waits for this to drop to 0 first.
  std::atomic<unsigned> foreign_posts{0};
  template <class Task>
  void post_from_another_thread(Task&& task) {
    foreign_posts.fetch_add(1, std::memory_order_relaxed);
    reactor.post(std::forward<Task>(task));
    foreign_posts.fetch_sub(1, std::memory_order_release);
  }
  Timer shutdown_timer;
  ReactorStatsCounters counters;
  // Request series (written here, read by scrapers; ServerOptions::metrics).
  RequestMetrics request_metrics;
  // Peer addresses of live connections, asked for on every proxied request
  // (X-Forwarded-For): the kernel once per connection, then this table,
  // by fd; a connection's close clears its entry.
  struct PeerAddress {
    const void* connection = nullptr;
    socklen_t length = 0;
    sockaddr_in6 address{};  // large enough for an IPv4 address too
  };
  std::array<PeerAddress, 256> peer_addresses{};

  // Per-reactor state of other layers, by their key (few: a linear search).
  std::vector<std::pair<const void*, std::unique_ptr<ShardExtension>>> extensions;

  ShardExtension* extension(const void* key) const noexcept {
    for (const auto& [owner, state] : extensions) {
      if (owner == key) return state.get();
    }
    return nullptr;
  }

  ServerExchange* acquire_exchange(ServerConnection* connection);
  void release_exchange(ServerExchange* exchange) noexcept;
  void refresh_date() noexcept;
  void begin_shutdown() noexcept;
  void maybe_finish_shutdown() noexcept;
  void thread_main();
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
