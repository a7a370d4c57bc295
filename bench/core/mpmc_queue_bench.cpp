// MpmcQueue against its peers, all in one binary so one run compares them:
// moodycamel::ConcurrentQueue (try_enqueue/try_dequeue and bulk, without
// tokens; and with tokens, where it may allocate), boost::lockfree::queue
// (fixed-size) and a mutex+deque, each bounded at 8192 items where it can be.
//
//   Transfer/<queue>/<P>/<C>      P producers, C consumers move 10 M items,
//                                 single-item operations
//   TransferBatch/<queue>/<P>/<C> the same with 32-item batches
//   TransferBlocking/<P>/<C>      MpmcQueue's blocking push/pop
//   PushPopPair/<queue>           one thread: push one item, pop it back
//   PushPopPair/floor_two_locked_ops  the two locked instructions any such
//                                 pair needs, alone: the floor on this CPU
//
// Every queue is driven by the same loop: try, and after repeated failures
// yield (a pure spinner collapses when threads outnumber cores). Consumers
// sum what they pop and the run fails if the sum is wrong.
//
// Compare with an interleaved, repeated run (about a minute on 2 vCPUs), e.g.
//   mpmc_queue_bench --benchmark_enable_random_interleaving=true
//                    --benchmark_repetitions=5
// and read the _median rows; a plain run takes about 12 s. Issue 3's goals,
// paired over rounds with buffer_pool_bench's: bench/core/core_goals.sh.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "portico/mpmc_queue.hpp"

#if PORTICO_HAVE_MOODYCAMEL
#include <concurrentqueue.h>
#endif
#if PORTICO_HAVE_BOOST_LOCKFREE
#include <boost/lockfree/queue.hpp>
#endif

