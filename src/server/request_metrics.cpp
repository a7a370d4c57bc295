// server/request_metrics.cpp — the route-name table, a reactor's series
// (made on first use, collected by scrapers), merging, and the Prometheus
// text format 0.0.4 (see portico/metrics.hpp, server/request_metrics.hpp).
#include "server/request_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

// Route patterns by id, in chunks that never move, published by a count
// (release) so route_name() needs no lock. Id 0 is "none".
class RouteNames {
 public:
  static constexpr std::size_t kChunk = 1024;
  static constexpr std::size_t kMaxChunks = 16384;  // 16.7 million patterns

  std::uint32_t intern(std::string_view pattern) {
    std::lock_guard lock(mutex_);
    if (const auto found = ids_.find(pattern); found != ids_.end()) return found->second;
    const std::size_t id = count_.load(std::memory_order_relaxed);
    if (id >= kChunk * kMaxChunks) return 0;  // full: such routes are labelled "none"
    std::string* chunk = chunks_[id / kChunk].load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new std::string[kChunk];
      chunks_[id / kChunk].store(chunk, std::memory_order_relaxed);
    }
    std::string& name = chunk[id % kChunk];
    name.assign(pattern);
    ids_.emplace(std::string_view(name), static_cast<std::uint32_t>(id));
    // Release: the name (and its chunk pointer) before the count that shows it.
    count_.store(id + 1, std::memory_order_release);
    return static_cast<std::uint32_t>(id);
  }

  std::string_view name(std::uint32_t id) const noexcept {
    if (id == 0 || id >= count_.load(std::memory_order_acquire)) return "none";
    return chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk];
  }

  RouteNames() { intern("none"); }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string_view, std::uint32_t> ids_;
  std::array<std::atomic<std::string*>, kMaxChunks> chunks_{};
  std::atomic<std::size_t> count_{0};
};

RouteNames& route_names() {
  static RouteNames* names = new RouteNames;  // never destroyed: names outlive everything
  return *names;
}

std::string_view method_label(unsigned index) noexcept {
  return index < kStandardMethodCount ? method_name(static_cast<Method>(index)) : "other";
}

}  // namespace

std::uint32_t intern_route_name(std::string_view pattern) {
  return route_names().intern(pattern);
}

std::string_view route_name(std::uint32_t id) noexcept {
  return route_names().name(id);
}

RequestMetrics::~RequestMetrics() {
  for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
}

SeriesCounters* RequestMetrics::add_series(std::uint64_t key) noexcept {
  const std::size_t count = count_.load(std::memory_order_relaxed);
  if (count >= kChunkSeries * kMaxChunks) {
    add(dropped_, 1);
    return nullptr;
  }
  SeriesCounters* chunk = chunks_[count / kChunkSeries].load(std::memory_order_relaxed);
  try {
    if (2 * (count + 1) > index_keys_.size()) {
      // Grow the index to keep it at most half full (new series only).
      const std::size_t size = std::max<std::size_t>(64, index_keys_.size() * 2);
      std::vector<std::uint64_t> keys(size, 0);
      std::vector<SeriesCounters*> series(size, nullptr);
      keys.swap(index_keys_);
      series.swap(index_series_);
      mask_ = size - 1;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] != 0) insert(keys[i], series[i]);
      }
    }
    if (chunk == nullptr) {
      chunk = new SeriesCounters[kChunkSeries];
      chunks_[count / kChunkSeries].store(chunk, std::memory_order_relaxed);
    }
  } catch (const std::bad_alloc&) {
    add(dropped_, 1);
    return nullptr;
  }
  SeriesCounters* series = &chunk[count % kChunkSeries];
  series->key = key;
  insert(key, series);
  // Release: the key and the chunk pointer before the count that shows them.
  count_.store(count + 1, std::memory_order_release);
  return series;
}

void RequestMetrics::insert(std::uint64_t key, SeriesCounters* series) noexcept {
  std::size_t at = hash(key) & mask_;
  while (index_keys_[at] != 0) at = (at + 1) & mask_;
  index_keys_[at] = key;
  index_series_[at] = series;
}

