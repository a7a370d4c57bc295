// libFuzzer target: the gateway's upstream response path without sockets —
// http1::Parser in response mode fed as UpstreamConnection feeds it (interim
// 1xx responses skipped, the body streamed to a sink, a close ending a
// close-delimited body), then gateway::status_reason, UpstreamResponse::from
// and write_response_head on the head that parsed, as ProxyExchange calls
// them. Invariants (std::abort() on a breach, with the case on stderr):
//   - the response parsed whole and parsed in three reads split at
//     fuzzer-chosen points agree (head written for the client, body, end);
//   - the client head written for it parses back (response mode) as a whole
//     head, with the upstream's status, exactly one framing and the one
//     write_response_head reported, a body the client can find the end of
//     (no length and no chunking only when the connection closes after it),
//     no hop-by-hop field left, one X-Request-Id, the route's edits applied.
// Input: byte 0 = flags (HEAD request, HTTP/1.1 client, keep-alive client,
// route edits), bytes 1-2 = where the split reads end, the rest = the
// upstream's bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/forward.hpp"
#include "http1/parser.hpp"
#include "http1/writer.hpp"

namespace {

namespace http1 = portico::detail::http1;
namespace gateway = portico::detail::gateway;
using namespace std::string_view_literals;

constexpr std::string_view kDateLine = "Date: Sat, 05 Dec 2026 14:06:29 GMT\r\n";
constexpr std::string_view kRequestId = "0123456789abcdef0123456789abcdef";
constexpr gateway::FieldValue kAdded[] = {{"X-Served-By", "portico"}};
constexpr std::string_view kRemoved[] = {"Server"};

struct Options {
  bool head_request = false;
  bool client_http11 = true;
  bool client_keep_alive = true;
  bool edits = false;
};

// What the proxy did with one upstream response.
struct Relay {
  int interim = 0;          // 1xx responses skipped before the final one
  bool head = false;        // a final head parsed
  std::string client_head;  // write_response_head's output
  gateway::ClientFraming framing;
  // Of the UpstreamResponse the head was written from (its field views
  // die with the parser).
  int status = 0;
  bool has_body = false;
  std::uint64_t content_length = 0;
  std::string body;        // de-chunked body bytes
  bool complete = false;   // the response ended well
  bool upgraded = false;   // a 101: the bytes after it are not HTTP
  int error_status = 0;    // the parser refused it
  bool truncated = false;  // the input ended inside it

