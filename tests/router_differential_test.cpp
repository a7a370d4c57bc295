// Differential test for portico::Router / FrozenRouter: random route sets
// (static segments, untyped params, catch-alls; GET/POST/PUT/any-method)
// are matched both by the trie and by the naive linear-scan reference matcher
// in router_reference.hpp, and the two must agree on status, handler, params (names and values, in
// order) and the 405 allowed set.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/router.hpp"
#include "router_reference.hpp"

namespace {

using portico::FrozenRouter;
using portico::MatchStatus;
using portico::Method;
using portico::RouteErrc;
using portico::Router;
using portico_test::describe;
using portico_test::Kind;
using portico_test::Outcome;
using portico_test::reference_match;
using portico_test::Route;
using portico_test::router_match;
using portico_test::Segment;

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
