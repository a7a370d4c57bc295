// The Server under concurrent load (label `concurrent`: also run under
// TSan): many keep-alive clients against two reactors with every response
// checked, route swaps while clients hammer, shutdown under load (every
// request gets a whole response or a clean close — never a hang), blocking
// handlers on the worker pool, and deferred responses completed by other
// threads. Each test stays well under 10 s under TSan.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

// Failures seen by client threads, reported once by the test thread.
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    if (messages_.size() < 10) messages_.push_back(std::move(what));
    ++count_;
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::string report() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& m : messages_) out += m + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> messages_;
  std::size_t count_ = 0;
};

// A counter the test thread can wait on.
class Progress {
 public:
  void add() {
    const std::uint64_t n = count_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n % 10 == 0) {
      std::lock_guard lock(mutex_);
      changed_.notify_all();
    }
  }
  std::uint64_t value() const { return count_.load(std::memory_order_relaxed); }
  // Waits until value() >= target or `stop` is set, at most `bound`.
  bool wait_for(std::uint64_t target, const std::atomic<bool>& stop,
                std::chrono::milliseconds bound = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, bound, [&] {
      return value() >= target || stop.load(std::memory_order_relaxed);
    });
  }
  void wake() {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  }

 private:
  std::atomic<std::uint64_t> count_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
};

std::string describe(const ReadResult& r, std::string_view request) {
  return std::string(to_string(r.outcome)) + " (" + r.error + ") for " + printable(request, 200) +
         (r.ok() ? " got " + printable(r.response.raw, 300) : std::string());
}

// Empty when `r` is a 200 carrying `body`; otherwise what went wrong.
std::string mismatch(const ReadResult& r, std::string_view request, std::string_view body) {
  if (r.ok() && r.response.status == 200 && r.response.body == body) return {};
  return describe(r, request) + " want body " + std::string(body);
}

