// portico/metrics.hpp — the server's request metrics as a host reads them:
// the per-reactor series merged into one MetricsSnapshot, and the Prometheus
// text format 0.0.4 written from it (Server::metrics() does both).
// Thread-safety: plain values and pure functions; a snapshot is the caller's.
// Lifetimes: the route and method names a snapshot views live in a
// process-wide, append-only table: valid for the life of the process.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "portico/server.hpp"

namespace portico {
inline namespace v0 {

// The upper bounds (seconds) of portico_request_duration_seconds' buckets:
// log-spaced from 50 µs to 30 s (1, 2.5, 5 per decade), then +Inf. Fixed, so
// series from every reactor and every process add up.
inline constexpr std::array<double, 18> kDurationBucketBounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
// The buckets, +Inf included.
inline constexpr std::size_t kDurationBucketCount = kDurationBucketBounds.size() + 1;

// One request series: the requests that share route pattern, method, status
// class, error label and fallback, summed over every reactor.
struct RequestSeries {
  std::string_view route;         // the route's pattern, or "none" (no route matched)
  std::string_view method;        // "GET", ... for a standard method, else "other"
  std::uint8_t status_class = 0;  // 1 for 1xx ... 5xx (a status up to 999: up to 9)
  ErrorLabel error = ErrorLabel::kNone;
  bool fallback = false;          // gateway: a canary request that went to the route's own cluster
  std::uint64_t count = 0;        // requests (the sum of `buckets`)
  std::uint64_t duration_ns = 0;  // their durations, summed
  // Requests by duration bucket (kDurationBucketBounds; the last is +Inf),
  // not cumulative.
  std::array<std::uint64_t, kDurationBucketCount> buckets{};
  std::uint64_t bytes_in = 0;   // request body bytes
  std::uint64_t bytes_out = 0;  // response body bytes
};

// The phases of a proxied exchange timed in portico_request_phase_seconds,
// each from the request's first byte (GATEWAY.md's access log fields
// upstream_connect_ms and upstream_first_byte_ms, as histograms).
enum class RequestPhase : std::uint8_t {
  kUpstreamConnect = 1,    // an upstream connection ready: made, or taken from the pool
  kUpstreamFirstByte = 2,  // the upstream response's head received
};
// "upstream_connect", "upstream_first_byte".
std::string_view phase_name(RequestPhase phase) noexcept;

// One phase of the exchanges of one route pattern, summed over every reactor.
struct PhaseSeries {
  std::string_view route;  // the route's pattern
  RequestPhase phase = RequestPhase::kUpstreamConnect;
  std::uint64_t count = 0;        // exchanges that reached the phase
  std::uint64_t duration_ns = 0;  // their times to it, summed
  std::array<std::uint64_t, kDurationBucketCount> buckets{};  // as RequestSeries::buckets
};

// Everything Server::metrics() writes, merged over the reactors.
struct MetricsSnapshot {
  ServerStats server;
  // Sorted by route (in the order patterns were first registered), method,
  // status class, error, fallback; one entry per distinct label set.
  std::vector<RequestSeries> requests;
  // The gateway's exchanges by route pattern and phase, sorted likewise
  // (empty for a server without the gateway).
  std::vector<PhaseSeries> phases;
  // Series a reactor could not create (its table full: 262,144 series).
  std::uint64_t series_dropped = 0;
};

// Writes a snapshot as Prometheus text format 0.0.4 a part at a time, so a
// scrape of thousands of series is never held whole: Server::metrics_source()
// hands one to Response::body_source(). Movable; owns its snapshot.
class PrometheusWriter {
 public:
  // A body source's piece: big enough that a piece's calls cost little,
  // small enough to stay in cache.
  static constexpr std::size_t kPiece = 64 * 1024;

  explicit PrometheusWriter(MetricsSnapshot snapshot);
  // Appends the next part, whole lines, stopping once it wrote `budget`
  // bytes or more; false once the text is complete (with this part).
  bool next(std::string& out, std::size_t budget);

 private:
  enum class Section : std::uint8_t { kRequests, kDurations, kPhases, kBytesIn, kBytesOut, kServer };
  MetricsSnapshot snapshot_;
  std::vector<std::string> labels_;  // each request series' labels, formatted once
  Section section_ = Section::kRequests;
  std::size_t index_ = 0;  // the next series of the section
};

// Appends `snapshot` to `out` as Prometheus text format 0.0.4: portico_requests_total,
// portico_request_duration_seconds (histogram), portico_request_phase_seconds
// (histogram, when there are phases), portico_request_bytes_total,
// portico_response_bytes_total, portico_connections_open and the
// ServerStats counters (README, "Metrics").
void append_prometheus(std::string& out, const MetricsSnapshot& snapshot);

// Appends a label value escaped as the text format wants it (\\, \", \n).
void append_label_value(std::string& out, std::string_view value);

}  // namespace v0
}  // namespace portico
