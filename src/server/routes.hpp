// server/routes.hpp (internal) — RouteEntry: what a route table maps a match
// to (handler, middleware, blocking), and the route set behind Routes.
// Thread-safety: entries are immutable once published, except param_names(),
// which any reactor may call (filled once, under a lock).
#pragma once

#include <atomic>
#include <cstddef>
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

struct RouteEntry {
  mutable Handler handler;
  // Set for a StreamingHandler's route: it takes exchanges at their head.
  std::shared_ptr<ExchangeTaker> taker;
  bool blocking = false;
  mutable std::vector<Middleware> middleware;

  // The route's parameter names as `matched` (a match of this route) has
  // them, in storage of the route's own: a request's params are re-pointed
  // here so they never point into a route table, which a reactor may let go
  // of while a deferred request is still out. Filled at the first match.
  const std::string_view* param_names(const Params& matched) const;

 private:
  struct Names {
    std::string bytes;
    std::vector<std::string_view> views;
  };
  mutable std::atomic<const std::string_view*> names_{nullptr};
  mutable std::unique_ptr<Names> names_storage_;  // written once, under a lock
};

using RouteRef = std::shared_ptr<RouteEntry>;
using RouteTable = PublishedRouter<RouteRef>;

}  // namespace detail

struct Routes::Impl {
  Router<detail::RouteRef> router;
  std::size_t count = 0;
  std::size_t streaming = 0;  // routes with a StreamingHandler
};

}  // namespace v0
}  // namespace portico
