// Single-threaded behaviour of MpmcQueue: capacity rounding, full/empty
// edges, FIFO order, wrap-around of the ring and of the 64-bit counters, batch
// operations, move-only items, instance accounting, deadlines and the reactor
// wake-up fd. The multi-threaded proofs live in mpmc_queue_stress_test.cpp.
#include "portico/mpmc_queue.hpp"

#include <poll.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using portico::MpmcQueue;

// Counts live instances and catches double destruction / use of a destroyed
// or moved-from object through a per-object marker.
class Counted {
 public:
  static inline int live = 0;
  static inline int constructed = 0;

  explicit Counted(int value = 0) noexcept : value_(value) { born(); }
  Counted(const Counted& other) noexcept : value_(other.value_) {
    other.check();
    born();
  }
  Counted(Counted&& other) noexcept : value_(other.value_) {
    other.check();
    born();
  }
  Counted& operator=(const Counted& other) noexcept {
    other.check();
    check();
    value_ = other.value_;
    return *this;
  }
  Counted& operator=(Counted&& other) noexcept {
    other.check();
    check();
    value_ = other.value_;
    return *this;
  }
  ~Counted() {
    check();
    marker_ = kDead;
    --live;
  }

  int value() const {
    check();
    return value_;
  }

  static void reset() {
    live = 0;
    constructed = 0;
  }

 private:
  static constexpr std::uint32_t kAlive = 0xA11CEu;
  static constexpr std::uint32_t kDead = 0xDEADu;

  void born() noexcept {
    marker_ = kAlive;
    ++live;
    ++constructed;
  }
  void check() const {
    if (marker_ != kAlive) ADD_FAILURE() << "use of a destroyed Counted";
  }

  int value_;
  std::uint32_t marker_ = kAlive;
};

class CountedTest : public ::testing::Test {
 protected:
  void SetUp() override { Counted::reset(); }
};

TEST(MpmcQueueTest, CapacityRoundsUpToPowerOfTwo) {
  struct Case {
    std::size_t asked;
    std::size_t expected;
  };
  const std::array<Case, 7> cases{
      {{1, 2}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {1000, 1024}, {1024, 1024}}};
  for (const Case& c : cases) {
    MpmcQueue<int> queue(c.asked);
    EXPECT_EQ(queue.capacity(), c.expected) << "asked " << c.asked;
  }
}

TEST(MpmcQueueTest, AbsurdCapacityIsRejected) {
  EXPECT_THROW(MpmcQueue<int>(MpmcQueue<int>::kMaxCapacity + 1), std::length_error);
  EXPECT_THROW(MpmcQueue<int>(~std::size_t{0}), std::length_error);
}

TEST(MpmcQueueTest, FullAndEmptyEdges) {
  MpmcQueue<int> queue(4);
  int out = -1;
  EXPECT_FALSE(queue.try_pop(out));
  EXPECT_EQ(out, -1);
  EXPECT_EQ(queue.size_approx(), 0u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(queue.try_push(i));
  EXPECT_EQ(queue.size_approx(), 4u);
  EXPECT_FALSE(queue.try_push(99));
  EXPECT_FALSE(queue.try_emplace(99));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out, i);
  }
  EXPECT_FALSE(queue.try_pop(out));
  EXPECT_EQ(queue.size_approx(), 0u);
  // One slot freed is one push allowed.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(queue.try_push(i));
  ASSERT_TRUE(queue.try_pop(out));
  EXPECT_TRUE(queue.try_push(4));
  EXPECT_FALSE(queue.try_push(5));
}

TEST(MpmcQueueTest, SmallestRingTellsFullFromEmpty) {
  MpmcQueue<int> queue(1);
  ASSERT_EQ(queue.capacity(), 2u);
  int out = 0;
  for (int lap = 0; lap < 100; ++lap) {
    EXPECT_TRUE(queue.try_push(2 * lap));
    EXPECT_TRUE(queue.try_push(2 * lap + 1));
    EXPECT_FALSE(queue.try_push(-1));
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out, 2 * lap);
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out, 2 * lap + 1);
    EXPECT_FALSE(queue.try_pop(out));
  }
}

