#include "gateway/forward.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <type_traits>

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

// A field name as an all-lowercase literal, for name_is<>.
template <std::size_t N>
struct LowerName {
  char text[N] = {};
  consteval LowerName(const char (&s)[N]) {  // NOLINT: implicit, for name_is<"...">
    for (std::size_t i = 0; i < N; ++i) text[i] = s[i];
  }
  static constexpr std::size_t kSize = N - 1;
};

// Bytes [off, off + sizeof(W)) of `name` as a W loaded from memory would
// hold them; with `mask`, 0x20 where the byte is a letter and 0 elsewhere.
template <class W, LowerName L>
consteval W name_word(std::size_t off, bool mask) {
  W word = 0;
  for (std::size_t i = 0; i < sizeof(W); ++i) {
    const char c = L.text[off + i];
    const unsigned byte =
        mask ? (c >= 'a' && c <= 'z' ? 0x20u : 0u) : static_cast<unsigned char>(c);
    const std::size_t shift =
        std::endian::native == std::endian::little ? 8 * i : 8 * (sizeof(W) - 1 - i);
    word = static_cast<W>(word | static_cast<W>(static_cast<W>(byte) << shift));
  }
  return word;
}

template <class W, LowerName L, std::size_t Off>
bool word_is(const char* p) noexcept {
  W word;
  std::memcpy(&word, p + Off, sizeof word);
  // OR-ing 0x20 lowers a letter and nothing but the letter's capital maps
  // onto it; non-letter bytes are compared as they are.
  return static_cast<W>(word | name_word<W, L>(Off, true)) == name_word<W, L>(Off, false);
}

// `p` holds L.kSize bytes equal to L ignoring ASCII case: one or two word
// loads (overlapping when the length is not a multiple of the word).
// REQUIRES: p points at L.kSize readable bytes.
template <LowerName L>
bool name_is(const char* p) noexcept {
  constexpr std::size_t n = L.kSize;
  static_assert(n >= 2 && n <= 24);
  if constexpr (n > 16) {
    return word_is<std::uint64_t, L, 0>(p) && word_is<std::uint64_t, L, 8>(p) &&
           word_is<std::uint64_t, L, n - 8>(p);
  } else if constexpr (n >= 8) {
    return word_is<std::uint64_t, L, 0>(p) && word_is<std::uint64_t, L, n - 8>(p);
  } else if constexpr (n >= 4) {
    return word_is<std::uint32_t, L, 0>(p) && word_is<std::uint32_t, L, n - 4>(p);
  } else {
    return word_is<std::uint16_t, L, 0>(p) && word_is<std::uint16_t, L, n - 2>(p);
  }
}

// One switch on the length, then a word comparison or two: most fields are
// kOther after the length test or the first word.
[[gnu::always_inline]] inline Kind classify(std::string_view name) noexcept {
  const char* p = name.data();
  switch (name.size()) {
    case 2:
      return name_is<"te">(p) ? Kind::kTe : Kind::kOther;
    case 3:
      return name_is<"via">(p) ? Kind::kVia : Kind::kOther;
    case 4:
      if (name_is<"host">(p)) return Kind::kHost;
      return name_is<"date">(p) ? Kind::kDate : Kind::kOther;
    case 6:
      return name_is<"expect">(p) ? Kind::kExpect : Kind::kOther;
    case 7:
      if (name_is<"trailer">(p)) return Kind::kTrailer;
      return name_is<"upgrade">(p) ? Kind::kUpgrade : Kind::kOther;
    case 9:
      if (name_is<"forwarded">(p)) return Kind::kForwarded;
      return name_is<"x-real-ip">(p) ? Kind::kXRealIp : Kind::kOther;
    case 10:
      if (name_is<"connection">(p)) return Kind::kConnection;
      return name_is<"keep-alive">(p) ? Kind::kKeepAlive : Kind::kOther;
    case 11:
      return name_is<"traceparent">(p) ? Kind::kTraceparent : Kind::kOther;
    case 12:
      return name_is<"x-request-id">(p) ? Kind::kXRequestId : Kind::kOther;
    case 14:
      if (name_is<"content-length">(p)) return Kind::kContentLength;
      break;  // or an X-Forwarded-* name of 14 bytes (X-Forwarded-By)
    case 16:
      if (name_is<"proxy-connection">(p)) return Kind::kProxyConnection;
      break;
    case 17:
      if (name_is<"transfer-encoding">(p)) return Kind::kTransferEncoding;
      break;
    default:
      break;
  }
  if (name.size() > 12 && name_is<"x-forwarded-">(p)) {
    switch (name.size()) {
      case 15:
        if (name_is<"for">(p + 12)) return Kind::kXForwardedFor;
        break;
      case 16:
        if (name_is<"host">(p + 12)) return Kind::kXForwardedHost;
        break;
      case 17:
        if (name_is<"proto">(p + 12)) return Kind::kXForwardedProto;
        break;
      default:
        break;
    }
    return Kind::kXForwardedOther;
  }
  return Kind::kOther;
}

