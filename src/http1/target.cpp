#include "http1/target.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "portico/detail/swar.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace http1 {

namespace {

bool is_encoded_dot(std::string_view s, std::size_t i) noexcept {
  return i + 2 < s.size() && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E');
}

// Whether `path` needs rewriting: a "%2e" anywhere, or a "." or ".."
// segment. One pass, no writes.
bool needs_normalizing(std::string_view path) noexcept {
  const std::size_t n = path.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = path[i];
    if (c == '%') {
      if (is_encoded_dot(path, i)) return true;
    } else if (c == '/' && i + 1 < n && path[i + 1] == '.') {
      // "/." then the end or '/', or "/.." then the end or '/'.
      if (i + 2 == n || path[i + 2] == '/') return true;
      if (path[i + 2] == '.' && (i + 3 == n || path[i + 3] == '/')) return true;
    }
  }
  return false;
}

// The first min(n, 8) bytes of `s` as a little-endian word, without
// reading past them: two overlapping loads for 4-7 bytes. Absent bytes are
// 0, which matches none of the bytes looked for.
std::uint64_t load_upto8(const char* s, std::size_t n) noexcept {
  std::uint64_t word = 0;
  if (n >= 8) return load64(s);
  if (n >= 4) {
    std::uint32_t low, high;
    std::memcpy(&low, s, 4);
    std::memcpy(&high, s + n - 4, 4);
    return low | (static_cast<std::uint64_t>(high) << (8 * (n - 4)));
  }
  for (std::size_t i = 0; i < n; ++i)
    word |= std::uint64_t{static_cast<unsigned char>(s[i])} << (8 * i);
  return word;
}

// Whether a little-endian word holds a '%', or a '/' with a '.' in the
// byte after it.
bool word_may_need_normalizing(std::uint64_t word) noexcept {
  const std::uint64_t percent = zero_bytes(word ^ (kOnes * '%'));
  const std::uint64_t slash = zero_bytes(word ^ (kOnes * '/'));
  const std::uint64_t dot = zero_bytes(word ^ (kOnes * '.'));
  return (percent | (slash & (dot >> 8))) != 0;
}

// False when `target` (path and query) holds no '%' and no "/.": then no
// part of its path needs normalizing, and it is returned as it is without
// looking for the query. A word at a time, words overlapping by a byte so
// that every pair of adjacent bytes lies within one word.
bool may_need_normalizing(std::string_view target) noexcept {
  if constexpr (std::endian::native != std::endian::little) {
    return true;  // the exact scan decides
  } else {
    const char* s = target.data();
    const std::size_t n = target.size();
    if (n <= 8) return word_may_need_normalizing(load_upto8(s, n));
    for (std::size_t i = 0; i + 8 < n; i += 7) {
      if (word_may_need_normalizing(load64(s + i))) return true;
    }
    return word_may_need_normalizing(load64(s + n - 8));
  }
}

// How many dots a segment is made of once "%2e" is decoded: 1 for "." and
// 2 for "..", in any spelling; 0 for any other segment.
int dot_segment(std::string_view segment) noexcept {
  int dots = 0;
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '.') {
      ++dots;
    } else if (is_encoded_dot(segment, i)) {
      ++dots;
      i += 2;
    } else {
      return 0;
    }
    if (dots > 2) return 0;
  }
  return dots;
}

// `segment` with "%2e" decoded, appended to `out`.
void append_decoded(std::string_view segment, std::string& out) {
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (is_encoded_dot(segment, i)) {
      out.push_back('.');
      i += 2;
    } else {
      out.push_back(segment[i]);
    }
  }
}

// RFC 3986 §5.2.4 on a path that starts with '/', decoding "%2e" on the
// way, into `out` (cleared first). False when a ".." has no segment left
// to remove.
bool remove_dot_segments(std::string_view path, std::string& out) {
  out.clear();
  std::size_t i = 1;  // just past a '/'
  for (;;) {
    std::size_t end = path.find('/', i);
    const bool last = end == std::string_view::npos;
    if (last) end = path.size();
    const std::string_view segment = path.substr(i, end - i);
    switch (dot_segment(segment)) {
      case 1:
        if (last) out.push_back('/');
        break;
      case 2:
        if (out.empty()) return false;  // above the root: 400, where RFC 3986 clamps
        out.resize(out.rfind('/'));
        if (last) out.push_back('/');
        break;
      default:
        out.push_back('/');
        append_decoded(segment, out);
    }
    if (last) break;
    i = end + 1;
  }
  if (out.empty()) out.push_back('/');
  return true;
}

// The length of "http://authority" or "https://authority" at the start of
// an absolute-form target (scheme case-insensitive), or 0.
std::size_t absolute_form_prefix(std::string_view target) noexcept {
  const auto has_scheme = [&](std::string_view scheme) {  // scheme: lowercase
    if (target.size() < scheme.size()) return false;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
      const char c =
          target[i] >= 'A' && target[i] <= 'Z' ? static_cast<char>(target[i] + 32) : target[i];
      if (c != scheme[i]) return false;
    }
    return true;
  };
  std::size_t authority;
  if (has_scheme("http://")) {
    authority = 7;
  } else if (has_scheme("https://")) {
    authority = 8;
  } else {
    return 0;
  }
  const std::size_t end = target.find_first_of("/?", authority);
  return end == std::string_view::npos ? target.size() : end;
}

}  // namespace

std::optional<std::string_view> normalize_target(std::string_view target, std::string& scratch) {
  if (target.empty()) return std::nullopt;
  if (target[0] != '/') {
    if (target == "*") return target;
    const std::size_t authority = absolute_form_prefix(target);
    if (authority == 0) return std::nullopt;
    target.remove_prefix(authority);
    if (target.empty() || target[0] == '?') {
      // No path: origin-form "/" (RFC 9112 §3.2.1), then the query.
      scratch.assign(1, '/');
      scratch.append(target);
      return std::string_view(scratch);
    }
  }
  if (!may_need_normalizing(target)) return target;
  const std::size_t query = target.find('?');
  const std::string_view path = target.substr(0, query);
  if (!needs_normalizing(path)) return target;

  if (!remove_dot_segments(path, scratch)) return std::nullopt;
  if (query != std::string_view::npos) scratch.append(target.substr(query));
  return std::string_view(scratch);
}

std::string_view strip_prefix(std::string_view target, std::string_view prefix) noexcept {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (prefix.empty() || !target.starts_with(prefix)) return target;
  const std::string_view rest = target.substr(prefix.size());
  if (rest.empty() || rest[0] == '/' || rest[0] == '?') return rest;
  return target;  // "/apiary" is not under "/api"
}

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
