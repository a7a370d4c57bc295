// Chunked responses: Response::chunked() and streaming with
// Completion::write(), over raw sockets and curl.
#include <gtest/gtest.h>

#include <string>
#include <thread>

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

}  // namespace
}  // namespace portico::testing