namespace {

constexpr std::uint64_t kItems = 10'000'000;
constexpr std::size_t kCapacity = 8192;
constexpr std::size_t kBatchSize = 32;
constexpr int kMaxThreads = 8;

// ---- adapters: one shape for every queue -----------------------------------
// Each queue type Q offers Q::Producer / Q::Consumer handles built per thread
// (for moodycamel's tokens) with push/pop and push_n/pop_n.

struct Portico {
  static constexpr const char* kName = "portico";
  portico::MpmcQueue<std::uint64_t> queue{kCapacity};
  struct Producer {
    explicit Producer(Portico& q) : q_(q) {}
    bool push(std::uint64_t v) { return q_.queue.try_push(v); }
    std::size_t push_n(std::uint64_t* v, std::size_t n) { return q_.queue.try_push_n(v, n); }
    Portico& q_;
  };
  struct Consumer {
    explicit Consumer(Portico& q) : q_(q) {}
    bool pop(std::uint64_t& v) { return q_.queue.try_pop(v); }
    std::size_t pop_n(std::uint64_t* v, std::size_t n) { return q_.queue.try_pop_n(v, n); }
    Portico& q_;
  };
};

struct MutexDeque {
  static constexpr const char* kName = "mutex_deque";
  std::mutex mutex;
  std::deque<std::uint64_t> items;
  struct Producer {
    explicit Producer(MutexDeque& q) : q_(q) {}
    bool push(std::uint64_t v) {
      std::lock_guard lock(q_.mutex);
      if (q_.items.size() >= kCapacity) return false;
      q_.items.push_back(v);
      return true;
    }
    std::size_t push_n(std::uint64_t* v, std::size_t n) {
      std::lock_guard lock(q_.mutex);
      std::size_t k = 0;
      for (; k < n && q_.items.size() < kCapacity; ++k) q_.items.push_back(v[k]);
      return k;
    }
    MutexDeque& q_;
  };
  struct Consumer {
    explicit Consumer(MutexDeque& q) : q_(q) {}
    bool pop(std::uint64_t& v) {
      std::lock_guard lock(q_.mutex);
      if (q_.items.empty()) return false;
      v = q_.items.front();
      q_.items.pop_front();
      return true;
    }
    std::size_t pop_n(std::uint64_t* v, std::size_t n) {
      std::lock_guard lock(q_.mutex);
      std::size_t k = 0;
      for (; k < n && !q_.items.empty(); ++k) {
        v[k] = q_.items.front();
        q_.items.pop_front();
      }
      return k;
    }
    MutexDeque& q_;
  };
};

#if PORTICO_HAVE_MOODYCAMEL
// try_enqueue / try_dequeue without tokens: the calls the issue compares
// against. Sized so its preallocated blocks cover kCapacity for every
// implicit producer: try_enqueue never allocates.
struct Moodycamel {
  static constexpr const char* kName = "moodycamel";
  moodycamel::ConcurrentQueue<std::uint64_t> queue{kCapacity, 0, kMaxThreads};
  struct Producer {
    explicit Producer(Moodycamel& q) : q_(q) {}
    bool push(std::uint64_t v) { return q_.queue.try_enqueue(v); }
    std::size_t push_n(std::uint64_t* v, std::size_t n) {
      return q_.queue.try_enqueue_bulk(v, n) ? n : 0;
    }
    Moodycamel& q_;
  };
  struct Consumer {
    explicit Consumer(Moodycamel& q) : q_(q) {}
    bool pop(std::uint64_t& v) { return q_.queue.try_dequeue(v); }
    std::size_t pop_n(std::uint64_t* v, std::size_t n) { return q_.queue.try_dequeue_bulk(v, n); }
    Moodycamel& q_;
  };
};

// With producer and consumer tokens, moodycamel's fastest mode. Here the
// producers use enqueue, which may allocate (the queue is unbounded): with
// try_enqueue an explicit producer whose preallocated blocks or block index
// run out stalls for good, and this run hung at 2P/2C and 4P/4C. So this
// peer gets an advantage the bounded queues do not have.
struct MoodycamelTokens {
  static constexpr const char* kName = "moodycamel_tokens";
  moodycamel::ConcurrentQueue<std::uint64_t> queue{kCapacity, kMaxThreads, 0};
  struct Producer {
    explicit Producer(MoodycamelTokens& q) : q_(q), token_(q.queue) {}
    bool push(std::uint64_t v) { return q_.queue.enqueue(token_, v); }
    std::size_t push_n(std::uint64_t* v, std::size_t n) {
      return q_.queue.enqueue_bulk(token_, v, n) ? n : 0;
    }
    MoodycamelTokens& q_;
    moodycamel::ProducerToken token_;
  };
  struct Consumer {
    explicit Consumer(MoodycamelTokens& q) : q_(q), token_(q.queue) {}
    bool pop(std::uint64_t& v) { return q_.queue.try_dequeue(token_, v); }
    std::size_t pop_n(std::uint64_t* v, std::size_t n) {
      return q_.queue.try_dequeue_bulk(token_, v, n);
    }
    MoodycamelTokens& q_;
    moodycamel::ConsumerToken token_;
  };
};
#endif

#if PORTICO_HAVE_BOOST_LOCKFREE
struct BoostLockfree {
  static constexpr const char* kName = "boost_lockfree";
  boost::lockfree::queue<std::uint64_t, boost::lockfree::fixed_sized<true>> queue{kCapacity};
  struct Producer {
    explicit Producer(BoostLockfree& q) : q_(q) {}
    bool push(std::uint64_t v) { return q_.queue.bounded_push(v); }
    std::size_t push_n(std::uint64_t* v, std::size_t n) {
      std::size_t k = 0;
      while (k < n && q_.queue.bounded_push(v[k])) ++k;
      return k;
    }
    BoostLockfree& q_;
  };
  struct Consumer {
    explicit Consumer(BoostLockfree& q) : q_(q) {}
    bool pop(std::uint64_t& v) { return q_.queue.pop(v); }
    std::size_t pop_n(std::uint64_t* v, std::size_t n) {
      std::size_t k = 0;
      while (k < n && q_.queue.pop(v[k])) ++k;
      return k;
    }
    BoostLockfree& q_;
  };
};
#endif

// ---- the transfer driver ---------------------------------------------------

class Backoff {
 public:
  void miss() {
    if (++misses_ < 16) {
      portico::detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  void hit() { misses_ = 0; }

 private:
  int misses_ = 0;
};

enum class Ops { kSingle, kBatch, kBlocking };

template <class Q>
void produce(Q& queue, std::uint64_t first, std::uint64_t count, Ops ops) {
  typename Q::Producer producer(queue);
  Backoff backoff;
  const std::uint64_t end = first + count;
  if (ops == Ops::kSingle) {
    for (std::uint64_t v = first; v < end;) {
      if (producer.push(v)) {
        ++v;
        backoff.hit();
      } else {
        backoff.miss();
      }
    }
    return;
  }
  std::uint64_t batch[kBatchSize];
  for (std::uint64_t v = first; v < end;) {
    const std::size_t want = end - v < kBatchSize ? static_cast<std::size_t>(end - v) : kBatchSize;
    for (std::size_t i = 0; i < want; ++i) batch[i] = v + i;
    std::size_t done = 0;
    while (done < want) {
      const std::size_t pushed = producer.push_n(batch + done, want - done);
      if (pushed == 0) {
        backoff.miss();
      } else {
        done += pushed;
        backoff.hit();
      }
    }
    v += want;
  }
}

template <class Q>
std::uint64_t consume(Q& queue, std::uint64_t count, Ops ops) {
  typename Q::Consumer consumer(queue);
  Backoff backoff;
  std::uint64_t sum = 0;
  std::uint64_t got = 0;
  if (ops == Ops::kSingle) {
    std::uint64_t v = 0;
    while (got < count) {
      if (consumer.pop(v)) {
        sum += v;
        ++got;
        backoff.hit();
      } else {
        backoff.miss();
      }
    }
    return sum;
  }
  std::uint64_t batch[kBatchSize];
  while (got < count) {
    const std::size_t want =
        count - got < kBatchSize ? static_cast<std::size_t>(count - got) : kBatchSize;
    const std::size_t n = consumer.pop_n(batch, want);
    if (n == 0) {
      backoff.miss();
      continue;
    }
    backoff.hit();
    for (std::size_t i = 0; i < n; ++i) sum += batch[i];
    got += n;
  }
  return sum;
}

// MpmcQueue's own blocking calls, without the shared backoff loop.
void produce_blocking(Portico& queue, std::uint64_t first, std::uint64_t count) {
  for (std::uint64_t v = first; v < first + count; ++v) queue.queue.push(v);
}
std::uint64_t consume_blocking(Portico& queue, std::uint64_t count) {
  std::uint64_t sum = 0;
  std::uint64_t v = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    queue.queue.pop(v);
    sum += v;
  }
  return sum;
}

template <class Q>
void run_transfer(benchmark::State& state, Ops ops) {
  const int producers = static_cast<int>(state.range(0));
  const int consumers = static_cast<int>(state.range(1));
  const std::uint64_t per_producer = kItems / static_cast<std::uint64_t>(producers);
  const std::uint64_t per_consumer = kItems / static_cast<std::uint64_t>(consumers);
  const std::uint64_t expected = kItems * (kItems - 1) / 2;
  for (auto _ : state) {
    auto queue = std::make_unique<Q>();
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<std::uint64_t> sum{0};
    std::vector<std::thread> threads;
    auto wait_for_go = [&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    };
    for (int c = 0; c < consumers; ++c) {
      threads.emplace_back([&] {
        wait_for_go();
        std::uint64_t s = 0;
        if constexpr (std::is_same_v<Q, Portico>) {
          if (ops == Ops::kBlocking) {
            s = consume_blocking(*queue, per_consumer);
          } else {
            s = consume(*queue, per_consumer, ops);
          }
        } else {
          s = consume(*queue, per_consumer, ops);
        }
        sum.fetch_add(s);
      });
    }
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        wait_for_go();
        const std::uint64_t first = per_producer * static_cast<std::uint64_t>(p);
        if constexpr (std::is_same_v<Q, Portico>) {
          if (ops == Ops::kBlocking) {
            produce_blocking(*queue, first, per_producer);
            return;
          }
        }
        produce(*queue, first, per_producer, ops);
      });
    }
    while (ready.load() != producers + consumers) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& t : threads) t.join();
    const auto stop = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(stop - start).count());
    if (sum.load() != expected) state.SkipWithError("items lost or duplicated");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kItems));
}

