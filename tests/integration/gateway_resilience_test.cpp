// Resilience over real loopback sockets: upstreams that fail on purpose
// (5xx, refused connects, failing or hanging health checks) behind the
// gateway, and what clients and upstreams saw — which endpoint got how many
// requests, when an endpoint left the rotation and came back (/clusters).
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>
#include <string>
#include <thread>

#include "gateway_test_support.hpp"
#include "metrics_checks.hpp"
#include "portico/gateway.hpp"
#include "raw_upstream.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

using namespace std::chrono_literals;

// An upstream whose /work answers `status` and whose /healthz answers
// `health`, counting the requests of each.
struct Upstream {
  std::atomic<int> status{200};
  std::atomic<int> health{200};
  std::atomic<int> work_requests{0};
  std::atomic<int> health_requests{0};
  std::atomic<bool> health_agent_ok{true};  // every check said who it is
  std::atomic<int> held_requests{0};
  std::atomic<bool> hold_work{false};  // /work is held like /hold
  std::mutex held_mutex;
  std::vector<Completion> held;  // /hold's answers, sent by release()
  std::string name;
  std::unique_ptr<Server> server;
  std::uint16_t port = 0;

  explicit Upstream(std::string who) : name(std::move(who)) {
    ServerOptions options;
    options.port = 0;
    options.handle_signals = false;
    options.worker_threads = 1;
    server = std::make_unique<Server>(options);
    server->any("/work", [this](Request&, Response& res) {
      work_requests.fetch_add(1);
      if (hold_work.load()) {
        std::lock_guard lock(held_mutex);
        res.status(status.load());
        held.push_back(res.defer());
        held_requests.fetch_add(1);
        return;
      }
      res.status(status.load()).text(name);
    });
    server->post("/echo", [this](Request& req, Response& res) {
      work_requests.fetch_add(1);
      res.body(std::string(req.body()));
    });
    server->get("/hold", [this](Request&, Response& res) {
      std::lock_guard lock(held_mutex);
      held.push_back(res.defer());
      held_requests.fetch_add(1);
    });
    server->get("/healthz", [this](Request& req, Response& res) {
      health_requests.fetch_add(1);
      bool agent = false;
      for (const Header& field : req.headers())
        agent = agent || (field.name == "User-Agent" && field.value == "portico-health-check");
      if (!agent) health_agent_ok.store(false);
      res.status(health.load()).text("health");
    });
    EXPECT_FALSE(server->start()) << server->setup_error();
    port = server->port();
  }
  ~Upstream() {
    release_all();  // a held answer keeps the server's drain waiting
    server->stop();
    server->wait();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  // Answers the oldest held request.
  void release_one() {
    std::lock_guard lock(held_mutex);
    ASSERT_FALSE(held.empty());
    Completion done = std::move(held.front());
    held.erase(held.begin());
    done.write(name);
    done.done();
  }
  void release_all() {
    std::lock_guard lock(held_mutex);
    for (Completion& done : held) {
      done.write(name);
      done.done();
    }
    held.clear();
  }
};

// Polls `condition` (state another thread changes: /clusters, an upstream's
// count) until it holds or 10 s pass. The pause between looks only spares
// the CPU; it orders nothing.
bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// The JSON object of `address` in a /clusters answer.
std::string endpoint_json(const std::string& clusters, const std::string& address) {
  const std::size_t at = clusters.find("\"address\": \"" + address + "\"");
  if (at == std::string::npos) return "<absent>";
  return clusters.substr(at, clusters.find('}', at) - at);
}

// A port on 127.0.0.1 nothing listens on (bound, its number taken, closed).
std::uint16_t refused_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&address), length), 0);
  EXPECT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(s);
  return ntohs(address.sin_port);
}

class ResilienceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<Upstream>("a");
    b_ = std::make_unique<Upstream>("b");
  }
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
  }
  // One cluster `users` of `endpoints` with `settings` (indented lines), and
  // /work routed to it.
  Gateway& start(const std::string& endpoints, const std::string& settings,
                 const std::string& more = {}) {
    const std::string yaml = "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
                             "clusters:\n"
                             "  users:\n"
                             "    endpoints: [" + endpoints + "]\n" + settings + more +
                             "routes:\n"
                             "  - {path: /work, cluster: users}\n"
                             "  - {path: /hold, cluster: users}\n"
                             "  - {path: /echo, cluster: users}\n"
                             "  - {path: /late, cluster: users, timeout: 100ms}\n";
    gateway_ = std::make_unique<Gateway>(parse_config(yaml));
    EXPECT_FALSE(gateway_->start()) << gateway_->setup_error();
    return *gateway_;
  }
  std::string both() const {
    return "{address: \"" + a_->address() + "\"}, {address: \"" + b_->address() + "\"}";
  }
  // GET /work on a new connection: the status, and the body in `body`.
  int get(std::string* body = nullptr, std::string_view fields = {}) {
    TestClient client(gateway_->port());
    const ReadResult r = client.request(request_bytes("GET", "/work", fields));
    EXPECT_TRUE(r.ok()) << r.error;
    if (body != nullptr) *body = r.response.body;
    return r.ok() ? r.response.status : 0;
  }
  std::string endpoint(const Upstream& upstream) const {
    return endpoint_json(gateway_->clusters_json(), upstream.address());
  }
  // Requests the metrics labelled `label` (counted before the answer is
  // written); `fallback` 0 or 1 narrows to that label value.
  std::uint64_t labelled(ErrorLabel label, int fallback = -1) {
    return requests_with(gateway_->server().metrics_snapshot(), label, fallback);
  }

  std::unique_ptr<Upstream> a_, b_;
  std::unique_ptr<Gateway> gateway_;
};

bool has(const std::string& json, std::string_view part) {
  return json.find(part) != std::string::npos;
}

// ---- passive outlier detection ------------------------------------------------------

TEST_F(ResilienceTest, ConsecutiveServerErrorsEjectTheEndpoint) {
  a_->status = 500;
  start(both(), "    outlier_detection: {consecutive_5xx: 3, base_ejection: 60s, max_ejection: 60s}\n");
  int errors = 0;
  for (int i = 0; i < 20; ++i) errors += get() == 500 ? 1 : 0;
  // Round robin: a's three 5xx were requests 1, 3 and 5; then b alone.
  EXPECT_EQ(a_->work_requests.load(), 3);
  EXPECT_EQ(b_->work_requests.load(), 17);
  EXPECT_EQ(errors, 3);
  const std::string a = endpoint(*a_);
  EXPECT_TRUE(has(a, "\"ejections\": 1")) << a;
  EXPECT_FALSE(has(a, "\"ejected_until\": null")) << a;
  EXPECT_TRUE(has(a, "\"healthy\": true")) << a;  // ejected, not unhealthy
  const std::string b = endpoint(*b_);
  EXPECT_TRUE(has(b, "\"ejected_until\": null, \"ejections\": 0")) << b;
}

TEST_F(ResilienceTest, SuccessResetsTheConsecutiveCount) {
  start(both(), "    outlier_detection: {consecutive_5xx: 2, base_ejection: 60s}\n");
  // a alternates 500 and 200: never two 5xx in a row, never ejected.
  for (int i = 0; i < 12; ++i) {
    a_->status = (i / 2) % 2 == 0 ? 500 : 200;
    get();
  }
  EXPECT_EQ(a_->work_requests.load(), 6);
  EXPECT_TRUE(has(endpoint(*a_), "\"ejections\": 0")) << endpoint(*a_);
}

