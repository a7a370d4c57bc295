// Proves that proxying allocates nothing per request in steady state (issue
// 14, "Done when": zero heap allocations per proxied keep-alive request
// after warm-up). The global operator new is replaced by one that counts on
// every thread but the test's own (the client, which allocates freely): the
// gateway's reactor and the upstream portico Server, both in this process,
// are counted together — the upstream's own share is zero per request
// (server_alloc_test), so the whole count is the gateway's.
// Counted: every form of the global operator new (nothrow too). Not
// counted: connection state from a reactor's mimalloc heap (StateHeap),
// made per connection, not per request — and these requests share one
// client and one pooled upstream connection.
// PORTICO_ALLOC_TRACE=1 prints a backtrace for each allocation counted in a
// measured window, to find the caller when the count is not zero.
#include <execinfo.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "portico/gateway.hpp"
#include "test_client.hpp"

namespace {
std::atomic<std::size_t> g_allocations{0};
// Set on the test's thread: its allocations are not the proxy's.
thread_local bool t_client_thread = false;
thread_local bool t_in_trace = false;
std::atomic<bool> g_trace{false};  // a measured window is open and tracing was asked for

void count_allocation() {
  if (t_client_thread) return;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (g_trace.load(std::memory_order_relaxed) && !t_in_trace) {
    t_in_trace = true;
    void* frames[32];
    const int depth = ::backtrace(frames, 32);
    static constexpr char kMark[] = "---- allocation in the measured window\n";
    (void)!::write(2, kMark, sizeof kMark - 1);
    ::backtrace_symbols_fd(frames, depth, 2);
    t_in_trace = false;
  }
}

void* counted_alloc(std::size_t size) {
  count_allocation();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  count_allocation();
  const auto alignment = static_cast<std::size_t>(align);
  const std::size_t rounded = (size + alignment - 1) / alignment * alignment;
  if (void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) {
  return counted_alloc(size);
}
void* operator new[](std::size_t size) {
  return counted_alloc(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
// The nothrow forms too: the parser grows its field lists with them, and
// ASan pairs a new[] it served with its own delete[] only.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(size, align);
  } catch (...) {
    return nullptr;
  }
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

namespace portico::testing {
namespace {

constexpr int kWarmup = 1000;
constexpr int kMeasured = 10'000;

class GatewayAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    t_client_thread = true;
    ServerOptions options;
    options.port = 0;
    options.handle_signals = false;
    options.worker_threads = 1;
    upstream_ = std::make_unique<Server>(options);
    upstream_->get("/plaintext", [](Request&, Response& res) { res.text("Hello, World!"); });
    upstream_->get("/users/:id",
                   [](Request& req, Response& res) { res.format("user {}", req.param("id")); });
    upstream_->get("/allocates", [](Request&, Response& res) {
      auto* leak_free = new std::string(200, 'a');
      res.text(*leak_free);
      delete leak_free;
    });
    ASSERT_FALSE(upstream_->start()) << upstream_->setup_error();
    const std::string yaml =
        "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
        "clusters:\n"
        "  app:\n"
        "    endpoints: [{address: \"127.0.0.1:" +
        std::to_string(upstream_->port()) +
        "\"}]\n"
        "routes:\n"
        "  - path: /plaintext\n"
        "    cluster: app\n"
        "  - path: /allocates\n"
        "    cluster: app\n"
        "  - path: /api/users/:id\n"
        "    cluster: app\n"
        "    strip_prefix: /api\n"
        "    request_headers: {add: {X-Gateway: portico}}\n"
        "    response_headers: {add: {X-Served-By: portico}, remove: [Server]}\n";
    ConfigResult config = GatewayConfig::parse(yaml, "alloc.yaml");
    ASSERT_TRUE(config.ok());
    gateway_ = std::make_unique<Gateway>(std::move(*config.config));
    ASSERT_FALSE(gateway_->start()) << gateway_->setup_error();
  }
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
    if (upstream_) {
      upstream_->stop();
      upstream_->wait();
    }
  }

  // Sends `warmup + measured` keep-alive GETs for `target` (with an id
  // appended when it ends in '/') and returns the allocations made
  // meanwhile off the test's thread.
  std::size_t allocations_for(TestClient& client, const std::string& target, int warmup,
                              int measured) {
    std::size_t before = 0;
    const bool trace = std::getenv("PORTICO_ALLOC_TRACE") != nullptr;
    for (int i = 0; i < warmup + measured; ++i) {
      if (i == warmup) {
        before = g_allocations.load();
        g_trace = trace;
      }
      const std::string path = target.back() == '/' ? target + std::to_string(i % 1000) : target;
      const ReadResult r = client.request(request_bytes("GET", path));
      if (!r.ok() || r.response.status != 200) {
        g_trace = false;
        ADD_FAILURE() << "request " << i << " " << path << ": " << to_string(r.outcome) << " "
                      << r.error << " " << r.response.status;
        return static_cast<std::size_t>(-1);
      }
    }
    g_trace = false;
    return g_allocations.load() - before;
  }

  std::unique_ptr<Server> upstream_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayAllocTest, ProxiedPlaintextAllocatesNothingPerRequest) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/plaintext", kWarmup, kMeasured), 0u);
}

// A route that strips a prefix, adds a request field, edits the response,
// and a target that changes every request.
TEST_F(GatewayAllocTest, ProxiedParamRouteWithEditsAllocatesNothingPerRequest) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(allocations_for(client, "/api/users/", kWarmup, kMeasured), 0u);
}

TEST_F(GatewayAllocTest, CounterCountsAllocationsOffTheClientThread) {
  TestClient client(gateway_->port());
  ASSERT_TRUE(client.connected());
  EXPECT_GE(allocations_for(client, "/allocates", 10, 100), 100u);
}

}  // namespace
}  // namespace portico::testing
