// The gateway in front of upstreams that misbehave on purpose (issue 14 §3):
// raw-socket upstreams (raw_upstream.hpp) that refuse, reset, send garbage
// or ambiguous framing, stall, cut a body short, answer before the request
// body, or close a pooled connection; and clients that send a bad chunk or
// leave mid-response. Each test checks what the client saw on the wire, the
// error label the gateway counted (GATEWAY.md, "Answers the gateway writes
// itself"), and, where the rule is about the upstream connection, what the
// upstream saw of it. Nothing sleeps to synchronise: gates, joins and counts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "gateway_test_support.hpp"
#include "metrics_checks.hpp"
#include "portico/gateway.hpp"
#include "raw_upstream.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

// One cluster `raw` at `upstream_port`, routed from /r/*rest with the
// route timeout `timeout`; /healthz answered by the gateway itself.
std::string config_yaml(std::uint16_t upstream_port, std::string_view timeout = "15s") {
  return "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
         "clusters:\n"
         "  raw:\n"
         "    endpoints: [{address: \"127.0.0.1:" +
         std::to_string(upstream_port) +
         "\"}]\n"
         "routes:\n"
         "  - path: /r/*rest\n"
         "    cluster: raw\n"
         "    timeout: " +
         std::string(timeout) +
         "\n"
         "  - path: /healthz\n"
         "    respond: {status: 200, body: \"ok\\n\", content_type: text/plain}\n";
}

// A loopback port nothing listens on: bound, noted, closed.
std::uint16_t closed_port() {
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(probe);
  return ntohs(address.sin_port);
}

// Reads from the client's socket (bypassing TestClient's parser) into `into`
// until `done(into)`; false when the connection ended or timed out first.
bool read_until(TestClient& client, std::string& into,
                const std::function<bool(const std::string&)>& done) {
  char chunk[16 * 1024];
  while (!done(into)) {
    const ssize_t n = ::recv(client.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    into.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

bool has_head(const std::string& bytes) {
  return bytes.find("\r\n\r\n") != std::string::npos;
}

std::size_t body_bytes_after_head(const std::string& bytes) {
  const std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string::npos ? 0 : bytes.size() - end - 4;
}

// Polls `condition` (a count another thread writes) until it holds or 5 s
// pass. For counts no socket event announces, such as a pool's size. The
// pause between looks only spares the reactor's CPU; it orders nothing.
bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class HostileFixture : public ::testing::Test {
 protected:
  // Each test's RawUpstream is a local, after the state its behaviour
  // writes, so it is joined before that state goes.
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
  }
  Gateway& start_gateway(std::uint16_t upstream_port, std::string_view timeout = "15s") {
    gateway_ = std::make_unique<Gateway>(parse_config(config_yaml(upstream_port, timeout)));
    EXPECT_FALSE(gateway_->start()) << gateway_->setup_error();
    return *gateway_;
  }
  std::uint16_t port() const { return gateway_->port(); }
  std::uint64_t replies(ErrorLabel label) { return gateway_->server().stats().replies(label); }
  // Requests the metrics labelled `label` (counted before the answer is written).
  std::uint64_t labelled(ErrorLabel label) {
    return requests_with(gateway_->server().metrics_snapshot(), label);
  }
  // The gateway's /clusters view says `count` connections are pooled.
  bool pooled_is(int count) {
    return gateway_->clusters_json().find("\"pooled_connections\": " + std::to_string(count)) !=
           std::string::npos;
  }

  std::unique_ptr<Gateway> gateway_;
};

using GatewayHostileTest = HostileFixture;

TEST_F(GatewayHostileTest, RefusedConnectIs502ConnectFailure) {
  start_gateway(closed_port());
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/a"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(r.response.body, "Bad Gateway");
  EXPECT_EQ(replies(ErrorLabel::kUpstreamConnectFailure), 1u);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamReset), 0u);
  EXPECT_EQ(labelled(ErrorLabel::kUpstreamConnectFailure), 1u) << gateway_->metrics();
  EXPECT_NE(gateway_->metrics().find("portico_upstream_connect_failures_total{cluster=\"raw\","),
            std::string::npos);
}