TEST_F(ResilienceTest, AnEjectionEndsByItselfAndTheNextLastsLonger) {
  a_->status = 500;
  start(both(), "    outlier_detection: {consecutive_5xx: 1, base_ejection: 200ms, max_ejection: 10s}\n");
  const auto first = std::chrono::steady_clock::now();
  EXPECT_EQ(get(), 500);  // a: ejected
  ASSERT_TRUE(has(endpoint(*a_), "\"ejections\": 1")) << endpoint(*a_);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(a_->work_requests.load(), 1);
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*a_), "\"ejected_until\": null"); }));
  EXPECT_GE(std::chrono::steady_clock::now() - first, 200ms);
  // Back in rotation: within two requests a gets one, fails, and is out again
  // for twice as long. Timed, like the first, from before the request that
  // ejects it: a time taken after it would be later than the ejection's
  // start, and an ejection of exactly 400 ms would look shorter.
  const auto second = std::chrono::steady_clock::now();
  EXPECT_EQ(get() + get(), 700);
  EXPECT_EQ(a_->work_requests.load(), 2);
  ASSERT_TRUE(has(endpoint(*a_), "\"ejections\": 2")) << endpoint(*a_);
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*a_), "\"ejected_until\": null"); }));
  EXPECT_GE(std::chrono::steady_clock::now() - second, 400ms);
}

TEST_F(ResilienceTest, NeverMoreThanMaxEjectionPercentAtOnce) {
  a_->status = 500;
  b_->status = 500;
  start(both(), "    outlier_detection: {consecutive_5xx: 1, base_ejection: 60s, max_ejection_percent: 50}\n");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(get(), 500);
  // The first to fail is out; the other stays whatever it answers.
  EXPECT_TRUE(has(endpoint(*a_), "\"ejections\": 1")) << endpoint(*a_);
  EXPECT_TRUE(has(endpoint(*b_), "\"ejections\": 0")) << endpoint(*b_);
  EXPECT_EQ(a_->work_requests.load(), 1);
  EXPECT_EQ(b_->work_requests.load(), 9);
}

TEST_F(ResilienceTest, ConnectFailuresEjectTheEndpoint) {
  const std::string dead = "127.0.0.1:" + std::to_string(refused_port());
  start("{address: \"" + dead + "\"}, {address: \"" + b_->address() + "\"}",
        "    outlier_detection: {consecutive_connect_failures: 2, base_ejection: 60s}\n");
  int refused = 0;
  for (int i = 0; i < 12; ++i) refused += get() == 502 ? 1 : 0;
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(b_->work_requests.load(), 10);
  EXPECT_TRUE(has(endpoint_json(gateway_->clusters_json(), dead), "\"ejections\": 1"))
      << gateway_->clusters_json();
}

TEST_F(ResilienceTest, WithoutOutlierDetectionNothingIsEjected) {
  a_->status = 500;
  start(both(), "");
  for (int i = 0; i < 10; ++i) get();
  EXPECT_EQ(a_->work_requests.load(), 5);
  EXPECT_TRUE(has(endpoint(*a_), "\"ejected_until\": null, \"ejections\": 0")) << endpoint(*a_);
}

TEST_F(ResilienceTest, AnEjectionOutlivesAReloadThatKeepsTheEndpoint) {
  a_->status = 500;
  const std::string settings =
      "    outlier_detection: {consecutive_5xx: 1, base_ejection: 60s}\n";
  start(both(), settings);
  EXPECT_EQ(get(), 500);
  ASSERT_TRUE(has(endpoint(*a_), "\"ejections\": 1"));
  const std::string yaml = "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
                           "clusters:\n  users:\n    endpoints: [" + both() + "]\n" + settings +
                           "routes:\n  - {path: /work, cluster: users}\n";
  ASSERT_TRUE(gateway_->reload(parse_config(yaml)).empty());
  EXPECT_TRUE(has(endpoint(*a_), "\"ejections\": 1")) << endpoint(*a_);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(a_->work_requests.load(), 1);
}

// ---- active health checks -------------------------------------------------------------

