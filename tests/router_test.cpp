// Unit tests for portico::Router / FrozenRouter: pattern syntax, priorities,
// backtracking, methods and 405, helpers, errors, and the trie invariants.
#include "portico/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace {

using portico::FrozenRouter;
using portico::MatchStatus;
using portico::Method;
using portico::Params;
using portico::RouteErrc;
using portico::Router;

struct RouteSpec {
  std::string method;  // "ANY" for add_any
  std::string pattern;
};

// Builds a router whose handler is the route's index; fails the test on error.
FrozenRouter<int> build(const std::vector<RouteSpec>& routes) {
  Router<int> router;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const auto& r = routes[i];
    portico::RouteError error = r.method == "ANY"
                                    ? router.add_any(r.pattern, static_cast<int>(i))
                                    : router.add(r.method, r.pattern, static_cast<int>(i));
    EXPECT_FALSE(error) << r.method << " " << r.pattern << ": " << error.message();
  }
  auto frozen = std::move(router).freeze();
  EXPECT_EQ(frozen.trie().check_invariants(), "");
  return frozen;
}

// The handler found, or `none` when there is none.
template <class H>
H handler_or(const FrozenRouter<H>& frozen, Method method, std::string_view path, Params& params,
             H none) {
  const H* h = frozen.find(method, path, params);
  return h == nullptr ? none : *h;
}

// "200 <pattern> k=v ...", "404" or "405 A,B" — the CLI's format.
std::string describe(const FrozenRouter<int>& frozen, const std::vector<RouteSpec>& routes,
                     std::string_view method, std::string_view path) {
  Params params;
  auto m = frozen.match(method, path, params);
  switch (m.status) {
    case MatchStatus::kFound: {
      if (m.handler == nullptr) return "found without a handler";
      std::string out = "200 " + routes[static_cast<std::size_t>(*m.handler)].pattern;
      for (std::size_t i = 0; i < params.size(); ++i) {
        out += " " + std::string(params.name(i)) + "=" + std::string(params[i]);
      }
      return out;
    }
    case MatchStatus::kMethodNotAllowed:
      return "405 " + frozen.allow_header(m.allowed, ",");
    case MatchStatus::kNotFound:
      return "404";
  }
  return "?";
}

struct Case {
  std::string method;
  std::string path;
  std::string expected;
};

void expect_cases(const std::vector<RouteSpec>& routes, const std::vector<Case>& cases) {
  auto frozen = build(routes);
  for (const auto& c : cases) {
    EXPECT_EQ(describe(frozen, routes, c.method, c.path), c.expected) << c.method << " " << c.path;
  }
}

TEST(RouterTest, StaticRoutes) {
  expect_cases({{"GET", "/"},
                {"GET", "/users"},
                {"GET", "/users/"},
                {"GET", "/user"},
                {"GET", "/users/list"},
                {"GET", "/a//b"},
                {"GET", "/v1/things:batchGet"}},
               {{"GET", "/", "200 /"},
                {"GET", "/users", "200 /users"},
                {"GET", "/users/", "200 /users/"},
                {"GET", "/user", "200 /user"},
                {"GET", "/users/list", "200 /users/list"},
                {"GET", "/users/lis", "404"},
                {"GET", "/users/listx", "404"},
                {"GET", "/a//b", "200 /a//b"},
                {"GET", "/v1/things:batchGet", "200 /v1/things:batchGet"},
                {"GET", "/USERS", "404"},
                {"GET", "", "404"}});
}

TEST(RouterTest, ParamSyntaxes) {
  expect_cases({{"GET", "/a/:x"},
                {"GET", "/b/{y}"},
                {"GET", "/c/*rest"},
                {"GET", "/d/{*rest}"},
                {"GET", "/e/:x/f/{y}/g"}},
               {{"GET", "/a/1", "200 /a/:x x=1"},
                {"GET", "/b/two", "200 /b/{y} y=two"},
                {"GET", "/c/x/y/z", "200 /c/*rest rest=x/y/z"},
                {"GET", "/d/x/", "200 /d/{*rest} rest=x/"},
                {"GET", "/e/1/f/2/g", "200 /e/:x/f/{y}/g x=1 y=2"},
                {"GET", "/a/", "404"},
                {"GET", "/a/1/", "404"},
                {"GET", "/c/", "404"},
                {"GET", "/c", "404"}});
}

TEST(RouterTest, ParamNeverMatchesEmptySegment) {
  expect_cases({{"GET", "/users/:user/repos"}},
               {{"GET", "/users//repos", "404"},
                {"GET", "/users/x/repos", "200 /users/:user/repos user=x"}});
}

