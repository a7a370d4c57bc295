// The HTTP/1 parser: llhttp's callbacks record spans and enforce the limits;
// the checks below add what RFC 9112 says a recipient MUST reject and llhttp
// 8.1 accepts (each has a byte-exact case in tests/http1_parser_test.cpp).
#include "http1/parser.hpp"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "portico/detail/swar.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace http1 {

namespace {

const Limits kDefaultLimits{};

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// True if the field name `field` is `lower` (lowercase letters and other
// bytes, a literal) in any case. Branch-light: runs on every field.
inline bool is_field(std::string_view field, std::string_view lower) noexcept {
  if (field.size() != lower.size()) return false;
  unsigned char differ = 0;
  for (std::size_t i = 0; i < field.size(); ++i) {
    const bool letter = lower[i] >= 'a' && lower[i] <= 'z';
    differ |= static_cast<unsigned char>((field[i] | (letter ? 0x20 : 0)) ^ lower[i]);
  }
  return differ == 0;
}

// Bytes a request-target may not hold that llhttp lets through: HTAB,
// bytes >= 0x80 and '#' (a fragment is never sent; RFC 9112 §3.2). llhttp
// let through nothing else below 0x21, so a byte is bad if it is below 0x21,
// is '#', or has its high bit set.
inline bool target_is_clean_bytes(const char* target, std::uint32_t n) noexcept {
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(target[i]);
    if (c < 0x21 || c >= 0x80 || c == '#') return false;
  }
  return true;
}

#if defined(__SSE2__)
// A signed compare finds bytes below 0x21 and bytes >= 0x80 at once.
inline std::uint32_t dirty_bytes(const char* at) noexcept {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
  const __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x21)),
                                   _mm_cmpeq_epi8(v, _mm_set1_epi8('#')));
  return static_cast<std::uint32_t>(_mm_movemask_epi8(bad));
}

// REQUIRES: the 9 bytes after the target (" HTTP/1.x") are readable.
inline bool target_is_clean(const char* target, std::uint32_t n) noexcept {
  if (n >= 16) {
    for (std::uint32_t i = 0; i + 16 < n; i += 16) {
      if (dirty_bytes(target + i) != 0) return false;
    }
    return dirty_bytes(target + n - 16) == 0;  // overlaps the one before
  }
  // 16 bytes from the target stay within it and the version after it.
  if (n >= 7) return (dirty_bytes(target) & ((1u << n) - 1)) == 0;
  return target_is_clean_bytes(target, n);
}
#else
inline bool target_is_clean(const char* target, std::uint32_t n) noexcept {
  const auto dirty = [](std::uint64_t v) {
    return (((v - kOnes * 0x21) | v) & (kOnes * 0x80)) | zero_bytes(v ^ (kOnes * '#'));
  };
  if (n < 8) return target_is_clean_bytes(target, n);
  // Whole words, the last one overlapping the one before.
  for (std::uint32_t i = 0; i + 8 < n; i += 8) {
    if (dirty(load64(target + i))) return false;
  }
  return dirty(load64(target + n - 8)) == 0;
}
#endif

// What each byte weighs in a Host value: 0 for RFC 3986 reg-name and
// IPv4address bytes (unreserved, sub-delims, '%'), 1 for ':', 64 for any
// other. The sum over a value says at once: a plain name (0), name:port (1)
// or something else (an IP-literal, or invalid).
struct HostBytes {
  std::uint8_t weight[256] = {};
  constexpr HostBytes() {
    for (int c = 0; c < 256; ++c) {
      const bool reg_name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~' || c == '%' || c == '!' || c == '$' || c == '&' ||
                            c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' ||
                            c == ',' || c == ';' || c == '=';
      weight[c] = reg_name ? 0 : c == ':' ? 1 : 64;
    }
  }
};
constexpr HostBytes kHostBytes{};

// True if host[from, size) is *DIGIT.
bool all_digits(std::string_view host, std::size_t from) noexcept {
  for (std::size_t i = from; i < host.size(); ++i) {
    if (host[i] < '0' || host[i] > '9') return false;
  }
  return true;
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2); uri-host is an IP-literal
// in brackets or a reg-name (which covers IPv4address); port = *DIGIT.
// An empty value is valid (an empty authority).
bool host_is_valid(std::string_view host) noexcept {
  std::uint32_t sum = 0;  // one pass, no branch per byte
  for (const char c : host) sum += kHostBytes.weight[static_cast<unsigned char>(c)];
  if (sum == 0) return true;
  if (sum == 1) return all_digits(host, host.find(':') + 1);
  // An IP-literal: "[" address "]" [ ":" port ].
  if (host[0] != '[') return false;
  const std::size_t close = host.find(']');
  if (close == std::string_view::npos || close == 1) return false;
  for (std::size_t i = 1; i < close; ++i) {
    if (kHostBytes.weight[static_cast<unsigned char>(host[i])] > 1) return false;
  }
  if (close + 1 == host.size()) return true;
  return host[close + 1] == ':' && all_digits(host, close + 2);
}