TEST_F(GatewayHostileTest, ResetBeforeAnyResponseByteIs502Reset) {
  RawUpstream upstream([](RawConnection& connection) {
    if (!connection.read_request().empty()) connection.reset();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/a"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamReset), 1u);
  EXPECT_EQ(labelled(ErrorLabel::kUpstreamReset), 1u) << gateway_->metrics();
  // The client connection outlives the upstream's failure.
  const ReadResult again = client.request(request_bytes("GET", "/healthz"));
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.response.status, 200);
  EXPECT_EQ(upstream.accepted(), 1u);
}

TEST_F(GatewayHostileTest, ResetMidBodyClosesTheClientBeforeTheDeclaredLength) {
  constexpr std::size_t kDeclared = 100000;
  constexpr std::size_t kSent = 1000;
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    connection.send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kDeclared) + "\r\n\r\n" +
                    std::string(kSent, 'x'));
    connection.gate("client has bytes").wait();
    connection.reset();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ASSERT_TRUE(client.send(request_bytes("GET", "/r/big")));
  std::string seen;
  ASSERT_TRUE(read_until(client, seen, [&](const std::string& bytes) {
    return body_bytes_after_head(bytes) >= kSent;
  })) << printable(seen);
  EXPECT_EQ(seen.rfind("HTTP/1.1 200 ", 0), 0u) << printable(seen);
  EXPECT_NE(seen.find("Content-Length: 100000\r\n"), std::string::npos) << printable(seen);
  upstream.gate("client has bytes").open();
  const Outcome end = client.wait_for_close(&seen);
  EXPECT_TRUE(end == Outcome::kClosed || end == Outcome::kReset) << to_string(end);
  // Cut short: never padded, never followed by a second answer.
  EXPECT_EQ(body_bytes_after_head(seen), kSent) << printable(seen);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamReset), 0u);
}

TEST_F(GatewayHostileTest, GarbageIs502ProtocolErrorAndTheUpstreamConnectionCloses) {
  std::atomic<PeerEnd> upstream_end{PeerEnd::kTimeout};
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    connection.send("SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n");
    upstream_end = connection.wait_end();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/a"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamProtocolError), 1u);
  EXPECT_EQ(labelled(ErrorLabel::kUpstreamProtocolError), 1u) << gateway_->metrics();
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_NE(upstream_end.load(), PeerEnd::kTimeout) << to_string(upstream_end.load());
}

// Responses whose framing is ambiguous or not a single final chunked: 502,
// and the connection they came on is closed (the upstream reads its end).
struct FramingCase {
  const char* name;
  const char* response;
};

class GatewayHostileFramingTest : public HostileFixture,
                                  public ::testing::WithParamInterface<FramingCase> {
 protected:
  void expect_framing_error(const char* response) {
    std::atomic<PeerEnd> upstream_end{PeerEnd::kTimeout};
    RawUpstream upstream([&](RawConnection& connection) {
      if (connection.read_request().empty()) return;
      connection.send(response);
      upstream_end = connection.wait_end();
    });
    start_gateway(upstream.port);
    TestClient client(port());
    const ReadResult r = client.request(request_bytes("GET", "/r/a"));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.response.status, 502) << printable(r.response.raw);
    EXPECT_EQ(replies(ErrorLabel::kUpstreamProtocolError), 1u);
    ASSERT_TRUE(upstream.wait_finished(1));
    EXPECT_NE(upstream_end.load(), PeerEnd::kTimeout) << to_string(upstream_end.load());
    // The next request gets a new upstream connection.
    EXPECT_EQ(client.request(request_bytes("GET", "/r/b")).response.status, 502);
    EXPECT_EQ(upstream.accepted(), 2u);
  }
};

TEST_P(GatewayHostileFramingTest, Is502AndThatUpstreamConnectionCloses) {
  expect_framing_error(GetParam().response);
}

