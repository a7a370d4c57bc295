// Single-threaded behaviour of BufferPool, Buffer and BufferSlice: the
// read/commit/consume shape, reference counting edges, exhaustion, stats,
// pool destruction with blocks out, iovec gathering and poisoning.
#include "portico/buffer_pool.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTICO_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(PORTICO_TEST_ASAN)
#define PORTICO_TEST_ASAN 1
#endif
#if defined(PORTICO_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace {

using portico::Buffer;
using portico::BufferPool;
using portico::BufferPoolOptions;
using portico::BufferSlice;

static_assert(!std::is_copy_constructible_v<Buffer>);
static_assert(std::is_nothrow_move_constructible_v<Buffer>);
static_assert(std::is_nothrow_copy_constructible_v<BufferSlice>);
static_assert(!std::is_copy_constructible_v<BufferPool>);

BufferPoolOptions small_pool(std::size_t max_blocks, std::size_t block_size = 4096) {
  BufferPoolOptions options;
  options.block_size = block_size;
  options.max_blocks = max_blocks;
  options.slab_size = 4 * block_size;
  options.huge_pages = BufferPoolOptions::HugePages::kNone;
  return options;
}

TEST(BufferPoolTest, AcquireGivesEmptyBlockOfConfiguredSize) {
  BufferPool pool;
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer);
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), 16u * 1024);
  EXPECT_EQ(buffer.prepare().size(), 16u * 1024);
  EXPECT_EQ(pool.block_size(), 16u * 1024);
  // The whole block is writable.
  std::memset(buffer.prepare().data(), 'x', buffer.prepare().size());
  buffer.commit(buffer.capacity());
  EXPECT_EQ(buffer.prepare().size(), 0u);
  EXPECT_EQ(buffer.view(), std::string(16 * 1024, 'x'));
}

TEST(BufferPoolTest, PrepareCommitConsumeLikeASocketRead) {
  BufferPool pool(small_pool(2));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer);
  const std::string_view first = "GET / HTTP/1.1\r\n";
  std::memcpy(buffer.prepare().data(), first.data(), first.size());
  buffer.commit(first.size());
  EXPECT_EQ(buffer.view(), first);
  ASSERT_TRUE(buffer.append("Host: a\r\n\r\n"));
  EXPECT_EQ(buffer.view(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  buffer.consume(4);
  EXPECT_EQ(buffer.view(), "/ HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(buffer.prepare().size(), 4096 - first.size() - 11);
  // Consuming everything with no slice out rewinds to the block's start.
  buffer.consume(buffer.size());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.prepare().size(), 4096u);
}

TEST(BufferPoolTest, AppendRefusesWhatDoesNotFit) {
  BufferPool pool(small_pool(1, 64));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append(std::string(60, 'a')));
  EXPECT_FALSE(buffer.append("12345"));
  EXPECT_EQ(buffer.size(), 60u);
  EXPECT_TRUE(buffer.append("1234"));
  EXPECT_EQ(buffer.prepare().size(), 0u);
}

TEST(BufferPoolTest, CompactMovesBytesOnlyWhenNoSliceIsOut) {
  BufferPool pool(small_pool(1, 64));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("0123456789"));
  buffer.consume(6);
  {
    BufferSlice slice = buffer.slice(0, 2);
    EXPECT_TRUE(buffer.shared());
    EXPECT_FALSE(buffer.compact());
    EXPECT_EQ(slice.view(), "67");
  }
  EXPECT_FALSE(buffer.shared());
  EXPECT_TRUE(buffer.compact());
  EXPECT_EQ(buffer.view(), "6789");
  EXPECT_EQ(buffer.prepare().size(), 60u);
}

TEST(BufferPoolTest, ConsumeDoesNotRewindWhileSlicesAreOut) {
  BufferPool pool(small_pool(1, 64));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("abcd"));
  BufferSlice slice = buffer.slice(buffer.view().substr(1, 2));
  buffer.consume(4);
  ASSERT_TRUE(buffer.append("WXYZ"));  // must not overwrite what the slice views
  EXPECT_EQ(slice.view(), "bc");
  EXPECT_EQ(buffer.view(), "WXYZ");
}

