// The HTTP/1 parser: llhttp's callbacks record spans and enforce the limits;
// the checks below add what RFC 9112 says a recipient MUST reject and llhttp
// 8.1 accepts (each has a byte-exact case in tests/http1_parser_test.cpp).
#include "http1/parser.hpp"

#include <algorithm>
#include <cstring>

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
// bytes >= 0x80 and '#' (a fragment is never sent; RFC 9112 §3.2).
inline bool target_is_clean(std::string_view target) noexcept {
  // llhttp let through only HTAB below 0x21, so a byte is bad if it is
  // below 0x21, is '#', or has its high bit set.
  const auto dirty = [](std::uint64_t v) {
    return (((v - kOnes * 0x21) | v) & (kOnes * 0x80)) | zero_bytes(v ^ (kOnes * '#'));
  };
  const std::size_t n = target.size();
  if (n < 8) {
    for (const char c : target) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) >= 0x80 || c == '#')
        return false;
    }
    return true;
  }
  // Whole words, the last one overlapping the one before.
  for (std::size_t i = 0; i + 8 < n; i += 8) {
    if (dirty(load64(target.data() + i))) return false;
  }
  return dirty(load64(target.data() + n - 8)) == 0;
}

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
  // The head so far ends at at+n; it started at offset 0 of the message.
  static int check_head_size(Parser& parser, const char* at, std::size_t n) noexcept {
    if (offset(parser, at) + n > parser.limits_->max_header_bytes)
      return parser.reject(431, "header section too large");
    return 0;
  }

  static int on_method(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    extend(parser.method_, offset(parser, at), n);
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    const std::uint32_t where = offset(parser, at);
    // One SP between method and target (RFC 9112 §3); llhttp takes several.
    if (parser.target_.length == 0 && where != parser.method_.end() + 1)
      return parser.reject(400, "more than one space after the method");
    extend(parser.target_, where, n);
    if (parser.target_.length > parser.limits_->max_request_line)
      return parser.reject(414, "request-target too long");
    return 0;
  }
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    extend(parser.name_, offset(parser, at), n);
    return parser.head_done_ ? 0 : check_head_size(parser, at, n);
  }
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    // llhttp reports an empty value as an empty piece at the next line.
    if (n == 0) return 0;
    const std::uint32_t where = offset(parser, at);
    if (!parser.in_value_) {
      // The value's first byte must follow "name:" and optional whitespace
      // on the same line: anything else is an obs-fold (RFC 9112 §5.2).
      const char* b = parser.base_;
      if (!(where >= 2 && b[where - 1] == ' ' && b[where - 2] == ':')) {  // not "name: value"
        std::uint32_t before = where;
        while (before > 0 && is_ows(b[before - 1])) --before;
        if (before == 0 || b[before - 1] != ':') return parser.reject(400, "obsolete line folding");
      }
      parser.in_value_ = true;
      parser.value_ = {where, 0};
    } else if (where != parser.value_end_) {
      return parser.reject(400, "obsolete line folding");  // a continuation line
    }
    parser.value_.length += static_cast<std::uint32_t>(n);
    parser.value_end_ = where + static_cast<std::uint32_t>(n);
    return parser.head_done_ ? 0 : check_head_size(parser, at, n);
  }
  static int on_header_value_complete(llhttp_t* p) {
    Parser& parser = of(p);
    Span value = parser.value_;
    if (!parser.in_value_) value = {parser.name_.end(), 0};
    if (value.length > 0 && is_ows(parser.base_[value.end() - 1])) {
      do --value.length;
      while (value.length > 0 && is_ows(parser.base_[value.end() - 1]));
    }
    const Span name = parser.name_;
    parser.name_ = {};
    parser.value_ = {};
    parser.in_value_ = false;
    return parser.field_complete(name, value);
  }
  static int on_headers_complete(llhttp_t* p) {
    Parser& parser = of(p);
    parser.head_done_ = true;
    if (const int error = parser.head_complete_checks()) return error;
    if (parser.mode_ == Mode::kResponse) {
      // No body, whatever the fields say (RFC 9112 §6.3): an answer to HEAD,
      // 1xx (101 aside: llhttp turns it into a tunnel), 204 and 304.
      const int status = p->status_code;
      if (parser.no_body_ || (status < 200 && status != 101) || status == 204 || status == 304)
        return 1;
    }
    const bool body = (p->flags & F_CHUNKED) != 0 || parser.declared_length_ > 0 ||
                      (parser.mode_ == Mode::kResponse && llhttp_message_needs_eof(p) != 0);
    if (!body) return 0;
    parser.head_reported_ = true;
    return HPE_PAUSED;  // the caller sees the head before any body byte
  }
  static int on_body(llhttp_t* p, const char* at, std::size_t n) {
    Parser& parser = of(p);
    if (parser.body_bytes_ + n > parser.limits_->max_body_bytes)
      return parser.reject(413, "body too large");
    parser.body_bytes_ += n;
    if (parser.sink_ != nullptr) {
      parser.sink_(parser.sink_user_, at, n);
      return 0;
    }
    // De-chunk in place: each piece moves back to follow the previous one,
    // over chunk framing the parser has already consumed.
    const std::uint32_t where = offset(parser, at);
    if (parser.body_.length == 0) {
      parser.body_.offset = where;
    } else if (parser.body_.end() != where) {
      std::memmove(parser.base_ + parser.body_.end(), at, n);
    }
    parser.body_.length += static_cast<std::uint32_t>(n);
    return 0;
  }
  static int on_message_complete(llhttp_t* p) {
    of(p).message_done_ = true;
    return HPE_PAUSED;  // one message per execute(): the caller acts before the next
  }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_method = &on_method;
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

