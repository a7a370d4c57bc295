// Byte-exact HTTP/1.1 field and framing syntax, end to end over loopback
// sockets: RFC 9112 §2.2 (message parsing, line endings), §3 (request line),
// §3.2 (Host), §5.1-5.2 (field lines, obs-fold), §6.1 and §6.3 (framing),
// §7.1.2 (trailers); RFC 9110 §5.5 (field values) and §6.5.1 (trailers are
// not headers).
//
// One table. Each row is the exact request bytes and what must happen:
//   rejected: exactly `HTTP/1.1 400 Bad Request`, then the server closes the
//             connection, the handler never runs, and stats().bad_requests
//             grows by exactly one; the same bytes pipelined (one write) after
//             a valid request: that one is answered 200 first, then the 400.
//   served:   200 with the body the echo handler makes of the request (so a
//             value's exact bytes are pinned), the handler ran once, no bad
//             request counted, and the connection stays in step (a next
//             request on it is answered); the same again after a valid
//             request in one write.
// Each row is its own gtest case (ServerFieldSyntaxTest.Row/<name>), so a
// run lists exactly which rows fail.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

// A literal's exact bytes, embedded NULs included (its array length, not
// strlen). Mind hex escapes: "\x01z", not "\x01b" (that is one byte, 0x1b).
template <std::size_t N>
std::string raw(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

struct Row {
  std::string name;   // the gtest case name
  std::string why;    // the rule, for failure messages
  std::string bytes;  // exactly what the client writes
  bool served = false;
  std::string body;   // served: the echo handler's answer
};

void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

Row reject(std::string name, std::string why, std::string bytes) {
  return Row{std::move(name), std::move(why), std::move(bytes), false, {}};
}
Row serve(std::string name, std::string why, std::string bytes, std::string body) {
  return Row{std::move(name), std::move(why), std::move(bytes), true, std::move(body)};
}

// The echo handler's answer: method, routed path, the Host and X fields as the
// handler sees them ("-" when absent) and the de-chunked body.
//   "<method> <path> host=[<Host>] x=[<X>] body=[<body>]"
// Every row's Host is "h" unless the row is about Host; every path is "/r".

// The valid request written before each row on the same connection.
const std::string kFirst = raw("GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
const std::string kFirstBody = "GET /first host=[h] x=[-] body=[]";

// ---- the table ------------------------------------------------------------------

std::vector<Row> rows() {
  return {
      // ---- rejected; the current server (llhttp 8.1 strict) serves these:
      // the rows pin the fix --------------------------------------------------
      reject("SpaceBeforeColon", "RFC 9112 5.1: whitespace between name and colon MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX : b\r\n\r\n")),
      // (HTAB before the colon is already refused today; SP is not.)
      reject("TabBeforeColon", "RFC 9112 5.1: whitespace between name and colon MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX\t: b\r\n\r\n")),
      // Today the handler sees X as "b\r\n" (the span runs over the fold's
      // CRLF): raw CRLF in a value reaches the handler and any upstream.
      reject("ObsFoldSpace", "RFC 9112 5.2: obs-fold is rejected",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: b\r\n c\r\n\r\n")),
      reject("ObsFoldTab", "RFC 9112 5.2: obs-fold is rejected",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: b\r\n\tc\r\n\r\n")),
      reject("ObsFoldAfterEmptyValue", "RFC 9112 5.2: obs-fold is rejected",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX:\r\n c\r\n\r\n")),
      reject("EmptyFieldName", "RFC 9110 5.1: field-name = token (1*tchar)",
             raw("GET /r HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n")),
      reject("HostWithSpace", "RFC 9112 3.2: an invalid Host value MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: a b\r\n\r\n")),
      reject("HostWithSlash", "RFC 9112 3.2: an invalid Host value MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: a/b\r\n\r\n")),
      reject("HostWithUserinfo", "RFC 9112 3.2: an invalid Host value MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: a@b\r\n\r\n")),
      reject("HostUnclosedIpLiteral", "RFC 9112 3.2: an invalid Host value MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: [::1\r\n\r\n")),
      reject("HostBadPort", "RFC 9112 3.2: an invalid Host value MUST be 400",
             raw("GET /r HTTP/1.1\r\nHost: a:8x\r\n\r\n")),
      reject("BareCrEndsHeadBeforeField",
             "RFC 9112 2.2: a bare CR is not a line ending (smuggling, CVE-2023-30589)",
             raw("GET /r HTTP/1.1\r\nHost: h\r\n\rX: b\r\n\r\n")),
      reject("BareCrBeforeFinalCrlf",
             "RFC 9112 2.2: a bare CR is not a line ending (smuggling, CVE-2023-30589)",
             raw("GET /r HTTP/1.1\r\nHost: h\r\n\r\r\n")),
      reject("BareLfEndsHead", "RFC 9112 2.2: we take only CRLF as a line ending",
             raw("GET /r HTTP/1.1\r\nHost: h\r\n\n")),
      // Today served, although a bare LF inside a field line is refused.
      reject("BareLfEndsRequestLine", "RFC 9112 2.2: we take only CRLF as a line ending",
             raw("GET /r HTTP/1.1\nHost: h\r\n\r\n")),
      reject("Http10Chunked", "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing",
             raw("POST /r HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")),
      reject("ContentLengthUnderscore", "GATEWAY.md Forwarding: underscore framing fields are 400",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nContent_Length: 3\r\n\r\n")),
      reject("TransferEncodingUnderscore",
             "GATEWAY.md Forwarding: underscore framing fields are 400",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n")),
      reject("TwoSpacesBeforeTarget", "RFC 9112 3: request-line = method SP target SP version",
             raw("GET  /r HTTP/1.1\r\nHost: h\r\n\r\n")),
      reject("TwoSpacesBeforeVersion", "RFC 9112 3: request-line = method SP target SP version",
             raw("GET /r  HTTP/1.1\r\nHost: h\r\n\r\n")),
      reject("TargetWithTab", "RFC 9112 3.2 / RFC 3986: HTAB is not a URI character",
             raw("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n")),
      reject("TargetWithHighByte", "RFC 9112 3.2 / RFC 3986: bytes >= 0x80 are not URI characters",
             raw("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n")),
      reject("TargetWithFragment", "RFC 9112 3.2: origin-form has no fragment",
             raw("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n")),
      reject("TrailerSpaceBeforeColon", "RFC 9112 5.1 applies to trailer field lines (7.1.2)",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\nX : t\r\n\r\n")),
      reject("TrailerObsFold", "RFC 9112 5.2 applies to trailer field lines (7.1.2)",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\nX: t\r\n u\r\n\r\n")),
      // Served, but the current server merges the trailer into the headers.
      serve("TrailerIsNotAHeader", "RFC 9110 6.5.1: trailer fields are not merged into the header",
            raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\nX: t\r\n\r\n"),
            "POST /r host=[h] x=[-] body=[abc]"),

      // ---- rejected already today (pinned) -------------------------------------
      reject("NoHost", "RFC 9112 3.2: HTTP/1.1 needs exactly one Host",
             raw("GET /r HTTP/1.1\r\n\r\n")),
      reject("TwoHosts", "RFC 9112 3.2: HTTP/1.1 needs exactly one Host",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n")),
      reject("CtlSohInValue", "RFC 9110 5.5: CTLs are not field-vchar",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n")),
      reject("CtlDelInValue", "RFC 9110 5.5: DEL is not field-vchar",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n")),
      reject("CtlNulInValue", "RFC 9110 5.5: NUL MUST be rejected or replaced; we reject",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\0z\r\n\r\n")),
      reject("CtlVtInValue", "RFC 9110 5.5: CTLs are not field-vchar",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\x0bz\r\n\r\n")),
      reject("CtlFfInValue", "RFC 9110 5.5: CTLs are not field-vchar",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\x0cz\r\n\r\n")),
      reject("BareCrInValue", "RFC 9110 5.5: a bare CR MUST be rejected or replaced; we reject",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: a\rz\r\n\r\n")),
      reject("BareLfInHead", "RFC 9112 2.2: we take only CRLF as a line ending",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX: b\nY: c\r\n\r\n")),
      reject("InvalidNameChar", "RFC 9110 5.1: field-name = token",
             raw("GET /r HTTP/1.1\r\nHost: h\r\nX@: b\r\n\r\n")),
      reject("TransferEncodingGzip", "RFC 9112 6.3: chunked not final in a request is 400",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")),
      reject("TransferEncodingChunkedGzip", "RFC 9112 6.3: chunked not final in a request is 400",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")),
      reject("ContentLengthWithTransferEncoding",
             "RFC 9112 6.3: both framings is smuggling; reject",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")),
      reject("DuplicateContentLength", "RFC 9112 6.3: repeated Content-Length; we reject",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na")),
      reject("ContentLengthList", "RFC 9110 8.6: a list value; we reject",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\na")),
      reject("ContentLengthPlus", "RFC 9110 8.6: Content-Length = 1*DIGIT",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\na")),
      reject("ChunkSizeNotHex", "RFC 9112 7.1: chunk-size = 1*HEXDIG",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "zz\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkSizeEmpty", "RFC 9112 7.1: chunk-size = 1*HEXDIG",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkSizeNegative", "RFC 9112 7.1: chunk-size = 1*HEXDIG",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "-3\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkSizeHexPrefix", "RFC 9112 7.1: chunk-size = 1*HEXDIG",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "0x3\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkSizeOverflow", "RFC 9112 7.1: a size past 64 bits",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkSizeTrailingSpace", "RFC 9112 7.1: BWS only before ';' of a chunk-ext",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3 \r\nabc\r\n0\r\n\r\n")),
      reject("ChunkDataNotEndedByCrlf", "RFC 9112 7.1: chunk = size ext CRLF data CRLF",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabcX\r\n0\r\n\r\n")),
      reject("ChunkExtensionEmptyName", "RFC 9112 7.1.1: chunk-ext-name = token",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3;\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkExtensionCtl", "RFC 9112 7.1.1: chunk-ext-name = token",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3;a\x01z\r\nabc\r\n0\r\n\r\n")),
      reject("ChunkExtensionBareLf", "RFC 9112 7.1: the chunk-size line ends in CRLF",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3;a\nabc\r\n0\r\n\r\n")),
      reject("ChunkExtensionUnterminatedQuote",
             "RFC 9112 7.1.1: chunk-ext-val = token / quoted-string",
             raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3;a=\"b\r\nabc\r\n0\r\n\r\n")),
      reject("LowercaseVersion", "RFC 9112 2.3: HTTP-name is case-sensitive",
             raw("GET /r http/1.1\r\nHost: h\r\n\r\n")),
      // Today 505, not 400: every HPE_INVALID_VERSION is answered 505 (meant
      // for HTTP/2.0, HTTP/1.2); a malformed version is a 400.
      reject("ThreeDigitVersion", "RFC 9112 2.3: HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT",
             raw("GET /r HTTP/1.01\r\nHost: h\r\n\r\n")),

      // ---- served -----------------------------------------------------------------
      serve("Plain", "the baseline", raw("GET /r HTTP/1.1\r\nHost: h\r\n\r\n"),
            "GET /r host=[h] x=[-] body=[]"),
      serve("ObsTextInValue", "RFC 9110 5.5: obs-text is field-vchar",
            raw("GET /r HTTP/1.1\r\nHost: h\r\nX: \x80\xff\r\n\r\n"),
            raw("GET /r host=[h] x=[\x80\xff] body=[]")),
      serve("TabsAroundValue", "RFC 9110 5.5: OWS around the value is not part of it",
            raw("GET /r HTTP/1.1\r\nHost: h\r\nX:\tb\t\r\n\r\n"), "GET /r host=[h] x=[b] body=[]"),
      serve("SpacesAroundValue", "RFC 9110 5.5: OWS around the value is not part of it",
            raw("GET /r HTTP/1.1\r\nHost: h\r\nX:  b c  \r\n\r\n"),
            "GET /r host=[h] x=[b c] body=[]"),
      serve("EmptyValue", "RFC 9110 5.5: field-value = *field-content",
            raw("GET /r HTTP/1.1\r\nHost: h\r\nX:\r\n\r\n"), "GET /r host=[h] x=[] body=[]"),
      serve("BlankValue", "RFC 9110 5.5: OWS alone is an empty value",
            raw("GET /r HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n"), "GET /r host=[h] x=[] body=[]"),
      serve("AbsoluteFormTarget", "RFC 9112 3.2.2: a server MUST accept absolute-form",
            raw("GET http://h/r HTTP/1.1\r\nHost: h\r\n\r\n"), "GET /r host=[h] x=[-] body=[]"),
      serve("LeadingEmptyLine", "RFC 9112 2.2: SHOULD ignore at least one empty line first",
            raw("\r\nGET /r HTTP/1.1\r\nHost: h\r\n\r\n"), "GET /r host=[h] x=[-] body=[]"),
      serve("ChunkedWithTrailers", "RFC 9112 7.1.2: trailer section",
            raw("POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n4;n=v\r\ndefg\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"),
            "POST /r host=[h] x=[-] body=[abcdefg]"),
      serve("Http10WithoutHost", "RFC 9112 3.2: HTTP/1.0 may omit Host",
            raw("GET /r HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            "GET /r host=[-] x=[-] body=[]"),
      serve("HostName", "RFC 9112 3.2: Host = uri-host [ \":\" port ]",
            raw("GET /r HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            "GET /r host=[example.com] x=[-] body=[]"),
      serve("HostNameAndPort", "RFC 9112 3.2: Host = uri-host [ \":\" port ]",
            raw("GET /r HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
            "GET /r host=[example.com:8080] x=[-] body=[]"),
      serve("HostIpv6AndPort", "RFC 9112 3.2: uri-host = IP-literal / IPv4address / reg-name",
            raw("GET /r HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), "GET /r host=[[::1]:80] x=[-] body=[]"),
      serve("HostIpv4", "RFC 9112 3.2: uri-host = IP-literal / IPv4address / reg-name",
            raw("GET /r HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            "GET /r host=[127.0.0.1] x=[-] body=[]"),
      serve("HostUnreservedChars", "RFC 3986 3.2.2: reg-name takes unreserved characters",
            raw("GET /r HTTP/1.1\r\nHost: a-b.c_d~e\r\n\r\n"),
            "GET /r host=[a-b.c_d~e] x=[-] body=[]"),
      serve("HostEmpty", "RFC 9112 3.2: an empty Host is what a client sends with no authority",
            raw("GET /r HTTP/1.1\r\nHost:\r\n\r\n"), "GET /r host=[] x=[-] body=[]"),
  };
}

// ---- the fixture -------------------------------------------------------------------

class ServerFieldSyntaxTest : public ServerFixture, public ::testing::WithParamInterface<Row> {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    start_server({}, [this](Server& s) {
      const auto echo = [this](Request& req, Response& res) {
        calls_.fetch_add(1, std::memory_order_relaxed);
        res.format("{} {} host=[{}] x=[{}] body=[{}]", req.method_name(), req.path(),
                   req.header("Host").value_or("-"), req.header("X").value_or("-"), req.body());
      };
      s.any("/", echo);
      s.any("/*rest", echo);
    });
  }

  std::uint64_t bad_requests() { return server().stats().bad_requests; }

  // bad_requests reaches `expected` (it is bumped before the 400 is written,
  // on a reactor thread), and then stays there.
  void expect_bad_requests(std::uint64_t expected) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (bad_requests() < expected && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(bad_requests(), expected) << "stats().bad_requests";
  }

  static std::string status_line(const HttpResponse& response) {
    return response.raw.substr(0, response.raw.find("\r\n"));
  }

  // Writes `prefix` + row bytes in one send; when there is a prefix, its 200
  // comes first. False (with a failure added) when the exchange cannot go on.
  static bool send_and_read_first(TestClient& client, const std::string& prefix,
                                  const Row& row) {
    if (!client.connected()) {
      ADD_FAILURE() << "cannot connect";
      return false;
    }
    if (!client.send(prefix + row.bytes)) {
      ADD_FAILURE() << "send failed";
      return false;
    }
    if (prefix.empty()) return true;
    const ReadResult first = client.read_response();
    if (!first.ok()) {
      ADD_FAILURE() << "the valid request before the row got " << to_string(first.outcome)
                    << ": " << first.error;
      return false;
    }
    EXPECT_EQ(status_line(first.response), "HTTP/1.1 200 OK") << printable(first.response.raw);
    EXPECT_EQ(first.response.body, kFirstBody);
    return true;
  }

  void expect_rejected(const Row& row, const std::string& prefix) {
    calls_.store(0);
    const int valid_before = prefix.empty() ? 0 : 1;
    const std::uint64_t bad_before = bad_requests();
    TestClient client(port());
    if (!send_and_read_first(client, prefix, row)) return;
    const ReadResult r = client.read_response();
    ASSERT_TRUE(r.ok()) << "expected a 400, got " << to_string(r.outcome) << ": " << r.error
                        << " (handler calls: " << calls_.load() - valid_before << ")";
    if (status_line(r.response) != "HTTP/1.1 400 Bad Request") {
      // Served (or refused otherwise): report what the handler saw and stop
      // here rather than wait for a close that is not coming.
      ADD_FAILURE() << "expected HTTP/1.1 400 Bad Request, got " << status_line(r.response)
                    << "\nbody: " << printable(r.response.body)
                    << "\nhandler calls for the row: " << calls_.load() - valid_before
                    << "\nthen pending: " << printable(client.pending());
      return;
    }
    std::string after;
    const Outcome closed = client.wait_for_close(&after);
    EXPECT_TRUE(closed == Outcome::kClosed || closed == Outcome::kReset)
        << "expected the server to close the connection after the 400, got "
        << to_string(closed);
    EXPECT_EQ(after, "") << "bytes after the 400: " << printable(after);
    EXPECT_EQ(calls_.load(), valid_before) << "the handler ran for the rejected request";
    expect_bad_requests(bad_before + 1);
  }

  void expect_served(const Row& row, const std::string& prefix) {
    calls_.store(0);
    const int valid_before = prefix.empty() ? 0 : 1;
    const std::uint64_t bad_before = bad_requests();
    TestClient client(port());
    if (!send_and_read_first(client, prefix, row)) return;
    const ReadResult r = client.read_response();
    ASSERT_TRUE(r.ok()) << "expected a 200, got " << to_string(r.outcome) << ": " << r.error;
    EXPECT_EQ(status_line(r.response), "HTTP/1.1 200 OK")
        << "body: " << printable(r.response.body);
    EXPECT_EQ(printable(r.response.body), printable(row.body));
    EXPECT_EQ(calls_.load(), valid_before + 1) << "handler calls";
    EXPECT_EQ(client.pending(), "") << "more than one response: " << printable(client.pending());
    // The connection is still in step: the next request on it is answered.
    const ReadResult next = client.request(kFirst);
    ASSERT_TRUE(next.ok()) << "a request after the row got " << to_string(next.outcome) << ": "
                           << next.error;
    EXPECT_EQ(status_line(next.response), "HTTP/1.1 200 OK") << printable(next.response.raw);
    EXPECT_EQ(next.response.body, kFirstBody);
    EXPECT_EQ(bad_requests(), bad_before) << "stats().bad_requests";
  }

  std::atomic<int> calls_{0};
};

TEST_P(ServerFieldSyntaxTest, Row) {
  const Row& row = GetParam();
  SCOPED_TRACE(row.why + "\nrequest: " + printable(row.bytes));
  {
    SCOPED_TRACE("alone on a connection");
    if (row.served) {
      expect_served(row, "");
    } else {
      expect_rejected(row, "");
    }
  }
  {
    SCOPED_TRACE("pipelined after a valid request, in one write");
    if (row.served) {
      expect_served(row, kFirst);
    } else {
      expect_rejected(row, kFirst);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Http1, ServerFieldSyntaxTest, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) { return row.param.name; });

}  // namespace
}  // namespace portico::testing
