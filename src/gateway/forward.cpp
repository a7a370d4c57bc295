#include "gateway/forward.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "net/output_buffer.hpp"
#include "portico/http.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

using namespace std::string_view_literals;

namespace {

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

// `a` equals `lower_b` ignoring ASCII case. REQUIRES: lower_b is lowercase.
bool is(std::string_view a, std::string_view lower_b) noexcept {
  if (a.size() != lower_b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower_b[i]) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

// Calls `each` with every element of a comma-separated list, without the
// OWS around it and skipping empty ones (RFC 9110 §5.6.1); stops early
// when `each` returns true, and returns whether it did.
template <class Each>
bool any_list_element(std::string_view list, Each each) noexcept {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view element = list.substr(0, comma);
    while (!element.empty() && is_ows(element.front())) element.remove_prefix(1);
    while (!element.empty() && is_ows(element.back())) element.remove_suffix(1);
    if (!element.empty() && each(element)) return true;
    list.remove_prefix(comma == list.size() ? comma : comma + 1);
  }
  return false;
}

// The fields the rules treat apart; everything else is kOther.
enum class Kind : std::uint8_t {
  kOther,
  // hop-by-hop (RFC 9110 §7.6.1), and framing the gateway writes itself
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kTransferEncoding,
  kContentLength,
  kExpect,
  kHost,
  // forwarding
  kXForwardedFor,
  kXForwardedProto,
  kXForwardedHost,
  kXForwardedOther,  // any other X-Forwarded-*
  kForwarded,
  kXRealIp,
  kVia,
  kXRequestId,
  kTraceparent,
  kDate,
};

// One switch on the length, then one comparison: most fields are kOther
// after a length test or a first-byte test.
Kind classify(std::string_view name) noexcept {
  switch (name.size()) {
    case 2:
      return is(name, "te") ? Kind::kTe : Kind::kOther;
    case 3:
      return is(name, "via") ? Kind::kVia : Kind::kOther;
    case 4:
      if (is(name, "host")) return Kind::kHost;
      return is(name, "date") ? Kind::kDate : Kind::kOther;
    case 6:
      return is(name, "expect") ? Kind::kExpect : Kind::kOther;
    case 7:
      if (is(name, "trailer")) return Kind::kTrailer;
      return is(name, "upgrade") ? Kind::kUpgrade : Kind::kOther;
    case 9:
      if (is(name, "forwarded")) return Kind::kForwarded;
      return is(name, "x-real-ip") ? Kind::kXRealIp : Kind::kOther;
    case 10:
      if (is(name, "connection")) return Kind::kConnection;
      return is(name, "keep-alive") ? Kind::kKeepAlive : Kind::kOther;
    case 11:
      return is(name, "traceparent") ? Kind::kTraceparent : Kind::kOther;
    case 12:
      return is(name, "x-request-id") ? Kind::kXRequestId : Kind::kOther;
    case 14:
      return is(name, "content-length") ? Kind::kContentLength : Kind::kOther;
    case 16:
      if (is(name, "proxy-connection")) return Kind::kProxyConnection;
      break;
    case 17:
      if (is(name, "transfer-encoding")) return Kind::kTransferEncoding;
      break;
    default:
      break;
  }
  if (name.size() > 12 && is(name.substr(0, 12), "x-forwarded-")) {
    const std::string_view rest = name.substr(12);
    if (is(rest, "for")) return Kind::kXForwardedFor;
    if (is(rest, "proto")) return Kind::kXForwardedProto;
    if (is(rest, "host")) return Kind::kXForwardedHost;
    return Kind::kXForwardedOther;
  }
  return Kind::kOther;
}

bool is_hop_by_hop(Kind kind) noexcept {
  switch (kind) {
    case Kind::kConnection:
    case Kind::kKeepAlive:
    case Kind::kProxyConnection:
    case Kind::kTe:
    case Kind::kTrailer:
    case Kind::kUpgrade:
    case Kind::kTransferEncoding:
    case Kind::kContentLength:
      return true;
    default:
      return false;
  }
}

// The Connection options that name no field the gateway keeps anyway.
bool is_plain_connection_option(std::string_view option) noexcept {
  return is(option, "keep-alive") || is(option, "close") || is(option, "upgrade") ||
         is(option, "te");
}

// What one pass over a head found.
struct Survey {
  bool connection_names_fields = false;  // some Connection option names a field
  bool te_trailers = false;
  bool has_via = false;
  bool has_x_forwarded_for = false;
  bool has_x_forwarded_proto = false;
  bool has_x_forwarded_host = false;
  bool has_date = false;
  std::string_view request_id;
  std::string_view traceparent;
  int traceparents = 0;
  bool request_id_seen = false;
};

Survey survey(const char* base, std::span<const http1::Field> fields) noexcept {
  Survey s;
  for (const http1::Field& field : fields) {
    const std::string_view value = field.value.view(base);
    switch (classify(field.name.view(base))) {
      case Kind::kConnection:
        s.connection_names_fields =
            s.connection_names_fields || any_list_element(value, [](std::string_view o) {
              return !is_plain_connection_option(o);
            });
        break;
      case Kind::kTe:
        s.te_trailers = s.te_trailers || any_list_element(value, [](std::string_view e) {
                          // "trailers" takes no parameters (RFC 9110 §10.1.4)
                          return is(e, "trailers");
                        });
        break;
      case Kind::kVia:
        s.has_via = true;
        break;
      case Kind::kXForwardedFor:
        s.has_x_forwarded_for = true;
        break;
      case Kind::kXForwardedProto:
        s.has_x_forwarded_proto = true;
        break;
      case Kind::kXForwardedHost:
        s.has_x_forwarded_host = true;
        break;
      case Kind::kDate:
        s.has_date = true;
        break;
      case Kind::kXRequestId:
        // The first one decides; any other is dropped with it.
        if (!s.request_id_seen) s.request_id = value;
        s.request_id_seen = true;
        break;
      case Kind::kTraceparent:
        s.traceparent = value;
        ++s.traceparents;
        break;
      default:
        break;
    }
  }
  return s;
}

// Whether a Connection field of the head names `name`.
bool named_in_connection(const char* base, std::span<const http1::Field> fields,
                         std::string_view name) noexcept {
  for (const http1::Field& field : fields) {
    const std::string_view field_name = field.name.view(base);
    if (field_name.size() != 10 || !is(field_name, "connection")) continue;
    if (any_list_element(field.value.view(base),
                         [name](std::string_view option) { return iequals(option, name); }))
      return true;
  }
  return false;
}

bool in_edits(const HeaderEdits& edits, std::string_view name) noexcept {
  for (const std::string_view removed : edits.remove) {
    if (iequals(removed, name)) return true;
  }
  for (const FieldValue& added : edits.add) {
    if (iequals(added.name, name)) return true;
  }
  return false;
}

// Whether the route's edits take over a field the gateway would write.
bool edited(const HeaderEdits& edits, std::string_view name) noexcept {
  return (!edits.add.empty() || !edits.remove.empty()) && in_edits(edits, name);
}

template <class Out>
void write_added(Out& out, const HeaderEdits& edits) {
  for (const FieldValue& added : edits.add) {
    if (!is_protected_field(added.name)) http1::write_field(out, added.name, added.value);
  }
}

// "NAME: v1, v2, ..., <last_a><last_b>\r\n" from every field of `kind`
// (one line, as most readers of X-Forwarded-For and Via take only one).
template <class Out>
void write_joined(Out& out, std::string_view name, Kind kind, const char* base,
                  std::span<const http1::Field> fields, std::string_view last_a,
                  std::string_view last_b) {
  out.append(name);
  out.append(": "sv);
  for (const http1::Field& field : fields) {
    if (classify(field.name.view(base)) != kind) continue;
    const std::string_view value = field.value.view(base);
    if (value.empty()) continue;
    out.append(value);
    out.append(", "sv);
  }
  out.append(last_a);
  out.append(last_b);
  out.append("\r\n"sv);
}

}  // namespace

