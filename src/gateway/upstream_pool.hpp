// gateway/upstream_pool.hpp (internal) — UpstreamPool: one endpoint's
// upstream connections on one reactor: idle ones kept (LIFO) for reuse, new
// ones connected on demand, counts of both for /clusters and metrics.
// Thread-safety: owned by one reactor thread; counts read there.
// Lifetimes: a connection acquire() returns is the caller's until it gives
// it back with release(); the pool outlives every connection it handed out.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "gateway/upstream_connection.hpp"
#include "http1/parser.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// A cluster's pooling keys (GATEWAY.md, clusters).
struct UpstreamPoolOptions {
  std::chrono::milliseconds connect_timeout{1000};
  // A pooled connection unused this long closes (0: never).
  std::chrono::milliseconds idle_timeout{60000};
  std::size_t max_idle_per_endpoint = 64;
  // Response head limits (a head past them is upstream_protocol_error).
  http1::Limits limits{};
  // Counts this pool's open connections (connecting, busy or pooled) with
  // those of other pools (a cluster's, all reactors: its circuit breaker's
  // max_connections); none when null.
  std::shared_ptr<std::atomic<std::uint32_t>> connections;
};

class UpstreamPool {
 public:
  // `address` is the endpoint's (resolved). REQUIRES: `io` outlives the pool.
  UpstreamPool(UpstreamIo io, const sockaddr_storage& address, socklen_t length,
               const UpstreamPoolOptions& options) noexcept;
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;
  // Closes the idle connections. REQUIRES: every connection handed out was
  // released, and the batcher has flushed since.
  ~UpstreamPool();

  // A connection for an exchange with `handler`: the most recently pooled
  // one, or a new one connecting (its outcome comes to the handler from the
  // reactor loop). `head_request`: the request is HEAD (no response body).
  // nullptr when no socket can be had (EMFILE, out of memory): a connect
  // failure the caller reports at once. REQUIRES: !draining().
  UpstreamConnection* acquire(UpstreamHandler& handler, bool head_request = false) noexcept;
  // A new connection whatever is pooled (a resend after a pooled one failed).
  UpstreamConnection* connect_new(UpstreamHandler& handler, bool head_request = false) noexcept;
  // Gives a connection back once its exchange ended (or was abandoned):
  // pooled when reusable and there is room, else closed. May be called from
  // the handler's callbacks.
  void release(UpstreamConnection& connection) noexcept;
  // The endpoint was removed: idle connections close now, busy ones when
  // released.
  void drain() noexcept;
  // The endpoint is configured again (a reload brought it back while
  // connections it handed out were still busy): it pools again.
  void resume() noexcept { draining_ = false; }
  bool draining() const noexcept { return draining_; }
  // Whether acquire() would hand out a pooled connection (not open a new one).
  bool has_idle() const noexcept { return idle_ != nullptr; }

  // Connections handed out (connecting or in an exchange), and pooled.
  // Written by the pool's thread only; any thread may read them (/clusters).
  std::size_t active() const noexcept { return active_.load(std::memory_order_relaxed); }
  std::size_t pooled() const noexcept { return pooled_.load(std::memory_order_relaxed); }

  // Upstream metrics of this endpoint on this reactor: counted by the
  // pool's thread (relaxed load + store: one writer), read by scrapers
  // through the gateway's pool registry.
  struct Counters {
    std::atomic<std::uint64_t> requests{0};          // tries sent (retries included)
    std::atomic<std::uint64_t> connect_failures{0};  // connects refused, timed out, no socket
    std::atomic<std::uint64_t> retries{0};           // tries that were retries
  };
  Counters counters;

  // ---- for UpstreamConnection ----------------------------------------------
  UpstreamIo& io() noexcept { return io_; }
  const UpstreamPoolOptions& options() const noexcept { return options_; }
  // A pooled connection must go: the upstream closed it (or sent bytes
  // nobody asked for), or it was idle for idle_timeout.
  void drop_idle(UpstreamConnection& connection) noexcept;
  // Frees a connection nothing refers to any more.
  void destroy(UpstreamConnection* connection) noexcept { io_.heap.destroy(connection); }

 private:
  void unlink(UpstreamConnection& connection) noexcept;
  void count_open(int change) noexcept {
    if (options_.connections) options_.connections->fetch_add(static_cast<std::uint32_t>(change),
                                                              std::memory_order_relaxed);
  }

  UpstreamIo io_;
  sockaddr_storage address_;
  socklen_t length_;
  UpstreamPoolOptions options_;
  UpstreamConnection* idle_ = nullptr;  // most recently pooled first
  static void set(std::atomic<std::size_t>& counter, std::size_t value) noexcept {
    counter.store(value, std::memory_order_relaxed);
  }

  std::atomic<std::size_t> active_{0};
  std::atomic<std::size_t> pooled_{0};
  bool draining_ = false;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
