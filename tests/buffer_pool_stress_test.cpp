// Concurrency of BufferPool (label: concurrent, run under TSan): blocks and
// slices dropped on other threads come home exactly once, ownership hand-over,
// and pool destruction while other threads still hold blocks. Conservation is
// checked with the pool's own stats and with stamps written into each block.
#include "portico/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace {

using portico::Buffer;
using portico::BufferPool;
using portico::BufferPoolOptions;
using portico::BufferSlice;

// A plain blocking channel for the tests only: the library under test must
// not be the thing that carries its own buffers between threads here.
template <typename T>
class Channel {
 public:
  void push(T item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
  }
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool closed_ = false;
};

BufferPoolOptions small_pool(std::size_t max_blocks) {
  BufferPoolOptions options;
  options.block_size = 1024;
  options.max_blocks = max_blocks;
  options.slab_size = 16 * 1024;
  options.huge_pages = BufferPoolOptions::HugePages::kNone;
  return options;
}

// Writes `stamp` at both ends of the block: a block reused while still live
// would show a torn or foreign stamp to whoever checks it.
void stamp(Buffer& buffer, std::uint64_t value) {
  auto tail = buffer.prepare();
  std::memcpy(tail.data(), &value, sizeof value);
  std::memcpy(tail.data() + tail.size() - sizeof value, &value, sizeof value);
  buffer.commit(tail.size());
}
std::uint64_t read_stamp(const char* data, std::size_t size) {
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::memcpy(&head, data, sizeof head);
  std::memcpy(&tail, data + size - sizeof tail, sizeof tail);
  return head == tail ? head : ~std::uint64_t{0};
}

// Acquires, spinning politely while every block is out on other threads:
// acquire() itself never blocks, and must make progress once blocks come back.
Buffer acquire_eventually(BufferPool& pool) {
  for (;;) {
    if (Buffer buffer = pool.acquire()) return buffer;
    std::this_thread::yield();
  }
}

TEST(BufferPoolStressTest, RemoteFreesFromManyThreadsAreConserved) {
  constexpr int kWorkers = 4;
  constexpr std::uint64_t kBuffers = 20000;
  BufferPool pool(small_pool(32));
  Channel<Buffer> channel;
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> stamp_sum{0};
  std::atomic<int> torn{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<Buffer> buffer = channel.pop()) {
        const std::uint64_t value = read_stamp(buffer->data(), buffer->size());
        if (value == ~std::uint64_t{0}) torn.fetch_add(1);
        stamp_sum.fetch_add(value, std::memory_order_relaxed);
        received.fetch_add(1, std::memory_order_relaxed);
        // The optional's Buffer is dropped here, on a worker: a remote free.
      }
    });
  }
  for (std::uint64_t i = 1; i <= kBuffers; ++i) {
    Buffer buffer = acquire_eventually(pool);
    stamp(buffer, i);
    channel.push(std::move(buffer));
  }
  channel.close();
  for (std::thread& t : workers) t.join();
  pool.reclaim();
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(received.load(), kBuffers);
  EXPECT_EQ(stamp_sum.load(), kBuffers * (kBuffers + 1) / 2);
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.remote_frees, kBuffers);
  EXPECT_LE(stats.high_water, 32u);
  EXPECT_LE(stats.blocks_total, 32u);
}

