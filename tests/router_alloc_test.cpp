// Proves that a lookup allocates nothing: the global operator new is
// replaced by one that counts, and thousands of lookups of every outcome
// (found, 405, 404 with and without a trailing-slash probe, backtracking,
// custom methods) run between two readings of the counter.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "counting_new.hpp"
#include "portico/router.hpp"

namespace {

TEST(RouterAllocTest, LookupsAllocateNothing) {
  portico::Router<int> router;
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/"},
      {"GET", "/users/new"},
      {"GET", "/users/{id:int}"},
      {"GET", "/users/:name"},
      {"GET", "/users/*rest"},
      {"POST", "/users/new"},
      {"GET", "/repos/:owner/:repo/issues/:number"},
      {"PURGE", "/cache/:key"},
      {"GET", "/dir/"},
      {"GET", "/a/b/c"},
      {"GET", "/a/:x/d"},
      {"GET", "/:y/b/e"},
  };
  int i = 0;
  for (const auto& [method, pattern] : routes) ASSERT_FALSE(router.add(method, pattern, i++));
  ASSERT_FALSE(router.add_any("/any/*all", i++));
  const auto frozen = std::move(router).freeze();

  const std::vector<std::pair<std::string, std::string>> requests = {
      {"GET", "/users/new"},
      {"GET", "/users/42"},
      {"GET", "/users/bob"},
      {"GET", "/users/a/b/c"},
      {"DELETE", "/users/new"},
      {"GET", "/nothing/here"},
      {"GET", "/dir"},
      {"GET", "/users/bob/"},
      {"PURGE", "/cache/k"},
      {"BREW", "/cache/k"},
      {"GET", "/repos/a/b/issues/1"},
      {"GET", "/a/b/d"},
      {"GET", "/a/b/e"},
      {"PUT", "/any/x/y"},
      {"GET", ""},
  };
  portico::Params params;
  std::size_t found = 0;
  const std::size_t before = portico::testing::allocations();
  for (int round = 0; round < 1000; ++round) {
    for (const auto& [method, path] : requests) {
      found += frozen.match(method, path, params).status == portico::MatchStatus::kFound;
      found += frozen.find(portico::Method::Get, path, params) != nullptr;
    }
  }
  const std::size_t after = portico::testing::allocations();
  EXPECT_EQ(after - before, 0u);
  EXPECT_GT(found, 0u);
  // The counter does count: building a table allocates.
  portico::Router<int> other;
  ASSERT_FALSE(other.add(portico::Method::Get, "/x", 1));
  EXPECT_GT(portico::testing::allocations(), after);
}

}  // namespace
