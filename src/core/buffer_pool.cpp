// src/core/buffer_pool.cpp — the slow paths of BufferPool: slab mapping,
// draining the remote hand-backs (rings and stack), remote threads' rings,
// poisoning, and the pool-destruction protocol.
#include "portico/buffer_pool.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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
std::atomic<std::uint64_t> g_next_pool_id{1};
std::atomic<std::size_t> g_live_rings{0};

// A static object whose address no ring can have: marks a closed ring list.
RemoteRing g_ring_sentinel;

// The process-wide barrier that lets a ring push do without a fence (see
// PoolCore::close). Registered once, on the first ring's creation; if the
// kernel lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux < 4.14, or a seccomp
// filter), no ring is made and remote releases take the CAS stack.
bool membarrier_ready() noexcept {
  static const bool ready =
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  return ready;
}
void process_wide_barrier() noexcept {
  // Cannot fail once registered (membarrier(2)); a full fence on every
  // running thread of the process, so their earlier stores are visible here.
  (void)::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}

// Whether prefetch_for_write() is a real write prefetch here (on x86, CPUID
// 0x80000001 ECX bit 8, PREFETCHW), so it may be issued at all.
bool write_prefetch_available() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static const bool available = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 8)) != 0;
  }();
  return available;
#else
  return true;
#endif
}

// Four lines (128 slots) ahead: the best distance for buffer_pool_bench's
// cross-core BM_Release (bench/README.md). Rings of under 1024 slots do
// without: their lines are few and the drain may still be reading them.
constexpr std::uint32_t kPrefetchAhead = 128;
constexpr std::uint32_t kPrefetchMinSlots = 1024;

