// Hot reload under load (issue 14: "100 reloads under load (8 busy
// connections): zero failed requests"): client threads keep keep-alive
// connections busy through the gateway while the main thread reloads it
// again and again between two configs that send the same URL to two
// different upstream servers. Every answer a client reads must be a 200
// from one of them. Synchronised by counters, never by sleeps.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway_test_support.hpp"
#include "portico/gateway.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

constexpr int kClients = 8;
constexpr int kReloads = 100;

// What the clients and the reloading thread share.
struct Shared {
  // Reloads done so far; a client reads it before each request it sends.
  std::atomic<int> reloads{0};
  std::atomic<bool> stop{false};
  // Bumped (and notified) whenever a client completes a request or fails,
  // so the main thread waits on it instead of sleeping.
  std::atomic<std::uint64_t> progress{0};
  std::atomic<std::uint64_t> from_a{0}, from_b{0};

  // Per client: the highest reload count read before sending a request
  // that was then answered well, and whether the client failed (it stops).
  struct alignas(64) PerClient {
    std::atomic<int> answered_after{-1};
    std::atomic<bool> failed{false};
  };
  PerClient clients[kClients];

  std::mutex failures_mutex;
  std::vector<std::string> failures;

  void bump() {
    progress.fetch_add(1, std::memory_order_release);
    progress.notify_all();
  }
  // Waits until `done()` holds; `done` reads the atomics above.
  template <class Predicate>
  void wait_until(Predicate done) {
    for (;;) {
      const std::uint64_t seen = progress.load(std::memory_order_acquire);
      if (done()) return;
      progress.wait(seen, std::memory_order_acquire);
    }
  }
  // Every client has either failed or had a request answered that it sent
  // after at least `reload_count` reloads.
  bool all_answered_after(int reload_count) const {
    for (const PerClient& client : clients) {
      if (!client.failed.load(std::memory_order_acquire) &&
          client.answered_after.load(std::memory_order_acquire) < reload_count)
        return false;
    }
    return true;
  }
  // Some client had a request answered that it sent after `reload_count`
  // reloads, or every client failed.
  bool any_answered_after(int reload_count) const {
    bool all_failed = true;
    for (const PerClient& client : clients) {
      if (client.answered_after.load(std::memory_order_acquire) >= reload_count) return true;
      all_failed = all_failed && client.failed.load(std::memory_order_acquire);
    }
    return all_failed;
  }
};

// One client: keep-alive GETs on one connection until told to stop; any
// answer but a 200 from A or B for the id it asked is a failure, and the
// client stops there.
void run_client(int index, std::uint16_t port, Shared& shared, const std::string& name_a,
                const std::string& name_b) {
  Shared::PerClient& mine = shared.clients[index];
  const auto fail = [&](std::string why) {
    {
      std::lock_guard lock(shared.failures_mutex);
      shared.failures.push_back("client " + std::to_string(index) + ": " + std::move(why));
    }
    mine.failed.store(true, std::memory_order_release);
    shared.bump();
  };
  TestClient client(port);
  if (!client.connected()) return fail("cannot connect");
  for (std::uint64_t n = 0; !shared.stop.load(std::memory_order_acquire); ++n) {
    const int reloads_before = shared.reloads.load(std::memory_order_acquire);
    const std::string id = std::to_string(index) + "-" + std::to_string(n);
    const ReadResult r = client.request(request_bytes("GET", "/api/users/" + id));
    if (!r.ok()) return fail("request " + id + ": " + to_string(r.outcome) + " " + r.error);
    if (r.response.status != 200) {
      return fail("request " + id + ": status " + std::to_string(r.response.status) + " " +
                  printable(r.response.body, 200));
    }
    if (r.response.body == name_a + ": user " + id) {
      shared.from_a.fetch_add(1, std::memory_order_relaxed);
    } else if (r.response.body == name_b + ": user " + id) {
      shared.from_b.fetch_add(1, std::memory_order_relaxed);
    } else {
      return fail("request " + id + ": body " + printable(r.response.body, 200));
    }
    mine.answered_after.store(reloads_before, std::memory_order_release);
    shared.bump();
  }
}

TEST(GatewayReloadTest, HundredReloadsUnderLoadFailNoRequest) {
  Upstream a("upstream a: ");
  Upstream b("upstream b: ");
  // Two reactors, so the new table reaches more than one reader.
  const std::string yaml_a = users_gateway_yaml(a.port, 2, false);
  const std::string yaml_b = users_gateway_yaml(b.port, 2, false);

  Gateway gateway(parse_config(yaml_a, "reload-a.yaml"));
  ASSERT_FALSE(gateway.start()) << gateway.setup_error();

  Shared shared;
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(run_client, i, gateway.port(), std::ref(shared), "upstream a",
                         "upstream b");
  }
  // Every connection busy before the first reload.
  shared.wait_until([&] { return shared.all_answered_after(0); });

  for (int i = 1; i <= kReloads; ++i) {
    // Odd reloads send /api/users/:id to B, even ones back to A.
    const std::vector<ConfigDiagnostic> errors = gateway.reload(
        parse_config(i % 2 ? yaml_b : yaml_a, i % 2 ? "reload-b.yaml" : "reload-a.yaml"));
    for (const ConfigDiagnostic& error : errors)
      ADD_FAILURE() << "reload " << i << ": " << error.to_string();
    shared.reloads.store(i, std::memory_order_release);
    // Traffic between reloads: a request sent after this reload answered.
    shared.wait_until([&] { return shared.any_answered_after(i); });
  }
  // Each connection has a request sent after the last reload answered.
  shared.wait_until([&] { return shared.all_answered_after(kReloads); });
  shared.stop.store(true, std::memory_order_release);
  for (std::thread& client : clients) client.join();

  for (const std::string& failure : shared.failures) ADD_FAILURE() << failure;
  EXPECT_TRUE(shared.failures.empty());
  EXPECT_EQ(gateway.reloads_ok(), static_cast<std::uint64_t>(kReloads));
  EXPECT_EQ(gateway.reloads_failed(), 0u);
  EXPECT_GT(shared.from_a.load(), 0u);
  EXPECT_GT(shared.from_b.load(), 0u);
  const ServerStats stats = gateway.server().stats();
  EXPECT_EQ(stats.responses_4xx, 0u);
  EXPECT_EQ(stats.responses_5xx, 0u);
  std::printf("[          ] %llu answers from A, %llu from B over %d reloads\n",
              static_cast<unsigned long long>(shared.from_a.load()),
              static_cast<unsigned long long>(shared.from_b.load()), kReloads);

  gateway.stop();
  gateway.wait();
}

}  // namespace
}  // namespace portico::testing