// The length of each method's name, by llhttp's method number.
struct MethodLengths {
  std::uint8_t length[256] = {};
  constexpr MethodLengths() {
#define PORTICO_METHOD_LENGTH(NUM, NAME, STRING) length[NUM] = sizeof(#STRING) - 1;
    HTTP_ALL_METHOD_MAP(PORTICO_METHOD_LENGTH)
#undef PORTICO_METHOD_LENGTH
  }
  std::uint32_t of(std::uint8_t method) const noexcept { return length[method]; }
};
constexpr MethodLengths kMethodLengths{};

}  // namespace

struct Callbacks {
  static Parser& of(llhttp_t* p) noexcept { return *static_cast<Parser*>(p->data); }
  static std::uint32_t offset(const Parser& parser, const char* at) noexcept {
    return static_cast<std::uint32_t>(at - parser.base_);
  }
  static void extend(Span& span, std::uint32_t at, std::size_t n) noexcept {
    if (span.length == 0) span.offset = at;
    span.length += static_cast<std::uint32_t>(n);
  }

  static int on_url(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    const std::uint32_t where = offset(parser, at);
    if (parser.m_.target.length == 0) {
      // The method is the token llhttp matched, just before the one SP
      // (RFC 9112 §3) that must precede the target; llhttp takes several.
      const std::uint32_t length = kMethodLengths.of(p->method);
      if (where < length + 1 || parser.base_[where - 2] == ' ')
        return parser.reject(400, "more than one space after the method");
      parser.m_.method = {where - 1 - length, length};
      parser.m_.target.offset = where;
    }
    parser.m_.target.length += static_cast<std::uint32_t>(n);
    if (parser.m_.target.length > parser.limits_->max_request_line)
      return parser.reject(414, "request-target too long");
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    extend(parser.m_.name, offset(parser, at), n);
    return 0;
  }
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    // llhttp reports an empty value as an empty piece at the next line.
    if (n == 0) return 0;
    const std::uint32_t where = offset(parser, at);
    if (!parser.m_.in_value) {
      // The value's first byte must follow "name:" and optional whitespace
      // on the same line: anything else is an obs-fold (RFC 9112 §5.2).
      const char* b = parser.base_;
      if (!(where >= 2 && b[where - 1] == ' ' && b[where - 2] == ':')) {  // not "name: value"
        std::uint32_t before = where;
        while (before > 0 && is_ows(b[before - 1])) --before;
        if (before == 0 || b[before - 1] != ':') return parser.reject(400, "obsolete line folding");
      }
      parser.m_.in_value = true;
      parser.m_.value = {where, 0};
    } else if (where != parser.m_.value_end) {
      return parser.reject(400, "obsolete line folding");  // a continuation line
    }
    parser.m_.value.length += static_cast<std::uint32_t>(n);
    parser.m_.value_end = where + static_cast<std::uint32_t>(n);
    return 0;
  }
  static int on_header_value_complete(llhttp_t* p) { return of(p).field_complete(); }
  static int on_headers_complete(llhttp_t* p) {
    Parser& parser = of(p);
    parser.m_.head_done = true;
    if (const int error = parser.head_complete_checks()) return error;
    if (parser.mode_ == Mode::kResponse) {
      // No body, whatever the fields say (RFC 9112 §6.3): an answer to HEAD,
      // 1xx (101 aside: llhttp turns it into a tunnel), 204 and 304.
      const int status = p->status_code;
      if (parser.m_.no_body || (status < 200 && status != 101) || status == 204 || status == 304)
        return 1;
    }
    const bool body = (p->flags & F_CHUNKED) != 0 || parser.m_.declared_length > 0 ||
                      (parser.mode_ == Mode::kResponse && llhttp_message_needs_eof(p) != 0);
    if (!body) return 0;
    parser.m_.head_reported = true;
    return HPE_PAUSED;  // the caller sees the head before any body byte
  }
  static int on_body(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    if (parser.m_.body_bytes + n > parser.limits_->max_body_bytes)
      return parser.reject(413, "body too large");
    parser.m_.body_bytes += n;
    if (parser.m_.sink != nullptr) {
      parser.m_.sink(parser.m_.sink_user, at, n);
      return 0;
    }
    // De-chunk in place: each piece moves back to follow the previous one,
    // over chunk framing the parser has already consumed.
    const std::uint32_t where = offset(parser, at);
    if (parser.m_.body.length == 0) {
      parser.m_.body.offset = where;
    } else if (parser.m_.body.end() != where) {
      std::memmove(parser.base_ + parser.m_.body.end(), at, n);
    }
    parser.m_.body.length += static_cast<std::uint32_t>(n);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    of(p).m_.message_done = true;
    return HPE_PAUSED;  // one message per execute(): the caller acts before the next
  }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_url = &on_url;
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

