// Single-threaded tests for portico::Reactor: fd dispatch, remove() during a
// batch, the timer wheel, tasks and hooks, idle sleeping, the syscall seam.
#include "portico/reactor.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "portico/detail/syscalls.hpp"

namespace {

using portico::IoHandler;
using portico::Reactor;
using portico::ReactorOptions;
using portico::Timer;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr auto kBound = std::chrono::seconds(10);  // generous upper bound for any wait

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

void signal(int efd) {
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
}

// Runs iterations until `done()` or the bound expires.
template <class Pred>
bool run_until(Reactor& reactor, Pred done) {
  const auto deadline = Clock::now() + kBound;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    reactor.run_once(milliseconds(100));
  }
  return true;
}

struct Recorder final : IoHandler {
  std::vector<std::uint32_t> events;
  int drain_fd = -1;
  void on_io(std::uint32_t ev) noexcept override {
    events.push_back(ev);
    if (drain_fd >= 0) {
      char buf[64];
      (void)::read(drain_fd, buf, sizeof buf);
    }
  }
};

TEST(Reactor, PipeReadableDispatchesToHandler) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  Fd r(p[0]), w(p[1]);
  Reactor reactor;
  Recorder rec;
  rec.drain_fd = r.fd;
  ASSERT_FALSE(reactor.add(r.fd, EPOLLIN, &rec));
  EXPECT_EQ(reactor.stats().fds_watched, 1u);
  reactor.run_once(milliseconds(0));
  EXPECT_TRUE(rec.events.empty());  // nothing written yet
  ASSERT_EQ(::write(w.fd, "x", 1), 1);
  ASSERT_TRUE(run_until(reactor, [&] { return !rec.events.empty(); }));
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_TRUE(rec.events[0] & EPOLLIN);
  EXPECT_EQ(reactor.stats().io_events, 1u);
  ASSERT_FALSE(reactor.remove(r.fd));
  EXPECT_EQ(reactor.stats().fds_watched, 0u);
}

TEST(Reactor, SocketpairWritableAndHangupAndModify) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]);
  auto b = std::make_unique<Fd>(sv[1]);
  Reactor reactor;
  Recorder rec;
  ASSERT_FALSE(reactor.add(a.fd, EPOLLOUT, &rec));
  ASSERT_TRUE(run_until(reactor, [&] { return !rec.events.empty(); }));
  EXPECT_TRUE(rec.events[0] & EPOLLOUT);
  // Switch to read interest only: no more EPOLLOUT.
  ASSERT_FALSE(reactor.modify(a.fd, EPOLLIN | EPOLLRDHUP, &rec));
  rec.events.clear();
  reactor.run_once(milliseconds(0));
  EXPECT_TRUE(rec.events.empty());
  b.reset();  // peer closes
  ASSERT_TRUE(run_until(reactor, [&] { return !rec.events.empty(); }));
  EXPECT_TRUE(rec.events[0] & (EPOLLRDHUP | EPOLLHUP));
  EXPECT_FALSE(reactor.remove(a.fd));
}

TEST(Reactor, AddErrorsAreReported) {
  Reactor reactor;
  Recorder rec;
  EXPECT_TRUE(reactor.add(-1, EPOLLIN, &rec));
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Fd e(efd);
  ASSERT_FALSE(reactor.add(e.fd, EPOLLIN, &rec));
  EXPECT_EQ(reactor.add(e.fd, EPOLLIN, &rec), std::error_code(EEXIST, std::system_category()));
  EXPECT_FALSE(reactor.remove(e.fd));
  EXPECT_EQ(reactor.remove(e.fd), std::error_code(ENOENT, std::system_category()));
  EXPECT_EQ(reactor.stats().fds_watched, 0u);
}