// The rule: a param matches one non-empty segment, a catch-all a
// non-empty rest, the rest being everything after the catch-all's slash. So
// "/users//repos" is no match for ":user" but is one for "*rest", with the
// rest "/repos" (its empty first segment included), as the reference
// matchers (router_reference.hpp, bench/router/tables/gen_tables.py) say too.
TEST(RouterTest, CatchAllTakesANonEmptyRestStartingWithEmptySegments) {
  expect_cases({{"GET", "/users/*rest"}, {"GET", "/users/:user/repos"}},
               {{"GET", "/users//repos", "200 /users/*rest rest=/repos"},
                {"GET", "/users//", "200 /users/*rest rest=/"},
                {"GET", "/users///x", "200 /users/*rest rest=//x"},
                {"GET", "/users/x/repos", "200 /users/:user/repos user=x"},
                {"GET", "/users/x/repos/", "200 /users/*rest rest=x/repos/"},
                {"GET", "/users/", "404"},
                {"GET", "/users", "404"}});
  expect_cases({{"GET", "/users/:user/repos"}}, {{"GET", "/users//repos", "404"}});
}

TEST(RouterTest, OverlappingPriorities) {
  const std::vector<RouteSpec> routes = {{"GET", "/users/new"},
                                         {"GET", "/users/{id:int}"},
                                         {"GET", "/users/:name"},
                                         {"GET", "/users/*rest"}};
  expect_cases(routes, {{"GET", "/users/new", "200 /users/new"},
                        {"GET", "/users/42", "200 /users/{id:int} id=42"},
                        {"GET", "/users/bob", "200 /users/:name name=bob"},
                        {"GET", "/users/newer", "200 /users/:name name=newer"},
                        {"GET", "/users/ne", "200 /users/:name name=ne"},
                        {"GET", "/users/new/x", "200 /users/*rest rest=new/x"},
                        {"GET", "/users/42/x", "200 /users/*rest rest=42/x"}});
}

TEST(RouterTest, BacktracksFromDeadEndedBranches) {
  expect_cases({{"GET", "/a/b/c"}, {"GET", "/a/:x/d"}, {"GET", "/:y/b/e"}, {"GET", "/*all"}},
               {{"GET", "/a/b/c", "200 /a/b/c"},
                {"GET", "/a/b/d", "200 /a/:x/d x=b"},
                {"GET", "/a/b/e", "200 /:y/b/e y=a"},
                {"GET", "/a/b/f", "200 /*all all=a/b/f"},
                {"GET", "/a/zz/d", "200 /a/:x/d x=zz"}});
}

TEST(RouterTest, TypedParams) {
  expect_cases({{"GET", "/i/{v:int}"},
                {"GET", "/u/{v:uuid}"},
                {"GET", "/h/{v:hex}"},
                {"GET", "/a/{v:alpha}"},
                {"GET", "/m/{v:int}"},
                {"GET", "/m/{v:hex}"},
                {"GET", "/m/{v:alpha}"}},
               {{"GET", "/i/123", "200 /i/{v:int} v=123"},
                {"GET", "/i/12a", "404"},
                {"GET", "/u/123e4567-e89b-12d3-a456-426614174000",
                 "200 /u/{v:uuid} v=123e4567-e89b-12d3-a456-426614174000"},
                {"GET", "/u/123e4567-e89b-12d3-a456-42661417400", "404"},
                {"GET", "/h/DEADbeef", "200 /h/{v:hex} v=DEADbeef"},
                {"GET", "/h/xyz", "404"},
                {"GET", "/a/abcXYZ", "200 /a/{v:alpha} v=abcXYZ"},
                {"GET", "/a/ab1", "404"},
                // int, uuid, hex, alpha: the first type that accepts wins.
                {"GET", "/m/12", "200 /m/{v:int} v=12"},
                {"GET", "/m/12ab", "200 /m/{v:hex} v=12ab"},
                {"GET", "/m/ab", "200 /m/{v:hex} v=ab"},
                {"GET", "/m/xy", "200 /m/{v:alpha} v=xy"},
                {"GET", "/m/x1", "404"}});
}

bool is_slug(std::string_view s) {
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || c == '-')) return false;
  }
  return true;
}

TEST(RouterTest, UserRegisteredParamType) {
  Router<int> router;
  EXPECT_FALSE(router.add_param_type("slug", is_slug));
  EXPECT_TRUE(router.add_param_type("slug", is_slug));  // twice
  EXPECT_FALSE(router.add(Method::Get, "/p/{s:slug}", 1));
  EXPECT_FALSE(router.add(Method::Get, "/p/:other", 2));
  auto frozen = std::move(router).freeze();
  Params params;
  EXPECT_EQ(handler_or(frozen, Method::Get, "/p/a-b", params, -1), 1);
  EXPECT_EQ(params.get("s"), "a-b");
  EXPECT_EQ(handler_or(frozen, Method::Get, "/p/A-B", params, -1), 2);
  EXPECT_EQ(params.get("other"), "A-B");
  EXPECT_EQ(params.get("s"), "");
}

