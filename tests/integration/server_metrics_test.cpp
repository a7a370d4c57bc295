// tests/integration/server_metrics_test.cpp — the server's request metrics
// (portico/metrics.hpp): series by route pattern, method, status class and
// error label, counted per reactor and merged when scraped; the Prometheus
// text format, checked by promtool where it is installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "metrics_checks.hpp"
#include "portico/metrics.hpp"
#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

void metric_routes(Server& server) {
  server.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  server.get("/users/:id",
             [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
  server.post("/upload", [](Request& req, Response& res) { res.format("{}", req.body().size()); });
  server.get("/boom", [](Request&, Response&) { throw std::runtime_error("boom"); });
}

class ServerMetricsTest : public ServerFixture {};

TEST_F(ServerMetricsTest, CountersMoveByExactlyTheRequestsSent) {
  ServerOptions options;
  options.threads = 2;  // series on both reactors, merged
  start_server(std::move(options), metric_routes);
  // Two connections: with SO_REUSEPORT they may land on either reactor.
  TestClient first(port());
  TestClient second(port());
  ASSERT_TRUE(first.connected() && second.connected());
  constexpr int kPlain = 37;
  for (int i = 0; i < kPlain; ++i) {
    TestClient& client = i % 2 == 0 ? first : second;
    const ReadResult r = client.request(request_bytes("GET", "/plaintext"));
    ASSERT_TRUE(r.ok() && r.response.status == 200) << r.error;
  }
  // 1,000 distinct paths of one pattern: one series.
  std::uint64_t user_bytes = 0;
  for (int i = 0; i < 1000; ++i) {
    TestClient& client = i % 2 == 0 ? first : second;
    const ReadResult r = client.request(request_bytes("GET", "/users/" + std::to_string(i)));
    ASSERT_TRUE(r.ok() && r.response.status == 200) << r.error;
    user_bytes += r.response.body.size();
  }
  const ReadResult upload = first.request(request_bytes("POST", "/upload", "", "0123456789"));
  ASSERT_TRUE(upload.ok() && upload.response.status == 200) << upload.error;

  // Each count is stored on the reactor before its response is written.
  const MetricsSnapshot snapshot = server().metrics_snapshot();
  const RequestSeries* plain = find_series(snapshot, "/plaintext", "GET", 2, ErrorLabel::kNone);
  ASSERT_NE(plain, nullptr) << server().metrics();
  EXPECT_EQ(plain->count, static_cast<std::uint64_t>(kPlain));
  EXPECT_EQ(plain->bytes_out, kPlain * std::string_view("Hello, World!").size());
  EXPECT_EQ(plain->bytes_in, 0u);
  std::uint64_t in_buckets = 0;
  for (const std::uint64_t bucket : plain->buckets) in_buckets += bucket;
  EXPECT_EQ(in_buckets, plain->count);
  // Each took well under a second: none past the 30 s bound (a start that
  // was never set would put them all there).
  EXPECT_EQ(plain->buckets.back(), 0u);
  EXPECT_EQ(plain->buckets[kDurationBucketCount - 2], 0u);
  EXPECT_LT(plain->duration_ns, kPlain * 1'000'000'000ull);

  EXPECT_EQ(series_for_route(snapshot, "/users/:id"), 1u) << server().metrics();
  const RequestSeries* users = find_series(snapshot, "/users/:id", "GET", 2, ErrorLabel::kNone);
  ASSERT_NE(users, nullptr);
  EXPECT_EQ(users->count, 1000u);
  EXPECT_EQ(users->bytes_out, user_bytes);

  const RequestSeries* posted = find_series(snapshot, "/upload", "POST", 2, ErrorLabel::kNone);
  ASSERT_NE(posted, nullptr);
  EXPECT_EQ(posted->count, 1u);
  EXPECT_EQ(posted->bytes_in, 10u);
  EXPECT_EQ(snapshot.requests.size(), 3u) << server().metrics();

  // No raw path ever becomes a label.
  const std::string text = server().metrics();
  EXPECT_EQ(text.find("/users/17"), std::string::npos);
  EXPECT_NE(text.find("portico_requests_total{route=\"/users/:id\",method=\"GET\",status_class="
                      "\"2xx\",error=\"none\",fallback=\"false\"} 1000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_connections_open 2\n"), std::string::npos) << text;
}

TEST_F(ServerMetricsTest, EachErrorLabelComesWithTheRequestThatProvokesIt) {
  ServerOptions options;
  options.threads = 1;
  options.max_body_bytes = 16;
  options.max_header_bytes = 1024;
  options.header_timeout = std::chrono::milliseconds(200);
  start_server(std::move(options), metric_routes);
  TestClient client(port());
  const auto status_of = [&](std::string_view method, std::string_view target) {
    const ReadResult result = client.request(request_bytes(method, target));
    EXPECT_TRUE(result.ok()) << method << ' ' << target << ": " << result.error;
    return result.response.status;
  };
  EXPECT_EQ(status_of("GET", "/nowhere"), 404);
  EXPECT_EQ(status_of("DELETE", "/users/1"), 405);
  EXPECT_EQ(status_of("GET", "/boom"), 500);
  EXPECT_EQ(status_of("PURGE", "/nowhere"), 404);  // no standard method: "other"
  {
    TestClient bad(port());
    const ReadResult refused = bad.request("NOT HTTP\r\n\r\n");
    ASSERT_TRUE(refused.ok()) << refused.error;
    EXPECT_EQ(refused.response.status, 400);
  }
  {
    TestClient big(port());
    const ReadResult refused =
        big.request(request_bytes("POST", "/upload", "", std::string(64, 'x')));
    ASSERT_TRUE(refused.ok()) << refused.error;
    EXPECT_EQ(refused.response.status, 413);
  }
  {
    // A head that never ends: 408 once header_timeout passes (waited for by
    // reading the answer, not by sleeping).
    TestClient slow(port());
    ASSERT_TRUE(slow.send("GET /plaintext HTTP/1.1\r\nHost: x\r\n"));
    const ReadResult timed_out = slow.read_response();
    ASSERT_TRUE(timed_out.ok()) << timed_out.error;
    EXPECT_EQ(timed_out.response.status, 408);
  }

  const MetricsSnapshot snapshot = server().metrics_snapshot();
  const std::string text = server().metrics();
  const auto count_of = [&](std::string_view route, std::string_view method, int status_class,
                            ErrorLabel label) -> std::uint64_t {
    const RequestSeries* series = find_series(snapshot, route, method, status_class, label);
    return series != nullptr ? series->count : 0;
  };
  EXPECT_EQ(count_of("none", "GET", 4, ErrorLabel::kRouteNotFound), 1u) << text;
  EXPECT_EQ(count_of("none", "DELETE", 4, ErrorLabel::kMethodNotAllowed), 1u) << text;
  EXPECT_EQ(count_of("/boom", "GET", 5, ErrorLabel::kInternalError), 1u) << text;
  EXPECT_EQ(count_of("none", "other", 4, ErrorLabel::kRouteNotFound), 1u) << text;
  EXPECT_EQ(count_of("none", "other", 4, ErrorLabel::kBadRequest), 1u) << text;
  EXPECT_EQ(count_of("none", "POST", 4, ErrorLabel::kTooLarge), 1u) << text;
  EXPECT_EQ(count_of("none", "GET", 4, ErrorLabel::kClientTimeout), 1u) << text;
  EXPECT_EQ(snapshot.requests.size(), 7u) << text;
  // The timeout took at least header_timeout: in the bucket of 250 ms or above.
  const RequestSeries* timeout =
      find_series(snapshot, "none", "GET", 4, ErrorLabel::kClientTimeout);
  ASSERT_NE(timeout, nullptr);
  EXPECT_GE(timeout->duration_ns, 200'000'000u);
  check_with_promtool(text);
}

TEST_F(ServerMetricsTest, OffCountsNothing) {
  ServerOptions options;
  options.metrics = false;
  start_server(std::move(options), metric_routes);
  TestClient client(port());
  for (int i = 0; i < 10; ++i) {
    const ReadResult r = client.request(request_bytes("GET", "/plaintext"));
    ASSERT_TRUE(r.ok() && r.response.status == 200) << r.error;
  }
  const MetricsSnapshot snapshot = server().metrics_snapshot();
  EXPECT_TRUE(snapshot.requests.empty());
  EXPECT_EQ(snapshot.server.requests, 10u);  // ServerStats still counts
}

TEST_F(ServerMetricsTest, AHostServesTheTextFromItsOwnRoute) {
  ServerOptions options;
  start_server(std::move(options), [](Server& server) {
    metric_routes(server);
    // Written a piece at a time as curl reads it (metrics_source()).
    server.get("/metrics", [&server](Request&, Response& res) {
      res.body_source(server.metrics_source(), "text/plain; version=0.0.4; charset=utf-8");
    });
  });
  int exit_code = -1;
  (void)run_curl(url(port(), "/plaintext"), &exit_code);
  ASSERT_EQ(exit_code, 0);
  const std::string scraped = run_curl(url(port(), "/metrics"), &exit_code);
  ASSERT_EQ(exit_code, 0) << scraped;
  EXPECT_NE(scraped.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos)
      << scraped;
  EXPECT_NE(scraped.find("portico_requests_total{route=\"/plaintext\",method=\"GET\","
                         "status_class=\"2xx\",error=\"none\",fallback=\"false\"} 1\n"),
            std::string::npos)
      << scraped;
  EXPECT_NE(scraped.find("# TYPE portico_request_duration_seconds histogram\n"), std::string::npos);
  EXPECT_NE(scraped.find("le=\"+Inf\"} 1\n"), std::string::npos);
  const std::size_t body = scraped.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  check_with_promtool(scraped.substr(body + 4));
}

TEST(MetricsTextTest, HistogramBucketsAreCumulativeAndLabelsEscaped) {
  MetricsSnapshot snapshot;
  RequestSeries& series = snapshot.requests.emplace_back();
  series.route = "/a\"b\\c\nd";
  series.method = "GET";
  series.status_class = 2;
  series.buckets[0] = 2;                         // <= 50 µs
  series.buckets[3] = 1;                         // <= 500 µs
  series.buckets[kDurationBucketCount - 1] = 1;  // > 30 s
  series.count = 4;
  series.duration_ns = 31'000'400'000;
  std::string text;
  append_prometheus(text, snapshot);
  const std::string labels =
      "route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status_class=\"2xx\",error=\"none\","
      "fallback=\"false\"";
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{" + labels + ",le=\"5e-05\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{" + labels + ",le=\"0.0001\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{" + labels + ",le=\"0.0005\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{" + labels + ",le=\"30\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_count{" + labels + "} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("portico_request_duration_seconds_sum{" + labels + "} 31.0004\n"),
            std::string::npos)
      << text;
  check_with_promtool(text);
}

TEST(MetricsTextTest, PiecesOfAnyBudgetMakeTheSameText) {
  MetricsSnapshot snapshot;
  std::deque<std::string> routes;  // the snapshot views them: they must not move
  for (int i = 0; i < 300; ++i) {
    routes.push_back("/route/" + std::to_string(i) + "/:id");
    RequestSeries& series = snapshot.requests.emplace_back();
    series.route = routes.back();
    series.method = i % 2 != 0 ? "GET" : "POST";
    series.status_class = static_cast<std::uint8_t>(2 + i % 4);
    series.buckets[static_cast<std::size_t>(i) % kDurationBucketCount] = 3;
    series.count = 3;
    series.duration_ns = 1000u * static_cast<std::uint64_t>(i);
    series.bytes_in = static_cast<std::uint64_t>(i);
    series.bytes_out = 2u * static_cast<std::uint64_t>(i);
    if (i % 3 == 0) {
      PhaseSeries& phase = snapshot.phases.emplace_back();
      phase.route = routes.back();
      phase.phase = RequestPhase::kUpstreamFirstByte;
      phase.count = 3;
      phase.buckets[2] = 3;
    }
  }
  snapshot.server.requests = 900;
  std::string whole;
  append_prometheus(whole, snapshot);
  EXPECT_GT(whole.size(), 300u * 28 * 100);
  for (const std::size_t budget : {std::size_t{1}, std::size_t{100}, std::size_t{4096},
                                   PrometheusWriter::kPiece, std::size_t{1} << 30}) {
    PrometheusWriter writer(snapshot);
    std::string pieced;
    std::string piece;
    std::size_t pieces = 0;
    for (bool more = true; more;) {
      piece.clear();
      more = writer.next(piece, budget);
      ASSERT_TRUE(piece.empty() || piece.back() == '\n') << "a piece ends within a line";
      pieced += piece;
      ASSERT_LT(++pieces, 1'000'000u);
    }
    EXPECT_TRUE(pieced == whole) << "budget " << budget;
    if (budget == PrometheusWriter::kPiece) {
      EXPECT_GE(pieces, whole.size() / PrometheusWriter::kPiece);
    }
  }
}

}  // namespace
}  // namespace portico::testing