template <class Q>
void BM_Transfer(benchmark::State& state) {
  run_transfer<Q>(state, Ops::kSingle);
}
template <class Q>
void BM_TransferBatch(benchmark::State& state) {
  run_transfer<Q>(state, Ops::kBatch);
}
void BM_TransferBlocking(benchmark::State& state) {
  run_transfer<Portico>(state, Ops::kBlocking);
}

// glibc takes a pthread mutex without an atomic instruction while the process
// has never had a second thread (and never goes back once it has). A
// single-benchmark run such as --benchmark_filter=PushPopPair would otherwise
// time the mutex+deque as no server ever sees it (8.7 against 28.6 ns a pair
// on the 2-vCPU machine, 2026-12-04): start and join one thread first, as the
// Transfer cases do in a full run.
void become_multithreaded() {
  static const bool done = [] {
    std::thread([] {}).join();
    return true;
  }();
  (void)done;
}

template <class Q>
void BM_PushPopPair(benchmark::State& state) {
  become_multithreaded();
  auto queue = std::make_unique<Q>();
  typename Q::Producer producer(*queue);
  typename Q::Consumer consumer(*queue);
  std::uint64_t v = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(producer.push(v));
    benchmark::DoNotOptimize(consumer.pop(v));
    ++v;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// The floor under any MPMC push+pop pair without per-producer handles: a push
// must claim its slot and a pop its item with one atomic read-modify-write
// each (both sides have several parties to agree among), and on x86 every
// such instruction is locked. Two compare-exchanges, on two lines as the
// queue's counters are, with the load that supplies each expected value.
void BM_LockedPairFloor(benchmark::State& state) {
  struct alignas(128) Counter {
    std::atomic<std::uint64_t> value{0};
  };
  auto counters = std::make_unique<Counter[]>(2);
  for (auto _ : state) {
    for (int i = 0; i < 2; ++i) {
      std::uint64_t seen = counters[i].value.load(std::memory_order_relaxed);
      benchmark::DoNotOptimize(counters[i].value.compare_exchange_weak(
          seen, seen + 1, std::memory_order_relaxed, std::memory_order_relaxed));
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_LockedPairFloor)->Name("PushPopPair/floor_two_locked_ops");

void transfer_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"P", "C"});
  b->Args({1, 1})->Args({2, 2})->Args({4, 4});
  b->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
}

