// Tests for http1::Parser from plain byte tables, without a socket: every
// case parsed whole, split at every byte boundary, and a byte at a time, in
// request and response mode, with the body assembled and streamed. The
// rejected rows pin RFC 9112 / RFC 9110 §5.5 rules one by one; the comment
// on each says which, and which of them llhttp 8.1 alone would accept.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "http1_driver.hpp"

namespace {

using namespace std::string_literals;
using portico::detail::http1::Limits;
using portico::detail::http1::Mode;
using portico::detail::http1::testing::drive;
using portico::detail::http1::testing::DriveOptions;
using portico::detail::http1::testing::Message;
using portico::detail::http1::testing::Outcome;

std::string printable(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

// Parses `input` whole, then split at every boundary, then a byte at a
// time; all must agree. Returns the whole-input outcome.
Outcome parse_everywhere(const std::string& input, const DriveOptions& options = {}) {
  const Outcome whole = drive(input, {}, options);
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    const Outcome split = drive(input, {cut}, options);
    EXPECT_EQ(split, whole) << "split at " << cut << " of " << printable(input)
                            << "\n  whole error " << whole.error_status << " " << whole.error_reason
                            << "\n  split error " << split.error_status << " " << split.error_reason;
    if (split != whole) break;
  }
  std::vector<std::size_t> every(input.size());
  std::iota(every.begin(), every.end(), std::size_t{1});
  EXPECT_EQ(drive(input, every, options), whole) << "byte at a time: " << printable(input);
  DriveOptions streamed = options;
  streamed.stream = true;
  EXPECT_EQ(drive(input, {}, streamed), whole) << "streamed body: " << printable(input);
  EXPECT_EQ(drive(input, every, streamed), whole) << "streamed, byte at a time: " << printable(input);
  return whole;
}

// ---- requests: accepted -------------------------------------------------------

TEST(Http1ParserTest, SimpleGet) {
  const Outcome o = parse_everywhere("GET /users/42?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 1u);
  const Message& m = o.messages[0];
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.target, "/users/42?x=1");
  EXPECT_EQ(m.minor, 1);
  EXPECT_EQ(m.host, "example.com");
  EXPECT_TRUE(m.keep_alive);
  EXPECT_FALSE(m.head_event);  // no body: the head and the message end together
  const std::vector<std::pair<std::string, std::string>> fields = {{"Host", "example.com"},
                                                                   {"Accept", "*/*"}};
  EXPECT_EQ(m.fields, fields);
  EXPECT_FALSE(o.incomplete);
}

TEST(Http1ParserTest, ValuesLoseSurroundingWhitespaceAndKeepObsText) {
  const Outcome o = parse_everywhere(
      "GET / HTTP/1.1\r\nHost: a\r\nX:\tb c\t \r\nEmpty:\r\nSpaces:   \r\nY: \x80\xff\r\n\r\n");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"Host", "a"}, {"X", "b c"}, {"Empty", ""}, {"Spaces", ""}, {"Y", "\x80\xff"}};
  EXPECT_EQ(o.messages.at(0).fields, fields);
}

