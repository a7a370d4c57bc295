// The Server over real loopback sockets: every HTTP/1.1 behaviour issue 4 §2
// names, with a raw-socket client (pipelining, byte-by-byte writes, splits at
// every byte boundary, slow and silent clients, oversized and malformed
// input) and with curl for the ordinary exchanges. Every test ends with the
// fixture's fd-leak check.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

#define ASSERT_RESPONSE(result, request_text)                                              \
  ASSERT_TRUE((result).ok()) << "request: " << printable(request_text) << "\ngot "         \
                             << to_string((result).outcome) << ": " << (result).error

bool is_close(Outcome outcome) { return outcome == Outcome::kClosed || outcome == Outcome::kReset; }
#define EXPECT_CLOSED(outcome_expression)                                                   \
  if (const Outcome closed_outcome = (outcome_expression); !is_close(closed_outcome))      \
  ADD_FAILURE() << "expected the server to close the connection, got "                     \
                << to_string(closed_outcome)

std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// The routes most tests use.
void standard_routes(Server& server) {
  server.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  server.head("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  server.get("/users/:id",
             [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
  server.put("/users/:id", [](Request&, Response& res) { res.text("put"); });
  server.post("/echo", [](Request& req, Response& res) {
    res.body(req.body(), "application/octet-stream");
  });
  server.get("/query", [](Request& req, Response& res) {
    const auto a = req.query_param("a");
    if (a) {
      res.format("a=[{}]", *a);
    } else {
      res.text("none");
    }
  });
  server.get("/header", [](Request& req, Response& res) {
    const auto lower = req.header("x-test");
    const auto upper = req.header("X-TEST");
    const auto mixed = req.header("X-Test");
    if (!lower || !upper || !mixed || *lower != *upper || *lower != *mixed) {
      res.status(500).text("lookups disagree");
      return;
    }
    res.text(*lower);
  });
  server.get("/header-size", [](Request& req, Response& res) {
    res.format("{}", req.header("x-big").value_or("").size());
  });
  server.get("/info", [](Request& req, Response& res) {
    res.format("{} {} {} {} {}", req.method_name(), req.path(), req.query(), req.version_minor(),
               req.keep_alive() ? "keep-alive" : "close");
  });
  server.get("/dir/", [](Request&, Response& res) { res.text("dir"); });
  server.post("/dir/", [](Request&, Response& res) { res.text("dir-post"); });
  server.get("/Static/Path", [](Request&, Response& res) { res.text("static"); });
  (void)server.add_route("PURGE", "/cache/:key", [](Request& req, Response& res) {
    res.format("purged {}", req.param("key"));
  });
}

// Completions handed from handlers to the test thread.
struct Deferred {
  Completion completion;
  Response* response = nullptr;
  std::string id;
};
class Handoff {
 public:
  void push(Deferred deferred) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(deferred));
    }
    ready_.notify_all();
  }
  std::optional<Deferred> pop(std::chrono::milliseconds bound = 5s) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, bound, [this] { return !items_.empty(); })) return std::nullopt;
    Deferred d = std::move(items_.front());
    items_.pop_front();
    return d;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Deferred> items_;
};

// A gate blocking handlers until the test opens it (bounded, so a failed test
// cannot wedge the server's shutdown).
class Gate {
 public:
  void enter_and_wait() {
    std::unique_lock lock(mutex_);
    ++entered_;
    changed_.notify_all();
    changed_.wait_for(lock, 10s, [this] { return open_; });
  }
  bool wait_entered(int n, std::chrono::milliseconds bound = 5s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, bound, [&] { return entered_ >= n; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int entered_ = 0;
  bool open_ = false;
};

class ServerHttpTest : public ServerFixture {
 protected:
  Server& start(ServerOptions options = {}) { return start_server(std::move(options), standard_routes); }

  // Sends `request` on a fresh connection and reads one response.
  ReadResult exchange(std::string_view request, bool head = false) {
    TestClient client(port());
    EXPECT_TRUE(client.connected());
    return client.request(request, head);
  }

  // Reads responses until a final (non-1xx) one.
  static ReadResult read_final(TestClient& client) {
    for (;;) {
      ReadResult r = client.read_response();
      if (!r.ok() || r.response.status >= 200) return r;
    }
  }
};

const std::regex kImfDate(
    R"(^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$)");

// ---- the test client itself (a canned peer, no Server) ---------------------------

// Accepts one connection on a loopback port, writes `reply` once the request
// head has arrived, then closes (or resets, or stays silent until destroyed).
class CannedPeer {
 public:
  enum class Then { kClose, kReset, kSilent };
  CannedPeer(std::string reply, Then then) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 1), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this, reply = std::move(reply), then] {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::string got;
      char chunk[512];
      while (got.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        got.append(chunk, static_cast<std::size_t>(n));
      }
      if (!reply.empty()) (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      if (then == Then::kSilent) {
        // Until the client hangs up.
        while (::recv(fd, chunk, sizeof chunk, 0) > 0) {
        }
      } else if (then == Then::kReset) {
        const linger hard{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      }
      ::close(fd);
    });
  }
  ~CannedPeer() {
    thread_.join();
    ::close(listener_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST(TestClientTest, ParsesFramings) {
  HttpResponse r;
  std::size_t used = 0;
  std::string data = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A:  b \r\n\r\nhiNEXT";
  ASSERT_EQ(parse_response(data, false, false, r, used), ParseStatus::kDone);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.body, "hi");
  EXPECT_EQ(r.header("x-a"), "b");
  EXPECT_EQ(used, data.size() - 4);
  data = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
  ASSERT_EQ(parse_response(data, false, false, r, used), ParseStatus::kDone);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body, "ab0123456789");
  EXPECT_EQ(used, data.size());
  EXPECT_EQ(parse_response(data.substr(0, data.size() - 1), false, false, r, used),
            ParseStatus::kNeedMore);
  data = "HTTP/1.0 200 OK\r\n\r\nuntil close";
  EXPECT_EQ(parse_response(data, false, false, r, used), ParseStatus::kNeedMore);
  ASSERT_EQ(parse_response(data, false, true, r, used), ParseStatus::kDone);
  EXPECT_EQ(r.version_minor, 0);
  EXPECT_EQ(r.body, "until close");
  data = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
  ASSERT_EQ(parse_response(data, true, false, r, used), ParseStatus::kDone);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(parse_response(data, false, false, r, used), ParseStatus::kNeedMore);
  EXPECT_EQ(parse_response(data, false, true, r, used), ParseStatus::kBad);  // cut short
  EXPECT_EQ(parse_response("HTTP/1.1 2x0 OK\r\n\r\n", false, false, r, used), ParseStatus::kBad);
  EXPECT_EQ(parse_response("SSH-2.0", false, false, r, used), ParseStatus::kBad);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nbad\r\n\r\n", false, false, r, used),
            ParseStatus::kBad);
  const auto all = parse_all_responses(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].status, 100);
  EXPECT_EQ(all[1].status, 201);
  EXPECT_EQ(all[1].body, "x");
}

TEST(TestClientTest, ReadsResponsesThenCleanClose) {
  CannedPeer peer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\n"
                  "Content-Length: 0\r\n\r\n",
                  CannedPeer::Then::kClose);
  TestClient client(peer.port());
  const ReadResult first = client.request(request_bytes("GET", "/"));
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.response.body, "hi");
  const ReadResult second = client.read_response();
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.response.status, 404);
  EXPECT_EQ(client.read_response().outcome, Outcome::kClosed);
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST(TestClientTest, TimeoutResetAndTruncation) {
  {
    CannedPeer peer("", CannedPeer::Then::kSilent);
    TestClient client(peer.port(), 100ms);
    EXPECT_EQ(client.request(request_bytes("GET", "/")).outcome, Outcome::kTimeout);
    EXPECT_EQ(client.wait_for_close(), Outcome::kTimeout);
  }
  {
    CannedPeer peer("", CannedPeer::Then::kReset);
    TestClient client(peer.port());
    EXPECT_EQ(client.request(request_bytes("GET", "/")).outcome, Outcome::kReset);
  }
  {
    CannedPeer peer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", CannedPeer::Then::kClose);
    TestClient client(peer.port());
    EXPECT_EQ(client.request(request_bytes("GET", "/")).outcome, Outcome::kMalformed);
  }
}

// ---- the basics ---------------------------------------------------------------

TEST_F(ServerHttpTest, GetWithDateAndContentLength) {
  start();
  const std::string req = request_bytes("GET", "/plaintext");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.version_minor, 1);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.reason, "OK");
  EXPECT_EQ(r.response.body, "Hello, World!");
  EXPECT_EQ(r.response.header("Content-Length"), "13");
  EXPECT_EQ(r.response.header_count("Content-Length"), 1u);
  EXPECT_FALSE(r.response.chunked);
  EXPECT_EQ(r.response.header("Content-Type"), "text/plain");
  EXPECT_EQ(r.response.header("Server"), "portico");
  const auto date = r.response.header("Date");
  ASSERT_TRUE(date.has_value()) << printable(r.response.raw);
  EXPECT_TRUE(std::regex_match(*date, kImfDate)) << *date;
  EXPECT_EQ(r.response.header_count("Date"), 1u);
}

