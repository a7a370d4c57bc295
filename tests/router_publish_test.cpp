// PublishedRouter under contention: reader threads look up continuously and
// pass quiescent points while one thread publishes new tables; every lookup
// must see a whole table (its routes agree with each other), and every
// retired table must be freed by the end. Run under TSan in CI.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "portico/router.hpp"
#include "published_stress.hpp"

namespace {

// Counts live handler objects, so the test sees tables being freed.
std::atomic<int> g_live{0};

struct Handler {
  int generation;
  explicit Handler(int g) : generation(g) { g_live.fetch_add(1, std::memory_order_relaxed); }
  Handler(const Handler& o) : generation(o.generation) {
    g_live.fetch_add(1, std::memory_order_relaxed);
  }
  Handler(Handler&& o) noexcept : generation(o.generation) {
    g_live.fetch_add(1, std::memory_order_relaxed);
  }
  Handler& operator=(const Handler&) = default;
  ~Handler() { g_live.fetch_sub(1, std::memory_order_relaxed); }
};

// Generation g: /gen/<g> and /users/:id and /static/*p, all with handler g.
portico::FrozenRouter<Handler> make_table(int generation) {
  portico::Router<Handler> router;
  EXPECT_FALSE(
      router.add(portico::Method::Get, "/gen/" + std::to_string(generation), Handler(generation)));
  EXPECT_FALSE(router.add(portico::Method::Get, "/users/:id", Handler(generation)));
  EXPECT_FALSE(router.add(portico::Method::Get, "/static/*p", Handler(generation)));
  return std::move(router).freeze();
}

TEST(RouterPublishTest, ReadersNeverSeeHalfBuiltOrFreedTables) {
  constexpr int kReaders = 3;
  constexpr int kGenerations = 300;
  {
    portico::PublishedRouter<Handler> published(make_table(0), kReaders);
    const portico::testing::StressCounts counts = portico::testing::stress_readers(
        published, kReaders,
        [](portico::PublishedRouter<Handler>::Reader& reader, int& last) {
          portico::Params params;
          const auto& table = reader.table();
          const Handler* users = table.find(portico::Method::Get, "/users/7", params);
          const Handler* files = table.find(portico::Method::Get, "/static/a/b", params);
          // Both come from one table: same generation, never going back.
          if (users == nullptr || files == nullptr || users->generation != files->generation ||
              users->generation < last) {
            return false;
          }
          last = users->generation;
          const std::string gen = "/gen/" + std::to_string(last);
          return table.find(portico::Method::Get, gen, params) != nullptr;
        },
        [&] {
          for (int g = 1; g <= kGenerations; ++g) {
            published.publish(make_table(g));
            if (g % 50 == 0) std::this_thread::yield();
          }
        });
    EXPECT_EQ(counts.errors, 0);
    EXPECT_GT(counts.reads, 0);
    // With every reader gone, everything retired can go.
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(published.pending_reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 3);  // the current table's three handlers
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(RouterPublishTest, ReclaimWaitsForReadersThatHaveNotPassedAQuiescentPoint) {
  portico::PublishedRouter<Handler> published(make_table(0), 2);
  auto reader = published.register_reader();
  ASSERT_TRUE(reader);
  portico::Params params;
  const Handler* held = reader->table().find(portico::Method::Get, "/users/1", params);
  ASSERT_NE(held, nullptr);
  published.publish(make_table(1));
  // The reader may still hold generation 0: it is kept.
  EXPECT_EQ(published.pending_reclaim(), 1u);
  EXPECT_EQ(held->generation, 0);
  reader->quiescent();
  EXPECT_EQ(published.reclaim(), 0u);
  const Handler* fresh = reader->table().find(portico::Method::Get, "/users/1", params);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->generation, 1);
  // An offline reader holds nothing back.
  reader->offline();
  published.publish(make_table(2));
  EXPECT_EQ(published.pending_reclaim(), 0u);
  reader->online();
  // Readers are bounded; a released slot can be registered again.
  auto second = published.register_reader();
  ASSERT_TRUE(second);
  EXPECT_FALSE(published.register_reader());
  second.reset();
  EXPECT_TRUE(published.register_reader());
}

}  // namespace
