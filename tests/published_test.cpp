// Published<T> with a T that is not a route table: readers see only whole
// snapshots while one thread publishes, a snapshot is freed only once every
// online reader has passed a quiescent point, and instance counting shows
// nothing leaks. Run under TSan in CI (label concurrent).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "portico/published.hpp"
#include "published_stress.hpp"

namespace {

std::atomic<int> g_live{0};

// A configuration snapshot: every field carries its generation, so a reader
// that finds two values disagreeing has seen a torn or freed snapshot.
struct Config {
  static constexpr std::size_t kWeights = 32;

  explicit Config(int g) : generation(g), weights(kWeights, g), name("gen-" + std::to_string(g)) {
    g_live.fetch_add(1, std::memory_order_relaxed);
  }
  Config(Config&& o) noexcept
      : generation(o.generation), weights(std::move(o.weights)), name(std::move(o.name)) {
    g_live.fetch_add(1, std::memory_order_relaxed);
  }
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;
  ~Config() { g_live.fetch_sub(1, std::memory_order_relaxed); }

  bool whole() const {
    if (weights.size() != kWeights || name != "gen-" + std::to_string(generation)) return false;
    for (int w : weights) {
      if (w != generation) return false;
    }
    return true;
  }

  int generation;
  std::vector<int> weights;
  std::string name;
};

// Cannot move: it reaches Published<T> only through std::unique_ptr.
struct Pinned {
  explicit Pinned(int v) : value(v) { g_live.fetch_add(1, std::memory_order_relaxed); }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  ~Pinned() { g_live.fetch_sub(1, std::memory_order_relaxed); }
  std::atomic<int> value;
};

TEST(PublishedTest, ReadersSeeOnlyWholeSnapshots) {
  constexpr int kReaders = 3;
  constexpr int kGenerations = 300;
  ASSERT_EQ(g_live.load(), 0);
  {
    portico::Published<Config> published(Config(0), kReaders);
    const portico::testing::StressCounts counts = portico::testing::stress_readers(
        published, kReaders,
        [](portico::Published<Config>::Reader& reader, int& last) {
          const Config& first = reader.snapshot();
          const Config& again = reader.snapshot();
          // Whole, never going back; a later load may be newer, never older.
          const bool ok = first.whole() && again.whole() && first.generation >= last &&
                          again.generation >= first.generation;
          last = again.generation;
          return ok;
        },
        [&] {
          for (int g = 1; g <= kGenerations; ++g) {
            // Both ways in: by value and as a unique_ptr.
            if (g % 2 == 0) {
              published.publish(Config(g));
            } else {
              published.publish(std::make_unique<Config>(g));
            }
            if (g % 50 == 0) std::this_thread::yield();
          }
        });
    EXPECT_EQ(counts.errors, 0);
    EXPECT_GT(counts.reads, 0);
    // With every reader gone, everything retired can go.
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(published.pending_reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 1);  // the current snapshot
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(PublishedTest, SnapshotIsFreedOnlyAfterEveryReaderPassedAQuiescentPoint) {
  ASSERT_EQ(g_live.load(), 0);
  {
    portico::Published<Config> published(Config(0), 4);
    auto a = published.register_reader();
    auto b = published.register_reader();
    ASSERT_TRUE(a && b);
    const Config& held_a = a->snapshot();
    const Config& held_b = b->snapshot();

    published.publish(Config(1));
    EXPECT_EQ(published.pending_reclaim(), 1u);
    EXPECT_EQ(g_live.load(), 2);
    a->quiescent();
    // b may still hold generation 0.
    EXPECT_EQ(published.reclaim(), 1u);
    EXPECT_EQ(g_live.load(), 2);
    EXPECT_TRUE(held_b.whole());
    EXPECT_EQ(held_b.generation, 0);
    b->quiescent();
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 1);
    EXPECT_EQ(a->snapshot().generation, 1);
    (void)held_a;

    // A quiescent point before a publish does not release what it retires.
    a->quiescent();
    b->quiescent();
    published.publish(Config(2));
    EXPECT_EQ(published.pending_reclaim(), 1u);
    a->quiescent();
    b->quiescent();
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 1);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(PublishedTest, SnapshotHeldOnAnotherThreadWaitsForItsQuiescentPoint) {
  ASSERT_EQ(g_live.load(), 0);
  {
    portico::Published<Config> published(Config(0), 2);
    std::atomic<int> step{0};
    std::atomic<bool> held_ok{false};
    std::thread reader_thread([&] {
      auto reader = published.register_reader();
      const Config& held = reader->snapshot();
      step.store(1, std::memory_order_release);
      while (step.load(std::memory_order_acquire) != 2) std::this_thread::yield();
      // Published and reclaimed meanwhile; still ours until quiescent().
      held_ok.store(held.whole() && held.generation == 0);
      reader->quiescent();
      step.store(3, std::memory_order_release);
      while (step.load(std::memory_order_acquire) != 4) std::this_thread::yield();
    });
    while (step.load(std::memory_order_acquire) != 1) std::this_thread::yield();
    published.publish(Config(1));
    EXPECT_EQ(published.reclaim(), 1u);
    step.store(2, std::memory_order_release);
    while (step.load(std::memory_order_acquire) != 3) std::this_thread::yield();
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(g_live.load(), 1);
    step.store(4, std::memory_order_release);
    reader_thread.join();
    EXPECT_TRUE(held_ok.load());
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(PublishedTest, OfflineReadersHoldNothingBackAndSlotsAreBounded) {
  portico::Published<Config> published(Config(0), 2);
  auto reader = published.register_reader();
  ASSERT_TRUE(reader);
  reader->offline();
  published.publish(Config(1));
  EXPECT_EQ(published.pending_reclaim(), 0u);
  reader->online();
  EXPECT_EQ(reader->snapshot().generation, 1);
  auto second = published.register_reader();
  ASSERT_TRUE(second);
  EXPECT_FALSE(published.register_reader());
  second.reset();
  EXPECT_TRUE(published.register_reader());
}

TEST(PublishedTest, DestructionFreesSnapshotsStillWaiting) {
  ASSERT_EQ(g_live.load(), 0);
  {
    portico::Published<Config> published(Config(0), 2);
    auto reader = published.register_reader();
    (void)reader->snapshot();
    for (int g = 1; g <= 5; ++g) published.publish(Config(g));
    EXPECT_EQ(published.pending_reclaim(), 5u);
    EXPECT_EQ(g_live.load(), 6);
    reader.reset();  // REQUIRES of ~Published: every reader is gone
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(PublishedTest, NonMovableSnapshotsGoThroughUniquePtr) {
  ASSERT_EQ(g_live.load(), 0);
  {
    portico::Published<Pinned> published(std::make_unique<Pinned>(0), 1);
    auto reader = published.register_reader();
    ASSERT_TRUE(reader);
    EXPECT_EQ(reader->snapshot().value.load(), 0);
    reader->quiescent();
    published.publish(std::make_unique<Pinned>(1));
    reader->quiescent();
    EXPECT_EQ(published.reclaim(), 0u);
    EXPECT_EQ(reader->snapshot().value.load(), 1);
    EXPECT_EQ(g_live.load(), 1);
  }
  EXPECT_EQ(g_live.load(), 0);
}

}  // namespace