TEST_F(ServerHttpTest, ServerHeaderCanBeTurnedOff) {
  ServerOptions options;
  options.server_name = "";
  start(options);
  const ReadResult r = exchange(request_bytes("GET", "/plaintext"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.response.header("Server").has_value()) << printable(r.response.raw);
}

TEST_F(ServerHttpTest, PostEchoesBody) {
  start();
  const std::string req = request_bytes("POST", "/echo", "", "ping \x01\x02 pong");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "ping \x01\x02 pong");
  EXPECT_EQ(r.response.header("Content-Length"), "12");
  EXPECT_EQ(r.response.header("Content-Type"), "application/octet-stream");
}

TEST_F(ServerHttpTest, PostWithEmptyBody) {
  start();
  const std::string req = request_bytes("POST", "/echo", "Content-Length: 0\r\n");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "");
  EXPECT_EQ(r.response.header("Content-Length"), "0");
}

TEST_F(ServerHttpTest, LargeBodyAcrossManyReads) {
  start();
  std::string body(300 * 1024, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  const std::string req = request_bytes("POST", "/echo", "", body);
  TestClient client(port());
  ASSERT_TRUE(client.send_in_pieces(req, 7000));
  const ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body.size(), body.size());
  EXPECT_TRUE(r.response.body == body);
}

TEST_F(ServerHttpTest, HeadHasContentLengthButNoBody) {
  start();
  TestClient client(port());
  const std::string head = request_bytes("HEAD", "/plaintext");
  const ReadResult r = client.request(head, /*head_request=*/true);
  ASSERT_RESPONSE(r, head);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.header("Content-Length"), "13");
  EXPECT_TRUE(r.response.body.empty());
  // Had the server written a body, it would be read as the next response.
  const std::string get = request_bytes("GET", "/users/5");
  const ReadResult next = client.request(get);
  ASSERT_RESPONSE(next, get);
  EXPECT_EQ(next.response.body, "user 5");
}

TEST_F(ServerHttpTest, CustomMethodToken) {
  start();
  const std::string req = request_bytes("PURGE", "/cache/k1");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "purged k1");
}

TEST_F(ServerHttpTest, RequestTargetPathQueryAndVersion) {
  start();
  const std::string req = request_bytes("GET", "/info?x=1&y");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "GET /info x=1&y 1 keep-alive");
}

// ---- connection management --------------------------------------------------

TEST_F(ServerHttpTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  TestClient client(port());
  for (int i = 0; i < 5; ++i) {
    const std::string req = request_bytes("GET", "/users/" + std::to_string(i));
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.body, "user " + std::to_string(i));
    EXPECT_NE(r.response.header("Connection"), "close");
  }
  const ServerStats stats = server().stats();
  EXPECT_EQ(stats.connections_accepted, 1u);
  EXPECT_EQ(stats.requests, 5u);
}

TEST_F(ServerHttpTest, ConnectionCloseClosesAfterResponse) {
  start();
  TestClient client(port());
  const std::string req = request_bytes("GET", "/plaintext", "Connection: close\r\n");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "Hello, World!");
  EXPECT_EQ(r.response.header("Connection"), "close");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(ServerHttpTest, ResponseCloseConnectionFromHandler) {
  start_server({}, [](Server& s) {
    s.get("/bye", [](Request&, Response& res) { res.text("bye").close_connection(); });
  });
  TestClient client(port());
  const std::string req = request_bytes("GET", "/bye");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "bye");
  EXPECT_EQ(r.response.header("Connection"), "close");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(ServerHttpTest, Http10ClosesByDefault) {
  start();
  TestClient client(port());
  const std::string req = "GET /info HTTP/1.0\r\n\r\n";  // no Host: 1.0 may omit it
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "GET /info  0 close");
  EXPECT_EQ(r.response.header("Content-Length"), "18");
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(ServerHttpTest, Http10KeepAliveStaysOpen) {
  start();
  TestClient client(port());
  const std::string req = "GET /info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.body, "GET /info  0 keep-alive");
    // An HTTP/1.0 client only keeps the connection when told so.
    EXPECT_TRUE(r.response.header("Connection") &&
                ascii_lower(*r.response.header("Connection")) == "keep-alive")
        << printable(r.response.raw);
  }
  EXPECT_EQ(server().stats().connections_accepted, 1u);
}

TEST_F(ServerHttpTest, PipelinedRequestsAnsweredInOrder) {
  start();
  std::string pipeline;
  for (int i = 0; i < 10; ++i) pipeline += request_bytes("GET", "/users/" + std::to_string(i));
  TestClient client(port());
  ASSERT_TRUE(client.send(pipeline));
  for (int i = 0; i < 10; ++i) {
    const ReadResult r = client.read_response();
    ASSERT_RESPONSE(r, pipeline) << " (response " << i << ")";
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, "user " + std::to_string(i));
  }
  EXPECT_TRUE(client.pending().empty()) << printable(client.pending());
  EXPECT_EQ(server().stats().requests, 10u);
}

// 200 pipelined responses of 48 KiB (under the size written from the
// handler's buffer, so they go through the reactor's output and, with
// batch_io, one queued send) are far more than the loopback socket buffers
// hold while the client is not reading yet: the send comes back short, the
// rest waits for EPOLLOUT. Every byte must still arrive, in order.
TEST_F(ServerHttpTest, PipelinedResponsesThatFillTheSocketArriveWholeInOrder) {
  constexpr int kRequests = 200;
  constexpr std::size_t kBody = 48 * 1024;
  start_server({}, [](Server& s) {
    s.get("/fill/:n", [](Request& req, Response& res) {
      const int n = std::stoi(std::string(req.param("n")));
      res.body(std::string(kBody, static_cast<char>('a' + n % 26)), "text/plain");
    });
  });
  std::string pipeline;
  for (int i = 0; i < kRequests; ++i) pipeline += request_bytes("GET", "/fill/" + std::to_string(i));
  TestClient client(port());
  ASSERT_TRUE(client.send(pipeline));
  for (int i = 0; i < kRequests; ++i) {
    const ReadResult r = client.read_response();
    ASSERT_RESPONSE(r, pipeline) << " (response " << i << ")";
    ASSERT_EQ(r.response.status, 200);
    ASSERT_EQ(r.response.body, std::string(kBody, static_cast<char>('a' + i % 26)))
        << "response " << i << " is not the one asked for, or is cut";
  }
  EXPECT_TRUE(client.pending().empty()) << printable(client.pending());
  EXPECT_EQ(server().stats().requests, static_cast<std::uint64_t>(kRequests));
}

// Bodies of 64 KiB and more are written straight from the response; the rest
// a full socket leaves is kept by taking the response's string over (no
// copy). Mixed with small responses that queue behind it, each byte must
// still arrive where it belongs: the bodies' bytes depend on their position.
TEST_F(ServerHttpTest, BigBodiesLeftOverByAFullSocketArriveWholeInOrder) {
  constexpr int kRequests = 12;
  constexpr std::size_t kBig = 3 * 1024 * 1024 + 17;
  const auto body_of = [](int n) {
    std::string body(n % 3 == 2 ? 5 : kBig, '\0');
    for (std::size_t i = 0; i < body.size(); ++i)
      body[i] = static_cast<char>('a' + (i / 7 + static_cast<std::size_t>(n)) % 26);
    return body;
  };
  start_server({}, [&body_of](Server& s) {
    s.get("/big/:n", [&body_of](Request& req, Response& res) {
      res.body(body_of(std::stoi(std::string(req.param("n")))), "text/plain");
    });
  });
  std::string pipeline;
  for (int i = 0; i < kRequests; ++i) pipeline += request_bytes("GET", "/big/" + std::to_string(i));
  TestClient client(port());
  ASSERT_TRUE(client.send(pipeline));
  for (int i = 0; i < kRequests; ++i) {
    const ReadResult r = client.read_response();
    ASSERT_RESPONSE(r, pipeline) << " (response " << i << ")";
    ASSERT_EQ(r.response.status, 200);
    ASSERT_TRUE(r.response.body == body_of(i))
        << "response " << i << " is cut or its bytes are out of place (" << r.response.body.size()
        << " bytes)";
  }
  EXPECT_TRUE(client.pending().empty()) << printable(client.pending());
}
TEST_F(ServerHttpTest, PipelineMixingMethodsAndStatuses) {
  start();
  const std::string pipeline = request_bytes("POST", "/echo", "", "abc") +
                               request_bytes("GET", "/missing") +
                               request_bytes("HEAD", "/plaintext") +
                               request_bytes("DELETE", "/users/1") +
                               request_bytes("GET", "/plaintext");
  TestClient client(port());
  ASSERT_TRUE(client.send(pipeline));
  const std::vector<std::pair<int, std::string>> expected = {
      {200, "abc"}, {404, ""}, {200, ""}, {405, ""}, {200, "Hello, World!"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const ReadResult r = client.read_response(/*head_request=*/i == 2);
    ASSERT_RESPONSE(r, pipeline) << " (response " << i << ")";
    EXPECT_EQ(r.response.status, expected[i].first) << i;
    if (expected[i].first == 200) {
      EXPECT_EQ(r.response.body, expected[i].second) << i;
    }
  }
}

// Sends `bytes` in two writes, split at every byte in turn, each time on a
// fresh connection, and expects one response per entry of `bodies`.
void expect_split_everywhere(std::uint16_t port, const std::string& bytes,
                             const std::vector<std::string>& bodies) {
  for (std::size_t split = 1; split < bytes.size(); ++split) {
    SCOPED_TRACE("split at byte " + std::to_string(split));
    TestClient client(port);
    ASSERT_TRUE(client.send(std::string_view(bytes).substr(0, split)));
    ASSERT_TRUE(client.send(std::string_view(bytes).substr(split)));
    for (const std::string& body : bodies) {
      const ReadResult r = client.read_response();
      ASSERT_RESPONSE(r, bytes);
      EXPECT_EQ(r.response.body, body);
    }
  }
}

TEST_F(ServerHttpTest, PipelineSplitAtEveryByteBoundary) {
  start();
  expect_split_everywhere(
      port(), request_bytes("GET", "/users/17") + request_bytes("POST", "/echo", "", "hello"),
      {"user 17", "hello"});
}

TEST_F(ServerHttpTest, RequestWrittenOneByteAtATime) {
  start();
  const std::string req =
      request_bytes("POST", "/echo", "X-Test: slow\r\n", "one byte at a time");
  TestClient client(port());
  ASSERT_TRUE(client.send_in_pieces(req, 1));
  const ReadResult r = client.read_response();
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "one byte at a time");
}

