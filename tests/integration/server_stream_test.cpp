// Chunked responses: Response::chunked(), streaming with Completion::write()
// and Response::body_source(), over raw sockets and curl.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "portico/metrics.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

class ServerStreamTest : public ServerFixture {
 protected:
  void start() {
    start_server({}, [](Server& s) {
      s.get("/chunked", [](Request&, Response& res) { res.chunked().text("all in one chunk"); });
      s.get("/stream", [](Request&, Response& res) {
        std::thread([&res, done = res.defer()]() mutable {
          res.content_type("text/plain");
          done.write("first,");
          done.write("");  // an empty write sends nothing (it would end the body)
          done.write("second,");
          res.append("last");  // the rest of the body goes with done()
          done.done();
        }).detach();
      });
    });
  }
};

TEST_F(ServerStreamTest, ChunkedBodyIsFramedAsChunks) {
  start();
  TestClient client(port());
  const std::string req = request_bytes("GET", "/chunked");
  ASSERT_TRUE(client.send(req));
  const ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << to_string(r.outcome);
  EXPECT_EQ(r.response.header("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(r.response.header("Content-Length").has_value());
  EXPECT_EQ(r.response.body, "all in one chunk");
  EXPECT_NE(r.response.raw.find("\r\n\r\n10\r\nall in one chunk\r\n0\r\n\r\n"), std::string::npos)
      << r.response.raw;
  // The connection stays usable.
  const ReadResult again = client.request(req);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.response.body, "all in one chunk");
}

TEST_F(ServerStreamTest, StreamedChunksFromAnotherThreadArriveInOrder) {
  start();
  TestClient client(port());
  const std::string req = request_bytes("GET", "/stream");
  for (int round = 0; round < 3; ++round) {
    const ReadResult r = client.request(req);
    ASSERT_TRUE(r.ok()) << to_string(r.outcome);
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.header("Transfer-Encoding"), "chunked");
    EXPECT_EQ(r.response.header("Content-Type"), "text/plain");
    EXPECT_EQ(r.response.body, "first,second,last");
    EXPECT_NE(r.response.raw.find("6\r\nfirst,\r\n7\r\nsecond,\r\n4\r\nlast\r\n0\r\n\r\n"),
              std::string::npos)
        << r.response.raw;
  }
}

TEST_F(ServerStreamTest, CurlDecodesAStreamedBody) {
  start();
  int code = -1;
  const std::string out = run_curl("--raw " + url(port(), "/stream"), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("Transfer-Encoding: chunked"), std::string::npos) << out;
  const std::string decoded = run_curl(url(port(), "/stream"), &code);
  ASSERT_EQ(code, 0) << decoded;
  EXPECT_EQ(decoded.substr(decoded.find("\r\n\r\n") + 4), "first,second,last");
}

TEST_F(ServerStreamTest, Http10ClientGetsACloseDelimitedBody) {
  start();
  TestClient client(port());
  ASSERT_TRUE(client.send("GET /stream HTTP/1.0\r\n\r\n"));
  std::string received;
  EXPECT_EQ(client.wait_for_close(&received), Outcome::kClosed);
  EXPECT_EQ(received.find("Transfer-Encoding"), std::string::npos) << received;
  EXPECT_NE(received.find("Connection: close"), std::string::npos) << received;
  ASSERT_GE(received.size(), 17u);
  EXPECT_EQ(received.substr(received.size() - 17), "first,second,last") << received;
}

TEST_F(ServerStreamTest, AStreamed304SendsNoBodyBytes) {
  start_server({}, [](Server& s) {
    s.get("/cached", [](Request&, Response& res) {
      res.status(304);
      std::thread([done = res.defer()]() mutable {
        done.write("not for a 304");
        done.done();
      }).detach();
    });
  });
  TestClient client(port());
  for (int round = 0; round < 2; ++round) {
    const ReadResult r = client.request(request_bytes("GET", "/cached"));
    ASSERT_TRUE(r.ok()) << to_string(r.outcome);
    EXPECT_EQ(r.response.status, 304);
    EXPECT_TRUE(r.response.body.empty());
    EXPECT_TRUE(client.pending().empty()) << "bytes after a 304: " << printable(client.pending());
  }
}