namespace {

// A parser as llhttp_init() leaves it: reset() copies it rather than run
// llhttp_init's memset and stores for every message.
[[gnu::noinline]] const llhttp_t& fresh_llhttp(Mode mode) noexcept {
  static const llhttp_t kFresh[2] = {
      [] {
        llhttp_t parser;
        llhttp_init(&parser, HTTP_REQUEST, &Callbacks::settings());
        return parser;
      }(),
      [] {
        llhttp_t parser;
        llhttp_init(&parser, HTTP_RESPONSE, &Callbacks::settings());
        return parser;
      }()};
  return kFresh[mode == Mode::kRequest ? 0 : 1];
}

}  // namespace

bool Parser::FieldList::grow(Field field) noexcept {
  const std::uint32_t wanted = capacity == 0 ? 16 : capacity * 2;
  std::unique_ptr<Field[]> larger;
  try {
    // The plain form: a host (or a test) that replaces operator new sees it.
    larger.reset(new Field[wanted]);
  } catch (...) {
    return false;
  }
  std::copy_n(items.get(), count, larger.get());
  items = std::move(larger);
  capacity = wanted;
  items[count++] = field;
  return true;
}

void Parser::reset(Mode mode, const Limits* limits) noexcept {
  parser_ = fresh_llhttp(mode);
  parser_.data = this;
  limits_ = limits != nullptr ? limits : &kDefaultLimits;
  mode_ = mode;
  static_cast<MessageSpans&>(m_) = MessageSpans{};
  static_cast<MessageState&>(m_) = MessageState{};
  fields_.count = 0;
  trailers_.count = 0;
}

int Parser::reject(int status, const char* reason) noexcept {
  m_.error_status = static_cast<std::uint16_t>(status);
  m_.error_reason = reason;
  llhttp_set_error_reason(&parser_, reason);
  return HPE_USER;
}

// A field line is complete: its value loses its trailing whitespace, and
// the field is checked and kept. Runs for every field: the common cases
// (any field, a Host seen before) take no call.
inline int Parser::field_complete() noexcept {
  const Span name = m_.name;
  Span value = m_.in_value ? m_.value : Span{name.end(), 0};
  while (value.length > 0 && is_ows(base_[value.end() - 1])) --value.length;
  m_.name = m_.value = {};
  m_.in_value = false;
  // field-name = token, and no whitespace before the colon (RFC 9112 §5.1:
  // a server MUST reject it; llhttp keeps the space in the name).
  if (name.length == 0 || is_ows(base_[name.end() - 1])) return reject(400, "invalid field name");
  if (m_.head_done) return trailer_complete(name, value);
  if (fields_.count >= limits_->max_header_count) return reject(431, "too many header fields");
  if (!fields_.append({name, value})) return reject(431, "out of memory for header fields");
  if (mode_ != Mode::kRequest) return 0;
  switch (name.length) {
    case 4: {
      std::uint32_t word;
      std::memcpy(&word, base_ + name.offset, 4);
      std::uint32_t host;
      std::memcpy(&host, "host", 4);
      return (word | 0x20202020u) == host ? host_field(value) : 0;
    }
    case 6:
    case 14:
    case 17:
      return rare_request_field(name.view(base_), value);
    default:
      return 0;
  }
}

int Parser::trailer_complete(Span name, Span value) noexcept {
  if (trailers_.count >= limits_->max_header_count) return reject(431, "too many trailer fields");
  return trailers_.append({name, value}) ? 0 : reject(431, "out of memory for trailer fields");
}

// A connection's requests, and a service's clients, repeat one Host: the
// last valid one is kept, and a value equal to it needs no second look
// (two overlapping words compare up to 16 bytes without a call).
inline int Parser::host_field(Span value) noexcept {
  ++m_.hosts;
  m_.host = value;
  const char* host = base_ + value.offset;
  const std::uint32_t n = value.length;
  if (n == host_memo_length_ && n >= 8 && n <= 16 && load64(host) == load64(host_memo_) &&
      load64(host + n - 8) == load64(host_memo_ + n - 8))
    return 0;
  return host_valid(value.view(base_)) ? 0 : reject(400, "invalid Host");
}

