// http1/writer.hpp (internal) — the HTTP/1.1 serialiser: start lines,
// fields, framing, chunks and 100 Continue, appended to any output with
// append(std::string_view) and push_back(char). Knows nothing of sockets,
// routes or server options; the caller decides which fields to write.
// Thread-safety: stateless functions. Inline, so a literal of known length
// becomes a few stores in the caller's buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {
namespace http1 {

using namespace std::string_view_literals;

// How a body is delimited (RFC 9112 §6).
enum class Framing : std::uint8_t {
  kLength,   // Content-Length
  kChunked,  // Transfer-Encoding: chunked
  kNone,     // no body (1xx, 204, 304, HEAD), or close-delimited
};

// Decimal digits of `value`, right-aligned in `buffer`; returns the first.
inline char* format_decimal(char (&buffer)[20], std::uint64_t value) noexcept {
  char* p = buffer + sizeof buffer;
  do {
    *--p = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return p;
}

// "HTTP/1.1 <status> <reason>\r\n". REQUIRES: 100 <= status <= 999.
template <class Out>
void write_status_line(Out& out, int status, std::string_view reason) {
  if (status == 200) {
    out.append("HTTP/1.1 200 OK\r\n"sv);
    return;
  }
  const char line[13] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ',
                         static_cast<char>('0' + status / 100),
                         static_cast<char>('0' + status / 10 % 10),
                         static_cast<char>('0' + status % 10), ' '};
  out.append(std::string_view(line, sizeof line));
  out.append(reason);
  out.append("\r\n"sv);
}

// "<method> <target> HTTP/1.1\r\n".
template <class Out>
void write_request_line(Out& out, std::string_view method, std::string_view target) {
  out.append(method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n"sv);
}

// "<name>: <value>\r\n". REQUIRES: name is a token and value holds no CR,
// LF or NUL (the caller checked, or the parser did).
template <class Out>
void write_field(Out& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": "sv);
  out.append(value);
  out.append("\r\n"sv);
}

// The framing field of a message whose body is `framing`.
template <class Out>
void write_framing(Out& out, Framing framing, std::uint64_t length) {
  if (framing == Framing::kLength) {
    char digits[20];
    const char* first = format_decimal(digits, length);
    out.append("Content-Length: "sv);
    out.append(std::string_view(first, static_cast<std::size_t>(digits + sizeof digits - first)));
    out.append("\r\n"sv);
  } else if (framing == Framing::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n"sv);
  }
}

// The empty line that ends a head.
template <class Out>
void end_head(Out& out) {
  out.append("\r\n"sv);
}

// "<size in hex>\r\n": what precedes `size` bytes of chunk data.
template <class Out>
void write_chunk_size(Out& out, std::size_t size) {
  char hex[18];
  char* p = hex + sizeof hex;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = "0123456789abcdef"[size & 0xf];
    size >>= 4;
  } while (size != 0);
  out.append(std::string_view(p, static_cast<std::size_t>(hex + sizeof hex - p)));
}

// One chunk: size, data, CRLF. Nothing for empty data (an empty chunk
// would end the body).
template <class Out>
void write_chunk(Out& out, std::string_view data) {
  if (data.empty()) return;
  write_chunk_size(out, data.size());
  out.append(data);
  out.append("\r\n"sv);
}

// The last chunk and the end of an empty trailer section.
template <class Out>
void write_last_chunk(Out& out) {
  out.append("0\r\n\r\n"sv);
}

// The interim answer to `Expect: 100-continue`.
inline constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
template <class Out>
void write_continue(Out& out) {
  out.append(kContinue);
}

}  // namespace http1
}  // namespace detail
}  // namespace v0
}  // namespace portico
