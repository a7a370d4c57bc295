// server/request_parser.cpp — the llhttp glue: callbacks that record a
// request's parts as spans into the connection's read buffer and enforce the
// limits, and ServerExchange::reset_parse (the parse state only). Kept
// self-contained: a standalone HTTP/1 codec (src/http1/) is to replace it.
// Thread-safety: runs on the connection's reactor thread.
#include <llhttp.h>

#include <cstring>

#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// True if the header name `field` is `lower` (lowercase letters only) in any
// case. Inline and branch-light: every request's fields are checked.
inline bool is_field(std::string_view field, std::string_view lower) noexcept {
  if (field.size() != lower.size()) return false;
  unsigned char differ = 0;
  for (std::size_t i = 0; i < field.size(); ++i)
    differ |= static_cast<unsigned char>((field[i] | 0x20) ^ lower[i]);
  return differ == 0;
}

struct ParserCallbacks {
  static ServerExchange& of(llhttp_t* p) noexcept { return *static_cast<ServerExchange*>(p->data); }
  static const char* base(ServerExchange& ex) noexcept { return ex.connection->in_.data(); }
  static std::uint32_t offset(ServerExchange& ex, const char* at) noexcept {
    return static_cast<std::uint32_t>(at - base(ex));
  }
  static int reject(llhttp_t* p, int status, const char* reason) noexcept {
    of(p).error_status = status;
    llhttp_set_error_reason(p, reason);
    return HPE_USER;
  }

  // The head so far ends at at+n: the message starts at offset 0.
  static int check_head_size(llhttp_t* p, ServerExchange& ex, const char* at, std::size_t n) {
    if (offset(ex, at) + n > ex.shard->core.options().max_header_bytes)
      return reject(p, 431, "header section too large");
    return 0;
  }
  static int on_method(llhttp_t* p, const char* at, std::size_t n) {
    ServerExchange& ex = of(p);
    ex.method.extend(offset(ex, at), static_cast<std::uint32_t>(n));
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, std::size_t n) {
    ServerExchange& ex = of(p);
    ex.url.extend(offset(ex, at), static_cast<std::uint32_t>(n));
    if (ex.url.length > ex.shard->core.options().max_request_line)
      return reject(p, 414, "request-target too long");
    return 0;
  }
  static int on_url_complete(llhttp_t* p) {
    of(p).url_done = true;
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n) {
    ServerExchange& ex = of(p);
    ex.field.extend(offset(ex, at), static_cast<std::uint32_t>(n));
    return check_head_size(p, ex, at, n);
  }
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n) {
    ServerExchange& ex = of(p);
    ex.value.extend(offset(ex, at), static_cast<std::uint32_t>(n));
    return check_head_size(p, ex, at, n);
  }
  static int on_header_value_complete(llhttp_t* p) {
    ServerExchange& ex = of(p);
    const ServerOptions& options = ex.shard->core.options();
    if (ex.header_spans.size() >= options.max_header_count)
      return reject(p, 431, "too many header fields");
    // A value that was empty has no offset of its own; point it at the field.
    if (ex.value.length == 0) ex.value.offset = ex.field.offset + ex.field.length;
    ex.header_spans.emplace_back(ex.field, ex.value);
    ex.field = {};
    ex.value = {};
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    ServerExchange& ex = of(p);
    ex.headers_done = true;
    const ServerOptions& options = ex.shard->core.options();
    const bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    if (has_length && p->content_length > options.max_body_bytes)
      return reject(p, 413, "body too large");
    // A request line without a version is HTTP/0.9, which has no headers and
    // no status line: it would not understand the answer.
    if (p->http_major == 0) return reject(p, 400, "HTTP/0.9 is not supported");
    if (p->http_major != 1) return reject(p, 505, "only HTTP/1.x is served");
    const char* b = base(ex);
    int hosts = 0;
    for (const auto& [name, value] : ex.header_spans) {
      const std::string_view field = name.view(b);
      if (is_field(field, "host")) {
        ++hosts;
      } else if (is_field(field, "expect")) {
        if (!iequals(value.view(b), "100-continue")) return reject(p, 417, "unknown expectation");
        ex.expect_continue = p->http_major == 1 && p->http_minor >= 1;
      }
    }
    // RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host field
    // (HTTP/1.0 may omit it).
    const bool http11 = p->http_major == 1 && p->http_minor >= 1;
    if (hosts > 1 || (hosts == 0 && http11)) return reject(p, 400, "missing or repeated Host");
    return 0;
  }
  static int on_body(llhttp_t* p, const char* at, std::size_t n) {
    ServerExchange& ex = of(p);
    if (ex.body.length + n > ex.shard->core.options().max_body_bytes)
      return reject(p, 413, "body too large");
    // De-chunk in place: each piece moves back to follow the previous one,
    // over chunk framing the parser has already consumed.
    const std::uint32_t at_offset = offset(ex, at);
    if (ex.body.length == 0) {
      ex.body.offset = at_offset;
    } else {
      const std::uint32_t end = ex.body.offset + ex.body.length;
      if (end != at_offset) std::memmove(ex.connection->in_.data() + end, at, n);
    }
    ex.body.length += static_cast<std::uint32_t>(n);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    ServerExchange& ex = of(p);
    ex.keep_alive = llhttp_should_keep_alive(p) != 0;
    ex.upgrade = p->upgrade != 0;
    // Stop after each message: it is dispatched before the next is parsed,
    // and the parser position tells where the next one starts.
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_method = &on_method;
      s.on_url = &on_url;
      s.on_url_complete = &on_url_complete;
      s.on_header_field = &on_header_field;
      s.on_header_value = &on_header_value;
      s.on_header_value_complete = &on_header_value_complete;
      s.on_headers_complete = &on_headers_complete;
      s.on_body = &on_body;
      s.on_message_complete = &on_message_complete;
      return s;
    }();
    return kSettings;
  }
};

void ServerExchange::reset_parse() noexcept {
  llhttp_init(&parser, HTTP_REQUEST, &ParserCallbacks::settings());
  parser.data = this;
  method = url = field = value = body = {};
  header_spans.clear();
  error_status = 0;
  url_done = headers_done = expect_continue = upgrade = false;
  keep_alive = true;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
