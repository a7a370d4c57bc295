// portico/mpmc_queue.hpp — MpmcQueue<T>: a bounded, lock-free, multi-producer
// multi-consumer ring queue (Vyukov's per-slot sequence design), with batch
// operations, blocking push/pop with deadlines (futex sleeps), and an eventfd
// that wakes a reactor when a queue it drains turns non-empty.
// Thread-safety: every member is safe to call concurrently from any number of
// threads, except construction, destruction and open_wakeup_fd().
// Lifetimes: the queue hands out no views; items are moved in and moved out.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <new>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "portico/detail/mpmc_wait.hpp"

namespace portico {
inline namespace v0 {

namespace detail {
struct MpmcStartForTest {
  std::uint64_t position;
};
}  // namespace detail

// A bounded MPMC ring of `T`.
//
// Guarantees: every item pushed is popped exactly once (or destroyed with the
// queue); items pushed by one thread are popped in the order that thread
// pushed them (per-producer FIFO). Nothing allocates after construction.
//
// try_* operations never block. A thread that claimed a slot and was then
// preempted before filling it makes consumers see the queue as empty at that
// slot until it runs again; the blocking operations therefore spin only
// briefly, then yield, then sleep on a futex.
//
// Exceptions: an item is built in, and moved out of, a slot that is already
// claimed, where a throw cannot undo the claim. If building throws, the slot
// is published as a hole that consumers skip, and the exception propagates;
// if moving an item out throws, that item is destroyed and the exception
// propagates. Types whose moves are noexcept (the common case) never see
// either. The batch operations require noexcept moves.
// REQUIRES: T is nothrow destructible.
template <class T>
class MpmcQueue {
  static_assert(std::is_nothrow_destructible_v<T>);

 public:
  using value_type = T;

  // The largest capacity accepted (a ring that large could not be allocated
  // anyway; the bound keeps the rounding below from overflowing).
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 40;

  // Builds a queue holding up to `capacity` items, rounded up to a power of
  // two (and to at least 2, the smallest ring the sequence scheme can tell
  // full from empty in). Allocates every slot now and never again.
  // Throws std::length_error if capacity > kMaxCapacity, std::bad_alloc if
  // the allocation fails.
  explicit MpmcQueue(std::size_t capacity) : MpmcQueue(capacity, detail::MpmcStartForTest{0}) {}

  // Test hook: starts the position counters at `start.position` so tests can
  // drive them across their 2^64 wrap. Behaves exactly like the constructor
  // above otherwise.
  MpmcQueue(std::size_t capacity, detail::MpmcStartForTest start);

  // Destroys the items still inside.
  // REQUIRES: no other thread is using the queue.
  ~MpmcQueue();

  MpmcQueue(const MpmcQueue&) = delete;
  MpmcQueue& operator=(const MpmcQueue&) = delete;

  // ---- non-blocking -------------------------------------------------------

  // Appends `value` if there is room. On false the queue is full and `value`
  // is untouched (an rvalue is moved from only on success).
  bool try_push(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>) {
    return try_emplace(value);
  }
  bool try_push(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) {
    return try_emplace(std::move(value));
  }

  // Constructs an item in place from `args` if there is room.
  // try_emplace and try_pop are declared inline: GCC otherwise kept them out
  // of line, and the call was a measurable part of a push+pop pair
  // (bench/README.md).
  template <class... Args>
  inline bool try_emplace(Args&&... args) noexcept(std::is_nothrow_constructible_v<T, Args&&...>);

  // Moves the oldest available item into `out`. On false the queue was empty
  // (or its next item is still being written) and `out` is untouched.
  inline bool try_pop(T& out) noexcept(std::is_nothrow_move_assignable_v<T>);

  // Moves up to `count` items from `items[0..count)` into the queue, claiming
  // the whole run of slots with one atomic operation. Returns how many went
  // in, k: items[0..k) are moved from, the rest untouched. 0 when full.
  // REQUIRES: T is nothrow move-constructible.
  std::size_t try_push_n(T* items, std::size_t count) noexcept;

  // Moves up to `max` items into `out[0..max)`, claiming the whole run of
  // slots with one atomic operation. Returns how many were moved out.
  // REQUIRES: T is nothrow move-assignable; out[0..max) are live objects.
  std::size_t try_pop_n(T* out, std::size_t max) noexcept;

  // ---- blocking -----------------------------------------------------------
  // Each spins briefly, then yields, then sleeps until the other side makes
  // progress. The _until/_for forms give up at the deadline and return false,
  // leaving `value`/`out` untouched.

  void push(const T& value) { push(T(value)); }
  void push(T&& value) { (void)push_impl(std::move(value), kNoDeadline); }
  void pop(T& out) { (void)pop_impl(out, kNoDeadline); }

  template <class Clock, class Duration>
  bool push_until(const T& value, const std::chrono::time_point<Clock, Duration>& deadline) {
    // Copied once here rather than on every retry.
    return push_impl(T(value), &deadline);
  }
  template <class Clock, class Duration>
  bool push_until(T&& value, const std::chrono::time_point<Clock, Duration>& deadline) {
    return push_impl(std::move(value), &deadline);
  }
  template <class Clock, class Duration>
  bool pop_until(T& out, const std::chrono::time_point<Clock, Duration>& deadline) {
    return pop_impl(out, &deadline);
  }
  template <class Rep, class Period>
  bool push_for(const T& value, const std::chrono::duration<Rep, Period>& timeout) {
    return push_until(value, std::chrono::steady_clock::now() + timeout);
  }
  template <class Rep, class Period>
  bool push_for(T&& value, const std::chrono::duration<Rep, Period>& timeout) {
    return push_until(std::move(value), std::chrono::steady_clock::now() + timeout);
  }
  template <class Rep, class Period>
  bool pop_for(T& out, const std::chrono::duration<Rep, Period>& timeout) {
    return pop_until(out, std::chrono::steady_clock::now() + timeout);
  }

  // ---- reactor wake-up ------------------------------------------------------
  // A reactor that drains this queue from its event loop:
  //   1. once, before sharing the queue: open_wakeup_fd(), add wakeup_fd() to
  //      epoll for EPOLLIN;
  //   2. each time it finds the queue empty: if arm_wakeup() returns false,
  //      drain again (items are there or about to be); if true, go to epoll;
  //   3. when the fd is readable: consume_wakeup(), then drain.
  // A push that lands after a successful arm_wakeup() makes the fd readable.

  // Creates the eventfd. REQUIRES: called once, before other threads use the
  // queue.
  std::error_code open_wakeup_fd() noexcept;
  // The eventfd, or -1 if open_wakeup_fd() was not called (or failed).
  int wakeup_fd() const noexcept { return wakeup_fd_; }
  // Asks for the fd to be signalled by the next push. Returns true if the
  // queue was empty with no push in flight, so waiting on the fd is safe;
  // false if the caller must drain (and, if it found nothing, yield) first.
  // REQUIRES: wakeup_fd() >= 0.
  bool arm_wakeup() noexcept;
  // Resets the fd's readiness. REQUIRES: wakeup_fd() >= 0.
  void consume_wakeup() noexcept { detail::drain_eventfd(wakeup_fd_); }

  // ---- observers ------------------------------------------------------------

  std::size_t capacity() const noexcept { return mask_ + 1; }
  // Positions claimed by producers and not yet claimed by consumers (holes
  // left by a throwing push included), clamped to [0, capacity()]; exact only
  // when no other thread is using the queue.
  std::size_t size_approx() const noexcept;

 private:
  // Positions advance in steps of 2 so that bit 0 of head_ and tail_ can carry
  // "someone sleeps waiting for this counter to move" (kWaitFlag). A sleeper
  // sets it with fetch_or; the next thread whose compare-exchange moves that
  // counter sees it in the value it replaced, clears it in the same operation
  // and wakes the sleepers. The fast paths thus pay no fence and no extra load
  // for the blocking and eventfd support. Sequence numbers are in the same
  // units, and all comparisons are differences read as signed, so the
  // counters may wrap around 2^64.
  static constexpr std::uint64_t kWaitFlag = 1;
  // Bit 0 of a slot's sequence number: "published, but holds no item" (its
  // construction threw). Sequence numbers are otherwise always even.
  static constexpr std::uint64_t kHole = 1;
  static constexpr std::uint64_t kStep = 2;
  // 64 bytes is the line size of every x86-64 and most aarch64 parts; the
  // counters are 128 apart because adjacent-line prefetchers pull lines in
  // pairs.
  static constexpr std::size_t kCacheLine = 64;
  static constexpr std::size_t kCounterAlign = 2 * kCacheLine;
  static constexpr int kSpinTries = 64;
  static constexpr int kYieldTries = 16;

  // Sequence number first, payload after it, no padding per slot: several
  // slots share a line, faster than one slot per line (bench/README.md)
  // because the counters, not the slots, are what producers and consumers
  // fight over.
  struct Slot {
    std::atomic<std::uint64_t> seq;
    alignas(T) unsigned char storage[sizeof(T)];

    T* item() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  using NoDeadline = std::chrono::time_point<std::chrono::steady_clock>;
  static constexpr const NoDeadline* kNoDeadline = nullptr;

  static std::int64_t distance(std::uint64_t from, std::uint64_t to) noexcept {
    return static_cast<std::int64_t>(to - from);
  }
  Slot& slot_at(std::uint64_t position) noexcept {
    return slots_[static_cast<std::size_t>(position / kStep) & mask_];
  }
  std::uint64_t lap() const noexcept { return (mask_ + 1) * kStep; }

  // Ends a consumer's hold on a claimed slot when T's move assignment may
  // throw: destroys its item (if it has one), hands the slot to the next lap's
  // producer and wakes sleeping producers if the claim saw the flag. A scope
  // guard, so an item whose move assignment throws is still released.
  struct SlotRelease {
    MpmcQueue& queue;
    Slot& slot;
    std::uint64_t position;
    bool has_item;
    bool wake;
    ~SlotRelease() {
      if (has_item) slot.item()->~T();
      // release: the next lap's producer may build here once it sees this.
      slot.seq.store(position + queue.lap(), std::memory_order_release);
      if (wake) queue.wake_producers();
    }
  };
  static std::size_t round_capacity(std::size_t capacity);

  template <class U, class Clock, class Duration>
  bool push_impl(U&& value, const std::chrono::time_point<Clock, Duration>* deadline);
  template <class Clock, class Duration>
  bool pop_impl(T& out, const std::chrono::time_point<Clock, Duration>* deadline);
  template <class Clock, class Duration>
  static void sleep_on(std::atomic<std::uint32_t>& epoch, std::uint32_t seen,
                       const std::chrono::time_point<Clock, Duration>* deadline);

  // Slow paths, taken only when the claiming compare-exchange saw kWaitFlag;
  // kept out of line so the fast paths stay small enough to inline.
  [[gnu::noinline, gnu::cold]] void wake_consumers() noexcept;
  [[gnu::noinline, gnu::cold]] void wake_producers() noexcept;

  // Read-only after construction, shared by both sides.
  alignas(kCounterAlign) Slot* slots_;
  std::size_t mask_;
  std::uint64_t start_;

  // Written by producers: the next position to claim.
  alignas(kCounterAlign) std::atomic<std::uint64_t> tail_;
  // Written by consumers: the next position to claim.
  alignas(kCounterAlign) std::atomic<std::uint64_t> head_;

  // Touched only on the sleeping paths.
  alignas(kCounterAlign) std::atomic<std::uint32_t> items_epoch_{0};
  std::atomic<std::uint32_t> items_sleepers_{0};
  std::atomic<std::uint32_t> space_epoch_{0};
  std::atomic<std::uint32_t> space_sleepers_{0};
  std::atomic<bool> wakeup_armed_{false};
  int wakeup_fd_ = -1;
};

// ---- implementation ---------------------------------------------------------

template <class T>
std::size_t MpmcQueue<T>::round_capacity(std::size_t capacity) {
  if (capacity > kMaxCapacity) throw std::length_error("portico::MpmcQueue: capacity above 2^40");
  std::size_t rounded = 2;
  while (rounded < capacity) rounded *= 2;
  return rounded;
}

template <class T>
MpmcQueue<T>::MpmcQueue(std::size_t capacity, detail::MpmcStartForTest start)
    : mask_(round_capacity(capacity) - 1), start_(start.position * kStep) {
  const std::size_t slot_count = mask_ + 1;
  // Aligned, and a whole number of lines, so no unrelated heap object shares
  // a line with the slots.
  const std::size_t bytes = (slot_count * sizeof(Slot) + kCacheLine - 1) / kCacheLine * kCacheLine;
  slots_ = static_cast<Slot*>(::operator new (bytes, std::align_val_t{kCacheLine}));
  for (std::size_t i = 0; i < slot_count; ++i) ::new (static_cast<void*>(slots_ + i)) Slot;
  // Slot k is first free for the position p in [start, start + capacity)
  // that maps to it.
  for (std::size_t i = 0; i < slot_count; ++i) {
    const std::uint64_t position = start_ + i * kStep;
    slot_at(position).seq.store(position, std::memory_order_relaxed);
  }
  tail_.store(start_, std::memory_order_relaxed);
  head_.store(start_, std::memory_order_relaxed);
}

template <class T>
MpmcQueue<T>::~MpmcQueue() {
  const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~kWaitFlag;
  for (std::uint64_t pos = head_.load(std::memory_order_acquire) & ~kWaitFlag; pos != tail;
       pos += kStep) {
    Slot& slot = slot_at(pos);
    if ((slot.seq.load(std::memory_order_relaxed) & kHole) == 0) slot.item()->~T();
  }
  // Unsized: clang declares sized deallocation only with -fsized-deallocation.
  ::operator delete (slots_, std::align_val_t{kCacheLine});
  detail::close_fd(wakeup_fd_);
}

template <class T>
template <class... Args>
bool MpmcQueue<T>::try_emplace(Args&&... args) noexcept(
    std::is_nothrow_constructible_v<T, Args&&...>) {
  std::uint64_t raw = tail_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t pos = raw & ~kWaitFlag;
    Slot& slot = slot_at(pos);
    // acquire: the consumer that emptied this slot a lap ago released it;
    // its move-out and destruction happen before our construction.
    const std::int64_t diff = distance(pos, slot.seq.load(std::memory_order_acquire));
    if (diff == 0) {
      // relaxed: the slot's sequence number, not tail_, publishes the item.
      if (tail_.compare_exchange_weak(raw, pos + kStep, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        if constexpr (std::is_nothrow_constructible_v<T, Args&&...>) {
          ::new (static_cast<void*>(slot.storage)) T(std::forward<Args>(args)...);
        } else {
          try {
            ::new (static_cast<void*>(slot.storage)) T(std::forward<Args>(args)...);
          } catch (...) {
            // The claim cannot be taken back; publish a hole so consumers
            // step over this position instead of waiting on it forever.
            slot.seq.store((pos + kStep) | kHole, std::memory_order_release);
            if (raw & kWaitFlag) wake_consumers();
            throw;
          }
        }
        slot.seq.store(pos + kStep, std::memory_order_release);
        if (raw & kWaitFlag) wake_consumers();
        return true;
      }
    } else if (diff < 0) {
      return false;  // the slot still holds the item from a lap ago: full
    } else {
      raw = tail_.load(std::memory_order_relaxed);  // another producer took pos
    }
  }
}

template <class T>
bool MpmcQueue<T>::try_pop(T& out) noexcept(std::is_nothrow_move_assignable_v<T>) {
  std::uint64_t raw = head_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t pos = raw & ~kWaitFlag;
    Slot& slot = slot_at(pos);
    // acquire: pairs with the producer's release, so the item is fully built.
    const std::uint64_t seq = slot.seq.load(std::memory_order_acquire);
    const std::int64_t diff = distance(pos + kStep, seq & ~kHole);
    if (diff == 0) {
      if (head_.compare_exchange_weak(raw, pos + kStep, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        const bool hole = (seq & kHole) != 0;
        if constexpr (std::is_nothrow_move_assignable_v<T>) {
          if (!hole) {
            T* item = slot.item();
            out = std::move(*item);
            item->~T();
          }
          // release: the next lap's producer may build here once it sees this.
          slot.seq.store(pos + lap(), std::memory_order_release);
          if (raw & kWaitFlag) wake_producers();
          if (!hole) return true;
        } else {
          SlotRelease release{*this, slot, pos, !hole, (raw & kWaitFlag) != 0};
          if (!hole) {
            out = std::move(*slot.item());
            return true;
          }
        }
        raw = head_.load(std::memory_order_relaxed);  // skipped a hole
      }
    } else if (diff < 0) {
      return false;  // not yet written: empty (or its producer is mid-push)
    } else {
      raw = head_.load(std::memory_order_relaxed);  // another consumer took pos
    }
  }
}

template <class T>
std::size_t MpmcQueue<T>::try_push_n(T* items, std::size_t count) noexcept {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "try_push_n moves items into claimed slots: T's move constructor must be "
                "noexcept");
  if (count > mask_ + 1) count = mask_ + 1;
  if (count == 0) return 0;
  std::uint64_t raw = tail_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t pos = raw & ~kWaitFlag;
    // Count the free slots in a row from pos. A slot seen free for its
    // position stays free until the producer that claims that position
    // fills it, so if tail_ still equals raw below they are all ours.
    std::size_t run = 0;
    while (run < count) {
      const std::uint64_t want = pos + run * kStep;
      if (slot_at(want).seq.load(std::memory_order_acquire) != want) break;
      ++run;
    }
    if (run == 0) {
      if (distance(pos, slot_at(pos).seq.load(std::memory_order_acquire)) < 0) return 0;
      raw = tail_.load(std::memory_order_relaxed);
      continue;
    }
    if (tail_.compare_exchange_weak(raw, pos + run * kStep, std::memory_order_relaxed,
                                    std::memory_order_relaxed)) {
      for (std::size_t i = 0; i < run; ++i) {
        const std::uint64_t at = pos + i * kStep;
        Slot& slot = slot_at(at);
        ::new (static_cast<void*>(slot.storage)) T(std::move(items[i]));
        slot.seq.store(at + kStep, std::memory_order_release);
      }
      if (raw & kWaitFlag) wake_consumers();
      return run;
    }
  }
}

template <class T>
std::size_t MpmcQueue<T>::try_pop_n(T* out, std::size_t max) noexcept {
  static_assert(std::is_nothrow_move_assignable_v<T>,
                "try_pop_n moves items out of claimed slots: T's move assignment must be "
                "noexcept");
  if (max > mask_ + 1) max = mask_ + 1;
  if (max == 0) return 0;
  std::uint64_t raw = head_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t pos = raw & ~kWaitFlag;
    std::size_t run = 0;
    while (run < max) {
      const std::uint64_t want = pos + run * kStep;
      if ((slot_at(want).seq.load(std::memory_order_acquire) & ~kHole) != want + kStep) break;
      ++run;
    }
    if (run == 0) {
      const std::uint64_t seq = slot_at(pos).seq.load(std::memory_order_acquire) & ~kHole;
      if (distance(pos + kStep, seq) < 0) return 0;
      raw = head_.load(std::memory_order_relaxed);
      continue;
    }
    if (head_.compare_exchange_weak(raw, pos + run * kStep, std::memory_order_relaxed,
                                    std::memory_order_relaxed)) {
      std::size_t delivered = 0;
      for (std::size_t i = 0; i < run; ++i) {
        const std::uint64_t at = pos + i * kStep;
        Slot& slot = slot_at(at);
        // The acquire loads of the scan above ordered the items' writes.
        const bool hole = (slot.seq.load(std::memory_order_relaxed) & kHole) != 0;
        if (!hole) {
          T* item = slot.item();
          out[delivered++] = std::move(*item);
          item->~T();
        }
        slot.seq.store(at + lap(), std::memory_order_release);
      }
      if (raw & kWaitFlag) wake_producers();
      if (delivered != 0) return delivered;
      raw = head_.load(std::memory_order_relaxed);  // the run was all holes
    }
  }
}