// classify() where it is not hot: one copy of it, not one per caller.
[[gnu::noinline]] Kind classify_elsewhere(std::string_view name) noexcept {
  return classify(name);
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
  switch (option.size()) {
    case 2:
      return name_is<"te">(option.data());
    case 5:
      return name_is<"close">(option.data());
    case 7:
      return name_is<"upgrade">(option.data());
    case 10:
      return name_is<"keep-alive">(option.data());
    default:
      return false;
  }
}

// The kinds a survey keeps, one per field: a head with more fields (the
// parser's max_header_count allows it) has the rest classified again.
constexpr std::size_t kKindsKept = 128;

// The kind of fields[i], from what survey() kept.
Kind kind_at(const Kind* kinds, const char* base, std::span<const http1::Field> fields,
             std::size_t i) noexcept {
  return i < kKindsKept ? kinds[i] : classify_elsewhere(fields[i].name.view(base));
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

// Classifies every field once: the kinds of the first kKindsKept go to
// `kinds` for the writing pass.
Survey survey(const char* base, std::span<const http1::Field> fields, Kind* kinds) noexcept {
  Survey s;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const http1::Field& field = fields[i];
    const Kind kind = classify(field.name.view(base));
    if (i < kKindsKept) kinds[i] = kind;
    switch (kind) {
      case Kind::kOther:
        break;
      case Kind::kConnection:
        s.connection_names_fields =
            s.connection_names_fields ||
            any_list_element(field.value.view(base),
                             [](std::string_view o) { return !is_plain_connection_option(o); });
        break;
      case Kind::kTe:
        s.te_trailers =
            s.te_trailers || any_list_element(field.value.view(base), [](std::string_view e) {
              // "trailers" takes no parameters (RFC 9110 §10.1.4)
              return e.size() == 8 && name_is<"trailers">(e.data());
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
        if (!s.request_id_seen) s.request_id = field.value.view(base);
        s.request_id_seen = true;
        break;
      case Kind::kTraceparent:
        s.traceparent = field.value.view(base);
        ++s.traceparents;
        break;
      default:
        break;
    }
  }
  return s;
}

// Whether a Connection field of the head names `name`.
bool named_in_connection(const char* base, std::span<const http1::Field> fields, const Kind* kinds,
                         std::string_view name) noexcept {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (kind_at(kinds, base, fields, i) != Kind::kConnection) continue;
    if (any_list_element(fields[i].value.view(base),
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

// Copies `bytes` to `to` and returns the end: up to 16 bytes with two
// (overlapping) loads and stores, no call; a literal's size folds the tests.
[[gnu::always_inline]] inline char* put(char* to, std::string_view bytes) noexcept {
  const std::size_t n = bytes.size();
  const char* from = bytes.data();
  if (n > 16) {
    std::memcpy(to, from, n);
  } else if (n >= 8) {
    std::memcpy(to, from, 8);
    std::memcpy(to + n - 8, from + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(to, from, 4);
    std::memcpy(to + n - 4, from + n - 4, 4);
  } else if (n >= 2) {
    std::memcpy(to, from, 2);
    std::memcpy(to + n - 2, from + n - 2, 2);
  } else if (n == 1) {
    *to = *from;
  }
  return to + n;
}

// A head written into a buffer on the stack and handed to `out` with one
// append per kBytes (one in all for most heads): a line costs one room
// test, where appending each piece to `out` costs a test and a call each.
// Call finish() at the end; what the head holds is what appending the
// same pieces to `out` would have written, byte for byte.
template <class Out>
class HeadWriter {
 public:
  explicit HeadWriter(Out& out) noexcept : out_(out) {}
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;

  // The concatenation of `pieces`. Inlined (GCC's heuristics would not
  // always): a literal piece's size then folds put()'s tests away.
  template <class... Pieces>
  [[gnu::always_inline]] void write(Pieces... pieces) {
    static_assert((std::is_same_v<Pieces, std::string_view> && ...));
    const std::size_t n = (pieces.size() + ...);
    if (n > static_cast<std::size_t>(buffer_ + kBytes - end_)) [[unlikely]] {
      write_past_end(pieces...);
      return;
    }
    char* p = end_;
    ((p = put(p, pieces)), ...);
    end_ = p;
  }

  // "<name>: <value>\r\n". REQUIRES: as http1::write_field's.
  void field(std::string_view name, std::string_view value) {
    write(name, ": "sv, value, "\r\n"sv);
  }

  // The framing field of a body that is `framing`, as http1::write_framing.
  void framing(http1::Framing framing, std::uint64_t length) {
    if (framing == http1::Framing::kLength) {
      char digits[20];
      const char* first = http1::format_decimal(digits, length);
      write("Content-Length: "sv,
            std::string_view(first, static_cast<std::size_t>(digits + sizeof digits - first)),
            "\r\n"sv);
    } else if (framing == http1::Framing::kChunked) {
      write("Transfer-Encoding: chunked\r\n"sv);
    }
  }

  // Hands what is buffered to `out`.
  void finish() { flush(); }

 private:
  static constexpr std::size_t kBytes = 2048;

  // write() when the buffer has no room for the pieces: the buffer goes to
  // `out`, and pieces longer than it follow it there.
  template <class... Pieces>
  [[gnu::noinline]] void write_past_end(Pieces... pieces) {
    flush();
    if ((pieces.size() + ...) > kBytes) {
      (out_.append(pieces), ...);
      return;
    }
    char* p = end_;
    ((p = put(p, pieces)), ...);
    end_ = p;
  }
  void flush() {
    if (end_ != buffer_)
      out_.append(std::string_view(buffer_, static_cast<std::size_t>(end_ - buffer_)));
    end_ = buffer_;
  }

  char buffer_[kBytes];
  Out& out_;
  char* end_ = buffer_;
};

template <class Out>
void write_added(HeadWriter<Out>& w, const HeaderEdits& edits) {
  for (const FieldValue& added : edits.add) {
    if (!is_protected_field(added.name)) w.field(added.name, added.value);
  }
}

// "NAME: v1, v2, ..., <last_a><last_b>\r\n" from every field of `kind`
// (one line, as most readers of X-Forwarded-For and Via take only one).
template <class Out>
void write_joined(HeadWriter<Out>& w, std::string_view name, Kind kind, const char* base,
                  std::span<const http1::Field> fields, const Kind* kinds, std::string_view last_a,
                  std::string_view last_b) {
  w.write(name, ": "sv);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (kind_at(kinds, base, fields, i) != kind) continue;
    const std::string_view value = fields[i].value.view(base);
    if (value.empty()) continue;
    w.write(value, ", "sv);
  }
  w.write(last_a, last_b, "\r\n"sv);
}

}  // namespace

bool is_protected_field(std::string_view name) noexcept {
  const Kind kind = classify_elsewhere(name);
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
  const std::span<const http1::Field> fields = request.fields;
  Kind kinds[kKindsKept];  // set by survey() for the fields there are
  const Survey s = survey(base, fields, kinds);
  ids.decide(s.request_id, s.traceparents == 1 ? s.traceparent : std::string_view());
  const bool has_edits = !how.edits.add.empty() || !how.edits.remove.empty();

  HeadWriter<Out> w(out);
  // The whole path was the prefix: the root, before any query.
  const bool root = request.target.empty() || request.target[0] == '?';
  w.write(request.method, root ? " /"sv : " "sv, request.target, " HTTP/1.1\r\n"sv);
  const std::string_view host = how.host_rewrite.empty() ? request.host : how.host_rewrite;
  w.field("Host"sv, host);

  for (std::size_t i = 0; i < fields.size(); ++i) {
    const std::string_view name = fields[i].name.view(base);
    switch (kind_at(kinds, base, fields, i)) {
      case Kind::kOther:
        break;
      case Kind::kUpgrade:
        if (how.tunnel) w.field(name, fields[i].value.view(base));
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
    if (s.connection_names_fields && named_in_connection(base, fields, kinds, name)) continue;
    if (has_edits && in_edits(how.edits, name)) continue;
    w.field(name, fields[i].value.view(base));
  }

  const HeaderEdits& edits = how.edits;
  if (!edited(edits, "x-forwarded-for"sv)) {
    if (how.trusted_peer && s.has_x_forwarded_for)
      write_joined(w, "X-Forwarded-For"sv, Kind::kXForwardedFor, base, fields, kinds, ""sv,
                   how.client_address);
    else
      w.field("X-Forwarded-For"sv, how.client_address);
  }
  if (!(how.trusted_peer && s.has_x_forwarded_proto) && !edited(edits, "x-forwarded-proto"sv))
    w.field("X-Forwarded-Proto"sv, how.proto);
  if (!(how.trusted_peer && s.has_x_forwarded_host) && !request.host.empty() &&
      !edited(edits, "x-forwarded-host"sv))
    w.field("X-Forwarded-Host"sv, request.host);
  if (!how.via.empty() && !edited(edits, "via"sv)) {
    // "1.1 <via>": the protocol the gateway received, RFC 9110 §7.6.3.
    if (s.has_via)
      write_joined(w, "Via"sv, Kind::kVia, base, fields, kinds, "1.1 "sv, how.via);
    else
      w.write("Via: 1.1 "sv, how.via, "\r\n"sv);
  }
  if (!edited(edits, "x-request-id"sv)) w.field("X-Request-Id"sv, ids.request_id());
  if (!edited(edits, "traceparent"sv)) w.field("traceparent"sv, ids.traceparent());
  write_added(w, edits);

  // Hop-by-hop fields the gateway sends on its own behalf (RFC 9110 §7.6.1:
  // each named in Connection).
  if (how.tunnel && s.te_trailers) {
    w.write("Connection: upgrade, te\r\nTE: trailers\r\n"sv);
  } else if (how.tunnel) {
    w.write("Connection: upgrade\r\n"sv);
  } else if (s.te_trailers) {
    w.write("Connection: te\r\nTE: trailers\r\n"sv);
  }
  w.framing(request.framing, request.content_length);
  w.write("\r\n"sv);
  w.finish();
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
  const std::span<const http1::Field> fields = response.fields;
  Kind kinds[kKindsKept];  // set by survey() for the fields there are
  const Survey s = survey(base, fields, kinds);
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

  HeadWriter<Out> w(out);
  // The status line as http1::write_status_line writes it.
  if (response.status == 200) {
    w.write("HTTP/1.1 200 OK\r\n"sv);
  } else {
    const int status = response.status;
    char line[13];  // "HTTP/1.1 NNN "
    std::memcpy(line, "HTTP/1.1 ", 9);
    line[9] = static_cast<char>('0' + status / 100);
    line[10] = static_cast<char>('0' + status / 10 % 10);
    line[11] = static_cast<char>('0' + status % 10);
    line[12] = ' ';
    w.write(std::string_view(line, sizeof line),
            response.reason.empty() ? reason_phrase(status) : response.reason, "\r\n"sv);
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const std::string_view name = fields[i].name.view(base);
    switch (kind_at(kinds, base, fields, i)) {
      case Kind::kUpgrade:
        if (!switching) continue;
        w.field(name, fields[i].value.view(base));
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
    if (s.connection_names_fields && named_in_connection(base, fields, kinds, name)) continue;
    if (has_edits && in_edits(how.edits, name)) continue;
    w.field(name, fields[i].value.view(base));
  }
  if (!s.has_date && !edited(how.edits, "date"sv)) w.write(how.date_line);
  if (!how.request_id.empty() && !edited(how.edits, "x-request-id"sv))
    w.field("X-Request-Id"sv, how.request_id);
  write_added(w, how.edits);

  if (switching) {
    w.write("Connection: upgrade\r\n"sv);
  } else if (framing.close) {
    w.write("Connection: close\r\n"sv);
  } else if (!how.client_http11) {
    w.write("Connection: keep-alive\r\n"sv);  // HTTP/1.0 persists only when told
  }
  if (framing.framing != http1::Framing::kNone) {
    w.framing(framing.framing, response.content_length);
  } else if (!response.has_body && response.has_content_length && response.status != 204 &&
             response.status >= 200) {
    // HEAD and 304 may tell the length the body would have (RFC 9110 §8.6).
    w.framing(http1::Framing::kLength, response.content_length);
  }
  w.write("\r\n"sv);
  w.finish();
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
