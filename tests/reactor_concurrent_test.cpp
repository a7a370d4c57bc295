// Cross-thread tests for portico::Reactor (label `concurrent`, also run under
// TSan): post() from many threads, post() into a full queue, stop().
#include "portico/reactor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace {

using portico::Reactor;
using portico::ReactorOptions;
using std::chrono::milliseconds;

constexpr auto kBound = std::chrono::seconds(30);

TEST(ReactorConcurrent, ManyProducersEveryTaskRunsOnceInProducerOrder) {
  const int producers = static_cast<int>(std::max(4u, 2 * std::thread::hardware_concurrency()));
  constexpr int kPerProducer = 20'000;
  ReactorOptions options;
  options.task_queue_capacity = 256;  // small: producers have to wait for space
  Reactor reactor(options);

  // Touched only by tasks, i.e. only on the loop thread.
  std::vector<int> next_expected(static_cast<std::size_t>(producers), 0);
  long out_of_order = 0, off_loop = 0, total = 0;

  std::promise<void> loop_done;
  auto loop_finished = loop_done.get_future();
  std::thread loop([&] {
    reactor.run();
    loop_done.set_value();
  });

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const bool ok = reactor.post([&, p, i] {
          if (!reactor.in_loop_thread()) ++off_loop;
          int& expected = next_expected[static_cast<std::size_t>(p)];
          if (expected != i) ++out_of_order;
          expected = i + 1;
          ++total;
        });
        ASSERT_TRUE(ok);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(reactor.post([&] { reactor.stop(); }));
  ASSERT_EQ(loop_finished.wait_for(kBound), std::future_status::ready);
  loop.join();

  EXPECT_EQ(total, static_cast<long>(producers) * kPerProducer);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(off_loop, 0);
  for (int p = 0; p < producers; ++p) EXPECT_EQ(next_expected[static_cast<std::size_t>(p)], kPerProducer);
  EXPECT_EQ(reactor.stats().tasks_run, static_cast<std::uint64_t>(producers) * kPerProducer + 1);
}

TEST(ReactorConcurrent, PostIntoFullQueueWaitsInsteadOfDropping) {
  ReactorOptions options;
  options.task_queue_capacity = 2;
  Reactor reactor(options);
  std::atomic<int> ran{0};
  std::promise<void> posted;
  auto all_posted = posted.get_future();
  std::thread producer([&] {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(reactor.post([&] { ran.fetch_add(1); }));
    posted.set_value();
  });
  // The loop has not run: the producer is stuck on the third post.
  EXPECT_EQ(all_posted.wait_for(milliseconds(50)), std::future_status::timeout);
  EXPECT_EQ(ran.load(), 0);
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while (ran.load() < 5 && std::chrono::steady_clock::now() < deadline) {
    reactor.run_once(milliseconds(100));
  }
  EXPECT_EQ(all_posted.wait_for(kBound), std::future_status::ready);
  producer.join();
  EXPECT_EQ(ran.load(), 5);
}

TEST(ReactorConcurrent, StopFromAnotherThreadWakesABlockedLoop) {
  Reactor reactor;
  std::promise<void> started;
  auto loop_started = started.get_future();
  ASSERT_TRUE(reactor.try_post([&] { started.set_value(); }));
  std::promise<void> done;
  auto loop_done = done.get_future();
  std::thread loop([&] {
    reactor.run();  // no timers, no fds: blocks in epoll_wait (for up to 24 h)
    done.set_value();
  });
  ASSERT_EQ(loop_started.wait_for(kBound), std::future_status::ready);
  const auto before = std::chrono::steady_clock::now();
  reactor.stop();
  ASSERT_EQ(loop_done.wait_for(kBound), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));
  loop.join();
  EXPECT_TRUE(reactor.stop_requested());
}

}  // namespace
