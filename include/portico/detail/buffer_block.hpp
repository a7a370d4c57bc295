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
  // What a remote release writes into its ring: the block's position in the
  // pool's descriptor array plus one (never a RingMark). Read from this line,
  // which the release has already loaded, rather than computed from the
  // pool's array base.
  std::uint16_t ring_token = 0;
  // Link in the owner's free list or the remote hand-back stack; only the
  // holder of a free block touches it.
  BlockHeader* next = nullptr;
  char* data = nullptr;
  PoolCore* pool = nullptr;
};
static_assert(sizeof(BlockHeader) == kPoolCacheLine, "one descriptor per cache line");

// The address of this thread-local identifies the calling thread cheaply (one
// TLS-relative lea in an executable) for the owner check on every release.
inline thread_local char tls_thread_tag = 0;
inline const void* this_thread_tag() noexcept {
  return &tls_thread_tag;
}

// What a ring slot holds besides a block's token (1 ... kMaxRingBlocks).
enum RingMark : std::uint16_t {
  kRingFree = 0,
  // Free, and the last slot of its cache line (every 32nd): the producer's
  // cheap check of the next slot leaves the fast path there, once a line, to
  // prefetch the lines ahead.
  kRingFreeLineEnd = 0xfffe,
  // Not writable: in every slot of a closed pool's ring, and for good in the
  // slot past the last, where the producer wraps.
  kRingClosed = 0xffff,
};
inline constexpr std::size_t kMaxRingBlocks = kRingFreeLineEnd - 1;
inline constexpr std::uint32_t kRingSlotsPerLine = kPoolCacheLine / sizeof(std::uint16_t);
inline constexpr bool is_ring_token(std::uint16_t v) noexcept {
  return v != kRingFree && v < kRingFreeLineEnd;
}

// A single-producer/single-consumer hand-back ring: one per (remote thread,
// pool). The slots themselves say which are full, as in FastForward (Giacomoni
// et al., PPoPP 2008): there are no shared head or tail indices. The remote
// thread attached to the ring writes each block it releases into the slot at
// its cursor (a release-store) and then reads the next slot: one load that
// tells it whether that slot is free, whether the ring has wrapped, whether a
// new cache line begins, and whether the pool is closing. The pool's owner
// drains every ring when its free list runs dry, freeing each slot it takes.
// Rings belong to their pool's core (linked in PoolCore::rings_) and are
// reused by later threads once their thread exits; the ring's memory is
// reference-counted (core + attached thread), so a thread may still look at
// its ring after the block it pushed let the core be freed.
struct RemoteRing {
  // ---- the producer's: written by the attached thread only
  // The next slot to fill, saved here while the ring is not in its thread's
  // ring cache (which holds the live copy). Its slot is free, unless the ring
  // was left full (a token) or its pool closed.
  alignas(kPoolCacheLine) std::atomic<std::uint16_t>* cursor = nullptr;
  RemoteRing* thread_next = nullptr;  // its thread's list of rings
  // ---- read-only once made
  // slot_count + 1 slots, line-aligned; the last holds kRingClosed for good.
  // 16 bits a slot, so 32 share a cache line and the line transfers between
  // producer and owner, the main cost of a remote release, are amortised
  // over 32 releases.
  std::atomic<std::uint16_t>* slots = nullptr;
  std::uint32_t slot_count = 0;  // a power of two
  // Slots ahead of the cursor whose line is fetched for writing each time the
  // cursor enters a new line (0: off): the owner's drain pulled those lines to
  // its core, and fetching them back one at a time, on the first store,
  // stalls the producer for a cross-core round trip per 32 releases.
  std::uint32_t prefetch_ahead = 0;
  std::uint64_t pool_id = 0;
  PoolCore* core = nullptr;
  RemoteRing* pool_next = nullptr;  // immutable once linked into the core's list
  // ---- the owner's
  alignas(kPoolCacheLine) std::uint32_t head = 0;  // the next slot to drain
  // ---- registration: touched when a thread attaches or detaches, and by close()
  alignas(kPoolCacheLine) std::atomic<bool> attached{true};
  std::atomic<bool> closed{false};     // set once by PoolCore::close()
  std::atomic<std::uint32_t> refs{2};  // the core's list + the attached thread
};

