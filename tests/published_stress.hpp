// The reader side of a Published<T> stress test, shared by published_test
// (a configuration snapshot) and router_publish_test (route tables).
#pragma once

#include <atomic>
#include <thread>
#include <vector>

namespace portico::testing {

struct StressCounts {
  long reads = 0;
  int errors = 0;
};

// Starts `reader_count` threads, each registered with `published`, that call
// `read(reader, last)` until `publish_all()` (run on this thread) returns.
// Publishing starts once every reader has read once, so the readers overlap
// the publishing however the threads are scheduled.
// `read` returns false on anything inconsistent and keeps in `last` the
// generation it saw, so it can check that snapshots never go back. A reader
// passes a quiescent point every 16 reads (one event-loop iteration) and
// goes offline and online again every 1024 (an idle reactor).
template <class P, class Read, class PublishAll>
StressCounts stress_readers(P& published, int reader_count, Read read, PublishAll publish_all) {
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::atomic<int> errors{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < reader_count; ++r) {
    threads.emplace_back([&] {
      auto reader = published.register_reader();
      if (!reader) {
        errors.fetch_add(1);
        started.fetch_add(1);
        return;
      }
      long local = 0;
      int last = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!read(*reader, last)) errors.fetch_add(1);
        if (++local == 1) started.fetch_add(1);
        if (local % 16 == 0) reader->quiescent();
        if (local % 1024 == 0) {
          reader->offline();
          reader->online();
        }
      }
      reads.fetch_add(local);
    });
  }
  while (started.load() < reader_count) std::this_thread::yield();
  publish_all();
  stop.store(true);
  for (auto& t : threads) t.join();
  return {reads.load(), errors.load()};
}

}  // namespace portico::testing