// ---- bodies -----------------------------------------------------------------

TEST_F(ServerHttpTest, ChunkedRequestBody) {
  start();
  const std::string req =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
  TestClient client(port());
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello world0123456789");
  // The connection is still in step.
  const std::string next = request_bytes("GET", "/plaintext");
  const ReadResult r2 = client.request(next);
  ASSERT_RESPONSE(r2, next);
  EXPECT_EQ(r2.response.body, "Hello, World!");
}

TEST_F(ServerHttpTest, ChunkedRequestSplitAtEveryByteBoundary) {
  start();
  const std::string req =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n" +
      request_bytes("GET", "/users/x");
  expect_split_everywhere(port(), req, {"abcdefg", "user x"});
}

// Streaming from other threads is covered in server_stream_test.cpp.
TEST_F(ServerHttpTest, ChunkedResponseBody) {
  start_server({}, [](Server& s) {
    s.get("/chunked/:n", [](Request& req, Response& res) {
      res.chunked().format("chunked body {}", req.param("n"));
    });
  });
  TestClient client(port());
  // Twice, pipelined: the framing must end exactly where the next begins.
  const std::string pipeline = request_bytes("GET", "/chunked/1") + request_bytes("GET", "/chunked/2");
  ASSERT_TRUE(client.send(pipeline));
  for (int i = 1; i <= 2; ++i) {
    const ReadResult r = client.read_response();
    ASSERT_RESPONSE(r, pipeline);
    EXPECT_EQ(r.response.status, 200);
    EXPECT_TRUE(r.response.chunked) << printable(r.response.raw);
    EXPECT_FALSE(r.response.header("Content-Length").has_value()) << printable(r.response.raw);
    EXPECT_EQ(r.response.body, "chunked body " + std::to_string(i));
  }
}

TEST_F(ServerHttpTest, ExpectContinue) {
  start();
  TestClient client(port());
  const std::string head =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  ASSERT_TRUE(client.send(head));
  const ReadResult interim = client.read_response();
  ASSERT_RESPONSE(interim, head);
  EXPECT_EQ(interim.response.status, 100) << printable(interim.response.raw);
  ASSERT_TRUE(client.send("hello"));
  const ReadResult r = client.read_response();
  ASSERT_RESPONSE(r, head + "hello");
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "hello");
}

TEST_F(ServerHttpTest, ExpectContinueWithTooLargeBodyIsRefused) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  TestClient client(port());
  const std::string head =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: "
      "4096\r\n\r\n";
  ASSERT_TRUE(client.send(head));
  const ReadResult r = read_final(client);
  ASSERT_RESPONSE(r, head);
  EXPECT_EQ(r.response.status, 413);
  EXPECT_CLOSED(client.wait_for_close());
}

// ---- routing ------------------------------------------------------------------

TEST_F(ServerHttpTest, NotFoundKeepsConnection) {
  start();
  TestClient client(port());
  const std::string req = request_bytes("GET", "/nope");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 404);
  EXPECT_TRUE(r.response.header("Content-Length").has_value());
  const std::string next = request_bytes("GET", "/plaintext");
  const ReadResult r2 = client.request(next);
  ASSERT_RESPONSE(r2, next);
  EXPECT_EQ(r2.response.status, 200);
  EXPECT_GE(server().stats().responses_4xx, 1u);
}

// The Allow header of a response, or "<none>".
std::string allow_of(const ReadResult& r) { return r.response.header("Allow").value_or("<none>"); }

TEST_F(ServerHttpTest, MethodNotAllowedListsAllow) {
  start();
  // /users/:id has GET and PUT routes; HEAD rides on GET, and OPTIONS is
  // answered by the server. The list is sorted.
  const std::string req = request_bytes("DELETE", "/users/1");
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 405);
  EXPECT_EQ(allow_of(r), "GET, HEAD, OPTIONS, PUT");
  EXPECT_EQ(r.response.body, "Method Not Allowed");
  // POST-only: no HEAD.
  const std::string get_echo = request_bytes("GET", "/echo");
  const ReadResult r2 = exchange(get_echo);
  ASSERT_RESPONSE(r2, get_echo);
  EXPECT_EQ(r2.response.status, 405);
  EXPECT_EQ(allow_of(r2), "OPTIONS, POST");
}

TEST_F(ServerHttpTest, OptionsIsAnsweredWithAllowAndKeepsTheConnection) {
  start();
  TestClient client(port());
  struct Case {
    std::string target;
    int status;
    std::string allow;
  };
  const std::vector<Case> cases = {
      {"/users/9", 200, "GET, HEAD, OPTIONS, PUT"},
      {"/echo", 200, "OPTIONS, POST"},
      {"/cache/k", 200, "OPTIONS, PURGE"},
      // Every method some route takes.
      {"*", 200, "GET, HEAD, OPTIONS, POST, PURGE, PUT"},
      {"/nothing-here", 404, "<none>"},
  };
  for (const Case& c : cases) {
    const std::string req = request_bytes("OPTIONS", c.target);
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, c.status) << c.target;
    EXPECT_EQ(allow_of(r), c.allow) << c.target;
    if (c.status == 200) {
      EXPECT_EQ(r.response.header("Content-Length"), "0") << c.target;
    }
  }
}

TEST_F(ServerHttpTest, OptionsRoutesWinAndHandleOptionsCanBeOff) {
  ServerOptions options;
  options.handle_options = false;
  start_server(options, [](Server& s) {
    standard_routes(s);
    s.options("/plaintext", [](Request&, Response& res) { res.status(204).header("Allow", "GET"); });
  });
  const std::string own = request_bytes("OPTIONS", "/plaintext");
  const ReadResult r = exchange(own);
  ASSERT_RESPONSE(r, own);
  EXPECT_EQ(r.response.status, 204);
  EXPECT_EQ(allow_of(r), "GET");
  // Off: OPTIONS without a route is an ordinary 405, and Allow omits it.
  const std::string other = request_bytes("OPTIONS", "/users/1");
  const ReadResult r2 = exchange(other);
  ASSERT_RESPONSE(r2, other);
  EXPECT_EQ(r2.response.status, 405);
  EXPECT_EQ(allow_of(r2), "GET, HEAD, PUT");
  const std::string star = request_bytes("OPTIONS", "*");
  const ReadResult r3 = exchange(star);
  ASSERT_RESPONSE(r3, star);
  EXPECT_EQ(r3.response.status, 404);
}

TEST_F(ServerHttpTest, OtherHttpMajorVersionsAre505AndClose) {
  start();
  for (const std::string version : {"HTTP/2.0", "HTTP/3.0"}) {
    const std::string req = "GET /plaintext " + version + "\r\nHost: x\r\n\r\n";
    TestClient client(port());
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 505) << version;
    EXPECT_CLOSED(client.wait_for_close()) << version;
  }
}

TEST_F(ServerHttpTest, TrailingSlashRedirects) {
  start();
  struct Case {
    std::string method, target;
    int status;
    std::string location;
  };
  const std::vector<Case> cases = {
      {"GET", "/dir", 301, "/dir/"},
      {"POST", "/dir", 308, "/dir/"},
      {"GET", "/users/7/", 301, "/users/7"},
      {"GET", "/plaintext/", 301, "/plaintext"},
  };
  for (const Case& c : cases) {
    const std::string req = request_bytes(c.method, c.target, c.method == "POST" ? "Content-Length: 0\r\n" : "");
    const ReadResult r = exchange(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, c.status) << c.method << " " << c.target;
    EXPECT_EQ(r.response.header("Location"), c.location) << c.method << " " << c.target;
  }
}

TEST_F(ServerHttpTest, FixedPathRedirects) {
  start();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/static/path", "/Static/Path"},
      {"/STATIC/PATH", "/Static/Path"},
      {"//plaintext", "/plaintext"},
      {"/a/../plaintext", "/plaintext"},
      {"/./users/3", "/users/3"},
  };
  for (const auto& [target, location] : cases) {
    const std::string req = request_bytes("GET", target);
    const ReadResult r = exchange(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 301) << target;
    EXPECT_EQ(r.response.header("Location"), location) << target;
  }
}

