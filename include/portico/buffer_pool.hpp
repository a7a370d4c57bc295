// portico/buffer_pool.hpp — BufferPool: fixed-size blocks carved from mmap'd
// slabs; Buffer, the move-only owning handle a socket read appends into; and
// BufferSlice, a cheap ref-counted view that keeps its block alive.
// Thread-safety: a BufferPool belongs to one owner thread (the one that made it,
// or the last to call bind_to_current_thread()); only stats() may be called from
// other threads. Buffers and slices may be moved to, used on and dropped on any
// thread, one thread per handle at a time; the block goes home by itself.
// Lifetimes: the bytes a slice views stay valid and unchanged until the slice
// (and every copy of it) is gone, even after its Buffer and its BufferPool are
// gone. Views a Buffer hands out (data(), view(), prepare()) last while the
// Buffer holds the block and until the next compact().
#pragma once

#include <sys/uio.h>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "portico/detail/buffer_block.hpp"

namespace portico {
inline namespace v0 {

// How a pool is built: the "prototype" of every buffer it hands out.
struct BufferPoolOptions {
  enum class HugePages {
    kNone,         // plain 4 KiB pages
    kTransparent,  // madvise(MADV_HUGEPAGE) on 2 MiB-aligned slabs
    kExplicit,     // MAP_HUGETLB first; falls back to kTransparent when unavailable
  };
  enum class Poison {
    kBuildDefault,  // on in debug (no NDEBUG) and AddressSanitizer builds of the library
    kAlways,        // fill released blocks with kPoisonByte (and ASan-poison them)
    kNever,
  };

  // REQUIRES: a multiple of 64, at most 1 GiB.
  std::size_t block_size = 16 * 1024;
  // The bound: acquire() fails once this many blocks are out. REQUIRES: > 0.
  std::size_t max_blocks = 4096;
  // Bytes per mmap'd slab, rounded up to a whole number of blocks (and of 2 MiB
  // for explicit huge pages). Slabs are mapped lazily by the owner thread.
  std::size_t slab_size = 2 * 1024 * 1024;
  bool populate = false;  // MAP_POPULATE: pre-fault slabs as they are mapped
  HugePages huge_pages = HugePages::kTransparent;
  Poison poison = Poison::kBuildDefault;
  // Blocks released on a thread other than the owner go home through a ring
  // per (releasing thread, pool), which the owner drains when its free list
  // runs dry (or on reclaim()): a remote release is two stores and a load, no
  // atomic read-modify-write, and never parks a block out of the owner's
  // sight. A release that finds its ring full takes a shared lock-free stack
  // instead (one CAS), as does every remote release of a pool of more than
  // 65533 blocks. Slots per ring, rounded up to a power of two; 0 (the default):
  // max_blocks, up to 4096. A ring costs 2 bytes a slot, allocated on a
  // thread's first remote release into the pool and reused by later threads
  // once it exits. REQUIRES: <= 65536.
  std::size_t remote_ring_slots = 0;
};

// A snapshot; read from another thread it is approximate (each figure relaxed).
struct BufferPoolStats {
  std::size_t block_size = 0;
  std::size_t max_blocks = 0;
  std::size_t blocks_total = 0;   // blocks in mapped slabs
  std::size_t blocks_in_use = 0;  // handed out and not yet back with the owner
  std::size_t high_water = 0;     // most blocks_in_use ever
  std::size_t slabs = 0;
  std::size_t huge_page_slabs = 0;  // slabs backed by explicit (hugetlbfs) pages
  std::uint64_t remote_frees = 0;   // blocks freed on other threads, once drained
  std::uint64_t failed_acquires = 0;
};

// The byte a released block is filled with when poisoning is on.
inline constexpr unsigned char kPoisonByte = 0xDD;

class BufferSlice;

// The owning handle of one block: readable bytes [data(), data()+size()) followed
// by the writable tail prepare(). A read appends with prepare()+commit(), a
// parser takes slices of what was read and consume()s it. Move-only; an empty
// (default or moved-from) Buffer holds no block.
class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(Buffer&& other) noexcept
      : block_(std::exchange(other.block_, nullptr)),
        begin_(other.begin_),
        end_(other.end_),
        capacity_(other.capacity_) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      reset();
      block_ = std::exchange(other.block_, nullptr);
      begin_ = other.begin_;
      end_ = other.end_;
      capacity_ = other.capacity_;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  // False for an empty handle, e.g. when acquire() found the pool exhausted.
  explicit operator bool() const noexcept { return block_ != nullptr; }

  // The readable bytes. REQUIRES for all members below: *this holds a block.
  const char* data() const noexcept { return block_->data + begin_; }
  char* data() noexcept { return block_->data + begin_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  std::string_view view() const noexcept { return {data(), size()}; }
  std::size_t capacity() const noexcept { return capacity_; }

  // The writable tail after the readable bytes; fill a prefix, then commit().
  std::span<char> prepare() noexcept { return {block_->data + end_, capacity_ - end_}; }
  // REQUIRES: n <= prepare().size().
  void commit(std::size_t n) noexcept {
    assert(n <= capacity_ - end_);
    end_ += static_cast<std::uint32_t>(n);
  }
  // Copies `bytes` to the tail; false (and nothing written) when they do not fit.
  bool append(std::string_view bytes) noexcept;
  // Drops n readable bytes from the front. Slices of them stay valid. When all
  // is consumed and no slice is out, the buffer rewinds to the block's start.
  // REQUIRES: n <= size().
  void consume(std::size_t n) noexcept {
    assert(n <= size());
    begin_ += static_cast<std::uint32_t>(n);
    if (begin_ == end_ && !shared()) {
      begin_ = 0;
      end_ = 0;
    }
  }
  // Moves the readable bytes to the block's start to grow the tail. Refused
  // (false) while slices are out, since it would rewrite bytes they view.
  bool compact() noexcept;

  // True while a BufferSlice of this block exists. Acquire: once it reads false,
  // every read through a dropped slice happened before, so bytes may be reused.
  bool shared() const noexcept { return block_->refs.load(std::memory_order_acquire) != 1; }

  // A view of readable bytes [pos, pos+len) that keeps the block alive.
  // REQUIRES: pos + len <= size().
  BufferSlice slice(std::size_t pos, std::size_t len) const noexcept;
  // A view of `bytes`, which must lie within this block's committed bytes
  // (e.g. a string_view a parser returned into view()).
  BufferSlice slice(std::string_view bytes) const noexcept;
  // Turns the whole handle into a slice of its readable bytes; the Buffer's own
  // reference moves into the slice, so this costs no atomic operation.
  BufferSlice to_slice() && noexcept;

  // Drops the block now (the destructor does the same).
  void reset() noexcept;

 private:
  friend class BufferPool;
  Buffer(detail::BlockHeader* block, std::size_t capacity) noexcept
      : block_(block), capacity_(static_cast<std::uint32_t>(capacity)) {}

  detail::BlockHeader* block_ = nullptr;
  std::uint32_t begin_ = 0;
  std::uint32_t end_ = 0;
  std::uint32_t capacity_ = 0;
};

// A ref-counted view of bytes inside one block. Copying adds a reference (one
// relaxed atomic increment); the last reference to go returns the block to its
// pool, from whichever thread drops it. An empty slice holds no block.
class BufferSlice {
 public:
  BufferSlice() noexcept = default;
  BufferSlice(const BufferSlice& other) noexcept
      : block_(other.block_), data_(other.data_), size_(other.size_) {
    add_ref();
  }
  BufferSlice(BufferSlice&& other) noexcept
      : block_(std::exchange(other.block_, nullptr)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  BufferSlice& operator=(const BufferSlice& other) noexcept {
    if (this != &other) {
      BufferSlice copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  BufferSlice& operator=(BufferSlice&& other) noexcept {
    if (this != &other) {
      reset();
      block_ = std::exchange(other.block_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~BufferSlice() { reset(); }

  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::string_view view() const noexcept { return {data_, size_}; }
  // True when this slice keeps a block alive (even a zero-length view may).
  bool holds_block() const noexcept { return block_ != nullptr; }

  // A narrower view [pos, pos+len) of this one. REQUIRES: pos + len <= size().
  BufferSlice subslice(std::size_t pos, std::size_t len) const noexcept {
    assert(pos + len <= size_);
    if (block_ == nullptr) return {};
    add_ref();
    return BufferSlice(block_, data_ + pos, len);
  }
  // REQUIRES: n <= size(). Used after a short write.
  void remove_prefix(std::size_t n) noexcept {
    assert(n <= size_);
    data_ += n;
    size_ -= n;
  }
  // Drops the reference now (the destructor does the same).
  void reset() noexcept {
    if (block_ != nullptr) {
      drop_ref(std::exchange(block_, nullptr));
      data_ = nullptr;
      size_ = 0;
    }
  }

 private:
  friend class Buffer;
  BufferSlice(detail::BlockHeader* block, const char* data, std::size_t size) noexcept
      : block_(block), data_(data), size_(size) {}
  void add_ref() const noexcept {
    // Relaxed: whoever copies already holds a reference, so the block cannot
    // be freed concurrently; ordering is carried by the decrements.
    if (block_ != nullptr) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void drop_ref(detail::BlockHeader* block) noexcept {
    // Acq_rel: our reads of the bytes happen before the block is reused, and
    // the thread that frees it sees every other holder's reads as done.
    if (block->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      detail::PoolCore::release(block);
    }
  }

  detail::BlockHeader* block_ = nullptr;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Fills `out` with one iovec per non-empty slice, in order, for writev.
// Returns how many iovecs were filled (fewer than the slices if out is short).
std::size_t gather_iovecs(std::span<const BufferSlice> slices, std::span<iovec> out) noexcept;

// After a write of `written` bytes from gather_iovecs(slices, ...): resets the
// slices that were written whole and trims the one written in part. Returns the
// index of the first slice with bytes left (slices.size() when all were written).
// REQUIRES: written <= the total size of the slices.
std::size_t advance_written(std::span<BufferSlice> slices, std::size_t written) noexcept;

// A bounded pool of fixed-size blocks. acquire() never blocks and never throws:
// an empty Buffer means "exhausted" and the caller applies backpressure.
// Destroying the pool with blocks still out is safe: its slabs stay mapped
// until the last of those blocks is dropped (on any thread), then are unmapped.
// Destroying a pool that other threads released blocks into costs one
// membarrier(2) system call (it is what lets their releases skip a fence).
// A moved-from pool may only be destroyed or assigned to.
class BufferPool {
 public:
  // Throws std::invalid_argument when the options break a REQUIRES, and
  // std::bad_alloc when the descriptor array cannot be mapped. Maps no slab yet.
  explicit BufferPool(const BufferPoolOptions& options = {});
  BufferPool(BufferPool&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  BufferPool& operator=(BufferPool&& other) noexcept;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  // REQUIRES: on the owner thread (or the owner no longer uses the pool).
  ~BufferPool();

  // A block with size() == 0 and capacity() == block_size(), or an empty Buffer
  // when max_blocks are out and none came back (counted in failed_acquires).
  // REQUIRES: on the owner thread.
  Buffer acquire() noexcept {
    assert(core_ != nullptr && core_->owned_by_caller());
    detail::BlockHeader* block = core_->try_acquire();
    if (block == nullptr) [[unlikely]]
      return Buffer();
    return Buffer(block, core_->block_size());
  }

  // Takes back the blocks other threads have freed; acquire() does this by
  // itself when its free list runs dry. Returns how many came back.
  // REQUIRES: on the owner thread.
  std::size_t reclaim() noexcept { return core_->reclaim_remote(); }

  // Maps slabs now, from the calling (owner) thread, until at least `blocks`
  // blocks exist (capped at max_blocks). False if a mapping failed.
  // REQUIRES: on the owner thread.
  bool reserve(std::size_t blocks) noexcept { return core_->map_until(blocks); }

  // Makes the calling thread the owner, e.g. a reactor adopting a pool that was
  // built before its thread started. REQUIRES: the previous owner no longer uses
  // the pool, and releases its blocks afterwards only after synchronising with
  // this call (the hand-over itself, e.g. a thread start or a queue).
  void bind_to_current_thread() noexcept { core_->bind(detail::this_thread_tag()); }

  // Any thread.
  BufferPoolStats stats() const noexcept;
  std::size_t block_size() const noexcept { return core_->block_size(); }
  std::size_t max_blocks() const noexcept { return core_->max_blocks(); }
  // Whether released blocks are poisoned (BufferPoolOptions::poison resolved).
  bool poisons_released_blocks() const noexcept { return core_->poisons(); }

  // Pool cores alive in the process, including those of destroyed pools whose
  // blocks are still out. For leak accounting in tests.
  static std::size_t live_pool_cores() noexcept { return detail::PoolCore::live_cores(); }
  // Remote hand-back rings alive in the process (of any pool, attached to a
  // thread or not). For leak accounting in tests.
  static std::size_t live_remote_rings() noexcept { return detail::PoolCore::live_rings(); }

 private:
  detail::PoolCore* core_ = nullptr;
};

// ---- inline definitions -----------------------------------------------------

inline void Buffer::reset() noexcept {
  if (block_ == nullptr) return;
  detail::BlockHeader* block = std::exchange(block_, nullptr);
  begin_ = end_ = 0;
  // The owner's fast path: no slice was ever taken (or all are gone), so the
  // count is our implicit 1 and no one else can raise it; a load, not an RMW.
  if (block->refs.load(std::memory_order_acquire) == 1 ||
      block->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    detail::PoolCore::release(block);
  }
}

inline BufferSlice Buffer::slice(std::size_t pos, std::size_t len) const noexcept {
  assert(pos + len <= size());
  block_->refs.fetch_add(1, std::memory_order_relaxed);
  return BufferSlice(block_, data() + pos, len);
}

inline BufferSlice Buffer::slice(std::string_view bytes) const noexcept {
  assert(bytes.data() >= block_->data && bytes.data() + bytes.size() <= block_->data + end_);
  block_->refs.fetch_add(1, std::memory_order_relaxed);
  return BufferSlice(block_, bytes.data(), bytes.size());
}

inline BufferSlice Buffer::to_slice() && noexcept {
  if (block_ == nullptr) return {};
  BufferSlice whole(block_, data(), size());
  block_ = nullptr;
  begin_ = end_ = 0;
  return whole;
}

}  // namespace v0
}  // namespace portico
