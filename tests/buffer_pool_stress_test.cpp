// Concurrency of BufferPool (label: concurrent, run under TSan): blocks and
// slices dropped on other threads come home exactly once (through the rings,
// their overflow stack, across thread exit), ownership hand-over, and pool
// destruction while other threads still hold or release blocks. Conservation is
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
#include <set>
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

// Sends buffers stamped 1..count through `channel` (to be released by its
// readers, off the owner's thread), then closes it.
void send_stamped(BufferPool& pool, Channel<Buffer>& channel, std::uint64_t count) {
  for (std::uint64_t i = 1; i <= count; ++i) {
    Buffer buffer = acquire_eventually(pool);
    stamp(buffer, i);
    channel.push(std::move(buffer));
  }
  channel.close();
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
  send_stamped(pool, channel, kBuffers);
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

// ---- the per-(thread, pool) hand-back rings

BufferPoolOptions ringed_pool(std::size_t max_blocks, std::size_t ring_slots) {
  BufferPoolOptions options = small_pool(max_blocks);
  options.remote_ring_slots = ring_slots;
  return options;
}

// Runs `job` on a new thread, then waits there until `finish` is called, so
// the test can look at the pool while the thread (and its ring) is alive.
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
  // Lets the thread exit (detaching its rings) and joins it.
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

// How many different blocks `buffers` hold (each block once when == size()).
std::size_t distinct_blocks(std::vector<Buffer>& buffers) {
  std::set<const char*> blocks;
  for (Buffer& b : buffers) blocks.insert(b.prepare().data());
  return blocks.size();
}

// Nothing is parked on the releasing thread: the owner sees every remote free
// while that thread lives on, idle.
TEST(BufferPoolStressTest, RemoteFreesAreVisibleWhileTheThreadIdles) {
  BufferPool pool(small_pool(64));
  std::vector<Buffer> out = acquire_n(pool, 5);
  Parker thread([&] { out.clear(); });
  EXPECT_EQ(pool.stats().blocks_in_use, 5u);  // not drained yet
  EXPECT_EQ(pool.reclaim(), 5u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.reclaim(), 0u);
  thread.finish();
  EXPECT_EQ(pool.reclaim(), 0u);
  EXPECT_EQ(pool.stats().remote_frees, 5u);
}

// The owner drains by itself when its free list runs dry: the ring's blocks
// are acquired again without a reclaim() call.
TEST(BufferPoolStressTest, DryOwnerDrainsTheRings) {
  BufferPool pool(small_pool(4));
  std::vector<Buffer> out = acquire_n(pool, 4);
  EXPECT_FALSE(pool.acquire());
  Parker thread([&] { out.clear(); });
  std::vector<Buffer> again = acquire_n(pool, 4);
  EXPECT_EQ(pool.stats().remote_frees, 4u);
  EXPECT_EQ(pool.stats().blocks_total, 4u);
}

TEST(BufferPoolStressTest, RemoteFreesSurviveTheThreadsExit) {
  BufferPool pool(small_pool(64));
  std::vector<Buffer> out = acquire_n(pool, 7);
  std::thread remote([&] { out.clear(); });
  remote.join();  // its ring stays with the pool, blocks and all
  EXPECT_EQ(pool.stats().blocks_in_use, 7u);
  EXPECT_EQ(pool.reclaim(), 7u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

// Ring slots hold 16-bit tokens (block index + 1) beside two marker values:
// the largest pool with rings has 65533 blocks, and its last block's token is
// the largest. Released remotely, last block first, every block comes home;
// one block more and the pool makes no ring, every remote release taking the
// stack.
TEST(BufferPoolStressTest, RingTokensReachTheLargestPoolWithRings) {
  for (const std::size_t blocks : {std::size_t{65533}, std::size_t{65534}}) {
    BufferPoolOptions options;
    options.block_size = 64;
    options.max_blocks = blocks;
    options.slab_size = 1024 * 1024;
    options.huge_pages = BufferPoolOptions::HugePages::kNone;
    BufferPool pool(options);
    const std::size_t rings_before = BufferPool::live_remote_rings();
    std::vector<Buffer> out = acquire_n(pool, blocks);
    ASSERT_FALSE(pool.acquire()) << blocks;
    std::size_t rings_during = 0;
    std::thread remote([&] {
      while (!out.empty()) out.pop_back();  // the highest index first
      rings_during = BufferPool::live_remote_rings();
    });
    remote.join();
    EXPECT_EQ(rings_during, rings_before + (blocks == 65533 ? 1 : 0)) << blocks;
    EXPECT_EQ(pool.reclaim(), blocks);
    EXPECT_EQ(pool.stats().blocks_in_use, 0u);
    EXPECT_EQ(pool.stats().remote_frees, blocks);
    // Every block is usable again, each once.
    std::vector<Buffer> again = acquire_n(pool, blocks);
    EXPECT_EQ(distinct_blocks(again), blocks);
  }
}

// A ring of 4 slots, 11 remote frees and no drain in between: 4 go through the
// ring, 7 through the shared stack, and each comes home exactly once.
TEST(BufferPoolStressTest, FullRingFallsBackToTheStack) {
  BufferPool pool(ringed_pool(64, 4));
  std::vector<Buffer> out = acquire_n(pool, 11);
  for (std::size_t i = 0; i < out.size(); ++i) stamp(out[i], i + 1);
  Parker thread([&] { out.clear(); });
  EXPECT_EQ(pool.reclaim(), 11u);
  std::vector<Buffer> again = acquire_n(pool, 11);
  EXPECT_EQ(pool.stats().blocks_in_use, 11u);
  EXPECT_EQ(pool.stats().high_water, 11u);
  again.clear();
  // The ring drained, so it takes blocks again.
  std::vector<Buffer> more = acquire_n(pool, 3);
  Parker second([&] { more.clear(); });
  EXPECT_EQ(pool.reclaim(), 3u);
  thread.finish();
  second.finish();
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.remote_frees, 14u);
}

// A ring large enough to prefetch (1024 slots), filled past full from
// positions that are not line-aligned, drained, and reused by the next
// thread, many laps over: the producer meets line ends, the wrap, a full ring
// and a drained one at every kind of position, and every block still comes
// home exactly once (through the ring or, past full, the stack).
TEST(BufferPoolStressTest, LargeRingWrapsAcrossDrainsAndThreads) {
  constexpr std::size_t kSlots = 1024;
  constexpr std::size_t kBatch = kSlots + 77;  // fills the ring, then spills
  constexpr int kRounds = 9;
  BufferPool pool(ringed_pool(2 * kSlots, kSlots));
  std::uint64_t expected = 0;
  std::size_t offset = 0;
  for (int round = 0; round < kRounds; ++round) {
    // A few releases first so the next batch starts mid-line.
    offset = (offset + 13) % 32;
    std::vector<Buffer> lead = acquire_n(pool, offset);
    std::vector<Buffer> out = acquire_n(pool, kBatch);
    std::thread remote([&] {
      lead.clear();
      out.clear();
    });
    remote.join();
    expected += offset + kBatch;
    EXPECT_EQ(pool.reclaim(), offset + kBatch) << "round " << round;
    EXPECT_EQ(pool.stats().blocks_in_use, 0u) << "round " << round;
  }
  EXPECT_EQ(pool.stats().remote_frees, expected);
  // Every block is distinct after all those laps.
  std::vector<Buffer> all = acquire_n(pool, 2 * kSlots);
  EXPECT_EQ(distinct_blocks(all), 2 * kSlots);
  EXPECT_FALSE(pool.acquire());
}

// Exited threads' rings are reused, so a stream of short-lived threads does
// not grow the pool's ring list without bound (checked by conservation and,
// under ASan, by the leak checker).
TEST(BufferPoolStressTest, ShortLivedThreadsReuseRings) {
  constexpr int kThreads = 200;
  const std::size_t rings_before = BufferPool::live_remote_rings();
  BufferPool pool(small_pool(16));
  for (int t = 0; t < kThreads; ++t) {
    std::vector<Buffer> out = acquire_n(pool, 1 + t % 7);
    std::thread remote([&] { out.clear(); });
    remote.join();
    ASSERT_EQ(BufferPool::live_remote_rings(), rings_before + 1) << "thread " << t;
  }
  pool.reclaim();
  const portico::BufferPoolStats stats = pool.stats();
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_LE(stats.blocks_total, 16u);
  std::uint64_t expected = 0;
  for (int t = 0; t < kThreads; ++t) expected += 1 + t % 7;
  EXPECT_EQ(stats.remote_frees, expected);
  // Two threads at once need two rings; both are freed with the pool.
  std::vector<Buffer> a = acquire_n(pool, 2);
  std::vector<Buffer> b = acquire_n(pool, 2);
  Parker first([&] { a.clear(); });
  Parker second([&] { b.clear(); });
  EXPECT_EQ(BufferPool::live_remote_rings(), rings_before + 2);
  first.finish();
  second.finish();
  pool = BufferPool(small_pool(1));  // the old pool's core (all blocks home) goes
  EXPECT_EQ(BufferPool::live_remote_rings(), rings_before);
}

// The pool dies while a remote thread's ring holds undrained blocks and the
// thread still holds more: the core lives until the last comes back through
// the (now closed) ring, which the releasing thread settles itself.
TEST(BufferPoolStressTest, PoolDestroyedWhileRingsHoldBlocks) {
  const std::size_t live_before = BufferPool::live_pool_cores();
  std::vector<Buffer> first;
  std::vector<Buffer> second;
  std::vector<BufferSlice> kept;
  std::promise<void> handed;
  std::promise<void> first_dropped;
  std::promise<void> pool_gone;
  std::promise<void> second_dropped;
  int bad = 0;
  std::thread remote([&] {
    handed.get_future().wait();
    first.clear();  // into this thread's ring; the owner never drains it
    first_dropped.set_value();
    pool_gone.get_future().wait();
    second.clear();  // into the closed ring
    for (const BufferSlice& s : kept) {
      if (read_stamp(s.data(), s.size()) == ~std::uint64_t{0}) ++bad;
    }
    kept.clear();  // the last block: frees the core
    second_dropped.set_value();
  });
  {
    BufferPool pool(small_pool(64));
    first = acquire_n(pool, 3);
    second = acquire_n(pool, 3);
    std::vector<Buffer> third = acquire_n(pool, 2);
    for (std::size_t i = 0; i < third.size(); ++i) {
      stamp(third[i], i + 1);
      kept.push_back(std::move(third[i]).to_slice());
    }
    handed.set_value();
    first_dropped.get_future().wait();
  }
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);
  pool_gone.set_value();
  second_dropped.get_future().wait();
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before);
  remote.join();
  EXPECT_EQ(bad, 0);
}

