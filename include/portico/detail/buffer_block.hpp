// portico/detail/buffer_block.hpp — internals of <portico/buffer_pool.hpp>: the
// block descriptor and the pool core that a BufferPool and every block it handed
// out share. Not part of the public API.
// Thread-safety: each PoolCore member group says who may touch it. The core
// outlives its BufferPool while blocks are out (see PoolCore::close).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace portico {
inline namespace v0 {
namespace detail {

// One x86-64 / AArch64 cache line: the unit of false sharing we lay out against.
inline constexpr std::size_t kPoolCacheLine = 64;

class PoolCore;

// The descriptor of one block. Descriptors live in their own array, apart from
// the block bytes, so a block's full size is usable and stays page-aligned; one
// per cache line so two blocks used on different threads never share a line.
struct alignas(kPoolCacheLine) BlockHeader {
  // References: the owning Buffer holds one implicitly, each BufferSlice one.
  std::atomic<std::uint32_t> refs{0};
  // On the first block of a chain pushed to the remote hand-back: how many
  // blocks the chain holds and its last block (so the owner walks chains, not
  // blocks). Written by the pusher before its release CAS.
  std::uint32_t batch_count = 0;
  // Link in the owner's free list, a remote thread's parked chain or the
  // remote hand-back stack; only the holder of a free block touches it.
  BlockHeader* next = nullptr;
  char* data = nullptr;
  PoolCore* pool = nullptr;
  BlockHeader* batch_tail = nullptr;
};
static_assert(sizeof(BlockHeader) == kPoolCacheLine, "one descriptor per cache line");

// The address of this thread-local identifies the calling thread cheaply (one
// TLS-relative lea in an executable) for the owner check on every release.
inline thread_local char tls_thread_tag = 0;
inline const void* this_thread_tag() noexcept {
  return &tls_thread_tag;
}

// Per-thread parking of remotely released blocks, for pools built with
// remote_release_batch > 1: one chain per pool, up to kRemoteCacheSlots pools.
// Trivially destructible and zero-initialised, so reaching it costs no guard;
// the thread-exit flush is registered separately, on the slow path. A slot with
// count == 0 holds no block and its `pool` may dangle: it is only compared,
// never followed. A slot with count > 0 keeps its pool's core alive (the
// parked blocks are still counted as out).
inline constexpr std::size_t kRemoteCacheSlots = 4;
struct RemoteCacheSlot {
  PoolCore* pool;
  BlockHeader* head;  // most recently parked
  BlockHeader* tail;  // first parked; its next is set when the chain is pushed
  std::uint32_t count;
};
struct RemoteCache {
  RemoteCacheSlot slots[kRemoteCacheSlots];
  std::uint32_t next_victim;
  bool exit_flush_registered;
  bool exited;  // the thread-exit flush ran: park nothing more
};
inline thread_local RemoteCache tls_remote_cache{};

// Out of line (src/buffer_pool.cpp): rare or debug-only paths.
void poison_block(BlockHeader* block) noexcept;
void unpoison_block(BlockHeader* block) noexcept;

class PoolCore {
 public:
  struct Config {
    std::size_t block_size;
    std::size_t max_blocks;
    std::size_t blocks_per_slab;
    bool populate;
    int huge_pages;  // BufferPoolOptions::HugePages as int, to keep this header small
    bool poison;
    std::uint32_t remote_batch;
  };

  explicit PoolCore(const Config& config);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  // ---- owner thread only ---------------------------------------------------
  // Pops a free block, or nullptr when the pool is exhausted (counted).
  BlockHeader* try_acquire() noexcept {
    BlockHeader* block = free_head_;
    if (block != nullptr) [[likely]] {
      free_head_ = block->next;
    } else {
      block = acquire_slow();
      if (block == nullptr) return nullptr;
    }
    // Relaxed: the block is exclusively ours; handing the Buffer to another
    // thread needs the caller's own synchronisation, which carries this store.
    block->refs.store(1, std::memory_order_relaxed);
    const std::size_t in_use = in_use_.load(std::memory_order_relaxed) + 1;
    // Single writer (the owner), so a load and a store instead of an RMW; the
    // atomics exist only so stats() may read from other threads.
    in_use_.store(in_use, std::memory_order_relaxed);
    if (in_use > high_water_.load(std::memory_order_relaxed)) {
      high_water_.store(in_use, std::memory_order_relaxed);
    }
    if (poison_) [[unlikely]]
      unpoison_block(block);
    return block;
  }
  std::size_t reclaim_remote() noexcept;
  bool map_until(std::size_t blocks) noexcept;
  void bind(const void* thread_tag) noexcept {
    owner_.store(thread_tag, std::memory_order_relaxed);
  }
  bool owned_by_caller() const noexcept {
    return owner_.load(std::memory_order_relaxed) == this_thread_tag();
  }
  // Called by the BufferPool's destructor: closes the hand-back and frees the
  // core now, or when the last block out comes back.
  void close() noexcept;

  // ---- any thread ----------------------------------------------------------
  // The last reference to `block` is gone: return it to this pool.
  static void release(BlockHeader* block) noexcept {
    PoolCore* pool = block->pool;
    if (pool->poison_) [[unlikely]]
      poison_block(block);
    // Relaxed: only the owner thread can ever read its own tag back; any other
    // thread compares unequal whichever value it sees.
    if (pool->owner_.load(std::memory_order_relaxed) == this_thread_tag()) {
      block->next = pool->free_head_;
      pool->free_head_ = block;
      pool->in_use_.store(pool->in_use_.load(std::memory_order_relaxed) - 1,
                          std::memory_order_relaxed);
    } else if (pool->remote_batch_ > 1) {
      park_remote(block, pool);
    } else {
      pool->push_chain(block, block, 1);
    }
  }

  // Pushes every chain the calling thread has parked (any pool) home.
  static void flush_thread_cache() noexcept;

  std::size_t block_size() const noexcept { return block_size_; }
  std::size_t max_blocks() const noexcept { return max_blocks_; }
  bool poisons() const noexcept { return poison_; }

  struct Counters {
    std::size_t blocks_total, blocks_in_use, high_water, slabs, huge_page_slabs;
    std::uint64_t remote_frees, failed_acquires;
  };
  Counters counters() const noexcept;

  static std::size_t live_cores() noexcept;

 private:
  ~PoolCore();
  BlockHeader* acquire_slow() noexcept;
  bool map_slab() noexcept;
  void release_orphaned(std::size_t count) noexcept;
  // Walks a stack taken from remote_head_: its blocks and its last block.
  static std::size_t count_chains(BlockHeader* list, BlockHeader** last) noexcept;
  static BlockHeader* orphan_sentinel() noexcept;

  // Treiber push of a chain first..last (linked by next) of `count` blocks:
  // many threads push, the owner takes the whole stack with one exchange, so
  // there is no pop of single nodes and hence no ABA problem.
  void push_chain(BlockHeader* first, BlockHeader* last, std::uint32_t count) noexcept {
    first->batch_count = count;
    first->batch_tail = last;
    BlockHeader* head = remote_head_.load(std::memory_order_relaxed);
    do {
      if (head == orphan_sentinel()) [[unlikely]] {
        release_orphaned(count);
        return;
      }
      last->next = head;
      // Release: publishes the chain's links and the blocks' last uses to the
      // owner, whose exchange(acquire) reads the head of this release sequence.
    } while (!remote_head_.compare_exchange_weak(head, first, std::memory_order_release,
                                                 std::memory_order_relaxed));
    // Nothing may touch *this after the push: a closed pool may be freed by now.
  }

  // The batched remote path: park the block on this thread's chain for its
  // pool, and push the chain with one CAS when it holds remote_batch_ blocks
  // (or at once while the owner has found the pool exhausted).
  static void park_remote(BlockHeader* block, PoolCore* pool) noexcept {
    RemoteCache& cache = tls_remote_cache;
    for (RemoteCacheSlot& slot : cache.slots) {
      if (slot.pool == pool) {
        block->next = slot.head;
        if (slot.count == 0) slot.tail = block;
        slot.head = block;
        // Relaxed: a hint; a stale read only delays this chain to its next
        // release, flush or the thread's exit.
        if (++slot.count >= pool->remote_batch_ ||
            pool->flush_wanted_.load(std::memory_order_relaxed)) [[unlikely]]
          flush_slot(slot);
        return;
      }
    }
    park_remote_slow(block, pool);
  }
  static void flush_slot(RemoteCacheSlot& slot) noexcept {
    const std::uint32_t count = slot.count;
    slot.count = 0;
    slot.pool->push_chain(slot.head, slot.tail, count);
    slot.head = slot.tail = nullptr;
  }
  static void park_remote_slow(BlockHeader* block, PoolCore* pool) noexcept;

  // ---- read-mostly: set at construction, by bind() and by close() -----------
  alignas(kPoolCacheLine) std::atomic<const void*> owner_{nullptr};
  // Set by the owner when acquire() finds the pool exhausted, cleared when
  // blocks come back: remote threads stop parking blocks while it is set.
  std::atomic<bool> flush_wanted_{false};
  std::uint32_t remote_batch_;
  std::size_t block_size_;
  std::size_t max_blocks_;
  std::size_t blocks_per_slab_;
  std::size_t slab_bytes_;
  std::size_t max_slabs_;
  BlockHeader* descriptors_;
  char** slabs_;  // max_slabs_ entries, filled as slabs are mapped
  bool* slab_is_huge_;
  bool populate_;
  int huge_pages_;
  bool poison_;

  // ---- owner-written; other threads only read the atomics (stats) ----------
  alignas(kPoolCacheLine) BlockHeader* free_head_ = nullptr;
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::size_t> high_water_{0};
  std::atomic<std::size_t> blocks_total_{0};  // carved-able: blocks in mapped slabs
  std::atomic<std::size_t> slabs_mapped_{0};
  std::atomic<std::size_t> huge_page_slabs_{0};
  std::atomic<std::uint64_t> remote_frees_{0};  // counted when the owner drains them
  std::atomic<std::uint64_t> failed_acquires_{0};
  std::size_t carved_ = 0;

  // ---- written by remote releasers ----------------------------------------
  alignas(kPoolCacheLine) std::atomic<BlockHeader*> remote_head_{nullptr};
  // Set by close(): blocks still out plus one for close() itself.
  std::atomic<std::size_t> orphan_refs_{0};
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