TEST_F(ServerHttpTest, RedirectsCanBeTurnedOff) {
  ServerOptions options;
  options.redirect_trailing_slash = false;
  options.redirect_fixed_path = false;
  start(options);
  for (const char* target : {"/dir", "/users/7/", "/static/path", "//plaintext"}) {
    const std::string req = request_bytes("GET", target);
    const ReadResult r = exchange(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 404) << target;
    EXPECT_FALSE(r.response.header("Location").has_value()) << target;
  }
}

TEST_F(ServerHttpTest, PathParams) {
  start();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/users/42", "user 42"},
      {"/users/hello%20world", "user hello%20world"},
      {"/users/a.b-c?x=1", "user a.b-c"},
  };
  TestClient client(port());
  for (const auto& [target, body] : cases) {
    const std::string req = request_bytes("GET", target);
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 200) << target;
    EXPECT_EQ(r.response.body, body) << target;
  }
}

TEST_F(ServerHttpTest, QueryParams) {
  start();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/query?a=1&b=2", "a=[1]"},  {"/query?b=2&a=x%20y", "a=[x%20y]"},
      {"/query?a", "a=[]"},         {"/query?a=&a=2", "a=[]"},
      {"/query", "none"},           {"/query?aa=1&ba=2", "none"},
      {"/query?", "none"},
  };
  TestClient client(port());
  for (const auto& [target, body] : cases) {
    const std::string req = request_bytes("GET", target);
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.body, body) << target;
  }
}

TEST_F(ServerHttpTest, HeaderLookupIsCaseInsensitive) {
  start();
  TestClient client(port());
  for (const char* name : {"X-Test", "x-test", "X-TEST", "x-TeSt"}) {
    const std::string req =
        request_bytes("GET", "/header", std::string(name) + ":   value \t\r\n");
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 200) << name;
    EXPECT_EQ(r.response.body, "value") << name;
  }
}

TEST_F(ServerHttpTest, HeadersLargerThanOneReadBuffer) {
  ServerOptions options;
  options.read_buffer_size = 4096;
  start(options);
  const std::string big(10'000, 'b');
  const std::string req = request_bytes("GET", "/header-size", "X-Big: " + big + "\r\n");
  TestClient client(port());
  ASSERT_TRUE(client.send_in_pieces(req, 1500));
  const ReadResult r = client.read_response();
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "10000");
}

// Replacing the whole table frees the replaced one (its handlers and what they
// hold) before routes() returns, not at some later change: a gateway's reload
// swaps tables of 100,000 routes.
TEST_F(ServerHttpTest, ReplacedTableIsFreedWhenRoutesReturns) {
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> watch = token;
  ServerOptions options;
  options.threads = 2;
  start_server(options, [token](Server& s) {
    s.get("/plaintext", [token](Request&, Response& res) { res.text(std::to_string(*token)); });
  });
  token.reset();
  TestClient client(port());
  const std::string plain = request_bytes("GET", "/plaintext");
  ReadResult r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "1");

  Routes table;
  ASSERT_FALSE(table.add(Method::Get, "/plaintext", [](Request&, Response& res) { res.text("2"); }));
  server().routes(std::move(table));
  EXPECT_TRUE(watch.expired()) << "the replaced table still holds its handlers";
  EXPECT_EQ(server().stats().route_tables_retired, 0u);
  r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "2");
}

TEST_F(ServerHttpTest, RoutesSwappedWhileServing) {
  start_server({}, [](Server& s) {
    s.get("/plaintext", [](Request&, Response& res) { res.text("v1"); });
  });
  TestClient client(port());
  const std::string plain = request_bytes("GET", "/plaintext");
  ReadResult r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "v1");

  Routes table;
  ASSERT_FALSE(table.add(Method::Get, "/plaintext", [](Request&, Response& res) { res.text("v2"); }));
  ASSERT_FALSE(table.add(Method::Get, "/new/:x",
                         [](Request& req, Response& res) { res.format("new {}", req.param("x")); }));
  EXPECT_EQ(table.size(), 2u);
  server().routes(std::move(table));

  // The same connection sees the new table on its next request.
  r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "v2");
  const std::string fresh = request_bytes("GET", "/new/y");
  r = client.request(fresh);
  ASSERT_RESPONSE(r, fresh);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "new y");

  // get() after start() publishes a table with the route added.
  server().get("/later", [](Request&, Response& res) { res.text("later"); });
  const std::string later = request_bytes("GET", "/later");
  r = client.request(later);
  ASSERT_RESPONSE(r, later);
  EXPECT_EQ(r.response.body, "later");
}

// A table published with RouteRetention::kFrozenOnly (before start and while
// serving) routes like any other, takes no route added one by one (nothing
// of it is kept to add to), and a table published with kBuilder takes them
// again.
TEST_F(ServerHttpTest, FrozenOnlyTableServesAndRefusesAddedRoutes) {
  auto text_route = [](std::string_view body) {
    return [body = std::string(body)](Request&, Response& res) { res.text(body); };
  };
  Routes first;
  ASSERT_FALSE(first.add(Method::Get, "/plaintext", text_route("v1")));
  ASSERT_FALSE(first.add(Method::Get, "/users/:id",
                         [](Request& req, Response& res) { res.format("user {}", req.param("id")); }));
  start_server({}, [&](Server& s) { s.routes(std::move(first), RouteRetention::kFrozenOnly); });
  TestClient client(port());
  const std::string plain = request_bytes("GET", "/plaintext");
  const std::string user = request_bytes("GET", "/users/7");
  ReadResult r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "v1");
  r = client.request(user);
  ASSERT_RESPONSE(r, user);
  EXPECT_EQ(r.response.body, "user 7");

  const RouteError refused = server().add_route(Method::Get, "/later", text_route("later"));
  EXPECT_EQ(refused.code(), RouteErrc::kFrozen) << refused.message();
  const std::string later = request_bytes("GET", "/later");
  r = client.request(later);
  ASSERT_RESPONSE(r, later);
  EXPECT_EQ(r.response.status, 404);

  Routes second;
  ASSERT_FALSE(second.add(Method::Get, "/plaintext", text_route("v2")));
  server().routes(std::move(second), RouteRetention::kFrozenOnly);
  r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "v2");
  r = client.request(user);
  ASSERT_RESPONSE(r, user);
  EXPECT_EQ(r.response.status, 404);

  Routes third;
  ASSERT_FALSE(third.add(Method::Get, "/plaintext", text_route("v3")));
  server().routes(std::move(third));
  EXPECT_FALSE(server().add_route(Method::Get, "/later", text_route("later")));
  r = client.request(later);
  ASSERT_RESPONSE(r, later);
  EXPECT_EQ(r.response.body, "later");
  r = client.request(plain);
  ASSERT_RESPONSE(r, plain);
  EXPECT_EQ(r.response.body, "v3");
}

// ---- limits and malformed input -------------------------------------------------

TEST_F(ServerHttpTest, RequestLineTooLongIs414AndCloses) {
  ServerOptions options;
  options.max_request_line = 1024;
  start(options);
  TestClient client(port());
  const std::string req = request_bytes("GET", "/users/" + std::string(2000, 'a'));
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 414);
  EXPECT_CLOSED(client.wait_for_close());
  EXPECT_GE(server().stats().bad_requests, 1u);
}

TEST_F(ServerHttpTest, RequestLineJustUnderLimitIsServed) {
  ServerOptions options;
  options.max_request_line = 1024;
  start(options);
  // "GET /users/<id> HTTP/1.1" at 1000 bytes.
  const std::string id(1000 - std::string_view("GET /users/ HTTP/1.1").size(), 'i');
  const std::string req = request_bytes("GET", "/users/" + id);
  const ReadResult r = exchange(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "user " + id);
}

TEST_F(ServerHttpTest, TooManyHeadersIs431AndCloses) {
  ServerOptions options;
  options.max_header_count = 10;
  start(options);
  std::string headers;
  for (int i = 0; i < 20; ++i) headers += "X-H" + std::to_string(i) + ": v\r\n";
  TestClient client(port());
  const std::string req = request_bytes("GET", "/plaintext", headers);
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 431);
  EXPECT_CLOSED(client.wait_for_close());
}

TEST_F(ServerHttpTest, HeadersTooLargeIs431AndCloses) {
  ServerOptions options;
  options.max_header_bytes = 2048;
  start(options);
  TestClient client(port());
  const std::string req =
      request_bytes("GET", "/header-size", "X-Big: " + std::string(3000, 'b') + "\r\n");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 431);
  EXPECT_CLOSED(client.wait_for_close());
}

