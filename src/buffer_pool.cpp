// portico/buffer_pool.cpp — the slow paths of BufferPool: slab mapping,
// draining the remote hand-back, poisoning, and the pool-destruction protocol.
#include "portico/buffer_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTICO_POOL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(PORTICO_POOL_ASAN)
#define PORTICO_POOL_ASAN 1
#endif
#if defined(PORTICO_POOL_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr std::size_t kHugePage = 2 * 1024 * 1024;
constexpr std::size_t kMaxBlockSize = std::size_t{1} << 30;

#if defined(PORTICO_POOL_ASAN)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#if defined(NDEBUG)
constexpr bool kDebug = false;
#else
constexpr bool kDebug = true;
#endif

std::atomic<std::size_t> g_live_cores{0};

// A static object whose address no block can have: marks a closed hand-back.
BlockHeader g_orphan_sentinel;

std::size_t round_up(std::size_t n, std::size_t unit) {
  return (n + unit - 1) / unit * unit;
}

void* map_anonymous(std::size_t bytes, int extra_flags) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap(void* p, std::size_t bytes) noexcept {
#if defined(PORTICO_POOL_ASAN)
  // Unpoison first: ASan's shadow outlives the mapping, and a later mmap that
  // reuses these addresses would otherwise start out "poisoned".
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#endif
  ::munmap(p, bytes);
}

// Faults a mapping in now, from the calling (owner) thread: MADV_POPULATE_WRITE
// where the kernel has it (5.14+), else one write per page.
void prefault(char* p, std::size_t bytes) noexcept {
#if defined(MADV_POPULATE_WRITE)
  if (::madvise(p, bytes, MADV_POPULATE_WRITE) == 0) return;
#endif
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t step = page > 0 ? static_cast<std::size_t>(page) : 4096;
  for (std::size_t i = 0; i < bytes; i += step) p[i] = 0;
}

}  // namespace

void poison_block(BlockHeader* block) noexcept {
  const std::size_t size = block->pool->block_size();
  std::memset(block->data, kPoisonByte, size);
#if defined(PORTICO_POOL_ASAN)
  ASAN_POISON_MEMORY_REGION(block->data, size);
#endif
}

void unpoison_block([[maybe_unused]] BlockHeader* block) noexcept {
#if defined(PORTICO_POOL_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(block->data, block->pool->block_size());
#endif
}

PoolCore::PoolCore(const Config& config)
    : block_size_(config.block_size),
      max_blocks_(config.max_blocks),
      blocks_per_slab_(config.blocks_per_slab),
      slab_bytes_(config.blocks_per_slab * config.block_size),
      max_slabs_((config.max_blocks + config.blocks_per_slab - 1) / config.blocks_per_slab),
      populate_(config.populate),
      huge_pages_(config.huge_pages),
      poison_(config.poison) {
  remote_batch_ = config.remote_batch;
  // Descriptors for every block the pool may ever have, reserved up front as
  // virtual memory only (MAP_NORESERVE); a page is touched when its first
  // block is carved, by the owner thread.
  void* descriptors = map_anonymous(max_blocks_ * sizeof(BlockHeader), MAP_NORESERVE);
  if (descriptors == nullptr) throw std::bad_alloc();
  descriptors_ = static_cast<BlockHeader*>(descriptors);
  try {
    slabs_ = new char*[max_slabs_]();
    slab_is_huge_ = new bool[max_slabs_]();
  } catch (...) {
    delete[] slabs_;
    ::munmap(descriptors, max_blocks_ * sizeof(BlockHeader));
    throw;
  }
  owner_.store(this_thread_tag(), std::memory_order_relaxed);
  g_live_cores.fetch_add(1, std::memory_order_relaxed);
}

PoolCore::~PoolCore() {
  const std::size_t slabs = slabs_mapped_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < slabs; ++i) unmap(slabs_[i], slab_bytes_);
  ::munmap(descriptors_, max_blocks_ * sizeof(BlockHeader));
  delete[] slabs_;
  delete[] slab_is_huge_;
  g_live_cores.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t PoolCore::live_cores() noexcept {
  return g_live_cores.load(std::memory_order_relaxed);
}

BlockHeader* PoolCore::orphan_sentinel() noexcept {
  return &g_orphan_sentinel;
}