bool Parser::FieldList::grow(Field field) noexcept {
  try {
    items.resize(std::max<std::size_t>(16, items.size() * 2));
  } catch (...) {
    return false;
  }
  items[count++] = field;
  return true;
}

void Parser::reset(Mode mode, const Limits* limits) noexcept {
  llhttp_init(&parser_, mode == Mode::kRequest ? HTTP_REQUEST : HTTP_RESPONSE,
              &Callbacks::settings());
  parser_.data = this;
  limits_ = limits != nullptr ? limits : &kDefaultLimits;
  base_ = nullptr;
  from_ = 0;
  recent_ = 0;
  recent_count_ = 0;
  method_ = target_ = name_ = value_ = host_ = body_ = {};
  value_end_ = 0;
  fields_.count = 0;
  trailers_.count = 0;
  declared_length_ = 0;
  body_bytes_ = 0;
  sink_ = nullptr;
  sink_user_ = nullptr;
  error_reason_ = "";
  error_status_ = 0;
  hosts_ = 0;
  mode_ = mode;
  no_body_ = false;
  in_value_ = false;
  head_done_ = false;
  head_reported_ = false;
  expect_continue_ = false;
  message_done_ = false;
}

int Parser::reject(int status, const char* reason) noexcept {
  error_status_ = static_cast<std::uint16_t>(status);
  error_reason_ = reason;
  llhttp_set_error_reason(&parser_, reason);
  return HPE_USER;
}

int Parser::field_complete(Span name, Span value) noexcept {
  const std::string_view field = name.view(base_);
  // field-name = token, and no whitespace before the colon (RFC 9112 §5.1:
  // a server MUST reject it; llhttp keeps the space in the name).
  if (field.empty() || is_ows(field.back())) return reject(400, "invalid field name");
  if (head_done_) {
    if (trailers_.count >= limits_->max_header_count) return reject(431, "too many trailer fields");
    return trailers_.append({name, value}) ? 0 : reject(431, "out of memory for trailer fields");
  }
  if (fields_.count >= limits_->max_header_count) return reject(431, "too many header fields");
  if (!fields_.append({name, value})) return reject(431, "out of memory for header fields");
  if (mode_ != Mode::kRequest) return 0;
  switch (field.size()) {
    case 4:
    case 6:
    case 14:
    case 17:
      return request_field(field, value);
    default:
      return 0;
  }
}

// The fields a request's own checks read: Host, Expect, and framing fields
// spelt with '_' (refused: some peers fold '_' into '-').
int Parser::request_field(std::string_view field, Span value) noexcept {
  if (is_field(field, "host")) {
    ++hosts_;
    host_ = value;
    if (!host_valid(value.view(base_))) return reject(400, "invalid Host");
  } else if (is_field(field, "expect")) {
    if (!is_field(value.view(base_), "100-continue")) return reject(417, "unknown expectation");
    expect_continue_ = true;
  } else if (is_field(field, "content_length") || is_field(field, "transfer_encoding")) {
    return reject(400, "framing field with '_'");
  }
  return 0;
}

// A connection's requests, and a service's clients, repeat one Host: the
// last valid one is kept, and a value equal to it needs no second look.
bool Parser::host_valid(std::string_view host) noexcept {
  const std::size_t n = host.size();
  if (n == host_memo_length_) {
    // Two overlapping words compare up to 16 bytes without a call.
    if (n >= 8 && n <= 16) {
      if (load64(host.data()) == load64(host_memo_) &&
          load64(host.data() + n - 8) == load64(host_memo_ + n - 8))
        return true;
    } else if (std::memcmp(host.data(), host_memo_, n) == 0) {
      return true;
    }
  }
  if (!host_is_valid(host)) return false;
  if (host.size() <= sizeof host_memo_) {
    std::memcpy(host_memo_, host.data(), host.size());
    host_memo_length_ = static_cast<std::uint8_t>(host.size());
  }
  return true;
}

