// portico/published.hpp — Published<T>: a snapshot of T that one thread
// replaces while many others read it (route tables, configuration, health),
// with quiescent-state-based reclamation (detail::QsbrDomain).
// Thread-safety: register_reader() is thread-safe; each Reader belongs to one
// thread; publish() and reclaim() run on one thread at a time.
// Lifetimes: the reference Reader::snapshot() returns stays valid until that
// reader's next quiescent() or offline().
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace portico {
inline namespace v0 {

namespace detail {

// Epoch bookkeeping for Published<T> (QSBR), type-erased so every T shares
// one compiled copy (src/router/published.cpp).
class QsbrDomain {
 public:
  explicit QsbrDomain(std::size_t max_readers);
  ~QsbrDomain();
  QsbrDomain(const QsbrDomain&) = delete;
  QsbrDomain& operator=(const QsbrDomain&) = delete;

  // Reader side. Each reader owns one slot; it only ever stores to it.
  std::size_t acquire_slot() noexcept;  // npos when all are taken
  void release_slot(std::size_t slot) noexcept;
  void quiescent(std::size_t slot) noexcept;
  void offline(std::size_t slot) noexcept;
  void online(std::size_t slot) noexcept;

  // Publisher side (one thread).
  void retire(void* object, void (*destroy)(void*));
  std::size_t reclaim() noexcept;
  std::size_t pending() const noexcept { return retired_.size(); }

 private:
  static constexpr std::size_t kCacheLine = 64;
  struct alignas(kCacheLine) ReaderSlot {
    // Last global epoch this reader announced; kOffline while it holds no
    // snapshot (or no reader owns the slot).
    std::atomic<std::uint64_t> epoch;
    std::atomic<bool> in_use;  // a reader owns the slot
  };
  static_assert(sizeof(ReaderSlot) == kCacheLine);
  struct Retired {
    void* object;
    void (*destroy)(void*);
    std::uint64_t epoch;
  };

  alignas(kCacheLine) std::atomic<std::uint64_t> global_epoch_{1};
  std::unique_ptr<ReaderSlot[]> slots_;
  std::size_t slot_count_;
  std::vector<Retired> retired_;
};

}  // namespace detail

// A T that can be replaced while other threads read it.
//
// Threads that read register a Reader each. A reader reads
// `reader.snapshot()` freely and calls `reader.quiescent()` at points where
// it holds no reference into any snapshot (a reactor: once per loop
// iteration), or brackets idle time with offline()/online(). One thread at a
// time publishes new snapshots; the one it replaces is freed by a later
// publish() or reclaim() once every online reader has passed a quiescent
// point.
//
// Readers never block and do no atomic read-modify-write on shared memory:
// snapshot() is one acquire load; quiescent() one load of the global epoch
// and a store to the reader's own cache line.
//
// A snapshot is handed in by value (moved into a heap copy) or as a
// std::unique_ptr<T> (for a T that cannot or should not move).
template <class T>
class Published {
 public:
  explicit Published(T initial, std::size_t max_readers = 64) requires std::move_constructible<T>
      : Published(std::make_unique<T>(std::move(initial)), max_readers) {}
  // REQUIRES: initial is not null.
  explicit Published(std::unique_ptr<T> initial, std::size_t max_readers = 64)
      : domain_(max_readers), current_(initial.release()) {}
  // REQUIRES: every Reader is gone.
  ~Published() {
    (void)domain_.reclaim();
    delete current_.load(std::memory_order_relaxed);
  }
  Published(const Published&) = delete;
  Published& operator=(const Published&) = delete;

  class Reader {
   public:
    Reader(Reader&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), slot_(other.slot_) {}
    Reader& operator=(Reader&&) = delete;
    ~Reader() {
      if (owner_ != nullptr) owner_->domain_.release_slot(slot_);
    }

    // The current snapshot. The reference stays valid until this reader's
    // next quiescent() or offline().
    // REQUIRES: the reader is online.
    const T& snapshot() const noexcept {
      // acquire: pairs with publish()'s release; the snapshot's contents
      // are visible before its address is.
      return *owner_->current_.load(std::memory_order_acquire);
    }
    // Announces that this reader holds no reference into any snapshot.
    void quiescent() noexcept { owner_->domain_.quiescent(slot_); }
    // Leaves / re-enters the set of readers reclamation waits for.
    void offline() noexcept { owner_->domain_.offline(slot_); }
    void online() noexcept { owner_->domain_.online(slot_); }

   private:
    friend class Published;
    Reader(Published* owner, std::size_t slot) noexcept : owner_(owner), slot_(slot) {}
    Published* owner_;
    std::size_t slot_;
  };

  // A new online reader, or nullopt when max_readers are registered.
  // Thread-safe.
  std::optional<Reader> register_reader() noexcept {
    const std::size_t slot = domain_.acquire_slot();
    if (slot == static_cast<std::size_t>(-1)) return std::nullopt;
    return Reader(this, slot);
  }

  // Replaces the current snapshot. The old one is retired and freed once no
  // reader can hold it. REQUIRES: called by one thread at a time.
  void publish(T value) requires std::move_constructible<T> {
    publish(std::make_unique<T>(std::move(value)));
  }
  // REQUIRES: value is not null; called by one thread at a time.
  void publish(std::unique_ptr<T> value) {
    // acq_rel: release so readers that load the new pointer see it fully
    // built; acquire so the old one's construction happens before its delete.
    T* old = current_.exchange(value.release(), std::memory_order_acq_rel);
    domain_.retire(old, [](void* p) { delete static_cast<T*>(p); });
    (void)domain_.reclaim();
  }
  // Frees retired snapshots no reader can hold; returns how many still wait.
  // REQUIRES: called by the publishing thread.
  std::size_t reclaim() noexcept { return domain_.reclaim(); }
  std::size_t pending_reclaim() const noexcept { return domain_.pending(); }

 private:
  detail::QsbrDomain domain_;
  std::atomic<T*> current_;
};

}  // namespace v0
}  // namespace portico
