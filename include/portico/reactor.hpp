// portico/reactor.hpp — Reactor: one epoll loop on one thread, with fd
// watches, a hashed timer wheel (O(1) arm/cancel), and a bounded MPMC task
// queue through which other threads post work (woken by an eventfd).
// Thread-safety: a Reactor belongs to the thread that runs it (the "loop
// thread"). post(), try_post(), stop(), in_loop_thread() and stats() are safe
// from any thread; everything else only on the loop thread, or before the loop
// first runs.
// Lifetimes: the reactor keeps raw pointers to IoHandlers and Timers; they must
// outlive their registration (remove()/cancel() before destroying them — a
// Timer's destructor cancels itself).
//
// One loop iteration, in this fixed order (run_once()):
//   1. refresh now();
//   2. epoll_wait, blocking until the nearest timer when no task is pending and
//      stop() was not called (never longer than max_wait);
//   3. refresh now(); dispatch every ready fd to its IoHandler;
//   4. run the expired timers;
//   5. run posted tasks (a bounded batch, so a flood cannot starve I/O);
//   6. run the iteration hooks (add_iteration_hook), e.g. quiescent points.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "portico/detail/unique_function.hpp"
#include "portico/mpmc_queue.hpp"

namespace portico {
inline namespace v0 {

class Reactor;

// Implemented by whatever owns a watched fd (a connection, a listener, ...).
class IoHandler {
 public:
  // `events` are epoll bits (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
  // Called on the loop thread. May call Reactor::remove() on its own fd, and
  // may destroy itself after doing so.
  virtual void on_io(std::uint32_t events) noexcept = 0;

 protected:
  ~IoHandler() = default;
};

// An intrusive timer: embed it in the object it times. Arming costs O(1) and
// allocates nothing; re-arming an armed timer moves its deadline. The callback
// runs on the loop thread, once per expiry, after which the timer is disarmed
// (it may re-arm itself from the callback).
class Timer {
 public:
  using Callback = void (*)(Timer& timer, void* context) noexcept;

  Timer(Callback callback, void* context) noexcept : callback_(callback), context_(context) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  // Cancels the timer if armed. REQUIRES: on the loop thread of its reactor.
  ~Timer();

  bool armed() const noexcept { return reactor_ != nullptr; }
  void* context() const noexcept { return context_; }

 private:
  friend class Reactor;
  friend struct TimerWheelAccess;
  Callback callback_;
  void* context_;
  Reactor* reactor_ = nullptr;  // set while armed
  Timer* prev_ = nullptr;       // wheel slot list links
  Timer* next_ = nullptr;
  std::uint64_t expiry_tick_ = 0;
};

struct ReactorOptions {
  // Most events taken from one epoll_wait.
  std::size_t max_events = 256;
  // Bound of the cross-thread task queue (rounded up to a power of two).
  std::size_t task_queue_capacity = 4096;
  // Most posted tasks run per iteration before I/O is polled again.
  std::size_t task_batch = 256;
};

struct ReactorStats {
  std::uint64_t iterations = 0;
  std::uint64_t io_events = 0;
  std::uint64_t timers_fired = 0;
  std::uint64_t tasks_run = 0;
  std::uint64_t timer_arms = 0;  // arm() calls (a deadline moved counts too)
  std::size_t timers_armed = 0;
  std::size_t fds_watched = 0;
};

class Reactor {
 public:
  using Task = detail::UniqueFunction<void()>;
  using Clock = std::chrono::steady_clock;
  // Timer resolution: deadlines are rounded up to whole ticks.
  static constexpr std::chrono::milliseconds kTimerTick{1};

  // Opens the epoll instance and the wake-up eventfd. Throws std::system_error
  // when either cannot be opened (e.g. EMFILE).
  explicit Reactor(const ReactorOptions& options = {});
  // Runs no task still queued (they are destroyed). REQUIRES: the loop is not
  // running; every Timer armed on it was cancelled or destroyed.
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // ---- fds (loop thread) ----------------------------------------------------
  // Watches `fd` for `events` (epoll bits; add EPOLLET for edge-triggered).
  // REQUIRES: handler outlives the watch.
  std::error_code add(int fd, std::uint32_t events, IoHandler* handler) noexcept;
  std::error_code modify(int fd, std::uint32_t events, IoHandler* handler) noexcept;
  // Stops watching fd (before closing it). Events already taken from epoll for
  // this fd in the current iteration are not delivered after remove().
  std::error_code remove(int fd) noexcept;

  // ---- timers (loop thread) -------------------------------------------------
  // Arms (or re-arms) `timer` to fire `delay` from now() (rounded up to a tick;
  // zero fires on the next iteration). REQUIRES: the timer is not armed on
  // another reactor.
  void arm(Timer& timer, std::chrono::milliseconds delay) noexcept;
  void cancel(Timer& timer) noexcept;

  // The loop's clock, read once per iteration (step 1 and 3 above): cheap to
  // call from handlers.
  Clock::time_point now() const noexcept { return now_; }

  // ---- cross-thread (any thread) --------------------------------------------
  // Queues `task` to run on the loop thread. False when the queue is full (the
  // task is not run, and is destroyed) or the reactor has stopped for good.
  bool try_post(Task task) noexcept;
  // Queues `task` and never drops it: from another thread it waits for space;
  // on the loop thread itself a full queue spills into a local list that the
  // loop drains too. False only when the reactor was destroyed or stopped for
  // good (the task is destroyed). This reactor never stops for good (stop()
  // can be undone by restart()), so post() always returns true; a post from
  // another thread to a reactor whose loop never drains blocks.
  bool post(Task task) noexcept;
  // Makes run() return after its current iteration. Idempotent.
  void stop() noexcept;
  bool stop_requested() const noexcept { return stop_.load(std::memory_order_acquire); }

  // ---- the loop (loop thread) -----------------------------------------------
  // Makes the calling thread the loop thread and runs iterations until stop().
  // A stop() that came before run() makes it return after one iteration
  // (restart() clears it). Handlers, timers and tasks must not throw.
  void run();
  // One iteration, waiting at most `max_wait` for events. Binds the loop thread
  // like run(). Returns false once stop() was called.
  bool run_once(std::chrono::milliseconds max_wait);
  // Clears a previous stop() so run() can be called again.
  void restart() noexcept { stop_.store(false, std::memory_order_release); }

  // A function run at the end of every iteration (step 6). Loop thread or
  // before running. Hooks run in the order added. REQUIRES: not called from
  // inside a hook.
  void add_iteration_hook(Task hook);

  bool in_loop_thread() const noexcept {
    return loop_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  ReactorStats stats() const noexcept;
  int epoll_fd() const noexcept { return epoll_fd_; }

 private:
  friend class Timer;
  struct Wheel;  // defined in src/net/reactor.cpp

  void run_timers() noexcept;
  void run_tasks() noexcept;
  int poll_timeout_ms(std::chrono::milliseconds max_wait) noexcept;
  void bind_loop_thread() noexcept;

  ReactorOptions options_;
  int epoll_fd_ = -1;
  Clock::time_point now_{};
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> loop_thread_{};
  MpmcQueue<Task> tasks_;
  std::vector<Task> local_overflow_;
  std::vector<Task> hooks_;
  std::vector<epoll_event> events_;
  // The batch being dispatched: entries [dispatch_next_, dispatch_end_) are not
  // delivered yet; remove() nulls those that point to the removed handler.
  std::size_t dispatch_next_ = 0;
  std::size_t dispatch_end_ = 0;
  std::vector<IoHandler*> handlers_;  // indexed by fd; what remove() looks up
  std::unique_ptr<Wheel> wheel_;
  // Counters written by the loop thread, read relaxed by stats().
  std::atomic<std::uint64_t> iterations_{0}, io_events_{0}, timers_fired_{0}, tasks_run_{0},
      timer_arms_{0};
  std::atomic<std::size_t> fds_watched_{0}, timers_armed_{0};
};

}  // namespace v0
}  // namespace portico