TEST_F(ResilienceTest, HealthChecksTakeAnEndpointOutAndBringItBack) {
  a_->health = 503;
  start(both(), "    health_check: {path: /healthz, interval: 20ms, timeout: 1s, "
                "healthy_threshold: 2, unhealthy_threshold: 2}\n");
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*a_), "\"healthy\": false"); }))
      << endpoint(*a_);
  EXPECT_GE(a_->health_requests.load(), 2);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(a_->work_requests.load(), 0);
  EXPECT_EQ(b_->work_requests.load(), 6);
  a_->health = 200;
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*a_), "\"healthy\": true"); }))
      << endpoint(*a_);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(a_->work_requests.load(), 3);
  // Checks are not client traffic: /work never saw one, every check said so.
  EXPECT_TRUE(a_->health_agent_ok.load());
  EXPECT_TRUE(b_->health_agent_ok.load());
  EXPECT_TRUE(has(endpoint(*b_), "\"healthy\": true"));
}

TEST_F(ResilienceTest, NoHealthyEndpointIs503AtOnceWithoutConnecting) {
  // An endpoint whose connects never complete: a listener with a full
  // backlog that never accepts. A request sent to it would wait out the
  // (long) connect timeout; once checks found it unhealthy none is sent.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    (void)::connect(s, reinterpret_cast<sockaddr*>(&address), length);
    fillers.push_back(s);
  }
  const std::string hanging = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  start("{address: \"" + hanging + "\"}",
        "    connect_timeout: 60s\n"
        "    health_check: {interval: 20ms, timeout: 50ms, unhealthy_threshold: 2}\n");
  ASSERT_TRUE(wait_until([&] {
    return has(endpoint_json(gateway_->clusters_json(), hanging), "\"healthy\": false");
  })) << gateway_->clusters_json();
  TestClient client(gateway_->port(), 5s);  // far below the connect timeout
  const ReadResult r = client.request(request_bytes("GET", "/work"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 503);
  EXPECT_EQ(r.response.header("Retry-After"), "1");
  EXPECT_EQ(labelled(ErrorLabel::kNoHealthyUpstream), 1u) << gateway_->metrics();
  EXPECT_NE(gateway_->metrics().find("portico_upstream_healthy{cluster=\"users\",endpoint=\"" +
                                     hanging + "\"} 0\n"),
            std::string::npos)
      << gateway_->metrics();
  for (const int s : fillers) ::close(s);
  ::close(listener);
}

TEST_F(ResilienceTest, CanaryFallsBackToTheRoutesClusterWhenItHasNoHealthyEndpoint) {
  const std::string log = ::testing::TempDir() + "resilience_access_log.json";
  std::remove(log.c_str());
  b_->health = 500;
  const std::string yaml =
      "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
      "access_log: {format: json, path: \"" + log + "\"}\n"
      "clusters:\n"
      "  stable:\n    endpoints: [{address: \"" + a_->address() + "\"}]\n"
      "  canary:\n    endpoints: [{address: \"" + b_->address() + "\"}]\n"
      "    health_check: {interval: 20ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1}\n"
      "routes:\n"
      "  - path: /work\n    cluster: stable\n"
      "    canary: [{header: X-Release-Version, value: v2-beta, cluster: canary}]\n";
  gateway_ = std::make_unique<Gateway>(parse_config(yaml));
  ASSERT_FALSE(gateway_->start()) << gateway_->setup_error();
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*b_), "\"healthy\": false"); }));
  std::string body;
  EXPECT_EQ(get(&body, "X-Release-Version: v2-beta\r\n"), 200);
  EXPECT_EQ(body, "a");
  // Counted once the exchange ends, which may be just after its last byte went.
  EXPECT_TRUE(wait_until([&] { return labelled(ErrorLabel::kNone, 1) == 1; }))
      << gateway_->metrics();
  // The canary recovers: its requests return to it.
  b_->health = 200;
  ASSERT_TRUE(wait_until([&] { return has(endpoint(*b_), "\"healthy\": true"); }));
  EXPECT_EQ(get(&body, "X-Release-Version: v2-beta\r\n"), 200);
  EXPECT_EQ(body, "b");
  gateway_->stop();  // a reactor writes its log lines before it exits
  gateway_->wait();
  std::ifstream file(log);
  std::string first, second;
  ASSERT_TRUE(std::getline(file, first));
  ASSERT_TRUE(std::getline(file, second));
  EXPECT_TRUE(has(first, "\"cluster\":\"stable\"")) << first;
  EXPECT_TRUE(has(first, "\"fallback\":true")) << first;
  EXPECT_TRUE(has(second, "\"cluster\":\"canary\"")) << second;
  EXPECT_TRUE(has(second, "\"fallback\":false")) << second;
  std::remove(log.c_str());
}