bool PoolCore::map_slab() noexcept {
  const std::size_t index = slabs_mapped_.load(std::memory_order_relaxed);
  if (index == max_slabs_) return false;
  char* slab = nullptr;
  bool huge = false;
  using HugePages = BufferPoolOptions::HugePages;
  const int populate = populate_ ? MAP_POPULATE : 0;
  if (huge_pages_ == static_cast<int>(HugePages::kExplicit) && slab_bytes_ % kHugePage == 0) {
    slab = static_cast<char*>(map_anonymous(slab_bytes_, MAP_HUGETLB | populate));
    huge = slab != nullptr;
  }
  if (slab == nullptr && huge_pages_ != static_cast<int>(HugePages::kNone) &&
      slab_bytes_ >= kHugePage) {
    // Over-map and trim so the slab starts on a 2 MiB boundary: THP can only
    // back aligned 2 MiB ranges. MAP_POPULATE waits until after madvise, so the
    // first touch can already be a huge page.
    const std::size_t span = slab_bytes_ + kHugePage;
    char* raw = static_cast<char*>(map_anonymous(span, 0));
    if (raw != nullptr) {
      const auto addr = reinterpret_cast<std::uintptr_t>(raw);
      char* aligned = raw + (round_up(addr, kHugePage) - addr);
      const std::size_t head = static_cast<std::size_t>(aligned - raw);
      if (head != 0) ::munmap(raw, head);
      const std::size_t tail = span - head - slab_bytes_;
      if (tail != 0) ::munmap(aligned + slab_bytes_, tail);
      slab = aligned;
      ::madvise(slab, slab_bytes_, MADV_HUGEPAGE);  // advisory: failure is harmless
      if (populate_) prefault(slab, slab_bytes_);
    }
  }
  if (slab == nullptr) slab = static_cast<char*>(map_anonymous(slab_bytes_, populate));
  if (slab == nullptr) return false;
  slabs_[index] = slab;
  slab_is_huge_[index] = huge;
  if (huge)
    huge_page_slabs_.store(huge_page_slabs_.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
  slabs_mapped_.store(index + 1, std::memory_order_relaxed);
  const std::size_t total = std::min(max_blocks_, (index + 1) * blocks_per_slab_);
  blocks_total_.store(total, std::memory_order_relaxed);
  if (poison_) {
#if defined(PORTICO_POOL_ASAN)
    // Not yet handed out: poisoned until carved and acquired.
    ASAN_POISON_MEMORY_REGION(slab, slab_bytes_);
#endif
  }
  return true;
}

bool PoolCore::map_until(std::size_t blocks) noexcept {
  if (blocks > max_blocks_) blocks = max_blocks_;
  while (blocks_total_.load(std::memory_order_relaxed) < blocks) {
    if (!map_slab()) return false;
  }
  return true;
}

std::size_t PoolCore::count_chains(BlockHeader* list, BlockHeader** last) noexcept {
  std::size_t count = 0;
  *last = nullptr;
  for (BlockHeader* chain = list; chain != nullptr; chain = (*last)->next) {
    count += chain->batch_count;
    *last = chain->batch_tail;
  }
  return count;
}

std::size_t PoolCore::reclaim_remote() noexcept {
  if (remote_head_.load(std::memory_order_relaxed) == nullptr) return 0;
  // Acquire: pairs with every releaser's CAS (release) in the release sequence
  // of remote_head_, so their writes to the blocks and to the links are visible.
  BlockHeader* list = remote_head_.exchange(nullptr, std::memory_order_acquire);
  BlockHeader* last = nullptr;
  const std::size_t count = count_chains(list, &last);
  if (last != nullptr) {
    last->next = free_head_;
    free_head_ = list;
  }
  if (count != 0 && flush_wanted_.load(std::memory_order_relaxed))
    flush_wanted_.store(false, std::memory_order_relaxed);
  in_use_.store(in_use_.load(std::memory_order_relaxed) - count, std::memory_order_relaxed);
  remote_frees_.store(remote_frees_.load(std::memory_order_relaxed) + count,
                      std::memory_order_relaxed);
  return count;
}

BlockHeader* PoolCore::acquire_slow() noexcept {
  if (reclaim_remote() == 0 && carved_ == blocks_total_.load(std::memory_order_relaxed)) {
    bool came_back = false;
    if (carved_ == max_blocks_ && remote_batch_ > 1) {
      // Exhausted: ask remote threads to stop parking blocks of this pool, and
      // push home what this thread itself parked before it became the owner.
      if (!flush_wanted_.load(std::memory_order_relaxed))
        flush_wanted_.store(true, std::memory_order_relaxed);
      for (RemoteCacheSlot& slot : tls_remote_cache.slots) {
        if (slot.pool == this && slot.count != 0) flush_slot(slot);
      }
      came_back = reclaim_remote() != 0;
    }
    if (!came_back && (carved_ == max_blocks_ || !map_slab())) {
      failed_acquires_.store(failed_acquires_.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
      return nullptr;
    }
  }
  if (free_head_ != nullptr) {
    BlockHeader* block = free_head_;
    free_head_ = block->next;
    return block;
  }
  // Carve the next block of the newest slab; its descriptor page is first
  // touched here, on the owner thread.
  const std::size_t index = carved_++;
  auto* block = new (&descriptors_[index]) BlockHeader();
  block->data = slabs_[index / blocks_per_slab_] + (index % blocks_per_slab_) * block_size_;
  block->pool = this;
  return block;
}

PoolCore::Counters PoolCore::counters() const noexcept {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  return Counters{blocks_total_.load(kRelaxed),    in_use_.load(kRelaxed),
                  high_water_.load(kRelaxed),      slabs_mapped_.load(kRelaxed),
                  huge_page_slabs_.load(kRelaxed), remote_frees_.load(kRelaxed),
                  failed_acquires_.load(kRelaxed)};
}

// Protocol when a pool dies with blocks out: orphan_refs_ counts the blocks
// still out plus one for close() itself; it is set before the hand-back is
// closed with the sentinel, and a releaser that meets the sentinel loads it
// with acquire before decrementing. Whoever brings the count to zero frees
// the core and unmaps the slabs.
void PoolCore::close() noexcept {
  owner_.store(nullptr, std::memory_order_relaxed);
  const std::size_t out = in_use_.load(std::memory_order_relaxed);
  orphan_refs_.store(out + 1, std::memory_order_relaxed);
  // Acq_rel: acquire takes the pending hand-back list (as reclaim does);
  // release publishes orphan_refs_ to releasers that will see the sentinel.
  BlockHeader* list = remote_head_.exchange(orphan_sentinel(), std::memory_order_acq_rel);
  BlockHeader* last = nullptr;
  const std::size_t drained = count_chains(list, &last);
  if (orphan_refs_.fetch_sub(drained + 1, std::memory_order_acq_rel) == drained + 1) delete this;
}

void PoolCore::release_orphaned(std::size_t count) noexcept {
  (void)remote_head_.load(std::memory_order_acquire);  // see close(): synchronise first
  if (orphan_refs_.fetch_sub(count, std::memory_order_acq_rel) == count) delete this;
}

namespace {

// Its destructor, run among the thread's thread_local destructors, pushes
// every parked chain home; releases after it (from later destructors) go
// straight home, unparked.
struct RemoteCacheExitFlush {
  ~RemoteCacheExitFlush() {
    PoolCore::flush_thread_cache();
    tls_remote_cache.exited = true;
  }
};

}  // namespace

void PoolCore::flush_thread_cache() noexcept {
  for (RemoteCacheSlot& slot : tls_remote_cache.slots) {
    if (slot.count != 0) flush_slot(slot);
    slot.pool = nullptr;
  }
}

void PoolCore::park_remote_slow(BlockHeader* block, PoolCore* pool) noexcept {
  RemoteCache& cache = tls_remote_cache;
  if (cache.exited) [[unlikely]] {
    block->next = nullptr;
    pool->push_chain(block, block, 1);
    return;
  }
  if (!cache.exit_flush_registered) {
    // Constructed (and its destructor registered) on this first pass only.
    static thread_local RemoteCacheExitFlush exit_flush;
    (void)&exit_flush;
    cache.exit_flush_registered = true;
  }
  RemoteCacheSlot* slot = nullptr;
  for (RemoteCacheSlot& s : cache.slots) {
    if (s.count == 0) {
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) {
    // Every slot parks blocks of another pool: push one chain home early.
    slot = &cache.slots[cache.next_victim++ % kRemoteCacheSlots];
    flush_slot(*slot);
  }
  slot->pool = pool;
  park_remote(block, pool);
}

}  // namespace detail

// ---- Buffer -------------------------------------------------------------------

bool Buffer::append(std::string_view bytes) noexcept {
  if (bytes.size() > capacity_ - end_) return false;
  if (!bytes.empty()) std::memcpy(block_->data + end_, bytes.data(), bytes.size());
  end_ += static_cast<std::uint32_t>(bytes.size());
  return true;
}

bool Buffer::compact() noexcept {
  if (shared()) return false;
  if (begin_ != 0) {
    std::memmove(block_->data, block_->data + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return true;
}

std::size_t gather_iovecs(std::span<const BufferSlice> slices, std::span<iovec> out) noexcept {
  std::size_t filled = 0;
  for (const BufferSlice& slice : slices) {
    if (slice.empty()) continue;
    if (filled == out.size()) break;
    // iovec is a C struct with a non-const base; writev only reads through it.
    out[filled].iov_base = const_cast<char*>(slice.data());
    out[filled].iov_len = slice.size();
    ++filled;
  }
  return filled;
}

std::size_t advance_written(std::span<BufferSlice> slices, std::size_t written) noexcept {
  std::size_t i = 0;
  for (; i < slices.size(); ++i) {
    BufferSlice& slice = slices[i];
    if (written < slice.size()) {
      slice.remove_prefix(written);
      return i;
    }
    written -= slice.size();
    slice.reset();
  }
  return i;
}

// ---- BufferPool -----------------------------------------------------------------

namespace {

detail::PoolCore::Config validate(const BufferPoolOptions& options) {
  using Options = BufferPoolOptions;
  if (options.block_size == 0 || options.block_size % detail::kPoolCacheLine != 0 ||
      options.block_size > detail::kMaxBlockSize) {
    throw std::invalid_argument("portico::BufferPool: block_size " +
                                std::to_string(options.block_size) +
                                " must be a non-zero multiple of 64 no larger than 1 GiB");
  }
  if (options.max_blocks == 0) {
    throw std::invalid_argument("portico::BufferPool: max_blocks must be at least 1");
  }
  if (options.remote_release_batch == 0 || options.remote_release_batch > 1024) {
    throw std::invalid_argument("portico::BufferPool: remote_release_batch " +
                                std::to_string(options.remote_release_batch) +
                                " must be between 1 and 1024");
  }
  std::size_t slab = std::max(options.slab_size, options.block_size);
  if (options.huge_pages == Options::HugePages::kExplicit) {
    slab = detail::round_up(slab, detail::kHugePage);
  }
  // Whole blocks per slab, and whole pages for mmap.
  std::size_t per_slab = detail::round_up(slab, options.block_size) / options.block_size;
  // A small pool does not map a slab larger than all its blocks.
  per_slab = std::min(per_slab, options.max_blocks);
  while ((per_slab * options.block_size) % 4096 != 0) ++per_slab;
  bool poison = options.poison == Options::Poison::kAlways;
  if (options.poison == Options::Poison::kBuildDefault) poison = detail::kDebug || detail::kAsan;
  return detail::PoolCore::Config{options.block_size,
                                  options.max_blocks,
                                  per_slab,
                                  options.populate,
                                  static_cast<int>(options.huge_pages),
                                  poison,
                                  static_cast<std::uint32_t>(options.remote_release_batch)};
}

}  // namespace

BufferPool::BufferPool(const BufferPoolOptions& options)
    : core_(new detail::PoolCore(validate(options))) {}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    if (core_ != nullptr) core_->close();
    core_ = std::exchange(other.core_, nullptr);
  }
  return *this;
}

BufferPool::~BufferPool() {
  if (core_ != nullptr) core_->close();
}

void BufferPool::flush_thread_cache() noexcept {
  detail::PoolCore::flush_thread_cache();
}

BufferPoolStats BufferPool::stats() const noexcept {
  const detail::PoolCore::Counters c = core_->counters();
  BufferPoolStats s;
  s.block_size = core_->block_size();
  s.max_blocks = core_->max_blocks();
  s.blocks_total = c.blocks_total;
  s.blocks_in_use = c.blocks_in_use;
  s.high_water = c.high_water;
  s.slabs = c.slabs;
  s.huge_page_slabs = c.huge_page_slabs;
  s.remote_frees = c.remote_frees;
  s.failed_acquires = c.failed_acquires;
  return s;
}

}  // namespace v0
}  // namespace portico