template <class T>
std::size_t MpmcQueue<T>::size_approx() const noexcept {
  const std::uint64_t head = head_.load(std::memory_order_acquire) & ~kWaitFlag;
  const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~kWaitFlag;
  const std::int64_t items = distance(head, tail) / static_cast<std::int64_t>(kStep);
  if (items <= 0) return 0;
  return static_cast<std::size_t>(items) > capacity() ? capacity()
                                                      : static_cast<std::size_t>(items);
}

template <class T>
void MpmcQueue<T>::wake_consumers() noexcept {
  // The claiming compare-exchange was relaxed. tail_ changes only by
  // read-modify-writes, so this acquire load reads from the release sequence
  // of the sleeper's fetch_or and synchronizes with it: the sleeper count and
  // armed flag it wrote before are visible, and its earlier read of the epoch
  // cannot see the increment below. (A fence would do the same, but TSan does
  // not model fences.)
  (void)tail_.load(std::memory_order_acquire);
  items_epoch_.fetch_add(1, std::memory_order_release);
  if (items_sleepers_.load(std::memory_order_relaxed) != 0) detail::futex_wake_all(items_epoch_);
  if (wakeup_armed_.load(std::memory_order_relaxed) &&
      wakeup_armed_.exchange(false, std::memory_order_relaxed)) {
    detail::signal_eventfd(wakeup_fd_);
  }
}

