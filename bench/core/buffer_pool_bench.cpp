// BufferPool against the general-purpose allocators for the same block sizes:
// glibc malloc (new[]/delete[]) and mimalloc (mi_malloc/mi_free, dlopen'd with
// RTLD_LOCAL so it does not replace the process allocator of the other cases).
//
//   *_AcquireRelease   one block out at a time: acquire + release per item
//   *_Burst64          64 blocks out, then all returned (LIFO), per item
//   BM_Release<Alloc, false|true>  only the release of 1024 blocks, timed
//                      on the releasing thread: false = local (the owner),
//                      true = another thread, pinned to another CPU (label
//                      "cross-core"). Both time their releases on the same
//                      CPU, the second: the owner runs there when local, the
//                      releaser when remote (the owner then on the first).
//                      The releasing thread first takes the handles into its
//                      own vector and reads each block and descriptor, as a
//                      consumer would. The owner drains the remote thread's
//                      ring when its free list runs dry, i.e. in the next
//                      iteration's acquires. PoolAllocRing64:
//                      remote_ring_slots = 64, so 960 of each 1024 remote
//                      releases find the ring full and take the CAS stack.
//   BM_ReclaimRemote   the owner's side: reclaim() of 1024 blocks another
//                      thread, on the other CPU, released into its ring.
//
// Quote only ratios between cases of one run, interleaved and repeated, e.g.
//   buffer_pool_bench --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
// or issue 3's goals paired over rounds: bench/core/core_goals.sh.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "portico/buffer_pool.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Mimalloc {
  void* (*malloc)(std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
};

const Mimalloc& mimalloc() {
  static const Mimalloc loaded = [] {
    Mimalloc m;
    void* lib = ::dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return m;
    m.malloc = reinterpret_cast<void* (*)(std::size_t)>(::dlsym(lib, "mi_malloc"));
    m.free = reinterpret_cast<void (*)(void*)>(::dlsym(lib, "mi_free"));
    return m;
  }();
  return loaded;
}

portico::BufferPool make_pool(std::size_t block_size, std::size_t ring_slots = 0) {
  portico::BufferPoolOptions options;
  options.block_size = block_size;
  options.remote_ring_slots = ring_slots;
  options.max_blocks = 2048;
  // Benchmarks measure the release build of the pool: no debug poisoning.
  options.poison = portico::BufferPoolOptions::Poison::kNever;
  return portico::BufferPool(options);
}

// Allocator adapters with one shape, so each case is written once.
template <std::size_t kRingSlots>
struct PoolAllocT {
  using Handle = portico::Buffer;
  explicit PoolAllocT(std::size_t size) : pool(make_pool(size, kRingSlots)) {
    pool.reserve(pool.max_blocks());
  }
  Handle get() {
    Handle h = pool.acquire();
    // max_blocks covers every case's peak; running dry would be a bench bug.
    if (!h) std::abort();
    return h;
  }
  static char* bytes(Handle& h) { return h.prepare().data(); }
  void put(Handle& h) { h.reset(); }
  portico::BufferPool pool;
};
using PoolAlloc = PoolAllocT<0>;        // the default ring: max_blocks slots, up to 1024
using PoolAllocRing64 = PoolAllocT<64>;  // a ring smaller than the burst
struct GlibcAlloc {
  using Handle = char*;
  explicit GlibcAlloc(std::size_t bytes) : size(bytes) {}
  Handle get() const { return new char[size]; }
  static char* bytes(Handle h) { return h; }
  static void put(Handle h) { delete[] h; }
  std::size_t size;
};
struct MimallocAlloc {
  using Handle = char*;
  explicit MimallocAlloc(std::size_t bytes) : size(bytes) {}
  Handle get() const { return static_cast<char*>(mimalloc().malloc(size)); }
  static char* bytes(Handle h) { return h; }
  static void put(Handle h) { mimalloc().free(h); }
  std::size_t size;
};

