// Differential test for portico::Router / FrozenRouter: random route sets
// (static segments, untyped params, catch-alls; GET/POST/PUT/any-method)
// are matched both by the trie and by a naive linear-scan reference matcher,
// and the two must agree on status, handler, params (names and values, in
// order) and the 405 allowed set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/router.hpp"

namespace {

using portico::FrozenRouter;
using portico::MatchStatus;
using portico::Method;
using portico::MethodSet;
using portico::Params;
using portico::RouteErrc;
using portico::Router;

enum class Kind { kStatic = 0, kParam = 1, kCatchAll = 2 };

struct Segment {
  Kind kind;
  std::string text;  // the static text, or the parameter name
};

struct Route {
  std::optional<Method> method;  // nullopt: any-method (add_any)
  std::vector<Segment> segments;
  int handler = 0;

  std::string pattern() const {
    std::string out;
    for (const auto& s : segments) {
      out += '/';
      if (s.kind == Kind::kParam) out += ':';
      if (s.kind == Kind::kCatchAll) out += '*';
      out += s.text;
    }
    return out;
  }
  std::string method_text() const {
    return method ? std::string(portico::method_name(*method)) : std::string("ANY");
  }
  // Same method and the same segments, parameters compared without names.
  bool same_route(const Route& other) const {
    if (method != other.method || segments.size() != other.segments.size()) return false;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (segments[i].kind != other.segments[i].kind) return false;
      if (segments[i].kind == Kind::kStatic && segments[i].text != other.segments[i].text) {
        return false;
      }
    }
    return true;
  }
};

struct Outcome {
  MatchStatus status = MatchStatus::kNotFound;
  int handler = -1;
  std::vector<std::pair<std::string, std::string>> params;  // name, value
  MethodSet allowed;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

std::string status_name(MatchStatus s) {
  switch (s) {
    case MatchStatus::kFound:
      return "200";
    case MatchStatus::kMethodNotAllowed:
      return "405";
    case MatchStatus::kNotFound:
      return "404";
  }
  return "?";
}

std::string describe(const Outcome& o) {
  std::ostringstream out;
  out << status_name(o.status) << " handler=" << o.handler;
  for (const auto& [name, value] : o.params) out << " " << name << "=" << value;
  out << " allowed=0x" << std::hex << o.allowed.bits();
  return out.str();
}

// ---- the reference ----------------------------------------------------------

// Does `route` match `path`? Fills `values` with the parameter values.
bool route_matches(const Route& route, std::string_view path, std::vector<std::string>& values) {
  values.clear();
  if (path.empty() || path.front() != '/') return false;
  // Segment starts and lengths of path[1:] split by '/'.
  std::vector<std::pair<std::size_t, std::size_t>> segs;
  std::size_t start = 1;
  for (;;) {
    const std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      segs.emplace_back(start, path.size() - start);
      break;
    }
    segs.emplace_back(start, slash - start);
    start = slash + 1;
  }
  for (std::size_t i = 0; i < route.segments.size(); ++i) {
    const Segment& s = route.segments[i];
    if (i >= segs.size()) return false;
    const std::string_view seg = path.substr(segs[i].first, segs[i].second);
    switch (s.kind) {
      case Kind::kStatic:
        if (seg != s.text) return false;
        break;
      case Kind::kParam:
        if (seg.empty()) return false;
        values.emplace_back(seg);
        break;
      case Kind::kCatchAll: {
        const std::string_view rest = path.substr(segs[i].first);
        if (rest.empty()) return false;
        values.emplace_back(rest);
        return true;
      }
    }
  }
  return route.segments.size() == segs.size();
}

// Is `a` a better match than `b` (both matching the same path)?
bool better(const Route& a, const Route& b) {
  const std::size_t n = std::min(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < n; ++i) {
    const int ka = static_cast<int>(a.segments[i].kind);
    const int kb = static_cast<int>(b.segments[i].kind);
    if (ka != kb) return ka < kb;
  }
  // The same shape: a method-specific route beats an any-method one.
  return a.method.has_value() && !b.method.has_value();
}

Outcome reference_match(const std::vector<Route>& routes, Method method, std::string_view path) {
  Outcome out;
  const Route* best = nullptr;
  std::vector<std::string> best_values;
  std::vector<std::string> values;
  MethodSet allowed;
  for (const Route& r : routes) {
    if (!route_matches(r, path, values)) continue;
    if (!r.method || *r.method == method) {
      if (best == nullptr || better(r, *best)) {
        best = &r;
        best_values = values;
      }
    } else {
      allowed.insert(*r.method);
    }
  }
  if (best != nullptr) {
    out.status = MatchStatus::kFound;
    out.handler = best->handler;
    std::size_t v = 0;
    for (const auto& s : best->segments) {
      if (s.kind != Kind::kStatic) out.params.emplace_back(s.text, best_values[v++]);
    }
  } else if (!allowed.empty()) {
    out.status = MatchStatus::kMethodNotAllowed;
    out.allowed = allowed;
  }
  return out;
}

