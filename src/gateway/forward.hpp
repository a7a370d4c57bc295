// gateway/forward.hpp (internal) — the forwarding rules of GATEWAY.md as
// pure functions: the head the upstream receives for a client's request,
// and the head the client receives for the upstream's response. No
// sockets, no config types: plain views, so the proxy and tests call the
// same code.
// Thread-safety: pure functions (request ids use a generator per thread).
// Lifetimes: ClientRequest and UpstreamResponse view a parser's read
// buffer; they and RequestIds::request_id() are valid while that head is.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "gateway/request_ids.hpp"
#include "http1/parser.hpp"
#include "http1/writer.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

// A route's request_headers or response_headers.
struct FieldValue {
  std::string_view name;
  std::string_view value;
};
struct HeaderEdits {
  std::span<const FieldValue> add;           // set: replaces any field of that name
  std::span<const std::string_view> remove;  // drops every field of that name
};

// Fields a route may not add or remove: they carry framing or belong to
// one hop (the config refuses them; the writers ignore such edits).
bool is_protected_field(std::string_view name) noexcept;

// ---- requests ---------------------------------------------------------------

// A client's parsed request head, as the upstream head is written from it.
struct ClientRequest {
  std::string_view method;
  std::string_view target;     // normalize_target() then strip_prefix()
  std::string_view host;       // the client's Host value ("" when it sent none)
  const char* base = nullptr;  // the fields' Spans are offsets from it
  std::span<const http1::Field> fields;
  http1::Framing framing = http1::Framing::kNone;  // of the body that follows
  std::uint64_t content_length = 0;                // when framing is kLength

  // From a request-mode parser after kHead or kMessage.
  static ClientRequest from(const http1::Parser& parser, const char* base,
                            std::string_view target) noexcept;
};

// What the gateway knows of this hop, beyond the request.
struct RequestForwarding {
  std::string_view client_address;   // "192.0.2.7", "2001:db8::1": no port, no brackets
  bool trusted_peer = false;         // the peer is in trusted_proxies
  std::string_view proto = "http";   // X-Forwarded-Proto
  std::string_view via = "portico";  // Via pseudonym; "" sends no Via
  std::string_view host_rewrite;     // Host sent upstream; "" keeps the client's
  HeaderEdits edits;                 // the route's request_headers
  bool tunnel = false;               // an Upgrade the route forwards
};

// Writes the upstream's request head into `out` (anything with
// append(std::string_view) and push_back(char): std::string, OutputBuffer)
// and decides `ids` (X-Request-Id and traceparent) from the client's.
// In order: request line, Host, the client's fields that pass, then
// X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Via, X-Request-Id,
// traceparent, the route's added fields, Connection, the framing field.
template <class Out>
void write_request_head(Out& out, const ClientRequest& request, const RequestForwarding& how,
                        RequestIds& ids);

// ---- responses --------------------------------------------------------------

// An upstream's parsed response head.
struct UpstreamResponse {
  int status = 0;
  std::string_view reason;  // as sent ("" writes the standard phrase)
  const char* base = nullptr;
  std::span<const http1::Field> fields;
  bool has_body = false;  // a body follows (not HEAD, 1xx, 204, 304)
  bool chunked = false;
  bool has_content_length = false;
  std::uint64_t content_length = 0;

  // From a response-mode parser after kHead or kMessage. `head_request`:
  // the request was HEAD. `reason`: status_reason() of the head's bytes.
  static UpstreamResponse from(const http1::Parser& parser, const char* base,
                               std::string_view reason, bool head_request) noexcept;
};

// The reason phrase in a status line ("HTTP/1.1 404 Not Found\r\n..." gives
// "Not Found"); "" when there is none. `head` starts at the status line.
std::string_view status_reason(std::string_view head) noexcept;

struct ResponseForwarding {
  std::string_view date_line;     // "Date: ...\r\n", the reactor's cached line
  std::string_view request_id;    // RequestIds::request_id(), echoed
  HeaderEdits edits;              // the route's response_headers
  bool client_http11 = true;      // the client's request was HTTP/1.1
  bool client_keep_alive = true;  // the client connection may carry another request
};

// How the proxy relays the body it writes the head for.
struct ClientFraming {
  http1::Framing framing = http1::Framing::kNone;  // kNone: no body, or until close
  bool close = false;  // the client connection closes after this response
};

// Writes the client's response head into `out` and says how to frame the
// body: Content-Length passes, chunked stays chunked (to an HTTP/1.1
// client), a close-delimited body becomes chunked for a keep-alive
// HTTP/1.1 client and stays close-delimited otherwise. A 101 keeps Upgrade
// and `Connection: upgrade`.
template <class Out>
ClientFraming write_response_head(Out& out, const UpstreamResponse& response,
                                  const ResponseForwarding& how);

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
