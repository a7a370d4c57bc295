// Tests for the forwarding rules (src/gateway/forward.hpp, target.hpp,
// request_ids.hpp, cidr.hpp): raw client request heads, parsed by
// http1::Parser as the proxy parses them, against the exact head the
// upstream receives; upstream response heads against the exact head the
// client receives; path normalisation, traceparent and CIDR tables.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <random>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/cidr.hpp"
#include "gateway/forward.hpp"
#include "gateway/request_ids.hpp"
#include "http1/parser.hpp"
#include "http1/target.hpp"
#include "net/output_buffer.hpp"

namespace {

namespace gw = portico::detail::gateway;
namespace http1 = portico::detail::http1;
using namespace std::string_view_literals;

constexpr std::string_view kSaneId = "X-Request-Id: req-1\r\n";
constexpr std::string_view kTrace =
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n";

// The fields whose values are random: replaced by a marker so rows can
// state every other byte exactly.
std::string mask_random(std::string head) {
  static const std::regex trace("traceparent: 00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})\r\n");
  head = std::regex_replace(head, trace, "traceparent: 00-$1-<span>-$2\r\n");
  static const std::regex id("X-Request-Id: [0-9a-f]{32}\r\n");
  return std::regex_replace(head, id, "X-Request-Id: <generated>\r\n");
}

struct Forwarded {
  std::string head;        // masked
  std::string raw;         // as written
  gw::RequestIds ids;      // request_id() may view the request, gone after forward()
  std::string request_id;  // so a copy of it
  bool parsed = false;
};

// Parses `request` as the proxy does, normalises and strips the target,
// and writes the upstream head.
Forwarded forward(std::string request, const gw::RequestForwarding& how = {},
                  std::string_view strip = {}) {
  Forwarded result;
  http1::Parser parser;
  parser.reset(http1::Mode::kRequest, nullptr);
  const http1::Progress progress =
      parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size()));
  if (progress.event != http1::Event::kHead && progress.event != http1::Event::kMessage) {
    ADD_FAILURE() << "request did not parse: " << parser.error_reason();
    return result;
  }
  result.parsed = true;
  std::string scratch;
  const auto target = http1::normalize_target(parser.target().view(request.data()), scratch);
  if (!target) {
    ADD_FAILURE() << "target refused";
    return result;
  }
  const gw::ClientRequest client =
      gw::ClientRequest::from(parser, request.data(), http1::strip_prefix(*target, strip));
  gw::write_request_head(result.raw, client, how, result.ids);
  result.request_id = std::string(result.ids.request_id());
  result.head = mask_random(result.raw);
  return result;
}

gw::RequestForwarding from(std::string_view address, bool trusted = false) {
  gw::RequestForwarding how;
  how.client_address = address;
  how.trusted_peer = trusted;
  return how;
}

// The fields every forwarded request ends with, from a client at
// 192.0.2.7 with Host h, a sane id and a valid traceparent.
std::string tail(std::string_view more = {}) {
  return "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
         "Via: 1.1 portico\r\nX-Request-Id: req-1\r\n"
         "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n" +
         std::string(more);
}

struct RequestRow {
  const char* rule;
  std::string fields;      // between "GET /p HTTP/1.1\r\nHost: h\r\n" and the id lines
  std::string expected;    // between "GET /p HTTP/1.1\r\nHost: h\r\n" and tail()
  std::string after = {};  // after tail(): Connection, framing
};

// One row per hop-by-hop rule, from an untrusted client.
TEST(GatewayForwardTest, HopByHopFieldsAreRemoved) {
  const std::vector<RequestRow> rows = {
      {"plain field passes", "Accept: */*\r\n", "Accept: */*\r\n"},
      {"Connection", "Connection: keep-alive\r\n", ""},
      {"Connection close", "Connection: close\r\n", ""},
      {"Keep-Alive", "Keep-Alive: timeout=5\r\n", ""},
      {"Proxy-Connection", "Proxy-Connection: keep-alive\r\n", ""},
      {"TE without trailers", "TE: gzip\r\n", ""},
      {"TE trailers kept (and named in Connection)", "TE: gzip, trailers\r\n", "",
       "Connection: te\r\nTE: trailers\r\n"},
      {"Trailer", "Trailer: Expires\r\n", ""},
      {"Upgrade without a tunnel", "Upgrade: websocket\r\nConnection: Upgrade\r\n", ""},
      {"Connection-named field", "Connection: X-Secret\r\nX-Secret: 1\r\nAccept: a\r\n",
       "Accept: a\r\n"},
      {"Connection list, OWS, case",
       "Connection: keep-alive ,\tx-one, ,X-TWO \r\nX-One: 1\r\nx-two: 2\r\nX-Three: 3\r\n",
       "X-Three: 3\r\n"},
      {"two Connection fields", "Connection: a\r\nConnection: b\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
       "C: 3\r\n"},
      {"Expect dropped", "Expect: 100-continue\r\nContent-Length: 2\r\n", "",
       "Content-Length: 2\r\n"},
      {"tracestate passes", "tracestate: congo=t61rcWkgMzE\r\n",
       "tracestate: congo=t61rcWkgMzE\r\n"},
      {"field order and case kept", "X-B: 2\r\nx-a: 1\r\n", "X-B: 2\r\nx-a: 1\r\n"},
  };
  for (const RequestRow& row : rows) {
    const Forwarded f = forward("GET /p HTTP/1.1\r\nHost: h\r\n" + row.fields +
                                    std::string(kSaneId) + std::string(kTrace) + "\r\n",
                                from("192.0.2.7"));
    EXPECT_EQ(f.head, "GET /p HTTP/1.1\r\nHost: h\r\n" + row.expected + tail(row.after) + "\r\n")
        << row.rule;
  }
}

TEST(GatewayForwardTest, ExactlyOneFraming) {
  const std::vector<RequestRow> rows = {
      {"no body: no framing", "", ""},
      {"Content-Length: 0 is no body", "Content-Length: 0\r\n", ""},
      {"Content-Length passed", "Content-Length: 12\r\n", "", "Content-Length: 12\r\n"},
      {"chunked stays chunked", "Transfer-Encoding: chunked\r\n", "",
       "Transfer-Encoding: chunked\r\n"},
  };
  for (const RequestRow& row : rows) {
    const Forwarded f = forward("POST /p HTTP/1.1\r\nHost: h\r\n" + row.fields +
                                    std::string(kSaneId) + std::string(kTrace) + "\r\n",
                                from("192.0.2.7"));
    EXPECT_EQ(f.head, "POST /p HTTP/1.1\r\nHost: h\r\n" + row.expected + tail(row.after) + "\r\n")
        << row.rule;
  }
}

