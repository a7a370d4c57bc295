// Conservation stress tests for MpmcQueue: many producers and consumers (more
// threads than cores too) move tagged items through small rings; every item
// must come out exactly once, and items of one producer must reach any one
// consumer in the order they were pushed. Run under TSan in CI (label
// `concurrent`). Threads start together on a latch; nothing sleeps to
// synchronise.
#include "portico/mpmc_queue.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

using portico::MpmcQueue;

// Sanitizers slow each operation 5-20x; the item counts keep every case to
// seconds there and still cover many thousands of laps of the small rings.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kItemsPerProducer = 20'000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr std::uint64_t kItemsPerProducer = 20'000;
#else
constexpr std::uint64_t kItemsPerProducer = 100'000;
#endif
#else
constexpr std::uint64_t kItemsPerProducer = 100'000;
#endif

// An item names its producer (high bits) and its index (low bits).
constexpr std::uint64_t encode(std::uint64_t producer, std::uint64_t index) {
  return (producer << 40) | index;
}
constexpr std::uint64_t producer_of(std::uint64_t item) {
  return item >> 40;
}
constexpr std::uint64_t index_of(std::uint64_t item) {
  return item & ((1ull << 40) - 1);
}

enum class Mode { kTry, kBatch, kBlocking, kMixed };

struct Shape {
  int producers;
  int consumers;
  std::size_t capacity;
  Mode mode;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << s.producers << " producers, " << s.consumers << " consumers, capacity " << s.capacity;
}

std::string shape_name(const ::testing::TestParamInfo<Shape>& info) {
  const Shape& s = info.param;
  const char* mode = s.mode == Mode::kTry        ? "Try"
                     : s.mode == Mode::kBatch    ? "Batch"
                     : s.mode == Mode::kBlocking ? "Blocking"
                                                 : "Mixed";
  return std::to_string(s.producers) + "P" + std::to_string(s.consumers) + "C_Cap" +
         std::to_string(s.capacity) + "_" + mode;
}

// Spins briefly then yields: with more threads than cores a pure spinner
// starves the thread it waits for.
class Backoff {
 public:
  void pause() {
    if (++misses_ < 32) return;
    std::this_thread::yield();
  }
  void reset() { misses_ = 0; }

 private:
  int misses_ = 0;
};

class MpmcQueueStressTest : public ::testing::TestWithParam<Shape> {};

void produce(MpmcQueue<std::uint64_t>& queue, int id, Mode mode) {
  const auto producer = static_cast<std::uint64_t>(id);
  Backoff backoff;
  std::uint64_t index = 0;
  // Mixed: even producers block, odd ones batch.
  const bool batch = mode == Mode::kBatch || (mode == Mode::kMixed && id % 2 == 1);
  const bool blocking = mode == Mode::kBlocking || (mode == Mode::kMixed && id % 2 == 0);
  while (index < kItemsPerProducer) {
    if (blocking) {
      queue.push(encode(producer, index++));
    } else if (batch) {
      std::uint64_t items[13];
      const std::size_t want = std::min<std::uint64_t>(1 + index % 13, kItemsPerProducer - index);
      for (std::size_t i = 0; i < want; ++i) items[i] = encode(producer, index + i);
      const std::size_t pushed = queue.try_push_n(items, want);
      index += pushed;
      if (pushed == 0)
        backoff.pause();
      else
        backoff.reset();
    } else if (queue.try_push(encode(producer, index))) {
      ++index;
      backoff.reset();
    } else {
      backoff.pause();
    }
  }
}

