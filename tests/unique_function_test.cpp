// Tests for portico::detail::UniqueFunction: inline vs heap storage, moves,
// move-only captures, destruction counts.
#include "portico/detail/unique_function.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <utility>

namespace {

using portico::detail::UniqueFunction;

// Counts live instances so a leak or double destruction shows up.
struct Counted {
  static inline int live = 0;
  int value;
  explicit Counted(int v) noexcept : value(v) { ++live; }
  Counted(const Counted& o) noexcept : value(o.value) { ++live; }
  Counted(Counted&& o) noexcept : value(o.value) { ++live; }
  ~Counted() { --live; }
};

struct SmallCallable {
  Counted c;
  int operator()(int x) const { return c.value + x; }
};

struct BigCallable {
  Counted c;
  std::array<char, 128> pad{};
  int operator()(int x) const { return c.value * x; }
};

class UniqueFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override { Counted::live = 0; }
  void TearDown() override { EXPECT_EQ(Counted::live, 0); }
};

TEST_F(UniqueFunctionTest, EmptyByDefaultAndFromNullptr) {
  UniqueFunction<void()> a;
  UniqueFunction<void()> b = nullptr;
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
}

TEST_F(UniqueFunctionTest, InlineCallableCallsAndDestroysOnce) {
  static_assert(sizeof(SmallCallable) <= UniqueFunction<int(int)>::kInlineSize);
  {
    UniqueFunction<int(int)> f = SmallCallable{Counted{40}};
    EXPECT_EQ(Counted::live, 1);
    ASSERT_TRUE(f);
    EXPECT_EQ(f(2), 42);
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST_F(UniqueFunctionTest, HeapCallableCallsAndDestroysOnce) {
  static_assert(sizeof(BigCallable) > UniqueFunction<int(int)>::kInlineSize);
  {
    UniqueFunction<int(int)> f = BigCallable{Counted{6}, {}};
    EXPECT_EQ(Counted::live, 1);
    EXPECT_EQ(f(7), 42);
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST_F(UniqueFunctionTest, MoveConstructTransfersInlineAndHeap) {
  UniqueFunction<int(int)> a = SmallCallable{Counted{1}};
  UniqueFunction<int(int)> b = BigCallable{Counted{3}, {}};
  UniqueFunction<int(int)> a2 = std::move(a);
  UniqueFunction<int(int)> b2 = std::move(b);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(Counted::live, 2);
  EXPECT_EQ(a2(1), 2);
  EXPECT_EQ(b2(2), 6);
}

TEST_F(UniqueFunctionTest, MoveAssignDestroysPreviousTarget) {
  UniqueFunction<int(int)> a = SmallCallable{Counted{1}};
  UniqueFunction<int(int)> b = BigCallable{Counted{5}, {}};
  EXPECT_EQ(Counted::live, 2);
  a = std::move(b);
  EXPECT_EQ(Counted::live, 1);
  EXPECT_EQ(a(2), 10);
  b = SmallCallable{Counted{9}};
  EXPECT_EQ(b(1), 10);
  EXPECT_EQ(Counted::live, 2);
  auto& self = a;
  a = std::move(self);  // self-move keeps the target
  EXPECT_TRUE(a);
  EXPECT_EQ(Counted::live, 2);
}

TEST_F(UniqueFunctionTest, MoveOnlyCaptureWorks) {
  auto p = std::make_unique<Counted>(11);
  UniqueFunction<int()> f = [p = std::move(p)] { return p->value; };
  EXPECT_EQ(Counted::live, 1);
  UniqueFunction<int()> g = std::move(f);
  EXPECT_EQ(g(), 11);
  g.reset();
  EXPECT_FALSE(g);
  EXPECT_EQ(Counted::live, 0);
}

TEST_F(UniqueFunctionTest, ResetDestroysAndIsIdempotent) {
  UniqueFunction<int(int)> f = BigCallable{Counted{2}, {}};
  f.reset();
  EXPECT_EQ(Counted::live, 0);
  f.reset();
  EXPECT_FALSE(f);
}

TEST_F(UniqueFunctionTest, MutableStateKeptAcrossCallsAndMoves) {
  UniqueFunction<int()> f = [n = 0]() mutable { return ++n; };
  EXPECT_EQ(f(), 1);
  EXPECT_EQ(f(), 2);
  UniqueFunction<int()> g = std::move(f);
  EXPECT_EQ(g(), 3);
}

}  // namespace