TEST_F(ServerStreamTest, HeadOfAChunkedRouteHasNoBody) {
  start();
  TestClient client(port());
  const ReadResult r = client.request("HEAD /chunked HTTP/1.1\r\nHost: x\r\n\r\n", true);
  ASSERT_TRUE(r.ok()) << to_string(r.outcome);
  EXPECT_EQ(r.response.header("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(r.response.body.empty());
  // Nothing else was sent: the next response parses cleanly.
  const ReadResult next = client.request(request_bytes("GET", "/chunked"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next.response.body, "all in one chunk");
}

// ---- Response::body_source(): a body made a piece at a time -----------------

// The byte at `offset` of a made-up body: where a piece lands matters.
char byte_at(std::uint64_t offset) {
  return static_cast<char>('a' + (offset / 5 + offset / 4099) % 26);
}

// A source of `pieces` pieces of `piece_size` bytes (byte_at), counting its
// calls and bytes in `made` and its destruction in `destroyed`.
Response::BodySource counted_source(std::size_t piece_size, std::size_t pieces,
                                    std::atomic<std::uint64_t>& made,
                                    std::atomic<int>& destroyed) {
  struct Guard {
    std::atomic<int>* destroyed;
    explicit Guard(std::atomic<int>& d) : destroyed(&d) {}
    Guard(Guard&& other) noexcept : destroyed(std::exchange(other.destroyed, nullptr)) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (destroyed != nullptr) destroyed->fetch_add(1);
    }
  };
  return [piece_size, pieces, &made, sent = std::size_t{0},
          guard = std::make_shared<Guard>(destroyed)](std::string& out) mutable {
    const std::uint64_t from = made.load();
    for (std::size_t i = 0; i < piece_size; ++i) out.push_back(byte_at(from + i));
    made.store(from + piece_size);
    return ++sent < pieces;
  };
}

std::string expected_body(std::size_t size) {
  std::string body(size, '\0');
  for (std::size_t i = 0; i < size; ++i) body[i] = byte_at(i);
  return body;
}

class BodySourceTest : public ServerFixture {
 protected:
  std::atomic<std::uint64_t> made{0};
  std::atomic<int> destroyed{0};
};

TEST_F(BodySourceTest, PiecesAreMadeOnlyAsTheClientTakesThem) {
  constexpr std::size_t kPiece = 64 * 1024;
  constexpr std::size_t kPieces = 768;  // 48 MiB
  start_server({}, [this](Server& s) {
    s.get("/export", [this](Request&, Response& res) {
      res.body_source(counted_source(kPiece, kPieces, made, destroyed), "application/octet-stream");
    });
    s.get("/after", [](Request&, Response& res) { res.text("after"); });
  });
  TestClient client(port(), 10s);
  // A small receive window: what the server may have made ahead is its own
  // send buffer and this, far below the body.
  const int window = 256 * 1024;
  ASSERT_EQ(::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &window, sizeof window), 0);
  ASSERT_TRUE(client.send(request_bytes("GET", "/export") + request_bytes("GET", "/after")));
  // Nothing is read yet: the source stops once the socket is full.
  EXPECT_FALSE(wait_until([this] { return made.load() >= 16u * 1024 * 1024; }, 1s))
      << "the source made " << made.load() << " bytes for a client that reads nothing";
  const std::uint64_t ahead = made.load();
  EXPECT_GT(ahead, 0u);
  // Then everything arrives, in place, and the request behind it too.
  std::string raw;
  std::vector<char> buffer(1 << 20);
  while (!(raw.size() > 5 && raw.compare(raw.size() - 5, 5, "after") == 0)) {
    const ssize_t n = ::recv(client.fd(), buffer.data(), buffer.size(), 0);
    ASSERT_GT(n, 0) << "after " << raw.size() << " bytes: " << std::strerror(errno);
    raw.append(buffer.data(), static_cast<std::size_t>(n));
  }
  const std::vector<HttpResponse> responses = parse_all_responses(raw);
  ASSERT_EQ(responses.size(), 2u) << printable(raw.substr(0, 300));
  EXPECT_TRUE(responses[0].chunked);
  EXPECT_EQ(responses[0].header("Content-Type"), "application/octet-stream");
  ASSERT_EQ(responses[0].body.size(), kPiece * kPieces);
  EXPECT_TRUE(responses[0].body == expected_body(kPiece * kPieces)) << "bytes out of place";
  EXPECT_EQ(responses[1].body, "after");
  EXPECT_TRUE(wait_until([this] { return destroyed.load() == 1; })) << "the source was not freed";
  // The metrics count the whole body, not its last piece.
  const MetricsSnapshot metrics = server().metrics_snapshot();
  std::uint64_t bytes_out = 0;
  for (const RequestSeries& series : metrics.requests)
    if (series.route == "/export") bytes_out += series.bytes_out;
  EXPECT_EQ(bytes_out, kPiece * kPieces);
}

TEST_F(BodySourceTest, SmallPiecesAreGatheredIntoBiggerChunks) {
  start_server({}, [](Server& s) {
    s.get("/rows", [](Request&, Response& res) {
      res.body_source([row = 0](std::string& out) mutable {
        out += "row " + std::to_string(row) + "\n";
        return ++row < 100'000;
      });
    });
  });
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/rows"));
  ASSERT_TRUE(r.ok()) << to_string(r.outcome);
  std::string expected;
  for (int row = 0; row < 100'000; ++row) expected += "row " + std::to_string(row) + "\n";
  EXPECT_TRUE(r.response.body == expected) << r.response.body.size() << " bytes";
  // 1.1 MB in chunks of 16 KiB or more, not 100,000 chunks of 10 bytes.
  const std::size_t framing = r.response.raw.size() - r.response.body.size();
  EXPECT_LT(framing, 2000u) << "chunk framing of " << framing << " bytes";
}

TEST_F(BodySourceTest, OnePieceGoesWithContentLength) {
  start_server({}, [](Server& s) {
    s.get("/one", [](Request&, Response& res) {
      res.body_source([](std::string& out) {
        out += "the whole body";
        return false;
      });
    });
  });
  TestClient client(port());
  for (int round = 0; round < 2; ++round) {
    const ReadResult r = client.request(request_bytes("GET", "/one"));
    ASSERT_TRUE(r.ok()) << to_string(r.outcome);
    EXPECT_FALSE(r.response.chunked);
    EXPECT_EQ(r.response.header("Content-Length"), "14");
    EXPECT_EQ(r.response.body, "the whole body");
  }
}

TEST_F(BodySourceTest, AThrowBeforeTheFirstPieceIs500AfterItCutsTheBody) {
  start_server({}, [](Server& s) {
    s.get("/early", [](Request&, Response& res) {
      res.body_source([](std::string&) -> bool { throw std::runtime_error("no"); });
    });
    s.get("/late", [](Request&, Response& res) {
      res.body_source([calls = 0](std::string& out) mutable {
        if (++calls == 3) throw std::runtime_error("no");
        out.append(20 * 1024, 'x');  // over 16 KiB: a write of its own
        return true;
      });
    });
  });
  {
    TestClient client(port());
    const ReadResult r = client.request(request_bytes("GET", "/early"));
    ASSERT_TRUE(r.ok()) << to_string(r.outcome);
    EXPECT_EQ(r.response.status, 500);
    const ReadResult again = client.request(request_bytes("GET", "/early"));
    ASSERT_TRUE(again.ok()) << "the connection did not stay usable";
  }
  TestClient client(port());
  ASSERT_TRUE(client.send(request_bytes("GET", "/late")));
  std::string received;
  const Outcome outcome = client.wait_for_close(&received);
  EXPECT_TRUE(outcome == Outcome::kClosed || outcome == Outcome::kReset) << to_string(outcome);
  EXPECT_NE(received.find("HTTP/1.1 200"), std::string::npos) << printable(received);
  EXPECT_EQ(received.find("\r\n0\r\n\r\n"), std::string::npos)
      << "a cut body ended like a whole one: " << printable(received);
  EXPECT_EQ(received.size() - received.find("\r\n\r\n") - 4, 2 * (6 + 20 * 1024 + 2))
      << "two chunks of 20 KiB (\"5000\", CRLFs) were sent before the throw";
}

TEST_F(BodySourceTest, HeadGetsTheHeadWithoutCallingTheSource) {
  start_server({}, [this](Server& s) {
    s.get("/export", [this](Request&, Response& res) {
      res.body_source(counted_source(100, 3, made, destroyed), "text/plain");
    });
  });
  TestClient client(port());
  const ReadResult r = client.request("HEAD /export HTTP/1.1\r\nHost: x\r\n\r\n", true);
  ASSERT_TRUE(r.ok()) << to_string(r.outcome);
  EXPECT_EQ(r.response.header("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(r.response.body.empty());
  EXPECT_EQ(made.load(), 0u);
  const ReadResult next = client.request(request_bytes("GET", "/export"));
  ASSERT_TRUE(next.ok()) << to_string(next.outcome);
  EXPECT_EQ(next.response.body, expected_body(300));
}

TEST_F(BodySourceTest, AStatusWithoutABodyNeverCallsTheSource) {
  start_server({}, [this](Server& s) {
    s.get("/gone", [this](Request&, Response& res) {
      res.status(204).body_source(counted_source(100, 3, made, destroyed));
    });
  });
  TestClient client(port());
  for (int round = 0; round < 2; ++round) {
    const ReadResult r = client.request(request_bytes("GET", "/gone"));
    ASSERT_TRUE(r.ok()) << to_string(r.outcome);
    EXPECT_EQ(r.response.status, 204);
    EXPECT_TRUE(r.response.body.empty());
  }
  EXPECT_EQ(made.load(), 0u);
  EXPECT_TRUE(client.pending().empty()) << printable(client.pending());
}

TEST_F(BodySourceTest, Http10ClientGetsTheBodyCloseDelimited) {
  start_server({}, [this](Server& s) {
    s.get("/export", [this](Request&, Response& res) {
      res.body_source(counted_source(100 * 1024, 40, made, destroyed), "text/plain");
    });
  });
  TestClient client(port());
  ASSERT_TRUE(client.send("GET /export HTTP/1.0\r\n\r\n"));
  std::string received;
  EXPECT_EQ(client.wait_for_close(&received), Outcome::kClosed);
  const std::size_t head_end = received.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << printable(received);
  EXPECT_EQ(received.find("Transfer-Encoding"), std::string::npos);
  EXPECT_TRUE(received.substr(head_end + 4) == expected_body(4000 * 1024))
      << (received.size() - head_end - 4) << " body bytes";
}

TEST_F(BodySourceTest, AClientGoneMidBodyFreesTheSource) {
  start_server({}, [this](Server& s) {
    s.get("/export", [this](Request&, Response& res) {
      res.body_source(counted_source(64 * 1024, 1 << 20, made, destroyed));  // 64 GiB
    });
  });
  {
    TestClient client(port());
    ASSERT_TRUE(client.send(request_bytes("GET", "/export")));
    ASSERT_TRUE(wait_until([this] { return made.load() > 0; }));
  }
  EXPECT_TRUE(wait_until([this] {
    return destroyed.load() == 1 && server().stats().connections_open == 0;
  })) << "made " << made.load() << ", source destroyed " << destroyed.load();
}

TEST_F(BodySourceTest, DeferredAndBlockingHandlersCanUseASource) {
  start_server({}, [this](Server& s) {
    s.get("/deferred", [this](Request&, Response& res) {
      std::thread([&res, this, done = res.defer()]() mutable {
        res.body_source(counted_source(300 * 1024, 10, made, destroyed));
        done.done();
      }).detach();
    });
    s.get(
        "/blocking",
        [](Request&, Response& res) {
          res.body_source([sent = std::size_t{0}](std::string& out) mutable {
            out.append(200 * 1024, static_cast<char>('0' + sent));
            return ++sent < 10;
          });
        },
        RouteOptions{.blocking = true});
  });
  TestClient client(port());
  const ReadResult a = client.request(request_bytes("GET", "/deferred"));
  ASSERT_TRUE(a.ok()) << to_string(a.outcome);
  EXPECT_TRUE(a.response.body == expected_body(3000 * 1024));
  const ReadResult b = client.request(request_bytes("GET", "/blocking"));
  ASSERT_TRUE(b.ok()) << to_string(b.outcome);
  ASSERT_EQ(b.response.body.size(), 2000u * 1024);
  for (std::size_t i = 0; i < 10; ++i)
    ASSERT_EQ(b.response.body[i * 200 * 1024], static_cast<char>('0' + i)) << "piece " << i;
}

TEST_F(BodySourceTest, CurlDecodesASourcedBody) {
  start_server({}, [this](Server& s) {
    s.get("/export", [this](Request&, Response& res) {
      res.body_source(counted_source(64 * 1024, 64, made, destroyed), "text/plain");
    });
  });
  int code = -1;
  const std::string out = run_curl(url(port(), "/export"), &code);
  ASSERT_EQ(code, 0) << out.substr(0, 300);
  const std::size_t head_end = out.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_TRUE(out.substr(head_end + 4) == expected_body(64 * 64 * 1024))
      << (out.size() - head_end - 4) << " body bytes";
}

}  // namespace
}  // namespace portico::testing