// Asks for the line of `p` in a writable state. On x86 the PREFETCHW
// instruction (GCC emits a read prefetch for __builtin_prefetch(p, 1) unless
// built with -mprfchw); RemoteRing::prefetch_ahead is 0 where the CPU lacks it.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

// Each thread's map from pool id to its ring there, with the ring's cursor:
// direct-mapped by id, so a hit costs one compare and the release touches only
// this entry and the slot. Trivially destructible and zero-initialised (id 0
// is never a pool's), so reaching it costs no guard. Ids are never reused: an
// entry of a dead pool can never match a new pool at the same address, and its
// ring pointer is never followed. Every ring the thread attached to is also on
// its thread list (src/core/buffer_pool.cpp); an eviction saves the cursor there.
inline constexpr std::size_t kRingCacheSlots = 8;
// Or'ed into pool_id while the ring is full: the id compare misses, and
// release_remote() looks whether the owner has drained the cursor's slot since.
inline constexpr std::uint64_t kRingFullBit = std::uint64_t{1} << 63;
struct alignas(32) RingCacheEntry {
  std::uint64_t pool_id;
  std::atomic<std::uint16_t>* cursor;
  RemoteRing* ring;
};
inline thread_local RingCacheEntry tls_ring_cache[kRingCacheSlots]{};

inline constinit BlockHeader orphan_sentinel_block{};

