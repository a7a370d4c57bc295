// http1/target.hpp (internal) — the request-target the gateway routes and
// forwards: normalised once (RFC 3986 §5.2.4 dot segments, %2E decoded,
// nothing else decoded), then a route's strip_prefix.
// Thread-safety: pure functions. Lifetimes: a returned view points into the
// target given or into the caller's scratch string, valid until either
// changes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {
namespace http1 {

// The target with `%2E`/`%2e` decoded and dot segments removed; the query
// (from the first '?') is kept byte for byte. An absolute-form target
// (`http://host/path`) becomes its origin-form; `*` stays `*`. Returns
// nullopt when the path would climb above `/`, or the target is neither
// form (answer 400). The common target (no `%2e`, no dot segment) is
// returned as a view of `target` after one scan; otherwise the result is
// built in `scratch`, whose capacity a caller reuses so a steady state
// allocates nothing.
std::optional<std::string_view> normalize_target(std::string_view target, std::string& scratch);

// `target` without the route's `prefix`, segment by segment: "/api" strips
// "/api/users" to "/users" and "/api" to "", never "/apiary". The result
// is empty or starts with '?' when the whole path was the prefix: the
// request line then writes "/" before it (write_request_head does). A
// prefix of "" or "/" strips nothing; a trailing '/' in it is ignored.
std::string_view strip_prefix(std::string_view target, std::string_view prefix) noexcept;

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