template <typename Alloc>
bool available(benchmark::State& state) {
  if constexpr (std::is_same_v<Alloc, MimallocAlloc>) {
    if (mimalloc().malloc == nullptr) {
      state.SkipWithError("libmimalloc.so.2 not found");
      return false;
    }
  }
  return true;
}

template <typename Alloc>
void BM_AcquireRelease(benchmark::State& state) {
  if (!available<Alloc>(state)) return;
  Alloc alloc(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto h = alloc.get();
    benchmark::DoNotOptimize(Alloc::bytes(h));
    alloc.put(h);
  }
  state.SetItemsProcessed(state.iterations());
}

template <typename Alloc>
void BM_Burst64(benchmark::State& state) {
  if (!available<Alloc>(state)) return;
  Alloc alloc(static_cast<std::size_t>(state.range(0)));
  std::vector<typename Alloc::Handle> held(64);
  for (auto _ : state) {
    for (auto& h : held) {
      h = alloc.get();
      benchmark::DoNotOptimize(Alloc::bytes(h));
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) alloc.put(*it);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// Pins the calling thread to one CPU; false if not allowed.
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
}

// The first two CPUs this process may run on, or {-1, -1} with fewer.
std::pair<int, int> two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return {-1, -1};
  int found[2] = {-1, -1};
  int n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; ++cpu) {
    if (CPU_ISSET(cpu, &set)) found[n++] = cpu;
  }
  return n == 2 ? std::pair{found[0], found[1]} : std::pair{-1, -1};
}

// Pins the benchmark thread (the pool's owner) to one of the first two CPUs
// for its lifetime, restoring the old affinity after; a Helper made meanwhile
// runs on the other, so "remote" means another core, not a thread
// time-sliced on the same one (where no cache line moves and a remote
// release looks cheaper than it is).
class PinnedPair {
 public:
  enum class Owner { kFirstCpu, kSecondCpu };
  explicit PinnedPair(Owner owner) {
    ::pthread_getaffinity_np(::pthread_self(), sizeof saved_, &saved_);
    cpus_ = two_cpus();
    if (owner == Owner::kSecondCpu) std::swap(cpus_.first, cpus_.second);
    pinned_ = cpus_.first >= 0 && pin_to(cpus_.first);
  }
  ~PinnedPair() { ::pthread_setaffinity_np(::pthread_self(), sizeof saved_, &saved_); }
  int helper_cpu() const { return pinned_ ? cpus_.second : -1; }

 private:
  cpu_set_t saved_;
  std::pair<int, int> cpus_;
  bool pinned_ = false;
};

// A second thread that runs one job at a time for the benchmark thread; it
// spins then yields while idle, so hand-over costs no syscall.
class Helper {
 public:
  explicit Helper(int cpu = -1) : thread_([this, cpu] {
    if (cpu >= 0) pin_to(cpu);
    loop();
  }) {}
  ~Helper() {
    run([this] { stop_ = true; });
    thread_.join();
  }
  void run(std::function<void()> job) {
    job_ = std::move(job);
    const unsigned ticket = posted_.load(std::memory_order_relaxed) + 1;
    posted_.store(ticket, std::memory_order_release);
    while (done_.load(std::memory_order_acquire) != ticket) std::this_thread::yield();
  }