// Out of line (src/core/buffer_pool.cpp): rare or debug-only paths.
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
    std::uint32_t ring_slots;  // 0: no rings, every remote release takes the CAS stack
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
    } else {
      release_remote(block, pool);
    }
  }

  // `count` blocks came back after close(): counts them against the dead
  // pool, freeing the core with the last. REQUIRES: close() has run and the
  // caller read a closed marker (stack sentinel, ring closed) with acquire.
  void release_orphaned(std::size_t count) noexcept;

  std::size_t block_size() const noexcept { return block_size_; }
  std::size_t max_blocks() const noexcept { return max_blocks_; }
  bool poisons() const noexcept { return poison_; }

  struct Counters {
    std::size_t blocks_total, blocks_in_use, high_water, slabs, huge_page_slabs;
    std::uint64_t remote_frees, failed_acquires;
  };
  Counters counters() const noexcept;

  static std::size_t live_cores() noexcept;
  static std::size_t live_rings() noexcept;

 private:
  ~PoolCore();
  BlockHeader* acquire_slow() noexcept;
  bool map_slab() noexcept;
  // Walks a stack taken from remote_head_: its blocks and its last block.
  static std::size_t count_stack(BlockHeader* list, BlockHeader** last) noexcept;
  // Marks a closed hand-back stack: an address no block can have. Inline, as
  // every push onto the stack compares with it.
  static BlockHeader* orphan_sentinel() noexcept { return &orphan_sentinel_block; }
  static RemoteRing* ring_sentinel() noexcept;

  // Treiber push of one block onto the shared stack, for releases whose ring
  // is full or that have none: many threads push, the owner takes the whole
  // stack with one exchange, so there is no pop of single nodes and hence no
  // ABA problem.
  void push_block(BlockHeader* block) noexcept {
    BlockHeader* head = remote_head_.load(std::memory_order_relaxed);
    do {
      if (head == orphan_sentinel()) [[unlikely]] {
        release_orphaned(1);
        return;
      }
      block->next = head;
      // Release: publishes the link and the block's last uses to the owner,
      // whose exchange(acquire) reads the head of this release sequence.
    } while (!remote_head_.compare_exchange_weak(head, block, std::memory_order_release,
                                                 std::memory_order_relaxed));
    // Nothing may touch *this after the push: a closed pool may be freed by now.
  }

  // A release on a thread other than the owner: into this thread's ring for
  // the pool, found in one compare in the thread's cache.
  static void release_remote(BlockHeader* block, PoolCore* pool) noexcept {
    RingCacheEntry& entry = tls_ring_cache[pool->id_ % kRingCacheSlots];
    if (entry.pool_id == pool->id_) [[likely]] {
      push_to_ring(entry, block);
      return;
    }
    if (entry.pool_id != (pool->id_ | kRingFullBit)) {
      release_remote_slow(block, pool);  // not cached
      return;
    }
    // The ring was full. Acquire: a slot the owner drained since is read
    // before we overwrite it, and kRingClosed after close() set orphan_refs_.
    if (is_ring_token(entry.cursor->load(std::memory_order_acquire))) {
      pool->push_block(block);  // still full: the shared stack
      return;
    }
    ring_reopened(entry, pool->id_);
    push_to_ring(entry, block);
  }
  static void push_to_ring(RingCacheEntry& entry, BlockHeader* block) noexcept {
    std::atomic<std::uint16_t>* slot = entry.cursor;  // free: checked by the last release
    // Release: publishes the token and the block's last uses to the drainer.
    slot->store(block->ring_token, std::memory_order_release);
    // From here on neither `block` nor its pool may be touched: the drainer
    // may have freed the pool's core. The ring stays ours (we hold a
    // reference). The compiler barrier keeps the load below after the store
    // above; the hardware's store-load reordering is cut by close()'s
    // process-wide barrier (membarrier), so either close() sees this token or
    // we see kRingClosed in the next slot (or both; close() and we both take
    // tokens by exchange, so each is counted once).
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // Relaxed: anything but kRingFree is looked at again, with acquire.
    if (slot[1].load(std::memory_order_relaxed) != kRingFree) [[unlikely]] {
      ring_step(entry, slot);
      return;
    }
    entry.cursor = slot + 1;
  }
  // The owner drained the full ring at the entry's cursor: marks it cached
  // again and fetches the lines ahead, which the drain wrote, back.
  static void ring_reopened(RingCacheEntry& entry, std::uint64_t pool_id) noexcept;
  static void release_remote_slow(BlockHeader* block, PoolCore* pool) noexcept;
  // The producer's slow path after a push into `slot`, whose next slot was not
  // plain free: a line end (prefetch, once per 32 releases), the end of the
  // slots (wrap), a token (the ring is full) or kRingClosed (the pool closes).
  static void ring_step(RingCacheEntry& entry, std::atomic<std::uint16_t>* slot) noexcept;
  // This thread found its ring closed: claims what is left in it, counts it
  // against the dead pool and detaches from the ring.
  static void ring_closed(RemoteRing* ring) noexcept;
  // A ring of this pool for the calling (remote) thread: a detached one reused
  // or a new one linked in; nullptr when the pool is closing or rings are off.
  // REQUIRES: the caller holds a block of this pool (so the core is alive).
  RemoteRing* attach_ring() noexcept;
  // Drains one ring into the free list (owner only), freeing its slots.
  // Returns the blocks taken.
  std::size_t drain_ring(RemoteRing* ring) noexcept;

  // ---- read-mostly: set at construction, by bind() and by close() -----------
  alignas(kPoolCacheLine) std::atomic<const void*> owner_{nullptr};
  // With owner_, what every release reads: all on one cache line.
  bool poison_;
  std::uint32_t ring_slots_;  // slots per remote ring; 0: rings off (max_blocks > kMaxRingBlocks)
  std::uint64_t id_;          // unique in the process, never reused; never 0
  BlockHeader* descriptors_;
  std::size_t block_size_;
  std::size_t max_blocks_;
  std::size_t blocks_per_slab_;
  std::size_t slab_bytes_;
  std::size_t max_slabs_;
  char** slabs_;  // max_slabs_ entries, filled as slabs are mapped
  bool* slab_is_huge_;
  bool populate_;
  int huge_pages_;

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
  // Rings, newest first; push-only (one CAS per new ring), walked by the owner
  // when it drains. close() swaps in ring_sentinel() so no ring joins later.
  std::atomic<RemoteRing*> rings_{nullptr};
  // The rings close() took: the core drops its reference on each when freed.
  RemoteRing* closed_rings_ = nullptr;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