TEST(MpmcQueueTest, FifoAcrossManyLaps) {
  MpmcQueue<std::uint64_t> queue(8);
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;
  // Uneven fill levels so every slot sees every phase.
  for (int round = 0; round < 5000; ++round) {
    const int pushes = 1 + round % 8;
    for (int i = 0; i < pushes; ++i) {
      if (queue.try_push(next_in)) ++next_in;
    }
    const int pops = 1 + (round * 7) % 8;
    for (int i = 0; i < pops; ++i) {
      std::uint64_t out = 0;
      if (!queue.try_pop(out)) break;
      ASSERT_EQ(out, next_out);
      ++next_out;
    }
    ASSERT_EQ(queue.size_approx(), next_in - next_out);
  }
  EXPECT_GT(next_out, 5000u);
}

TEST(MpmcQueueTest, CountersWrapAround2To64) {
  // Positions are stored doubled, so start 5 positions below the 64-bit wrap.
  const std::uint64_t near_wrap = (std::uint64_t{1} << 63) - 5;
  MpmcQueue<int> queue(4, portico::detail::MpmcStartForTest{near_wrap});
  int next_in = 0;
  int next_out = 0;
  for (int step = 0; step < 40; ++step) {
    while (queue.try_push(next_in)) ++next_in;
    EXPECT_EQ(queue.size_approx(), 4u);
    for (int i = 0; i < 3; ++i) {
      int out = -1;
      ASSERT_TRUE(queue.try_pop(out));
      ASSERT_EQ(out, next_out++);
    }
    EXPECT_EQ(queue.size_approx(), 1u);
  }
  int out = -1;
  while (queue.try_pop(out)) {
    ASSERT_EQ(out, next_out++);
  }
  EXPECT_EQ(next_out, next_in);
  EXPECT_EQ(queue.size_approx(), 0u);
}

TEST(MpmcQueueTest, BatchCountersWrapAround2To64) {
  const std::uint64_t near_wrap = (std::uint64_t{1} << 63) - 3;
  MpmcQueue<int> queue(8, portico::detail::MpmcStartForTest{near_wrap});
  int next_in = 0;
  int next_out = 0;
  for (int step = 0; step < 50; ++step) {
    std::array<int, 5> in{};
    for (int& v : in) v = next_in++;
    ASSERT_EQ(queue.try_push_n(in.data(), in.size()), in.size());
    std::array<int, 5> out{};
    ASSERT_EQ(queue.try_pop_n(out.data(), out.size()), out.size());
    for (int v : out) ASSERT_EQ(v, next_out++);
  }
}

TEST(MpmcQueueTest, PushTakesLvaluesAndRvalues) {
  MpmcQueue<std::string> queue(4);
  const std::string lvalue = "kept";
  EXPECT_TRUE(queue.try_push(lvalue));
  EXPECT_EQ(lvalue, "kept");
  std::string rvalue = "a string long enough to live on the heap, not in SSO";
  EXPECT_TRUE(queue.try_push(std::move(rvalue)));
  EXPECT_TRUE(queue.try_emplace(3u, 'x'));
  std::string out;
  ASSERT_TRUE(queue.try_pop(out));
  EXPECT_EQ(out, "kept");
  ASSERT_TRUE(queue.try_pop(out));
  EXPECT_EQ(out, "a string long enough to live on the heap, not in SSO");
  ASSERT_TRUE(queue.try_pop(out));
  EXPECT_EQ(out, "xxx");
}

TEST(MpmcQueueTest, FailedRvaluePushLeavesValueIntact) {
  MpmcQueue<std::unique_ptr<int>> queue(2);
  ASSERT_TRUE(queue.try_push(std::make_unique<int>(1)));
  ASSERT_TRUE(queue.try_push(std::make_unique<int>(2)));
  auto extra = std::make_unique<int>(3);
  EXPECT_FALSE(queue.try_push(std::move(extra)));
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(*extra, 3);
}

TEST(MpmcQueueTest, MoveOnlyItems) {
  MpmcQueue<std::unique_ptr<int>> queue(16);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(queue.try_push(std::make_unique<int>(i)));
  std::unique_ptr<int> out;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(queue.try_pop(out));
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(*out, i);
  }
}