// A handler that removes its fd and deletes itself from on_io.
struct SelfDeleting final : IoHandler {
  Reactor* reactor;
  int fd;
  int* calls;
  bool* destroyed;
  SelfDeleting(Reactor* r, int f, int* c, bool* d) : reactor(r), fd(f), calls(c), destroyed(d) {}
  ~SelfDeleting() { *destroyed = true; }
  void on_io(std::uint32_t) noexcept override {
    ++*calls;
    reactor->remove(fd);
    delete this;
  }
};

TEST(Reactor, RemoveAndDeleteInsideOwnCallback) {
  Fd e(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Reactor reactor;
  int calls = 0;
  bool destroyed = false;
  ASSERT_FALSE(reactor.add(e.fd, EPOLLIN, new SelfDeleting(&reactor, e.fd, &calls, &destroyed)));
  signal(e.fd);
  ASSERT_TRUE(run_until(reactor, [&] { return calls > 0; }));
  EXPECT_TRUE(destroyed);
  // Still readable (never drained) but no longer watched.
  for (int i = 0; i < 3; ++i) reactor.run_once(milliseconds(0));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reactor.stats().fds_watched, 0u);
}

// Two handlers ready in the same batch; whichever runs first removes the other
// and deletes it. The other's already-fetched event must not be delivered.
struct Peer final : IoHandler {
  Reactor* reactor = nullptr;
  int fd = -1;
  Peer* other = nullptr;
  int* calls = nullptr;
  bool alive = true;
  void on_io(std::uint32_t) noexcept override {
    EXPECT_TRUE(alive) << "event delivered to a removed handler";
    ++*calls;
    if (other != nullptr) {
      reactor->remove(other->fd);
      other->alive = false;
      other->other = nullptr;
      other = nullptr;
    }
  }
};