void load_routes(Server& server) {
  server.get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
  server.get("/users/:id",
             [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
  server.post("/echo", [](Request& req, Response& res) { res.body(req.body(), "text/plain"); });
  RouteOptions blocking;
  blocking.blocking = true;
  server.get("/work/:n", [](Request& req, Response& res) {
    std::uint64_t n = 0;
    for (const char c : req.param("n")) n = n * 10 + static_cast<std::uint64_t>(c - '0');
    std::uint64_t sum = 0;
    for (std::uint64_t i = 1; i <= n; ++i) sum += i;
    res.format("sum {}", sum);
  }, std::move(blocking));
}

// One request of a client's mix and what must come back.
struct Exchange {
  std::string request;
  std::string body;
};
Exchange mixed_exchange(int client, int i) {
  const std::string tag = std::to_string(client) + "-" + std::to_string(i);
  switch (i % 4) {
    case 0: return {request_bytes("GET", "/plaintext"), "Hello, World!"};
    case 1: return {request_bytes("GET", "/users/" + tag), "user " + tag};
    case 2: return {request_bytes("POST", "/echo", "", "payload " + tag), "payload " + tag};
    default: {
      const int n = 100 + i;
      return {request_bytes("GET", "/work/" + std::to_string(n)),
              "sum " + std::to_string(n * (n + 1) / 2)};
    }
  }
}

using ServerConcurrentTest = ServerFixture;

TEST_F(ServerConcurrentTest, ManyKeepAliveClients) {
  start_server({.threads = 2}, load_routes);
  constexpr int kClients = 8;
  constexpr int kRequests = 200;
  Failures failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      if (!client.connected()) return failures.add("connect failed");
      for (int i = 0; i < kRequests; ++i) {
        const Exchange x = mixed_exchange(c, i);
        const std::string wrong = mismatch(client.request(x.request), x.request, x.body);
        if (!wrong.empty()) return failures.add(wrong);
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  const ServerStats stats = server().stats();
  EXPECT_EQ(stats.requests, static_cast<std::uint64_t>(kClients * kRequests));
  EXPECT_EQ(stats.connections_accepted, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(stats.responses_4xx + stats.responses_5xx, 0u);
}

TEST_F(ServerConcurrentTest, ManyConnectionsAtOnce) {
  start_server({.threads = 2}, load_routes);
  constexpr int kThreads = 4;
  constexpr int kConnectionsEach = 50;
  Failures failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<TestClient> clients;
      std::vector<Exchange> exchanges;
      for (int i = 0; i < kConnectionsEach; ++i) {
        clients.emplace_back(port(), 10s);
        exchanges.push_back(mixed_exchange(t, i));
        if (!clients.back().send(exchanges.back().request)) return failures.add("send failed");
      }
      for (int i = 0; i < kConnectionsEach; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const std::string wrong =
            mismatch(clients[k].read_response(), exchanges[k].request, exchanges[k].body);
        if (!wrong.empty()) return failures.add(wrong);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_EQ(server().stats().connections_accepted,
            static_cast<std::uint64_t>(kThreads * kConnectionsEach));
}

TEST_F(ServerConcurrentTest, PipelinedClients) {
  start_server({.threads = 2}, load_routes);
  constexpr int kClients = 4;
  constexpr int kRounds = 20;
  constexpr int kDepth = 16;
  Failures failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      for (int round = 0; round < kRounds; ++round) {
        std::string batch;
        std::vector<std::string> bodies;
        for (int d = 0; d < kDepth; ++d) {
          const Exchange x = mixed_exchange(c, round * kDepth + d);
          batch += x.request;
          bodies.push_back(x.body);
        }
        if (!client.send(batch)) return failures.add("send failed");
        for (const std::string& body : bodies) {
          const std::string wrong = mismatch(client.read_response(), batch, body);
          if (!wrong.empty()) return failures.add(wrong);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_EQ(server().stats().requests, static_cast<std::uint64_t>(kClients * kRounds * kDepth));
}

TEST_F(ServerConcurrentTest, RouteSwapsUnderLoad) {
  ServerOptions options;
  options.threads = 2;
  start_server(options, [](Server& s) {
    s.get("/plaintext", [](Request&, Response& res) { res.text("v0"); });
    s.get("/users/:id", [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
  });
  constexpr int kClients = 4;
  // Each client sends at least kRequests, and keeps going (up to kMaxRequests)
  // until kMinSwaps swaps happened while it ran: however the threads are
  // scheduled, the swaps land under load.
  constexpr int kRequests = 300;
  constexpr int kMaxRequests = 20'000;
  constexpr int kMinSwaps = 20;
  Failures failures;
  Progress progress;
  std::atomic<bool> clients_done{false};
  std::atomic<int> swaps{0};
  std::atomic<int> seen_v0{0}, seen_odd{0}, seen_even{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      for (int i = 0; i < kMaxRequests; ++i) {
        if (i >= kRequests && swaps.load(std::memory_order_relaxed) >= kMinSwaps) break;
        const bool plain = i % 2 == 0;
        const std::string tag = std::to_string(c) + "x" + std::to_string(i);
        const std::string req = request_bytes("GET", plain ? "/plaintext" : "/users/" + tag);
        const ReadResult r = client.request(req);
        if (!r.ok() || r.response.status != 200) return failures.add(describe(r, req));
        if (plain) {
          const std::string& b = r.response.body;
          if (b == "v0") {
            seen_v0.fetch_add(1, std::memory_order_relaxed);
          } else if (b.size() > 1 && b[0] == 'v') {
            (std::stoi(b.substr(1)) % 2 ? seen_odd : seen_even).fetch_add(1, std::memory_order_relaxed);
          } else {
            return failures.add("unexpected body " + printable(b));
          }
        } else if (r.response.body != "user " + tag) {
          return failures.add(describe(r, req));
        }
        progress.add();
      }
    });
  }
  // Swap tables every ten responses while the clients run.
  std::thread swapper([&] {
    std::uint64_t next = 10;
    while (!clients_done.load(std::memory_order_relaxed)) {
      Routes table;
      const std::string body = "v" + std::to_string(swaps.load() + 1);
      if (table.add(Method::Get, "/plaintext", [body](Request&, Response& res) { res.text(body); }) ||
          table.add(Method::Get, "/users/:id", [](Request& req, Response& res) {
            res.format("user {}", req.param("id"));
          })) {
        failures.add("Routes::add failed");
        return;
      }
      server().routes(std::move(table));
      swaps.fetch_add(1);
      progress.wait_for(next, clients_done);
      next = progress.value() + 10;
    }
  });
  for (auto& t : clients) t.join();
  clients_done.store(true);
  progress.wake();
  swapper.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_GE(swaps.load(), kMinSwaps);
  EXPECT_GT(seen_odd.load() + seen_even.load(), 0) << "no request saw a swapped-in table";
  EXPECT_GT(seen_odd.load(), 0);
  EXPECT_GT(seen_even.load(), 0);
  EXPECT_EQ(server().stats().requests, progress.value());
  EXPECT_GE(progress.value(), static_cast<std::uint64_t>(kClients * kRequests));
}

TEST_F(ServerConcurrentTest, ShutdownUnderLoad) {
  ServerOptions options;
  options.threads = 2;
  options.worker_threads = 2;
  options.shutdown_timeout = 3s;
  start_server(options, load_routes);
  constexpr int kClients = 6;
  Failures failures;
  Progress progress;
  std::atomic<bool> finished{false};
  std::atomic<int> clean_closes{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::optional<TestClient> client;
      for (int i = 0; !finished.load(std::memory_order_relaxed); ++i) {
        if (!client) {
          client.emplace(port(), 5s);
          if (!client->connected()) return;  // nothing listens any more: done
        }
        const Exchange x = mixed_exchange(c, i);
        if (!client->send(x.request)) {
          clean_closes.fetch_add(1, std::memory_order_relaxed);
          client.reset();
          continue;
        }
        const ReadResult r = client->read_response();
        if (r.outcome == Outcome::kClosed || r.outcome == Outcome::kReset) {
          clean_closes.fetch_add(1, std::memory_order_relaxed);
          client.reset();
          continue;
        }
        if (!r.ok()) return failures.add(describe(r, x.request));
        if (r.response.status == 503) {
          if (!r.response.header("Retry-After")) failures.add("503 without Retry-After");
        } else if (r.response.status != 200 || r.response.body != x.body) {
          return failures.add(describe(r, x.request) + " want body " + x.body);
        }
        progress.add();
        if (r.response.header("Connection") == "close") client.reset();
      }
    });
  }
  std::atomic<bool> never{false};
  ASSERT_TRUE(progress.wait_for(300, never)) << "clients made no progress: " << failures.report();
  const auto stop_at = std::chrono::steady_clock::now();
  const std::uint64_t served_before_stop = progress.value();
  server().stop();
  server().wait();
  const auto stopped_in = std::chrono::steady_clock::now() - stop_at;
  const std::uint64_t served_after_stop = progress.value() - served_before_stop;
  finished.store(true);
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_LT(stopped_in, 5s) << "stop() took longer than shutdown_timeout allows";
  // Nothing here is slow: once the requests in flight at stop() are answered
  // the connections should close, not serve new requests until the deadline.
  EXPECT_LT(stopped_in, 2s) << "stop()+wait() took "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(stopped_in).count()
                            << " ms (shutdown_timeout 3 s) and served " << served_after_stop
                            << " requests after stop(): keep-alive connections kept being served";
  EXPECT_FALSE(server().running());
}

TEST_F(ServerConcurrentTest, OffloadedHandlersUnderLoad) {
  ServerOptions options;
  options.threads = 2;
  options.worker_threads = 2;
  start_server(options, load_routes);
  constexpr int kBlockingClients = 4;
  constexpr int kInlineClients = 2;
  constexpr int kRequests = 150;
  Failures failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kBlockingClients + kInlineClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      for (int i = 0; i < kRequests; ++i) {
        // Blocking clients ask the workers; the others the reactors.
        const Exchange x = c < kBlockingClients ? mixed_exchange(c, 4 * i + 3)
                                                : mixed_exchange(c, 4 * i + i % 3);
        const std::string wrong = mismatch(client.request(x.request), x.request, x.body);
        if (!wrong.empty()) return failures.add(wrong);
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_EQ(server().stats().rejected_503, 0u);
}

TEST_F(ServerConcurrentTest, OverloadedWorkersAnswer503NeverHang) {
  ServerOptions options;
  options.threads = 2;
  options.worker_threads = 1;
  options.worker_queue_capacity = 2;
  start_server(options, load_routes);
  constexpr int kClients = 8;
  constexpr int kRequests = 60;
  Failures failures;
  std::atomic<std::uint64_t> rejected{0}, served{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      for (int i = 0; i < kRequests; ++i) {
        const Exchange x = mixed_exchange(c, 4 * i + 3);
        const ReadResult r = client.request(x.request);
        if (!r.ok()) return failures.add(describe(r, x.request));
        if (r.response.status == 503) {
          if (!r.response.header("Retry-After")) return failures.add("503 without Retry-After");
          rejected.fetch_add(1, std::memory_order_relaxed);
        } else if (r.response.status == 200 && r.response.body == x.body) {
          served.fetch_add(1, std::memory_order_relaxed);
        } else {
          return failures.add(describe(r, x.request) + " want body " + x.body);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
  EXPECT_EQ(served.load() + rejected.load(), static_cast<std::uint64_t>(kClients * kRequests));
  EXPECT_GT(served.load(), 0u);
  EXPECT_EQ(server().stats().rejected_503, rejected.load());
}

TEST_F(ServerConcurrentTest, DeferredResponsesCompletedByOtherThreads) {
  struct Pending {
    Completion completion;
    Response* response;
    std::string id;
  };
  struct Queue {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Pending> items;
    bool closed = false;
  };
  auto queue = std::make_shared<Queue>();
  ServerOptions options;
  options.threads = 2;
  start_server(options, [queue](Server& s) {
    s.get("/async/:id", [queue](Request& req, Response& res) {
      {
        std::lock_guard lock(queue->mutex);
        queue->items.push_back(Pending{res.defer(), &res, std::string(req.param("id"))});
      }
      queue->ready.notify_one();
    });
  });
  std::vector<std::thread> completers;
  for (int i = 0; i < 2; ++i) {
    completers.emplace_back([queue] {
      for (;;) {
        std::unique_lock lock(queue->mutex);
        queue->ready.wait(lock, [&] { return queue->closed || !queue->items.empty(); });
        if (queue->items.empty()) return;
        Pending p = std::move(queue->items.front());
        queue->items.pop_front();
        lock.unlock();
        p.response->format("done {}", p.id);
        p.completion.done();
      }
    });
  }
  constexpr int kClients = 4;
  constexpr int kRequests = 200;
  Failures failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TestClient client(port(), 10s);
      for (int i = 0; i < kRequests; ++i) {
        const std::string id = std::to_string(c) + "." + std::to_string(i);
        const std::string req = request_bytes("GET", "/async/" + id);
        const ReadResult r = client.request(req);
        if (!r.ok() || r.response.status != 200 || r.response.body != "done " + id) {
          return failures.add(describe(r, req));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  {
    std::lock_guard lock(queue->mutex);
    queue->closed = true;
  }
  queue->ready.notify_all();
  for (auto& t : completers) t.join();
  EXPECT_EQ(failures.count(), 0u) << failures.report();
}

}  // namespace
}  // namespace portico::testing
