// server/routes.cpp — RouteEntry's parameter names and the Routes set (see
// routes.hpp and portico/server.hpp).
#include "server/routes.hpp"

#include "server/exchange_taker.hpp"
#include "server/request_metrics.hpp"

#include <mutex>
#include <utility>

namespace portico {
inline namespace v0 {
namespace detail {

const std::string_view* RouteEntry::param_names(const Params& matched) const {
  if (const Names* names = names_.load(std::memory_order_acquire)) return names->views.data();
  static std::mutex mutex;  // first matches only
  std::lock_guard lock(mutex);
  if (const Names* names = names_.load(std::memory_order_relaxed)) return names->views.data();
  auto storage = std::make_unique<Names>();
  for (std::size_t i = 0; i < matched.size(); ++i) storage->bytes.append(matched.name(i));
  std::size_t at = 0;
  for (std::size_t i = 0; i < matched.size(); ++i) {
    const std::size_t length = matched.name(i).size();
    storage->views.push_back(std::string_view(storage->bytes).substr(at, length));
    at += length;
  }
  Names* made = storage.release();
  names_.store(made, std::memory_order_release);
  return made->views.data();
}

std::uint32_t RouteEntry::intern_name() const noexcept {
  std::uint32_t id = 0;  // "none" if it cannot be had
  try {
    if (taker) id = intern_route_name(taker->route_pattern());
  } catch (...) {
  }
  route_name.store(id, std::memory_order_relaxed);
  return id;
}

static_assert(sizeof(RouteEntry) <= 32, "a gateway holds one RouteEntry per path and method");

}  // namespace detail

Routes::Routes() : impl_(std::make_unique<Impl>()) {}
Routes::~Routes() = default;
Routes::Routes(Routes&&) noexcept = default;
Routes& Routes::operator=(Routes&&) noexcept = default;

namespace {
detail::RouteRef make_entry(std::string_view pattern, Handler handler, RouteOptions options) {
  auto entry = std::make_shared<detail::LocalRoute>();
  entry->route_name.store(detail::intern_route_name(pattern), std::memory_order_relaxed);
  entry->handler = std::move(handler);
  entry->blocking = options.blocking;
  entry->middleware = std::move(options.middleware);
  return entry;
}
}  // namespace

RouteError Routes::add(Method method, std::string_view pattern, Handler handler,
                       RouteOptions route_options) {
  RouteError error = impl_->router.add(
      method, pattern, make_entry(pattern, std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

RouteError Routes::add(std::string_view method_token, std::string_view pattern, Handler handler,
                       RouteOptions route_options) {
  RouteError error = impl_->router.add(
      method_token, pattern, make_entry(pattern, std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

RouteError Routes::add_any(std::string_view pattern, Handler handler, RouteOptions route_options) {
  RouteError error = impl_->router.add_any(
      pattern, make_entry(pattern, std::move(handler), std::move(route_options)));
  if (!error) ++impl_->count;
  return error;
}

namespace {
detail::RouteRef make_streaming_entry(std::shared_ptr<detail::EntryStore>& store,
                                      std::string_view pattern, StreamingHandler handler) {
  if (!store) store = std::make_shared<detail::EntryStore>();
  detail::RouteEntry& entry = store->make();
  // A taker that keeps its pattern has it interned at its first request.
  entry.route_name.store(handler.taker && !handler.taker->route_pattern().empty()
                             ? detail::RouteEntry::kUnnamed
                             : detail::intern_route_name(pattern),
                         std::memory_order_relaxed);
  entry.taker = std::move(handler.taker);
  return detail::RouteRef(store, &entry);
}

// Counts a streaming route added; a refused one lets its taker go (its
// entry stays in the store, empty).
RouteError counted(std::size_t& count, std::size_t& streaming, detail::RouteEntry& entry,
                   RouteError error) {
  if (error) {
    entry.taker.reset();
  } else {
    ++count;
    ++streaming;
  }
  return error;
}
}  // namespace

RouteError Routes::add(Method method, std::string_view pattern, StreamingHandler handler) {
  detail::RouteRef entry = make_streaming_entry(impl_->entries, pattern, std::move(handler));
  detail::RouteEntry& made = *entry;
  return counted(impl_->count, impl_->streaming, made, impl_->router.add(method, pattern, std::move(entry)));
}

RouteError Routes::add(std::string_view method_token, std::string_view pattern,
                       StreamingHandler handler) {
  detail::RouteRef entry = make_streaming_entry(impl_->entries, pattern, std::move(handler));
  detail::RouteEntry& made = *entry;
  return counted(impl_->count, impl_->streaming, made, impl_->router.add(method_token, pattern, std::move(entry)));
}

RouteError Routes::add_any(std::string_view pattern, StreamingHandler handler) {
  detail::RouteRef entry = make_streaming_entry(impl_->entries, pattern, std::move(handler));
  detail::RouteEntry& made = *entry;
  return counted(impl_->count, impl_->streaming, made, impl_->router.add_any(pattern, std::move(entry)));
}

std::size_t Routes::size() const noexcept {
  return impl_->count;
}

}  // namespace v0
}  // namespace portico