// More pools than a thread's ring cache has entries, released into in turn,
// twice over (so cache entries are evicted and found again on the thread's list).
TEST(BufferPoolStressTest, RemoteFreesIntoManyPoolsAllGoHome) {
  constexpr std::size_t kPools = 21;
  constexpr std::size_t kPerPool = 20;
  std::vector<BufferPool> pools;
  for (std::size_t p = 0; p < kPools; ++p) pools.emplace_back(small_pool(64));
  for (int round = 0; round < 2; ++round) {
    std::vector<Buffer> interleaved;
    for (std::size_t i = 0; i < kPerPool; ++i) {
      for (BufferPool& pool : pools) interleaved.push_back(pool.acquire());
    }
    Parker remote([&] { interleaved.clear(); });
    for (BufferPool& pool : pools) {
      EXPECT_EQ(pool.reclaim(), kPerPool);
      EXPECT_EQ(pool.stats().blocks_in_use, 0u);
    }
  }
  for (BufferPool& pool : pools) EXPECT_EQ(pool.stats().remote_frees, 2 * kPerPool);
}

// A pool dies with blocks undrained in a live thread's ring: close() takes
// them, so the core goes at once. The thread drops that ring when it next looks
// for one, and releases into other pools as before.
TEST(BufferPoolStressTest, RingsOfDeadPoolsAreDroppedAndOthersStillWork) {
  const std::size_t live_before = BufferPool::live_pool_cores();
  const std::size_t rings_before = BufferPool::live_remote_rings();
  BufferPool survivor(small_pool(16));
  std::vector<Buffer> out;
  std::promise<void> handed_doomed;
  std::promise<void> dropped_doomed;
  std::promise<void> doomed_gone;
  std::promise<void> dropped_survivors;
  std::thread remote([&] {
    handed_doomed.get_future().wait();
    out.clear();  // into a ring of the doomed pool
    dropped_doomed.set_value();
    doomed_gone.get_future().wait();
    out.clear();  // into a ring of the survivor, found past the dead ring
    dropped_survivors.set_value();
  });
  {
    BufferPool doomed(small_pool(16));
    out = acquire_n(doomed, 2);
    handed_doomed.set_value();
    dropped_doomed.get_future().wait();
    EXPECT_EQ(doomed.stats().blocks_in_use, 2u);  // in the ring, undrained
  }
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);  // only the survivor
  EXPECT_EQ(BufferPool::live_remote_rings(), rings_before + 1);  // the thread holds it
  out = acquire_n(survivor, 4);
  doomed_gone.set_value();
  dropped_survivors.get_future().wait();
  // The dead pool's ring was dropped on the way to the survivor's new one.
  EXPECT_EQ(BufferPool::live_remote_rings(), rings_before + 1);
  remote.join();
  EXPECT_EQ(survivor.reclaim(), 4u);
  EXPECT_EQ(survivor.stats().blocks_in_use, 0u);
}

