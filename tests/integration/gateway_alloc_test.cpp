// Proves that proxying allocates nothing per request in steady state (issue
// 14, "Done when": zero heap allocations per proxied keep-alive request
// after warm-up). The global operator new is replaced by one that counts on
// every thread but the test's own (the client, which allocates freely): the
// gateway's reactor and the upstream portico Server, both in this process,
// are counted together — the upstream's own share is zero per request
// (server_alloc_test), so the whole count is the gateway's.
// Counted: every form of the global operator new (nothrow too). Not
// counted: connection state from a reactor's mimalloc heap (StateHeap),
// made per connection, not per request — and these requests share one
// client and one pooled upstream connection.
// PORTICO_ALLOC_TRACE=1 prints a backtrace for each allocation counted in a
// measured window, to find the caller when the count is not zero.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "../counting_new.hpp"
#include "metrics_checks.hpp"
#include "portico/gateway.hpp"
#include "portico/metrics.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

constexpr int kWarmup = 1000;
constexpr int kMeasured = 10'000;

class GatewayAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    count_allocations_on_this_thread(false);  // the client allocates freely
    ServerOptions options;
    options.port = 0;
    options.handle_signals = false;
    options.worker_threads = 1;
    upstream_ = std::make_unique<Server>(options);
    upstream_->get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
    upstream_->get("/users/:id",
                   [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
    upstream_->get("/allocates", [](Request&, Response& res) {
      auto* leak_free = new std::string(200, 'a');
      res.text(*leak_free);
      delete leak_free;
    });
    ASSERT_FALSE(upstream_->start()) << upstream_->setup_error();
    const std::string yaml =
        "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
        "clusters:\n"
        "  app:\n"
        "    endpoints: [{address: \"127.0.0.1:" +
        std::to_string(upstream_->port()) +
        "\"}]\n"
        "routes:\n"
        "  - path: /plaintext\n"
        "    cluster: app\n"
        "  - path: /allocates\n"
        "    cluster: app\n"
        "  - path: /api/users/:id\n"
        "    cluster: app\n"
        "    strip_prefix: /api\n"
        "    request_headers: {add: {X-Gateway: portico}}\n"
        "    response_headers: {add: {X-Served-By: portico}, remove: [Server]}\n";
    ConfigResult config = GatewayConfig::parse(yaml, "alloc.yaml");
    ASSERT_TRUE(config.ok());
    gateway_ = std::make_unique<Gateway>(std::move(*config.config));
    ASSERT_FALSE(gateway_->start()) << gateway_->setup_error();
  }
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
    if (upstream_) {
      upstream_->stop();
      upstream_->wait();
    }
  }

  // Sends `warmup + measured` keep-alive GETs for `target` (with an id
  // appended when it ends in '/') and returns the allocations made
  // meanwhile off the test's thread.
  std::size_t allocations_for(TestClient& client, const std::string& target, int warmup,
                              int measured) {
    std::size_t before = 0;
    const bool trace = std::getenv("PORTICO_ALLOC_TRACE") != nullptr;
    for (int i = 0; i < warmup + measured; ++i) {
      if (i == warmup) {
        before = allocations();
        trace_allocations(trace);
      }
      const std::string path = target.back() == '/' ? target + std::to_string(i % 1000) : target;
      const ReadResult r = client.request(request_bytes("GET", path));
      if (!r.ok() || r.response.status != 200) {
        trace_allocations(false);
        ADD_FAILURE() << "request " << i << " " << path << ": " << to_string(r.outcome) << " "
                      << r.error << " " << r.response.status;
        return static_cast<std::size_t>(-1);
      }
    }
    trace_allocations(false);
    return allocations() - before;
  }

  std::unique_ptr<Server> upstream_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayAllocTest, ProxiedPlaintextAllocatesNothingPerRequest) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/plaintext", kWarmup, kMeasured), 0u);
  // With the request metrics on (the default): the proxied requests counted,
  // each when its exchange ended (the last may end just after its answer).
  EXPECT_TRUE(gateway_->server().config().metrics);
  EXPECT_TRUE(wait_for([&] {
    std::uint64_t n = 0;
    for (const RequestSeries& s : gateway_->server().metrics_snapshot().requests) n += s.count;
    return n == static_cast<std::uint64_t>(kWarmup + kMeasured);
  })) << gateway_->metrics();
}

// A route that strips a prefix, adds a request field, edits the response,
// and a target that changes every request.
TEST_F(GatewayAllocTest, ProxiedParamRouteWithEditsAllocatesNothingPerRequest) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/api/users/", kWarmup, kMeasured), 0u);
}

TEST_F(GatewayAllocTest, CounterCountsAllocationsOffTheClientThread) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_GE(allocations_for(client, "/allocates", 10, 100), 100u);
}

}  // namespace
}  // namespace portico::testing