TEST(Http1ParserTest, ContentLengthBodyComesAfterAHeadEvent) {
  const Outcome o = parse_everywhere("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_TRUE(o.messages[0].head_event);
  EXPECT_EQ(o.messages[0].body, "hello");
}

TEST(Http1ParserTest, ChunkedBodyIsDechunkedAndTrailersKeptApart) {
  const Outcome o = parse_everywhere(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nChecksum: abc\r\n\r\n");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  const Message& m = o.messages.at(0);
  EXPECT_EQ(m.body, "hello world");
  const std::vector<std::pair<std::string, std::string>> trailers = {{"Checksum", "abc"}};
  EXPECT_EQ(m.trailers, trailers);
  EXPECT_EQ(m.fields.size(), 2u);  // Host, Transfer-Encoding: never the trailer
}

TEST(Http1ParserTest, PipelinedMessagesOneAtATime) {
  const Outcome o = parse_everywhere(
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
      "GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 3u);
  EXPECT_EQ(o.messages[0].target, "/a");
  EXPECT_EQ(o.messages[1].body, "hi");
  EXPECT_EQ(o.messages[2].target, "/c");
  EXPECT_TRUE(o.messages[1].keep_alive);
  EXPECT_FALSE(o.messages[2].keep_alive);
}

TEST(Http1ParserTest, Http10KeepAliveAndHostOptional) {
  const Outcome o = parse_everywhere(
      "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 2u);
  EXPECT_EQ(o.messages[0].minor, 0);
  EXPECT_FALSE(o.messages[0].keep_alive);
  EXPECT_TRUE(o.messages[1].keep_alive);
}

TEST(Http1ParserTest, ExpectContinueOnlyForHttp11) {
  Outcome o = parse_everywhere(
      "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  EXPECT_TRUE(o.messages.at(0).expect_continue);
  EXPECT_TRUE(o.messages.at(0).head_event);
  o = parse_everywhere("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  EXPECT_FALSE(o.messages.at(0).expect_continue);
}

TEST(Http1ParserTest, UpgradeStopsAtTheMessage) {
  const Outcome o = parse_everywhere(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_TRUE(o.messages[0].upgrade);
}

TEST(Http1ParserTest, AcceptedForms) {
  // Each is served: a leading empty line (RFC 9112 §2.2 SHOULD ignore),
  // absolute-form, valid Host forms, an empty Host (empty authority), a
  // custom method, OWS after Content-Length's value.
  const std::vector<std::string> cases = {
      "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a-b.c_d~e%41\r\n\r\n",
      "GET / HTTP/1.1\r\nHost:\r\n\r\n",
      "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 \r\n\r\nx",
  };
  for (const std::string& request : cases) {
    const Outcome o = parse_everywhere(request);
    EXPECT_EQ(o.error_status, 0) << printable(request) << ": " << o.error_reason;
    EXPECT_EQ(o.messages.size(), 1u) << printable(request);
  }
}

// ---- requests: rejected ---------------------------------------------------------

struct Rejected {
  const char* why;
  std::string bytes;
  int status;
};

void expect_rejected(const std::vector<Rejected>& table, const DriveOptions& options = {}) {
  for (const Rejected& row : table) {
    const Outcome o = parse_everywhere(row.bytes, options);
    EXPECT_EQ(o.error_status, row.status) << row.why << ": " << printable(row.bytes) << " ("
                                          << o.error_reason << ")";
    EXPECT_TRUE(o.messages.empty()) << row.why;
  }
}

TEST(Http1ParserTest, FieldSyntaxThatLlhttpAcceptsIsRejected) {
  // llhttp 8.1 in strict mode accepts every one of these.
  expect_rejected({
      {"RFC 9112 §5.1: whitespace between name and colon", "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", 400},
      {"RFC 9112 §5.2: obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400},
      {"RFC 9112 §5.2: obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400},
      {"RFC 9112 §5.2: obs-fold after an empty value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n c\r\n\r\n", 400},
      {"RFC 9110 §5.1: empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
      {"RFC 9112 §2.2: bare CR ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n", 400},
      {"RFC 9112 §2.2: CR CR LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400},
      {"bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"RFC 9112 §3.2: Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"RFC 9112 §3.2: Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"RFC 9112 §3.2: Host with userinfo", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400},
      {"RFC 9112 §3.2: unclosed IP-literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"RFC 9112 §3.2: non-digit port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400},
      {"RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 400},
      {"GATEWAY.md: Content_Length", "GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 1\r\n\r\n", 400},
      {"GATEWAY.md: Transfer_Encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", 400},
      {"RFC 9112 §3: two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §3: two spaces before the version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare LF ends the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §2.3: HTTP/1.01 is malformed", "GET / HTTP/1.01\r\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §3.2: HTAB in the target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §3.2: byte >= 0x80 in the target", "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §3.2: fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"RFC 9112 §5.1 in a trailer",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX : y\r\n\r\n", 400},
      {"RFC 9112 §5.2 in a trailer",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX: y\r\n z\r\n\r\n", 400},
      {"bare LF ends a chunked body",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\n", 400},
  });
}

// The request-target is scanned a vector (or word) at a time, with shorter
// and overlapping tails: a bad byte is found at every length and position,
// and a clean target of every length passes, in the shortest head there is.
TEST(Http1ParserTest, TargetBytesAreCheckedAtEveryLengthAndPosition) {
  const std::vector<std::size_t> every_byte = [] {
    std::vector<std::size_t> cuts(64);
    std::iota(cuts.begin(), cuts.end(), std::size_t{1});
    return cuts;
  }();
  for (std::size_t length = 1; length <= 40; ++length) {
    const std::string clean = "/" + std::string(length - 1, 'a');
    const std::string request = "GET " + clean + " HTTP/1.0\r\n\r\n";
    Outcome o = drive(request, {});
    ASSERT_EQ(o.error_status, 0) << length << ": " << o.error_reason;
    ASSERT_EQ(o.messages.size(), 1u);
    EXPECT_EQ(o.messages[0].target, clean);
    for (std::size_t at = 1; at < length; ++at) {
      for (const char bad : {'\t', '#', '\x80', '\xff'}) {
        std::string target = clean;
        target[at] = bad;
        const std::string dirty = "GET " + target + " HTTP/1.0\r\n\r\n";
        o = drive(dirty, {});
        EXPECT_EQ(o.error_status, 400) << printable(dirty);
        EXPECT_EQ(drive(dirty, every_byte).error_status, 400) << printable(dirty);
      }
    }
  }
}

TEST(Http1ParserTest, SyntaxLlhttpRejectsStaysRejected) {
  expect_rejected({
      {"CTL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\x01\r\n\r\n", 400},
      {"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\x7f\r\n\r\n", 400},
      {"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n"s, 400},
      {"VT in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b b\r\n\r\n", 400},
      {"bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", 400},
      {"bare LF in the head", "GET / HTTP/1.1\r\nHost: a\r\nX: b\nc: d\r\n\r\n", 400},
      {"whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"invalid name byte", "GET / HTTP/1.1\r\nHost: a\r\nX@: b\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
      {"TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"CL with TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400},
      {"duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
      {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400},
      {"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"chunk data longer than its size",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxx\r\n0\r\n\r\n", 400},
      {"CTL in a chunk extension",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x01\r\nx\r\n0\r\n\r\n", 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
      {"HTTP/0.9", "GET /\r\n\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"CTL in the target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bad method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/1.2 request line", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"HTTP/01.1 is malformed", "GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400},
  });
}

TEST(Http1ParserTest, LimitsAnswerWithTheirStatus) {
  DriveOptions options;
  options.limits = Limits{.max_request_line = 16, .max_header_bytes = 64, .max_header_count = 2,
                          .max_body_bytes = 4};
  expect_rejected(
      {
          {"target over max_request_line", "GET /" + std::string(20, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
          {"head over max_header_bytes", "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(60, 'b') + "\r\n\r\n", 431},
          {"fields over max_header_count", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n", 431},
          {"declared body over max_body_bytes", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 413},
      },
      options);
  // A chunked body is counted as it comes: the first bytes are delivered.
  const Outcome o = drive("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
                          {}, options);
  EXPECT_EQ(o.error_status, 413);
  // Just under every limit: served.
  const Outcome fits = parse_everywhere("POST /" + std::string(15, 'a') + " HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd",
                                        options);
  EXPECT_EQ(fits.error_status, 0) << fits.error_reason;
}

// ---- responses --------------------------------------------------------------------

DriveOptions response_mode() {
  DriveOptions options;
  options.mode = Mode::kResponse;
  return options;
}

TEST(Http1ParserTest, ResponseFramings) {
  const DriveOptions options = response_mode();
  Outcome o = parse_everywhere("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: up\r\n\r\nabc", options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  EXPECT_EQ(o.messages.at(0).status, 200);
  EXPECT_EQ(o.messages.at(0).body, "abc");

  o = parse_everywhere("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  EXPECT_EQ(o.messages.at(0).body, "abc");

  // Close-delimited: the body ends with the connection.
  o = parse_everywhere("HTTP/1.1 200 OK\r\n\r\nuntil the end", options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  EXPECT_EQ(o.messages.at(0).body, "until the end");
  EXPECT_FALSE(o.messages.at(0).keep_alive);

  // 204 and 304 have no body whatever their fields say.
  o = parse_everywhere("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                       options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 2u);
  EXPECT_EQ(o.messages[1].status, 304);
  EXPECT_TRUE(o.messages[1].body.empty());
}

TEST(Http1ParserTest, ResponseToHeadHasNoBody) {
  DriveOptions options = response_mode();
  options.head_request = true;
  const Outcome o = parse_everywhere(
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 2u);
  EXPECT_TRUE(o.messages[0].body.empty());
}

TEST(Http1ParserTest, InterimResponsesComeFirstAndSwitchingProtocolsStops) {
  const DriveOptions options = response_mode();
  Outcome o = parse_everywhere(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
      options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 3u);
  EXPECT_EQ(o.messages[0].status, 100);
  EXPECT_EQ(o.messages[1].status, 103);
  EXPECT_EQ(o.messages[2].body, "x");

  o = parse_everywhere(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
      options);
  ASSERT_EQ(o.error_status, 0) << o.error_reason;
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_TRUE(o.messages[0].upgrade);
}

TEST(Http1ParserTest, ResponseFramingErrors) {
  // GATEWAY.md: a response with both Content-Length and Transfer-Encoding,
  // or whose Transfer-Encoding does not end in a single chunked, is a
  // framing error; so is a body cut short.
  const DriveOptions options = response_mode();
  for (const std::string& response : std::vector<std::string>{
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabcdef"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n"s,
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"s,
           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"s,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"s,
           "HTTP/1.1 200 OK\r\nX : y\r\nContent-Length: 0\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX"s,
           "HTTP/1.1 2000 OK\r\n\r\n"s,
           "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n"s,
           "HTTP/1.1 200 OK\nX: a\r\n\r\n"s,
       }) {
    const Outcome o = parse_everywhere(response, options);
    EXPECT_NE(o.error_status, 0) << printable(response);
    EXPECT_TRUE(o.messages.empty()) << printable(response);
  }
}

}  // namespace