template <class T>
void MpmcQueue<T>::wake_producers() noexcept {
  (void)head_.load(std::memory_order_acquire);  // as in wake_consumers
  space_epoch_.fetch_add(1, std::memory_order_release);
  if (space_sleepers_.load(std::memory_order_relaxed) != 0) detail::futex_wake_all(space_epoch_);
}

template <class T>
template <class Clock, class Duration>
void MpmcQueue<T>::sleep_on(std::atomic<std::uint32_t>& epoch, std::uint32_t seen,
                            const std::chrono::time_point<Clock, Duration>* deadline) {
  if (deadline == nullptr) {
    detail::futex_wait(epoch, seen, nullptr);
    return;
  }
  std::timespec left{};
  if (detail::time_left(*deadline, left)) detail::futex_wait(epoch, seen, &left);
}

template <class T>
template <class U, class Clock, class Duration>
bool MpmcQueue<T>::push_impl(U&& value, const std::chrono::time_point<Clock, Duration>* deadline) {
  for (int i = 0; i < kSpinTries; ++i) {
    if (try_push(std::forward<U>(value))) return true;
    detail::cpu_relax();
  }
  // A full ring often means a consumer holding a claimed slot was preempted;
  // yielding lets it run on a machine with fewer cores than threads.
  for (int i = 0; i < kYieldTries; ++i) {
    if (try_push(std::forward<U>(value))) return true;
    detail::yield_thread();
  }
  for (;;) {
    if (try_push(std::forward<U>(value))) return true;
    if (deadline != nullptr && Clock::now() >= *deadline) return false;
    // Order: read the epoch, announce ourselves, raise the flag, then check
    // that the ring is still full with no pop in flight. A consumer whose
    // claim comes after the flag sees it and bumps the epoch, so the futex
    // call returns at once instead of missing that wake-up.
    const std::uint32_t seen = space_epoch_.load(std::memory_order_relaxed);
    space_sleepers_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t head = head_.fetch_or(kWaitFlag, std::memory_order_acq_rel) & ~kWaitFlag;
    const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~kWaitFlag;
    if (distance(head, tail) >= static_cast<std::int64_t>((mask_ + 1) * kStep)) {
      sleep_on(space_epoch_, seen, deadline);
    } else {
      detail::yield_thread();  // a pop claimed before the flag is finishing
    }
    space_sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }
}

