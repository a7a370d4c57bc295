// detail::QsbrDomain, the epoch bookkeeping behind Published<T>: compiled
// once here, shared by every T.
#include "portico/published.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

namespace {
constexpr std::uint64_t kOffline = ~std::uint64_t{0};
}

QsbrDomain::QsbrDomain(std::size_t max_readers)
    : slots_(std::make_unique<ReaderSlot[]>(max_readers == 0 ? 1 : max_readers)),
      slot_count_(max_readers == 0 ? 1 : max_readers) {
  for (std::size_t i = 0; i < slot_count_; ++i) {
    slots_[i].epoch.store(kOffline, std::memory_order_relaxed);
    slots_[i].in_use.store(false, std::memory_order_relaxed);
  }
}

QsbrDomain::~QsbrDomain() {
  for (const Retired& r : retired_) r.destroy(r.object);
}

std::size_t QsbrDomain::acquire_slot() noexcept {
  for (std::size_t i = 0; i < slot_count_; ++i) {
    bool expected = false;
    // Registration is rare and may use a read-modify-write; lookups never do.
    if (!slots_[i].in_use.load(std::memory_order_relaxed) &&
        slots_[i].in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      online(i);
      return i;
    }
  }
  return static_cast<std::size_t>(-1);
}

void QsbrDomain::release_slot(std::size_t slot) noexcept {
  // release: this reader's last snapshot accesses happen before a publisher
  // that reads kOffline frees anything.
  slots_[slot].epoch.store(kOffline, std::memory_order_release);
  slots_[slot].in_use.store(false, std::memory_order_release);
}

void QsbrDomain::quiescent(std::size_t slot) noexcept {
  // acquire: having seen epoch E, later loads of the snapshot pointer see the
  // snapshot published before E was (publish swaps, then bumps the epoch).
  const std::uint64_t now = global_epoch_.load(std::memory_order_acquire);
  std::atomic<std::uint64_t>& mine = slots_[slot].epoch;
  // Only this reader stores to its slot, so a relaxed read of it is exact;
  // skipping an unchanged store keeps the line clean in the publisher's cache.
  if (mine.load(std::memory_order_relaxed) != now) {
    // release: every access to older snapshots happens before the publisher's
    // acquire load of this value, hence before it frees them.
    mine.store(now, std::memory_order_release);
  }
}

void QsbrDomain::offline(std::size_t slot) noexcept {
  slots_[slot].epoch.store(kOffline, std::memory_order_release);
}

void QsbrDomain::online(std::size_t slot) noexcept {
  // seq_cst store + fence: Dekker-style handshake with reclaim(). Either the
  // publisher sees this slot online (and keeps what we may load next), or
  // our next load of the snapshot pointer sees the snapshot it swapped in.
  slots_[slot].epoch.store(global_epoch_.load(std::memory_order_seq_cst),
                           std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void QsbrDomain::retire(void* object, void (*destroy)(void*)) {
  // The swap happened before this bump (seq_cst RMW on the publisher's own
  // counter); a reader that observes the new epoch observes the new snapshot.
  const std::uint64_t epoch = global_epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  retired_.push_back({object, destroy, epoch});
}

std::size_t QsbrDomain::reclaim() noexcept {
  if (retired_.empty()) return 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::uint64_t oldest = kOffline;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    const std::uint64_t e = slots_[i].epoch.load(std::memory_order_seq_cst);
    if (e < oldest) oldest = e;
  }
  std::size_t kept = 0;
  for (const Retired& r : retired_) {
    if (r.epoch <= oldest) {
      r.destroy(r.object);
    } else {
      retired_[kept++] = r;
    }
  }
  retired_.resize(kept);
  return kept;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
