// gateway/status_page.hpp (internal) — the admin listener's status page
// (GET /): one HTML page, no external assets, that draws clusters,
// endpoints and routes from /metrics, /clusters and /routes and refreshes
// itself. Its source is src/gateway/status_page.html, embedded at build time.
#pragma once

#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {

std::string_view status_page_html() noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