// Pops `quota` items and checks per-producer order as it goes; returns what it
// saw so the caller can check exactly-once delivery.
std::vector<std::uint64_t> consume(MpmcQueue<std::uint64_t>& queue, int id, Mode mode,
                                   std::uint64_t quota, int producers) {
  std::vector<std::uint64_t> seen;
  seen.reserve(quota);
  std::vector<std::int64_t> last(static_cast<std::size_t>(producers), -1);
  Backoff backoff;
  const bool batch = mode == Mode::kBatch || (mode == Mode::kMixed && id % 2 == 1);
  const bool blocking = mode == Mode::kBlocking || (mode == Mode::kMixed && id % 2 == 0);
  auto record = [&](std::uint64_t item) {
    const std::uint64_t p = producer_of(item);
    EXPECT_LT(p, static_cast<std::uint64_t>(producers));
    if (p >= static_cast<std::uint64_t>(producers)) return;
    const auto index = static_cast<std::int64_t>(index_of(item));
    EXPECT_GT(index, last[p]) << "producer " << p << " out of order at consumer " << id;
    last[p] = index;
    seen.push_back(item);
  };
  while (seen.size() < quota) {
    if (blocking) {
      std::uint64_t item = 0;
      queue.pop(item);
      record(item);
    } else if (batch) {
      std::uint64_t items[11];
      const std::size_t want = std::min<std::uint64_t>(11, quota - seen.size());
      const std::size_t got = queue.try_pop_n(items, want);
      for (std::size_t i = 0; i < got; ++i) record(items[i]);
      if (got == 0)
        backoff.pause();
      else
        backoff.reset();
    } else {
      std::uint64_t item = 0;
      if (queue.try_pop(item)) {
        record(item);
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
  }
  return seen;
}

TEST_P(MpmcQueueStressTest, ExactlyOnceAndPerProducerFifo) {
  const Shape shape = GetParam();
  const std::uint64_t total = kItemsPerProducer * static_cast<std::uint64_t>(shape.producers);
  const auto consumers = static_cast<std::uint64_t>(shape.consumers);

  // Start near the 64-bit wrap so the run crosses it under contention.
  MpmcQueue<std::uint64_t> queue(shape.capacity,
                                 portico::detail::MpmcStartForTest{(1ull << 63) - 1000});
  std::vector<std::vector<std::uint64_t>> seen(static_cast<std::size_t>(shape.consumers));
  std::latch start(shape.producers + shape.consumers);
  std::vector<std::thread> threads;
  for (int c = 0; c < shape.consumers; ++c) {
    threads.emplace_back([&, c] {
      start.arrive_and_wait();
      const auto index = static_cast<std::uint64_t>(c);
      const std::uint64_t quota = total / consumers + (index < total % consumers ? 1 : 0);
      seen[static_cast<std::size_t>(c)] = consume(queue, c, shape.mode, quota, shape.producers);
    });
  }
  for (int p = 0; p < shape.producers; ++p) {
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      produce(queue, p, shape.mode);
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(queue.size_approx(), 0u);
  std::uint64_t extra = 0;
  EXPECT_FALSE(queue.try_pop(extra));

  std::vector<std::uint64_t> count(static_cast<std::size_t>(total), 0);
  for (const auto& list : seen) {
    for (std::uint64_t item : list) {
      const std::uint64_t slot = producer_of(item) * kItemsPerProducer + index_of(item);
      ASSERT_LT(slot, total);
      ++count[static_cast<std::size_t>(slot)];
    }
  }
  const auto wrong = std::count_if(count.begin(), count.end(), [](auto n) { return n != 1; });
  EXPECT_EQ(wrong, 0) << "items lost or duplicated";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MpmcQueueStressTest,
    ::testing::Values(Shape{1, 1, 2, Mode::kTry}, Shape{2, 2, 8, Mode::kTry},
                      Shape{4, 4, 64, Mode::kTry}, Shape{8, 8, 16, Mode::kTry},
                      Shape{3, 1, 4, Mode::kTry}, Shape{1, 3, 4, Mode::kTry},
                      Shape{1, 1, 16, Mode::kBatch}, Shape{4, 4, 32, Mode::kBatch},
                      Shape{6, 2, 8, Mode::kBatch}, Shape{1, 1, 2, Mode::kBlocking},
                      Shape{2, 2, 4, Mode::kBlocking}, Shape{8, 8, 8, Mode::kBlocking},
                      Shape{4, 4, 16, Mode::kMixed}, Shape{6, 6, 4, Mode::kMixed}),
    shape_name);

// Counts live instances across threads.
struct Tracked {
  static inline std::atomic<int> live{0};
  std::uint64_t value = 0;
  Tracked() noexcept { live.fetch_add(1, std::memory_order_relaxed); }
  explicit Tracked(std::uint64_t v) noexcept : value(v) {
    live.fetch_add(1, std::memory_order_relaxed);
  }
  Tracked(Tracked&& other) noexcept : value(other.value) {
    live.fetch_add(1, std::memory_order_relaxed);
  }
  Tracked& operator=(Tracked&& other) noexcept {
    value = other.value;
    return *this;
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() { live.fetch_sub(1, std::memory_order_relaxed); }
};

TEST(MpmcQueueStressTest, DestructionAfterConcurrentUseDestroysLeftovers) {
  Tracked::live.store(0);
  {
    MpmcQueue<Tracked> queue(64);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 5000;
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    std::atomic<int> pushed{0};
    std::atomic<int> popped{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        Tracked out;
        for (int i = 0; i < kPerThread; ++i) {
          // Push twice, pop once: the ring ends up holding what is left.
          if (queue.try_emplace(static_cast<std::uint64_t>(i))) pushed.fetch_add(1);
          if (i % 2 == t % 2 && queue.try_pop(out)) popped.fetch_add(1);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const int inside = pushed.load() - popped.load();
    EXPECT_EQ(static_cast<int>(queue.size_approx()), inside);
    EXPECT_EQ(Tracked::live.load(), inside);
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

// A reactor-like consumer that waits on the eventfd with poll() whenever the
// queue is empty; producers push with try_push. Every item must arrive, and
// the consumer must never wait out the (generous) poll timeout.
TEST(MpmcQueueStressTest, WakeupFdNeverMissesAPush) {
  constexpr int kProducers = 3;
  constexpr std::uint64_t kPerProducer = 20'000;
  MpmcQueue<std::uint64_t> queue(16);
  ASSERT_FALSE(queue.open_wakeup_fd());
  std::latch start(kProducers + 1);
  std::uint64_t received = 0;
  int stalls = 0;
  std::thread reactor([&] {
    start.arrive_and_wait();
    std::vector<std::int64_t> last(kProducers, -1);
    while (received < kProducers * kPerProducer) {
      std::uint64_t item = 0;
      bool drained_any = false;
      while (queue.try_pop(item)) {
        drained_any = true;
        const auto p = producer_of(item);
        const auto index = static_cast<std::int64_t>(index_of(item));
        EXPECT_GT(index, last[p]);
        last[p] = index;
        ++received;
      }
      if (received == kProducers * kPerProducer) break;
      if (!queue.arm_wakeup()) {
        if (!drained_any) std::this_thread::yield();
        continue;
      }
      pollfd p{queue.wakeup_fd(), POLLIN, 0};
      if (::poll(&p, 1, 10'000) == 0) {
        ++stalls;  // a lost wake-up: give up rather than hang
        break;
      }
      queue.consume_wakeup();
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      start.arrive_and_wait();
      Backoff backoff;
      for (std::uint64_t i = 0; i < kPerProducer;) {
        if (queue.try_push(encode(static_cast<std::uint64_t>(t), i))) {
          ++i;
          backoff.reset();
        } else {
          backoff.pause();
        }
      }
    });
  }
  for (std::thread& t : producers) t.join();
  reactor.join();
  EXPECT_EQ(stalls, 0);
  EXPECT_EQ(received, kProducers * kPerProducer);
}

// Consumers that sleep in pop() on an empty queue are all woken, even when
// the pushes come in bursts far apart.
TEST(MpmcQueueStressTest, SleepingConsumersAreWoken) {
  constexpr int kConsumers = 4;
  constexpr int kRounds = 200;
  MpmcQueue<int> queue(8);
  std::atomic<int> total{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        int item = 0;
        // A lost wake-up shows as a timeout here rather than a hung test.
        EXPECT_TRUE(queue.pop_for(item, std::chrono::seconds(10)));
        total.fetch_add(item, std::memory_order_relaxed);
      }
    });
  }
  for (int r = 0; r < kRounds; ++r) {
    for (int c = 0; c < kConsumers; ++c) queue.push(1);
  }
  for (std::thread& t : consumers) t.join();
  EXPECT_EQ(total.load(), kConsumers * kRounds);
}

}  // namespace
