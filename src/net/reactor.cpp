// The epoll Reactor (see portico/reactor.hpp).
//
// Timer wheel: a single-level hashed wheel of kSlots 1 ms slots. A timer due
// at absolute tick T sits in slot T % kSlots; timers further away than the
// wheel span share slots with nearer ones and are skipped ("not this round")
// when their slot comes round early. Each slot is an intrusive doubly linked
// list (Timer::prev_/next_, head has prev_ == nullptr), so arm and cancel are
// O(1) and allocate nothing. A bitmap of non-empty slots gives the epoll
// timeout: the distance to the next non-empty slot is a lower bound of the
// nearest deadline, so the loop never sleeps past a deadline and, when the
// next slot only holds later-round timers, wakes early and sleeps again (at
// most once per wheel span per such slot).
//
// Ticks are counted from the reactor's construction. `processed_` is the last
// tick whose slot was run; a timer is never put before it. Expired timers are
// first moved onto a "firing" list (a circular list through a sentinel, so a
// member's prev_ is never null there) and then run one by one: a callback may
// cancel or re-arm any timer, including ones still on the firing list.
#include "portico/reactor.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>

#include "portico/detail/mpmc_wait.hpp"
#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {

namespace {
constexpr std::size_t kSlots = 4096;
constexpr std::size_t kSlotMask = kSlots - 1;
constexpr std::size_t kBitmapWords = kSlots / 64;

void noop_timer(Timer&, void*) noexcept {}
}  // namespace

struct Reactor::Wheel {
  explicit Wheel(Clock::time_point base_time) : base(base_time) {}

  Clock::time_point base;
  std::uint64_t processed = 0;  // ticks <= processed have been run
  bool due_now = false;         // a timer was armed at tick <= processed since the last run
  std::array<Timer*, kSlots> slots{};
  std::array<std::uint64_t, kBitmapWords> nonempty{};
  Timer firing{&noop_timer, nullptr};  // sentinel of the circular firing list

  std::uint64_t tick_floor(Clock::time_point t) const noexcept {
    if (t <= base) return 0;
    return static_cast<std::uint64_t>((t - base) / kTimerTick);
  }
  std::uint64_t tick_ceil(Clock::time_point t) const noexcept {
    if (t <= base) return 0;
    const auto d = t - base;
    auto ticks = static_cast<std::uint64_t>(d / kTimerTick);
    if (d % kTimerTick != Clock::duration::zero()) ++ticks;
    return ticks;
  }

  void link(Timer& t) noexcept {
    const std::size_t slot = t.expiry_tick_ & kSlotMask;
    t.prev_ = nullptr;
    t.next_ = slots[slot];
    if (t.next_ != nullptr) t.next_->prev_ = &t;
    slots[slot] = &t;
    nonempty[slot / 64] |= std::uint64_t{1} << (slot % 64);
  }