TEST(BufferPoolTest, ReleasedBlockIsReusedLastInFirstOut) {
  BufferPool pool(small_pool(4));
  const char* first = nullptr;
  {
    Buffer buffer = pool.acquire();
    first = buffer.data();
  }
  Buffer again = pool.acquire();
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
}

TEST(BufferPoolTest, ExhaustionFailsCleanlyAndIsCounted) {
  BufferPool pool(small_pool(3));
  std::vector<Buffer> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(pool.acquire());
    ASSERT_TRUE(held.back());
  }
  Buffer none = pool.acquire();
  EXPECT_FALSE(none);
  EXPECT_FALSE(pool.acquire());
  EXPECT_EQ(pool.stats().failed_acquires, 2u);
  EXPECT_EQ(pool.stats().blocks_in_use, 3u);
  held.pop_back();
  EXPECT_TRUE(pool.acquire());
  EXPECT_EQ(pool.stats().failed_acquires, 2u);
}

TEST(BufferPoolTest, MaxBlocksNeedNotFillTheLastSlab) {
  BufferPool pool(small_pool(5));  // slabs of 4 blocks: the second is cut to 1
  std::vector<Buffer> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.acquire());
  for (const Buffer& b : held) EXPECT_TRUE(b);
  EXPECT_FALSE(pool.acquire());
  EXPECT_EQ(pool.stats().blocks_total, 5u);
  EXPECT_EQ(pool.stats().slabs, 2u);
}

TEST(BufferPoolTest, StatsTrackTotalsInUseAndHighWater) {
  BufferPool pool(small_pool(16));
  EXPECT_EQ(pool.stats().blocks_total, 0u);  // slabs are mapped lazily
  {
    std::vector<Buffer> held;
    for (int i = 0; i < 6; ++i) held.push_back(pool.acquire());
    const portico::BufferPoolStats s = pool.stats();
    EXPECT_EQ(s.blocks_in_use, 6u);
    EXPECT_EQ(s.high_water, 6u);
    EXPECT_EQ(s.blocks_total, 8u);
    EXPECT_EQ(s.slabs, 2u);
    EXPECT_EQ(s.max_blocks, 16u);
    EXPECT_EQ(s.block_size, 4096u);
  }
  Buffer one = pool.acquire();
  const portico::BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.blocks_in_use, 1u);
  EXPECT_EQ(s.high_water, 6u);
  EXPECT_EQ(s.remote_frees, 0u);
  EXPECT_EQ(s.failed_acquires, 0u);
}