 private:
  void loop() {
    unsigned seen = 0;
    while (!stop_) {
      unsigned ticket;
      while ((ticket = posted_.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
      seen = ticket;
      job_();
      done_.store(ticket, std::memory_order_release);
    }
  }
  std::function<void()> job_;
  bool stop_ = false;
  std::atomic<unsigned> posted_{0};
  std::atomic<unsigned> done_{0};
  std::thread thread_;
};

constexpr int kReleaseBatch = 1024;

template <typename Alloc, bool kRemote>
void BM_Release(benchmark::State& state) {
  if (!available<Alloc>(state)) return;
  // The timed releases run on the second CPU in both cases: by the owner
  // there when local, by a Helper there (the owner on the first) when remote.
  // The two vCPUs' speeds differ by up to a third at times (other tenants on
  // their hosts' cores); timing local on one and remote on the other put that
  // difference into the ratio.
  PinnedPair pinned(kRemote ? PinnedPair::Owner::kFirstCpu : PinnedPair::Owner::kSecondCpu);
  Alloc alloc(static_cast<std::size_t>(state.range(0)));
  Helper helper(pinned.helper_cpu());
  if (kRemote) state.SetLabel(pinned.helper_cpu() >= 0 ? "cross-core" : "not pinned");
  std::vector<typename Alloc::Handle> held(kReleaseBatch);
  std::vector<typename Alloc::Handle> taken(kReleaseBatch);
  double seconds = 0;
  auto release_all = [&] {
    // Untimed, as a consumer would have: take the handles over (a consumer
    // holds the handles it was given in its own memory) and read each block
    // and its descriptor.
    for (std::size_t i = 0; i < held.size(); ++i) taken[i] = std::move(held[i]);
    for (auto& h : taken) benchmark::DoNotOptimize(*Alloc::bytes(h));
    if constexpr (std::is_same_v<typename Alloc::Handle, portico::Buffer>) {
      for (auto& h : taken) benchmark::DoNotOptimize(h.shared());
    }
    const auto start = Clock::now();
    for (auto& h : taken) alloc.put(h);
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  };
  for (auto _ : state) {
    for (auto& h : held) {
      h = alloc.get();
      *Alloc::bytes(h) = 1;
    }
    if constexpr (kRemote) {
      helper.run(release_all);
    } else {
      release_all();
    }
    state.SetIterationTime(seconds);
  }
  state.SetItemsProcessed(state.iterations() * kReleaseBatch);
}

// The owner's side of the hand-back: reclaim() taking 1024 blocks that another
// thread (on another CPU) released into its ring, timed on the owner. The
// other side of BM_Release<PoolAlloc, true>: a ring that made releases cheap
// by moving their cost into the drain would show here.
void BM_ReclaimRemote(benchmark::State& state) {
  PinnedPair pinned(PinnedPair::Owner::kFirstCpu);
  PoolAlloc alloc(static_cast<std::size_t>(state.range(0)));
  Helper helper(pinned.helper_cpu());
  std::vector<portico::Buffer> held(kReleaseBatch);
  for (auto _ : state) {
    for (auto& h : held) h = alloc.get();
    helper.run([&] {
      for (auto& h : held) h.reset();
    });
    const auto start = Clock::now();
    const std::size_t reclaimed = alloc.pool.reclaim();
    // Until its stores are done too: without the fence the clock would stop
    // with the last few dozen descriptor writes still in the store buffer.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - start).count());
    if (reclaimed != kReleaseBatch) {
      state.SkipWithError("reclaim() did not take every block back");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kReleaseBatch);
}

#define PORTICO_SIZES ->Arg(4096)->Arg(16384)

BENCHMARK(BM_AcquireRelease<PoolAlloc>) PORTICO_SIZES;
BENCHMARK(BM_AcquireRelease<GlibcAlloc>) PORTICO_SIZES;
BENCHMARK(BM_AcquireRelease<MimallocAlloc>) PORTICO_SIZES;
BENCHMARK(BM_Burst64<PoolAlloc>) PORTICO_SIZES;
BENCHMARK(BM_Burst64<GlibcAlloc>) PORTICO_SIZES;
BENCHMARK(BM_Burst64<MimallocAlloc>) PORTICO_SIZES;
BENCHMARK(BM_Release<PoolAlloc, false>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<PoolAlloc, true>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<PoolAllocRing64, false>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<PoolAllocRing64, true>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_ReclaimRemote)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<GlibcAlloc, false>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<GlibcAlloc, true>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<MimallocAlloc, false>)->Arg(16384)->UseManualTime();
BENCHMARK(BM_Release<MimallocAlloc, true>)->Arg(16384)->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
