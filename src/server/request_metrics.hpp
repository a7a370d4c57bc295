// server/request_metrics.hpp (internal) — request series per reactor:
// RequestMetrics (one per ReactorShard: written by its reactor thread only,
// read by any scraper) and the process-wide table of route names that keys
// them (append-only: a pattern is interned once, when its route is added).
// Thread-safety: RequestMetrics::record() on the owning reactor only;
// collect() from any thread, at the same time. Route names: intern under a
// lock (route set-up); route_name() from any thread.
// Lifetimes: route names are never freed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "portico/metrics.hpp"
#include "portico/router.hpp"
#include "portico/server.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// The id of `pattern` in the process-wide route-name table, added on first
// sight. Id 0 is "none" (no route). Takes a lock: call where routes are
// added, or once per route at its first request (RouteEntry::name_id()),
// never on every request.
std::uint32_t intern_route_name(std::string_view pattern);
// The pattern of `id` (from intern_route_name), "none" for 0.
std::string_view route_name(std::uint32_t id) noexcept;

// A series' labels packed in 64 bits, so the request path never hashes a
// string: route id (bits 16-47), method (12-15: 0-8 the standard methods,
// 9 other), status class (8-11), error label (1-7), fallback (bit 0); bit 63
// set, so no key is 0 (an empty index slot).
inline constexpr unsigned kOtherMethod = kStandardMethodCount;
inline std::uint64_t series_key(std::uint32_t route, unsigned method, int status, ErrorLabel label,
                                bool fallback) noexcept {
  const unsigned status_class =
      status >= 100 && status <= 999 ? static_cast<unsigned>(status) / 100 : 5;
  return (std::uint64_t{1} << 63) | (std::uint64_t{route} << 16) | (std::uint64_t{method} << 12) |
         (std::uint64_t{status_class} << 8) |
         (std::uint64_t{static_cast<std::uint8_t>(label)} << 1) |
         static_cast<std::uint64_t>(fallback);
}
// A phase series' key: route id as above, the phase where the status class
// is, bit 62 set (never set in a request series' key).
inline constexpr std::uint64_t kPhaseKeyBit = std::uint64_t{1} << 62;
inline std::uint64_t phase_key(std::uint32_t route, RequestPhase phase) noexcept {
  return (std::uint64_t{1} << 63) | kPhaseKeyBit | (std::uint64_t{route} << 16) |
         (std::uint64_t{static_cast<std::uint8_t>(phase)} << 8);
}
// The nanoseconds from `from` to `to` (loop-clock times), 0 if `to` is earlier.
inline std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point from,
                                std::chrono::steady_clock::time_point to) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
  return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
}
inline unsigned method_index(std::optional<Method> method) noexcept {
  return method ? static_cast<unsigned>(*method) : kOtherMethod;
}

// Single-writer counters: the reactor adds with a relaxed load and store
// (no locked instruction: nobody else writes), scrapers load relaxed.
struct SeriesCounters {
  std::uint64_t key = 0;  // written before the series is published
  std::atomic<std::uint64_t> duration_ns{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::array<std::atomic<std::uint64_t>, kDurationBucketCount> buckets{};
};

struct KeyedSeries;

class RequestMetrics {
 public:
  static constexpr std::size_t kChunkSeries = 64;
  static constexpr std::size_t kMaxChunks = 4096;  // 262,144 series per reactor

  RequestMetrics() = default;
  ~RequestMetrics();
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  // One request of series `key` that took `duration_ns`. Allocates only when
  // `key` is new to this reactor (its series is made then).
  // REQUIRES: on the owning reactor's thread.
  void record(std::uint64_t key, std::uint64_t duration_ns, std::uint64_t bytes_in,
              std::uint64_t bytes_out) noexcept {
    SeriesCounters* series = find(key);
    if (series == nullptr) return;
    add(series->buckets[bucket_of(duration_ns)], 1);
    add(series->duration_ns, duration_ns);
    if (bytes_in != 0) add(series->bytes_in, bytes_in);
    if (bytes_out != 0) add(series->bytes_out, bytes_out);
  }

  // Adds this reactor's series to `out` (unmerged, unsorted). Any thread.
  void collect(std::vector<KeyedSeries>& out) const;
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

  // The bucket a duration falls in: the first whose bound is >= it
  // (Prometheus' `le`). Most requests take well under a millisecond, so a
  // scan from the smallest bound ends in one to three compares.
  static unsigned bucket_of(std::uint64_t duration_ns) noexcept {
    unsigned bucket = 0;
    while (bucket < kBoundsNs.size() && duration_ns > kBoundsNs[bucket]) ++bucket;
    return bucket;
  }

 private:
  static constexpr std::array<std::uint64_t, kDurationBucketBounds.size()> kBoundsNs = [] {
    std::array<std::uint64_t, kDurationBucketBounds.size()> ns{};
    for (std::size_t i = 0; i < ns.size(); ++i)
      ns[i] = static_cast<std::uint64_t>(kDurationBucketBounds[i] * 1e9 + 0.5);
    return ns;
  }();

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t by) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  SeriesCounters* find(std::uint64_t key) noexcept {
    if (mask_ != 0) {
      for (std::size_t at = hash(key) & mask_;; at = (at + 1) & mask_) {
        if (index_keys_[at] == key) return index_series_[at];
        if (index_keys_[at] == 0) break;
      }
    }
    return add_series(key);
  }
  std::size_t hash(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32);
  }
  SeriesCounters* add_series(std::uint64_t key) noexcept;
  void insert(std::uint64_t key, SeriesCounters* series) noexcept;

  // The reactor's index (its own: never read by a scraper): open addressing,
  // at most half full.
  std::vector<std::uint64_t> index_keys_;
  std::vector<SeriesCounters*> index_series_;
  std::size_t mask_ = 0;
  // The series, in chunks that never move. `count_` publishes them: a series
  // (its key, its chunk pointer) is written before the release store that
  // counts it, so a scraper that loads the count with acquire sees it whole.
  std::array<std::atomic<SeriesCounters*>, kMaxChunks> chunks_{};
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

// A series as collected, with its packed key.
struct KeyedSeries {
  std::uint64_t key = 0;
  RequestSeries series;
};

// Merges the series collected from every reactor (same key: summed), sorted
// by key, with their labels spelled out: request series into `out`, phase
// series into `phases`.
void merge_series(std::vector<KeyedSeries>& collected, std::vector<RequestSeries>& out,
                  std::vector<PhaseSeries>& phases);

}  // namespace detail
}  // namespace v0
}  // namespace portico