TEST(GatewayForwardTest, ForwardedFieldsFromUntrustedPeerAreReplaced) {
  const Forwarded f = forward(
      "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nX-Forwarded-By: 6.6.6.6\r\n"
      "x-forwarded-ip: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: "
      "6.6.6.6\r\n"
      "Accept: a\r\n" +
          std::string(kSaneId) + std::string(kTrace) + "\r\n",
      from("192.0.2.7"));
  EXPECT_EQ(f.head, "GET /p HTTP/1.1\r\nHost: h\r\nAccept: a\r\n" + tail() + "\r\n");
}

TEST(GatewayForwardTest, ForwardedFieldsFromTrustedPeerAreKeptAndAppended) {
  const Forwarded f = forward(
      "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: public.example\r\nX-Forwarded-For: 198.51.100.2, 10.0.0.3\r\nForwarded: "
      "for=x\r\n"
      "X-Real-IP: 198.51.100.1\r\n" +
          std::string(kSaneId) + std::string(kTrace) + "\r\n",
      from("10.0.0.9", true));
  EXPECT_EQ(f.head,
            "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "
            "public.example\r\n"
            "Forwarded: for=x\r\nX-Real-IP: 198.51.100.1\r\n"
            "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 10.0.0.3, 10.0.0.9\r\n"
            "Via: 1.1 portico\r\nX-Request-Id: req-1\r\n"
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");
}

TEST(GatewayForwardTest, TrustedPeerWithoutForwardedFieldsGetsThemSet) {
  const Forwarded f = forward(
      "GET /p HTTP/1.1\r\nHost: h\r\n" + std::string(kSaneId) + std::string(kTrace) + "\r\n",
      from("2001:db8::1", true));
  EXPECT_EQ(
      f.head,
      "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\n"
      "X-Forwarded-Host: h\r\nVia: 1.1 portico\r\nX-Request-Id: req-1\r\n"
      "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");
}

TEST(GatewayForwardTest, ViaAppendedOrOmitted) {
  const std::string request =
      "GET /p HTTP/1.1\r\nHost: h\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\n" +
      std::string(kSaneId) + std::string(kTrace) + "\r\n";
  gw::RequestForwarding how = from("192.0.2.7");
  how.via = "edge-1";
  EXPECT_EQ(
      forward(request, how).head,
      "GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
      "X-Forwarded-Host: h\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1), 1.1 edge-1\r\n"
      "X-Request-Id: req-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");
  how.via = "";  // no Via of the gateway's; the client's passes as received
  EXPECT_EQ(
      forward(request, how).head,
      "GET /p HTTP/1.1\r\nHost: h\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\n"
      "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
      "X-Request-Id: req-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");
}

TEST(GatewayForwardTest, HostRewriteAndStripPrefix) {
  gw::RequestForwarding how = from("192.0.2.7");
  how.host_rewrite = "users.internal:9001";
  const std::string ids = std::string(kSaneId) + std::string(kTrace) + "\r\n";
  const std::string upstream_tail = tail() + "\r\n";
  EXPECT_EQ(forward("GET /api/users/42?x=1 HTTP/1.1\r\nHost: h\r\n" + ids, how, "/api").head,
            "GET /users/42?x=1 HTTP/1.1\r\nHost: users.internal:9001\r\n" + upstream_tail);
  EXPECT_EQ(forward("GET /api HTTP/1.1\r\nHost: h\r\n" + ids, how, "/api").head,
            "GET / HTTP/1.1\r\nHost: users.internal:9001\r\n" + upstream_tail);
  EXPECT_EQ(forward("GET /api?q HTTP/1.1\r\nHost: h\r\n" + ids, how, "/api/").head,
            "GET /?q HTTP/1.1\r\nHost: users.internal:9001\r\n" + upstream_tail);
  EXPECT_EQ(forward("GET /apiary HTTP/1.1\r\nHost: h\r\n" + ids, how, "/api").head,
            "GET /apiary HTTP/1.1\r\nHost: users.internal:9001\r\n" + upstream_tail);
  // The normalised path is what gets stripped and forwarded.
  EXPECT_EQ(forward("GET /x/../api/%2e/v1 HTTP/1.1\r\nHost: h\r\n" + ids, how, "/api").head,
            "GET /v1 HTTP/1.1\r\nHost: users.internal:9001\r\n" + upstream_tail);
}

TEST(GatewayForwardTest, Http10WithoutHostSendsEmptyHost) {
  const Forwarded f =
      forward("GET /p HTTP/1.0\r\n" + std::string(kSaneId) + std::string(kTrace) + "\r\n",
              from("192.0.2.7"));
  EXPECT_EQ(f.head,
            "GET /p HTTP/1.1\r\nHost: \r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
            "Via: 1.1 portico\r\nX-Request-Id: req-1\r\n"
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");
}

TEST(GatewayForwardTest, RequestIdKeptWhenSaneElseGenerated) {
  const std::string long_id(200, 'a');
  struct Row {
    std::string field;  // "" for none
    bool kept;
  };
  const std::vector<Row> rows = {
      {"X-Request-Id: abc-123\r\n", true},           {"x-request-id: " + long_id + "\r\n", true},
      {"X-Request-Id: " + long_id + "b\r\n", false},  // 201 bytes
      {"X-Request-Id: has space\r\n", false},        {"X-Request-Id: \r\n", false},
      {"X-Request-Id: caf\xc3\xa9\r\n", false},      {"", false},
  };
  for (const Row& row : rows) {
    const Forwarded f =
        forward("GET / HTTP/1.1\r\nHost: h\r\n" + row.field + std::string(kTrace) + "\r\n",
                from("192.0.2.7"));
    ASSERT_TRUE(f.parsed) << row.field;
    EXPECT_EQ(f.ids.request_id_generated(), !row.kept) << row.field;
    const std::string& id = f.request_id;
    if (row.kept) {
      EXPECT_NE(row.field.find(id), std::string::npos) << row.field;
    } else {
      EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{32}"))) << id;
    }
    // Exactly one X-Request-Id line upstream, carrying the decided id.
    EXPECT_NE(f.raw.find("\r\nX-Request-Id: " + id + "\r\n"), std::string::npos) << f.raw;
    EXPECT_EQ(f.raw.find("X-Request-Id:"), f.raw.rfind("X-Request-Id:")) << f.raw;
    EXPECT_EQ(f.raw.find("x-request-id"), std::string::npos) << f.raw;
  }
  // Two generated ids differ (128 random bits each).
  const Forwarded a = forward("GET / HTTP/1.1\r\nHost: h\r\n\r\n", from("192.0.2.7"));
  const Forwarded b = forward("GET / HTTP/1.1\r\nHost: h\r\n\r\n", from("192.0.2.7"));
  EXPECT_NE(a.request_id, b.request_id);
}

// The ids' hex writer against printf, for every nibble in every position
// (one nibble set in a value of zeros, or cleared in one of ones) and
// values from a seeded generator.
TEST(GatewayForwardTest, HexDigitsMatchPrintf) {
  const auto reference = [](std::uint64_t value) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
    return std::string(text, 16);
  };
  std::vector<std::uint64_t> values = {
      0, ~0ULL, 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x8000000000000000ULL, 1};
  for (int shift = 0; shift < 64; shift += 4) {
    for (std::uint64_t nibble = 1; nibble < 16; ++nibble) {
      values.push_back(nibble << shift);
      values.push_back(~(nibble << shift));
    }
  }
  std::mt19937_64 random(14);
  for (int i = 0; i < 1000; ++i) values.push_back(random());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint64_t high = values[i];
    const std::uint64_t low = values[values.size() - 1 - i];
    char one[18];
    std::memset(one, '#', sizeof one);
    gw::write_hex(one + 1, high);
    EXPECT_EQ(std::string(one + 1, 16), reference(high));
    EXPECT_EQ(one[0], '#');  // nothing written outside the digits
    EXPECT_EQ(one[17], '#');
    char two[34];
    std::memset(two, '#', sizeof two);
    gw::write_hex(two + 1, high, low);
    EXPECT_EQ(std::string(two + 1, 32), reference(high) + reference(low));
    EXPECT_EQ(two[0], '#');
    EXPECT_EQ(two[33], '#');
  }
}