TEST(MpmcQueueTest, BatchIsPartialAtTheEdgesAndKeepsOrder) {
  MpmcQueue<int> queue(8);
  std::array<int, 12> in{};
  for (int i = 0; i < 12; ++i) in[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(queue.try_push_n(in.data(), 5), 5u);
  EXPECT_EQ(queue.try_push_n(in.data() + 5, 7), 3u);  // only 3 slots left
  EXPECT_EQ(queue.try_push_n(in.data() + 8, 4), 0u);  // full
  EXPECT_EQ(queue.size_approx(), 8u);

  std::array<int, 12> out{};
  EXPECT_EQ(queue.try_pop_n(out.data(), 3), 3u);
  EXPECT_EQ(queue.try_pop_n(out.data() + 3, 12), 5u);
  EXPECT_EQ(queue.try_pop_n(out.data() + 8, 4), 0u);  // empty
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(queue.try_push_n(in.data(), 0), 0u);
  EXPECT_EQ(queue.try_pop_n(out.data(), 0), 0u);
}

TEST(MpmcQueueTest, BatchMovesOnlyWhatWentIn) {
  MpmcQueue<std::unique_ptr<int>> queue(4);
  std::array<std::unique_ptr<int>, 6> in;
  for (int i = 0; i < 6; ++i) in[static_cast<std::size_t>(i)] = std::make_unique<int>(i);
  ASSERT_EQ(queue.try_push_n(in.data(), in.size()), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(in[i], nullptr);
  ASSERT_NE(in[4], nullptr);
  ASSERT_NE(in[5], nullptr);
  std::array<std::unique_ptr<int>, 6> out;
  ASSERT_EQ(queue.try_pop_n(out.data(), out.size()), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(*out[static_cast<std::size_t>(i)], i);
}

TEST(MpmcQueueTest, SingleAndBatchMix) {
  MpmcQueue<int> queue(16);
  int next_in = 0;
  int next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    std::array<int, 7> in{};
    for (int& v : in) v = next_in + static_cast<int>(&v - in.data());
    next_in += static_cast<int>(queue.try_push_n(in.data(), 1 + round % 7));
    if (queue.try_push(next_in)) ++next_in;
    std::array<int, 9> out{};
    const std::size_t got = queue.try_pop_n(out.data(), 1 + round % 9);
    for (std::size_t i = 0; i < got; ++i) ASSERT_EQ(out[i], next_out++);
    int one = 0;
    if (queue.try_pop(one)) {
      ASSERT_EQ(one, next_out++);
    }
  }
  int rest = 0;
  while (queue.try_pop(rest)) {
    ASSERT_EQ(rest, next_out++);
  }
  EXPECT_EQ(next_out, next_in);
}

TEST_F(CountedTest, NoLeakNoDoubleDestroyThroughPushAndPop) {
  {
    MpmcQueue<Counted> queue(8);
    EXPECT_EQ(Counted::live, 0);  // slots hold raw storage, not objects
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(queue.try_emplace(i));
    EXPECT_EQ(Counted::live, 8);
    Counted out;
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(queue.try_pop(out));
      EXPECT_EQ(out.value(), i);
    }
    EXPECT_EQ(Counted::live, 1);  // only `out`
    std::array<Counted, 4> batch{Counted(10), Counted(11), Counted(12), Counted(13)};
    ASSERT_EQ(queue.try_push_n(batch.data(), batch.size()), 4u);
    EXPECT_EQ(Counted::live, 1 + 4 + 4);
    std::array<Counted, 4> back;
    ASSERT_EQ(queue.try_pop_n(back.data(), back.size()), 4u);
    EXPECT_EQ(back[3].value(), 13);
    EXPECT_EQ(Counted::live, 1 + 4 + 4);
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST_F(CountedTest, DestructionWithItemsInsideDestroysEachOnce) {
  {
    MpmcQueue<Counted> queue(8);
    // Wrap the ring first so the leftovers straddle the end of the array.
    Counted out;
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(queue.try_emplace(i));
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(queue.try_pop(out));
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(queue.try_emplace(i));
    EXPECT_EQ(Counted::live, 6);
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST_F(CountedTest, DestructionOfFullQueue) {
  {
    MpmcQueue<Counted> queue(4, portico::detail::MpmcStartForTest{(std::uint64_t{1} << 63) - 2});
    while (queue.try_emplace(7)) {
    }
    EXPECT_EQ(Counted::live, 4);
  }
  EXPECT_EQ(Counted::live, 0);
}

// Copy construction throws on demand: a throwing push leaves a hole that
// consumers step over, and nothing leaks.
struct ThrowsOnCopy {
  static inline bool fail = false;
  static inline int live = 0;
  int value = 0;
  explicit ThrowsOnCopy(int v) : value(v) { ++live; }
  ThrowsOnCopy(const ThrowsOnCopy& other) : value(other.value) {
    if (fail) throw std::runtime_error("copy failed");
    ++live;
  }
  ThrowsOnCopy(ThrowsOnCopy&& other) noexcept : value(other.value) { ++live; }
  ThrowsOnCopy& operator=(const ThrowsOnCopy&) = default;
  ThrowsOnCopy& operator=(ThrowsOnCopy&&) noexcept = default;
  ~ThrowsOnCopy() { --live; }
};

TEST(MpmcQueueTest, ThrowingConstructionLeavesAHoleThatPopSkips) {
  {
    MpmcQueue<ThrowsOnCopy> queue(4);
    const ThrowsOnCopy item(5);
    ThrowsOnCopy::fail = true;
    EXPECT_THROW(queue.try_push(item), std::runtime_error);
    EXPECT_THROW(queue.try_emplace(item), std::runtime_error);
    ThrowsOnCopy::fail = false;
    EXPECT_TRUE(queue.try_push(item));
    ThrowsOnCopy out(0);
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out.value, 5);
    EXPECT_FALSE(queue.try_pop(out));
    EXPECT_EQ(queue.size_approx(), 0u);

    // Holes inside a batch pop are skipped too, and left inside at
    // destruction they are not destroyed.
    ThrowsOnCopy::fail = true;
    EXPECT_THROW(queue.try_push(item), std::runtime_error);
    ThrowsOnCopy::fail = false;
    ASSERT_TRUE(queue.try_push(item));
    std::array<ThrowsOnCopy, 4> batch{ThrowsOnCopy(0), ThrowsOnCopy(0), ThrowsOnCopy(0),
                                      ThrowsOnCopy(0)};
    EXPECT_EQ(queue.try_pop_n(batch.data(), batch.size()), 1u);
    EXPECT_EQ(batch[0].value, 5);
    ThrowsOnCopy::fail = true;
    EXPECT_THROW(queue.try_push(item), std::runtime_error);
    ThrowsOnCopy::fail = false;
    ASSERT_TRUE(queue.try_push(item));
    EXPECT_EQ(ThrowsOnCopy::live, 1 + 1 + 4 + 1);  // item, out, batch, one queued
  }
  EXPECT_EQ(ThrowsOnCopy::live, 0);
}

// The kind of element type a user writes first: copy only, nothing noexcept.
struct CopyOnlyCounted {
  static inline int live = 0;
  int value = 0;
  explicit CopyOnlyCounted(int v = 0) : value(v) { ++live; }
  CopyOnlyCounted(const CopyOnlyCounted& other) : value(other.value) { ++live; }
  CopyOnlyCounted& operator=(const CopyOnlyCounted& other) {
    value = other.value;
    return *this;
  }
  ~CopyOnlyCounted() { --live; }
};

TEST(MpmcQueueTest, CopyOnlyTypesWithoutNoexceptWork) {
  {
    MpmcQueue<CopyOnlyCounted> queue(4);
    const CopyOnlyCounted lvalue(1);
    EXPECT_TRUE(queue.try_push(lvalue));
    EXPECT_TRUE(queue.try_push(CopyOnlyCounted(2)));
    CopyOnlyCounted out;
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out.value, 1);
    EXPECT_TRUE(queue.try_push(CopyOnlyCounted(3)));
    EXPECT_EQ(CopyOnlyCounted::live, 2 + 2);
  }
  EXPECT_EQ(CopyOnlyCounted::live, 0);
}

// Move assignment throws on demand: the popped item is destroyed, the
// exception propagates, and the queue goes on with the next item.
struct ThrowsOnAssign {
  static inline bool fail = false;
  static inline int live = 0;
  int value = 0;
  explicit ThrowsOnAssign(int v = 0) noexcept : value(v) { ++live; }
  ThrowsOnAssign(const ThrowsOnAssign& other) noexcept : value(other.value) { ++live; }
  ThrowsOnAssign& operator=(const ThrowsOnAssign& other) {
    if (fail) throw std::runtime_error("assign failed");
    value = other.value;
    return *this;
  }
  ~ThrowsOnAssign() { --live; }
};

TEST(MpmcQueueTest, ThrowingPopDestroysThatItemAndGoesOn) {
  {
    MpmcQueue<ThrowsOnAssign> queue(4);
    ASSERT_TRUE(queue.try_emplace(1));
    ASSERT_TRUE(queue.try_emplace(2));
    ThrowsOnAssign out;
    ThrowsOnAssign::fail = true;
    EXPECT_THROW(queue.try_pop(out), std::runtime_error);
    ThrowsOnAssign::fail = false;
    EXPECT_EQ(ThrowsOnAssign::live, 2);  // `out` and item 2
    ASSERT_TRUE(queue.try_pop(out));
    EXPECT_EQ(out.value, 2);
    EXPECT_FALSE(queue.try_pop(out));
    EXPECT_TRUE(queue.try_emplace(3));
  }
  EXPECT_EQ(ThrowsOnAssign::live, 0);
}

TEST(MpmcQueueTest, BlockingPopGivesUpAtDeadline) {
  MpmcQueue<int> queue(4);
  int out = -1;
  EXPECT_FALSE(queue.pop_for(out, std::chrono::milliseconds(2)));
  EXPECT_FALSE(queue.pop_until(out, std::chrono::steady_clock::now()));
  EXPECT_FALSE(queue.pop_until(out, std::chrono::system_clock::now() - std::chrono::seconds(1)));
  EXPECT_EQ(out, -1);
  queue.push(3);
  EXPECT_TRUE(queue.pop_for(out, std::chrono::seconds(10)));
  EXPECT_EQ(out, 3);
  queue.push(4);
  queue.pop(out);
  EXPECT_EQ(out, 4);
}

TEST(MpmcQueueTest, BlockingPushGivesUpAtDeadline) {
  MpmcQueue<std::unique_ptr<int>> queue(2);
  queue.push(std::make_unique<int>(1));
  queue.push(std::make_unique<int>(2));
  auto extra = std::make_unique<int>(3);
  EXPECT_FALSE(queue.push_for(std::move(extra), std::chrono::milliseconds(2)));
  ASSERT_NE(extra, nullptr);  // not moved from on failure
  std::unique_ptr<int> out;
  ASSERT_TRUE(queue.try_pop(out));
  EXPECT_TRUE(queue.push_for(std::move(extra), std::chrono::seconds(10)));
  EXPECT_EQ(extra, nullptr);
  EXPECT_EQ(queue.size_approx(), 2u);
}

TEST(MpmcQueueTest, BlockingPushCopiesLvalue) {
  MpmcQueue<std::string> queue(2);
  const std::string text = "copied";
  EXPECT_TRUE(queue.push_until(text, std::chrono::steady_clock::now() + std::chrono::seconds(1)));
  queue.push(text);
  EXPECT_FALSE(queue.push_for(text, std::chrono::milliseconds(1)));
  EXPECT_EQ(text, "copied");
  std::string out;
  queue.pop(out);
  EXPECT_EQ(out, "copied");
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(MpmcQueueTest, WakeupFdSignalsWhenArmedQueueTurnsNonEmpty) {
  MpmcQueue<int> queue(8);
  EXPECT_EQ(queue.wakeup_fd(), -1);
  ASSERT_FALSE(queue.open_wakeup_fd());
  ASSERT_GE(queue.wakeup_fd(), 0);
  EXPECT_FALSE(readable(queue.wakeup_fd()));

  ASSERT_TRUE(queue.arm_wakeup());  // empty: safe to wait
  EXPECT_FALSE(readable(queue.wakeup_fd()));
  ASSERT_TRUE(queue.try_push(1));
  EXPECT_TRUE(readable(queue.wakeup_fd()));
  queue.consume_wakeup();
  EXPECT_FALSE(readable(queue.wakeup_fd()));

  // Not empty: arming says "drain first".
  EXPECT_FALSE(queue.arm_wakeup());
  int out = 0;
  ASSERT_TRUE(queue.try_pop(out));
  // Without arming, pushes leave the fd alone (beyond one stale signal from
  // the refused arm above, which the reactor treats as a spurious wake-up).
  ASSERT_TRUE(queue.try_push(2));
  queue.consume_wakeup();
  ASSERT_TRUE(queue.try_push(3));
  EXPECT_FALSE(readable(queue.wakeup_fd()));

  // Batch pushes signal too.
  while (queue.try_pop(out)) {
  }
  ASSERT_TRUE(queue.arm_wakeup());
  std::array<int, 3> batch{4, 5, 6};
  ASSERT_EQ(queue.try_push_n(batch.data(), batch.size()), 3u);
  EXPECT_TRUE(readable(queue.wakeup_fd()));
}

}  // namespace