TEST(RouterTest, ParamNamesBelongToTheRoute) {
  expect_cases({{"GET", "/users/:id"}, {"DELETE", "/users/:user_id"}},
               {{"GET", "/users/7", "200 /users/:id id=7"},
                {"DELETE", "/users/7", "200 /users/:user_id user_id=7"},
                {"POST", "/users/7", "405 DELETE,GET"}});
}

TEST(RouterTest, MethodNotAllowedListsEveryMatchingRoute) {
  expect_cases(
      {{"POST", "/users/new"}, {"GET", "/users/:id"}, {"PUT", "/users/*rest"}, {"PATCH", "/other"}},
      {{"GET", "/users/new", "200 /users/:id id=new"},
       {"POST", "/users/new", "200 /users/new"},
       {"DELETE", "/users/new", "405 GET,POST,PUT"},
       {"DELETE", "/users/1", "405 GET,PUT"},
       {"DELETE", "/users/1/2", "405 PUT"},
       {"GET", "/nothing", "404"}});
}

TEST(RouterTest, AnyMethodAndSpecificMethod) {
  expect_cases({{"ANY", "/x"}, {"GET", "/x"}, {"ANY", "/y/:p"}},
               {{"GET", "/x", "200 /x"},
                {"POST", "/x", "200 /x"},
                {"BREW", "/x", "200 /x"},
                {"PUT", "/y/1", "200 /y/:p p=1"}});
  // The specific one wins whichever was added first.
  Router<int> router;
  ASSERT_FALSE(router.add(Method::Get, "/x", 1));
  ASSERT_FALSE(router.add_any("/x", 2));
  auto frozen = std::move(router).freeze();
  Params params;
  EXPECT_EQ(handler_or(frozen, Method::Get, "/x", params, -1), 1);
  EXPECT_EQ(handler_or(frozen, Method::Post, "/x", params, -1), 2);
}

TEST(RouterTest, CustomMethodTokens) {
  expect_cases({{"PURGE", "/cache/:key"}, {"GET", "/cache/:key"}, {"MKCOL", "/dav"}},
               {{"PURGE", "/cache/a", "200 /cache/:key key=a"},
                {"GET", "/cache/a", "200 /cache/:key key=a"},
                {"PUT", "/cache/a", "405 GET,PURGE"},
                {"UNKNOWN", "/dav", "405 MKCOL"},
                {"purge", "/cache/a", "405 GET,PURGE"}});
  Router<int> router;
  auto error = router.add("GE T", "/x", 1);
  ASSERT_TRUE(error);
  EXPECT_EQ(error.code(), RouteErrc::kBadMethod);
  EXPECT_FALSE(router.add("GET", "/x", 1));  // a standard name via the token form
  auto frozen = std::move(router).freeze();
  Params params;
  EXPECT_NE(frozen.find(Method::Get, "/x", params), nullptr);
}

TEST(RouterTest, MethodsListsWhatTheTableRoutes) {
  Router<int> router;
  EXPECT_TRUE(std::move(Router<int>{}).freeze().methods().empty());
  ASSERT_FALSE(router.add(Method::Put, "/a/:x", 1));
  ASSERT_FALSE(router.add("PURGE", "/cache/*rest", 2));
  ASSERT_FALSE(router.add(Method::Get, "/a/:x", 3));
  ASSERT_FALSE(router.add_any("/any", 4));  // adds no method of its own
  auto frozen = std::move(router).freeze();
  EXPECT_EQ(frozen.allow_header(frozen.methods()), "GET, PURGE, PUT");
}

TEST(RouterTest, PercentEncodedSlashDoesNotSplit) {
  expect_cases({{"GET", "/files/:name"}, {"GET", "/files/:dir/:name"}},
               {{"GET", "/files/a%2Fb", "200 /files/:name name=a%2Fb"},
                {"GET", "/files/a/b", "200 /files/:dir/:name dir=a name=b"}});
}

TEST(RouterTest, PercentDecode) {
  EXPECT_EQ(portico::percent_decode("a%2Fb%20c+d"), "a/b c+d");
  EXPECT_EQ(portico::percent_decode("%e2%82%AC"), "\xe2\x82\xac");
  EXPECT_EQ(portico::percent_decode("plain"), "plain");
  EXPECT_EQ(portico::percent_decode("bad%2"), std::nullopt);
  EXPECT_EQ(portico::percent_decode("bad%zz"), std::nullopt);
  EXPECT_EQ(portico::percent_decode("%"), std::nullopt);
  char out[8];
  EXPECT_EQ(portico::percent_decode_to("%41b", out), 2u);
  EXPECT_EQ(std::string_view(out, 2), "Ab");
}