// ---- circuit breakers -------------------------------------------------------------------

// A request sent on its own connection, answered later.
struct Pending {
  TestClient client;
  explicit Pending(std::uint16_t port, std::string_view target = "/hold",
                   std::string_view fields = {})
      : client(port) {
    EXPECT_TRUE(client.send(request_bytes("GET", target, fields)));
  }
  int status(std::string* body = nullptr) {
    const ReadResult r = client.read_response();
    EXPECT_TRUE(r.ok()) << r.error;
    if (body != nullptr) *body = r.response.body;
    return r.ok() ? r.response.status : 0;
  }
};

TEST_F(ResilienceTest, PastMaxRequestsARequestWaitsAndPastMaxPendingIs503) {
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker: {max_requests: 2, max_pending: 1}\n");
  Pending first(gateway_->port()), second(gateway_->port());
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 2; }));
  Pending third(gateway_->port());  // waits for room
  ASSERT_TRUE(wait_until([&] { return has(gateway_->clusters_json(), "\"pending\": 1"); }))
      << gateway_->clusters_json();
  // Past max_pending: refused at once, never sent.
  TestClient fourth(gateway_->port());
  const ReadResult refused = fourth.request(request_bytes("GET", "/hold"));
  ASSERT_TRUE(refused.ok()) << refused.error;
  EXPECT_EQ(refused.response.status, 503);
  EXPECT_EQ(refused.response.header("Retry-After"), "1");
  EXPECT_EQ(labelled(ErrorLabel::kOverflow), 1u) << gateway_->metrics();
  EXPECT_TRUE(has(gateway_->clusters_json(), "\"requests_in_flight\": 2, \"pending\": 1"))
      << gateway_->clusters_json();
  EXPECT_EQ(a_->held_requests.load(), 2);
  // One answer makes room: the waiting request goes.
  a_->release_one();
  EXPECT_EQ(first.status(), 200);
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 3; }));
  a_->release_all();
  EXPECT_EQ(second.status(), 200);
  EXPECT_EQ(third.status(), 200);
  EXPECT_TRUE(wait_until([&] {
    return has(gateway_->clusters_json(), "\"requests_in_flight\": 0, \"pending\": 0");
  })) << gateway_->clusters_json();
}

TEST_F(ResilienceTest, BodiesSentWhileWaitingReachTheUpstreamWhole) {
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker: {max_requests: 1}\n");
  Pending held(gateway_->port());
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 1; }));
  std::string body(200000, 'x');
  for (std::size_t i = 0; i < body.size(); i += 997) body[i] = static_cast<char>('a' + i % 26);
  TestClient sized(gateway_->port());
  ASSERT_TRUE(sized.send(request_bytes("POST", "/echo", "", body)));
  TestClient chunked(gateway_->port());
  ASSERT_TRUE(chunked.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  ASSERT_TRUE(wait_until([&] { return has(gateway_->clusters_json(), "\"pending\": 2"); }))
      << gateway_->clusters_json();
  a_->release_all();
  EXPECT_EQ(held.status(), 200);
  ReadResult r = sized.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_TRUE(r.response.body == body) << r.response.body.size();
  r = chunked.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "hello world");
}

