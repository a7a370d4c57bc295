// Proves that picks allocate nothing: the global operator new is replaced by
// one that counts, and thousands of picks of every policy (all available,
// some unavailable, none available; least_request's counts moving) run
// between two readings of the counter.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "counting_new.hpp"
#include "gateway/balancer.hpp"

namespace portico::detail {
namespace {

TEST(GatewayBalancerAllocTest, PicksAllocateNothing) {
  std::vector<std::string> addresses;
  std::vector<BalancerEndpoint> endpoints;
  for (int i = 0; i < 100; ++i) addresses.push_back("10.0.0." + std::to_string(i) + ":80");
  for (int i = 0; i < 100; ++i) {
    endpoints.push_back(
        {addresses[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(1 + i % 7)});
  }
  const std::vector<std::uint64_t> some = {~std::uint64_t{0x5}, 0xfffffff0u};
  const std::vector<std::uint64_t> none = {0, 0};
  for (const LbPolicy policy : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRingHash,
                                LbPolicy::kMaglev, LbPolicy::kRandom}) {
    std::string error;
    const auto table = BalancerTable::build(policy, endpoints, {}, error);
    ASSERT_TRUE(table.has_value()) << error;
    Balancer balancer(*table, 1);

    const std::size_t before = portico::testing::allocations();
    std::uint64_t picked = 0;
    for (std::uint64_t i = 0; i < 10'000; ++i) {
      const std::uint32_t e = balancer.pick({}, hash_key("k"));
      balancer.request_started(e);
      if (i % 3 == 0) balancer.request_finished(e);
      picked += balancer.pick(Availability(some), i * 0x9e3779b97f4a7c15u);
      picked += balancer.pick(Availability(some));
      picked += balancer.pick(Availability(none), i) == kNoEndpoint;
    }
    EXPECT_EQ(portico::testing::allocations() - before, 0u) << lb_policy_name(policy);
    EXPECT_GT(picked, 0u);
  }
}

}  // namespace
}  // namespace portico::detail