TEST(BufferPoolStressTest, SlicesDroppedOnManyThreadsReturnTheBlockOnce) {
  constexpr int kWorkers = 4;
  constexpr std::uint64_t kBuffers = 5000;
  BufferPool pool(small_pool(16));
  std::vector<Channel<BufferSlice>> channels(kWorkers);
  std::atomic<int> bad{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      while (std::optional<BufferSlice> slice = channels[w].pop()) {
        // Each worker got a different quarter; all quarters carry the stamp.
        if (slice->size() != 256 || read_stamp(slice->data(), 8) == ~std::uint64_t{0}) {
          bad.fetch_add(1);
        }
        BufferSlice copy = *slice;  // copies and drops race with the other workers
        slice.reset();
      }
    });
  }
  for (std::uint64_t i = 1; i <= kBuffers; ++i) {
    Buffer buffer = acquire_eventually(pool);
    auto tail = buffer.prepare();
    for (std::size_t q = 0; q < 4; ++q) std::memcpy(tail.data() + q * 256, &i, sizeof i);
    buffer.commit(1024);
    for (int w = 0; w < kWorkers; ++w) channels[w].push(buffer.slice(w * 256, 256));
    // Half the time the owner's Buffer goes first, half the time last.
    if (i % 2 == 0) buffer.reset();
  }
  for (Channel<BufferSlice>& c : channels) c.close();
  for (std::thread& t : workers) t.join();
  pool.reclaim();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_LE(pool.stats().blocks_total, 16u);
}

TEST(BufferPoolStressTest, PoolDestroyedWhileOtherThreadsHoldBlocks) {
  constexpr int kWorkers = 3;
  const std::size_t live_before = BufferPool::live_pool_cores();
  std::latch pool_gone(1);
  std::vector<Channel<Buffer>> channels(kWorkers);
  std::vector<std::thread> workers;
  std::atomic<int> bad{0};
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::vector<BufferSlice> kept;
      while (std::optional<Buffer> buffer = channels[w].pop()) {
        kept.push_back(buffer->slice(0, buffer->size()));
        // Some blocks are freed while the pool lives...
        if (kept.size() % 2 == 0) kept.pop_back();
      }
      pool_gone.wait();
      // ...the rest only after it is destroyed.
      for (const BufferSlice& s : kept) {
        if (read_stamp(s.data(), s.size()) == ~std::uint64_t{0}) bad.fetch_add(1);
      }
      kept.clear();
    });
  }
  {
    BufferPool pool(small_pool(64));
    for (std::uint64_t i = 1; i <= 60; ++i) {
      Buffer buffer = pool.acquire();
      ASSERT_TRUE(buffer);
      stamp(buffer, i);
      channels[i % kWorkers].push(std::move(buffer));
    }
    for (Channel<Buffer>& c : channels) c.close();
  }
  pool_gone.count_down();
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before);
}

TEST(BufferPoolStressTest, OwnershipHandsOverToAnotherThread) {
  BufferPool pool(small_pool(16));
  std::vector<Buffer> handed_back;
  std::thread reactor([&] {
    pool.bind_to_current_thread();
    std::vector<Buffer> held;
    for (int i = 0; i < 10; ++i) held.push_back(pool.acquire());
    held.resize(5);  // five released on the new owner: local frees
    handed_back = std::move(held);
  });
  reactor.join();
  EXPECT_EQ(pool.stats().blocks_in_use, 5u);
  handed_back.clear();  // this thread is no longer the owner: remote frees
  EXPECT_EQ(pool.stats().blocks_in_use, 5u);
  pool.bind_to_current_thread();
  EXPECT_EQ(pool.reclaim(), 5u);
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.remote_frees, 5u);
  EXPECT_EQ(stats.high_water, 10u);
}