TEST(Reactor, RemovingAnotherHandlerDropsItsPendingEvent) {
  Fd e1(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Fd e2(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Reactor reactor;
  int calls = 0;
  auto p1 = std::make_unique<Peer>();
  auto p2 = std::make_unique<Peer>();
  *p1 = Peer{};
  p1->reactor = p2->reactor = &reactor;
  p1->fd = e1.fd;
  p2->fd = e2.fd;
  p1->other = p2.get();
  p2->other = p1.get();
  p1->calls = p2->calls = &calls;
  signal(e1.fd);
  signal(e2.fd);
  ASSERT_FALSE(reactor.add(e1.fd, EPOLLIN, p1.get()));
  ASSERT_FALSE(reactor.add(e2.fd, EPOLLIN, p2.get()));
  // Both are ready before the wait, so one epoll_wait returns both.
  reactor.run_once(milliseconds(1000));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reactor.stats().io_events, 1u);
  EXPECT_EQ(reactor.stats().fds_watched, 1u);
  EXPECT_NE(p1->alive, p2->alive);
}

// ---- timers -------------------------------------------------------------------

struct Fired {
  std::vector<int> order;
  std::vector<Clock::duration> at;
  Clock::time_point start = Clock::now();
};

struct TaggedTimer {
  Fired* fired;
  int tag;
  Timer timer{&TaggedTimer::fire, this};
  TaggedTimer(Fired* f, int t) : fired(f), tag(t) {}
  static void fire(Timer& t, void* ctx) noexcept {
    auto* self = static_cast<TaggedTimer*>(ctx);
    EXPECT_EQ(&t, &self->timer);
    self->fired->order.push_back(self->tag);
    self->fired->at.push_back(Clock::now() - self->fired->start);
  }
};

TEST(ReactorTimer, FireInDeadlineOrderNeverEarly) {
  Reactor reactor;
  // `start` is taken before the loop's clock (now()) that arm() counts from,
  // so time measured from it is never shorter than the armed delay.
  Fired fired;
  reactor.run_once(milliseconds(0));
  TaggedTimer t30(&fired, 30), t10(&fired, 10), t20(&fired, 20), t1(&fired, 1);
  reactor.arm(t30.timer, milliseconds(30));
  reactor.arm(t10.timer, milliseconds(10));
  reactor.arm(t20.timer, milliseconds(20));
  reactor.arm(t1.timer, milliseconds(1));
  EXPECT_EQ(reactor.stats().timers_armed, 4u);
  EXPECT_TRUE(t30.timer.armed());
  ASSERT_TRUE(run_until(reactor, [&] { return fired.order.size() == 4; }));
  EXPECT_EQ(fired.order, (std::vector<int>{1, 10, 20, 30}));
  const int delays[] = {1, 10, 20, 30};
  for (std::size_t i = 0; i < 4; ++i) EXPECT_GE(fired.at[i], milliseconds(delays[i])) << i;
  EXPECT_FALSE(t30.timer.armed());
  EXPECT_EQ(reactor.stats().timers_armed, 0u);
  EXPECT_EQ(reactor.stats().timers_fired, 4u);
}

TEST(ReactorTimer, ZeroDelayFiresOnTheNextIterationWithoutWaiting) {
  Reactor reactor;
  reactor.run_once(milliseconds(0));
  Fired fired;
  TaggedTimer t(&fired, 0);
  reactor.arm(t.timer, milliseconds(0));
  // max_wait is long: the loop must see the due timer and not block.
  const auto before = Clock::now();
  reactor.run_once(std::chrono::seconds(30));
  EXPECT_LT(Clock::now() - before, std::chrono::seconds(2));  // vs. a 4 s wheel span / 30 s max_wait
  EXPECT_EQ(fired.order.size(), 1u);
}

struct Rearming {
  Reactor* reactor;
  int remaining;
  int fired = 0;
  Timer timer{&Rearming::fire, this};
  static void fire(Timer& t, void* ctx) noexcept {
    auto* self = static_cast<Rearming*>(ctx);
    ++self->fired;
    if (--self->remaining > 0) self->reactor->arm(t, milliseconds(self->remaining % 2));
  }
};

TEST(ReactorTimer, CallbackReArmsItself) {
  Reactor reactor;
  Rearming r{&reactor, 5};
  reactor.arm(r.timer, milliseconds(2));
  ASSERT_TRUE(run_until(reactor, [&] { return r.fired == 5; }));
  for (int i = 0; i < 3; ++i) reactor.run_once(milliseconds(0));
  EXPECT_EQ(r.fired, 5);
  EXPECT_FALSE(r.timer.armed());
}

TEST(ReactorTimer, ReArmMovesTheDeadline) {
  Reactor reactor;
  // `start` is taken before the loop's clock (now()) that arm() counts from,
  // so time measured from it is never shorter than the armed delay.
  Fired fired;
  reactor.run_once(milliseconds(0));
  TaggedTimer t(&fired, 7);
  reactor.arm(t.timer, milliseconds(5));
  reactor.arm(t.timer, milliseconds(40));
  EXPECT_EQ(reactor.stats().timers_armed, 1u);
  EXPECT_EQ(reactor.stats().timer_arms, 2u);  // each arm() counts, a moved deadline too
  ASSERT_TRUE(run_until(reactor, [&] { return !fired.order.empty(); }));
  EXPECT_GE(fired.at[0], milliseconds(40));
  for (int i = 0; i < 3; ++i) reactor.run_once(milliseconds(0));
  EXPECT_EQ(fired.order.size(), 1u);
}

TEST(ReactorTimer, CancelledTimerDoesNotFire) {
  Reactor reactor;
  Fired fired;
  TaggedTimer cancelled(&fired, 1), sentinel(&fired, 2);
  reactor.arm(cancelled.timer, milliseconds(1));
  reactor.arm(sentinel.timer, milliseconds(15));
  reactor.cancel(cancelled.timer);
  reactor.cancel(cancelled.timer);  // idempotent
  EXPECT_FALSE(cancelled.timer.armed());
  EXPECT_EQ(reactor.stats().timers_armed, 1u);
  ASSERT_TRUE(run_until(reactor, [&] { return !fired.order.empty(); }));
  EXPECT_EQ(fired.order, std::vector<int>{2});
}

TEST(ReactorTimer, DestructorCancels) {
  Reactor reactor;
  Fired fired;
  TaggedTimer sentinel(&fired, 2);
  {
    TaggedTimer gone(&fired, 1);
    reactor.arm(gone.timer, milliseconds(1));
  }
  EXPECT_EQ(reactor.stats().timers_armed, 0u);
  reactor.arm(sentinel.timer, milliseconds(10));
  ASSERT_TRUE(run_until(reactor, [&] { return !fired.order.empty(); }));
  EXPECT_EQ(fired.order, std::vector<int>{2});
}

// Two timers due in the same tick: each one's callback destroys the other's
// owner (its destructor cancels) — exactly one fires, whichever runs first.
struct Mutual {
  std::unique_ptr<Mutual>* other_owner = nullptr;
  int* fired = nullptr;
  Timer timer{&Mutual::fire, this};
  static void fire(Timer&, void* ctx) noexcept {
    auto* self = static_cast<Mutual*>(ctx);
    ++*self->fired;
    if (self->other_owner != nullptr) self->other_owner->reset();
  }
};

TEST(ReactorTimer, CallbackDestroysAnotherDueTimer) {
  Reactor reactor;
  int fired = 0;
  auto a = std::make_unique<Mutual>();
  auto b = std::make_unique<Mutual>();
  a->other_owner = &b;
  b->other_owner = &a;
  a->fired = b->fired = &fired;
  reactor.arm(a->timer, milliseconds(3));
  reactor.arm(b->timer, milliseconds(3));
  ASSERT_TRUE(run_until(reactor, [&] { return fired > 0; }));
  for (int i = 0; i < 3; ++i) reactor.run_once(milliseconds(5));
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE((a == nullptr) != (b == nullptr));
  EXPECT_EQ(reactor.stats().timers_armed, 0u);
}

TEST(ReactorTimer, CallbackCancelsAnotherDueTimer) {
  Reactor reactor;
  Fired fired;
  struct Canceller {
    Reactor* reactor;
    Timer* victim;
    int fired = 0;
    Timer timer{[](Timer&, void* ctx) noexcept {
                  auto* self = static_cast<Canceller*>(ctx);
                  ++self->fired;
                  self->reactor->cancel(*self->victim);
                },
                this};
  };
  TaggedTimer victim(&fired, 9);
  Canceller canceller{&reactor, &victim.timer};
  reactor.arm(canceller.timer, milliseconds(2));
  reactor.arm(victim.timer, milliseconds(2));  // same tick, armed after: fires after
  ASSERT_TRUE(run_until(reactor, [&] { return canceller.fired == 1; }));
  for (int i = 0; i < 3; ++i) reactor.run_once(milliseconds(3));
  EXPECT_TRUE(fired.order.empty());
  EXPECT_FALSE(victim.timer.armed());
}

TEST(ReactorTimer, TimerBeyondTheWheelSpanFiresAtItsDeadline) {
  // The wheel spans 4096 ticks of 1 ms; this timer shares a slot with the
  // tick 4096 ms before its deadline.
  Reactor reactor;
  // `start` is taken before the loop's clock (now()) that arm() counts from,
  // so time measured from it is never shorter than the armed delay.
  Fired fired;
  reactor.run_once(milliseconds(0));
  TaggedTimer far(&fired, 1), near(&fired, 2);
  reactor.arm(far.timer, milliseconds(4096 + 5));
  reactor.arm(near.timer, milliseconds(5));
  const auto deadline = Clock::now() + kBound;
  while (fired.order.size() < 2 && Clock::now() < deadline) reactor.run_once(kBound);
  ASSERT_EQ(fired.order.size(), 2u);
  EXPECT_EQ(fired.order, (std::vector<int>{2, 1}));
  EXPECT_GE(fired.at[1], milliseconds(4096 + 5));
  EXPECT_LT(fired.at[1], milliseconds(4096 + 5 + 2000));
  // It slept, not spun: a handful of iterations for 4 s.
  EXPECT_LT(reactor.stats().iterations, 20u);
}

TEST(ReactorTimer, MillionTimersArmAndCancel) {
  Reactor reactor;
  constexpr int kCount = 1'000'000;
  int fired = 0;
  std::deque<Timer> timers;
  for (int i = 0; i < kCount; ++i) {
    timers.emplace_back([](Timer&, void* ctx) noexcept { ++*static_cast<int*>(ctx); }, &fired);
  }
  const auto start = Clock::now();
  for (int i = 0; i < kCount; ++i) reactor.arm(timers[static_cast<std::size_t>(i)], milliseconds(1000 + i % 20000));
  EXPECT_EQ(reactor.stats().timers_armed, static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; i += 2) reactor.arm(timers[static_cast<std::size_t>(i)], milliseconds(60'000));
  EXPECT_EQ(reactor.stats().timers_armed, static_cast<std::size_t>(kCount));
  for (auto& t : timers) reactor.cancel(t);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(reactor.stats().timers_armed, 0u);
  EXPECT_LT(elapsed, std::chrono::seconds(10));  // O(1) each; sanitizer builds included
  reactor.run_once(milliseconds(0));
  EXPECT_EQ(fired, 0);
}

// ---- idle, tasks, hooks, stop ---------------------------------------------------

TEST(Reactor, IdleLoopSleepsInsteadOfSpinning) {
  const auto start = Clock::now();  // before now(), which arm() counts from
  Reactor reactor;
  struct Stopper {
    Reactor* reactor;
    Timer timer{[](Timer&, void* ctx) noexcept { static_cast<Stopper*>(ctx)->reactor->stop(); },
                this};
  } stopper{&reactor};
  Fired fired;
  TaggedTimer far(&fired, 1);
  reactor.arm(far.timer, milliseconds(60'000));  // armed but far: must not cause wake-ups
  reactor.arm(stopper.timer, milliseconds(80));
  reactor.run();
  EXPECT_GE(Clock::now() - start, milliseconds(80));
  EXPECT_LE(reactor.stats().iterations, 5u);
  reactor.cancel(far.timer);
  // Without any timer, run_once blocks for max_wait in one iteration.
  const auto before = reactor.stats().iterations;
  reactor.restart();
  EXPECT_TRUE(reactor.run_once(milliseconds(20)));
  EXPECT_EQ(reactor.stats().iterations, before + 1);
}

TEST(Reactor, PostedTasksRunInOrderAndOverflowLocally) {
  ReactorOptions options;
  options.task_queue_capacity = 2;
  options.task_batch = 3;
  Reactor reactor(options);
  std::vector<int> ran;
  EXPECT_TRUE(reactor.try_post([&] {
    // On the loop thread: 10 posts overflow a 2-slot queue; none is lost.
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(reactor.post([&ran, i] { ran.push_back(i); }));
  }));
  ASSERT_TRUE(run_until(reactor, [&] { return ran.size() == 10; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ran[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(reactor.stats().tasks_run, 11u);
}

TEST(Reactor, TryPostFailsWhenFull) {
  ReactorOptions options;
  options.task_queue_capacity = 2;
  Reactor reactor(options);
  int ran = 0;
  EXPECT_TRUE(reactor.try_post([&] { ++ran; }));
  EXPECT_TRUE(reactor.try_post([&] { ++ran; }));
  EXPECT_FALSE(reactor.try_post([&] { ++ran; }));
  reactor.run_once(milliseconds(1000));
  EXPECT_EQ(ran, 2);
}

TEST(Reactor, TaskBatchIsBoundedAndPendingTasksDoNotBlock) {
  ReactorOptions options;
  options.task_batch = 4;
  Reactor reactor(options);
  int ran = 0;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(reactor.try_post([&] { ++ran; }));
  reactor.run_once(std::chrono::seconds(30));
  EXPECT_EQ(ran, 4);
  const auto before = Clock::now();
  reactor.run_once(std::chrono::seconds(30));  // tasks pending: no blocking
  reactor.run_once(std::chrono::seconds(30));
  EXPECT_LT(Clock::now() - before, std::chrono::seconds(2));  // vs. a 4 s wheel span / 30 s max_wait
  EXPECT_EQ(ran, 10);
}

TEST(Reactor, PhaseOrderIoTimersTasksHooks) {
  Fd e(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Reactor reactor;
  std::vector<char> trace;
  struct Io final : IoHandler {
    std::vector<char>* trace;
    explicit Io(std::vector<char>* t) : trace(t) {}
    void on_io(std::uint32_t) noexcept override { trace->push_back('i'); }
  } io(&trace);
  struct T {
    std::vector<char>* trace;
    Timer timer{[](Timer&, void* ctx) noexcept { static_cast<T*>(ctx)->trace->push_back('t'); },
                this};
  } timer{&trace};
  reactor.add_iteration_hook([&] { trace.push_back('h'); });
  ASSERT_FALSE(reactor.add(e.fd, EPOLLIN | EPOLLET, &io));
  signal(e.fd);
  reactor.arm(timer.timer, milliseconds(0));
  ASSERT_TRUE(reactor.try_post([&] { trace.push_back('p'); }));
  reactor.run_once(milliseconds(1000));
  EXPECT_EQ(trace, (std::vector<char>{'i', 't', 'p', 'h'}));
  reactor.remove(e.fd);
}

TEST(Reactor, StopBeforeRunRunsOneIterationAndRestartClears) {
  Reactor reactor;
  EXPECT_FALSE(reactor.in_loop_thread());
  reactor.stop();
  reactor.stop();
  EXPECT_TRUE(reactor.stop_requested());
  reactor.run();  // returns after one iteration
  EXPECT_EQ(reactor.stats().iterations, 1u);
  EXPECT_TRUE(reactor.in_loop_thread());
  reactor.restart();
  EXPECT_FALSE(reactor.stop_requested());
  EXPECT_TRUE(reactor.try_post([&] { reactor.stop(); }));
  reactor.run();
  EXPECT_EQ(reactor.stats().tasks_run, 1u);
}

// ---- syscall seam ---------------------------------------------------------------

int g_eintr_left = 0;
int g_epoll_calls = 0;
int eintr_epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
  ++g_epoll_calls;
  if (g_eintr_left > 0) {
    --g_eintr_left;
    errno = EINTR;
    return -1;
  }
  return portico::detail::default_syscalls().epoll_wait(epfd, events, maxevents, timeout);
}

class ReactorSyscalls : public ::testing::Test {
 protected:
  void TearDown() override {
    portico::detail::syscall_table() = portico::detail::default_syscalls();
  }
};

TEST_F(ReactorSyscalls, EintrFromEpollWaitKeepsTheLoopGoing) {
  Fd e(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Reactor reactor;
  Recorder rec;
  rec.drain_fd = e.fd;
  ASSERT_FALSE(reactor.add(e.fd, EPOLLIN, &rec));
  signal(e.fd);
  g_eintr_left = 3;
  g_epoll_calls = 0;
  portico::detail::syscall_table().epoll_wait = &eintr_epoll_wait;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(reactor.run_once(milliseconds(1000)));
  EXPECT_TRUE(rec.events.empty());  // the interrupted waits returned no events
  EXPECT_EQ(g_epoll_calls, 3);
  reactor.run_once(milliseconds(1000));
  EXPECT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(reactor.stats().iterations, 4u);
  reactor.remove(e.fd);
}

}  // namespace
