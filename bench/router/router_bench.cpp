// FrozenRouter lookups and builds on gateway-shaped tables scaling from 100
// to 120,000 routes, against two baselines compiled into the same binary:
//
//   Portico_*     FrozenRouter<std::uint32_t>::match (Params filled)
//   Linear_*      a naive matcher: every pattern pre-split into segments,
//                 routes kept in priority order (static < param < catch-all,
//                 segment by segment from the left; method-specific first),
//                 the path split into segments per lookup, the first route
//                 that matches wins. Params filled the same way.
//   UnorderedMap_*  std::unordered_map<std::string, H> per method, exact
//                 match on the path (heterogeneous lookup, no allocation):
//                 static-only tables only.
//
// Tables (generated in-process, fixed seeds, no files; the shape of
// bench/router/tables/gen_tables.py's gateway table):
//   param   /api/{version}/{service}/{resource}[/:id[/{sub}[/:sid...]]],
//           tenants, static siblings of params ("new", "latest") and a
//           catch-all per 10th service: 20 routes per resource.
//   static  the same services and resources with only static segments:
//           20 routes per resource.
// Sizes: 100, 1000, 10000 and 120000 routes (versions x services x resources
// x 20). Lookups cycle through 4096 requests drawn from the table (about 95%
// hits, the rest one segment too many); every request's answer is checked
// against the linear matcher before timing. Counters: bytes_per_route
// (FrozenRouter::memory_bytes() / routes), routes.
//
// Quote only ratios between cases of one run, e.g.
//   router_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "portico/router.hpp"

