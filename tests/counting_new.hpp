// tests/counting_new.hpp — replaces every form of the global operator new
// and delete with ones that count allocations, for the tests that prove a
// path allocates nothing (portico::testing::allocations() before and after).
// Thread-safety: the counter is atomic; which threads count is per thread.
// REQUIRES: included by exactly one translation unit of a test binary (the
// replacement operators are definitions; a second one fails to link), and
// not under TSan, whose runtime defines operator new itself.
#pragma once

#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace portico::testing {

namespace counting_new_detail {
inline std::atomic<std::size_t> allocations{0};
inline std::atomic<bool> count_by_default{true};
inline std::atomic<bool> trace{false};
inline thread_local signed char thread_counts = -1;  // -1: count_by_default
inline thread_local bool in_trace = false;

inline void count() noexcept {
  const bool counts =
      thread_counts < 0 ? count_by_default.load(std::memory_order_relaxed) : thread_counts > 0;
  if (!counts) return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (trace.load(std::memory_order_relaxed) && !in_trace) {
    in_trace = true;  // backtrace() may allocate the first time
    void* frames[32];
    const int depth = ::backtrace(frames, 32);
    static constexpr char kMark[] = "---- allocation in the measured window\n";
    (void)!::write(2, kMark, sizeof kMark - 1);
    ::backtrace_symbols_fd(frames, depth, 2);
    in_trace = false;
  }
}

inline void* counted_alloc(std::size_t size) {
  count();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

inline void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  count();
  const auto alignment = static_cast<std::size_t>(align);
  const std::size_t rounded = (size + alignment - 1) / alignment * alignment;
  if (void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded)) return p;
  throw std::bad_alloc();
}
}  // namespace counting_new_detail

// Allocations counted so far, on every thread that counts.
inline std::size_t allocations() noexcept {
  return counting_new_detail::allocations.load(std::memory_order_relaxed);
}

// Whether the calling thread's allocations count from now on (a test's own
// client thread, which allocates freely, says false).
inline void count_allocations_on_this_thread(bool count) noexcept {
  counting_new_detail::thread_counts = count ? 1 : 0;
}

// Whether the allocations of threads that never called
// count_allocations_on_this_thread() count; true until told otherwise.
inline void count_allocations_by_default(bool count) noexcept {
  counting_new_detail::count_by_default.store(count, std::memory_order_relaxed);
}

// While on, every counted allocation writes a backtrace to stderr, to find
// the caller when a count is not zero.
inline void trace_allocations(bool on) noexcept {
  counting_new_detail::trace.store(on, std::memory_order_relaxed);
}

}  // namespace portico::testing

// Every replaceable form, nothrow and aligned ones too: the parser grows its
// field lists with the nothrow forms, and ASan pairs a new[] it served
// itself only with its own delete[].
void* operator new(std::size_t size) {
  return portico::testing::counting_new_detail::counted_alloc(size);
}
void* operator new[](std::size_t size) {
  return portico::testing::counting_new_detail::counted_alloc(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return portico::testing::counting_new_detail::counted_aligned_alloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return portico::testing::counting_new_detail::counted_aligned_alloc(size, align);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return portico::testing::counting_new_detail::counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return portico::testing::counting_new_detail::counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return portico::testing::counting_new_detail::counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return portico::testing::counting_new_detail::counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