TEST(GatewayForwardTest, TraceparentKeptReplacedOrStarted) {
  const std::string valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  struct Row {
    std::string fields;
    bool kept;  // the trace id and flags carried on
  };
  const std::vector<Row> rows = {
      {"traceparent: " + valid + "\r\n", true},
      {"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n", true},
      {"", false},
      {"traceparent: 01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
       false},  // version
      {"traceparent: ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n", false},
      {"traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01\r\n",
       false},  // zero trace
      {"traceparent: 00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01\r\n",
       false},  // zero parent
      {"traceparent: 00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01\r\n",
       false},  // uppercase
      {"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra\r\n", false},
      {"traceparent: 00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01\r\n", false},  // short
      {"traceparent: 00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01\r\n", false},
      {"traceparent: " + valid + "\r\ntraceparent: " + valid + "\r\n", false},  // repeated
  };
  const std::regex format("00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}");
  for (const Row& row : rows) {
    const Forwarded f =
        forward("GET / HTTP/1.1\r\nHost: h\r\n" + row.fields + "\r\n", from("192.0.2.7"));
    ASSERT_TRUE(f.parsed) << row.fields;
    const std::string sent(f.ids.traceparent());
    EXPECT_TRUE(std::regex_match(sent, format)) << sent;
    EXPECT_NE(f.ids.span_id(), "0000000000000000");
    EXPECT_NE(f.ids.span_id(), "b7ad6b7169203331") << "the gateway's own parent id";
    EXPECT_EQ(f.ids.trace_started(), !row.kept) << row.fields;
    if (row.kept) {
      EXPECT_EQ(f.ids.trace_id(), "0af7651916cd43dd8448eb211c80319c");
      EXPECT_EQ(sent.substr(53), row.fields.substr(row.fields.find("\r\n") - 2, 2)) << "flags kept";
    } else {
      EXPECT_NE(f.ids.trace_id(), "0af7651916cd43dd8448eb211c80319c");
      EXPECT_NE(f.ids.trace_id(), "00000000000000000000000000000000");
      EXPECT_EQ(sent.substr(53), "00") << "a new trace is not claimed as sampled";
    }
    EXPECT_NE(f.raw.find("\r\ntraceparent: " + sent + "\r\n"), std::string::npos) << f.raw;
    EXPECT_EQ(f.raw.find("traceparent:"), f.raw.rfind("traceparent:")) << f.raw;
    EXPECT_EQ(f.raw.find("Traceparent"), std::string::npos) << f.raw;
  }
}

TEST(GatewayForwardTest, RouteRequestHeadersAddAndRemove) {
  const gw::FieldValue add[] = {
      {"X-Gateway", "portico"}, {"Accept", "text/plain"}, {"Content-Length", "9"}};
  const std::string_view remove[] = {"x-debug", "X-Forwarded-Proto", "Transfer-Encoding"};
  gw::RequestForwarding how = from("192.0.2.7");
  how.edits = {add, remove};
  const Forwarded f = forward(
      "POST /p HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Debug: 1\r\nX-DEBUG: 2\r\n"
      "X-Keep: k\r\nTransfer-Encoding: chunked\r\n" +
          std::string(kSaneId) + std::string(kTrace) + "\r\n",
      how);
  // Added fields replace the client's; removal reaches the gateway's own
  // X-Forwarded-Proto; framing fields are out of the route's reach.
  EXPECT_EQ(f.head,
            "POST /p HTTP/1.1\r\nHost: h\r\nX-Keep: k\r\nX-Forwarded-For: 192.0.2.7\r\n"
            "X-Forwarded-Host: h\r\nVia: 1.1 portico\r\nX-Request-Id: req-1\r\n"
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n"
            "X-Gateway: portico\r\nAccept: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(GatewayForwardTest, UpgradeKeptOnlyForTunnel) {
  const std::string request =
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      std::string(kSaneId) + std::string(kTrace) + "\r\n";
  gw::RequestForwarding how = from("192.0.2.7");
  how.tunnel = true;
  EXPECT_EQ(forward(request, how).head,
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                tail("Connection: upgrade\r\n") + "\r\n");
  how.tunnel = false;
  EXPECT_EQ(forward(request, how).head,
            "GET /ws HTTP/1.1\r\nHost: h\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                tail() + "\r\n");
}

TEST(GatewayForwardTest, WritesIntoOutputBufferToo) {
  // The explicit instantiation for the reactor's output: same bytes.
  std::string request =
      "GET /p HTTP/1.1\r\nHost: h\r\n" + std::string(kSaneId) + std::string(kTrace) + "\r\n";
  http1::Parser parser;
  parser.reset(http1::Mode::kRequest, nullptr);
  ASSERT_EQ(parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size())).event,
            http1::Event::kMessage);
  const auto client = gw::ClientRequest::from(parser, request.data(), "/p");
  gw::RequestIds ids;
  portico::detail::OutputBuffer out(16);  // grows on the way
  gw::write_request_head(out, client, from("192.0.2.7"), ids);
  EXPECT_EQ(mask_random(std::string(out.view())),
            "GET /p HTTP/1.1\r\nHost: h\r\n" + tail() + "\r\n");
}

// ---- path normalisation ------------------------------------------------------

