// metrics_bench: what counting one request costs — the series lookup, the
// duration histogram, the body-byte counters — in portico's per-reactor
// tables (src/server/request_metrics.hpp) against prometheus-cpp (Debian
// prometheus-cpp-dev, the library issue 16 names to beat), one thread, the
// same labels and buckets. prometheus-cpp twice: with the series' handles
// looked up once and kept (its best case; a server would still need its own
// index from labels to handles), and with Family::Add() per request (its
// own lookup by label set). Built when prometheus-cpp is installed.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "portico/metrics.hpp"
#include "server/request_metrics.hpp"

#ifdef PORTICO_HAVE_PROMETHEUS_CPP
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#endif

namespace {

using portico::ErrorLabel;
using portico::detail::RequestMetrics;
using portico::detail::series_key;

constexpr int kRoutes = 8;  // requests spread over this many series

void BM_PorticoRecord(benchmark::State& state) {
  RequestMetrics metrics;
  std::array<std::uint64_t, kRoutes> keys{};
  for (int r = 0; r < kRoutes; ++r)
    keys[r] = series_key(static_cast<std::uint32_t>(r + 1), 0, 200, ErrorLabel::kNone, false);
  std::uint64_t i = 0;
  for (auto _ : state) {
    metrics.record(keys[i % kRoutes], 30'000 + (i & 1023) * 100, 0, 13);
    ++i;
  }
  std::vector<portico::detail::KeyedSeries> out;
  metrics.collect(out);
  benchmark::DoNotOptimize(out.data());
}
BENCHMARK(BM_PorticoRecord);

#ifdef PORTICO_HAVE_PROMETHEUS_CPP

prometheus::Histogram::BucketBoundaries bounds() {
  return {portico::kDurationBucketBounds.begin(), portico::kDurationBucketBounds.end()};
}

std::map<std::string, std::string> labels(int route) {
  return {{"route", "/route/" + std::to_string(route)},
          {"method", "GET"},
          {"status_class", "2xx"},
          {"error", "none"},
          {"fallback", "false"}};
}

struct PromFamilies {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("portico_requests_total").Register(registry);
  prometheus::Family<prometheus::Histogram>& durations =
      prometheus::BuildHistogram().Name("portico_request_duration_seconds").Register(registry);
  prometheus::Family<prometheus::Counter>& bytes_out =
      prometheus::BuildCounter().Name("portico_response_bytes_total").Register(registry);
};

void BM_PrometheusCppKeptHandles(benchmark::State& state) {
  PromFamilies families;
  struct Handles {
    prometheus::Counter* requests;
    prometheus::Histogram* duration;
    prometheus::Counter* bytes_out;
  };
  std::array<Handles, kRoutes> handles{};
  for (int r = 0; r < kRoutes; ++r) {
    handles[r] = {&families.requests.Add(labels(r)), &families.durations.Add(labels(r), bounds()),
                  &families.bytes_out.Add(labels(r))};
  }
  std::uint64_t i = 0;
  for (auto _ : state) {
    const Handles& h = handles[i % kRoutes];
    h.requests->Increment();
    h.duration->Observe(static_cast<double>(30'000 + (i & 1023) * 100) / 1e9);
    h.bytes_out->Increment(13);
    ++i;
  }
}
BENCHMARK(BM_PrometheusCppKeptHandles);

void BM_PrometheusCppAddPerRequest(benchmark::State& state) {
  PromFamilies families;
  std::vector<std::map<std::string, std::string>> label_sets;
  for (int r = 0; r < kRoutes; ++r) label_sets.push_back(labels(r));
  std::uint64_t i = 0;
  for (auto _ : state) {
    const auto& set = label_sets[i % kRoutes];
    families.requests.Add(set).Increment();
    families.durations.Add(set, bounds())
        .Observe(static_cast<double>(30'000 + (i & 1023) * 100) / 1e9);
    families.bytes_out.Add(set).Increment(13);
    ++i;
  }
}
BENCHMARK(BM_PrometheusCppAddPerRequest);

#endif

}  // namespace
BENCHMARK_MAIN();
