// The gateway's Upgrade tunnels and Expect: 100-continue (issue 14 §1, §2;
// GATEWAY.md, "Forwarding"): raw-socket upstreams (raw_upstream.hpp) that
// answer an Upgrade with 101 and then echo, half-close, or answer 200
// instead; and upstreams whose readiness decides when the client gets its
// 100 Continue. Each test checks the bytes each side saw. Nothing sleeps to
// synchronise: gates, joins and counts (one test lets a route timeout pass
// on purpose: that time is what it tests).
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway_test_support.hpp"
#include "portico/gateway.hpp"
#include "raw_upstream.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

using namespace std::chrono_literals;

// One cluster `raw` at `upstream_port`, routed from /r/*rest.
std::string config_yaml(std::uint16_t upstream_port, std::string_view timeout,
                        std::string_view idle_timeout) {
  return "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
         "server:\n"
         "  idle_timeout: " +
         std::string(idle_timeout) +
         "\n"
         "clusters:\n"
         "  raw:\n"
         "    endpoints: [{address: \"127.0.0.1:" +
         std::to_string(upstream_port) +
         "\"}]\n"
         "routes:\n"
         "  - path: /r/*rest\n"
         "    cluster: raw\n"
         "    timeout: " +
         std::string(timeout) + "\n";
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

// Reads from `fd` into `into` until `done(into)`; false when the
// connection ended or timed out first.
bool read_until(int fd, std::string& into, const std::function<bool(const std::string&)>& done) {
  char chunk[16 * 1024];
  while (!done(into)) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    into.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

// Reads until EOF (true) or an error or timeout (false).
bool read_to_eof(int fd, std::string& into) {
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return true;
    if (n < 0) return false;
    into.append(chunk, static_cast<std::size_t>(n));
  }
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string head_of(const std::string& bytes) {
  const std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : bytes.substr(0, end + 4);
}

std::string after_head(const std::string& bytes) {
  const std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : bytes.substr(end + 4);
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string upgrade_request(std::string_view path = "/r/ws") {
  return "GET " + std::string(path) +
         " HTTP/1.1\r\nHost: tunnel.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n";
}

constexpr std::string_view kSwitching =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n"
    "Keep-Alive: timeout=5\r\n\r\n";

// After the 101, what the connection holds past the request head.
std::string early_bytes(RawConnection& connection) {
  return after_head(connection.received());
}

// The upstream most tests use: an Upgrade gets 101 and then every byte is
// echoed until the gateway's EOF, which is echoed as a FIN; any other
// request gets 200 "plain", keep-alive. The heads it read are kept.
class EchoUpstream {
 public:
  EchoUpstream()
      : upstream_([this](RawConnection& connection) {
          for (;;) {
            const std::string head = connection.read_head();
            if (head.empty()) return;
            {
              std::lock_guard lock(mutex_);
              heads_.push_back(head);
            }
            if (!contains(head, "Upgrade:")) {
              if (!connection.respond(200, "plain")) return;
              continue;
            }
            connection.send(kSwitching);
            echo(connection.fd(), early_bytes(connection));
            return;
          }
        }) {}

  std::uint16_t port() const { return upstream_.port; }
  RawUpstream& raw() { return upstream_; }
  std::vector<std::string> heads() {
    std::lock_guard lock(mutex_);
    return heads_;
  }

 private:
  static void echo(int fd, const std::string& early) {
    // A small receive buffer: a gateway that writes faster than the echo
    // reads meets a full socket soon (its backpressure path, not buffering).
    const int small = 32 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (!early.empty() && !send_all(fd, early)) return;
    char chunk[32 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!send_all(fd, {chunk, static_cast<std::size_t>(n)})) return;
    }
    ::shutdown(fd, SHUT_WR);
  }

  std::mutex mutex_;
  std::vector<std::string> heads_;
  RawUpstream upstream_;  // last: joined before the state its behaviour writes
};

class TunnelFixture : public ::testing::Test {
 protected:
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
  }
  Gateway& start_gateway(std::uint16_t upstream_port, std::string_view timeout = "15s",
                         std::string_view idle_timeout = "60s") {
    gateway_ =
        std::make_unique<Gateway>(parse_config(config_yaml(upstream_port, timeout, idle_timeout)));
    EXPECT_FALSE(gateway_->start()) << gateway_->setup_error();
    return *gateway_;
  }
  std::uint16_t port() const { return gateway_->port(); }
  std::uint64_t replies(ErrorLabel label) { return gateway_->server().stats().replies(label); }

  std::unique_ptr<Gateway> gateway_;
};

using GatewayTunnelTest = TunnelFixture;

TEST_F(GatewayTunnelTest, UpgradeEchoesBothWaysWithBytesPipelinedAfterTheHead) {
  EchoUpstream upstream;
  start_gateway(upstream.port());
  TestClient client(port());
  // The tunnel's first bytes ride in the request head's write.
  ASSERT_TRUE(client.send(upgrade_request() + "hello"));
  std::string got;
  ASSERT_TRUE(read_until(client.fd(), got, [](const std::string& bytes) {
    return after_head(bytes).size() >= 5;
  })) << got;
  const std::string head = head_of(got);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
  EXPECT_TRUE(contains(head, "\r\nUpgrade: echo\r\n")) << head;
  EXPECT_TRUE(contains(head, "\r\nConnection: upgrade\r\n")) << head;
  EXPECT_FALSE(contains(head, "Keep-Alive")) << head;  // hop-by-hop, removed
  EXPECT_EQ(after_head(got), "hello");

  // Later bytes, either way.
  for (const std::string_view word : {"world", "and more bytes", "!"}) {
    ASSERT_TRUE(client.send(word));
    std::string echoed;
    ASSERT_TRUE(read_until(client.fd(), echoed,
                           [&](const std::string& bytes) { return bytes.size() >= word.size(); }));
    EXPECT_EQ(echoed, word);
  }

  // The client's EOF reaches the upstream, whose FIN comes back: the end.
  client.shutdown_write();
  std::string rest;
  EXPECT_TRUE(read_to_eof(client.fd(), rest));
  EXPECT_EQ(rest, "");
  ASSERT_TRUE(upstream.raw().wait_finished(1));

  const std::vector<std::string> heads = upstream.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(contains(heads[0], "\r\nUpgrade: echo\r\n")) << heads[0];
  EXPECT_TRUE(contains(heads[0], "\r\nConnection: upgrade\r\n")) << heads[0];

  // Never pooled after a 101: the next request makes a new connection.
  TestClient next(port());
  const ReadResult r = next.request(request_bytes("GET", "/r/after"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(upstream.raw().accepted(), 2u);
}

TEST_F(GatewayTunnelTest, LargeTransferBothWaysWithBackpressure) {
  EchoUpstream upstream;
  start_gateway(upstream.port());
  TestClient client(port());
  ASSERT_TRUE(client.send(upgrade_request()));
  std::string head;
  ASSERT_TRUE(read_until(client.fd(), head, [](const std::string& bytes) {
    return bytes.find("\r\n\r\n") != std::string::npos;
  }));
  ASSERT_TRUE(head.starts_with("HTTP/1.1 101 ")) << head;
  std::string echoed = after_head(head);

  // 8 MiB out while reading them back in small reads through small socket
  // buffers: a reader slower than the writer fills every buffer on the way,
  // so each side of the gateway waits for the other.
  const int small = 32 * 1024;
  ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ::setsockopt(client.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  constexpr std::size_t kSize = 8u << 20;
  std::string payload(kSize, '\0');
  std::uint32_t state = 12345;
  for (char& c : payload) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 24);
  }
  std::atomic<bool> sent{false};
  std::thread writer([&] {
    sent = send_all(client.fd(), payload);
    ::shutdown(client.fd(), SHUT_WR);
  });
  char chunk[4096];
  while (echoed.size() < kSize) {
    const ssize_t n = ::recv(client.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    echoed.append(chunk, static_cast<std::size_t>(n));
  }
  writer.join();
  EXPECT_TRUE(sent);
  ASSERT_EQ(echoed.size(), kSize);
  EXPECT_TRUE(echoed == payload) << "the echoed bytes differ";
  std::string rest;
  EXPECT_TRUE(read_to_eof(client.fd(), rest));
  EXPECT_EQ(rest.size(), 0u);
}

TEST_F(GatewayTunnelTest, ClientHalfCloseStillGetsTheUpstreamAnswer) {
  // After 101 the upstream reads to EOF, then answers with what it read
  // and closes: the client's half-close must reach it while the way back
  // stays open.
  RawUpstream upstream([](RawConnection& connection) {
    if (connection.read_head().empty()) return;
    connection.send(kSwitching);
    std::string got = early_bytes(connection);
    if (!read_to_eof(connection.fd(), got)) return;
    connection.send("read:" + got);
    connection.close();
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ASSERT_TRUE(client.send(upgrade_request() + "abc"));
  std::string got;
  ASSERT_TRUE(read_until(client.fd(), got, [](const std::string& bytes) {
    return bytes.find("\r\n\r\n") != std::string::npos;
  }));
  ASSERT_TRUE(got.starts_with("HTTP/1.1 101 ")) << got;
  ASSERT_TRUE(client.send("def"));
  client.shutdown_write();
  EXPECT_TRUE(read_to_eof(client.fd(), got));
  EXPECT_EQ(after_head(got), "read:abcdef");
}

TEST_F(GatewayTunnelTest, UpstreamHalfCloseStillTakesTheClientBytes) {
  // The upstream says its piece and half-closes first; the client sees the
  // EOF, then still sends, and the upstream gets it.
  std::string upstream_got;
  RawUpstream upstream([&](RawConnection& connection) {
    if (connection.read_head().empty()) return;
    connection.send(std::string(kSwitching) + "server-done");
    ::shutdown(connection.fd(), SHUT_WR);
    std::string got;
    if (read_to_eof(connection.fd(), got)) upstream_got = got;
  });
  start_gateway(upstream.port);
  TestClient client(port());
  ASSERT_TRUE(client.send(upgrade_request()));
  std::string got;
  EXPECT_TRUE(read_to_eof(client.fd(), got));
  EXPECT_TRUE(got.starts_with("HTTP/1.1 101 ")) << got;
  EXPECT_EQ(after_head(got), "server-done");
  ASSERT_TRUE(client.send("late bytes"));
  client.shutdown_write();
  ASSERT_TRUE(upstream.wait_finished(1));
  EXPECT_EQ(upstream_got, "late bytes");
  // Both sides done: the gateway closes the client connection.
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(GatewayTunnelTest, NonSwitchingAnswerIsAnOrdinaryResponseAndKeepsTheConnection) {
  // The upstream declines the Upgrade with a 200: the client gets it as
  // any response, its connection carries the next request, and the
  // upstream connection the Upgrade went on is not reused.
  std::mutex mutex;
  std::vector<std::string> heads;
  RawUpstream upstream([&](RawConnection& connection) {
    for (;;) {
      const std::string head = connection.read_request();
      if (head.empty()) return;
      {
        std::lock_guard lock(mutex);
        heads.push_back(head);
      }
      if (!connection.respond(200, contains(head, "Upgrade:") ? "declined" : "next")) return;
    }
  });
  start_gateway(upstream.port);
  TestClient client(port());
  const ReadResult first = client.request(upgrade_request());
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.response.status, 200);
  EXPECT_EQ(first.response.body, "declined");
  EXPECT_FALSE(first.response.header("Upgrade").has_value());
  EXPECT_NE(first.response.header("Connection").value_or(""), "close");
  // The gateway let go of the first upstream connection (closed, not pooled).
  ASSERT_TRUE(upstream.wait_finished(1));

  const ReadResult second = client.request(request_bytes("GET", "/r/next"));
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.response.status, 200);
  EXPECT_EQ(second.response.body, "next");
  EXPECT_EQ(upstream.accepted(), 2u);
  std::lock_guard lock(mutex);
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_TRUE(contains(heads[0], "\r\nUpgrade: echo\r\n")) << heads[0];
  EXPECT_FALSE(contains(heads[1], "Upgrade")) << heads[1];
}

TEST_F(GatewayTunnelTest, RouteTimeoutDoesNotEndATunnel) {
  // The route's timeout is 100 ms; the tunnel idles past it on purpose, then
  // still carries bytes (a tunnel ends on the idle timeout, 60 s here).
  EchoUpstream upstream;
  start_gateway(upstream.port(), "100ms");
  TestClient client(port());
  ASSERT_TRUE(client.send(upgrade_request()));
  std::string got;
  ASSERT_TRUE(read_until(client.fd(), got, [](const std::string& bytes) {
    return bytes.find("\r\n\r\n") != std::string::npos;
  }));
  ASSERT_TRUE(got.starts_with("HTTP/1.1 101 ")) << got;
  std::this_thread::sleep_for(300ms);  // the time under test, not a synchronisation
  ASSERT_TRUE(client.send("still here"));
  std::string echoed;
  ASSERT_TRUE(
      read_until(client.fd(), echoed, [](const std::string& bytes) { return bytes.size() >= 10; }));
  EXPECT_EQ(echoed, "still here");
  EXPECT_EQ(replies(ErrorLabel::kUpstreamTimeout), 0u);
}

TEST_F(GatewayTunnelTest, IdleTunnelEndsOnTheIdleTimeout) {
  EchoUpstream upstream;
  start_gateway(upstream.port(), "15s", "200ms");
  TestClient client(port());
  ASSERT_TRUE(client.send(upgrade_request() + "x"));
  std::string got;
  ASSERT_TRUE(read_until(client.fd(), got,
                         [](const std::string& bytes) { return after_head(bytes).size() >= 1; }));
  // Nothing either way: the gateway closes both connections.
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
  ASSERT_TRUE(upstream.raw().wait_finished(1));
}

TEST_F(GatewayTunnelTest, ContinueComesOnlyOnceTheUpstreamHasTheHead) {
  // The upstream reads nothing until the client has its 100 Continue; then
  // the request head must already be waiting in its socket (loopback
  // delivers a send before it returns, and the gateway writes the head
  // before the 100).
  std::mutex mutex;
  bool head_was_there = false;
  std::string upstream_head, upstream_body;
  RawUpstream upstream([&](RawConnection& connection) {
    if (!connection.gate("client has 100").wait()) return;
    char peek[8192];
    const ssize_t n = ::recv(connection.fd(), peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
    const std::string head = connection.read_head();
    if (head.empty() || !connection.read_body(head)) return;
    {
      std::lock_guard lock(mutex);
      head_was_there = n > 0 && contains({peek, static_cast<std::size_t>(n)}, "\r\n\r\n");
      upstream_head = head;
      upstream_body = after_head(connection.received());
    }
    if (!connection.respond(200, "got it")) return;
    // Later requests, on the same (pooled) connection.
    for (;;) {
      if (connection.read_request().empty() || !connection.respond(200, "again")) return;
    }
  });
  start_gateway(upstream.port);
  TestClient client(port());
  const std::string body(100000, 'b');
  ASSERT_TRUE(
      client.send("POST /r/upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  "Content-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n"));
  const ReadResult interim = client.read_response();
  ASSERT_TRUE(interim.ok()) << interim.error;
  EXPECT_EQ(interim.response.status, 100);
  upstream.gate("client has 100").open();
  ASSERT_TRUE(client.send(body));
  const ReadResult final_response = client.read_response();
  ASSERT_TRUE(final_response.ok()) << final_response.error;
  EXPECT_EQ(final_response.response.status, 200);
  EXPECT_EQ(final_response.response.body, "got it");
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(head_was_there);
    EXPECT_FALSE(contains(upstream_head, "Expect")) << upstream_head;
    EXPECT_TRUE(upstream_body == body) << upstream_body.size();
  }

  // Keep-alive: on the pooled connection too the 100 comes, then the answer.
  ASSERT_TRUE(
      client.send("POST /r/again HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  "Content-Length: 3\r\n\r\n"));
  const ReadResult again = client.read_response();
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.response.status, 100);
  ASSERT_TRUE(client.send("abc"));
  const ReadResult answer = client.read_response();
  ASSERT_TRUE(answer.ok()) << answer.error;
  EXPECT_EQ(answer.response.body, "again");
  EXPECT_EQ(upstream.accepted(), 1u);
}

TEST_F(GatewayTunnelTest, NoContinueWhenTheUpstreamRefuses) {
  start_gateway(closed_port());
  TestClient client(port());
  ASSERT_TRUE(
      client.send("POST /r/upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  "Content-Length: 5\r\n\r\n"));
  // The 502 is the first thing the client gets, and the body it still owes
  // cannot be skipped: the connection closes.
  const ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(r.response.header("Connection").value_or(""), "close");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
  EXPECT_EQ(replies(ErrorLabel::kUpstreamConnectFailure), 1u);
}

// A path no route takes: the 404 comes at once, with no 100 Continue before
// it (the body is never invited), and the connection closes after it.
TEST_F(GatewayTunnelTest, NoContinueForAPathNoRouteTakes) {
  start_gateway(closed_port());
  TestClient client(port());
  ASSERT_TRUE(
      client.send("POST /nowhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  "Content-Length: 5\r\n\r\n"));
  const ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 404);
  EXPECT_EQ(r.response.header("Connection").value_or(""), "close");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
  EXPECT_EQ(replies(ErrorLabel::kRouteNotFound), 1u);
}

}  // namespace
}  // namespace portico::testing