bool is_protected_field(std::string_view name) noexcept {
  const Kind kind = classify(name);
  return is_hop_by_hop(kind) || kind == Kind::kHost || kind == Kind::kExpect;
}

ClientRequest ClientRequest::from(const http1::Parser& parser, const char* base,
                                  std::string_view target) noexcept {
  ClientRequest request;
  request.method = parser.method().view(base);
  request.target = target;
  request.host = parser.host().view(base);
  request.base = base;
  request.fields = parser.fields();
  if (parser.chunked()) {
    request.framing = http1::Framing::kChunked;
  } else if (parser.has_content_length() && parser.content_length() > 0) {
    request.framing = http1::Framing::kLength;
    request.content_length = parser.content_length();
  }
  return request;
}

template <class Out>
void write_request_head(Out& out, const ClientRequest& request, const RequestForwarding& how,
                        RequestIds& ids) {
  const char* base = request.base;
  const Survey s = survey(base, request.fields);
  ids.decide(s.request_id, s.traceparents == 1 ? s.traceparent : std::string_view());
  const bool has_edits = !how.edits.add.empty() || !how.edits.remove.empty();

  // The whole path was the prefix: the root, before any query.
  if (request.target.empty() || request.target[0] == '?') {
    out.append(request.method);
    out.append(" /"sv);
    out.append(request.target);
    out.append(" HTTP/1.1\r\n"sv);
  } else {
    http1::write_request_line(out, request.method, request.target);
  }
  const std::string_view host = how.host_rewrite.empty() ? request.host : how.host_rewrite;
  http1::write_field(out, "Host"sv, host);

  for (const http1::Field& field : request.fields) {
    const std::string_view name = field.name.view(base);
    switch (classify(name)) {
      case Kind::kOther:
        break;
      case Kind::kUpgrade:
        if (how.tunnel) http1::write_field(out, name, field.value.view(base));
        continue;
      case Kind::kXForwardedProto:
      case Kind::kXForwardedHost:
      case Kind::kXForwardedOther:
      case Kind::kForwarded:
      case Kind::kXRealIp:
        if (!how.trusted_peer) continue;  // believed only from a trusted proxy
        break;
      case Kind::kDate:
        break;
      case Kind::kVia:
        if (!how.via.empty()) continue;  // rewritten below, with the gateway's entry
        break;
      default:
        // Hop-by-hop, framing, Host, Expect; and what is rewritten below
        // (X-Forwarded-For, Via, X-Request-Id, traceparent).
        continue;
    }
    if (s.connection_names_fields && named_in_connection(base, request.fields, name)) continue;
    if (has_edits && in_edits(how.edits, name)) continue;
    http1::write_field(out, name, field.value.view(base));
  }

  const HeaderEdits& edits = how.edits;
  if (!edited(edits, "x-forwarded-for"sv)) {
    if (how.trusted_peer && s.has_x_forwarded_for)
      write_joined(out, "X-Forwarded-For"sv, Kind::kXForwardedFor, base, request.fields, ""sv,
                   how.client_address);
    else
      http1::write_field(out, "X-Forwarded-For"sv, how.client_address);
  }
  if (!(how.trusted_peer && s.has_x_forwarded_proto) && !edited(edits, "x-forwarded-proto"sv))
    http1::write_field(out, "X-Forwarded-Proto"sv, how.proto);
  if (!(how.trusted_peer && s.has_x_forwarded_host) && !request.host.empty() &&
      !edited(edits, "x-forwarded-host"sv))
    http1::write_field(out, "X-Forwarded-Host"sv, request.host);
  if (!how.via.empty() && !edited(edits, "via"sv)) {
    // "1.1 <via>": the protocol the gateway received, RFC 9110 §7.6.3.
    write_joined(out, "Via"sv, Kind::kVia, base,
                 s.has_via ? request.fields : std::span<const http1::Field>(), "1.1 "sv, how.via);
  }
  if (!edited(edits, "x-request-id"sv)) http1::write_field(out, "X-Request-Id"sv, ids.request_id());
  if (!edited(edits, "traceparent"sv)) http1::write_field(out, "traceparent"sv, ids.traceparent());
  write_added(out, edits);

  // Hop-by-hop fields the gateway sends on its own behalf (RFC 9110 §7.6.1:
  // each named in Connection).
  if (how.tunnel && s.te_trailers) {
    out.append("Connection: upgrade, te\r\nTE: trailers\r\n"sv);
  } else if (how.tunnel) {
    out.append("Connection: upgrade\r\n"sv);
  } else if (s.te_trailers) {
    out.append("Connection: te\r\nTE: trailers\r\n"sv);
  }
  http1::write_framing(out, request.framing, request.content_length);
  http1::end_head(out);
}