TEST_F(ResilienceTest, ARequestStillWaitingAtTheRouteTimeoutIs504) {
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker: {max_requests: 1}\n");
  Pending held(gateway_->port());
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 1; }));
  TestClient late(gateway_->port());
  const ReadResult r = late.request(request_bytes("GET", "/late"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 504);
  EXPECT_TRUE(has(gateway_->clusters_json(), "\"pending\": 0")) << gateway_->clusters_json();
  a_->release_all();
  EXPECT_EQ(held.status(), 200);
}

TEST_F(ResilienceTest, MaxConnectionsKeepsNewConnectionsFromOpening) {
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker: {max_connections: 1}\n");
  Pending first(gateway_->port()), second(gateway_->port());
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 1; }));
  ASSERT_TRUE(wait_until([&] { return has(gateway_->clusters_json(), "\"pending\": 1"); }))
      << gateway_->clusters_json();
  // Waiting spins nothing: over 300 ms the process uses a fraction of that
  // in CPU (the reactor looks again every millisecond; a request slot taken
  // and given back at once must not wake it at once, again and again).
  const auto cpu = [] {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  };
  const auto cpu_before = cpu();
  std::this_thread::sleep_for(300ms);  // elapsed time is what this measures
  EXPECT_LT(cpu() - cpu_before, 150ms);
  a_->release_one();
  EXPECT_EQ(first.status(), 200);
  // The second went on the first's connection once it was back in the pool.
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 2; }));
  a_->release_all();
  EXPECT_EQ(second.status(), 200);
  EXPECT_EQ(a_->server->stats().connections_accepted, 1u);
}

TEST_F(ResilienceTest, ErrorRateBreakerOpensThenAProbeClosesIt) {
  a_->status = 500;
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker:\n"
        "      error_rate: {threshold: 0.5, min_requests: 4, window: 10s, open_for: 200ms}\n");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(get(), 500);
  // Timed from before the request that opens it (a time taken after would
  // be later than the opening, and open_for would look shorter).
  const auto opened = std::chrono::steady_clock::now();
  EXPECT_EQ(get(), 500);
  EXPECT_TRUE(has(gateway_->clusters_json(), "\"breaker\": \"open\"")) << gateway_->clusters_json();
  EXPECT_TRUE(has(gateway_->metrics(), "portico_breaker_open{cluster=\"users\"} 1\n"))
      << gateway_->metrics();
  EXPECT_EQ(get(), 503);  // not sent
  EXPECT_EQ(labelled(ErrorLabel::kCircuitOpen), 1u) << gateway_->metrics();
  EXPECT_EQ(a_->work_requests.load(), 4);
  a_->status = 200;
  // After open_for a probe goes through; its success closes the breaker.
  ASSERT_TRUE(wait_until([&] { return get() == 200; }));
  EXPECT_GE(std::chrono::steady_clock::now() - opened, 200ms);
  EXPECT_EQ(a_->work_requests.load(), 5);
  EXPECT_TRUE(has(gateway_->clusters_json(), "\"breaker\": \"closed\"")) << gateway_->clusters_json();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(get(), 200);
}

TEST_F(ResilienceTest, AFailedProbeOpensTheBreakerAgain) {
  a_->status = 500;
  start("{address: \"" + a_->address() + "\"}",
        "    circuit_breaker:\n"
        "      error_rate: {threshold: 1, min_requests: 2, window: 10s, open_for: 100ms}\n");
  EXPECT_EQ(get() + get(), 1000);
  ASSERT_TRUE(has(gateway_->clusters_json(), "\"breaker\": \"open\""));
  ASSERT_TRUE(wait_until([&] { return get() == 500; }));  // the probe, failing
  EXPECT_EQ(a_->work_requests.load(), 3);
  EXPECT_TRUE(has(gateway_->clusters_json(), "\"breaker\": \"open\"")) << gateway_->clusters_json();
  EXPECT_EQ(get(), 503);
}