TEST_F(ServerHttpTest, BodyTooLargeIs413AndCloses) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  start(options);
  {
    // The head alone says too much is coming.
    TestClient client(port());
    const std::string head = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n";
    const ReadResult r = client.request(head);
    ASSERT_RESPONSE(r, head);
    EXPECT_EQ(r.response.status, 413);
    EXPECT_CLOSED(client.wait_for_close());
  }
  {
    // A chunked body grows past the limit.
    TestClient client(port());
    const std::string req =
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "400\r\n" + std::string(1024, 'x') + "\r\n10\r\n" + std::string(16, 'y') + "\r\n";
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 413);
    EXPECT_CLOSED(client.wait_for_close());
  }
  {
    // Exactly at the limit is fine.
    const std::string body(1024, 'z');
    const std::string req = request_bytes("POST", "/echo", "", body);
    const ReadResult r = exchange(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body.size(), 1024u);
  }
}

TEST_F(ServerHttpTest, MalformedRequestsAre400AndClose) {
  start();
  const std::vector<std::string> cases = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /plaintext HTTP/1.1\r\nNoColon\r\n\r\n",
      // RFC 9112 section 3.2: HTTP/1.1 needs exactly one Host.
      "GET /plaintext HTTP/1.1\r\n\r\n",
      "GET /plaintext HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
      "GET /plaintext\r\n\r\n",  // HTTP/0.9
  };
  for (const std::string& req : cases) {
    TestClient client(port());
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 400) << printable(req);
    EXPECT_CLOSED(client.wait_for_close()) << printable(req);
  }
  EXPECT_GE(server().stats().bad_requests, cases.size());
}

TEST_F(ServerHttpTest, ArbitraryBytesGetAResponseOrAClose) {
  start();
  const std::vector<std::string> cases = {
      std::string("\0\0\0\0", 4),
      "\r\n\r\n\r\n",
      std::string(5000, 'A'),
      "GET / HTTP/9.9\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\x02\x00",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS ClientHello
      "GET /\x01\x7f HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\n\n",
      "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
      "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
      "POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n",
      "GET http://example.com/plaintext HTTP/1.1\r\nHost: example.com\r\n\r\n",
      "GET * HTTP/1.1\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /plaintext HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      "GET /plaintext HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHo",
      "G",
      "GET /users/%zz HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
      "GET /plaintext HTTP/1.1\r\n: empty-name\r\n\r\n",
      "GET /users/" + std::string(20000, '/') + " HTTP/1.1\r\n\r\n",
  };
  for (const std::string& bytes : cases) {
    SCOPED_TRACE(printable(bytes, 120));
    TestClient client(port());
    ASSERT_TRUE(client.connected());
    (void)client.send(bytes);  // the server may reset before taking it all
    client.shutdown_write();
    std::string received;
    const Outcome outcome = client.wait_for_close(&received);
    EXPECT_CLOSED(outcome) << " received: " << printable(received);
    // Whatever came back is a sequence of well-formed responses.
    std::string_view rest = received;
    while (!rest.empty()) {
      HttpResponse response;
      std::size_t consumed = 0;
      std::string error;
      ASSERT_EQ(parse_response(rest, false, true, response, consumed, &error), ParseStatus::kDone)
          << error;
      rest.remove_prefix(consumed);
    }
  }
  // And the server still serves.
  const ReadResult r = exchange(request_bytes("GET", "/plaintext"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "Hello, World!");
}

// ---- handlers and middleware --------------------------------------------------

// Response splitting: a header name or value, or a Content-Type, holding CR,
// LF or NUL anywhere (inside the first eight bytes, past them, at the end) is
// dropped, never written; ordinary ones, tabs included, go out as given.
TEST_F(ServerHttpTest, HeadersWithLineBreaksAreDropped) {
  const std::vector<std::string> bad = {
      std::string("a\rb"), std::string("abcdefghij\nk"), std::string("abcdefgh\r"),
      std::string("abcdefghijklmnopqrstu\0v", 23), std::string("\n"),
      std::string("abcdefg\r\nX-Injected: 1")};
  start_server({}, [bad](Server& s) {
    s.get("/h", [bad](Request& req, Response& res) {
      for (std::size_t i = 0; i < bad.size(); ++i) {
        res.header("X-Bad-" + std::to_string(i), bad[i]);
        res.header(bad[i], "value");
      }
      res.header("X-Good", "a\tb c");
      res.content_type(req.query() == "badtype" ? bad.back() : "text/x-good");
      res.append("body");
    });
  });
  for (const std::string query : {"", "badtype"}) {
    const std::string req = request_bytes("GET", query.empty() ? "/h" : "/h?" + query);
    const ReadResult r = exchange(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, "body");
    EXPECT_EQ(r.response.header("X-Good"), "a\tb c");
    EXPECT_FALSE(r.response.header("X-Injected").has_value());
    for (std::size_t i = 0; i < bad.size(); ++i)
      EXPECT_FALSE(r.response.header("X-Bad-" + std::to_string(i)).has_value()) << i;
    if (query.empty()) {
      EXPECT_EQ(r.response.header("Content-Type"), "text/x-good");
    } else {
      EXPECT_FALSE(r.response.header("Content-Type").has_value());
    }
  }
}

TEST_F(ServerHttpTest, MiddlewareOrderShortCircuitAndAfter) {
  struct Trace {
    std::mutex mutex;
    std::vector<std::string> events;
    void add(std::string e) {
      std::lock_guard lock(mutex);
      events.push_back(std::move(e));
    }
    std::vector<std::string> take() {
      std::lock_guard lock(mutex);
      return std::exchange(events, {});
    }
  };
  auto trace = std::make_shared<Trace>();
  start_server({}, [trace](Server& s) {
    Middleware server_mw;
    server_mw.before = [trace](Request&, Response&) {
      trace->add("server.before");
      return true;
    };
    server_mw.after = [trace](const Request&, Response& res) {
      trace->add("server.after");
      res.header("X-Server-After", "1");
    };
    s.use(std::move(server_mw));

    Middleware route_mw;
    route_mw.before = [trace](Request& req, Response& res) {
      trace->add("route.before");
      if (req.header("X-Deny")) {
        res.status(403).text("denied");
        return false;
      }
      return true;
    };
    route_mw.after = [trace](const Request&, Response& res) {
      trace->add("route.after");
      res.header("X-Route-After", "1");
    };
    RouteOptions options;
    options.middleware.push_back(std::move(route_mw));
    s.get("/guarded", [trace](Request&, Response& res) {
      trace->add("handler");
      res.text("inside");
    }, std::move(options));
    s.get("/open", [trace](Request&, Response& res) {
      trace->add("handler");
      res.text("open");
    });
  });

  TestClient client(port());
  std::string req = request_bytes("GET", "/guarded");
  ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "inside");
  EXPECT_EQ(r.response.header("X-Server-After"), "1");
  EXPECT_EQ(r.response.header("X-Route-After"), "1");
  EXPECT_EQ(trace->take(), (std::vector<std::string>{"server.before", "route.before", "handler",
                                                     "route.after", "server.after"}));

  req = request_bytes("GET", "/guarded", "X-Deny: yes\r\n");
  r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 403);
  EXPECT_EQ(r.response.body, "denied");
  EXPECT_EQ(r.response.header("X-Server-After"), "1");
  EXPECT_EQ(trace->take(), (std::vector<std::string>{"server.before", "route.before",
                                                     "route.after", "server.after"}));

  req = request_bytes("GET", "/open");
  r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "open");
  EXPECT_EQ(r.response.header("X-Server-After"), "1");
  EXPECT_FALSE(r.response.header("X-Route-After").has_value());
  EXPECT_EQ(trace->take(), (std::vector<std::string>{"server.before", "handler", "server.after"}));
}

TEST_F(ServerHttpTest, ServerMiddlewareShortCircuitSkipsRouting) {
  start_server({}, [](Server& s) {
    Middleware auth;
    auth.before = [](Request& req, Response& res) {
      if (req.header("Authorization")) return true;
      res.status(401).text("who are you");
      return false;
    };
    s.use(std::move(auth));
    s.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  });
  TestClient client(port());
  std::string req = request_bytes("GET", "/plaintext");
  ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 401);
  EXPECT_EQ(r.response.body, "who are you");
  req = request_bytes("GET", "/plaintext", "Authorization: x\r\n");
  r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
}

TEST_F(ServerHttpTest, DeferredResponseCompletedFromAnotherThread) {
  auto handoff = std::make_shared<Handoff>();
  start_server({}, [handoff](Server& s) {
    Middleware mw;
    mw.after = [](const Request&, Response& res) { res.header("X-After", "yes"); };
    s.use(std::move(mw));
    s.get("/async/:id", [handoff](Request& req, Response& res) {
      handoff->push(Deferred{res.defer(), &res, std::string(req.param("id"))});
    });
  });
  TestClient client(port());
  for (int i = 0; i < 3; ++i) {
    const std::string req = request_bytes("GET", "/async/" + std::to_string(i));
    ASSERT_TRUE(client.send(req));
    std::optional<Deferred> pending = handoff->pop();
    ASSERT_TRUE(pending.has_value()) << "the handler did not run";
    EXPECT_TRUE(static_cast<bool>(pending->completion));
    std::thread completer([d = std::move(*pending)]() mutable {
      d.response->status(202).format("async {}", d.id);
      d.completion.done();
    });
    const ReadResult r = client.read_response();
    completer.join();
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 202);
    EXPECT_EQ(r.response.body, "async " + std::to_string(i));
    EXPECT_EQ(r.response.header("X-After"), "yes");
  }
}