TEST(BufferPoolTest, ReserveMapsSlabsUpFront) {
  BufferPool pool(small_pool(10));
  EXPECT_TRUE(pool.reserve(6));
  EXPECT_EQ(pool.stats().blocks_total, 8u);
  EXPECT_TRUE(pool.reserve(100));  // capped at max_blocks
  EXPECT_EQ(pool.stats().blocks_total, 10u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST(BufferPoolTest, SliceKeepsBlockAliveAfterBufferDies) {
  BufferPool pool(small_pool(1));
  BufferSlice slice;
  {
    Buffer buffer = pool.acquire();
    ASSERT_TRUE(buffer.append("hello, world"));
    slice = buffer.slice(7, 5);
  }
  EXPECT_EQ(slice.view(), "world");
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  EXPECT_FALSE(pool.acquire());  // the only block is still held by the slice
  slice.reset();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_TRUE(pool.acquire());
}

TEST(BufferPoolTest, SliceCopiesMovesAndSubslicesCountReferences) {
  BufferPool pool(small_pool(1));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("0123456789"));
  BufferSlice a = buffer.slice(0, 10);
  BufferSlice b = a;                 // copy
  BufferSlice c = std::move(b);      // move: b is empty now
  EXPECT_FALSE(b.holds_block());     // NOLINT(bugprone-use-after-move)
  BufferSlice d = c.subslice(2, 3);  // "234"
  BufferSlice e;
  e = d;  // copy-assign
  const BufferSlice& alias = e;
  e = alias;  // self-assignment keeps the reference
  EXPECT_EQ(e.view(), "234");
  d.remove_prefix(1);
  EXPECT_EQ(d.view(), "34");
  buffer.reset();
  a.reset();
  c.reset();
  d.reset();
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);  // e still holds it
  EXPECT_EQ(e.view(), "234");
  e = BufferSlice();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST(BufferPoolTest, ZeroLengthSliceStillHoldsTheBlock) {
  BufferPool pool(small_pool(1));
  BufferSlice empty;
  {
    Buffer buffer = pool.acquire();
    empty = buffer.slice(0, 0);
  }
  EXPECT_TRUE(empty.holds_block());
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  empty.reset();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST(BufferPoolTest, ToSliceTransfersTheBuffersReference) {
  BufferPool pool(small_pool(1));
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("xxbody"));
  buffer.consume(2);
  BufferSlice whole = std::move(buffer).to_slice();
  EXPECT_FALSE(buffer);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(whole.view(), "body");
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  whole.reset();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_FALSE(Buffer().to_slice().holds_block());
}

TEST(BufferPoolTest, BufferMoveAssignReleasesTheOldBlock) {
  BufferPool pool(small_pool(2));
  Buffer a = pool.acquire();
  Buffer b = pool.acquire();
  ASSERT_TRUE(b.append("b"));
  a = std::move(b);
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  EXPECT_EQ(a.view(), "b");
  a = Buffer();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST(BufferPoolTest, GatherAndAdvanceDriveAShortWritev) {
  BufferPool pool(small_pool(2));
  Buffer head = pool.acquire();
  Buffer body = pool.acquire();
  ASSERT_TRUE(head.append("HTTP/1.1 200 OK\r\n\r\n"));
  ASSERT_TRUE(body.append("hello"));
  std::vector<BufferSlice> out;
  out.push_back(head.slice(0, head.size()));
  out.push_back(BufferSlice());  // empty slices are skipped
  out.push_back(body.slice(0, 5));
  head.reset();
  body.reset();

  std::array<iovec, 4> iov{};
  ASSERT_EQ(portico::gather_iovecs(out, iov), 2u);
  EXPECT_EQ(iov[0].iov_len, 19u);
  EXPECT_EQ(iov[1].iov_len, 5u);
  std::array<iovec, 1> one{};
  EXPECT_EQ(portico::gather_iovecs(out, one), 1u);

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // A short write of 21 bytes: the head and two bytes of the body.
  iov[1].iov_len = 2;
  ASSERT_EQ(::writev(fds[1], iov.data(), 2), 21);
  EXPECT_EQ(portico::advance_written(out, 21), 2u);
  EXPECT_FALSE(out[0].holds_block());
  EXPECT_EQ(out[2].view(), "llo");
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);  // the head block went home
  ASSERT_EQ(portico::gather_iovecs(out, iov), 1u);
  ASSERT_EQ(::writev(fds[1], iov.data(), 1), 3);
  EXPECT_EQ(portico::advance_written(out, 3), 3u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  std::string got(24, '\0');
  ASSERT_EQ(::read(fds[0], got.data(), got.size()), 24);
  EXPECT_EQ(got, "HTTP/1.1 200 OK\r\n\r\nhello");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(BufferPoolTest, PoolDestroyedWithBlocksOutStaysSafe) {
  const std::size_t live_before = BufferPool::live_pool_cores();
  std::optional<BufferPool> pool(std::in_place, small_pool(4));
  Buffer buffer = pool->acquire();
  ASSERT_TRUE(buffer.append("still here"));
  BufferSlice slice = buffer.slice(6, 4);
  Buffer unused = pool->acquire();
  unused.reset();
  pool.reset();  // two references to one block are out
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);
  EXPECT_EQ(slice.view(), "here");
  buffer.reset();
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);
  slice.reset();  // the last one unmaps the slabs and frees the core
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before);
}

TEST(BufferPoolTest, PoolDestroyedIdleFreesAtOnce) {
  const std::size_t live_before = BufferPool::live_pool_cores();
  {
    BufferPool pool(small_pool(4));
    EXPECT_EQ(BufferPool::live_pool_cores(), live_before + 1);
    Buffer b = pool.acquire();
  }
  EXPECT_EQ(BufferPool::live_pool_cores(), live_before);
}