// The other fields a request's own checks read: Expect, and framing fields
// spelt with '_' (refused: some peers fold '_' into '-').
int Parser::rare_request_field(std::string_view field, Span value) noexcept {
  if (is_field(field, "expect")) {
    if (!is_field(value.view(base_), "100-continue")) return reject(417, "unknown expectation");
    m_.expect_continue = true;
  } else if (is_field(field, "content_length") || is_field(field, "transfer_encoding")) {
    return reject(400, "framing field with '_'");
  }
  return 0;
}

// host_field()'s slow path: a Host not seen last time, or of another size.
bool Parser::host_valid(std::string_view host) noexcept {
  const std::size_t n = host.size();
  if (n == host_memo_length_ && std::memcmp(host.data(), host_memo_, n) == 0) return true;
  if (!host_is_valid(host)) return false;
  if (host.size() <= sizeof host_memo_) {
    std::memcpy(host_memo_, host.data(), host.size());
    host_memo_length_ = static_cast<std::uint8_t>(host.size());
  }
  return true;
}

inline int Parser::head_complete_checks() noexcept {
  const llhttp_t& p = parser_;
  m_.declared_length = (p.flags & F_CONTENT_LENGTH) != 0 ? p.content_length : 0;
  // (The head's last four bytes are checked when execute() returns: this
  // callback has no position.)
  if (mode_ == Mode::kResponse) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, and a
    // Transfer-Encoding that does not end in chunked leaves the length unknown.
    if ((p.flags & F_TRANSFER_ENCODING) != 0 &&
        ((p.flags & F_CHUNKED) == 0 || p.http_minor == 0 || chunked_codings() > 1))
      return reject(502, "Transfer-Encoding without a single final chunked");
    if (fields_.count != 0 && !crlf_before(fields_.items[0].name.offset))
      return reject(502, "line not ended by CR LF");
    return 0;
  }
  if (m_.declared_length > limits_->max_body_bytes) return reject(413, "body too large");
  // A request line without a version is HTTP/0.9, which has no headers and
  // no status line: it would not understand the answer.
  if (p.http_major == 0) return reject(400, "HTTP/0.9 is not supported");
  if (p.http_major != 1) return reject(505, "only HTTP/1.x is served");
  // One SP between target and version (RFC 9112 §3; llhttp takes several),
  // a request-target without the bytes llhttp lets through, and a request
  // line ended by CR LF (llhttp takes a bare LF there; the field lines
  // after it it checks itself, and a head without fields ends in CR LF CR
  // LF, checked when execute() returns).
  if (base_[m_.target.end() + 1] != 'H') return reject(400, "more than one space before the version");
  if (!target_is_clean(base_ + m_.target.offset, m_.target.length)) return reject(400, "invalid byte in the request-target");
  if (fields_.count != 0 && !crlf_before(fields_.items[0].name.offset))
    return reject(400, "line not ended by CR LF");
  const bool http11 = p.http_minor >= 1;
  if ((p.flags & F_TRANSFER_ENCODING) != 0 && !http11)
    return reject(400, "Transfer-Encoding in HTTP/1.0");
  // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host field (HTTP/1.0
  // may omit it).
  if (m_.hosts > 1 || (m_.hosts == 0 && http11)) return reject(400, "missing or repeated Host");
  if (!http11) m_.expect_continue = false;
  return 0;
}

// How many times `chunked` is among the Transfer-Encoding codings (llhttp
// checks only that it comes last; RFC 9112 §6.1: a sender MUST NOT apply
// it more than once). Runs only for messages with Transfer-Encoding.
int Parser::chunked_codings() const noexcept {
  int count = 0;
  for (const Field& field : fields_.view()) {
    if (!is_field(field.name.view(base_), "transfer-encoding")) continue;
    std::string_view list = field.value.view(base_);
    while (!list.empty()) {
      std::size_t comma = list.find(',');
      if (comma == std::string_view::npos) comma = list.size();
      std::string_view coding = list.substr(0, comma);
      while (!coding.empty() && is_ows(coding.front())) coding.remove_prefix(1);
      while (!coding.empty() && is_ows(coding.back())) coding.remove_suffix(1);
      if (is_field(coding, "chunked")) ++count;
      list.remove_prefix(comma == list.size() ? comma : comma + 1);
    }
  }
  return count;
}