TEST_F(ResilienceTest, CanaryAtItsLimitFallsBackToTheRoutesCluster) {
  const std::string yaml =
      "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
      "clusters:\n"
      "  stable:\n    endpoints: [{address: \"" + a_->address() + "\"}]\n"
      "  canary:\n    endpoints: [{address: \"" + b_->address() + "\"}]\n"
      "    circuit_breaker: {max_requests: 1}\n"
      "routes:\n"
      "  - path: /work\n    cluster: stable\n"
      "    canary: [{header: X-Release-Version, value: v2-beta, cluster: canary}]\n"
      "  - path: /hold\n    cluster: stable\n"
      "    canary: [{header: X-Release-Version, value: v2-beta, cluster: canary}]\n";
  gateway_ = std::make_unique<Gateway>(parse_config(yaml));
  ASSERT_FALSE(gateway_->start()) << gateway_->setup_error();
  Pending held(gateway_->port(), "/hold", "X-Release-Version: v2-beta\r\n");
  ASSERT_TRUE(wait_until([&] { return b_->held_requests.load() == 1; }));
  std::string body;
  EXPECT_EQ(get(&body, "X-Release-Version: v2-beta\r\n"), 200);
  EXPECT_EQ(body, "a");  // the canary is at max_requests: the stable cluster took it
  b_->release_all();
  EXPECT_EQ(held.status(&body), 200);
  EXPECT_EQ(body, "b");
  EXPECT_EQ(get(&body, "X-Release-Version: v2-beta\r\n"), 200);
  EXPECT_EQ(body, "b");
}

// ---- retries ---------------------------------------------------------------------------

TEST_F(ResilienceTest, AConnectFailureIsRetriedOnAnotherEndpointWhateverTheMethod) {
  const std::string dead = "127.0.0.1:" + std::to_string(refused_port());
  start("{address: \"" + dead + "\"}, {address: \"" + a_->address() + "\"}",
        "    retry: {attempts: 1, retry_on: [connect_failure]}\n");
  for (int i = 0; i < 4; ++i) {
    TestClient client(gateway_->port());
    const ReadResult r = client.request(request_bytes("POST", "/echo", "", "hello"));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.response.status, 200);
    EXPECT_EQ(r.response.body, "hello");
  }
  EXPECT_EQ(a_->work_requests.load(), 4);
}

TEST_F(ResilienceTest, ABodyPastBufferBytesIsNotSentAgain) {
  a_->status = 503;
  start(both(), "    retry: {attempts: 1, retry_on: [503], buffer_bytes: 5}\n");
  // PUT is idempotent: a 5-byte body fits and is sent again to b; a 6-byte
  // one was not kept, and a's 503 reaches the client.
  const auto put = [&](std::string_view body) {
    TestClient client(gateway_->port());
    const ReadResult r = client.request(request_bytes("PUT", "/work", "", body));
    EXPECT_TRUE(r.ok()) << r.error;
    return r.response.status;
  };
  EXPECT_EQ(put("fits!"), 200);  // a, then b
  EXPECT_EQ(put("fits!"), 200);  // b
  EXPECT_EQ(put("larger"), 503);  // a
  EXPECT_EQ(a_->work_requests.load(), 2);
  EXPECT_EQ(b_->work_requests.load(), 2);
}

TEST_F(ResilienceTest, AnUpstreamStatusIsRetriedForIdempotentMethodsOnly) {
  a_->status = 503;
  start(both(), "    retry: {attempts: 1, retry_on: [503]}\n");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(a_->work_requests.load(), 2);
  EXPECT_EQ(b_->work_requests.load(), 4);  // its own two and a's two
  // POST may have had its effect: a's 503 goes to the client as it came.
  int unavailable = 0;
  for (int i = 0; i < 2; ++i) {
    TestClient client(gateway_->port());
    const ReadResult r = client.request(request_bytes("POST", "/work", "", "x"));
    ASSERT_TRUE(r.ok()) << r.error;
    unavailable += r.response.status == 503 ? 1 : 0;
  }
  EXPECT_EQ(unavailable, 1);
}

