// http1/parser.hpp (internal) — Parser: one HTTP/1.x message at a time, a
// request or a response, over llhttp in strict mode plus the field, framing
// and line-ending rules of RFC 9112 and RFC 9110 §5.5 that llhttp lets
// through. Knows nothing of sockets, routes or server options.
// Thread-safety: a Parser belongs to one thread at a time.
// Lifetimes: every Span is an offset from the `base` passed to execute(); the
// caller keeps a message's head at the same offsets from base until the head
// has been read (and, when the body is assembled in place, the body until the
// message is done). Spans stay meaningful across a move of the whole buffer.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {
namespace http1 {

// Bytes [offset, offset + length) of the caller's buffer.
struct Span {
  std::uint32_t offset = 0;
  std::uint32_t length = 0;

  std::uint32_t end() const noexcept { return offset + length; }
  std::string_view view(const char* base) const noexcept { return {base + offset, length}; }
};

// One header or trailer field: the name as received, the value without the
// whitespace around it.
struct Field {
  Span name;
  Span value;
};

enum class Mode : std::uint8_t { kRequest, kResponse };

struct Limits {
  std::size_t max_request_line = 8 * 1024;    // request-target bytes: 414
  std::size_t max_header_bytes = 64 * 1024;   // the head, start line included: 431
  std::size_t max_header_count = 100;         // header (and trailer) fields: 431
  std::uint64_t max_body_bytes = UINT64_MAX;  // body bytes after de-chunking: 413
};

// What execute() stopped at.
enum class Event : std::uint8_t {
  kNeedMore,  // every byte given was consumed; feed more
  kHead,      // the head is complete and a body follows (execute again for it)
  kMessage,   // the message is complete (its head too, when no kHead came)
  kError,     // error_status() and error_reason() say why; the parser is spent
};

struct Progress {
  Event event;
  std::uint32_t at;  // offset from base where parsing stopped (the next byte)
};

// Receives body bytes as they are parsed (de-chunked), in order, when the
// body is streamed. `at` points into the caller's buffer.
using BodySink = void (*)(void* user, const char* at, std::size_t length) noexcept;

class Parser {
 public:
  Parser() noexcept { reset(Mode::kRequest, nullptr); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Starts a new message. `limits` must outlive the parse (nullptr: the
  // defaults). Keeps the capacity of the field lists, so a steady state
  // allocates nothing. The body is assembled in place unless a sink is set.
  void reset(Mode mode, const Limits* limits) noexcept;
  // Streams the body to `sink` instead of assembling it. REQUIRES: before
  // the first body byte is parsed (at kHead at the latest).
  void stream_body(BodySink sink, void* user) noexcept {
    m_.sink = sink;
    m_.sink_user = user;
  }
  // Response mode: the request was HEAD (or the response otherwise has no
  // body whatever its fields say). REQUIRES: before the first execute().
  void expect_no_body() noexcept { m_.no_body = true; }

  // Parses base[from, to). Stops after the head when a body follows, after
  // the message, or at an error. REQUIRES: when the body is assembled, the
  // bytes from the head's first byte on stay in place at the same offsets
  // from base; with a sink, the head's bytes do until kHead (or kMessage).
  Progress execute(char* base, std::uint32_t from, std::uint32_t to) noexcept;
  // The peer closed: ends a close-delimited response body (kMessage), or
  // reports a truncated message (kError).
  Progress finish(char* base, std::uint32_t at) noexcept;

  // ---- the message (the head from kHead or kMessage on) -------------------
  Mode mode() const noexcept { return mode_; }
  Span method() const noexcept { return m_.method; }   // request mode
  Span target() const noexcept { return m_.target; }   // request mode
  int status() const noexcept { return parser_.status_code; }  // response mode
  int version_major() const noexcept { return parser_.http_major; }
  int version_minor() const noexcept { return parser_.http_minor; }
  std::span<const Field> fields() const noexcept { return fields_.view(); }
  // Trailer fields of a chunked body, kept apart from the header fields
  // (RFC 9110 §6.5.1 forbids merging them).
  std::span<const Field> trailers() const noexcept { return trailers_.view(); }
  // llhttp's verdict from the version and Connection fields.
  bool keep_alive() const noexcept { return llhttp_should_keep_alive(&parser_) != 0; }
  // An Upgrade request, or a 101 response: the bytes after it are not HTTP.
  bool upgrade() const noexcept { return parser_.upgrade != 0; }
  bool chunked() const noexcept { return (parser_.flags & F_CHUNKED) != 0; }
  bool has_content_length() const noexcept { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  std::uint64_t content_length() const noexcept { return m_.declared_length; }
  // Request mode: `Expect: 100-continue` on an HTTP/1.1 request.
  bool expect_continue() const noexcept { return m_.expect_continue; }
  // Request mode: the Host field's value (empty Span when absent).
  Span host() const noexcept { return m_.host; }
  // The assembled body (no sink): de-chunked, contiguous.
  Span body() const noexcept { return m_.body; }
  std::uint64_t body_bytes() const noexcept { return m_.body_bytes; }
  bool head_complete() const noexcept { return m_.head_done; }
  // While a body streams to a sink, outside trailers, no Span refers to the
  // bytes parsed so far: the caller may drop them and pass a new base
  // (execute(new_base, 0, ...)); the head's Spans are then gone.
  bool can_rebase() const noexcept {
    return m_.head_done && m_.sink != nullptr && !m_.in_value && m_.name.length == 0 &&
           trailers_.count == 0;
  }

  // After kError: the status a server answers (400, 413, 414, 417, 431,
  // 505) and a short reason.
  int error_status() const noexcept { return m_.error_status; }
  const char* error_reason() const noexcept { return m_.error_reason != nullptr ? m_.error_reason : ""; }

 private:
  friend struct Callbacks;

  int reject(int status, const char* reason) noexcept;
  int field_complete() noexcept;
  int trailer_complete(Span name, Span value) noexcept;
  int host_field(Span value) noexcept;
  int rare_request_field(std::string_view field, Span value) noexcept;
  bool host_valid(std::string_view host) noexcept;
  int head_complete_checks() noexcept;
  int chunked_codings() const noexcept;
  bool unsupported_version(std::uint32_t at) const noexcept;
  // The `count` bytes before `at` end a line as RFC 9112 requires: CR LF
  // (count 2) or CR LF CR LF (count 4).
  bool line_endings_ok(std::uint32_t at, std::uint32_t count) const noexcept {
    if (at - from_ < count) return line_endings_straddle(at, count);
    if (count == 2) return crlf_before(at);
    std::uint32_t four;
    std::memcpy(&four, base_ + at - 4, 4);
    std::uint32_t crlfcrlf;
    std::memcpy(&crlfcrlf, "\r\n\r\n", 4);
    return four == crlfcrlf;
  }
  // base_[at - 2, at) is CR LF. REQUIRES: both bytes are in base_.
  bool crlf_before(std::uint32_t at) const noexcept {
    return base_[at - 2] == '\r' && base_[at - 1] == '\n';
  }
  bool line_endings_straddle(std::uint32_t at, std::uint32_t count) const noexcept;
  void remember(std::uint32_t to) noexcept;

  // Per-message state, zeroed by reset() in two blocks small enough to be
  // cleared with a few vector stores rather than a string instruction.
  struct MessageSpans {
    Span method, target, name, value, host, body;
  };
  struct MessageState {
    std::uint64_t declared_length;
    std::uint64_t body_bytes;
    BodySink sink;
    void* sink_user;
    const char* error_reason;    // nullptr until an error
    std::uint32_t recent;        // the last 4 bytes before from_, newest in the low byte
    std::uint32_t recent_count;  // how many of them there are (at most 4)
    std::uint32_t value_end;     // where the value's last piece ended
    std::uint16_t error_status;
    std::uint8_t hosts;
    bool no_body;
    bool in_value;               // a value's first piece was seen
    bool head_done;
    bool head_reported;          // kHead was returned for this message
    bool expect_continue;
    bool message_done;
  };
  struct Message : MessageSpans, MessageState {};
  // Fields in storage kept across messages: a steady state allocates nothing.
  struct FieldList {
    std::unique_ptr<Field[]> items;
    std::uint32_t count = 0;
    std::uint32_t capacity = 0;
    bool append(Field field) noexcept {
      if (count == capacity) return grow(field);
      items[count++] = field;
      return true;
    }
    bool grow(Field field) noexcept;  // false when out of memory
    std::span<const Field> view() const noexcept { return {items.get(), count}; }
  };

  llhttp_t parser_;
  const Limits* limits_ = nullptr;
  char* base_ = nullptr;           // the buffer of the execute() running
  std::uint32_t from_ = 0;         // where that execute() started
  Mode mode_ = Mode::kRequest;
  Message m_{};
  FieldList fields_;
  FieldList trailers_;
  std::uint8_t host_memo_length_ = 0;  // kept across messages
  char host_memo_[62] = {};
};

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