// Slow path of line_endings_ok(): the ending straddles two execute()
// calls, so its first bytes come from m_.recent (false when they are not
// there: an ending cannot start before the message).
bool Parser::line_endings_straddle(std::uint32_t at, std::uint32_t count) const noexcept {
  static constexpr char kEnd[4] = {'\r', '\n', '\r', '\n'};
  const std::uint32_t here = at - from_;  // bytes of the ending in this call
  for (std::uint32_t back = 1; back <= count; ++back) {
    int c;
    if (back <= here) {
      c = static_cast<unsigned char>(base_[at - back]);
    } else {
      const std::uint32_t older = back - here;  // 1: the byte just before from_
      if (older > m_.recent_count) return false;
      c = static_cast<unsigned char>(m_.recent >> (8 * (older - 1)));
    }
    if (c != kEnd[4 - back]) return false;
  }
  return true;
}

void Parser::remember(std::uint32_t to) noexcept {
  // The last bytes fed, for a line ending that straddles two calls.
  for (std::uint32_t i = (to - from_ > 4 ? to - 4 : from_); i < to; ++i)
    m_.recent = (m_.recent << 8) | static_cast<unsigned char>(base_[i]);
  m_.recent_count = m_.recent_count + (to - from_) > 4 ? 4 : m_.recent_count + (to - from_);
}

Progress Parser::execute(char* base, std::uint32_t from, std::uint32_t to) noexcept {
  if (parser_.error == HPE_PAUSED) llhttp_resume(&parser_);
  base_ = base;
  from_ = from;
  const llhttp_errno_t err = llhttp_execute(&parser_, base + from, to - from);
  if (err == HPE_OK) {
    // The head so far is base[0, to): its size is checked each time a read
    // ends inside it, and once where it ends, not at every field.
    if (!m_.head_done && to > limits_->max_header_bytes) {
      reject(431, "header section too large");
      return {Event::kError, to};
    }
    remember(to);
    return {Event::kNeedMore, to};
  }
  const auto at = static_cast<std::uint32_t>(parser_.error_pos - base);
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    // llhttp 8.1 takes any byte after a CR as its LF, and a bare LF to end
    // the head (request smuggling): the head's last bytes must be CR LF CR
    // LF, and a chunked body's last line must end in CR LF.
    bool ends_ok = true;
    if (!m_.message_done || !m_.head_reported) {
      if (at > limits_->max_header_bytes) {  // the head ends here
        reject(431, "header section too large");
        return {Event::kError, at};
      }
      ends_ok = line_endings_ok(at, 4);
    } else if (chunked()) {
      ends_ok = line_endings_ok(at, 2);
    }
    if (!ends_ok) {
      reject(400, "line not ended by CR LF");
      return {Event::kError, at};
    }
    if (m_.message_done) return {Event::kMessage, at};
    remember(at);
    return {Event::kHead, at};
  }
  if (m_.error_status == 0) {
    m_.error_status = err == HPE_INVALID_VERSION && unsupported_version(at) ? 505 : 400;
    m_.error_reason = llhttp_get_error_reason(&parser_);
    if (m_.error_reason == nullptr) m_.error_reason = llhttp_errno_name(err);
  }
  return {Event::kError, at};
}

// llhttp stopped at `at` on the version of a request line: a well-formed
// version it does not know (HTTP/1.2, HTTP/3.0) is not served rather than
// malformed. llhttp 8.1 knows 0.9, 1.0, 1.1 and 2.0: when the version is one
// of those, it stopped on the byte after it (HTTP/1.01), which is malformed.
bool Parser::unsupported_version(std::uint32_t at) const noexcept {
  if (mode_ != Mode::kRequest || m_.target.length == 0) return false;
  const std::uint32_t version = m_.target.end() + 6;  // after " HTTP/"
  if (at != version + 3) return false;
  const char* v = base_ + version;
  if (!(v[0] >= '0' && v[0] <= '9' && v[1] == '.' && v[2] >= '0' && v[2] <= '9')) return false;
  const std::string_view known(v, 3);
  return known != "0.9" && known != "1.0" && known != "1.1" && known != "2.0";
}

Progress Parser::finish(char* base, std::uint32_t at) noexcept {
  if (parser_.error == HPE_PAUSED) llhttp_resume(&parser_);
  base_ = base;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && m_.message_done) return {Event::kMessage, at};
  if (m_.error_status == 0) {
    m_.error_status = 400;
    m_.error_reason = "message truncated";
  }
  return {Event::kError, at};
}

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