// More threads than cores, each the owner of a pool and the remote releaser
// of its neighbour's blocks, all at once.
TEST(BufferPoolStressTest, OversubscribedRingOfOwners) {
  constexpr int kThreads = 8;
  constexpr std::uint64_t kPerThread = 3000;
  std::vector<Channel<Buffer>> inbox(kThreads);
  std::vector<portico::BufferPoolStats> final_stats(kThreads);
  std::atomic<int> bad{0};
  std::latch all_sent(kThreads);
  std::latch all_drained(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      BufferPool pool(small_pool(8));
      std::thread receiver([&] {
        while (std::optional<Buffer> b = inbox[t].pop()) {
          if (read_stamp(b->data(), b->size()) == ~std::uint64_t{0}) bad.fetch_add(1);
        }
      });
      for (std::uint64_t i = 1; i <= kPerThread; ++i) {
        Buffer buffer = acquire_eventually(pool);
        stamp(buffer, i);
        inbox[(t + 1) % kThreads].push(std::move(buffer));
      }
      all_sent.arrive_and_wait();
      inbox[t].close();
      receiver.join();
      all_drained.arrive_and_wait();  // every block sent anywhere is dropped
      pool.reclaim();
      final_stats[t] = pool.stats();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  for (const portico::BufferPoolStats& s : final_stats) {
    EXPECT_EQ(s.blocks_in_use, 0u);
    EXPECT_EQ(s.remote_frees, kPerThread);
    EXPECT_LE(s.blocks_total, 8u);
  }
}

// ---- remote_release_batch > 1: remote frees parked per thread, pushed in chains

BufferPoolOptions batched_pool(std::size_t max_blocks, std::size_t batch) {
  BufferPoolOptions options = small_pool(max_blocks);
  options.remote_release_batch = batch;
  return options;
}

// Runs `job` on a new thread, then waits there until `finish` is called, so
// the test can look at the pool while the thread (and its cache) is alive.
class Parker {
 public:
  explicit Parker(std::function<void()> job)
      : thread_([this, job = std::move(job)] {
          job();
          done_.set_value();
          go_.get_future().wait();
        }) {
    done_.get_future().wait();
  }
  // Lets the thread exit (running its thread-exit flush) and joins it.
  void finish() {
    go_.set_value();
    thread_.join();
  }
  ~Parker() {
    if (thread_.joinable()) finish();
  }

 private:
  std::promise<void> done_;
  std::promise<void> go_;
  std::thread thread_;
};

std::vector<Buffer> acquire_n(BufferPool& pool, std::size_t n) {
  std::vector<Buffer> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(pool.acquire());
    EXPECT_TRUE(out.back());
  }
  return out;
}

TEST(BufferPoolStressTest, BatchedRemoteFreesParkUntilTheThreadExits) {
  BufferPool pool(batched_pool(64, 32));
  std::vector<Buffer> out = acquire_n(pool, 5);
  Parker thread([&] { out.clear(); });  // five remote frees, parked
  EXPECT_EQ(pool.reclaim(), 0u);
  EXPECT_EQ(pool.stats().blocks_in_use, 5u);
  thread.finish();  // the thread-exit flush pushes them home
  EXPECT_EQ(pool.reclaim(), 5u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().remote_frees, 5u);
}

TEST(BufferPoolStressTest, BatchedRemoteFreesGoHomeOnExplicitFlush) {
  BufferPool pool(batched_pool(64, 32));
  std::vector<Buffer> out = acquire_n(pool, 5);
  Parker thread([&] {
    out.clear();
    BufferPool::flush_thread_cache();
    BufferPool::flush_thread_cache();  // nothing left: a no-op
  });
  EXPECT_EQ(pool.reclaim(), 5u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  thread.finish();
  EXPECT_EQ(pool.reclaim(), 0u);
  EXPECT_EQ(pool.stats().remote_frees, 5u);
}

TEST(BufferPoolStressTest, BatchedRemoteFreesGoHomeWhenTheChainFills) {
  BufferPool pool(batched_pool(64, 4));
  std::vector<Buffer> out = acquire_n(pool, 11);
  Parker thread([&] { out.clear(); });  // two chains of 4 go home, 3 stay parked
  EXPECT_EQ(pool.reclaim(), 8u);
  EXPECT_EQ(pool.stats().blocks_in_use, 3u);
  thread.finish();
  EXPECT_EQ(pool.reclaim(), 3u);
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.remote_frees, 11u);
  EXPECT_EQ(stats.high_water, 11u);
}