TEST(GatewayForwardTest, PathNormalisation) {
  struct Row {
    std::string_view target;
    std::string_view expected;  // "!" for refused
  };
  const Row rows[] = {
      // RFC 3986 §5.4.1 and §5.4.2, the merged paths under base /b/c/d;p.
      {"/b/c/g", "/b/c/g"},
      {"/b/c/./g", "/b/c/g"},
      {"/b/c/g/", "/b/c/g/"},
      {"/b/c/.", "/b/c/"},
      {"/b/c/./", "/b/c/"},
      {"/b/c/..", "/b/"},
      {"/b/c/../", "/b/"},
      {"/b/c/../g", "/b/g"},
      {"/b/c/../..", "/"},
      {"/b/c/../../", "/"},
      {"/b/c/../../g", "/g"},
      {"/b/c/../../../g", "!"},  // RFC 3986 clamps to /g; a gateway refuses
      {"/b/c/../../../../g", "!"},
      {"/./g", "/g"},
      {"/../g", "!"},
      {"/b/c/g.", "/b/c/g."},
      {"/b/c/.g", "/b/c/.g"},
      {"/b/c/g..", "/b/c/g.."},
      {"/b/c/..g", "/b/c/..g"},
      {"/b/c/./../g", "/b/g"},
      {"/b/c/./g/.", "/b/c/g/"},
      {"/b/c/g/./h", "/b/c/g/h"},
      {"/b/c/g/../h", "/b/c/h"},
      {"/b/c/g;x=1/./y", "/b/c/g;x=1/y"},
      {"/b/c/g;x=1/../y", "/b/c/y"},
      {"/b/c/g?y/./x", "/b/c/g?y/./x"},  // the query is not a path
      {"/b/c/g?y/../x", "/b/c/g?y/../x"},
      // %2E in any case, alone or mixed, decoded; in or out of dot segments.
      {"/a/%2e/b", "/a/b"},
      {"/a/%2E%2E/b", "/b"},
      {"/a/.%2e/b", "/b"},
      {"/a/%2e./b", "/b"},
      {"/%2e%2e", "!"},
      {"/%2e%2e/x", "!"},
      {"/a%2eb", "/a.b"},
      {"/a/%2e%2e%2e", "/a/..."},
      {"/a/%2e?%2e", "/a/?%2e"},
      // Nothing else is decoded: %2F stays, so "..%2F" is no dot segment.
      {"/a/..%2F..%2Fetc", "/a/..%2F..%2Fetc"},
      {"/a/%2F../b", "/a/%2F../b"},
      {"/a/%2f%2e%2e", "/a/%2f.."},
      {"/a%20b/%41", "/a%20b/%41"},
      {"/a/%2", "/a/%2"},
      // Empty segments are kept (they are not dot segments).
      {"//a//b/", "//a//b/"},
      {"//..", "/"},
      {"/", "/"},
      {"/.", "/"},
      {"/..", "!"},
      {"/?a=../b", "/?a=../b"},
      {"/x/..?q=1", "/?q=1"},
      // Absolute-form becomes origin-form; asterisk-form stays.
      {"http://example.com/a/../b?q", "/b?q"},
      {"HTTP://example.com", "/"},
      {"https://example.com?q", "/?q"},
      {"*", "*"},
      {"example.com:443", "!"},  // authority-form is CONNECT's, not forwarded
      {"", "!"},
  };
  std::string scratch;
  for (const Row& row : rows) {
    const auto got = http1::normalize_target(row.target, scratch);
    if (row.expected == "!") {
      EXPECT_FALSE(got.has_value()) << row.target << " gave " << got.value_or("");
    } else {
      ASSERT_TRUE(got.has_value()) << row.target;
      EXPECT_EQ(*got, row.expected) << row.target;
    }
  }
}

TEST(GatewayForwardTest, CleanPathIsTheInputItself) {
  std::string scratch;
  const std::string_view clean = "/api/users/42/orders?since=2024-01-01&page=2";
  const auto got = http1::normalize_target(clean, scratch);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data(), clean.data()) << "no copy for a path without dot segments or %2e";
  EXPECT_TRUE(scratch.empty());
  const std::string_view dotted = "/api/./users";
  const auto rewritten = http1::normalize_target(dotted, scratch);
  ASSERT_TRUE(rewritten.has_value());
  EXPECT_EQ(rewritten->data(), scratch.data());
}

// normalize_target() looks at a word at a time before the exact scan: a
// target is returned as it is exactly when a plain reading of its path
// finds no %2e and no dot segment. Targets from a small alphabet, every
// length to 40 (word edges, overlaps), and a dot segment at each offset.
TEST(GatewayForwardTest, CleanPathCheckAgreesWithAPlainReading) {
  const auto needs_rewrite = [](std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    for (std::size_t i = 0; i + 2 < path.size(); ++i) {
      if (path[i] == '%' && path[i + 1] == '2' && (path[i + 2] == 'e' || path[i + 2] == 'E'))
        return true;
    }
    std::size_t start = 1;  // each segment, after its '/'
    while (start <= path.size()) {
      std::size_t end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      const std::string_view segment = path.substr(start, end - start);
      if (segment == "." || segment == "..") return true;
      start = end + 1;
    }
    return false;
  };
  std::vector<std::string> targets;
  for (std::size_t length = 1; length <= 40; ++length) {
    for (std::size_t at = 0; at + 2 <= length; ++at) {
      std::string dotted(length, 'a');
      dotted[0] = '/';
      dotted[at] = '/';
      dotted[at + 1] = '.';
      targets.push_back(dotted);  // "." at the end, or "/.a" (no dot segment)
      if (at + 2 < length) {
        dotted[at + 2] = '/';
        targets.push_back(dotted);  // "/./"
      }
    }
  }
  std::mt19937 random(14);
  const std::string_view alphabet = "/.%2eEa?";
  for (int i = 0; i < 20000; ++i) {
    std::string target = "/";
    const std::size_t length = random() % 40;
    for (std::size_t j = 0; j < length; ++j) target += alphabet[random() % alphabet.size()];
    targets.push_back(target);
  }
  std::string scratch;
  for (const std::string& target : targets) {
    const auto got = http1::normalize_target(target, scratch);
    const bool as_is =
        got.has_value() && got->data() == target.data() && got->size() == target.size();
    EXPECT_EQ(as_is, !needs_rewrite(target)) << target;
  }
}

TEST(GatewayForwardTest, StripPrefixBySegment) {
  struct Row {
    std::string_view target, prefix, expected;
  };
  const Row rows[] = {
      {"/api/users", "/api", "/users"},
      {"/api/users", "/api/", "/users"},
      {"/api", "/api", ""},          // written as "/"
      {"/api?x=1", "/api", "?x=1"},  // written as "/?x=1"
      {"/api/", "/api", "/"},
      {"/apiary", "/api", "/apiary"},
      {"/ap", "/api", "/ap"},
      {"/other/api", "/api", "/other/api"},
      {"/users", "", "/users"},
      {"/users", "/", "/users"},
      {"/a/b/c", "/a/b", "/c"},
  };
  for (const Row& row : rows)
    EXPECT_EQ(http1::strip_prefix(row.target, row.prefix), row.expected)
        << row.target << " - " << row.prefix;
}

// ---- responses ---------------------------------------------------------------