void RequestMetrics::collect(std::vector<KeyedSeries>& out) const {
  constexpr auto relaxed = std::memory_order_relaxed;
  const std::size_t count = count_.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < count; ++i) {
    const SeriesCounters& counters = chunks_[i / kChunkSeries].load(relaxed)[i % kChunkSeries];
    KeyedSeries& keyed = out.emplace_back();
    keyed.key = counters.key;
    RequestSeries& s = keyed.series;
    for (std::size_t b = 0; b < kDurationBucketCount; ++b) {
      s.buckets[b] = counters.buckets[b].load(relaxed);
      s.count += s.buckets[b];
    }
    s.duration_ns = counters.duration_ns.load(relaxed);
    s.bytes_in = counters.bytes_in.load(relaxed);
    s.bytes_out = counters.bytes_out.load(relaxed);
  }
}

void merge_series(std::vector<KeyedSeries>& collected, std::vector<RequestSeries>& out,
                  std::vector<PhaseSeries>& phases) {
  std::sort(collected.begin(), collected.end(),
            [](const KeyedSeries& a, const KeyedSeries& b) { return a.key < b.key; });
  for (std::size_t i = 0; i < collected.size();) {
    const std::uint64_t key = collected[i].key;
    RequestSeries merged = collected[i].series;
    for (++i; i < collected.size() && collected[i].key == key; ++i) {
      const RequestSeries& more = collected[i].series;
      merged.count += more.count;
      merged.duration_ns += more.duration_ns;
      merged.bytes_in += more.bytes_in;
      merged.bytes_out += more.bytes_out;
      for (std::size_t b = 0; b < kDurationBucketCount; ++b) merged.buckets[b] += more.buckets[b];
    }
    if ((key & kPhaseKeyBit) != 0) {
      PhaseSeries& phase = phases.emplace_back();
      phase.route = route_name(static_cast<std::uint32_t>(key >> 16));
      phase.phase = static_cast<RequestPhase>((key >> 8) & 0xF);
      phase.count = merged.count;
      phase.duration_ns = merged.duration_ns;
      phase.buckets = merged.buckets;
      continue;
    }
    merged.route = route_name(static_cast<std::uint32_t>(key >> 16));
    merged.method = method_label(static_cast<unsigned>(key >> 12) & 0xF);
    merged.status_class = static_cast<std::uint8_t>((key >> 8) & 0xF);
    merged.error = static_cast<ErrorLabel>((key >> 1) & 0x7F);
    merged.fallback = (key & 1) != 0;
    out.push_back(merged);
  }
}

}  // namespace detail

// ---- the text format ------------------------------------------------------------

std::string_view phase_name(RequestPhase phase) noexcept {
  switch (phase) {
    case RequestPhase::kUpstreamConnect:
      return "upstream_connect";
    case RequestPhase::kUpstreamFirstByte:
      return "upstream_first_byte";
  }
  return "unknown";
}

void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

