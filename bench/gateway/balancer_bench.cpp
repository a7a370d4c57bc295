// The load balancers: ns per pick for each policy with 3, 16 and 256
// endpoints (weights 1-7, all available, or one in 8 unavailable), and the
// time to build the ring and the Maglev table of 256 endpoints, which a
// config (re)load pays once per cluster.
//
//   Pick/<policy>/<endpoints>/<unavailable one in 8: 0|1>
//   Build/<policy>/<endpoints>
//
// Keys cycle through 4096 precomputed hashes, so the hash of a request's
// hash_on value is not in the pick (BM_HashKey times it alone). least_request
// picks see counts that move: every pick starts a request, and the oldest of
// 64 in flight finishes.
//
// Quote only ratios between cases of one run, e.g.
//   balancer_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/balancer.hpp"

namespace {

using portico::detail::Availability;
using portico::detail::Balancer;
using portico::detail::BalancerEndpoint;
using portico::detail::BalancerTable;
using portico::detail::hash_key;
using portico::detail::LbPolicy;

struct Endpoints {
  std::vector<std::string> addresses;
  std::vector<BalancerEndpoint> list;

  explicit Endpoints(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      addresses.push_back("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
                          ".1:8080");
    }
    for (std::size_t i = 0; i < n; ++i) {
      list.push_back({addresses[i], static_cast<std::uint32_t>(1 + i % 7)});
    }
  }
};

BalancerTable build(LbPolicy policy, const Endpoints& endpoints) {
  std::string error;
  auto table = BalancerTable::build(policy, endpoints.list, {}, error);
  if (!table) std::abort();
  return std::move(*table);
}

void BM_Pick(benchmark::State& state) {
  const auto policy = static_cast<LbPolicy>(state.range(0));
  const auto n = static_cast<std::size_t>(state.range(1));
  const Endpoints endpoints(n);
  const BalancerTable table = build(policy, endpoints);
  Balancer balancer(table, 42);
  // One endpoint in 8 unavailable (never all of them: 3 keeps two).
  std::vector<std::uint64_t> words((n + 63) / 64, ~std::uint64_t{0});
  for (std::size_t i = 0; i < n; i += 8) words[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  const Availability available = state.range(2) != 0 ? Availability(words) : Availability();
  std::vector<std::uint64_t> keys(4096);
  for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = hash_key("user-" + std::to_string(i));
  std::array<std::uint32_t, 64> in_flight{};
  for (auto& e : in_flight) {
    e = balancer.pick(available, 0);
    balancer.request_started(e);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint32_t e = balancer.pick(available, keys[i & 4095]);
    benchmark::DoNotOptimize(e);
    if (policy == LbPolicy::kLeastRequest) {
      balancer.request_finished(in_flight[i & 63]);
      balancer.request_started(e);
      in_flight[i & 63] = e;
    }
    ++i;
  }
  state.SetLabel(std::string(portico::detail::lb_policy_name(policy)));
}

void pick_args(benchmark::internal::Benchmark* b) {
  for (const LbPolicy policy : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRingHash,
                                LbPolicy::kMaglev, LbPolicy::kRandom}) {
    for (const int n : {3, 16, 256}) {
      for (const int unavailable : {0, 1}) {
        b->Args({static_cast<int>(policy), n, unavailable});
      }
    }
  }
  b->ArgNames({"policy", "endpoints", "unavailable"});
}
BENCHMARK(BM_Pick)->Apply(pick_args);

void BM_Build(benchmark::State& state) {
  const auto policy = static_cast<LbPolicy>(state.range(0));
  const Endpoints endpoints(static_cast<std::size_t>(state.range(1)));
  for (auto _ : state) {
    BalancerTable table = build(policy, endpoints);
    benchmark::DoNotOptimize(table);
  }
  const BalancerTable table = build(policy, endpoints);
  state.counters["ring_points"] = static_cast<double>(table.ring_points());
  state.counters["maglev_entries"] = static_cast<double>(table.maglev_entries().size());
  state.SetLabel(std::string(portico::detail::lb_policy_name(policy)));
}
BENCHMARK(BM_Build)
    ->Args({static_cast<int>(LbPolicy::kRingHash), 256})
    ->Args({static_cast<int>(LbPolicy::kMaglev), 256})
    ->ArgNames({"policy", "endpoints"})
    ->Unit(benchmark::kMicrosecond);

void BM_HashKey(benchmark::State& state) {
  const std::string value = "/api/users/1234567/orders";
  for (auto _ : state) {
    benchmark::DoNotOptimize(value.data());
    benchmark::DoNotOptimize(hash_key(value));
  }
}
BENCHMARK(BM_HashKey);

}  // namespace

BENCHMARK_MAIN();