namespace {

using portico::Method;
using Handler = std::uint32_t;
constexpr Handler kNoHandler = ~Handler{0};

// ---- tables -----------------------------------------------------------------

struct BenchRoute {
  Method method;
  std::string pattern;
};
struct BenchRequest {
  Method method;
  std::string path;
};
struct Table {
  std::vector<BenchRoute> routes;
  std::vector<BenchRequest> requests;
  std::size_t pattern_bytes = 0;
};

enum class Shape { kStatic, kParam };

// gen_tables.py's word list.
constexpr std::string_view kWords[] = {
    "account",  "address",  "alert",        "archive",  "asset",    "audit",    "backup",
    "badge",    "balance",  "batch",        "bill",     "blob",     "board",    "booking",
    "branch",   "budget",   "bundle",       "cache",    "campaign", "card",     "cart",
    "case",     "catalog",  "channel",      "charge",   "chart",    "check",    "claim",
    "client",   "cluster",  "comment",      "config",   "contact",  "contract", "coupon",
    "credit",   "customer", "dashboard",    "device",   "discount", "dispute",  "document",
    "domain",   "draft",    "event",        "export",   "feature",  "feed",     "file",
    "filter",   "folder",   "form",         "gateway",  "grant",    "group",    "hook",
    "image",    "import",   "incident",     "invoice",  "issue",    "item",     "job",
    "key",      "label",    "lead",         "ledger",   "license",  "link",     "list",
    "log",      "mailbox",  "media",        "member",   "message",  "meter",    "metric",
    "model",    "monitor",  "note",         "notice",   "offer",    "order",    "owner",
    "package",  "page",     "partner",      "payment",  "payout",   "plan",     "policy",
    "pool",     "post",     "price",        "product",  "profile",  "project",  "promo",
    "queue",    "quota",    "quote",        "receipt",  "record",   "refund",   "region",
    "release",  "report",   "request",      "review",   "role",     "rule",     "run",
    "schedule", "scope",    "secret",       "segment",  "session",  "setting",  "share",
    "shipment", "site",     "slot",         "snapshot", "source",   "space",    "stage",
    "stock",    "store",    "subscription", "survey",   "tag",      "task",     "team",
    "template", "ticket",   "token",        "topic",    "track",    "transfer", "trigger",
    "upload",   "user",     "vault",        "vendor",   "version",  "volume",   "voucher",
    "wallet",   "webhook",  "widget",       "workflow", "zone"};
constexpr std::size_t kWordCount = std::size(kWords);

std::string plural(std::string_view word) {
  const bool es =
      word.ends_with('s') || word.ends_with('x') || word.ends_with("ch") || word.ends_with("sh");
  return std::string(word) + (es ? "es" : "s");
}

// `versions` x `services` x `resources` x 20 routes (+ a catch-all per 10th
// service in the param shape).
Table make_table(Shape shape, int versions, int services, int resources) {
  std::mt19937 rng(20261123);
  auto word = [&] {
    return kWords[std::uniform_int_distribution<std::size_t>(0, kWordCount - 1)(rng)];
  };
  std::vector<std::string> service_names;
  while (service_names.size() < static_cast<std::size_t>(services)) {
    std::string name = std::string(word()) + "-" + std::string(word());
    if (std::find(service_names.begin(), service_names.end(), name) == service_names.end()) {
      service_names.push_back(std::move(name));
    }
  }
  struct Resource {
    std::string name, sub, sub2;
  };
  std::vector<std::vector<Resource>> layout;
  for (int s = 0; s < services; ++s) {
    std::vector<std::string_view> pool(std::begin(kWords), std::end(kWords));
    std::shuffle(pool.begin(), pool.end(), rng);
    std::vector<Resource> rs;
    for (int r = 0; r < resources; ++r) {
      // Two distinct sub-resources, both different from the resource.
      std::string_view a = word();
      while (a == pool[static_cast<std::size_t>(r)]) a = word();
      std::string_view b = word();
      while (b == pool[static_cast<std::size_t>(r)] || b == a) b = word();
      rs.push_back({plural(pool[static_cast<std::size_t>(r)]), plural(a), plural(b)});
    }
    layout.push_back(std::move(rs));
  }

  Table t;
  auto add = [&](Method m, std::string p) {
    t.pattern_bytes += p.size();
    t.routes.push_back({m, std::move(p)});
  };
  constexpr std::string_view kVersions[] = {"v1", "v2", "v3", "v4"};
  for (int v = 0; v < versions; ++v) {
    for (int s = 0; s < services; ++s) {
      const std::string base = "/api/" + std::string(kVersions[v % 4]) + "/" +
                               service_names[static_cast<std::size_t>(s)];
      for (const Resource& res : layout[static_cast<std::size_t>(s)]) {
        const std::string r = base + "/" + res.name;
        if (shape == Shape::kParam) {
          const std::string t_ = base + "/tenants/:tenant/" + res.name;
          add(Method::Get, r);
          add(Method::Post, r);
          add(Method::Get, r + "/new");
          add(Method::Get, r + "/:id");
          add(Method::Put, r + "/:id");
          add(Method::Delete, r + "/:id");
          add(Method::Get, r + "/:id/" + res.sub);
          add(Method::Post, r + "/:id/" + res.sub);
          add(Method::Get, r + "/:id/" + res.sub + "/:sid");
          add(Method::Patch, r + "/:id/" + res.sub + "/:sid");
          add(Method::Delete, r + "/:id/" + res.sub + "/:sid");
          add(Method::Get, r + "/:id/" + res.sub + "/latest");
          add(Method::Get, r + "/:id/" + res.sub2);
          add(Method::Get, r + "/:id/" + res.sub2 + "/:sid/items/:iid");
          add(Method::Get, t_);
          add(Method::Post, t_);
          add(Method::Get, t_ + "/:id");
          add(Method::Put, t_ + "/:id");
          add(Method::Get, t_ + "/:id/" + res.sub);
          add(Method::Get, t_ + "/:id/" + res.sub + "/:sid");
        } else {
          for (const std::string& p :
               {r, r + "/new", r + "/search", r + "/count", r + "/export", r + "/" + res.sub,
                r + "/" + res.sub + "/latest", r + "/" + res.sub + "/count", r + "/" + res.sub2,
                r + "/" + res.sub2 + "/summary"}) {
            add(Method::Get, p);
            add(Method::Post, p);
          }
        }
      }
      if (shape == Shape::kParam && s % 10 == 0) add(Method::Get, base + "/*path");
    }
  }

  // Requests: a route with its params filled in; 5% get an extra segment.
  constexpr std::size_t kRequests = 4096;
  constexpr std::string_view kTenants[] = {"acme", "globex", "initech", "umbrella", "hooli"};
  std::uniform_int_distribution<std::size_t> pick_route(0, t.routes.size() - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> id(1, 9'999'999);
  for (std::size_t i = 0; i < kRequests; ++i) {
    const BenchRoute& route = t.routes[pick_route(rng)];
    std::string path;
    std::size_t at = 0;
    const std::string_view p = route.pattern;
    while (at < p.size()) {
      std::size_t end = p.find('/', at + 1);
      if (end == std::string_view::npos) end = p.size();
      const std::string_view seg = p.substr(at + 1, end - at - 1);
      path += '/';
      if (seg.starts_with(":tenant")) {
        path += kTenants[static_cast<std::size_t>(id(rng)) % std::size(kTenants)];
      } else if (seg.starts_with(':')) {
        path += std::to_string(id(rng));
      } else if (seg.starts_with('*')) {
        path += "x/more";
      } else {
        path += seg;
      }
      at = end;
    }
    if (percent(rng) < 5) path += "/zz";
    t.requests.push_back({route.method, std::move(path)});
  }
  return t;
}

// ---- baseline 1: the linear matcher -----------------------------------------

class LinearRouter {
 public:
  static constexpr std::size_t kMaxSegments = 32;
  using Values = std::array<std::string_view, portico::Params::kCapacity>;

  void add(Method method, std::string_view pattern, Handler handler) {
    Route r;
    r.method = method;
    r.handler = handler;
    std::size_t at = 0;
    while (at < pattern.size()) {
      std::size_t end = pattern.find('/', at + 1);
      if (end == std::string_view::npos) end = pattern.size();
      const std::string_view seg = pattern.substr(at + 1, end - at - 1);
      if (seg.starts_with(':')) {
        r.segments.push_back({Kind::kParam, std::string(seg.substr(1))});
      } else if (seg.starts_with('*')) {
        r.segments.push_back({Kind::kCatchAll, std::string(seg.substr(1))});
      } else {
        r.segments.push_back({Kind::kStatic, std::string(seg)});
      }
      at = end;
    }
    routes_.push_back(std::move(r));
  }
  // Sorts the routes into priority order: then the first match is the best.
  void finish() {
    std::stable_sort(routes_.begin(), routes_.end(), [](const Route& a, const Route& b) {
      const std::size_t n = std::min(a.segments.size(), b.segments.size());
      for (std::size_t i = 0; i < n; ++i) {
        if (a.segments[i].kind != b.segments[i].kind)
          return a.segments[i].kind < b.segments[i].kind;
      }
      return false;
    });
  }

  // The handler of the best route for `method` and `path`, or kNoHandler.
  Handler match(Method method, std::string_view path, Values& values,
                std::size_t& value_count) const noexcept {
    std::array<std::string_view, kMaxSegments> segs;
    std::array<std::size_t, kMaxSegments> starts;
    std::size_t n = 0;
    if (path.empty() || path.front() != '/') return kNoHandler;
    for (std::size_t at = 1;;) {
      if (n == kMaxSegments) return kNoHandler;
      const std::size_t slash = path.find('/', at);
      starts[n] = at;
      if (slash == std::string_view::npos) {
        segs[n++] = path.substr(at);
        break;
      }
      segs[n++] = path.substr(at, slash - at);
      at = slash + 1;
    }
    for (const Route& r : routes_) {
      if (r.method != method) continue;
      if (matches(r, path, segs, starts, n, values, value_count)) return r.handler;
    }
    return kNoHandler;
  }

 private:
  enum class Kind : std::uint8_t { kStatic, kParam, kCatchAll };
  struct Segment {
    Kind kind;
    std::string text;
  };
  struct Route {
    Method method;
    Handler handler;
    std::vector<Segment> segments;
  };

  static bool matches(const Route& r, std::string_view path,
                      const std::array<std::string_view, kMaxSegments>& segs,
                      const std::array<std::size_t, kMaxSegments>& starts, std::size_t n,
                      Values& values, std::size_t& value_count) noexcept {
    value_count = 0;
    for (std::size_t i = 0; i < r.segments.size(); ++i) {
      if (i >= n) return false;
      const Segment& s = r.segments[i];
      switch (s.kind) {
        case Kind::kStatic:
          if (segs[i] != s.text) return false;
          break;
        case Kind::kParam:
          if (segs[i].empty()) return false;
          values[value_count++] = segs[i];
          break;
        case Kind::kCatchAll: {
          const std::string_view rest = path.substr(starts[i]);
          if (rest.empty()) return false;
          values[value_count++] = rest;
          return true;
        }
      }
    }
    return r.segments.size() == n;
  }

  std::vector<Route> routes_;
};

// ---- baseline 2: exact match in std::unordered_map ----------------------------

struct PathHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

class MapRouter {
 public:
  void add(Method method, std::string_view pattern, Handler handler) {
    maps_[static_cast<std::size_t>(method)].emplace(std::string(pattern), handler);
  }
  Handler match(Method method, std::string_view path) const noexcept {
    const auto& map = maps_[static_cast<std::size_t>(method)];
    const auto it = map.find(path);
    return it == map.end() ? kNoHandler : it->second;
  }

 private:
  std::array<std::unordered_map<std::string, Handler, PathHash, std::equal_to<>>,
             portico::kStandardMethodCount>
      maps_;
};

// ---- fixtures: built once per (shape, size), shared by the cases --------------

struct Dimensions {
  int versions, services, resources;
};
Dimensions dimensions(std::int64_t routes) {
  switch (routes) {
    case 100:
      return {1, 1, 5};
    case 1000:
      return {1, 5, 10};
    case 10000:
      return {1, 25, 20};
    default:
      return {3, 100, 20};  // 120,000
  }
}

portico::FrozenRouter<Handler> build_portico(const Table& t) {
  portico::Router<Handler> router;
  router.reserve(t.routes.size(), t.pattern_bytes);
  for (Handler h = 0; h < t.routes.size(); ++h) {
    const BenchRoute& r = t.routes[h];
    if (portico::RouteError error = router.add(r.method, r.pattern, h)) {
      std::fprintf(stderr, "router_bench: %s\n", error.message().c_str());
      std::abort();
    }
  }
  return std::move(router).freeze();
}

LinearRouter build_linear(const Table& t) {
  LinearRouter router;
  for (Handler h = 0; h < t.routes.size(); ++h)
    router.add(t.routes[h].method, t.routes[h].pattern, h);
  router.finish();
  return router;
}

MapRouter build_map(const Table& t) {
  MapRouter router;
  for (Handler h = 0; h < t.routes.size(); ++h)
    router.add(t.routes[h].method, t.routes[h].pattern, h);
  return router;
}

struct Fixture {
  Table table;
  portico::FrozenRouter<Handler> portico;
  LinearRouter linear;
  std::unique_ptr<MapRouter> map;  // static shape only
  std::string error;               // the routers disagree: why
};

const Fixture& fixture(Shape shape, std::int64_t routes) {
  static std::map<std::pair<Shape, std::int64_t>, std::unique_ptr<Fixture>> cache;
  auto& slot = cache[{shape, routes}];
  if (slot) return *slot;
  slot = std::make_unique<Fixture>();
  Fixture& f = *slot;
  const Dimensions d = dimensions(routes);
  f.table = make_table(shape, d.versions, d.services, d.resources);
  f.portico = build_portico(f.table);
  f.linear = build_linear(f.table);
  if (shape == Shape::kStatic) f.map = std::make_unique<MapRouter>(build_map(f.table));
  // The routers must agree: portico and the map on every request, the
  // linear matcher (handler and params) on every request of tables up to
  // 10,000 routes and on the first 256 of larger ones (it takes ~1 ms a
  // lookup at 120,000 routes).
  const std::size_t linear_checks = routes > 10000 ? 256 : f.table.requests.size();
  portico::Params params;
  LinearRouter::Values values;
  std::size_t value_count = 0;
  for (std::size_t i = 0; i < f.table.requests.size() && f.error.empty(); ++i) {
    const BenchRequest& rq = f.table.requests[i];
    const Handler* found = f.portico.find(rq.method, rq.path, params);
    const Handler p = found == nullptr ? kNoHandler : *found;
    bool same = !f.map || f.map->match(rq.method, rq.path) == p;
    if (i < linear_checks) {
      same = same && f.linear.match(rq.method, rq.path, values, value_count) == p;
      if (same && p != kNoHandler) same = params.size() == value_count;
      for (std::size_t v = 0; same && p != kNoHandler && v < value_count; ++v) {
        same = params[v] == values[v];
      }
    }
    if (!same) {
      f.error =
          "routers disagree on " + std::string(portico::method_name(rq.method)) + " " + rq.path;
    }
  }
  return f;
}

void set_counters(benchmark::State& state, const Fixture& f) {
  const double routes = static_cast<double>(f.table.routes.size());
  state.counters["routes"] = routes;
  state.counters["bytes_per_route"] = static_cast<double>(f.portico.memory_bytes()) / routes;
}

// ---- lookups ------------------------------------------------------------------

void BM_Portico_Lookup(benchmark::State& state, Shape shape) {
  const Fixture& f = fixture(shape, state.range(0));
  if (!f.error.empty()) state.SkipWithError(f.error.c_str());
  const auto& requests = f.table.requests;
  portico::Params params;
  std::size_t i = 0;
  for (auto _ : state) {
    const BenchRequest& rq = requests[i];
    i = (i + 1) & (requests.size() - 1);
    const auto match = f.portico.match(rq.method, rq.path, params);
    benchmark::DoNotOptimize(match.handler);
    benchmark::DoNotOptimize(params);
  }
  set_counters(state, f);
}

void BM_Linear_Lookup(benchmark::State& state, Shape shape) {
  const Fixture& f = fixture(shape, state.range(0));
  if (!f.error.empty()) state.SkipWithError(f.error.c_str());
  const auto& requests = f.table.requests;
  LinearRouter::Values values;
  std::size_t value_count = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    const BenchRequest& rq = requests[i];
    i = (i + 1) & (requests.size() - 1);
    benchmark::DoNotOptimize(f.linear.match(rq.method, rq.path, values, value_count));
    benchmark::DoNotOptimize(values);
  }
  state.counters["routes"] = static_cast<double>(f.table.routes.size());
}

void BM_UnorderedMap_Lookup(benchmark::State& state) {
  const Fixture& f = fixture(Shape::kStatic, state.range(0));
  if (!f.error.empty()) state.SkipWithError(f.error.c_str());
  const auto& requests = f.table.requests;
  std::size_t i = 0;
  for (auto _ : state) {
    const BenchRequest& rq = requests[i];
    i = (i + 1) & (requests.size() - 1);
    benchmark::DoNotOptimize(f.map->match(rq.method, rq.path));
  }
  state.counters["routes"] = static_cast<double>(f.table.routes.size());
}

// ---- builds -------------------------------------------------------------------

// Time per whole table (add every route, then freeze); the table's patterns
// are generated outside the timed region.
void BM_Portico_Build(benchmark::State& state, Shape shape) {
  const Fixture& f = fixture(shape, state.range(0));
  for (auto _ : state) {
    auto frozen = build_portico(f.table);
    benchmark::DoNotOptimize(frozen);
  }
  set_counters(state, f);
  state.counters["ns_per_route"] = benchmark::Counter(
      static_cast<double>(f.table.routes.size()),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_Linear_Build(benchmark::State& state, Shape shape) {
  const Fixture& f = fixture(shape, state.range(0));
  for (auto _ : state) {
    auto router = build_linear(f.table);
    benchmark::DoNotOptimize(router);
  }
  state.counters["routes"] = static_cast<double>(f.table.routes.size());
}

void BM_UnorderedMap_Build(benchmark::State& state) {
  const Fixture& f = fixture(Shape::kStatic, state.range(0));
  for (auto _ : state) {
    auto router = build_map(f.table);
    benchmark::DoNotOptimize(router);
  }
  state.counters["routes"] = static_cast<double>(f.table.routes.size());
}

// Each case is bounded by its minimum time; the slowest (a linear scan over
// 120,000 routes, a few ms per lookup) still stops after that time.
constexpr double kMinTime = 0.2;

void sizes(benchmark::internal::Benchmark* b) {
  b->Arg(100)->Arg(1000)->Arg(10000)->Arg(120000)->MinTime(kMinTime);
}

BENCHMARK_CAPTURE(BM_Portico_Lookup, static, Shape::kStatic)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Linear_Lookup, static, Shape::kStatic)->Apply(sizes);
BENCHMARK(BM_UnorderedMap_Lookup)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Portico_Lookup, param, Shape::kParam)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Linear_Lookup, param, Shape::kParam)->Apply(sizes);
BENCHMARK_CAPTURE(BM_Portico_Build, static, Shape::kStatic)
    ->Apply(sizes)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Linear_Build, static, Shape::kStatic)
    ->Apply(sizes)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_UnorderedMap_Build)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Portico_Build, param, Shape::kParam)
    ->Apply(sizes)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Linear_Build, param, Shape::kParam)
    ->Apply(sizes)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