// A deferred request used to stop its reactor from passing quiescent points,
// so every table replaced meanwhile stayed allocated until it finished.
TEST_F(ServerHttpTest, DeferredRequestDoesNotPinReplacedRouteTables) {
  auto handoff = std::make_shared<Handoff>();
  auto held = std::make_shared<std::atomic<const Request*>>(nullptr);
  ServerOptions options;
  options.threads = 1;
  start_server(options, [handoff, held](Server& s) {
    s.get("/hold/:name", [handoff, held](Request& req, Response& res) {
      held->store(&req);
      handoff->push(Deferred{res.defer(), &res, std::string(req.param("name"))});
    });
    s.get("/plaintext", [](Request&, Response& res) { res.text("ok"); });
  });
  TestClient holder(port());
  const std::string hold = request_bytes("GET", "/hold/abc");
  ASSERT_TRUE(holder.send(hold));
  std::optional<Deferred> pending = handoff->pop();
  ASSERT_TRUE(pending.has_value()) << "the handler did not run";

  constexpr int kChanges = 20;
  TestClient client(port());
  const std::string plain = request_bytes("GET", "/plaintext");
  for (int i = 0; i < kChanges; ++i) {
    server().get("/extra" + std::to_string(i), [](Request&, Response& res) { res.text("x"); });
    const ReadResult r = client.request(plain);  // the reactor runs an iteration
    ASSERT_RESPONSE(r, plain);
    EXPECT_EQ(r.response.body, "ok");
  }
  // Each replaced table is freed by a later change once the reactor passed a
  // quiescent point; only the last one or two can still be waiting.
  EXPECT_LE(server().stats().route_tables_retired, 3u);

  // The deferred request's parameters survive the tables they were matched in
  // (ASan would report a use after free here otherwise).
  const Request& req = *held->load();
  ASSERT_EQ(req.params().size(), 1u);
  EXPECT_EQ(req.params().name(0), "name");
  EXPECT_EQ(req.param("name"), "abc");
  pending->response->text(std::string(req.params().name(0)) + "=" + std::string(req.param("name")));
  pending->completion.done();
  const ReadResult r = holder.read_response();
  ASSERT_RESPONSE(r, hold);
  EXPECT_EQ(r.response.body, "name=abc");
}

TEST_F(ServerHttpTest, DeferredResponsesAnswerPipelineInOrder) {
  auto handoff = std::make_shared<Handoff>();
  start_server({}, [handoff](Server& s) {
    s.get("/async/:id", [handoff](Request& req, Response& res) {
      handoff->push(Deferred{res.defer(), &res, std::string(req.param("id"))});
    });
    s.get("/sync/:id", [](Request& req, Response& res) { res.format("sync {}", req.param("id")); });
  });
  TestClient client(port());
  const std::string pipeline = request_bytes("GET", "/async/1") + request_bytes("GET", "/sync/2");
  ASSERT_TRUE(client.send(pipeline));
  std::optional<Deferred> pending = handoff->pop();
  ASSERT_TRUE(pending.has_value());
  std::thread completer([d = std::move(*pending)]() mutable {
    d.response->format("async {}", d.id);
    d.completion.done();
  });
  const ReadResult first = client.read_response();
  completer.join();
  ASSERT_RESPONSE(first, pipeline);
  EXPECT_EQ(first.response.body, "async 1");
  const ReadResult second = client.read_response();
  ASSERT_RESPONSE(second, pipeline);
  EXPECT_EQ(second.response.body, "sync 2");
}

TEST_F(ServerHttpTest, DroppedCompletionAnswers500) {
  auto handoff = std::make_shared<Handoff>();
  start_server({}, [handoff](Server& s) {
    s.get("/async/:id", [handoff](Request& req, Response& res) {
      handoff->push(Deferred{res.defer(), &res, std::string(req.param("id"))});
    });
  });
  TestClient client(port());
  const std::string req = request_bytes("GET", "/async/1");
  ASSERT_TRUE(client.send(req));
  {
    std::optional<Deferred> pending = handoff->pop();
    ASSERT_TRUE(pending.has_value());
    std::thread dropper([d = std::move(*pending)]() mutable { Completion gone = std::move(d.completion); });
    dropper.join();
  }
  const ReadResult r = client.read_response();
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 500);
}

TEST_F(ServerHttpTest, BlockingHandlerRunsOnAWorker) {
  struct Threads {
    std::mutex mutex;
    std::thread::id reactor, worker;
  };
  auto ids = std::make_shared<Threads>();
  start_server({}, [ids](Server& s) {
    s.get("/inline", [ids](Request&, Response& res) {
      std::lock_guard lock(ids->mutex);
      ids->reactor = std::this_thread::get_id();
      res.text("inline");
    });
    RouteOptions blocking;
    blocking.blocking = true;
    s.get("/blocking/:n", [ids](Request& req, Response& res) {
      {
        std::lock_guard lock(ids->mutex);
        ids->worker = std::this_thread::get_id();
      }
      res.format("blocking {}", req.param("n"));
    }, std::move(blocking));
  });
  TestClient client(port());
  for (const std::string target : {"/inline", "/blocking/1", "/blocking/2", "/inline"}) {
    const std::string req = request_bytes("GET", target);
    const ReadResult r = client.request(req);
    ASSERT_RESPONSE(r, req);
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, target == "/inline" ? "inline" : "blocking " + target.substr(10));
  }
  std::lock_guard lock(ids->mutex);
  EXPECT_NE(ids->reactor, std::thread::id());
  EXPECT_NE(ids->worker, std::thread::id());
  EXPECT_NE(ids->reactor, ids->worker);
  EXPECT_NE(ids->worker, std::this_thread::get_id());
}

TEST_F(ServerHttpTest, FullWorkerQueueAnswers503WithRetryAfter) {
  auto gate = std::make_shared<Gate>();
  struct OpenAtExit {
    std::shared_ptr<Gate> gate;
    ~OpenAtExit() { gate->open(); }
  } open_at_exit{gate};
  ServerOptions options;
  options.worker_threads = 1;
  options.worker_queue_capacity = 1;
  options.retry_after_seconds = 7;
  start_server(options, [gate](Server& s) {
    RouteOptions blocking;
    blocking.blocking = true;
    s.get("/block", [gate](Request&, Response& res) {
      gate->enter_and_wait();
      res.text("done");
    }, std::move(blocking));
  });
  const std::string req = request_bytes("GET", "/block");
  // The one worker takes the first request and blocks in it.
  TestClient first(port());
  ASSERT_TRUE(first.send(req));
  ASSERT_TRUE(gate->wait_entered(1)) << "the blocking handler never ran";
  // The queue holds at most a few more; the rest are refused at once.
  constexpr int kMore = 8;
  std::vector<TestClient> clients;
  for (int i = 0; i < kMore; ++i) {
    clients.emplace_back(port());
    ASSERT_TRUE(clients.back().send(req));
  }
  // A 503 arrives while the worker is still blocked.
  int rejected = 0;
  std::vector<bool> answered(kMore, false);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (rejected == 0 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < kMore; ++i) {
      if (answered[static_cast<std::size_t>(i)] || !clients[static_cast<std::size_t>(i)].readable_within(10ms)) continue;
      const ReadResult r = clients[static_cast<std::size_t>(i)].read_response();
      ASSERT_RESPONSE(r, req);
      answered[static_cast<std::size_t>(i)] = true;
      EXPECT_EQ(r.response.status, 503) << "answered while the worker was blocked";
      EXPECT_EQ(r.response.header("Retry-After"), "7");
      ++rejected;
    }
  }
  ASSERT_GE(rejected, 1) << "no 503 while the worker queue was full";
  gate->open();
  ReadResult r = first.read_response();
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "done");
  int served = 1;
  for (int i = 0; i < kMore; ++i) {
    if (answered[static_cast<std::size_t>(i)]) continue;
    r = clients[static_cast<std::size_t>(i)].read_response();
    ASSERT_RESPONSE(r, req);
    if (r.response.status == 503) {
      EXPECT_EQ(r.response.header("Retry-After"), "7");
      ++rejected;
    } else {
      EXPECT_EQ(r.response.status, 200);
      EXPECT_EQ(r.response.body, "done");
      ++served;
    }
  }
  EXPECT_GE(served, 2) << "the queue admitted nothing";
  EXPECT_EQ(served + rejected, kMore + 1);
  const ServerStats stats = server().stats();
  EXPECT_EQ(stats.rejected_503, static_cast<std::uint64_t>(rejected));
  EXPECT_GE(stats.responses_5xx, static_cast<std::uint64_t>(rejected));
}

// ---- timeouts and per-connection limits -----------------------------------------