TEST_F(ResilienceTest, AResetAfterTheRequestIsRetriedOnlyForIdempotentMethods) {
  std::atomic<int> resets{0};
  RawUpstream resetting([&](RawConnection& connection) {
    if (connection.read_request().empty()) return;
    resets.fetch_add(1);
    connection.reset();
  });
  start("{address: \"127.0.0.1:" + std::to_string(resetting.port) + "\"}, {address: \"" +
            b_->address() + "\"}",
        "    retry: {attempts: 1, retry_on: [reset]}\n");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(get(), 200);
  EXPECT_EQ(resets.load(), 1);
  EXPECT_EQ(b_->work_requests.load(), 2);
  // A POST the upstream may have acted on is not sent again: 502.
  int failed = 0;
  for (int i = 0; i < 2; ++i) {
    TestClient client(gateway_->port());
    const ReadResult r = client.request(request_bytes("POST", "/work", "", "x"));
    ASSERT_TRUE(r.ok()) << r.error;
    failed += r.response.status == 502 ? 1 : 0;
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(resets.load(), 2);
}

TEST_F(ResilienceTest, TheRetryBudgetCapsRetriesInFlight) {
  // a takes nearly every first try; both fail at once, and only as many
  // retries as the budget allows (min_concurrency 1, no share) go to b.
  start("{address: \"" + a_->address() + "\", weight: 1000}, {address: \"" + b_->address() + "\"}",
        "    retry: {attempts: 1, retry_on: [503], budget_percent: 0, min_concurrency: 1}\n");
  a_->status = 503;
  a_->hold_work = true;
  b_->hold_work = true;
  Pending first(gateway_->port(), "/work"), second(gateway_->port(), "/work");
  ASSERT_TRUE(wait_until([&] { return a_->held_requests.load() == 2; }));
  a_->release_all();  // two 503s at once
  ASSERT_TRUE(wait_until([&] { return b_->held_requests.load() == 1; }));
  // The one not retried has its 503; the retried one waits on b.
  ASSERT_TRUE(wait_until([&] {
    return first.client.readable_within(0ms) || second.client.readable_within(0ms);
  }));
  Pending& refused = first.client.readable_within(0ms) ? first : second;
  Pending& retried = &refused == &first ? second : first;
  EXPECT_EQ(refused.status(), 503);
  b_->release_all();
  EXPECT_EQ(retried.status(), 200);
  EXPECT_EQ(b_->held_requests.load(), 1);
  EXPECT_EQ(a_->held_requests.load(), 2);
}

TEST_F(ResilienceTest, MaxRetriesZeroMeansNoRetry) {
  a_->status = 503;
  start(both(), "    retry: {attempts: 1, retry_on: [503]}\n    circuit_breaker: {max_retries: 0}\n");
  EXPECT_EQ(get() + get(), 703);
}

TEST_F(ResilienceTest, PerTryTimeoutRetriesOnTheOtherEndpoint) {
  a_->hold_work = true;
  start(both(), "    retry: {attempts: 1, retry_on: [timeout], per_try_timeout: 100ms}\n");
  std::string body;
  const auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(get(&body), 200);  // a held it past the per-try timeout; b answered
  EXPECT_EQ(body, "b");
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 100ms);
  EXPECT_EQ(a_->held_requests.load(), 1);
  a_->release_all();
  // Without retries left (attempts: 1, the next try held as well), 504.
  b_->hold_work = true;
  TestClient client(gateway_->port());
  const ReadResult r = client.request(request_bytes("GET", "/work"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 504);
  a_->release_all();
  b_->release_all();
}

}  // namespace
}  // namespace portico::testing
