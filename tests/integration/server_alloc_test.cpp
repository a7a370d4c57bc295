// Proves that the server allocates nothing per request in steady state
// (issue 4: "zero heap allocations per request on /plaintext and
// /users/:id"). The global operator new is replaced by one that counts, but
// only on threads marked as server threads: the handlers mark their own
// (reactor) thread, so the test's client — which allocates freely — is not
// counted. After 1000 warm-up requests on a keep-alive connection, 10,000
// more must allocate nothing on the reactor thread.
#include <gtest/gtest.h>

#include <string>

#include "../counting_new.hpp"
#include "portico/metrics.hpp"
#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

constexpr int kWarmup = 1000;
constexpr int kMeasured = 10'000;

void alloc_routes(Server& server) {
  server.get("/plaintext", [](Request&, Response& res) {
    count_allocations_on_this_thread(true);
    res.text("Hello, World!");
  });
  server.get("/users/:id", [](Request& req, Response& res) {
    count_allocations_on_this_thread(true);
    res.format("user {}", req.param("id"));
  });
  // Allocates on purpose: shows that the counter counts.
  server.get("/allocates", [](Request&, Response& res) {
    count_allocations_on_this_thread(true);
    auto* leak_free = new std::string(200, 'a');
    res.text(*leak_free);
    delete leak_free;
  });
}

class ServerAllocTest : public ServerFixture {
 protected:
  // Only the thread the handlers run on (the reactor) counts: each handler
  // turns counting on for its own thread.
  ServerAllocTest() { count_allocations_by_default(false); }

  // Serves `count` keep-alive requests for `target` (with `id` varied when it
  // ends in '/') and returns the server-side allocations made meanwhile.
  std::size_t allocations_for(TestClient& client, const std::string& target, int warmup,
                              int measured) {
    std::size_t before = 0;
    for (int i = 0; i < warmup + measured; ++i) {
      if (i == warmup) before = allocations();
      const std::string path = target.back() == '/' ? target + std::to_string(i % 1000) : target;
      const std::string req = request_bytes("GET", path);
      const ReadResult r = client.request(req);
      if (!r.ok() || r.response.status != 200) {
        ADD_FAILURE() << "request " << i << " " << printable(req) << ": " << to_string(r.outcome)
                      << " " << r.error;
        return static_cast<std::size_t>(-1);
      }
    }
    return allocations() - before;
  }
};

TEST_F(ServerAllocTest, PlaintextAllocatesNothingPerRequest) {
  start_server({}, alloc_routes);
  TestClient client(port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/plaintext", kWarmup, kMeasured), 0u);
  // With the request metrics on (the default), every request counted.
  EXPECT_TRUE(server().config().metrics);
  const MetricsSnapshot snapshot = server().metrics_snapshot();
  ASSERT_EQ(snapshot.requests.size(), 1u);
  EXPECT_EQ(snapshot.requests[0].count, static_cast<std::uint64_t>(kWarmup + kMeasured));
}

TEST_F(ServerAllocTest, UserParamAllocatesNothingPerRequest) {
  start_server({}, alloc_routes);
  TestClient client(port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/users/", kWarmup, kMeasured), 0u);
}

TEST_F(ServerAllocTest, PipelinedPlaintextAllocatesNothingPerRequest) {
  start_server({}, alloc_routes);
  TestClient client(port());
  ASSERT_TRUE(client.connected());
  std::string batch;
  for (int d = 0; d < 16; ++d) batch += request_bytes("GET", d % 2 ? "/plaintext" : "/users/77");
  std::size_t before = 0;
  for (int round = 0; round < (kWarmup + kMeasured) / 16; ++round) {
    if (round == kWarmup / 16) before = allocations();
    ASSERT_TRUE(client.send(batch));
    for (int d = 0; d < 16; ++d) {
      const ReadResult r = client.read_response();
      ASSERT_TRUE(r.ok() && r.response.status == 200) << to_string(r.outcome) << " " << r.error;
    }
  }
  EXPECT_EQ(allocations() - before, 0u);
}

TEST_F(ServerAllocTest, CounterCountsServerAllocations) {
  start_server({}, alloc_routes);
  TestClient client(port());
  ASSERT_TRUE(client.connected());
  EXPECT_GE(allocations_for(client, "/allocates", 10, 100), 100u);
}

}  // namespace
}  // namespace portico::testing
