// Request and Response members that need no connection: header lookup, query
// parameters, response fields, reason phrases.
#include "portico/http.hpp"
#include "portico/detail/swar.hpp"

#include <array>
#include <cstdint>

namespace portico {
inline namespace v0 {

namespace {

constexpr unsigned char to_lower(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c | 0x20) : c;
}

// True if `s` holds a byte that would end a header line early (response
// splitting) — such fields are dropped.
// Eight bytes at a time (find_first_of with a set calls memchr once per
// byte of `s`): every Content-Type and header a handler sets passes here.
bool has_line_break(std::string_view s) noexcept {
  using detail::kOnes;
  using detail::zero_bytes;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const std::uint64_t v = detail::load64(s.data() + i);
    if (zero_bytes(v) | zero_bytes(v ^ (kOnes * '\r')) | zero_bytes(v ^ (kOnes * '\n'))) return true;
  }
  for (; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return true;
  }
  return false;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x != y && to_lower(x) != to_lower(y)) return false;  // most bytes match exactly
  }
  return true;
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < header_count_; ++i) {
    if (iequals(headers_[i].name, name)) return headers_[i].value;
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::query_param(std::string_view name) const noexcept {
  std::string_view rest = query_;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key == name) {
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

Response& Response::header(std::string_view name, std::string_view value) {
  if (name.empty() || has_line_break(name) || has_line_break(value) ||
      name.find(':') != std::string_view::npos) {
    return *this;
  }
  // The server frames the body itself (see the class comment).
  if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) return *this;
  if (iequals(name, "content-type")) return content_type(value);
  fields_.append(name);
  fields_.append(": ");
  fields_.append(value);
  fields_.append("\r\n");
  return *this;
}

// The Content-Types handlers set most, kept as views of these literals
// instead of checked copies.
constexpr std::string_view kCommonTypes[] = {
    "text/plain", "application/json", "text/html; charset=utf-8", "text/plain; charset=utf-8",
    "application/octet-stream",
};

Response& Response::content_type(std::string_view type) {
  for (const std::string_view common : kCommonTypes) {
    if (type == common) {
      static_type_ = common;
      content_type_.clear();
      return *this;
    }
  }
  if (has_line_break(type)) return *this;
  content_type_.assign(type);
  static_type_ = {};
  return *this;
}

Response& Response::body(std::string_view bytes, std::string_view type) {
  body_.assign(bytes);
  if (!type.empty()) content_type(type);
  return *this;
}

Response& Response::body(std::string&& bytes, std::string_view type) {
  body_ = std::move(bytes);
  if (!type.empty()) content_type(type);
  return *this;
}

Response& Response::body_source(BodySource source, std::string_view type) {
  body_.clear();
  source_ = std::move(source);
  if (!type.empty()) content_type(type);
  return *this;
}

void Response::reset() noexcept {
  source_.reset();
  status_ = 200;
  deferred_ = false;
  close_ = false;
  chunked_ = false;
  static_type_ = {};
  // clear() keeps the capacity: request-scoped storage is reused, so a
  // steady state allocates nothing.
  fields_.clear();
  content_type_.clear();
  body_.clear();
  // A body moved in (body(std::string&&)) may be huge: do not pin it.
  if (body_.capacity() > 64 * 1024) body_ = std::string();
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace v0
}  // namespace portico