TEST(RouterTest, ParamsByNameAndOrder) {
  auto frozen = build({{"GET", "/repos/:owner/:repo/issues/{number:int}"}});
  Params params;
  ASSERT_NE(frozen.find(Method::Get, "/repos/me/portico/issues/12", params), nullptr);
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params.name(0), "owner");
  EXPECT_EQ(params[0], "me");
  EXPECT_EQ(params.name(2), "number");
  EXPECT_EQ(params.get("repo"), "portico");
  EXPECT_EQ(params.get("nope"), "");
}

TEST(RouterTest, TrailingSlashRecommendation) {
  auto frozen = build({{"GET", "/a/"}, {"GET", "/b"}, {"GET", "/c/:x"}, {"POST", "/d/"}});
  Params params;
  auto m = frozen.match(Method::Get, "/a", params);
  EXPECT_EQ(m.status, MatchStatus::kNotFound);
  EXPECT_TRUE(m.redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Get, "/b/", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Get, "/c/1/", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/e", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/d", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Post, "/d", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/b", params).redirect_trailing_slash);
}

TEST(RouterTest, FixedPathLookup) {
  auto frozen = build({{"GET", "/Users/:name/Repos"},
                       {"GET", "/static/*fp"},
                       {"GET", "/dir/"},
                       {"GET", "/file"},
                       {"POST", "/post"}});
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/users/Bob/repos"), "/Users/Bob/Repos");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "//USERS/./x/../Bob//REPOS"), "/Users/Bob/Repos");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/STATIC/A/b"), "/static/A/b");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/DIR"), "/dir/");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/DIR", false), std::nullopt);
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/FILE/"), "/file");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/nope"), std::nullopt);
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/POST"), std::nullopt);
  EXPECT_EQ(frozen.fixed_path(Method::Post, "/POST"), "/post");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/../file"), "/file");
}

// A param whose only child is text without routes of its own is laid out as
// one node with it ("fused": "{n:int}" + "/a/" below); every rule must hold
// across that boundary.
TEST(RouterTest, ParamFusedWithTheTextAfterIt) {
  const std::vector<RouteSpec> routes = {{"GET", "/u/:id"},
                                         {"GET", "/u/:id/repos"},
                                         {"GET", "/u/:id/repos/:rid/x"},
                                         {"GET", "/t/{n:int}/a/b"},
                                         {"GET", "/t/:name/a/c"}};
  auto frozen = build(routes);
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7"), "200 /u/:id id=7");
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/repos"), "200 /u/:id/repos id=7");
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/repos/9/x"),
            "200 /u/:id/repos/:rid/x id=7 rid=9");
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/repo"), "404");
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/reposs"), "404");
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/repos/"), "404");  // the fused text has no route
  EXPECT_EQ(describe(frozen, routes, "GET", "/u/7/repos/9"), "404");
  EXPECT_EQ(describe(frozen, routes, "POST", "/u/7/repos"), "405 GET");
  // Backtracking out of a fused typed param into the plain one.
  EXPECT_EQ(describe(frozen, routes, "GET", "/t/42/a/b"), "200 /t/{n:int}/a/b n=42");
  EXPECT_EQ(describe(frozen, routes, "GET", "/t/42/a/c"), "200 /t/:name/a/c name=42");
  EXPECT_EQ(describe(frozen, routes, "GET", "/t/x/a/b"), "404");

  Params params;
  EXPECT_TRUE(frozen.match(Method::Get, "/u/7/", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Get, "/u/7/repos/", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/u/7/repos/9/", params).redirect_trailing_slash);

  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/"), "/u/7");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/REPOS"), "/u/7/repos");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/REPOS/"), "/u/7/repos");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/REPOS/Nine/X"), "/u/7/repos/Nine/x");
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/REPOS/9"), std::nullopt);
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/U/7/REPO"), std::nullopt);

  // The layout: one node for ":id" and the "/a/" after it (the text has
  // routes below it but none of its own); "/repos" above has its own route,
  // so it stays a node of its own.
  const std::vector<RouteSpec> two = {{"GET", "/u/:id/a/b"}, {"GET", "/u/:id/a/c"}};
  auto fused = build(two);
  EXPECT_EQ(fused.trie().node_count(), 5u);  // root, "/u/", ":id" + "/a/", "b", "c"
  EXPECT_EQ(describe(fused, two, "GET", "/u/7/a/c"), "200 /u/:id/a/c id=7");
  EXPECT_EQ(describe(fused, two, "GET", "/u/7/a/"), "404");
  EXPECT_EQ(describe(fused, two, "GET", "/u/7/a"), "404");
}