TEST_F(ServerHttpTest, SlowlorisClosedAfterHeaderTimeout) {
  ServerOptions options;
  options.header_timeout = 200ms;
  start(options);
  TestClient client(port());
  ASSERT_TRUE(client.send("GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
  std::string received;
  const Outcome outcome = client.wait_for_close(&received);
  EXPECT_CLOSED(outcome);
  if (!received.empty()) {
    const auto responses = parse_all_responses(received);
    ASSERT_EQ(responses.size(), 1u) << printable(received);
    EXPECT_EQ(responses[0].status, 408);
  }
  EXPECT_GE(server().stats().timeouts, 1u);
}

TEST_F(ServerHttpTest, SlowlorisTricklingBytesStillTimesOut) {
  ServerOptions options;
  options.header_timeout = 300ms;
  start(options);
  TestClient client(port());
  // Each byte arrives well within the timeout, but the head never completes:
  // the timeout runs from the first byte, not the last.
  const std::string head = "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(4000, 's');
  const auto start_time = std::chrono::steady_clock::now();
  Outcome outcome = Outcome::kTimeout;
  for (const char c : head) {
    if (!client.send(std::string_view(&c, 1))) break;
    // Wait (bounded) for the server to close before the next byte.
    if (client.readable_within(5ms)) break;
    if (std::chrono::steady_clock::now() - start_time > 5s) break;
  }
  outcome = client.wait_for_close();
  EXPECT_CLOSED(outcome);
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, 5s);
}

TEST_F(ServerHttpTest, SlowBodyClosedAfterBodyTimeout) {
  ServerOptions options;
  options.body_timeout = 200ms;
  start(options);
  TestClient client(port());
  ASSERT_TRUE(client.send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc"));
  std::string received;
  EXPECT_CLOSED(client.wait_for_close(&received));
  if (!received.empty()) {
    const auto responses = parse_all_responses(received);
    ASSERT_EQ(responses.size(), 1u) << printable(received);
    EXPECT_EQ(responses[0].status, 408);
  }
}

TEST_F(ServerHttpTest, IdleKeepAliveConnectionClosed) {
  ServerOptions options;
  options.idle_timeout = 200ms;
  start(options);
  TestClient client(port());
  const std::string req = request_bytes("GET", "/plaintext");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  const auto idle_since = std::chrono::steady_clock::now();
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
  const auto idle_for = std::chrono::steady_clock::now() - idle_since;
  EXPECT_GE(idle_for, 100ms) << "closed long before idle_timeout";
  EXPECT_LT(idle_for, 4s);
}

TEST_F(ServerHttpTest, SilentConnectionClosed) {
  ServerOptions options;
  options.idle_timeout = 200ms;
  options.header_timeout = 200ms;
  start(options);
  TestClient client(port());
  ASSERT_TRUE(client.connected());
  EXPECT_CLOSED(client.wait_for_close());
}

TEST_F(ServerHttpTest, ReaderThatNeverReadsIsAbandonedAfterWriteTimeout) {
  ServerOptions options;
  options.write_timeout = 200ms;
  constexpr std::size_t kBig = 32 * 1024 * 1024;
  start_server(options, [](Server& s) {
    s.get("/big", [](Request&, Response& res) { res.body(std::string(kBig, 'x'), "text/plain"); });
  });
  TestClient client(port());
  // 32 MiB is far more than the loopback socket buffers hold (a few MiB each
  // way), so the server's writes stall while the client reads nothing.
  ASSERT_TRUE(client.send(request_bytes("GET", "/big")));
  ASSERT_TRUE(wait_until([this] {
    const ServerStats stats = server().stats();
    return stats.connections_accepted == 1 && stats.connections_open == 0;
  }))
      << "the server never gave up writing to a client that does not read";
  std::string received;
  EXPECT_CLOSED(client.wait_for_close(&received));
  EXPECT_LT(received.size(), kBig) << "the whole response arrived: it was not abandoned";
  EXPECT_GE(server().stats().timeouts, 1u) << "a write timeout is not counted in stats().timeouts";
}

TEST_F(ServerHttpTest, MaxRequestsPerConnection) {
  ServerOptions options;
  options.max_requests_per_connection = 3;
  start(options);
  {
    TestClient client(port());
    for (int i = 0; i < 3; ++i) {
      const std::string req = request_bytes("GET", "/users/" + std::to_string(i));
      const ReadResult r = client.request(req);
      ASSERT_RESPONSE(r, req);
      EXPECT_EQ(r.response.body, "user " + std::to_string(i));
      if (i == 2) {
        EXPECT_EQ(r.response.header("Connection"), "close");
      }
    }
    EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
  }
  {
    // Pipelined past the limit: three answers, then the close.
    std::string pipeline;
    for (int i = 0; i < 5; ++i) pipeline += request_bytes("GET", "/users/" + std::to_string(i));
    TestClient client(port());
    ASSERT_TRUE(client.send(pipeline));
    for (int i = 0; i < 3; ++i) {
      const ReadResult r = client.read_response();
      ASSERT_RESPONSE(r, pipeline);
      EXPECT_EQ(r.response.body, "user " + std::to_string(i));
    }
    std::string extra;
    EXPECT_CLOSED(client.wait_for_close(&extra));
    EXPECT_EQ(extra, "") << "answered past max_requests_per_connection";
  }
}

TEST_F(ServerHttpTest, ConnectionsPastMaxConnectionsAreClosed) {
  ServerOptions options;
  options.threads = 1;
  options.max_connections = 2;
  start(options);
  TestClient a(port());
  TestClient b(port());
  const std::string req = request_bytes("GET", "/plaintext");
  const ReadResult ra = a.request(req);
  ASSERT_RESPONSE(ra, req);
  const ReadResult rb = b.request(req);
  ASSERT_RESPONSE(rb, req);
  // Both are open and served; a third is closed at once.
  TestClient c(port());
  ASSERT_TRUE(c.connected());
  (void)c.send(req);
  std::string received;
  EXPECT_CLOSED(c.wait_for_close(&received));
  EXPECT_TRUE(received.empty() || received.rfind("HTTP/1.1 503", 0) == 0) << printable(received);
  EXPECT_GE(server().stats().connections_rejected, 1u);
  // The admitted ones still work.
  const ReadResult again = a.request(req);
  ASSERT_RESPONSE(again, req);
  EXPECT_EQ(again.response.body, "Hello, World!");
}

// Reads from `fd` until `lines` newline-terminated lines arrived (bounded).
std::string read_lines(int fd, int lines, std::chrono::milliseconds bound = 5s) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::count(out.begin(), out.end(), '\n') < lines) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char chunk[4096];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    out.append(chunk, static_cast<std::size_t>(n));
  }
  return out;
}

TEST_F(ServerHttpTest, AccessLogCommonAndJson) {
  for (const AccessLogFormat format : {AccessLogFormat::kCommon, AccessLogFormat::kJson}) {
    SCOPED_TRACE(format == AccessLogFormat::kCommon ? "common" : "json");
    int log_pipe[2];
    ASSERT_EQ(::pipe2(log_pipe, O_CLOEXEC), 0);
    ServerOptions options;
    options.access_log = format;
    options.access_log_fd = log_pipe[1];
    start(options);
    TestClient client(port());
    const std::string pipeline = request_bytes("GET", "/users/31") + request_bytes("GET", "/nope");
    ASSERT_TRUE(client.send(pipeline));
    ASSERT_TRUE(client.read_response().ok());
    ASSERT_TRUE(client.read_response().ok());
    const std::string log = read_lines(log_pipe[0], 2);
    stop_server();  // before closing the pipe the server writes to
    ::close(log_pipe[0]);
    ::close(log_pipe[1]);
    const auto first_end = log.find('\n');
    ASSERT_NE(first_end, std::string::npos) << "no access log line: " << printable(log);
    const std::string first = log.substr(0, first_end);
    const std::string second = log.substr(first_end + 1);
    EXPECT_NE(first.find("/users/31"), std::string::npos) << first;
    EXPECT_NE(first.find("200"), std::string::npos) << first;
    EXPECT_NE(first.find("127.0.0.1"), std::string::npos) << first;
    EXPECT_NE(second.find("/nope"), std::string::npos) << second;
    EXPECT_NE(second.find("404"), std::string::npos) << second;
    if (format == AccessLogFormat::kCommon) {
      // host ident authuser [date] "request-line" status bytes
      const std::regex common(
          R"(^127\.0\.0\.1 \S+ \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET /users/31 HTTP/1\.1" 200 7$)");
      EXPECT_TRUE(std::regex_match(first, common)) << first;
    } else {
      EXPECT_EQ(first.front(), '{') << first;
      EXPECT_EQ(first.back(), '}') << first;
    }
  }
}

// ---- shutdown -----------------------------------------------------------------

TEST_F(ServerHttpTest, GracefulStopFinishesDeferredRequest) {
  auto handoff = std::make_shared<Handoff>();
  start_server({}, [handoff](Server& s) {
    s.get("/async/:id", [handoff](Request& req, Response& res) {
      handoff->push(Deferred{res.defer(), &res, std::string(req.param("id"))});
    });
    s.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  });
  TestClient idle(port());
  const std::string plain = request_bytes("GET", "/plaintext");
  const ReadResult first = idle.request(plain);
  ASSERT_RESPONSE(first, plain);

  TestClient busy(port());
  const std::string req = request_bytes("GET", "/async/9");
  ASSERT_TRUE(busy.send(req));
  std::optional<Deferred> pending = handoff->pop();
  ASSERT_TRUE(pending.has_value());

  server().stop();
  // Idle connections are closed at once...
  EXPECT_CLOSED(idle.wait_for_close());
  // ...the in-flight one gets its response, then the close.
  std::thread completer([d = std::move(*pending)]() mutable {
    d.response->format("finished {}", d.id);
    d.completion.done();
  });
  const ReadResult r = busy.read_response();
  completer.join();
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "finished 9");
  EXPECT_CLOSED(busy.wait_for_close());
  server().wait();
  EXPECT_FALSE(server().running());
  // Nothing listens any more.
  TestClient late(port());
  EXPECT_FALSE(late.connected() && late.request(plain).ok());
}