Outcome router_match(const FrozenRouter<int>& frozen, Method method, std::string_view path) {
  Outcome out;
  Params params;
  const auto m = frozen.match(method, path, params);
  out.status = m.status;
  out.allowed = m.allowed;
  if (m.status == MatchStatus::kFound) {
    out.handler = m.handler == nullptr ? -2 : *m.handler;
    for (std::size_t i = 0; i < params.size(); ++i) {
      out.params.emplace_back(std::string(params.name(i)), std::string(params[i]));
    }
  } else if (m.handler != nullptr) {
    out.handler = -3;  // a handler without kFound: always a mismatch
  }
  return out;
}

// ---- building ---------------------------------------------------------------

// Adds the candidates to a router; a candidate the router rejects is left out
// of `accepted`. The router must reject exactly the duplicates.
FrozenRouter<int> build(const std::vector<Route>& candidates, std::vector<Route>& accepted,
                        bool check_errors) {
  Router<int> router;
  accepted.clear();
  for (const Route& r : candidates) {
    const std::string pattern = r.pattern();
    portico::RouteError error =
        r.method ? router.add(*r.method, pattern, r.handler) : router.add_any(pattern, r.handler);
    bool duplicate = false;
    for (const Route& a : accepted) duplicate = duplicate || a.same_route(r);
    if (check_errors) {
      EXPECT_EQ(static_cast<bool>(error), duplicate)
          << r.method_text() << " " << pattern << ": " << error.message();
      if (error) {
        EXPECT_EQ(error.code(), portico::make_error_code(RouteErrc::kDuplicateRoute))
            << r.method_text() << " " << pattern << ": " << error.message();
      }
    }
    if (!error) accepted.push_back(r);
  }
  auto frozen = std::move(router).freeze();
  if (check_errors) {
    EXPECT_EQ(frozen.trie().check_invariants(), "");
  }
  return frozen;
}

// ---- generation -------------------------------------------------------------

const std::vector<std::string> kTokens = {"a", "b", "ab", "users", "new", ":id", ":x", "*rest"};
const std::vector<std::string> kValues = {"1", "new", "a", "ab", "zz"};
// Segments for random paths: the static texts, values, near misses, empty.
const std::vector<std::string> kPathSegments = {"a",  "b",   "ab",   "users",  "new", "1",
                                                "zz", "abc", "user", "usersx", "",    "A"};
constexpr Method kRequestMethods[] = {Method::Get, Method::Post, Method::Put, Method::Delete};

std::size_t pick(std::mt19937& rng, std::size_t n) {
  return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
}
bool chance(std::mt19937& rng, int percent) {
  return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
}

Route random_route(std::mt19937& rng, int handler) {
  Route r;
  r.handler = handler;
  switch (pick(rng, 4)) {
    case 0:
      r.method = Method::Get;
      break;
    case 1:
      r.method = Method::Post;
      break;
    case 2:
      r.method = Method::Put;
      break;
    default:
      break;  // any-method
  }
  const std::size_t depth = 1 + pick(rng, 4);
  for (std::size_t i = 0; i < depth; ++i) {
    std::string token;
    do {
      token = kTokens[pick(rng, kTokens.size())];
    } while (token[0] == '*' && i + 1 != depth);
    Segment s{Kind::kStatic, token};
    if (token[0] == ':' || token[0] == '*') {
      s.kind = token[0] == ':' ? Kind::kParam : Kind::kCatchAll;
      s.text = token.substr(1);
      // Parameter names must be unique within a route.
      bool used = true;
      for (int suffix = 2; used; ++suffix) {
        used = false;
        for (const auto& prev : r.segments)
          used = used || (prev.kind != Kind::kStatic && prev.text == s.text);
        if (used) s.text = token.substr(1) + std::to_string(suffix);
      }
    }
    r.segments.push_back(std::move(s));
  }
  return r;
}

std::string join(const std::vector<std::string>& segments) {
  if (segments.empty()) return "/";
  std::string out;
  for (const auto& s : segments) out += "/" + s;
  return out;
}