struct Answered {
  std::string head;
  gw::ClientFraming framing;
};

Answered answer(std::string response, const gw::ResponseForwarding& how,
                bool head_request = false) {
  Answered result;
  http1::Parser parser;
  parser.reset(http1::Mode::kResponse, nullptr);
  if (head_request) parser.expect_no_body();
  const http1::Progress progress =
      parser.execute(response.data(), 0, static_cast<std::uint32_t>(response.size()));
  if (progress.event != http1::Event::kHead && progress.event != http1::Event::kMessage) {
    ADD_FAILURE() << "response did not parse: " << parser.error_reason();
    return result;
  }
  const auto upstream = gw::UpstreamResponse::from(parser, response.data(),
                                                   gw::status_reason(response), head_request);
  result.framing = gw::write_response_head(result.head, upstream, how);
  return result;
}

constexpr std::string_view kDate = "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n";

gw::ResponseForwarding to_client(bool http11 = true, bool keep_alive = true) {
  gw::ResponseForwarding how;
  how.date_line = kDate;
  how.request_id = "req-1";
  how.client_http11 = http11;
  how.client_keep_alive = keep_alive;
  return how;
}

TEST(GatewayForwardTest, ResponseRows) {
  struct Row {
    const char* rule;
    std::string upstream;
    gw::ResponseForwarding how;
    bool head_request;
    std::string expected;
    http1::Framing framing;
    bool close;
  };
  using F = http1::Framing;
  const std::string date(kDate);
  const std::vector<Row> rows = {
      {"Content-Length passes, Server passes, Date added, id echoed",
       "HTTP/1.1 200 OK\r\nServer: up/1\r\nContent-Length: 5\r\n\r\n", to_client(), false,
       "HTTP/1.1 200 OK\r\nServer: up/1\r\n" + date +
           "X-Request-Id: req-1\r\nContent-Length: 5\r\n\r\n",
       F::kLength, false},
      {"upstream Date kept, its reason phrase kept",
       "HTTP/1.1 404 Nope\r\nDate: Mon, 30 Nov 2026 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
       to_client(), false,
       "HTTP/1.1 404 Nope\r\nDate: Mon, 30 Nov 2026 00:00:00 GMT\r\nX-Request-Id: req-1\r\n"
       "Content-Length: 0\r\n\r\n",
       F::kLength, false},
      {"empty reason: the standard one", "HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", to_client(),
       false,
       "HTTP/1.1 503 Service Unavailable\r\n" + date +
           "X-Request-Id: req-1\r\nContent-Length: 0\r\n\r\n",
       F::kLength, false},
      {"hop-by-hop removed, Connection-named too, upstream's X-Request-Id replaced",
       "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
       "Proxy-Connection: x\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Request-Id: theirs\r\nX-End: e\r\n"
       "Content-Length: 1\r\n\r\n",
       to_client(), false,
       "HTTP/1.1 200 OK\r\nX-End: e\r\n" + date +
           "X-Request-Id: req-1\r\nContent-Length: 1\r\n\r\n",
       F::kLength, false},
      {"chunked stays chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       to_client(), false,
       "HTTP/1.1 200 OK\r\n" + date + "X-Request-Id: req-1\r\nTransfer-Encoding: chunked\r\n\r\n",
       F::kChunked, false},
      {"close-delimited becomes chunked for a keep-alive 1.1 client",
       "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", to_client(), false,
       "HTTP/1.1 200 OK\r\nX: y\r\n" + date +
           "X-Request-Id: req-1\r\nTransfer-Encoding: chunked\r\n\r\n",
       F::kChunked, false},
      {"close-delimited stays so for a closing client", "HTTP/1.0 200 OK\r\n\r\n",
       to_client(true, false), false,
       "HTTP/1.1 200 OK\r\n" + date + "X-Request-Id: req-1\r\nConnection: close\r\n\r\n", F::kNone,
       true},
      {"chunked to an HTTP/1.0 client: close-delimited",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", to_client(false, true), false,
       "HTTP/1.1 200 OK\r\n" + date + "X-Request-Id: req-1\r\nConnection: close\r\n\r\n", F::kNone,
       true},
      {"keep-alive HTTP/1.0 client with a length: told so",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", to_client(false, true), false,
       "HTTP/1.1 200 OK\r\n" + date +
           "X-Request-Id: req-1\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
       F::kLength, false},
      {"client connection closing", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
       to_client(true, false), false,
       "HTTP/1.1 200 OK\r\n" + date +
           "X-Request-Id: req-1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
       F::kLength, true},
      {"HEAD: the length passes, no body", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
       to_client(), true,
       "HTTP/1.1 200 OK\r\n" + date + "X-Request-Id: req-1\r\nContent-Length: 1234\r\n\r\n",
       F::kNone, false},
      {"304 keeps its length",
       "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n", to_client(), false,
       "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n" + date +
           "X-Request-Id: req-1\r\nContent-Length: 10\r\n\r\n",
       F::kNone, false},
      {"204: no framing", "HTTP/1.1 204 No Content\r\n\r\n", to_client(), false,
       "HTTP/1.1 204 No Content\r\n" + date + "X-Request-Id: req-1\r\n\r\n", F::kNone, false},
      {"101 keeps Upgrade and Connection: upgrade",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
       to_client(), false,
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "
       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
           date + "X-Request-Id: req-1\r\nConnection: upgrade\r\n\r\n",
       F::kNone, false},
  };
  for (const Row& row : rows) {
    const Answered a = answer(row.upstream, row.how, row.head_request);
    EXPECT_EQ(a.head, row.expected) << row.rule;
    EXPECT_EQ(a.framing.framing, row.framing) << row.rule;
    EXPECT_EQ(a.framing.close, row.close) << row.rule;
  }
}

TEST(GatewayForwardTest, RouteResponseHeadersAddAndRemove) {
  const gw::FieldValue add[] = {{"X-Served-By", "portico"}, {"Cache-Control", "no-store"}};
  const std::string_view remove[] = {"server", "Content-Length"};
  gw::ResponseForwarding how = to_client();
  how.edits = {add, remove};
  const Answered a = answer(
      "HTTP/1.1 200 OK\r\nServer: up\r\nCache-Control: max-age=60\r\nX-Other: o\r\nContent-Length: "
      "3\r\n\r\n",
      how);
  EXPECT_EQ(a.head, "HTTP/1.1 200 OK\r\nX-Other: o\r\n" + std::string(kDate) +
                        "X-Request-Id: req-1\r\nX-Served-By: portico\r\nCache-Control: no-store\r\n"
                        "Content-Length: 3\r\n\r\n");
}

// ---- heads past the writer's limits, and generated ones ------------------------