namespace {

void append_double(std::string& out, double value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// route="...",method="...",status_class="2xx",error="...",fallback="..."
std::string request_labels(const RequestSeries& s) {
  std::string out = "route=\"";
  append_label_value(out, s.route);
  out += "\",method=\"";
  out += s.method;
  out += "\",status_class=\"";
  out += static_cast<char>('0' + s.status_class);
  out += "xx\",error=\"";
  out += label_name(s.error);
  out += s.fallback ? "\",fallback=\"true\"" : "\",fallback=\"false\"";
  return out;
}

void append_number(std::string& out, std::uint64_t value) {
  const fmt::format_int text(value);
  out.append(text.data(), text.size());
}

// NAME SUFFIX{LABELS (the line's start; the caller closes the braces).
void open_sample(std::string& out, std::string_view name, std::string_view suffix,
                 std::string_view labels) {
  out += name;
  out += suffix;
  out += '{';
  out += labels;
}

// NAME SUFFIX{LABELS} VALUE
void sample(std::string& out, std::string_view name, std::string_view suffix,
            std::string_view labels, std::uint64_t value) {
  open_sample(out, name, suffix, labels);
  out += "} ";
  append_number(out, value);
  out += '\n';
}

void server_counter(std::string& out, std::string_view name, std::string_view help,
                    std::uint64_t value, std::string_view type = "counter") {
  header(out, name, type, help);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

// One histogram series' 24 lines: NAME_bucket{LABELS,le="..."} N for each
// bucket (cumulative), NAME_sum{LABELS} S, NAME_count{LABELS} N.
void histogram_lines(std::string& out, std::string_view name, std::string_view labels,
                     const std::array<std::uint64_t, kDurationBucketCount>& buckets,
                     std::uint64_t duration_ns, std::uint64_t count) {
  // ",le=\"0.0001\"} " for each bucket, formatted once.
  static const std::array<std::string, kDurationBucketCount> kLe = [] {
    std::array<std::string, kDurationBucketCount> le;
    for (std::size_t b = 0; b < kDurationBucketCount; ++b) {
      le[b] = b < kDurationBucketBounds.size()
                  ? fmt::format(",le=\"{}\"}} ", kDurationBucketBounds[b])
                  : std::string(",le=\"+Inf\"} ");
    }
    return le;
  }();
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kDurationBucketCount; ++b) {
    cumulative += buckets[b];
    open_sample(out, name, "_bucket", labels);
    out += kLe[b];
    append_number(out, cumulative);
    out += '\n';
  }
  open_sample(out, name, "_sum", labels);
  out += "} ";
  append_double(out, static_cast<double>(duration_ns) / 1e9);
  out += '\n';
  sample(out, name, "_count", labels, count);
}

constexpr std::string_view kRequestsName = "portico_requests_total";
constexpr std::string_view kDurationName = "portico_request_duration_seconds";
constexpr std::string_view kPhaseName = "portico_request_phase_seconds";
constexpr std::string_view kBytesInName = "portico_request_bytes_total";
constexpr std::string_view kBytesOutName = "portico_response_bytes_total";

void server_counters(std::string& out, const MetricsSnapshot& snapshot) {
  const ServerStats& s = snapshot.server;
  server_counter(out, "portico_connections_open", "Client connections open now.",
                 s.connections_open, "gauge");
  server_counter(out, "portico_server_connections_accepted_total", "Client connections accepted.",
                 s.connections_accepted);
  server_counter(out, "portico_server_connections_rejected_total",
                 "Client connections closed at once: past max_connections or out of buffers.",
                 s.connections_rejected);
  server_counter(out, "portico_server_requests_total",
                 "Requests dispatched (ServerStats::requests).", s.requests);
  header(out, "portico_server_responses_total", "counter",
         "Responses with a 4xx or 5xx status (ServerStats::responses_4xx, responses_5xx).");
  fmt::format_to(std::back_inserter(out),
                 "portico_server_responses_total{{status_class=\"4xx\"}} {}\n"
                 "portico_server_responses_total{{status_class=\"5xx\"}} {}\n",
                 s.responses_4xx, s.responses_5xx);
  server_counter(out, "portico_server_worker_queue_rejections_total",
                 "Requests answered 503 because the worker queue was full.", s.rejected_503);
  server_counter(out, "portico_server_timeouts_total", "Requests that timed out (408).",
                 s.timeouts);
  server_counter(out, "portico_server_bad_requests_total",
                 "Requests refused as malformed or over a limit.", s.bad_requests);
  server_counter(out, "portico_server_timer_arms_total", "Timers armed by the reactors.",
                 s.timer_arms);
  server_counter(out, "portico_server_route_tables_retired", "Replaced route tables not freed yet.",
                 s.route_tables_retired, "gauge");
  header(out, "portico_server_local_replies_total", "counter",
         "Answers the server wrote itself rather than a handler, by error label (none: OPTIONS, "
         "redirects, 100 Continue).");
  for (std::size_t i = 0; i < kErrorLabelCount; ++i) {
    fmt::format_to(std::back_inserter(out),
                   "portico_server_local_replies_total{{error=\"{}\"}} {}\n",
                   label_name(static_cast<ErrorLabel>(i)), s.replies_by_label[i]);
  }
  server_counter(out, "portico_metrics_series_dropped_total",
                 "Request series a reactor could not create (its table full).",
                 snapshot.series_dropped);
}

}  // namespace

PrometheusWriter::PrometheusWriter(MetricsSnapshot snapshot) : snapshot_(std::move(snapshot)) {}

bool PrometheusWriter::next(std::string& out, std::size_t budget) {
  const std::size_t stop = out.size() + budget;
  const std::vector<RequestSeries>& requests = snapshot_.requests;
  const std::vector<PhaseSeries>& phases = snapshot_.phases;
  // Each section: its header at its first series, then series until the
  // budget is spent; the next call goes on from there.
  while (out.size() < stop) {
    switch (section_) {
      case Section::kRequests:
        if (index_ == 0) {
          header(out, kRequestsName, "counter",
                 "Requests answered, by route pattern, method, status class, error label and "
                 "canary fallback.");
          labels_.reserve(requests.size());
        }
        // At least one series a call (after the header), so each call moves on.
        while (index_ < requests.size()) {
          // Each series' labels formatted once, for its 28 lines.
          labels_.push_back(request_labels(requests[index_]));
          sample(out, kRequestsName, {}, labels_[index_], requests[index_].count);
          ++index_;
          if (out.size() >= stop) break;
        }
        break;
      case Section::kDurations:
        if (index_ == 0)
          header(out, kDurationName, "histogram",
                 "Time from the request's first byte to the response's completion, as the "
                 "reactor's loop clock sees it.");
        while (index_ < requests.size()) {
          const RequestSeries& s = requests[index_];
          histogram_lines(out, kDurationName, labels_[index_], s.buckets, s.duration_ns, s.count);
          ++index_;
          if (out.size() >= stop) break;
        }
        break;
      case Section::kPhases: {
        if (index_ == 0 && !phases.empty())
          header(out, kPhaseName, "histogram",
                 "Time from the request's first byte to each phase of a proxied exchange "
                 "(upstream_connect: a connection ready, made or pooled; upstream_first_byte: "
                 "the response's head), by route pattern, as the reactor's loop clock sees it.");
        std::string phase_labels;
        while (index_ < phases.size()) {
          const PhaseSeries& s = phases[index_];
          phase_labels = "route=\"";
          append_label_value(phase_labels, s.route);
          phase_labels += "\",phase=\"";
          phase_labels += phase_name(s.phase);
          phase_labels += '"';
          histogram_lines(out, kPhaseName, phase_labels, s.buckets, s.duration_ns, s.count);
          ++index_;
          if (out.size() >= stop) break;
        }
        break;
      }
      case Section::kBytesIn:
      case Section::kBytesOut: {
        const bool in = section_ == Section::kBytesIn;
        const std::string_view name = in ? kBytesInName : kBytesOutName;
        if (index_ == 0)
          header(out, name, "counter",
                 in ? "Request body bytes received, by the labels of portico_requests_total."
                    : "Response body bytes sent, by the labels of portico_requests_total.");
        while (index_ < requests.size()) {
          const RequestSeries& s = requests[index_];
          sample(out, name, {}, labels_[index_], in ? s.bytes_in : s.bytes_out);
          ++index_;
          if (out.size() >= stop) break;
        }
        break;
      }
      case Section::kServer:
        server_counters(out, snapshot_);
        return false;
    }
    const std::size_t section_size =
        section_ == Section::kPhases ? phases.size() : requests.size();
    if (index_ < section_size) return true;  // the budget ran out within it
    section_ = static_cast<Section>(static_cast<unsigned>(section_) + 1);
    index_ = 0;
  }
  return true;
}

void append_prometheus(std::string& out, const MetricsSnapshot& snapshot) {
  // Room for all of it at once (a series writes 28 lines of about 120 bytes
  // and its route): a scrape of thousands of series is megabytes, and
  // growing by doubling would copy it a dozen times.
  std::size_t estimate = 4096;
  for (const RequestSeries& s : snapshot.requests) estimate += 28 * (128 + s.route.size());
  for (const PhaseSeries& s : snapshot.phases) estimate += 24 * (96 + s.route.size());
  out.reserve(out.size() + estimate);
  PrometheusWriter writer(snapshot);
  while (writer.next(out, std::numeric_limits<std::size_t>::max() - out.size())) {
  }
}

}  // namespace v0
}  // namespace portico