void free_ring(RemoteRing* ring) noexcept {
  std::free(ring->slots);  // std::atomic<std::uint16_t> is trivially destructible
  delete ring;
  g_live_rings.fetch_sub(1, std::memory_order_relaxed);
}
// Drops one reference (the core's or the attached thread's).
void unref_ring(RemoteRing* ring) noexcept {
  // Acq_rel: whoever frees the ring sees every other holder's uses done.
  if (ring->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_ring(ring);
}
// Marks every slot of a ring of a closed pool kRingClosed and counts the
// tokens it took. close() does it twice, around its process-wide barrier, and
// the ring's producer may do it too once it has seen kRingClosed; each token
// is taken by one exchange, so it is counted once whoever takes it.
std::uint32_t claim_ring(RemoteRing* ring) noexcept {
  std::uint32_t claimed = 0;
  for (std::uint32_t i = 0; i < ring->slot_count; ++i) {
    // Acq_rel: acquire for a token's block's last uses (they must happen before
    // the core that owns the block dies); release publishes orphan_refs_ to a
    // producer that reads kRingClosed here with acquire.
    if (is_ring_token(ring->slots[i].exchange(kRingClosed, std::memory_order_acq_rel)))
      ++claimed;
  }
  return claimed;
}

// What a free slot holds at position `index`.
constexpr std::uint16_t free_mark(std::uint32_t index) noexcept {
  return index % kRingSlotsPerLine == kRingSlotsPerLine - 1 ? kRingFreeLineEnd : kRingFree;
}

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
    : poison_(config.poison),
      block_size_(config.block_size),
      max_blocks_(config.max_blocks),
      blocks_per_slab_(config.blocks_per_slab),
      slab_bytes_(config.blocks_per_slab * config.block_size),
      max_slabs_((config.max_blocks + config.blocks_per_slab - 1) / config.blocks_per_slab),
      populate_(config.populate),
      huge_pages_(config.huge_pages) {
  id_ = g_next_pool_id.fetch_add(1, std::memory_order_relaxed);
  ring_slots_ = config.ring_slots;
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
  for (RemoteRing* ring = closed_rings_; ring != nullptr;) {
    RemoteRing* next = ring->pool_next;  // before the unref: the ring may go
    unref_ring(ring);
    ring = next;
  }
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

std::size_t PoolCore::live_rings() noexcept {
  return g_live_rings.load(std::memory_order_relaxed);
}

RemoteRing* PoolCore::ring_sentinel() noexcept {
  return &g_ring_sentinel;
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

std::size_t PoolCore::count_stack(BlockHeader* list, BlockHeader** last) noexcept {
  std::size_t count = 0;
  *last = nullptr;
  for (BlockHeader* block = list; block != nullptr; block = block->next) {
    ++count;
    *last = block;
  }
  return count;
}

std::size_t PoolCore::drain_ring(RemoteRing* ring) noexcept {
  const std::uint32_t mask = ring->slot_count - 1;
  const std::uint32_t first = ring->head;
  std::uint32_t count = 0;
  // Locals: the acquire loads below would make the compiler reload and store
  // the members each time, a second store per block.
  BlockHeader* const descriptors = descriptors_;
  BlockHeader* free_head = free_head_;
  // Take the tokens first, then free their slots: each block taken writes its
  // descriptor's line, which the releasing thread read, and those writes wait
  // a cross-core round trip each; interleaved with the slot writes they would
  // have half the store buffer to overlap in. Meanwhile the producer sees the
  // taken tokens and waits, as on a full ring.
  // At most one lap: a producer refilling behind us waits for the next drain.
  for (; count <= mask; ++count) {
    std::atomic<std::uint16_t>& slot = ring->slots[(first + count) & mask];
    // Each line of slots is fetched for writing as we reach it: fetched to be
    // read, it would come over shared and take a second round trip to free.
    if (((first + count) & (kRingSlotsPerLine - 1)) == 0 || count == 0) prefetch_for_write(&slot);
    // Acquire: pairs with the producer's release-store of the token, so the
    // block's last uses are visible.
    const std::uint16_t token = slot.load(std::memory_order_acquire);
    if (!is_ring_token(token)) break;
    BlockHeader* block = descriptors + (token - 1);
    block->next = free_head;
    free_head = block;
  }
  free_head_ = free_head;
  for (std::uint32_t i = first; i != first + count; ++i) {
    // Relaxed: the producer writes this slot again only after reading it free.
    ring->slots[i & mask].store(free_mark(i & mask), std::memory_order_relaxed);
  }
  ring->head = first + count;
  return count;
}

std::size_t PoolCore::reclaim_remote() noexcept {
  std::size_t count = 0;
  // Acquire: a ring's fields are set before the CAS that linked it.
  for (RemoteRing* ring = rings_.load(std::memory_order_acquire); ring != nullptr;
       ring = ring->pool_next) {
    count += drain_ring(ring);
  }
  if (remote_head_.load(std::memory_order_relaxed) != nullptr) {
    // Acquire: pairs with every releaser's CAS (release) in the release
    // sequence of remote_head_, so their writes to the blocks and links are visible.
    BlockHeader* list = remote_head_.exchange(nullptr, std::memory_order_acquire);
    BlockHeader* last = nullptr;
    const std::size_t pushed = count_stack(list, &last);
    if (last != nullptr) {
      last->next = free_head_;
      free_head_ = list;
    }
    count += pushed;
  }
  if (count == 0) return 0;
  in_use_.store(in_use_.load(std::memory_order_relaxed) - count, std::memory_order_relaxed);
  remote_frees_.store(remote_frees_.load(std::memory_order_relaxed) + count,
                      std::memory_order_relaxed);
  return count;
}

BlockHeader* PoolCore::acquire_slow() noexcept {
  if (reclaim_remote() == 0 && carved_ == blocks_total_.load(std::memory_order_relaxed)) {
    if (carved_ == max_blocks_ || !map_slab()) {
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
  block->ring_token = static_cast<std::uint16_t>(index + 1);  // used only if <= kMaxRingBlocks
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
// still out plus one for close() itself; it is set before anything is closed,
// and everyone who later counts blocks against it first reads a closed marker
// with acquire. Whoever brings the count to zero frees the core and unmaps the
// slabs.
//
// The stack is closed with a sentinel by exchange: a pusher's CAS either lands
// before (close drains it) or sees the sentinel (the pusher counts itself).
// The rings need more care, since a push is a plain release-store: the ring
// list is closed with a sentinel (no ring joins later), each ring is marked
// closed and every slot of it set to kRingClosed (taking the tokens there),
// then membarrier() runs a full fence on every thread of the process, and the
// slots are swept once more. A producer stores its token, then reads the next
// slot. Either its store is visible to the second sweep, or its load comes
// after the barrier and reads kRingClosed (and the producer sweeps the ring
// itself); every token is taken by an exchange, so exactly one of them counts
// it. So no block is stranded in a ring, and no producer touches the core
// after its push unless it has claimed blocks the core is still waiting for.
void PoolCore::close() noexcept {
  owner_.store(nullptr, std::memory_order_relaxed);
  const std::size_t out = in_use_.load(std::memory_order_relaxed);
  orphan_refs_.store(out + 1, std::memory_order_relaxed);
  // Acq_rel: acquire sees every ring's fields (linked by release CAS);
  // release publishes orphan_refs_ to registrars that meet the sentinel.
  closed_rings_ = rings_.exchange(ring_sentinel(), std::memory_order_acq_rel);
  std::size_t drained = 0;
  if (closed_rings_ != nullptr) {
    for (RemoteRing* ring = closed_rings_; ring != nullptr; ring = ring->pool_next) {
      // Release: publishes orphan_refs_ (and closed_rings_, for whoever frees
      // the core) to a thread that reads closed with acquire.
      ring->closed.store(true, std::memory_order_release);
      drained += claim_ring(ring);
    }
    process_wide_barrier();
    for (RemoteRing* ring = closed_rings_; ring != nullptr; ring = ring->pool_next) {
      drained += claim_ring(ring);
    }
  }
  // Acq_rel: acquire takes the pending hand-back list (as reclaim does);
  // release publishes orphan_refs_ to releasers that will see the sentinel.
  BlockHeader* list = remote_head_.exchange(orphan_sentinel(), std::memory_order_acq_rel);
  BlockHeader* last = nullptr;
  drained += count_stack(list, &last);
  if (orphan_refs_.fetch_sub(drained + 1, std::memory_order_acq_rel) == drained + 1) delete this;
}

void PoolCore::release_orphaned(std::size_t count) noexcept {
  (void)remote_head_.load(std::memory_order_acquire);  // see close(): synchronise first
  if (orphan_refs_.fetch_sub(count, std::memory_order_acq_rel) == count) delete this;
}

RemoteRing* PoolCore::attach_ring() noexcept {
  if (ring_slots_ == 0 || !membarrier_ready()) return nullptr;
  // Acquire: a linked ring's fields are visible before we reuse it.
  RemoteRing* head = rings_.load(std::memory_order_acquire);
  if (head == ring_sentinel()) return nullptr;
  for (RemoteRing* ring = head; ring != nullptr; ring = ring->pool_next) {
    bool detached = false;
    // Acquire: pairs with the release store of the thread that detached, so
    // its last write to the cursor is ours now.
    if (!ring->attached.load(std::memory_order_relaxed) &&
        ring->attached.compare_exchange_strong(detached, true, std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
      // Relaxed: the core's reference keeps the ring alive meanwhile (the
      // core lives: the caller holds one of its blocks).
      ring->refs.fetch_add(1, std::memory_order_relaxed);
      return ring;
    }
  }
  auto* ring = new (std::nothrow) RemoteRing();
  if (ring == nullptr) return nullptr;
  // Line-aligned, so that every 32nd slot ends a line.
  const std::size_t bytes = round_up((ring_slots_ + 1) * sizeof(std::uint16_t), kPoolCacheLine);
  void* slots = std::aligned_alloc(kPoolCacheLine, bytes);
  if (slots == nullptr) {
    delete ring;
    return nullptr;
  }
  ring->slots = static_cast<std::atomic<std::uint16_t>*>(slots);
  for (std::uint32_t i = 0; i < ring_slots_; ++i)
    new (&ring->slots[i]) std::atomic<std::uint16_t>(free_mark(i));
  new (&ring->slots[ring_slots_]) std::atomic<std::uint16_t>(kRingClosed);  // wrap here
  ring->slot_count = ring_slots_;
  ring->cursor = ring->slots;
  g_live_rings.fetch_add(1, std::memory_order_relaxed);
  if (ring_slots_ >= kPrefetchMinSlots && write_prefetch_available())
    ring->prefetch_ahead = kPrefetchAhead;
  ring->pool_id = id_;
  ring->core = this;
  do {
    if (head == ring_sentinel()) {
      free_ring(ring);
      return nullptr;
    }
    ring->pool_next = head;
    // Release: the ring's fields before it is reachable from the list.
  } while (!rings_.compare_exchange_weak(head, ring, std::memory_order_release,
                                         std::memory_order_acquire));
  return ring;
}

namespace {

// The rings the calling thread is attached to, linked by thread_next. Its
// destructor, run among the thread's thread_local destructors, detaches them
// (a later thread may reuse them); releases after it, from later destructors,
// take the CAS stack.
struct ThreadRings {
  RemoteRing* head = nullptr;
  ~ThreadRings();
};
thread_local bool tls_rings_exited = false;

ThreadRings& thread_rings() noexcept {
  static thread_local ThreadRings rings;
  return rings;
}

// Takes `ring` out of this thread's cache, keeping its cursor in the ring.
void forget_cached(RemoteRing* ring) noexcept {
  RingCacheEntry& entry = tls_ring_cache[ring->pool_id % kRingCacheSlots];
  if (entry.ring == ring) {
    ring->cursor = entry.cursor;
    entry = RingCacheEntry{0, nullptr, nullptr};
  }
}

void unlink_from_thread(ThreadRings& rings, RemoteRing* ring) noexcept {
  for (RemoteRing** link = &rings.head; *link != nullptr; link = &(*link)->thread_next) {
    if (*link == ring) {
      *link = ring->thread_next;
      return;
    }
  }
}

// Detaches this thread from `ring`: claims and counts what is left if its pool
// is closed, else leaves the blocks for the owner to drain.
void detach_ring(RemoteRing* ring) noexcept {
  forget_cached(ring);
  // Acquire: pairs with close()'s release store; orphan_refs_ is set.
  if (ring->closed.load(std::memory_order_acquire)) {
    PoolCore* core = ring->core;  // alive while blocks it counts as out remain
    const std::uint32_t claimed = claim_ring(ring);
    ring->attached.store(false, std::memory_order_release);
    unref_ring(ring);  // our reference; the core's (if it lives) keeps the ring
    if (claimed != 0) core->release_orphaned(claimed);
    return;
  }
  // Release: our cursor before a reusing thread's CAS (acquire).
  ring->attached.store(false, std::memory_order_release);
  unref_ring(ring);
}

ThreadRings::~ThreadRings() {
  tls_rings_exited = true;
  while (head != nullptr) {
    RemoteRing* ring = head;
    head = ring->thread_next;
    detach_ring(ring);
  }
}

}  // namespace

void PoolCore::ring_closed(RemoteRing* ring) noexcept {
  unlink_from_thread(thread_rings(), ring);
  detach_ring(ring);
}

void PoolCore::ring_step(RingCacheEntry& entry, std::atomic<std::uint16_t>* slot) noexcept {
  RemoteRing* ring = entry.ring;
  std::atomic<std::uint16_t>* next = slot + 1;
  if (next == ring->slots + ring->slot_count) next = ring->slots;  // the end: wrap
  // Acquire: a kRingClosed read here sees orphan_refs_ set (close() stored it
  // before its exchanges), and a freed slot's drain happens before our store.
  const std::uint16_t seen = next->load(std::memory_order_acquire);
  if (seen == kRingClosed) {
    ring_closed(ring);  // takes our token too, unless close() already has
    return;
  }
  entry.cursor = next;
  if (is_ring_token(seen)) {
    // Full until the owner drains it: releases miss the cache meanwhile and
    // look at this slot again (release_remote()).
    entry.pool_id |= kRingFullBit;
    return;
  }
  if (seen == kRingFreeLineEnd && ring->prefetch_ahead != 0) {
    // Entering a line's last slot: fetch the line prefetch_ahead slots on.
    const auto at = static_cast<std::uint32_t>(next - ring->slots) + ring->prefetch_ahead;
    prefetch_for_write(&ring->slots[at & (ring->slot_count - 1)]);
  }
}

void PoolCore::ring_reopened(RingCacheEntry& entry, std::uint64_t pool_id) noexcept {
  entry.pool_id = pool_id;
  // The drain wrote the lines from the cursor's on: fetch them all back for
  // writing now, through the one prefetch_ahead slots on, so the transfers
  // overlap instead of stalling one store per line.
  const RemoteRing* ring = entry.ring;
  if (ring->prefetch_ahead == 0) return;
  const auto at = static_cast<std::uint32_t>(entry.cursor - ring->slots);
  const std::uint32_t mask = ring->slot_count - 1;
  for (std::uint32_t ahead = 0; ahead <= ring->prefetch_ahead; ahead += kRingSlotsPerLine) {
    prefetch_for_write(&ring->slots[(at + ahead) & mask]);
  }
}

void PoolCore::release_remote_slow(BlockHeader* block, PoolCore* pool) noexcept {
  if (tls_rings_exited || pool->ring_slots_ == 0) {
    pool->push_block(block);
    return;
  }
  ThreadRings& rings = thread_rings();
  RemoteRing* found = nullptr;
  // Evicted from the cache, or not attached yet. Rings of closed pools that
  // this thread meets on the way are detached (their pools are gone or going).
  for (RemoteRing** link = &rings.head; *link != nullptr;) {
    RemoteRing* ring = *link;
    if (ring->pool_id == pool->id_) {
      found = ring;
      link = &ring->thread_next;
    } else if (ring->closed.load(std::memory_order_relaxed)) {
      *link = ring->thread_next;
      detach_ring(ring);
    } else {
      link = &ring->thread_next;
    }
  }
  if (found == nullptr) {
    found = pool->attach_ring();
    if (found == nullptr) {
      pool->push_block(block);
      return;
    }
    found->thread_next = rings.head;
    rings.head = found;
  }
  RingCacheEntry& entry = tls_ring_cache[pool->id_ % kRingCacheSlots];
  if (entry.ring != nullptr) forget_cached(entry.ring);  // evicted: keeps its cursor
  // Cached as full, so that release_remote() looks at the cursor's slot first
  // (a token: still full). A kRingClosed slot is written anyway: the push then
  // meets kRingClosed in the next slot, or close() takes it.
  entry = RingCacheEntry{pool->id_ | kRingFullBit, found->cursor, found};
  release_remote(block, pool);
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

constexpr std::size_t kMaxRingSlots = 65536;
constexpr std::size_t kDefaultMaxRingSlots = 4096;

// Slots per remote ring: a power of two. By default enough for every block
// (a ring can never hold more than max_blocks), up to 4096 (8 KiB).
std::uint32_t ring_slots(const BufferPoolOptions& options) {
  // Ring slots hold 16-bit block tokens.
  if (options.max_blocks > detail::kMaxRingBlocks) return 0;
  std::size_t want = options.remote_ring_slots;
  if (want == 0) want = std::min(options.max_blocks, kDefaultMaxRingSlots);
  std::size_t slots = 1;
  while (slots < want) slots *= 2;
  return static_cast<std::uint32_t>(slots);
}

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
  if (options.remote_ring_slots > kMaxRingSlots) {
    throw std::invalid_argument("portico::BufferPool: remote_ring_slots " +
                                std::to_string(options.remote_ring_slots) + " must be at most " +
                                std::to_string(kMaxRingSlots));
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
                                  ring_slots(options)};
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