UpstreamResponse UpstreamResponse::from(const http1::Parser& parser, const char* base,
                                        std::string_view reason, bool head_request) noexcept {
  UpstreamResponse response;
  response.status = parser.status();
  response.reason = reason;
  response.base = base;
  response.fields = parser.fields();
  const int status = response.status;
  response.has_body = !head_request && status >= 200 && status != 204 && status != 304;
  response.chunked = parser.chunked();
  response.has_content_length = parser.has_content_length();
  response.content_length = parser.content_length();
  return response;
}

std::string_view status_reason(std::string_view head) noexcept {
  // "HTTP/1.1 200 OK\r\n": the reason starts after the status code's SP.
  if (head.size() < 13 || head[12] != ' ') return {};
  const std::size_t end = head.find('\r', 13);
  return end == std::string_view::npos ? std::string_view() : head.substr(13, end - 13);
}

template <class Out>
ClientFraming write_response_head(Out& out, const UpstreamResponse& response,
                                  const ResponseForwarding& how) {
  const char* base = response.base;
  const Survey s = survey(base, response.fields);
  const bool switching = response.status == 101;
  const bool has_edits = !how.edits.add.empty() || !how.edits.remove.empty();

  ClientFraming framing;
  if (switching) {
    framing.framing = http1::Framing::kNone;
  } else if (!response.has_body) {
    framing.close = !how.client_keep_alive;
  } else if (response.chunked) {
    framing.framing = how.client_http11 ? http1::Framing::kChunked : http1::Framing::kNone;
    framing.close = !how.client_http11 || !how.client_keep_alive;
  } else if (response.has_content_length) {
    framing.framing = http1::Framing::kLength;
    framing.close = !how.client_keep_alive;
  } else if (how.client_http11 && how.client_keep_alive) {
    framing.framing = http1::Framing::kChunked;  // close-delimited, re-framed
  } else {
    framing.close = true;  // close-delimited, as it came
  }

  http1::write_status_line(
      out, response.status,
      response.reason.empty() ? reason_phrase(response.status) : response.reason);
  for (const http1::Field& field : response.fields) {
    const std::string_view name = field.name.view(base);
    switch (classify(name)) {
      case Kind::kUpgrade:
        if (!switching) continue;
        http1::write_field(out, name, field.value.view(base));
        continue;
      case Kind::kConnection:
      case Kind::kKeepAlive:
      case Kind::kProxyConnection:
      case Kind::kTe:
      case Kind::kTrailer:
      case Kind::kTransferEncoding:
      case Kind::kContentLength:
      case Kind::kXRequestId:  // the gateway's own is echoed below
        continue;
      default:
        break;
    }
    if (s.connection_names_fields && named_in_connection(base, response.fields, name)) continue;
    if (has_edits && in_edits(how.edits, name)) continue;
    http1::write_field(out, name, field.value.view(base));
  }
  if (!s.has_date && !edited(how.edits, "date"sv)) out.append(how.date_line);
  if (!how.request_id.empty() && !edited(how.edits, "x-request-id"sv))
    http1::write_field(out, "X-Request-Id"sv, how.request_id);
  write_added(out, how.edits);

  if (switching) {
    out.append("Connection: upgrade\r\n"sv);
  } else if (framing.close) {
    out.append("Connection: close\r\n"sv);
  } else if (!how.client_http11) {
    out.append("Connection: keep-alive\r\n"sv);  // HTTP/1.0 persists only when told
  }
  if (framing.framing != http1::Framing::kNone) {
    http1::write_framing(out, framing.framing, response.content_length);
  } else if (!response.has_body && response.has_content_length && response.status != 204 &&
             response.status >= 200) {
    // HEAD and 304 may tell the length the body would have (RFC 9110 §8.6).
    http1::write_framing(out, http1::Framing::kLength, response.content_length);
  }
  http1::end_head(out);
  return framing;
}

// The outputs the gateway writes heads into.
template void write_request_head<std::string>(std::string&, const ClientRequest&,
                                              const RequestForwarding&, RequestIds&);
template void write_request_head<OutputBuffer>(OutputBuffer&, const ClientRequest&,
                                               const RequestForwarding&, RequestIds&);
template ClientFraming write_response_head<std::string>(std::string&, const UpstreamResponse&,
                                                        const ResponseForwarding&);
template ClientFraming write_response_head<OutputBuffer>(OutputBuffer&, const UpstreamResponse&,
                                                         const ResponseForwarding&);

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
