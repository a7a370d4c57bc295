// portico/detail/mpmc_wait.hpp — the thin seam between MpmcQueue and the
// kernel: futex wait/wake on a 32-bit epoch, an eventfd for reactors, and the
// spin-then-yield backoff. Internal to <portico/mpmc_queue.hpp>.
// Thread-safety: every function is safe to call from any thread; none keeps
// state of its own.
#pragma once

#include <linux/futex.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <system_error>

namespace portico {
inline namespace v0 {
namespace detail {

// A futex operates on a plain 32-bit word; std::atomic<std::uint32_t> has that
// exact representation on every Linux ABI we build for.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// One spin-loop hint: lets the sibling hyper-thread run and saves power
// while another thread finishes the store we are waiting for.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

inline void yield_thread() noexcept {
  ::sched_yield();
}

// Sleeps while `*word == expected`, at most `timeout` (nullptr: no limit).
// Returns on a wake-up, a value mismatch, a signal or the timeout alike: the
// caller re-checks its own condition, so the reason does not matter and EINTR
// needs no special case.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const std::timespec* timeout) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
            timeout, nullptr, 0);
}

inline void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX,
            nullptr, nullptr, 0);
}

// Converts what is left until `deadline` into the relative timespec futex
// wants (FUTEX_WAIT measures it on CLOCK_MONOTONIC). Returns false once the
// deadline has passed.
template <class Clock, class Duration>
bool time_left(const std::chrono::time_point<Clock, Duration>& deadline,
               std::timespec& out) noexcept {
  const auto left = deadline - Clock::now();
  if (left <= Duration::zero()) return false;
  const auto ns = std::chrono::ceil<std::chrono::nanoseconds>(left).count();
  out.tv_sec = static_cast<std::time_t>(ns / 1'000'000'000);
  out.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return true;
}

// Non-blocking, close-on-exec eventfd; -1 and `error` set on failure.
inline int open_eventfd(std::error_code& error) noexcept {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) error = std::error_code(errno, std::system_category());
  return fd;
}

// Adds one to the eventfd counter. EAGAIN means the counter is saturated, so
// the fd is readable already; EINTR cannot happen on a non-blocking eventfd
// write. Either way the reader will wake, so the result is not needed.
inline void signal_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd, &one, sizeof one);
}

// Resets the eventfd counter to zero (EAGAIN: it was zero already).
inline void drain_eventfd(int fd) noexcept {
  std::uint64_t count = 0;
  [[maybe_unused]] const auto read_bytes = ::read(fd, &count, sizeof count);
}

inline void close_fd(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