  bool operator==(const Relay& o) const {
    return interim == o.interim && head == o.head && client_head == o.client_head &&
           status == o.status && has_body == o.has_body && content_length == o.content_length &&
           framing.framing == o.framing.framing && framing.close == o.framing.close &&
           body == o.body && complete == o.complete && upgraded == o.upgraded &&
           error_status == o.error_status && truncated == o.truncated;
  }
};

void collect(void* user, const char* at, std::size_t length) noexcept {
  static_cast<std::string*>(user)->append(at, length);
}

[[noreturn]] void fail(const char* what, std::string_view input, std::string_view detail = {}) {
  std::fprintf(stderr,
               "upstream_response_fuzz: %s\n--- input (%zu bytes)\n%.*s\n--- detail\n%.*s\n", what,
               input.size(), static_cast<int>(input.size()), input.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

const http1::Limits kLimits{.max_request_line = 256,
                            .max_header_bytes = 2048,
                            .max_header_count = 24,
                            .max_body_bytes = 1 << 20};

// Parses `input` as reads ending at `cuts` (then the rest), the way an
// upstream connection does, and writes the client head for the final head.
Relay relay(std::string& input, const std::vector<std::size_t>& cuts, const Options& options) {
  Relay out;
  http1::Parser parser;
  const auto start_response = [&] {
    parser.reset(http1::Mode::kResponse, &kLimits);
    parser.stream_body(&collect, &out.body);
    if (options.head_request) parser.expect_no_body();
  };
  start_response();
  std::size_t available = input.size();
  for (const std::size_t cut : cuts) {
    if (cut > 0 && cut < available) available = cut;
  }
  std::size_t start = 0;  // where the current message starts (after interim ones)
  std::uint32_t at = 0;   // parsed bytes of it
  for (;;) {
    char* base = input.data() + start;
    const auto to = static_cast<std::uint32_t>(available - start);
    if (at < to) {
      const bool head_was_done = parser.head_complete();
      const http1::Progress progress = parser.execute(base, at, to);
      at = progress.at;
      if (progress.event == http1::Event::kError) {
        out.error_status = parser.error_status();
        return out;
      }
      if (progress.event == http1::Event::kNeedMore) continue;
      if (!head_was_done) {
        const int status = parser.status();
        if (status < 200 && status != 101) {
          ++out.interim;
          start += at;
          at = 0;
          start_response();
          continue;
        }
        out.head = true;
        const std::string_view reason = gateway::status_reason({base, at});
        const gateway::UpstreamResponse response =
            gateway::UpstreamResponse::from(parser, base, reason, options.head_request);
        out.status = response.status;
        out.has_body = response.has_body;
        out.content_length = response.content_length;
        gateway::ResponseForwarding how;
        how.date_line = kDateLine;
        how.request_id = kRequestId;
        if (options.edits) how.edits = gateway::HeaderEdits{kAdded, kRemoved};
        how.client_http11 = options.client_http11;
        how.client_keep_alive = options.client_keep_alive;
        out.framing = gateway::write_response_head(out.client_head, response, how);
        if (parser.upgrade()) {
          out.upgraded = true;
          return out;
        }
      }
      if (progress.event == http1::Event::kMessage) {
        out.complete = true;
        return out;
      }
      continue;
    }
    if (available < input.size()) {
      std::size_t next = input.size();
      for (const std::size_t cut : cuts) {
        if (cut > available && cut < next) next = cut;
      }
      available = next;
      continue;
    }
    // The upstream closed: a close-delimited body ends, anything else was cut.
    if (parser.head_complete() && parser.finish(base, at).event == http1::Event::kMessage) {
      out.complete = true;
    } else {
      out.truncated = true;
    }
    return out;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The client head parses back and says what write_response_head meant.
void check_client_head(const Relay& relay, const Options& options, std::string_view input) {
  std::string head = relay.client_head;
  const std::string_view detail = head;
  const bool switching = relay.status == 101;
  http1::Parser back;
  back.reset(http1::Mode::kResponse, nullptr);
  if (!relay.has_body) back.expect_no_body();
  const http1::Progress progress =
      back.execute(head.data(), 0, static_cast<std::uint32_t>(head.size()));
  if (progress.event == http1::Event::kError) fail("client head does not parse", input, detail);
  if (progress.event == http1::Event::kNeedMore) fail("client head incomplete", input, detail);
  if (progress.at != head.size()) fail("bytes after the client head", input, detail);
  if (back.status() != relay.status) fail("status changed", input, detail);
  if (back.version_minor() != 1) fail("client head not HTTP/1.1", input, detail);

  int lengths = 0, encodings = 0, connections = 0, request_ids = 0, served_by = 0;
  std::string_view length_value, encoding_value;
  for (const http1::Field& field : back.fields()) {
    const std::string_view name = field.name.view(head.data());
    const std::string_view value = field.value.view(head.data());
    if (iequals(name, "content-length")) {
      ++lengths;
      length_value = value;
    } else if (iequals(name, "transfer-encoding")) {
      ++encodings;
      encoding_value = value;
    } else if (iequals(name, "connection")) {
      ++connections;
    } else if (iequals(name, "x-request-id")) {
      ++request_ids;
      if (value != kRequestId) fail("X-Request-Id not the gateway's", input, detail);
    } else if (iequals(name, "x-served-by")) {
      ++served_by;
    } else if (iequals(name, "keep-alive") || iequals(name, "proxy-connection") ||
               iequals(name, "te") || iequals(name, "trailer")) {
      fail("hop-by-hop field relayed", input, detail);
    } else if (iequals(name, "upgrade") && !switching) {
      fail("Upgrade relayed without a 101", input, detail);
    } else if (options.edits && iequals(name, "server")) {
      fail("a removed field relayed", input, detail);
    }
  }
  if (lengths > 1 || encodings > 1 || (lengths > 0 && encodings > 0))
    fail("more than one framing", input, detail);
  if (connections > 1) fail("more than one Connection field", input, detail);
  if (request_ids != 1) fail("not exactly one X-Request-Id", input, detail);
  if (options.edits && served_by != 1) fail("added field not there once", input, detail);

  switch (relay.framing.framing) {
    case http1::Framing::kChunked:
      if (encodings != 1 || encoding_value != "chunked") fail("chunked not said", input, detail);
      if (!options.client_http11) fail("chunked to an HTTP/1.0 client", input, detail);
      break;
    case http1::Framing::kLength:
      if (lengths != 1 || length_value != std::to_string(relay.content_length))
        fail("length not said", input, detail);
      break;
    case http1::Framing::kNone:
      if (encodings != 0) fail("chunked said, none used", input, detail);
      if (relay.has_body && !switching) {
        // Close-delimited: the close is the only end the client can see.
        if (lengths != 0) fail("a length said for a close-delimited body", input, detail);
        if (!relay.framing.close) fail("close-delimited body on a kept connection", input, detail);
      }
      break;
  }
  if (!switching) {
    if (relay.framing.close && back.keep_alive()) fail("closes but says keep-alive", input, detail);
    if (!relay.framing.close && !back.keep_alive()) fail("kept but says close", input, detail);
    if (!options.client_keep_alive && !relay.framing.close)
      fail("a closing client kept", input, detail);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  Options options;
  options.head_request = (data[0] & 1) != 0;
  options.client_http11 = (data[0] & 2) == 0;
  options.client_keep_alive = (data[0] & 4) == 0;
  options.edits = (data[0] & 8) != 0;
  const std::string bytes(reinterpret_cast<const char*>(data + 3), size - 3);
  const std::string_view raw = bytes;
  // status_reason takes any head bytes.
  (void)gateway::status_reason(raw);

  std::string whole_input = bytes;
  const Relay whole = relay(whole_input, {}, options);
  std::vector<std::size_t> cuts;
  if (!bytes.empty()) {
    cuts.push_back(data[1] % bytes.size());
    cuts.push_back(data[2] % bytes.size());
  }
  std::string split_input = bytes;
  const Relay split = relay(split_input, cuts, options);
  if (!(whole == split)) {
    std::string detail = "whole head:\n" + whole.client_head + "\nsplit head:\n" +
                         split.client_head + "\nwhole body " + std::to_string(whole.body.size()) +
                         " split body " + std::to_string(split.body.size()) + "\nwhole error " +
                         std::to_string(whole.error_status) + " split error " +
                         std::to_string(split.error_status);
    fail("whole and split disagree", raw, detail);
  }
  if (whole.head) check_client_head(whole, options, raw);
  return 0;
}