TEST(BufferPoolTest, MovedPoolKeepsServing) {
  BufferPool a(small_pool(2));
  Buffer held = a.acquire();
  BufferPool b(std::move(a));
  Buffer next = b.acquire();
  EXPECT_TRUE(next);
  held.reset();
  EXPECT_EQ(b.stats().blocks_in_use, 1u);
  BufferPool c(small_pool(1));
  c = std::move(b);
  EXPECT_EQ(c.stats().max_blocks, 2u);
}

TEST(BufferPoolTest, InvalidOptionsAreRejectedWithAReason) {
  BufferPoolOptions zero;
  zero.block_size = 0;
  EXPECT_THROW(BufferPool{zero}, std::invalid_argument);
  BufferPoolOptions odd;
  odd.block_size = 1000;
  EXPECT_THROW(BufferPool{odd}, std::invalid_argument);
  BufferPoolOptions none;
  none.max_blocks = 0;
  EXPECT_THROW(BufferPool{none}, std::invalid_argument);
  BufferPoolOptions huge_ring;
  huge_ring.remote_ring_slots = 65537;
  EXPECT_THROW(BufferPool{huge_ring}, std::invalid_argument);
  BufferPoolOptions largest_ring;
  largest_ring.remote_ring_slots = 65536;
  EXPECT_NO_THROW(BufferPool{largest_ring});
  try {
    BufferPool{odd};
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("block_size 1000"), std::string::npos);
  }
}

TEST(BufferPoolTest, HugePageModesFallBackAndWork) {
  for (auto mode :
       {BufferPoolOptions::HugePages::kExplicit, BufferPoolOptions::HugePages::kTransparent,
        BufferPoolOptions::HugePages::kNone}) {
    BufferPoolOptions options;
    options.max_blocks = 200;  // more than one 2 MiB slab of 16 KiB blocks
    options.huge_pages = mode;
    options.populate = true;
    BufferPool pool(options);
    std::vector<Buffer> held;
    for (int i = 0; i < 200; ++i) {
      held.push_back(pool.acquire());
      ASSERT_TRUE(held.back());
      held.back().prepare()[0] = 'x';
    }
    EXPECT_EQ(pool.stats().slabs, 2u);
    EXPECT_FALSE(pool.acquire());
  }
}

TEST(BufferPoolTest, ReleasedBlockIsPoisoned) {
  BufferPoolOptions options = small_pool(1);
  options.poison = BufferPoolOptions::Poison::kAlways;
  BufferPool pool(options);
  ASSERT_TRUE(pool.poisons_released_blocks());
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("secret"));
  char* stale = buffer.data();
  buffer.reset();
#if defined(PORTICO_TEST_ASAN)
  EXPECT_TRUE(__asan_address_is_poisoned(stale));
  EXPECT_TRUE(__asan_address_is_poisoned(stale + 4095));
  EXPECT_DEATH({ stale[0] = 'x'; }, "use-after-poison");
  Buffer again = pool.acquire();  // unpoisoned when handed out again
  EXPECT_FALSE(__asan_address_is_poisoned(again.data()));
#else
  for (std::size_t i = 0; i < 4096; ++i) {
    ASSERT_EQ(static_cast<unsigned char>(stale[i]), portico::kPoisonByte) << i;
  }
#endif
}

TEST(BufferPoolTest, PoisoningCanBeTurnedOff) {
  BufferPoolOptions options = small_pool(1);
  options.poison = BufferPoolOptions::Poison::kNever;
  BufferPool pool(options);
  EXPECT_FALSE(pool.poisons_released_blocks());
  Buffer buffer = pool.acquire();
  ASSERT_TRUE(buffer.append("kept"));
  const char* stale = buffer.data();
  buffer.reset();
  EXPECT_EQ(std::string_view(stale, 4), "kept");
}

TEST(BufferPoolTest, BuildDefaultPoisoningFollowsTheBuild) {
  BufferPool pool(small_pool(1));
#if defined(PORTICO_TEST_ASAN) || !defined(NDEBUG)
  EXPECT_TRUE(pool.poisons_released_blocks());
#else
  EXPECT_FALSE(pool.poisons_released_blocks());
#endif
}

}  // namespace