TEST_F(ServerHttpTest, GracefulStopFinishesBlockingRequests) {
  auto gate = std::make_shared<Gate>();
  struct OpenAtExit {
    std::shared_ptr<Gate> gate;
    ~OpenAtExit() { gate->open(); }
  } open_at_exit{gate};
  ServerOptions options;
  options.worker_threads = 1;
  options.shutdown_timeout = 4s;
  start_server(options, [gate](Server& s) {
    RouteOptions blocking;
    blocking.blocking = true;
    s.get("/block/:n", [gate](Request& req, Response& res) {
      gate->enter_and_wait();
      res.format("done {}", req.param("n"));
    }, std::move(blocking));
  });
  // One request runs on the worker (blocked), one waits in the queue.
  TestClient running(port());
  ASSERT_TRUE(running.send(request_bytes("GET", "/block/1")));
  ASSERT_TRUE(gate->wait_entered(1));
  TestClient queued(port());
  ASSERT_TRUE(queued.send(request_bytes("GET", "/block/2")));
  ASSERT_TRUE(wait_until([this] { return server().stats().requests == 2; }));
  const auto stop_at = std::chrono::steady_clock::now();
  server().stop();
  gate->open();
  for (auto* client : {&running, &queued}) {
    const ReadResult r = client->read_response();
    ASSERT_TRUE(r.ok()) << "an in-flight blocking request was dropped by stop(): "
                        << to_string(r.outcome) << " " << r.error;
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, client == &running ? "done 1" : "done 2");
    EXPECT_CLOSED(client->wait_for_close());
  }
  server().wait();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, 3s)
      << "stop() waited for shutdown_timeout although nothing was left in flight";
}

TEST_F(ServerHttpTest, StopIsPromptAfterClientLeftDuringBlockingRequest) {
  auto gate = std::make_shared<Gate>();
  struct OpenAtExit {
    std::shared_ptr<Gate> gate;
    ~OpenAtExit() { gate->open(); }
  } open_at_exit{gate};
  ServerOptions options;
  options.worker_threads = 1;
  options.shutdown_timeout = 4s;
  start_server(options, [gate](Server& s) {
    RouteOptions blocking;
    blocking.blocking = true;
    s.get("/block", [gate](Request&, Response& res) {
      gate->enter_and_wait();
      res.text("done");
    }, std::move(blocking));
    s.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  });
  {
    TestClient leaver(port());
    ASSERT_TRUE(leaver.send(request_bytes("GET", "/block")));
    ASSERT_TRUE(gate->wait_entered(1));
  }  // the client hangs up while its request runs on the worker
  gate->open();
  // The worker's result comes back for a connection whose peer is gone; the
  // server notices when it writes, and closes it.
  ASSERT_TRUE(wait_until([this] { return server().stats().connections_open == 0; }));
  const ReadResult r = exchange(request_bytes("GET", "/plaintext"));
  ASSERT_TRUE(r.ok()) << r.error;
  const auto stop_at = std::chrono::steady_clock::now();
  server().stop();
  server().wait();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, 2s)
      << "stop() waited for shutdown_timeout: an abandoned blocking request is still counted";
}

TEST_F(ServerHttpTest, StopClosesConnectionIdleAfterBlockingRequest) {
  ServerOptions options;
  options.shutdown_timeout = 4s;
  start_server(options, [](Server& s) {
    RouteOptions blocking;
    blocking.blocking = true;
    s.get("/work", [](Request&, Response& res) { res.text("worked"); }, std::move(blocking));
  });
  TestClient client(port());
  const std::string req = request_bytes("GET", "/work");
  const ReadResult r = client.request(req);
  ASSERT_RESPONSE(r, req);
  EXPECT_EQ(r.response.body, "worked");
  const auto stop_at = std::chrono::steady_clock::now();
  server().stop();
  EXPECT_CLOSED(client.wait_for_close());
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, 2s)
      << "an idle connection whose last request ran on a worker was only closed at shutdown_timeout";
  server().wait();
}

TEST_F(ServerHttpTest, StopWithoutTrafficAndRestartableFixture) {
  start();
  EXPECT_TRUE(server().running());
  server().stop();
  server().wait();
  EXPECT_FALSE(server().running());
  // A second stop()/wait() is harmless (the destructor does it again too).
  server().stop();
  server().wait();
}

TEST_F(ServerHttpTest, StartErrorsAreReported) {
  start();
  // The port is taken by a plain listener (without SO_REUSEPORT, so no
  // second socket may bind it).
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length), 0);
  struct CloseAtExit {
    int fd;
    ~CloseAtExit() { ::close(fd); }
  } close_at_exit{taken};
  ServerOptions options;
  options.port = ntohs(address.sin_port);
  options.handle_signals = false;
  Server second(options);
  second.get("/", [](Request&, Response&) {});
  const std::error_code error = second.start();
  EXPECT_TRUE(static_cast<bool>(error)) << "bound a port already in use";
  EXPECT_FALSE(second.setup_error().empty());
  // A bad route is reported by start().
  ServerOptions options2;
  options2.port = 0;
  options2.handle_signals = false;
  Server third(options2);
  third.get("/a/:x/:x", [](Request&, Response&) {});
  EXPECT_TRUE(static_cast<bool>(third.start()));
  EXPECT_NE(third.setup_error().find("/a/:x/:x"), std::string::npos) << third.setup_error();
}

// ---- curl ---------------------------------------------------------------------

TEST_F(ServerHttpTest, CurlGetPostHead) {
  start();
  int code = 0;
  std::string out = run_curl(url(port(), "/users/42"), &code);
  ASSERT_EQ(code, 0) << out;
  auto responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 1u) << out;
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].body, "user 42");

  out = run_curl("--data-binary 'posted by curl' " + url(port(), "/echo"), &code);
  ASSERT_EQ(code, 0) << out;
  responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 1u) << out;
  EXPECT_EQ(responses[0].body, "posted by curl");

  out = run_curl("-I " + url(port(), "/plaintext"), &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(out.find("Content-Length: 13"), std::string::npos) << out;
  EXPECT_EQ(out.find("Hello"), std::string::npos) << out;
}

TEST_F(ServerHttpTest, CurlChunkedUploadAndExpectContinue) {
  start();
  int code = 0;
  std::string out = run_curl(
      "-H 'Transfer-Encoding: chunked' --data-binary 'chunked by curl' " + url(port(), "/echo"),
      &code);
  ASSERT_EQ(code, 0) << out;
  auto responses = parse_all_responses(out);
  ASSERT_FALSE(responses.empty()) << out;
  EXPECT_EQ(responses.back().status, 200) << out;
  EXPECT_EQ(responses.back().body, "chunked by curl") << out;

  out = run_curl("--expect100-timeout 4 -H 'Expect: 100-continue' --data-binary 'after continue' " +
                     url(port(), "/echo"),
                 &code);
  ASSERT_EQ(code, 0) << out;
  responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 2u) << out;
  EXPECT_EQ(responses[0].status, 100) << out;
  EXPECT_EQ(responses[1].status, 200) << out;
  EXPECT_EQ(responses[1].body, "after continue") << out;
}

TEST_F(ServerHttpTest, CurlHttp10AndKeepAliveReuse) {
  start();
  int code = 0;
  std::string out = run_curl("-0 " + url(port(), "/info"), &code);
  ASSERT_EQ(code, 0) << out;
  auto responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 1u) << out;
  EXPECT_EQ(responses[0].body, "GET /info  0 close") << out;

  const std::uint64_t before = server().stats().connections_accepted;
  out = run_curl(url(port(), "/users/1") + " " + url(port(), "/users/2") + " " +
                     url(port(), "/users/3"),
                 &code);
  ASSERT_EQ(code, 0) << out;
  responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 3u) << out;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(responses[static_cast<std::size_t>(i)].body, "user " + std::to_string(i + 1));
  EXPECT_EQ(server().stats().connections_accepted - before, 1u) << "curl did not reuse the connection";
}

TEST_F(ServerHttpTest, CurlFollowsRedirectsAndSees404And405) {
  start();
  int code = 0;
  std::string out = run_curl("-L " + url(port(), "/dir"), &code);
  ASSERT_EQ(code, 0) << out;
  auto responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 2u) << out;
  EXPECT_EQ(responses[0].status, 301);
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(responses[1].body, "dir");

  out = run_curl(url(port(), "/nothing"), &code);
  responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 1u) << out;
  EXPECT_EQ(responses[0].status, 404);

  out = run_curl("-X DELETE " + url(port(), "/users/1"), &code);
  responses = parse_all_responses(out);
  ASSERT_EQ(responses.size(), 1u) << out;
  EXPECT_EQ(responses[0].status, 405);
  EXPECT_TRUE(responses[0].header("Allow").has_value()) << out;
}

}  // namespace
}  // namespace portico::testing
