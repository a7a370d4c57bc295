// server/routes.hpp (internal) — RouteEntry: what a route table maps a match
// to (a streaming route's taker, or a LocalRoute: handler, middleware,
// blocking), and the route set behind Routes.
// Thread-safety: entries are immutable once published, except param_names(),
// which any reactor may call (filled once, under a lock).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/router.hpp"
#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ExchangeTaker;

struct LocalRoute;

// What a route table maps a match to. A StreamingHandler's route is a
// RouteEntry alone (its taker); a handler's route is a LocalRoute. A gateway
// holds one entry per path and method, so the entry stays small.
struct RouteEntry {
  RouteEntry() = default;
  RouteEntry(const RouteEntry&) = delete;
  RouteEntry& operator=(const RouteEntry&) = delete;
  ~RouteEntry() { delete names_.load(std::memory_order_relaxed); }

  // Set for a StreamingHandler's route: it takes exchanges at their head.
  std::shared_ptr<ExchangeTaker> taker;
  // The route's pattern's id in the route-name table (request_metrics.hpp),
  // so requests label their series by a number and never hash the pattern:
  // interned when the route is added, or (a taker that knows its pattern)
  // at the route's first request, under the table's lock, once per process.
  static constexpr std::uint32_t kUnnamed = 0xFFFFFFFF;
  std::uint32_t name_id() const noexcept {
    const std::uint32_t id = route_name.load(std::memory_order_relaxed);
    return id != kUnnamed ? id : intern_name();
  }
  // Relaxed: only the value matters (the name's bytes are published by the
  // route-name table itself).
  mutable std::atomic<std::uint32_t> route_name{0};

  // REQUIRES: !taker.
  const LocalRoute& local() const noexcept;

  // The route's parameter names as `matched` (a match of this route) has
  // them, in storage of the route's own: a request's params are re-pointed
  // here so they never point into a route table, which a reactor may let go
  // of while a deferred request is still out. Filled at the first match.
  const std::string_view* param_names(const Params& matched) const;

 private:
  std::uint32_t intern_name() const noexcept;
  struct Names {
    std::string bytes;
    std::vector<std::string_view> views;
  };
  // Written once, under a lock; one pointer, so an entry (a gateway holds
  // one per path and method) stays 32 bytes with route_name beside it.
  mutable std::atomic<Names*> names_{nullptr};
};

// A route served by a Handler (and its middleware) in the reactor or, when
// blocking, on a worker.
struct LocalRoute final : RouteEntry {
  mutable Handler handler;
  bool blocking = false;
  mutable std::vector<Middleware> middleware;
};

inline const LocalRoute& RouteEntry::local() const noexcept {
  return static_cast<const LocalRoute&>(*this);
}

using RouteRef = std::shared_ptr<RouteEntry>;
using RouteTable = PublishedRouter<RouteRef>;

// Streaming routes' entries, made in chunks rather than one allocation each;
// every RouteRef to one shares the store (an aliasing shared_ptr), so tables
// frozen from a route set keep it alive.
class EntryStore {
 public:
  RouteEntry& make() {
    if (used_ == capacity_) {
      capacity_ = capacity_ == 0 ? 16 : std::min<std::size_t>(capacity_ * 2, 4096);
      chunks_.push_back(std::make_unique<RouteEntry[]>(capacity_));
      used_ = 0;
    }
    return chunks_.back()[used_++];
  }

 private:
  std::vector<std::unique_ptr<RouteEntry[]>> chunks_;
  std::size_t used_ = 0;      // in the last chunk
  std::size_t capacity_ = 0;  // of the last chunk
};

}  // namespace detail

struct Routes::Impl {
  Router<detail::RouteRef> router;
  std::shared_ptr<detail::EntryStore> entries;  // streaming routes', made on first use
  std::size_t count = 0;
  std::size_t streaming = 0;  // routes with a StreamingHandler
};

}  // namespace v0
}  // namespace portico