#define PORTICO_QUEUE_BENCH(Q)                    \
  BENCHMARK_TEMPLATE(BM_Transfer, Q)              \
      ->Name(std::string("Transfer/") + Q::kName) \
      ->Apply(transfer_shapes);                   \
  BENCHMARK_TEMPLATE(BM_PushPopPair, Q)->Name(std::string("PushPopPair/") + Q::kName)

PORTICO_QUEUE_BENCH(Portico);
PORTICO_QUEUE_BENCH(MutexDeque);
BENCHMARK_TEMPLATE(BM_TransferBatch, Portico)
    ->Name("TransferBatch/portico")
    ->Apply(transfer_shapes);
BENCHMARK(BM_TransferBlocking)->Name("TransferBlocking/portico")->Apply(transfer_shapes);
#if PORTICO_HAVE_MOODYCAMEL
PORTICO_QUEUE_BENCH(Moodycamel);
PORTICO_QUEUE_BENCH(MoodycamelTokens);
BENCHMARK_TEMPLATE(BM_TransferBatch, Moodycamel)
    ->Name("TransferBatch/moodycamel")
    ->Apply(transfer_shapes);
BENCHMARK_TEMPLATE(BM_TransferBatch, MoodycamelTokens)
    ->Name("TransferBatch/moodycamel_tokens")
    ->Apply(transfer_shapes);
#endif
#if PORTICO_HAVE_BOOST_LOCKFREE
PORTICO_QUEUE_BENCH(BoostLockfree);
#endif

}  // namespace

BENCHMARK_MAIN();