// Remote threads release blocks while the owner destroys the pool, over and
// over: every block is counted once, so each core is freed exactly when its
// last block is (a core freed early would show under ASan, one never freed
// in live_pool_cores()).
TEST(BufferPoolStressTest, PoolDestroyedWhileRemoteThreadsRelease) {
  constexpr int kRounds = 200;
  constexpr int kWorkers = 3;
  const std::size_t live_before = BufferPool::live_pool_cores();
  const std::size_t rings_before = BufferPool::live_remote_rings();
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<Buffer>> held(kWorkers);
    std::latch start(kWorkers + 1);
    std::vector<std::thread> workers;
    {
      BufferPool pool(ringed_pool(64, round % 2 == 0 ? 0 : 4));
      for (int w = 0; w < kWorkers; ++w) held[w] = acquire_n(pool, 20);
      for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, w] {
          start.arrive_and_wait();
          held[w].clear();
        });
      }
      start.arrive_and_wait();
    }  // the pool dies while the workers release
    for (std::thread& t : workers) t.join();
    ASSERT_EQ(BufferPool::live_pool_cores(), live_before) << "round " << round;
    ASSERT_EQ(BufferPool::live_remote_rings(), rings_before) << "round " << round;
  }
}

// The same with rings large enough to prefetch (1024 slots) and releases long
// enough that close() may land while the workers cross line ends and wrap.
// Each worker stays alive until the core is checked: its thread's exit would
// settle a closed ring by itself, so the check sees whether every release
// that met the closed ring counted its block then (or close() took it).
TEST(BufferPoolStressTest, PoolDestroyedWhileRemoteThreadsWrapLargeRings) {
  constexpr int kRounds = 40;
  constexpr int kWorkers = 2;
  constexpr std::size_t kSlots = 1024;
  constexpr std::size_t kPerWorker = 700;  // the second batch wraps the ring
  const std::size_t live_before = BufferPool::live_pool_cores();
  const std::size_t rings_before = BufferPool::live_remote_rings();
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<Buffer>> held(kWorkers);
    std::vector<std::vector<Buffer>> second(kWorkers);
    std::latch first_done(kWorkers + 1);
    std::latch start(kWorkers + 1);
    std::latch released(kWorkers + 1);
    std::latch checked(1);
    std::vector<std::thread> workers;
    {
      BufferPool pool(ringed_pool(4 * kSlots, kSlots));
      for (int w = 0; w < kWorkers; ++w) held[w] = acquire_n(pool, kPerWorker);
      for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, w] {
          held[w].clear();  // fills 700 of the ring's 1024 slots
          first_done.arrive_and_wait();
          start.arrive_and_wait();
          second[w].clear();  // wraps, racing close()
          released.arrive_and_wait();
          checked.wait();
        });
      }
      first_done.arrive_and_wait();
      EXPECT_EQ(pool.reclaim(), kWorkers * kPerWorker);
      for (int w = 0; w < kWorkers; ++w) second[w] = acquire_n(pool, kPerWorker);
      start.arrive_and_wait();
    }  // the pool dies while the workers release
    released.arrive_and_wait();
    const std::size_t live = BufferPool::live_pool_cores();
    checked.count_down();
    for (std::thread& t : workers) t.join();
    ASSERT_EQ(live, live_before) << "round " << round;
    ASSERT_EQ(BufferPool::live_remote_rings(), rings_before) << "round " << round;
  }
}

// Conservation through small rings: workers overflow them into the stack
// while the owner drains both.
TEST(BufferPoolStressTest, RemoteFreesThroughSmallRingsAreConserved) {
  constexpr int kWorkers = 4;
  constexpr std::uint64_t kBuffers = 20000;
  BufferPool pool(ringed_pool(64, 2));
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
  send_stamped(pool, channel, kBuffers);
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