template <class T>
template <class Clock, class Duration>
bool MpmcQueue<T>::pop_impl(T& out, const std::chrono::time_point<Clock, Duration>* deadline) {
  for (int i = 0; i < kSpinTries; ++i) {
    if (try_pop(out)) return true;
    detail::cpu_relax();
  }
  for (int i = 0; i < kYieldTries; ++i) {
    if (try_pop(out)) return true;
    detail::yield_thread();
  }
  for (;;) {
    if (try_pop(out)) return true;
    if (deadline != nullptr && Clock::now() >= *deadline) return false;
    // Mirror of push_impl: sleep only if every position claimed by producers
    // before the flag went up has been claimed by consumers too.
    const std::uint32_t seen = items_epoch_.load(std::memory_order_relaxed);
    items_sleepers_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t tail = tail_.fetch_or(kWaitFlag, std::memory_order_acq_rel) & ~kWaitFlag;
    const std::uint64_t head = head_.load(std::memory_order_acquire) & ~kWaitFlag;
    if (distance(tail, head) >= 0) {
      sleep_on(items_epoch_, seen, deadline);
    } else {
      detail::yield_thread();  // a push claimed before the flag is finishing
    }
    items_sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }
}

template <class T>
std::error_code MpmcQueue<T>::open_wakeup_fd() noexcept {
  std::error_code error;
  if (wakeup_fd_ < 0) wakeup_fd_ = detail::open_eventfd(error);
  return error;
}

template <class T>
bool MpmcQueue<T>::arm_wakeup() noexcept {
  wakeup_armed_.store(true, std::memory_order_relaxed);
  const std::uint64_t tail = tail_.fetch_or(kWaitFlag, std::memory_order_acq_rel) & ~kWaitFlag;
  const std::uint64_t head = head_.load(std::memory_order_acquire) & ~kWaitFlag;
  return distance(tail, head) >= 0;
}

}  // namespace v0
}  // namespace portico