  // Works for both a slot list and the firing list.
  void unlink(Timer& t) noexcept {
    if (t.prev_ != nullptr) {
      t.prev_->next_ = t.next_;
    } else {
      const std::size_t slot = t.expiry_tick_ & kSlotMask;
      slots[slot] = t.next_;
      if (t.next_ == nullptr) nonempty[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
    }
    if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
    t.prev_ = t.next_ = nullptr;
  }

  // Ticks from `processed` to the next non-empty slot after it, in
  // [1, kSlots] (kSlots: only the slot of `processed` itself holds timers, all
  // of later rounds). REQUIRES: some slot is non-empty.
  std::uint64_t distance_to_next() const noexcept {
    const std::size_t start = (processed + 1) & kSlotMask;
    for (std::size_t scanned = 0; scanned <= kSlots; ) {
      const std::size_t slot = (start + scanned) & kSlotMask;
      const std::size_t bit = slot % 64;
      const std::uint64_t word = nonempty[slot / 64] >> bit;
      if (word != 0) {
        return std::min<std::uint64_t>(
            scanned + static_cast<std::size_t>(std::countr_zero(word)) + 1, kSlots);
      }
      scanned += 64 - bit;
    }
    return kSlots;
  }
};

// ---- Timer ------------------------------------------------------------------

Timer::~Timer() {
  if (reactor_ != nullptr) reactor_->cancel(*this);
}

// ---- construction -----------------------------------------------------------

Reactor::Reactor(const ReactorOptions& options)
    : options_(options),
      now_(Clock::now()),
      tasks_(std::max<std::size_t>(options.task_queue_capacity, 2)),
      events_(std::max<std::size_t>(options.max_events, 1)),
      wheel_(std::make_unique<Wheel>(now_)) {
  if (options_.task_batch == 0) options_.task_batch = 1;
  epoll_fd_ = detail::sys::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  if (const std::error_code error = tasks_.open_wakeup_fd()) {
    detail::sys::close(epoll_fd_);
    throw std::system_error(error, "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = this;  // the wake-up fd: recognised by this sentinel in dispatch
  if (detail::sys::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tasks_.wakeup_fd(), &ev) != 0) {
    const int error = errno;
    detail::sys::close(epoll_fd_);
    throw std::system_error(error, std::system_category(), "epoll_ctl(wakeup)");
  }
}

Reactor::~Reactor() {
  // Defensive: disarm timers that were left armed so their destructors do not
  // touch a dead reactor.
  for (Timer* head : wheel_->slots) {
    for (Timer* t = head; t != nullptr;) {
      Timer* next = t->next_;
      t->reactor_ = nullptr;
      t->prev_ = t->next_ = nullptr;
      t = next;
    }
  }
  detail::sys::close(epoll_fd_);
}

// ---- fds --------------------------------------------------------------------

std::error_code Reactor::add(int fd, std::uint32_t events, IoHandler* handler) noexcept {
  if (fd < 0 || handler == nullptr) return std::make_error_code(std::errc::invalid_argument);
  const auto index = static_cast<std::size_t>(fd);
  if (index >= handlers_.size()) {
    try {
      handlers_.resize(std::max(index + 1, handlers_.size() * 2));
    } catch (...) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (detail::sys::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return {errno, std::system_category()};
  }
  handlers_[index] = handler;
  fds_watched_.store(fds_watched_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return {};
}

std::error_code Reactor::modify(int fd, std::uint32_t events, IoHandler* handler) noexcept {
  if (fd < 0 || handler == nullptr) return std::make_error_code(std::errc::invalid_argument);
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (detail::sys::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return {errno, std::system_category()};
  }
  const auto index = static_cast<std::size_t>(fd);
  if (index < handlers_.size()) handlers_[index] = handler;
  return {};
}

// Besides EPOLL_CTL_DEL, nulls out the not-yet-dispatched events of the current
// batch that point to this fd's handler: another handler (or a task run from
// one) may remove and delete a handler whose event was already fetched. The
// batch is at most max_events long, so the scan is cheap. Caveat: a handler
// watching several fds loses the pending events of its other fds in this
// batch too (level-triggered fds report them again on the next epoll_wait).
std::error_code Reactor::remove(int fd) noexcept {
  if (fd < 0) return std::make_error_code(std::errc::invalid_argument);
  std::error_code result;
  if (detail::sys::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr) != 0) {
    result = {errno, std::system_category()};
  }
  const auto index = static_cast<std::size_t>(fd);
  if (index < handlers_.size() && handlers_[index] != nullptr) {
    IoHandler* handler = std::exchange(handlers_[index], nullptr);
    for (std::size_t i = dispatch_next_; i < dispatch_end_; ++i) {
      if (events_[i].data.ptr == handler) events_[i].data.ptr = nullptr;
    }
    fds_watched_.store(fds_watched_.load(std::memory_order_relaxed) - 1,
                       std::memory_order_relaxed);
  }
  return result;
}

// ---- timers -----------------------------------------------------------------

void Reactor::arm(Timer& timer, std::chrono::milliseconds delay) noexcept {
  Wheel& wheel = *wheel_;
  timer_arms_.store(timer_arms_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (timer.reactor_ != nullptr) {
    wheel.unlink(timer);
  } else {
    timers_armed_.store(timers_armed_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  }
  std::uint64_t expiry = delay <= std::chrono::milliseconds::zero()
                             ? wheel.tick_floor(now_)
                             : wheel.tick_ceil(now_ + delay);
  if (expiry <= wheel.processed) {
    expiry = wheel.processed;
    wheel.due_now = true;
  }
  timer.expiry_tick_ = expiry;
  timer.reactor_ = this;
  wheel.link(timer);
}

void Reactor::cancel(Timer& timer) noexcept {
  if (timer.reactor_ == nullptr) return;
  wheel_->unlink(timer);
  timer.reactor_ = nullptr;
  timers_armed_.store(timers_armed_.load(std::memory_order_relaxed) - 1,
                      std::memory_order_relaxed);
}

void Reactor::run_timers() noexcept {
  Wheel& wheel = *wheel_;
  const std::uint64_t target = wheel.tick_floor(now_);
  wheel.due_now = false;
  if (timers_armed_.load(std::memory_order_relaxed) == 0) {
    wheel.processed = std::max(wheel.processed, target);
    return;
  }
  // Collect every due timer onto the firing list (the slot of `processed` is
  // scanned again: timers armed "now" after the previous run sit there).
  Timer& firing = wheel.firing;
  firing.prev_ = firing.next_ = &firing;
  const std::uint64_t first = wheel.processed;
  const std::uint64_t last = std::min(target, first + kSlots - 1);
  for (std::uint64_t tick = first; tick <= last; ++tick) {
    // A slot list runs newest-armed first; inserting each due timer right
    // after the same anchor reverses it, so timers of one tick fire in the
    // order they were armed, and ticks fire in order.
    Timer* const anchor = firing.prev_;
    Timer* t = wheel.slots[tick & kSlotMask];
    while (t != nullptr) {
      Timer* next = t->next_;
      if (t->expiry_tick_ <= target) {
        wheel.unlink(*t);
        t->prev_ = anchor;
        t->next_ = anchor->next_;
        anchor->next_->prev_ = t;
        anchor->next_ = t;
      }
      t = next;
    }
  }
  wheel.processed = std::max(wheel.processed, target);
  std::uint64_t fired = 0;
  while (firing.next_ != &firing) {
    Timer* t = firing.next_;
    wheel.unlink(*t);
    t->reactor_ = nullptr;
    timers_armed_.store(timers_armed_.load(std::memory_order_relaxed) - 1,
                        std::memory_order_relaxed);
    ++fired;
    t->callback_(*t, t->context_);
  }
  firing.prev_ = firing.next_ = nullptr;
  timers_fired_.store(timers_fired_.load(std::memory_order_relaxed) + fired,
                      std::memory_order_relaxed);
}

// ---- cross-thread -----------------------------------------------------------

bool Reactor::try_post(Task task) noexcept { return tasks_.try_push(std::move(task)); }

bool Reactor::post(Task task) noexcept {
  if (in_loop_thread()) {
    // Keep the loop thread's own order: once it spilled, keep spilling until
    // the loop drained the spill list.
    if (local_overflow_.empty() && tasks_.try_push(std::move(task))) return true;
    try {
      local_overflow_.push_back(std::move(task));
    } catch (...) {
      return false;  // out of memory: the task is destroyed
    }
    return true;
  }
  tasks_.push(std::move(task));
  return true;
}

void Reactor::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  detail::signal_eventfd(tasks_.wakeup_fd());
}

void Reactor::add_iteration_hook(Task hook) { hooks_.push_back(std::move(hook)); }

ReactorStats Reactor::stats() const noexcept {
  ReactorStats s;
  s.iterations = iterations_.load(std::memory_order_relaxed);
  s.io_events = io_events_.load(std::memory_order_relaxed);
  s.timers_fired = timers_fired_.load(std::memory_order_relaxed);
  s.tasks_run = tasks_run_.load(std::memory_order_relaxed);
  s.timer_arms = timer_arms_.load(std::memory_order_relaxed);
  s.timers_armed = timers_armed_.load(std::memory_order_relaxed);
  s.fds_watched = fds_watched_.load(std::memory_order_relaxed);
  return s;
}

// ---- the loop ---------------------------------------------------------------

void Reactor::run_tasks() noexcept {
  std::size_t budget = options_.task_batch;
  std::uint64_t ran = 0;
  Task task;
  while (budget > 0 && tasks_.try_pop(task)) {
    task();
    task.reset();
    --budget;
    ++ran;
  }
  if (budget > 0 && !local_overflow_.empty()) {
    // Move the front chunk out first: the tasks may post (and spill) again.
    std::size_t n = std::min(budget, local_overflow_.size());
    std::vector<Task> chunk;
    try {
      chunk.reserve(n);
    } catch (...) {
      n = 0;  // out of memory: leave the spill list for a later iteration
    }
    for (std::size_t i = 0; i < n; ++i) chunk.push_back(std::move(local_overflow_[i]));
    local_overflow_.erase(local_overflow_.begin(),
                          local_overflow_.begin() + static_cast<std::ptrdiff_t>(n));
    for (Task& t : chunk) {
      t();
      t.reset();
      ++ran;
    }
  }
  tasks_run_.store(tasks_run_.load(std::memory_order_relaxed) + ran, std::memory_order_relaxed);
}

int Reactor::poll_timeout_ms(std::chrono::milliseconds max_wait) noexcept {
  if (stop_requested() || !local_overflow_.empty()) return 0;
  if (!tasks_.arm_wakeup()) return 0;  // tasks are queued (or being pushed)
  const Wheel& wheel = *wheel_;
  std::chrono::milliseconds wait = std::max(max_wait, std::chrono::milliseconds::zero());
  if (timers_armed_.load(std::memory_order_relaxed) != 0) {
    if (wheel.due_now) return 0;
    const Clock::time_point deadline =
        wheel.base + kTimerTick * (wheel.processed + wheel.distance_to_next());
    if (deadline <= now_) return 0;
    // Round up so the loop never wakes before the deadline's tick.
    const auto until = std::chrono::ceil<std::chrono::milliseconds>(deadline - now_);
    wait = std::min(wait, until);
  }
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(wait.count(), INT_MAX));
}

void Reactor::bind_loop_thread() noexcept {
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

bool Reactor::run_once(std::chrono::milliseconds max_wait) {
  bind_loop_thread();
  // 1, 2: wait for I/O, the nearest timer, a task or stop().
  now_ = Clock::now();
  const int timeout = poll_timeout_ms(max_wait);
  const int n = detail::sys::epoll_wait(epoll_fd_, events_.data(),
                                        static_cast<int>(events_.size()), timeout);
  // 3: dispatch.
  now_ = Clock::now();
  if (n > 0) {
    dispatch_next_ = 0;
    dispatch_end_ = static_cast<std::size_t>(n);
    std::uint64_t delivered = 0;
    while (dispatch_next_ < dispatch_end_) {
      const epoll_event ev = events_[dispatch_next_++];
      if (ev.data.ptr == nullptr) continue;  // removed earlier in this batch
      if (ev.data.ptr == this) {
        tasks_.consume_wakeup();
        continue;
      }
      ++delivered;
      static_cast<IoHandler*>(ev.data.ptr)->on_io(ev.events);
    }
    dispatch_next_ = dispatch_end_ = 0;
    io_events_.store(io_events_.load(std::memory_order_relaxed) + delivered,
                     std::memory_order_relaxed);
  }
  // 4, 5, 6.
  run_timers();
  run_tasks();
  for (Task& hook : hooks_) hook();
  iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return !stop_requested();
}

void Reactor::run() {
  while (run_once(std::chrono::hours(24))) {
  }
}

}  // namespace v0
}  // namespace portico