// An empty segment after a fused param's text ("/" + a child "/"): adding a
// slash to the param must not reach the route below the text.
TEST(RouterTest, FusedParamDoesNotAddASlashPastItsText) {
  auto frozen = build({{"POST", "/a/:x"}, {"GET", "/a/:x//"}});
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/A/1"), std::nullopt);
  EXPECT_EQ(frozen.fixed_path(Method::Post, "/A/1"), "/a/1");
  Params params;
  EXPECT_EQ(frozen.match(Method::Get, "/a/1//", params).status, MatchStatus::kFound);
  EXPECT_EQ(frozen.match(Method::Get, "/a/1/", params).status, MatchStatus::kNotFound);
  EXPECT_FALSE(frozen.match(Method::Get, "/a/1", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/a/1/", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Post, "/a/1/", params).redirect_trailing_slash);
}

struct ErrorCase {
  std::vector<RouteSpec> before;
  RouteSpec route;
  RouteErrc code;
  std::string message;
};

TEST(RouterTest, RejectsInvalidAndAmbiguousRoutes) {
  const std::vector<ErrorCase> cases = {
      {{},
       {"GET", "users"},
       RouteErrc::kBadSyntax,
       "pattern \"users\": must start with '/' (at byte 0)"},
      {{}, {"GET", ""}, RouteErrc::kBadSyntax, "pattern \"\": must start with '/' (at byte 0)"},
      {{},
       {"GET", "/a/*rest/b"},
       RouteErrc::kCatchAllNotLast,
       "pattern \"/a/*rest/b\": catch-all must be the last segment (at byte 3)"},
      {{},
       {"GET", "/a/{*rest}/b"},
       RouteErrc::kCatchAllNotLast,
       "pattern \"/a/{*rest}/b\": catch-all must be the last segment (at byte 3)"},
      {{},
       {"GET", "/a/:"},
       RouteErrc::kEmptyParamName,
       "pattern \"/a/:\": empty parameter name (at byte 3)"},
      {{},
       {"GET", "/a/{}/b"},
       RouteErrc::kEmptyParamName,
       "pattern \"/a/{}/b\": empty parameter name (at byte 3)"},
      {{},
       {"GET", "/a/*"},
       RouteErrc::kEmptyParamName,
       "pattern \"/a/*\": empty parameter name (at byte 3)"},
      {{},
       {"GET", "/a/:id/b/{id}"},
       RouteErrc::kDuplicateParamName,
       "pattern \"/a/:id/b/{id}\": duplicate parameter name \"id\" (at byte 9)"},
      {{},
       {"GET", "/a/{id"},
       RouteErrc::kBadSyntax,
       "pattern \"/a/{id\": unclosed '{' (at byte 3)"},
      {{},
       {"GET", "/a/x{id}"},
       RouteErrc::kBadSyntax,
       "pattern \"/a/x{id}\": a {...} wildcard must span a whole segment (at byte 4)"},
      {{},
       {"GET", "/a/{id}x"},
       RouteErrc::kBadSyntax,
       "pattern \"/a/{id}x\": text after '}' in a segment: a {...} wildcard must span a whole "
       "segment (at byte 7)"},
      {{}, {"GET", "/a/b}"}, RouteErrc::kBadSyntax, "pattern \"/a/b}\": unmatched '}' (at byte 4)"},
      {{},
       {"GET", "/a/{id:float}"},
       RouteErrc::kUnknownParamType,
       "pattern \"/a/{id:float}\": unknown parameter type \"float\" (at byte 7)"},
      {{},
       {"GET", "/a/{*p:int}"},
       RouteErrc::kBadSyntax,
       "pattern \"/a/{*p:int}\": a catch-all cannot be typed (at byte 6)"},
      {{},
       {"GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p/:q"},
       RouteErrc::kTooManyParams,
       "pattern \"/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p/:q\": more than 16 "
       "parameters (at byte 49)"},
      {{{"GET", "/users/:id"}},
       {"GET", "/users/{name}"},
       RouteErrc::kDuplicateRoute,
       "pattern \"/users/{name}\": duplicate route: GET \"/users/:id\" was added before "
       "(same method, same pattern up to parameter names)"},
      {{{"ANY", "/x/*a"}},
       {"ANY", "/x/{*b}"},
       RouteErrc::kDuplicateRoute,
       "pattern \"/x/{*b}\": duplicate route: ANY \"/x/*a\" was added before (same method, "
       "same pattern up to parameter names)"},
      {{{"GET", "/u/{id:int}/x"}},
       {"GET", "/u/{n:int}/x"},
       RouteErrc::kDuplicateRoute,
       "pattern \"/u/{n:int}/x\": duplicate route: GET \"/u/{id:int}/x\" was added before "
       "(same method, same pattern up to parameter names)"},
      {{{"GET", "/s"}},
       {"GET", "/s"},
       RouteErrc::kDuplicateRoute,
       "pattern \"/s\": duplicate route: GET \"/s\" was added before (same method, same "
       "pattern up to parameter names)"},
  };
  for (const auto& c : cases) {
    Router<int> router;
    for (const auto& b : c.before) {
      ASSERT_FALSE(b.method == "ANY" ? router.add_any(b.pattern, 0)
                                     : router.add(b.method, b.pattern, 0));
    }
    auto error = c.route.method == "ANY" ? router.add_any(c.route.pattern, 1)
                                         : router.add(c.route.method, c.route.pattern, 1);
    ASSERT_TRUE(error) << c.route.pattern;
    EXPECT_EQ(error.code(), c.code) << c.route.pattern;
    EXPECT_EQ(error.message(), c.message);
    // A duplicate is the whole pattern's fault: no byte to point at.
    if (c.code == RouteErrc::kDuplicateRoute) {
      EXPECT_EQ(error.position(), 0u);
    }
    // A rejected route leaves the table as it was.
    EXPECT_EQ(router.size(), c.before.size());
    auto frozen = std::move(router).freeze();
    EXPECT_EQ(frozen.trie().check_invariants(), "");
  }
}

TEST(RouterTest, ExactlyCapacityParamsIsAccepted) {
  std::string pattern;
  std::string path;
  for (std::size_t i = 0; i < Params::kCapacity; ++i) {
    pattern += "/:p" + std::to_string(i);
    path += "/" + std::to_string(i);
  }
  auto frozen = build({{"GET", pattern}});
  Params params;
  ASSERT_NE(frozen.find(Method::Get, path, params), nullptr);
  EXPECT_EQ(params.size(), Params::kCapacity);
  EXPECT_EQ(params.get("p15"), "15");
}

TEST(RouterTest, EmptyRouterFindsNothing) {
  Router<int> router;
  auto frozen = router.freeze();
  Params params;
  EXPECT_EQ(frozen.match(Method::Get, "/", params).status, MatchStatus::kNotFound);
  FrozenRouter<int> defaulted;
  EXPECT_EQ(defaulted.match(Method::Get, "/", params).status, MatchStatus::kNotFound);
  EXPECT_EQ(defaulted.fixed_path(Method::Get, "/"), std::nullopt);
}

TEST(RouterTest, CopyingFreezeKeepsBuilderUsable) {
  Router<std::string> router;
  ASSERT_FALSE(router.add(Method::Get, "/a", std::string("a")));
  auto first = router.freeze();
  ASSERT_FALSE(router.add(Method::Get, "/b", std::string("b")));
  auto second = router.freeze();
  Params params;
  EXPECT_EQ(first.find(Method::Get, "/b", params), nullptr);
  ASSERT_NE(second.find(Method::Get, "/b", params), nullptr);
  EXPECT_EQ(handler_or(second, Method::Get, "/a", params, std::string()), "a");
  EXPECT_GT(second.memory_bytes(), 0u);
  EXPECT_EQ(second.route_count(), 2u);
}

TEST(RouterTest, SplitsAndWideFanOutKeepInvariants) {
  std::vector<RouteSpec> routes;
  for (int c = 1; c < 256; ++c) {
    if (c == '/' || c == ':' || c == '*' || c == '{' || c == '}') continue;
    routes.push_back({"GET", std::string("/f/") + static_cast<char>(c) + "x"});
  }
  routes.push_back({"GET", "/f/:p"});
  routes.push_back({"GET", "/abc"});
  routes.push_back({"GET", "/ab"});
  routes.push_back({"GET", "/a"});
  auto frozen = build(routes);
  for (std::size_t i = 0; i < routes.size(); ++i) {
    EXPECT_EQ(
        describe(frozen, routes, "GET", routes[i].pattern == "/f/:p" ? "/f/zz" : routes[i].pattern),
        routes[i].pattern == "/f/:p" ? "200 /f/:p p=zz" : "200 " + routes[i].pattern);
  }
}

TEST(RouterTest, MethodNames) {
  EXPECT_EQ(portico::method_name(Method::Patch), "PATCH");
  EXPECT_EQ(portico::parse_method("OPTIONS"), Method::Options);
  EXPECT_EQ(portico::parse_method("get"), std::nullopt);
  portico::MethodSet set;
  set.insert(Method::Get);
  EXPECT_TRUE(set.contains(Method::Get));
  EXPECT_FALSE(set.contains(Method::Post));
}

}  // namespace

namespace {

// Mostly static tables get an exact-match index over their static routes;
// it must defer to the trie walk whenever the static route lacks the method.
TEST(RouterTest, StaticFastPathDefersToTheWalk) {
  std::vector<RouteSpec> routes;
  for (int i = 0; i < 20; ++i) routes.push_back({"GET", "/s/" + std::to_string(i)});
  routes.push_back({"POST", "/users/new"});
  routes.push_back({"GET", "/users/:id"});
  routes.push_back({"ANY", "/any"});
  routes.push_back({"GET", "/dir/"});
  expect_cases(routes, {{"GET", "/s/7", "200 /s/7"},
                        {"PUT", "/s/7", "405 GET"},
                        {"GET", "/users/new", "200 /users/:id id=new"},
                        {"POST", "/users/new", "200 /users/new"},
                        {"DELETE", "/users/new", "405 GET,POST"},
                        {"BREW", "/any", "200 /any"},
                        {"GET", "/s/77", "404"}});
  auto frozen = build(routes);
  Params params;
  EXPECT_TRUE(frozen.match(Method::Get, "/dir", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Get, "/s/7/", params).redirect_trailing_slash);
}

}  // namespace

namespace {

// A table without wildcards is answered by its static index alone,
// including 405s and the trailing-slash recommendation.
TEST(RouterTest, StaticOnlyTableAnswersFromTheIndex) {
  const std::vector<RouteSpec> routes = {{"GET", "/"},   {"GET", "/a"}, {"POST", "/a"},
                                         {"GET", "/b/"}, {"ANY", "/c"}, {"GET", "/a/b/c"},
                                         {"PUT", "/a/b"}};
  expect_cases(routes, {{"GET", "/", "200 /"},
                        {"POST", "/a", "200 /a"},
                        {"DELETE", "/a", "405 GET,POST"},
                        {"BREW", "/c", "200 /c"},
                        {"GET", "/a/b", "405 PUT"},
                        {"GET", "/a/b/c", "200 /a/b/c"},
                        {"GET", "/a/b/c/d", "404"},
                        {"GET", "/A", "404"}});
  auto frozen = build(routes);
  Params params;
  EXPECT_TRUE(frozen.match(Method::Get, "/b", params).redirect_trailing_slash);
  EXPECT_TRUE(frozen.match(Method::Get, "/a/", params).redirect_trailing_slash);
  EXPECT_FALSE(frozen.match(Method::Get, "/d", params).redirect_trailing_slash);
  EXPECT_EQ(frozen.fixed_path(Method::Get, "/B"), "/b/");
}

}  // namespace

// add() keeps the previous pattern's parsed pieces and trie position for the
// prefix both patterns share; a rejected pattern in between, a shared prefix
// that ends inside a parameter name and reused pieces that count toward the
// limits must all behave as if every pattern were parsed from scratch.
TEST(RouterTest, NeighbouringPatternsShareParsingNotMistakes) {
  Router<int> router;
  ASSERT_FALSE(router.add(Method::Get, "/a/{id}/b/{sid:int}", 1));
  EXPECT_EQ(router.add(Method::Get, "/a/{id}/b/{sid:int}x", 2).code(), RouteErrc::kBadSyntax);
  ASSERT_FALSE(router.add(Method::Get, "/a/{id}/b/:other/c", 3));
  EXPECT_EQ(router.add(Method::Get, "/a/{id}/b/{x:int}", 4).code(), RouteErrc::kDuplicateRoute);
  EXPECT_EQ(router.add(Method::Get, "/a/:id/:id", 5).code(), RouteErrc::kDuplicateParamName);
  ASSERT_FALSE(router.add(Method::Get, "/a/:idx", 6));  // shares "/a/:id" with the last one
  ASSERT_FALSE(router.add(Method::Post, "/a/:idx/t", 7));
  ASSERT_FALSE(router.add(Method::Post, "/a/:idx/u", 8));
  std::string sixteen;
  for (int i = 0; i < 16; ++i) sixteen += "/:p" + std::to_string(i);
  ASSERT_FALSE(router.add(Method::Get, "/m" + sixteen, 9));
  EXPECT_EQ(router.add(Method::Get, "/m" + sixteen + "/:p16", 10).code(),
            RouteErrc::kTooManyParams);
  ASSERT_FALSE(router.add(Method::Get, "/m" + sixteen + "/x", 11));
  const auto frozen = std::move(router).freeze();
  EXPECT_EQ(frozen.trie().check_invariants(), "");
  Params params;
  auto expect = [&](Method method, std::string_view path, int handler, std::string_view name,
                    std::string_view value) {
    const int* found = frozen.find(method, path, params);
    ASSERT_NE(found, nullptr) << path;
    EXPECT_EQ(*found, handler) << path;
    EXPECT_EQ(params.get(name), value) << path;
  };
  expect(Method::Get, "/a/1/b/22", 1, "sid", "22");
  expect(Method::Get, "/a/1/b/x/c", 3, "other", "x");
  expect(Method::Get, "/a/zz", 6, "idx", "zz");
  expect(Method::Post, "/a/zz/t", 7, "idx", "zz");
  expect(Method::Post, "/a/zz/u", 8, "idx", "zz");
  expect(Method::Get, "/m/0/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/x", 11, "p15", "15");
  EXPECT_EQ(frozen.find(Method::Get, "/a/1/b/22x", params), nullptr);
}

// The static and tail indexes are sized from counts add() keeps; a later
// route that gives a tail parent a second wildcard, and a freeze between
// adds, must leave them exact.
TEST(RouterTest, IndexCountsFollowLaterRoutes) {
  Router<int> router;
  ASSERT_FALSE(router.add(Method::Get, "/users/:id", 1));
  ASSERT_FALSE(router.add(Method::Get, "/users", 2));
  ASSERT_FALSE(router.add(Method::Get, "/teams/:id", 3));
  const auto first = router.freeze();
  EXPECT_EQ(first.trie().check_invariants(), "");
  ASSERT_FALSE(router.add(Method::Get, "/teams/{id:int}", 4));  // no longer a tail parent
  ASSERT_FALSE(router.add(Method::Put, "/users/:id", 5));       // not a new endpoint
  ASSERT_FALSE(router.add(Method::Get, "/about", 6));
  const auto second = router.freeze();
  EXPECT_EQ(second.trie().check_invariants(), "");
  Params params;
  for (const auto& [path, handler] : std::vector<std::pair<std::string_view, int>>{
           {"/users/7", 1}, {"/users", 2}, {"/teams/x", 3}, {"/teams/7", 4}, {"/about", 6}}) {
    const int* found = second.find(Method::Get, path, params);
    ASSERT_NE(found, nullptr) << path;
    EXPECT_EQ(*found, handler) << path;
  }
  const int* put = second.find(Method::Put, "/users/7", params);
  ASSERT_NE(put, nullptr);
  EXPECT_EQ(*put, 5);
}

// The static index against splits that move an endpoint under a new node,
// endpoints below endpoints, a route at the root, and near misses that
// share all but a few bytes with a route (a sibling's text, a cousin's).
TEST(RouterTest, StaticIndexFollowsSplits) {
  const std::vector<RouteSpec> routes = {{"POST", "/pkg.v1.Svc/Get"},
                                         {"POST", "/pkg.v1.Svc/GetMany"},
                                         {"POST", "/pkg.v1.Svc/Gem"},
                                         {"POST", "/pkg.v2.Svc/List"},
                                         {"GET", "/"},
                                         {"GET", "/pkg.v1.Svc/Get"},
                                         {"POST", "/pkg.v1.Sv"},
                                         {"POST", "/other"},
                                         {"POST", "/pkg.v1.Svc/Ge"},
                                         {"POST", "/pkg.v2.Svc/Lint"}};
  expect_cases(routes, {{"POST", "/pkg.v1.Svc/Get", "200 /pkg.v1.Svc/Get"},
                        {"GET", "/pkg.v1.Svc/Get", "200 /pkg.v1.Svc/Get"},
                        {"POST", "/pkg.v1.Svc/GetMany", "200 /pkg.v1.Svc/GetMany"},
                        {"POST", "/pkg.v1.Svc/Gem", "200 /pkg.v1.Svc/Gem"},
                        {"POST", "/pkg.v1.Svc/Ge", "200 /pkg.v1.Svc/Ge"},
                        {"POST", "/pkg.v1.Sv", "200 /pkg.v1.Sv"},
                        {"POST", "/pkg.v2.Svc/List", "200 /pkg.v2.Svc/List"},
                        {"POST", "/pkg.v2.Svc/Lint", "200 /pkg.v2.Svc/Lint"},
                        {"GET", "/", "200 /"},
                        {"POST", "/other", "200 /other"},
                        {"PUT", "/pkg.v1.Svc/Get", "405 GET,POST"},
                        {"POST", "/pkg.v1.Svc/G", "404"},
                        {"POST", "/pkg.v1.Svc/Gex", "404"},
                        {"POST", "/pkg.v1.Svc/GetManyX", "404"},
                        {"POST", "/pkg.v1.Svc/List", "404"},
                        {"POST", "/pkg.v2.Svc/Get", "404"},
                        {"POST", "/pkg.v2.Svc/Lis", "404"},
                        {"POST", "/pkg.v1.Svc", "404"},
                        {"POST", "/pkg.v1.S", "404"},
                        {"POST", "/otherx", "404"}});
}