TEST(GatewayForwardTest, ManyFieldsAndLongValues) {
  // More fields than the writer keeps kinds for (128) and a value longer
  // than its stack buffer (2 KiB): a Connection option and a Via past the
  // 128th field still take effect, and the long value passes whole.
  std::string fields;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string field = "X-F" + std::to_string(i) + ": " + std::to_string(i) + "\r\n";
    fields += field;
    if (i != 150) expected += field;
  }
  const std::string long_value(5000, 'v');
  fields += "X-Long: " + long_value + "\r\nVia: 1.0 edge\r\nConnection: x-f150\r\n";
  expected += "X-Long: " + long_value + "\r\n";
  std::string request = "GET /p HTTP/1.1\r\nHost: h\r\n" + fields + std::string(kSaneId) +
                        std::string(kTrace) + "\r\n";
  const http1::Limits limits = {.max_header_count = 300};
  http1::Parser parser;
  parser.reset(http1::Mode::kRequest, &limits);
  ASSERT_EQ(parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size())).event,
            http1::Event::kMessage);
  const auto client = gw::ClientRequest::from(parser, request.data(), "/p");
  std::string out;
  gw::RequestIds ids;
  gw::write_request_head(out, client, from("192.0.2.7"), ids);
  EXPECT_EQ(mask_random(out),
            "GET /p HTTP/1.1\r\nHost: h\r\n" + expected +
                "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
                "Via: 1.0 edge, 1.1 portico\r\nX-Request-Id: req-1\r\n"
                "traceparent: 00-0af7651916cd43dd8448eb211c80319c-<span>-01\r\n\r\n");

  std::string response = "HTTP/1.1 200 OK\r\n" + fields + "Content-Length: 0\r\n\r\n";
  parser.reset(http1::Mode::kResponse, &limits);
  ASSERT_EQ(parser.execute(response.data(), 0, static_cast<std::uint32_t>(response.size())).event,
            http1::Event::kMessage);
  out.clear();
  gw::write_response_head(
      out, gw::UpstreamResponse::from(parser, response.data(), gw::status_reason(response), false),
      to_client());
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\n" + expected + "Via: 1.0 edge\r\n" + std::string(kDate) +
                     "X-Request-Id: req-1\r\nContent-Length: 0\r\n\r\n");
}