int Parser::head_complete_checks() noexcept {
  const llhttp_t& p = parser_;
  declared_length_ = (p.flags & F_CONTENT_LENGTH) != 0 ? p.content_length : 0;
  // (The head's last four bytes are checked when execute() returns: this
  // callback has no position.)
  if (mode_ == Mode::kResponse) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, and a
    // Transfer-Encoding that does not end in chunked leaves the length unknown.
    if ((p.flags & F_TRANSFER_ENCODING) != 0 &&
        ((p.flags & F_CHUNKED) == 0 || p.http_minor == 0))
      return reject(502, "Transfer-Encoding without final chunked");
    if (fields_.count != 0 && !crlf_before(fields_.items[0].name.offset))
      return reject(502, "line not ended by CR LF");
    return 0;
  }
  if (declared_length_ > limits_->max_body_bytes) return reject(413, "body too large");
  // A request line without a version is HTTP/0.9, which has no headers and
  // no status line: it would not understand the answer.
  if (p.http_major == 0) return reject(400, "HTTP/0.9 is not supported");
  if (p.http_major != 1) return reject(505, "only HTTP/1.x is served");
  // One SP between target and version (RFC 9112 §3; llhttp takes several),
  // a request-target without the bytes llhttp lets through, and a request
  // line ended by CR LF (llhttp takes a bare LF there; the field lines
  // after it it checks itself, and a head without fields ends in CR LF CR
  // LF, checked when execute() returns).
  if (base_[target_.end() + 1] != 'H') return reject(400, "more than one space before the version");
  if (!target_is_clean(target_.view(base_))) return reject(400, "invalid byte in the request-target");
  if (fields_.count != 0 && !crlf_before(fields_.items[0].name.offset))
    return reject(400, "line not ended by CR LF");
  const bool http11 = p.http_minor >= 1;
  if ((p.flags & F_TRANSFER_ENCODING) != 0 && !http11)
    return reject(400, "Transfer-Encoding in HTTP/1.0");
  // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host field (HTTP/1.0
  // may omit it).
  if (hosts_ > 1 || (hosts_ == 0 && http11)) return reject(400, "missing or repeated Host");
  if (!http11) expect_continue_ = false;
  return 0;
}

// Slow path of line_endings_ok(): the ending straddles two execute()
// calls, so its first bytes come from recent_ (false when they are not
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
      if (older > recent_count_) return false;
      c = static_cast<unsigned char>(recent_ >> (8 * (older - 1)));
    }
    if (c != kEnd[4 - back]) return false;
  }
  return true;
}

void Parser::remember(std::uint32_t to) noexcept {
  // The last bytes fed, for a line ending that straddles two calls.
  for (std::uint32_t i = (to - from_ > 4 ? to - 4 : from_); i < to; ++i)
    recent_ = (recent_ << 8) | static_cast<unsigned char>(base_[i]);
  recent_count_ = recent_count_ + (to - from_) > 4 ? 4 : recent_count_ + (to - from_);
}

Progress Parser::execute(char* base, std::uint32_t from, std::uint32_t to) noexcept {
  if (parser_.error == HPE_PAUSED) llhttp_resume(&parser_);
  base_ = base;
  from_ = from;
  const llhttp_errno_t err = llhttp_execute(&parser_, base + from, to - from);
  if (err == HPE_OK) {
    remember(to);
    return {Event::kNeedMore, to};
  }
  const auto at = static_cast<std::uint32_t>(parser_.error_pos - base);
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    // llhttp 8.1 takes any byte after a CR as its LF, and a bare LF to end
    // the head (request smuggling): the head's last bytes must be CR LF CR
    // LF, and a chunked body's last line must end in CR LF.
    bool ends_ok = true;
    if (!message_done_ || !head_reported_) {
      ends_ok = line_endings_ok(at, 4);  // the head ends here
    } else if (chunked()) {
      ends_ok = line_endings_ok(at, 2);
    }
    if (!ends_ok) {
      reject(400, "line not ended by CR LF");
      return {Event::kError, at};
    }
    if (message_done_) return {Event::kMessage, at};
    remember(at);
    return {Event::kHead, at};
  }
  if (error_status_ == 0) {
    error_status_ = err == HPE_INVALID_VERSION && unsupported_version(at) ? 505 : 400;
    error_reason_ = llhttp_get_error_reason(&parser_);
    if (error_reason_ == nullptr) error_reason_ = llhttp_errno_name(err);
  }
  return {Event::kError, at};
}

// llhttp stopped at `at` on the version of a request line: a well-formed
// version it does not know (HTTP/1.2, HTTP/3.0) is not served rather than
// malformed. llhttp 8.1 knows 0.9, 1.0, 1.1 and 2.0: when the version is one
// of those, it stopped on the byte after it (HTTP/1.01), which is malformed.
bool Parser::unsupported_version(std::uint32_t at) const noexcept {
  if (mode_ != Mode::kRequest || target_.length == 0) return false;
  const std::uint32_t version = target_.end() + 6;  // after " HTTP/"
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
  if ((err == HPE_OK || err == HPE_PAUSED) && message_done_) return {Event::kMessage, at};
  if (error_status_ == 0) {
    error_status_ = 400;
    error_reason_ = "message truncated";
  }
  return {Event::kError, at};
}

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
