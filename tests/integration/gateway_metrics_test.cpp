// tests/integration/gateway_metrics_test.cpp — the gateway's GET /metrics
// on the admin listener: request series by the gateway's route pattern
// (never the raw path), upstream series by cluster and endpoint, reloads;
// a scrape taken under load passes promtool. Clients are curl and raw
// sockets; upstreams are portico servers in the same process.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway_test_support.hpp"
#include "metrics_checks.hpp"
#include "portico/gateway.hpp"
#include "portico/metrics.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

std::string body_of(const std::string& curl_output) {
  const std::size_t end = curl_output.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : curl_output.substr(end + 4);
}

class GatewayMetricsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
  }
  Gateway& start(unsigned threads = 1) {
    gateway_ =
        std::make_unique<Gateway>(parse_config(users_gateway_yaml(upstream_.port, threads, true)));
    EXPECT_FALSE(gateway_->start()) << gateway_->setup_error();
    return *gateway_;
  }
  // The requests of the /api/users/:id GET 2xx series.
  std::uint64_t users_ok() {
    const MetricsSnapshot snapshot = gateway_->server().metrics_snapshot();
    const RequestSeries* s = find_series(snapshot, "/api/users/:id", "GET", 2, ErrorLabel::kNone);
    return s != nullptr ? s->count : 0;
  }

  Upstream upstream_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayMetricsTest, AThousandPathsOfOneRouteAreOneSeries) {
  Gateway& gateway = start(2);
  std::vector<TestClient> clients;
  for (int c = 0; c < 4; ++c) clients.emplace_back(gateway.port());
  std::uint64_t body_bytes = 0;
  for (int i = 0; i < 1000; ++i) {
    const ReadResult r =
        clients[i % 4].request(request_bytes("GET", "/api/users/" + std::to_string(i)));
    ASSERT_TRUE(r.ok() && r.response.status == 200) << r.error;
    body_bytes += r.response.body.size();
  }
  // A proxied exchange is counted when it ends, just after its last byte
  // may have gone out: wait for the count, then it must be exact.
  ASSERT_TRUE(wait_for([&] { return users_ok() >= 1000; })) << gateway.metrics();
  const MetricsSnapshot snapshot = gateway.server().metrics_snapshot();
  EXPECT_EQ(series_for_route(snapshot, "/api/users/:id"), 1u) << gateway.metrics();
  const RequestSeries* users = find_series(snapshot, "/api/users/:id", "GET", 2, ErrorLabel::kNone);
  ASSERT_NE(users, nullptr);
  EXPECT_EQ(users->count, 1000u);
  EXPECT_EQ(users->bytes_out, body_bytes);
  EXPECT_EQ(users->buckets.back(), 0u);  // none past 30 s: each took milliseconds
  EXPECT_LT(users->duration_ns, 1000 * 1'000'000'000ull);

  const std::string text = gateway.metrics();
  EXPECT_EQ(text.find("/api/users/17"), std::string::npos);
  const std::string endpoint = "127.0.0.1:" + std::to_string(upstream_.port);
  EXPECT_NE(text.find("portico_upstream_requests_total{cluster=\"users\",endpoint=\"" + endpoint +
                      "\"} 1000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("portico_upstream_healthy{cluster=\"users\",endpoint=\"" + endpoint + "\"} 1\n"),
      std::string::npos);
  EXPECT_NE(text.find("portico_breaker_open{cluster=\"users\"} 0\n"), std::string::npos);

  // Each exchange reached both phases, once, in at most its whole time.
  ASSERT_EQ(snapshot.phases.size(), 2u) << text;
  for (const PhaseSeries& phase : snapshot.phases) {
    EXPECT_EQ(phase.route, "/api/users/:id");
    EXPECT_EQ(phase.count, 1000u) << phase_name(phase.phase);
    EXPECT_LE(phase.duration_ns, users->duration_ns) << phase_name(phase.phase);
  }
  EXPECT_EQ(snapshot.phases[0].phase, RequestPhase::kUpstreamConnect);
  EXPECT_EQ(snapshot.phases[1].phase, RequestPhase::kUpstreamFirstByte);
  EXPECT_LE(snapshot.phases[0].duration_ns, snapshot.phases[1].duration_ns);
  EXPECT_NE(text.find("# TYPE portico_request_phase_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("portico_request_phase_seconds_count{route=\"/api/users/:id\","
                      "phase=\"upstream_first_byte\"} 1000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_request_phase_seconds_bucket{route=\"/api/users/:id\","
                      "phase=\"upstream_connect\",le=\"+Inf\"} 1000\n"),
            std::string::npos);
}

TEST_F(GatewayMetricsTest, OnlyRoutesThatSawTrafficAppear) {
  std::string yaml =
      "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
      "clusters:\n  users:\n    endpoints: [{address: \"127.0.0.1:" +
      std::to_string(upstream_.port) + "\"}]\nroutes:\n";
  for (int i = 0; i < 2000; ++i)
    yaml += "  - {path: /s" + std::to_string(i) + "/users/:id, cluster: users, strip_prefix: /s" +
            std::to_string(i) + "}\n";
  gateway_ = std::make_unique<Gateway>(parse_config(yaml));
  ASSERT_FALSE(gateway_->start()) << gateway_->setup_error();
  TestClient client(gateway_->port());
  for (const int route : {7, 1999, 7, 300}) {
    const ReadResult r =
        client.request(request_bytes("GET", "/s" + std::to_string(route) + "/users/42"));
    ASSERT_TRUE(r.ok() && r.response.status == 200) << r.error;
    EXPECT_EQ(r.response.body, "user 42");
  }
  const auto counted = [&] {
    std::uint64_t n = 0;
    for (const RequestSeries& s : gateway_->server().metrics_snapshot().requests) n += s.count;
    return n;
  };
  ASSERT_TRUE(wait_for([&] { return counted() == 4; })) << gateway_->metrics();
  const MetricsSnapshot snapshot = gateway_->server().metrics_snapshot();
  ASSERT_EQ(snapshot.requests.size(), 3u) << gateway_->metrics();
  const RequestSeries* seven = find_series(snapshot, "/s7/users/:id", "GET", 2, ErrorLabel::kNone);
  ASSERT_NE(seven, nullptr) << gateway_->metrics();
  EXPECT_EQ(seven->count, 2u);
  EXPECT_NE(find_series(snapshot, "/s1999/users/:id", "GET", 2, ErrorLabel::kNone), nullptr);
  EXPECT_NE(find_series(snapshot, "/s300/users/:id", "GET", 2, ErrorLabel::kNone), nullptr);
  EXPECT_EQ(gateway_->metrics().find("/s8/"), std::string::npos);
}

TEST_F(GatewayMetricsTest, AdminServesMetricsThatPromtoolAcceptsUnderLoad) {
  Gateway& gateway = start(2);
  ASSERT_NE(gateway.admin_port(), 0);
  // Load from another thread while the admin listener is scraped.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread load([&] {
    TestClient client(gateway.port());
    for (int i = 0; !stop.load() || i < 50; ++i) {
      const ReadResult r = client.request(request_bytes("GET", "/api/users/" + std::to_string(i)));
      if (!r.ok() || r.response.status != 200) {
        ADD_FAILURE() << "request " << i << ": " << r.error;
        return;
      }
      sent.fetch_add(1);
    }
  });
  // A 404 and an answer the gateway writes from its config.
  int exit_code = -1;
  (void)run_curl(url(gateway.port(), "/nowhere"), &exit_code);
  EXPECT_EQ(exit_code, 0);
  (void)run_curl(url(gateway.port(), "/healthz"), &exit_code);
  EXPECT_EQ(exit_code, 0);
  // One reload that works, one that fails (a file that is not a config).
  EXPECT_TRUE(gateway.reload(parse_config(users_gateway_yaml(upstream_.port, 2, true))).empty());
  const std::string bad = ::testing::TempDir() + "gateway_metrics_bad.yaml";
  std::FILE* file = std::fopen(bad.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("routes: [{path: /x, cluster: nowhere}]\n", file);
  std::fclose(file);
  gateway.set_config_path(bad);
  EXPECT_FALSE(gateway.reload_file().ok());
  std::remove(bad.c_str());

  std::string scraped;
  for (int round = 0; round < 3; ++round) {
    scraped = run_curl(url(gateway.admin_port(), "/metrics"), &exit_code);
    ASSERT_EQ(exit_code, 0) << scraped;
    EXPECT_NE(scraped.find("HTTP/1.1 200"), std::string::npos) << scraped;
    EXPECT_NE(scraped.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
              std::string::npos)
        << scraped;
    check_with_promtool(body_of(scraped));
  }
  stop = true;
  load.join();
  const std::string text = body_of(scraped);
  EXPECT_NE(text.find("portico_requests_total{route=\"none\",method=\"GET\",status_class=\"4xx\","
                      "error=\"route_not_found\",fallback=\"false\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_requests_total{route=\"/healthz\",method=\"GET\",status_class="
                      "\"2xx\",error=\"none\",fallback=\"false\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("portico_reloads_total{result=\"ok\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("portico_reloads_total{result=\"failed\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("portico_upstream_connections{cluster=\"users\",endpoint=\"127.0.0.1:"),
            std::string::npos);
  EXPECT_NE(text.find(",state=\"pooled\"} "), std::string::npos);
  // Every proxied request is counted, exactly.
  ASSERT_TRUE(wait_for([&] { return users_ok() >= static_cast<std::uint64_t>(sent.load()); }));
  EXPECT_EQ(users_ok(), static_cast<std::uint64_t>(sent.load()));
}

}  // namespace
}  // namespace portico::testing