// A deterministic generator of request and response heads with the
// options to forward them with (xorshift64, so the cases are the same
// everywhere): field names from the rules' vocabulary and near misses, in
// random case, random tokens, long values, up to 150 fields, route edits,
// trust, tunnels, Via, Host rewrites, statuses and framings.
class HeadGenerator {
 public:
  std::size_t pick(std::size_t n) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return static_cast<std::size_t>(state_ % n);
  }

  // The request head and the response head a generated exchange is
  // forwarded with, the random ids masked; "" for a head that does not
  // parse.
  std::string next() {
    std::string result;
    // One pick() per statement: the operands of + are evaluated in an
    // order compilers choose, and the sequence must not depend on it.
    const bool http11 = pick(5) != 0;
    const bool get = pick(2) != 0;
    const bool query = pick(2) != 0;
    std::string head = std::string(get ? "GET" : "POST") + " /p" + (query ? "?q=1" : "") +
                       (http11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    if (http11 || pick(2)) head += "Host: h" + std::to_string(pick(3)) + "\r\n";
    const std::size_t request_fields = pick(10) == 0 ? pick(150) : pick(12);
    for (std::size_t i = 0; i < request_fields; ++i) {
      const std::string n = name();
      const std::string lower = lowered(n);
      if (lower == "host" || lower == "content-length" || lower == "transfer-encoding") continue;
      head += n + ": " + (lower == "expect" ? std::string("100-continue") : value()) + "\r\n";
    }
    if (pick(4) == 0) {
      head += "Content-Length: 3\r\n\r\nabc";
    } else if (http11 && pick(4) == 0) {
      head += "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    } else {
      head += "\r\n";
    }
    request_parser_.reset(http1::Mode::kRequest, &limits_);
    const http1::Event request_event =
        request_parser_.execute(head.data(), 0, static_cast<std::uint32_t>(head.size())).event;
    if (request_event != http1::Event::kHead && request_event != http1::Event::kMessage)
      return result;
    const std::string_view target =
        request_parser_.target().view(head.data()).substr(pick(3) == 0 ? 2 : 0);
    gw::RequestForwarding how;
    how.client_address = pick(2) ? "192.0.2.7" : "2001:db8::1";
    how.trusted_peer = pick(2) != 0;
    how.proto = pick(2) ? "http" : "https";
    how.via = pick(4) == 0 ? "" : (pick(2) ? "portico" : "gw");
    how.host_rewrite = pick(4) == 0 ? "up.internal" : "";
    how.tunnel = pick(4) == 0;
    static const gw::FieldValue kAdd[] = {{"X-Added", "1"},      {"Cookie", "c"},
                                          {"Via", "v"},          {"X-Forwarded-For", "f"},
                                          {"Connection", "x"},   {"traceparent", "t"},
                                          {"X-Request-Id", "r"}, {"Date", "d"},
                                          {"Server", "s"},       {"x-forwarded-proto", "p"}};
    static const std::string_view kRemove[] = {
        "accept", "X-A",          "x-forwarded-host", "via",        "Date",
        "server", "x-request-id", "X-Forwarded-For",  "traceparent"};
    const std::size_t add_from = pick(10);
    const std::size_t add_to = std::min<std::size_t>(add_from + pick(4), 10);
    const std::size_t remove_from = pick(9);
    const std::size_t remove_to = std::min<std::size_t>(remove_from + pick(4), 9);
    const gw::HeaderEdits edits = {std::span(kAdd + add_from, kAdd + add_to),
                                   std::span(kRemove + remove_from, kRemove + remove_to)};
    if (pick(2)) how.edits = edits;
    gw::RequestIds ids;
    const bool to_buffer = pick(2) != 0;
    const gw::ClientRequest client = gw::ClientRequest::from(request_parser_, head.data(), target);
    std::string request_out;
    if (to_buffer) {
      buffer_.clear();
      gw::write_request_head(buffer_, client, how, ids);
      request_out = std::string(buffer_.view());
    } else {
      gw::write_request_head(request_out, client, how, ids);
    }
    if (ids.request_id_generated()) mask(request_out, ids.request_id(), "<id>");
    mask(request_out, ids.span_id(), "<span>");
    if (ids.trace_started()) mask(request_out, ids.trace_id(), "<trace>");
    result += request_out;

    static const int kStatus[] = {200, 200, 101, 204, 304, 404, 503, 100, 302, 999};
    const int status = kStatus[pick(10)];
    const bool response_http11 = pick(4) != 0;
    const bool reason = pick(3) != 0;
    std::string response = "HTTP/1." + std::string(response_http11 ? "1 " : "0 ") +
                           std::to_string(status) + (reason ? " Whatever\r\n" : " \r\n");
    const std::size_t response_fields = pick(10) == 0 ? pick(150) : pick(10);
    for (std::size_t i = 0; i < response_fields; ++i) {
      const std::string n = name();
      const std::string lower = lowered(n);
      if (lower == "content-length" || lower == "transfer-encoding") continue;
      response += n + ": " + value() + "\r\n";
    }
    const std::size_t framing = pick(3);
    if (framing == 0) {
      response += "Content-Length: " + std::to_string(pick(100000)) + "\r\n";
    } else if (framing == 1) {
      response += "Transfer-Encoding: chunked\r\n";
    }
    response += "\r\n";
    const bool head_request = pick(5) == 0;
    response_parser_.reset(http1::Mode::kResponse, &limits_);
    if (head_request) response_parser_.expect_no_body();
    if (response_parser_.execute(response.data(), 0, static_cast<std::uint32_t>(response.size()))
            .event == http1::Event::kError)
      return result;
    gw::ResponseForwarding back;
    back.date_line = "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n";
    back.request_id = pick(5) ? "req-9" : "";
    back.client_http11 = pick(4) != 0;
    back.client_keep_alive = pick(3) != 0;
    if (pick(2)) back.edits = edits;
    const gw::UpstreamResponse upstream = gw::UpstreamResponse::from(
        response_parser_, response.data(), gw::status_reason(response), head_request);
    std::string response_out;
    gw::ClientFraming client_framing;
    if (to_buffer) {
      buffer_.clear();
      client_framing = gw::write_response_head(buffer_, upstream, back);
      response_out = std::string(buffer_.view());
    } else {
      client_framing = gw::write_response_head(response_out, upstream, back);
    }
    result += "-- framing " + std::to_string(static_cast<int>(client_framing.framing)) +
              (client_framing.close ? " close\n" : "\n") + response_out;
    return result;
  }

 private:
  static std::string lowered(std::string s) {
    for (char& c : s) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return s;
  }
  static void mask(std::string& s, std::string_view what, const char* marker) {
    if (what.empty()) return;
    for (std::size_t at; (at = s.find(what)) != std::string::npos;)
      s.replace(at, what.size(), marker);
  }
  std::string name() {
    static const char* const kNames[] = {"te",
                                         "via",
                                         "host",
                                         "date",
                                         "expect",
                                         "trailer",
                                         "upgrade",
                                         "forwarded",
                                         "x-real-ip",
                                         "connection",
                                         "keep-alive",
                                         "traceparent",
                                         "x-request-id",
                                         "content-length",
                                         "proxy-connection",
                                         "transfer-encoding",
                                         "x-forwarded-for",
                                         "x-forwarded-proto",
                                         "x-forwarded-host",
                                         "x-forwarded-port",
                                         "x-forwarded-by",
                                         "x-forwarded-x",
                                         "x-forwarded-prefix",
                                         "accept",
                                         "cookie",
                                         "user-agent",
                                         "x-a",
                                         "x-b",
                                         "a",
                                         "b",
                                         "tracestate",
                                         "server",
                                         "etag",
                                         "tf",
                                         "vib",
                                         "hosu",
                                         "dat",
                                         "x-request-ie",
                                         "keep_alive",
                                         "x-forwarded-fo",
                                         "x-forwarded-hosx",
                                         "te2",
                                         "x-forwarded-protp",
                                         "transfer-encodinh",
                                         "content-lengtg",
                                         "cache-control",
                                         "x-forwardedxfor"};
    if (pick(8) == 0) {
      static constexpr std::string_view kToken = "abcxyz-!#$%&'*+.^_`|~0123456789";
      std::string token;
      for (std::size_t n = 1 + pick(20); n > 0; --n) token += kToken[pick(kToken.size())];
      return token;
    }
    std::string n = kNames[pick(std::size(kNames))];
    for (char& c : n) {
      if (pick(3) == 0 && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    }
    return n;
  }
  std::string value() {
    static const char* const kValues[] = {"",
                                          "1",
                                          "keep-alive",
                                          "close",
                                          "trailers",
                                          "gzip, trailers",
                                          "upgrade",
                                          "X-A, x-b",
                                          "keep-alive, Accept",
                                          " te ,\tfoo",
                                          "websocket",
                                          "10.0.0.1",
                                          "1.0 edge",
                                          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                          "req-1",
                                          "a b c",
                                          "Mon, 30 Nov 2026 00:00:00 GMT",
                                          "x-forwarded-for, via",
                                          "cookie",
                                          "Cookie,tracestate"};
    if (pick(10) == 0) return std::string(pick(3000), 'v');
    return kValues[pick(std::size(kValues))];
  }

  std::uint64_t state_ = 88172645463325252ull;
  http1::Limits limits_ = {.max_header_bytes = 1 << 20, .max_header_count = 1000};
  http1::Parser request_parser_;
  http1::Parser response_parser_;
  portico::detail::OutputBuffer buffer_{16};
};

// Differential against the writers as they were before they were made
// faster (commit 724b270's forward.cpp, checked equal to the faster ones on
// 50,000 exchanges): 2,000 generated exchanges, in 40 chunks of 50, hash
// (FNV-1a) to what they write. The same with every compiler: the generator's
// sequence does not depend on evaluation order. A chunk that
// differs names cases 50k..50k+49 of HeadGenerator's sequence; print them
// with both versions to see the bytes.
TEST(GatewayForwardTest, GeneratedHeadsMatchRecordedDigests) {
  static constexpr std::uint64_t kDigests[40] = {
      0x5abe836c8c6be682ull, 0x270c9ef81531e8ffull, 0x7ff957d22aeea67bull, 0xb058f57c8389b6d4ull,
      0x130f1ae5127ebcb7ull, 0xc25f54e0c8c76671ull, 0x6124c4dc1579231aull, 0x7abcbe6c46a0d80bull,
      0x743900a2143fab09ull, 0xb4aa73cfe6759976ull, 0x22bf94c3a2a2f3a4ull, 0x63e3ea8dcee46fe1ull,
      0xfe0089cd09aada5bull, 0x07216035ca2e4597ull, 0x029213e570667e0full, 0xd3685eeeb5a6cc69ull,
      0xc8dab3f3f95ea38bull, 0x8de38c2373f09354ull, 0x1c9f803d91c8c566ull, 0x11ead7cef1e65eefull,
      0x567e4a5832edeba3ull, 0xfa8f8b1bf93e7632ull, 0xebcd6bf11d8b1ce1ull, 0xef951e2a331d26cbull,
      0xa00934aee94e7390ull, 0xb4f297a76c165c06ull, 0xc1faabd7b1a67870ull, 0xbef2f5061044f19full,
      0xfd4738ff85f48f0full, 0xc32d5a06ff92e9acull, 0x65154c6f88aa8750ull, 0xf8506874323b970aull,
      0x6124a6db9079f23bull, 0xb14325c3f382f6b9ull, 0xab59a414ad8a3173ull, 0x83d232b81ee95946ull,
      0x2573ad9b0c31c750ull, 0xe0aa03c984022cddull, 0xc0b170626dc4d644ull, 0x4abf7910516d3065ull,
  };
  HeadGenerator generator;
  int forwarded = 0;
  for (int chunk = 0; chunk < 40; ++chunk) {
    std::uint64_t digest = 14695981039346656037ull;
    for (int i = 0; i < 50; ++i) {
      const std::string heads = generator.next();
      forwarded += !heads.empty();
      for (const char c : heads) {
        digest ^= static_cast<unsigned char>(c);
        digest *= 1099511628211ull;
      }
      digest ^= 0xff;  // between cases
      digest *= 1099511628211ull;
    }
    EXPECT_EQ(digest, kDigests[chunk]) << "cases " << chunk * 50 << ".." << chunk * 50 + 49;
  }
  EXPECT_EQ(forwarded, 2000);
}

TEST(GatewayForwardTest, StatusReason) {
  EXPECT_EQ(gw::status_reason("HTTP/1.1 404 Not Found\r\nX: y\r\n\r\n"), "Not Found");
  EXPECT_EQ(gw::status_reason("HTTP/1.1 200 \r\n\r\n"), "");
  EXPECT_EQ(gw::status_reason("HTTP/1.1 200\r\n\r\n"), "");
  EXPECT_EQ(gw::status_reason("HTTP/1.1 2"), "");
}

// ---- CIDR -------------------------------------------------------------------

sockaddr_storage v4(const char* text) {
  sockaddr_storage storage{};
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  EXPECT_EQ(::inet_pton(AF_INET, text, &sin.sin_addr), 1) << text;
  std::memcpy(&storage, &sin, sizeof sin);
  return storage;
}
sockaddr_storage v6(const char* text) {
  sockaddr_storage storage{};
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  EXPECT_EQ(::inet_pton(AF_INET6, text, &sin6.sin6_addr), 1) << text;
  std::memcpy(&storage, &sin6, sizeof sin6);
  return storage;
}
const sockaddr* as_sockaddr(const sockaddr_storage& s) {
  return reinterpret_cast<const sockaddr*>(&s);
}

TEST(GatewayForwardTest, CidrParse) {
  const char* valid[] = {
      "10.0.0.0/8", "127.0.0.1", "0.0.0.0/0",     "192.168.1.128/25", "::1/128",
      "::1",        "::/0",      "2001:db8::/32", "fe80::/10",        "::ffff:10.0.0.0/104"};
  for (const char* text : valid) EXPECT_TRUE(gw::Cidr::parse(text).has_value()) << text;
  struct Bad {
    const char* text;
    std::string_view error;
  };
  const Bad bad[] = {
      {"", "not an IPv4 or IPv6 address"},
      {"10.0.0.0/33", "prefix length must be 0 to 32"},
      {"::1/129", "prefix length must be 0 to 128"},
      {"10.0.0.0/", "prefix length must be 0 to 32"},
      {"10.0.0.0/-1", "prefix length must be 0 to 32"},
      {"10.0.0.0/8x", "prefix length must be 0 to 32"},
      {"10.1.0.0/8", "address has bits set past the prefix length"},
      {"2001:db8::1/32", "address has bits set past the prefix length"},
      {"10.0.0", "not an IPv4 or IPv6 address"},
      {"example.com/8", "not an IPv4 or IPv6 address"},
      {"[::1]/128", "not an IPv4 or IPv6 address"},
  };
  for (const Bad& b : bad) {
    std::string_view error;
    EXPECT_FALSE(gw::Cidr::parse(b.text, &error).has_value()) << b.text;
    EXPECT_EQ(error, b.error) << b.text;
  }
  EXPECT_EQ(gw::Cidr::parse("127.0.0.1")->prefix_bits(), 32);
  EXPECT_EQ(gw::Cidr::parse("::1")->prefix_bits(), 128);
}

TEST(GatewayForwardTest, CidrContains) {
  struct Row {
    const char* cidr;
    sockaddr_storage address;
    bool inside;
  };
  const Row rows[] = {
      {"10.0.0.0/8", v4("10.255.1.2"), true},
      {"10.0.0.0/8", v4("11.0.0.0"), false},
      {"10.0.0.0/8", v4("9.255.255.255"), false},
      {"192.168.1.128/25", v4("192.168.1.200"), true},
      {"192.168.1.128/25", v4("192.168.1.127"), false},
      {"127.0.0.1", v4("127.0.0.1"), true},
      {"127.0.0.1", v4("127.0.0.2"), false},
      {"0.0.0.0/0", v4("203.0.113.9"), true},
      {"0.0.0.0/0", v6("2001:db8::1"), false},  // families apart
      {"::1/128", v6("::1"), true},
      {"::1", v6("::2"), false},
      {"::1", v4("127.0.0.1"), false},
      {"2001:db8::/32", v6("2001:db8:ffff::1"), true},
      {"2001:db8::/32", v6("2001:db9::1"), false},
      {"fe80::/10", v6("febf::1"), true},
      {"fe80::/10", v6("fec0::1"), false},
      {"10.0.0.0/8", v6("::ffff:10.1.2.3"), true},  // a dual-stack socket's IPv4 peer
      {"10.0.0.0/8", v6("::ffff:11.1.2.3"), false},
      {"::/0", v6("::ffff:10.1.2.3"), true},
  };
  for (const Row& row : rows) {
    const auto cidr = gw::Cidr::parse(row.cidr);
    ASSERT_TRUE(cidr.has_value()) << row.cidr;
    EXPECT_EQ(cidr->contains(as_sockaddr(row.address)), row.inside) << row.cidr;
  }
  const gw::Cidr list[] = {*gw::Cidr::parse("10.0.0.0/8"), *gw::Cidr::parse("::1")};
  EXPECT_TRUE(gw::in_any(list, as_sockaddr(v6("::1"))));
  EXPECT_TRUE(gw::in_any(list, as_sockaddr(v4("10.9.9.9"))));
  EXPECT_FALSE(gw::in_any(list, as_sockaddr(v4("192.0.2.1"))));
  EXPECT_FALSE(gw::in_any({}, as_sockaddr(v4("10.9.9.9"))));
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  EXPECT_FALSE(gw::in_any(list, as_sockaddr(unix_peer)));
}

TEST(GatewayForwardTest, AddressText) {
  char text[46];
  std::size_t n = gw::address_text(as_sockaddr(v4("192.0.2.7")), text);
  EXPECT_EQ(std::string_view(text, n), "192.0.2.7");
  n = gw::address_text(as_sockaddr(v6("2001:db8::1")), text);
  EXPECT_EQ(std::string_view(text, n), "2001:db8::1");
  n = gw::address_text(as_sockaddr(v6("::ffff:10.1.2.3")), text);
  EXPECT_EQ(std::string_view(text, n), "10.1.2.3");
}

}  // namespace
