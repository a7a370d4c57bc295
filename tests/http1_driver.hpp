// A socket-free driver for http1::Parser, shared by its unit tests and its
// fuzz target: feeds a byte string in pieces (split where asked), the way a
// connection feeds what each read returned, and records what the parser saw
// as plain strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http1/parser.hpp"

namespace portico::detail::http1::testing {

struct Message {
  bool head_event = false;  // a kHead came before the message completed
  std::string method, target;
  int status = 0;
  int minor = 0;
  std::vector<std::pair<std::string, std::string>> fields, trailers;
  std::string body;
  std::string host;
  bool keep_alive = false, upgrade = false, expect_continue = false;

  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;
  int error_status = 0;  // 0: no error
  std::string error_reason;
  bool incomplete = false;  // input ended inside a message

  bool operator==(const Outcome& o) const {
    return messages == o.messages && error_status == o.error_status && incomplete == o.incomplete;
  }
};

struct DriveOptions {
  Mode mode = Mode::kRequest;
  Limits limits{};
  bool stream = false;      // body through a sink instead of assembled
  bool head_request = false;  // response mode: every response answers a HEAD
  bool eof = true;          // the peer closes after the last byte (finish())
};

namespace driver_detail {
inline void collect(void* user, const char* at, std::size_t n) noexcept {
  static_cast<std::string*>(user)->append(at, n);
}
inline std::vector<std::pair<std::string, std::string>> strings(std::span<const Field> fields,
                                                                const char* base) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Field& f : fields) out.emplace_back(f.name.view(base), f.value.view(base));
  return out;
}
}  // namespace driver_detail

// Parses `input`, handing the parser the bytes up to each of `cuts` (sorted
// offsets) before the rest, as separate reads. Each message is parsed from
// the start of its own buffer (the bytes before it consumed), as a
// connection does after answering one.
inline Outcome drive(std::string input, const std::vector<std::size_t>& cuts,
                     const DriveOptions& options = {}) {
  Outcome outcome;
  Parser parser;
  std::string streamed;
  auto start_message = [&] {
    parser.reset(options.mode, &options.limits);
    if (options.head_request) parser.expect_no_body();
    streamed.clear();
    if (options.stream) parser.stream_body(&driver_detail::collect, &streamed);
  };
  start_message();
  std::size_t consumed = 0;  // bytes of earlier messages, gone from the buffer
  std::size_t available = 0;
  auto next_read = [&] {
    for (const std::size_t cut : cuts) {
      if (cut > available && cut < input.size()) return cut;
    }
    return input.size();
  };
  available = next_read();
  std::uint32_t position = 0;  // in the current message's buffer
  bool in_message = false;
  bool head_event = false;
  for (;;) {
    char* base = input.data() + consumed;
    const auto to = static_cast<std::uint32_t>(available - consumed);
    Progress progress{};
    if (position < to) {
      in_message = true;
      progress = parser.execute(base, position, to);
    } else if (available < input.size()) {
      available = next_read();
      continue;
    } else if (options.eof && options.mode == Mode::kResponse && in_message) {
      progress = parser.finish(base, position);  // the peer closed
    } else {
      outcome.incomplete = in_message;
      return outcome;
    }
    switch (progress.event) {
      case Event::kNeedMore:
        position = progress.at;
        break;
      case Event::kHead:
        position = progress.at;
        head_event = true;
        break;
      case Event::kMessage: {
        Message& m = outcome.messages.emplace_back();
        m.head_event = std::exchange(head_event, false);
        m.method = std::string(parser.method().view(base));
        m.target = std::string(parser.target().view(base));
        m.status = options.mode == Mode::kResponse ? parser.status() : 0;
        m.minor = parser.version_minor();
        m.fields = driver_detail::strings(parser.fields(), base);
        m.trailers = driver_detail::strings(parser.trailers(), base);
        m.body = options.stream ? streamed : std::string(parser.body().view(base));
        m.host = std::string(parser.host().view(base));
        m.keep_alive = parser.keep_alive();
        m.upgrade = parser.upgrade();
        m.expect_continue = parser.expect_continue();
        consumed += progress.at;
        position = 0;
        in_message = false;
        if (m.upgrade || consumed == input.size()) return outcome;  // after an upgrade: not HTTP
        start_message();
        break;
      }
      case Event::kError:
        outcome.error_status = parser.error_status();
        outcome.error_reason = parser.error_reason();
        return outcome;
    }
  }
}

}  // namespace portico::detail::http1::testing