INSTANTIATE_TEST_SUITE_P(
    Responses, GatewayHostileFramingTest,
    ::testing::Values(
        FramingCase{"ContentLengthAndChunked",
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n"},
        FramingCase{"ChunkedAndContentLength",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n"},
        FramingCase{"GzipOnly", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello"},
        FramingCase{"ChunkedThenGzip",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello"},
        FramingCase{"ChunkedFieldThenGzipField",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
                    "\r\nhello"},
        FramingCase{"ChunkedInHttp10",
                    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n"}),
    [](const ::testing::TestParamInfo<FramingCase>& param_info) {
      return std::string(param_info.param.name);
    });

// GATEWAY.md: a Transfer-Encoding that "does not end in a single chunked"
// is a framing error (RFC 9112 §6.1: chunked is applied at most once).
TEST_F(GatewayHostileFramingTest, ChunkedAppliedTwiceIs502) {
  expect_framing_error(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
}

TEST_F(GatewayHostileTest, StallPastTheRouteTimeoutIs504AndTheUpstreamConnectionCloses) {
  // The stall ends when the gateway closes the connection (or after 5 s,
  // which fails the test).
  std::atomic<PeerEnd> upstream_end{PeerEnd::kTimeout};
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    upstream_end = connection.wait_end();
  });
  start_gateway(upstream.port, "200ms");
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/slow"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 504);
  EXPECT_EQ(r.response.body, "Gateway Timeout");
  EXPECT_EQ(replies(ErrorLabel::kUpstreamTimeout), 1u);
  EXPECT_EQ(labelled(ErrorLabel::kUpstreamTimeout), 1u) << gateway_->metrics();
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_EQ(upstream_end.load(), PeerEnd::kClosed) << to_string(upstream_end.load());
}

// The route timeout counts from each request, also on a client connection
// (and a proxied exchange object) that served one before: the timer armed
// for the first request's deadline fires while the second waits, and is
// armed again for the rest rather than ending the second early.
TEST_F(GatewayHostileTest, RouteTimeoutCountsFromEachRequestOfAConnection) {
  std::atomic<int> requests{0};
  RawUpstream upstream([&](RawConnection& connection) {
    while (!connection.read_request().empty()) {
      if (++requests == 1) {
        connection.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        continue;
      }
      connection.wait_end();  // stalls until the gateway gives up on it
      return;
    }
  });
  start_gateway(upstream.port, "400ms");
  TestClient client(port());
  const ReadResult first = client.request(request_bytes("GET", "/r/fast"));
  ASSERT_TRUE(first.ok()) << first.error;
  ASSERT_EQ(first.response.status, 200);
  // Half the timeout passes before the next request (time passing is the
  // case here; nothing waits on another thread).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto sent = std::chrono::steady_clock::now();
  const ReadResult second = client.request(request_bytes("GET", "/r/slow"));
  const auto waited = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.response.status, 504);
  // Timers never fire early: at least the whole timeout, from this request.
  EXPECT_GE(waited, std::chrono::milliseconds(400));
  EXPECT_EQ(replies(ErrorLabel::kUpstreamTimeout), 1u);
  ASSERT_TRUE(upstream.wait_finished(1));
}

TEST_F(GatewayHostileTest, ChunkedResponseCutBeforeTheLastChunkClosesTheClient) {
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    connection.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    connection.gate("client has chunk").wait();
    connection.close();  // a clean FIN, before the last chunk
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ASSERT_TRUE(client.send(request_bytes("GET", "/r/chunks")));
  std::string seen;
  ASSERT_TRUE(read_until(client, seen, [](const std::string& bytes) {
    return bytes.find("hello\r\n") != std::string::npos;
  })) << printable(seen);
  EXPECT_NE(seen.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << printable(seen);
  upstream.gate("client has chunk").open();
  const Outcome end = client.wait_for_close(&seen);
  EXPECT_TRUE(end == Outcome::kClosed || end == Outcome::kReset) << to_string(end);
  // No last chunk: the client cannot take the body for a whole one.
  EXPECT_EQ(seen.find("0\r\n\r\n"), std::string::npos) << printable(seen);
  EXPECT_EQ(seen.find("HTTP/1.1 502"), std::string::npos) << printable(seen);
}

TEST_F(GatewayHostileTest, AnswerBeforeTheRequestBodyReachesTheClientAndIsNotReused) {
  std::atomic<PeerEnd> first_end{PeerEnd::kTimeout};
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.index() == 1) {
      // The head is enough to refuse: 413 before a byte of the body, and
      // the connection kept open (keep-alive) for the gateway to decide.
      if (connection.read_head().empty()) return;
      connection.respond(413, "too big");
      first_end = connection.wait_end();
      return;
    }
    if (!connection.read_request().empty()) connection.respond(200, "fresh");
    connection.wait_end();
  });
  start_gateway(upstream.port);
  {
    TestClient client(port());
    // The head only: the body never comes.
    const ReadResult r =
        client.request("POST /r/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.response.status, 413);
    EXPECT_EQ(r.response.body, "too big");
    // The body it announced is unread: that client connection cannot carry
    // another request.
    const Outcome end = client.wait_for_close();
    EXPECT_TRUE(end == Outcome::kClosed || end == Outcome::kReset) << to_string(end);
  }
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_NE(first_end.load(), PeerEnd::kTimeout) << to_string(first_end.load());
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/next"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "fresh");
  EXPECT_EQ(upstream.accepted(), 2u);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamReset) + replies(ErrorLabel::kUpstreamProtocolError), 0u);
}

// Not hostile, but the same path as the early answer above: a response the
// client connection closes after (Connection: close) must reach it whole
// before the FIN, with the upstream's bytes batched or not.
TEST_F(GatewayHostileTest, ResponseBeforeAClientCloseArrivesWhole) {
  RawUpstream upstream([&](RawConnection& connection) {
    if (!connection.read_request().empty()) connection.respond(200, "whole");
    connection.wait_end();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/r/a", "Connection: close\r\n"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "whole");
  EXPECT_EQ(r.response.header("Connection"), "close");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(GatewayHostileTest, PooledConnectionClosedWhileIdleIsDroppedBeforeReuse) {
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    connection.respond(200, "served by " + std::to_string(connection.index()));
    if (connection.index() == 1) {
      connection.gate("pooled").wait();
      connection.close();  // the upstream's own idle timeout
      return;
    }
    connection.wait_end();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/r/one"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "served by 1");
  ASSERT_TRUE(wait_until([&] { return pooled_is(1); })) << gateway_->clusters_json();
  upstream.gate("pooled").open();
  ASSERT_TRUE(upstream.wait_finished(1));
  // The pool sees the FIN while the connection idles and drops it.
  ASSERT_TRUE(wait_until([&] { return pooled_is(0); })) << gateway_->clusters_json();
  r = client.request(request_bytes("GET", "/r/two"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "served by 2");
  EXPECT_EQ(upstream.accepted(), 2u);
}

// GATEWAY.md: "if a reused connection fails before any response byte, the
// request is sent once more on a new connection (not counted as a retry)
// when it is idempotent". Here the idle close crosses the request: the
// upstream reads the second request on the pooled connection and closes
// without a byte of response.
TEST_F(GatewayHostileTest, ReusedConnectionFailingBeforeAnyResponseByteIsResent) {
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    connection.respond(200, "served by " + std::to_string(connection.index()));
    if (connection.index() == 1) {
      (void)connection.read_head();  // the next request...
      connection.close();            // ...and no answer to it
      return;
    }
    connection.wait_end();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/r/one"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "served by 1");
  r = client.request(request_bytes("GET", "/r/two"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200) << printable(r.response.raw);
  EXPECT_EQ(r.response.body, "served by 2");
  EXPECT_EQ(upstream.accepted(), 2u);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamReset), 0u);
}

TEST_F(GatewayHostileTest, MalformedChunkFromTheClientIs400AndClosesTheUpstreamConnection) {
  std::atomic<PeerEnd> upstream_end{PeerEnd::kTimeout};
  std::string upstream_saw;  // written by the behaviour, read after wait_finished
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_head().empty()) return;
    connection.gate("head").open();
    upstream_end = connection.wait_end();
    upstream_saw = connection.received();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ASSERT_TRUE(client.send(
      "POST /r/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  ASSERT_TRUE(upstream.gate("head").wait());
  ASSERT_TRUE(client.send("zz\r\nbad\r\n0\r\n\r\n"));
  const ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 400);
  EXPECT_EQ(replies(ErrorLabel::kBadRequest), 1u);
  const Outcome end = client.wait_for_close();
  EXPECT_TRUE(end == Outcome::kClosed || end == Outcome::kReset) << to_string(end);
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_NE(upstream_end.load(), PeerEnd::kTimeout) << to_string(upstream_end.load());
  // The upstream never saw a well-ended body (which it would take as whole),
  // nor anything after the bad chunk (searched in the body only: the head's
  // random ids can spell "bad").
  const std::size_t head_end = upstream_saw.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << printable(upstream_saw);
  const std::string body = upstream_saw.substr(head_end + 4);
  EXPECT_EQ(body.find("0\r\n\r\n"), std::string::npos) << printable(upstream_saw);
  EXPECT_EQ(body.find("bad"), std::string::npos) << printable(upstream_saw);
}

TEST_F(GatewayHostileTest, ClientLeavingMidResponseClosesTheUpstreamAndOthersAreServed) {
  std::atomic<bool> first_saw_close{false};
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    if (connection.index() == 1) {
      // A body far larger than the socket buffers between here and the
      // client, sent until the gateway stops taking it.
      constexpr std::size_t kDeclared = 256 * 1024 * 1024;
      connection.send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kDeclared) +
                      "\r\n\r\n");
      const std::string block(64 * 1024, 'x');
      for (std::size_t sent = 0; sent < kDeclared; sent += block.size()) {
        if (!connection.send(block)) {
          first_saw_close = errno == EPIPE || errno == ECONNRESET;
          return;
        }
      }
      return;
    }
    connection.respond(200, "still here");
    connection.wait_end();
  });
  start_gateway(upstream.port);
  {
    TestClient leaving(port());
    ASSERT_TRUE(leaving.send(request_bytes("GET", "/r/huge")));
    std::string seen;
    ASSERT_TRUE(read_until(leaving, seen, has_head)) << printable(seen);
    EXPECT_EQ(seen.rfind("HTTP/1.1 200 ", 0), 0u) << printable(seen);
  }  // closed with unread bytes: the gateway's next write to it fails
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_TRUE(first_saw_close.load());
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/healthz"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  r = client.request(request_bytes("GET", "/r/next"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "still here");
  EXPECT_EQ(upstream.accepted(), 2u);
}

}  // namespace
}  // namespace portico::testing