std::string random_path(std::mt19937& rng, const std::vector<Route>& routes) {
  std::vector<std::string> segs;
  if (routes.empty() || chance(rng, 20)) {
    const std::size_t n = pick(rng, 6);
    for (std::size_t i = 0; i < n; ++i)
      segs.push_back(kPathSegments[pick(rng, kPathSegments.size())]);
    return join(segs);
  }
  const Route& r = routes[pick(rng, routes.size())];
  for (const auto& s : r.segments) {
    switch (s.kind) {
      case Kind::kStatic:
        segs.push_back(s.text);
        break;
      case Kind::kParam:
        segs.push_back(kValues[pick(rng, kValues.size())]);
        break;
      case Kind::kCatchAll: {
        const std::size_t n = 1 + pick(rng, 3);
        for (std::size_t i = 0; i < n; ++i) segs.push_back(kValues[pick(rng, kValues.size())]);
        break;
      }
    }
  }
  bool trailing_slash = false;
  if (chance(rng, 40)) {
    switch (pick(rng, 5)) {
      case 0:  // drop a segment
        if (!segs.empty())
          segs.erase(segs.begin() + static_cast<std::ptrdiff_t>(pick(rng, segs.size())));
        break;
      case 1:  // add a segment
        segs.insert(segs.begin() + static_cast<std::ptrdiff_t>(pick(rng, segs.size() + 1)),
                    kPathSegments[pick(rng, kPathSegments.size())]);
        break;
      case 2:
        trailing_slash = true;
        break;
      case 3:  // an empty segment
        segs.insert(segs.begin() + static_cast<std::ptrdiff_t>(pick(rng, segs.size() + 1)), "");
        break;
      default:  // replace a segment
        segs[pick(rng, segs.size())] = kPathSegments[pick(rng, kPathSegments.size())];
        break;
    }
  }
  std::string path = join(segs);
  if (trailing_slash && path != "/") path += '/';
  return path;
}

std::string dump(const std::vector<Route>& routes) {
  std::string out;
  for (const auto& r : routes) {
    out += "  " + r.method_text() + " " + r.pattern() + " -> " + std::to_string(r.handler) + "\n";
  }
  return out;
}

bool disagree(const std::vector<Route>& candidates, Method method, const std::string& path) {
  std::vector<Route> accepted;
  const auto frozen = build(candidates, accepted, false);
  return !(router_match(frozen, method, path) == reference_match(accepted, method, path));
}

// Drops routes one at a time while the disagreement persists.
std::vector<Route> shrink(std::vector<Route> routes, Method method, const std::string& path) {
  for (bool progress = true; progress;) {
    progress = false;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      auto fewer = routes;
      fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
      if (disagree(fewer, method, path)) {
        routes = std::move(fewer);
        progress = true;
        break;
      }
    }
  }
  return routes;
}

TEST(RouterDifferential, MatchesNaiveReference) {
  constexpr int kRouteSets = 2000;
  constexpr int kPathsPerSet = 30;
  std::size_t lookups = 0;
  std::size_t found = 0;
  std::size_t not_allowed = 0;
  std::size_t rejected = 0;
  int failures = 0;
  for (int set = 0; set < kRouteSets && failures < 3; ++set) {
    std::mt19937 rng(static_cast<std::mt19937::result_type>(set) * 7919u + 1u);
    const std::size_t count = 1 + pick(rng, 40);
    std::vector<Route> candidates;
    for (std::size_t i = 0; i < count; ++i)
      candidates.push_back(random_route(rng, static_cast<int>(i)));
    std::vector<Route> accepted;
    const auto frozen = build(candidates, accepted, true);
    rejected += candidates.size() - accepted.size();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "route set " << set << ":\n" << dump(candidates);
      return;
    }
    for (int p = 0; p < kPathsPerSet && failures < 3; ++p) {
      const std::string path = random_path(rng, accepted);
      for (const Method method : kRequestMethods) {
        ++lookups;
        const Outcome expected = reference_match(accepted, method, path);
        const Outcome actual = router_match(frozen, method, path);
        if (expected.status == MatchStatus::kFound) ++found;
        if (expected.status == MatchStatus::kMethodNotAllowed) ++not_allowed;
        if (expected == actual) continue;
        ++failures;
        const auto minimal = shrink(accepted, method, path);
        std::vector<Route> minimal_accepted;
        const auto small = build(minimal, minimal_accepted, false);
        ADD_FAILURE() << "route set " << set << ", " << portico::method_name(method) << " " << path
                      << "\n  router:    " << describe(actual)
                      << "\n  reference: " << describe(expected) << "\nminimal routes:\n"
                      << dump(minimal)
                      << "  router:    " << describe(router_match(small, method, path))
                      << "\n  reference: "
                      << describe(reference_match(minimal_accepted, method, path));
        break;
      }
    }
  }
  // The generator must exercise every outcome.
  EXPECT_GT(found, lookups / 10);
  EXPECT_GT(not_allowed, lookups / 100);
  EXPECT_GT(rejected, 0u);
  RecordProperty("lookups", static_cast<int>(lookups));
  std::printf("lookups=%zu found=%zu not_allowed=%zu rejected_duplicates=%zu\n", lookups, found,
              not_allowed, rejected);
}

}  // namespace