TEST(BufferPoolStressTest, ExhaustedOwnerMakesRemoteThreadsStopParking) {
  BufferPool pool(batched_pool(4, 32));
  std::vector<Buffer> out = acquire_n(pool, 4);
  std::vector<Buffer> later;
  later.push_back(std::move(out[3]));
  out.pop_back();
  std::promise<void> dropped_three;
  std::promise<void> owner_failed;
  std::promise<void> dropped_fourth;
  std::promise<void> finish;
  std::thread remote([&] {
    out.clear();
    dropped_three.set_value();
    owner_failed.get_future().wait();
    later.clear();  // the owner wants blocks: the whole chain goes home now
    dropped_fourth.set_value();
    finish.get_future().wait();  // alive (cache not flushed by exit) while the owner checks
  });
  dropped_three.get_future().wait();
  EXPECT_FALSE(pool.acquire());  // exhausted: three blocks are parked
  EXPECT_EQ(pool.stats().failed_acquires, 1u);
  owner_failed.set_value();
  dropped_fourth.get_future().wait();
  EXPECT_EQ(pool.reclaim(), 4u);  // pushed by the release itself, not by an exit
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  finish.set_value();
  remote.join();
}

TEST(BufferPoolStressTest, PoolDestroyedWithParkedBlocksStaysAliveUntilTheyGoHome) {
  const std::size_t live_before = BufferPool::live_pool_cores();
  std::vector<Buffer> out;
  std::vector<BufferSlice> kept;
  {
    BufferPool pool(batched_pool(64, 32));
    out = acquire_n(pool, 6);
    for (std::size_t i = 0; i < out.size(); ++i) stamp(out[i], i + 1);
    for (std::size_t i = 3; i < 6; ++i) kept.push_back(std::move(out[i]).to_slice());
    out.resize(3);
  }
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);
  int bad = 0;
  Parker thread([&] {
    out.clear();  // parked on this thread; the pool is already gone
    for (const BufferSlice& s : kept) {
      if (read_stamp(s.data(), s.size()) == ~std::uint64_t{0}) ++bad;
    }
    kept.clear();
  });
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);  // kept alive by parked blocks
  thread.finish();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before);
}

TEST(BufferPoolStressTest, ParkedBlocksOfManyPoolsAllGoHome) {
  constexpr std::size_t kPools = 7;  // more than a thread parks for at once
  std::vector<BufferPool> pools;
  std::vector<Buffer> out;
  for (std::size_t p = 0; p < kPools; ++p) {
    pools.emplace_back(batched_pool(64, 8));
    for (std::size_t i = 0; i < 20; ++i) out.push_back(pools.back().acquire());
  }
  // Interleaved, so chains are evicted and refilled.
  std::vector<Buffer> interleaved;
  for (std::size_t i = 0; i < 20; ++i) {
    for (std::size_t p = 0; p < kPools; ++p) interleaved.push_back(std::move(out[p * 20 + i]));
  }
  std::thread remote([&] { interleaved.clear(); });
  remote.join();
  for (BufferPool& pool : pools) {
    pool.reclaim();
    EXPECT_EQ(pool.stats().blocks_in_use, 0u);
    EXPECT_EQ(pool.stats().remote_frees, 20u);
  }
}

// Conservation with parking: workers never idle long enough to starve the
// owner, since max_blocks exceeds workers * (batch - 1).
TEST(BufferPoolStressTest, BatchedRemoteFreesFromManyThreadsAreConserved) {
  constexpr int kWorkers = 4;
  constexpr std::uint64_t kBuffers = 20000;
  BufferPool pool(batched_pool(64, 8));
  Channel<Buffer> channel;
  std::atomic<std::uint64_t> stamp_sum{0};
  std::atomic<int> torn{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<Buffer> buffer = channel.pop()) {
        const std::uint64_t value = read_stamp(buffer->data(), buffer->size());
        if (value == ~std::uint64_t{0}) torn.fetch_add(1);
        stamp_sum.fetch_add(value, std::memory_order_relaxed);
      }
    });
  }
  for (std::uint64_t i = 1; i <= kBuffers; ++i) {
    Buffer buffer = acquire_eventually(pool);
    stamp(buffer, i);
    channel.push(std::move(buffer));
  }
  channel.close();
  for (std::thread& t : workers) t.join();
  pool.reclaim();
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(stamp_sum.load(), kBuffers * (kBuffers + 1) / 2);
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.remote_frees, kBuffers);
  EXPECT_LE(stats.high_water, 64u);
}

}  // namespace
