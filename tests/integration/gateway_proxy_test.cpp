// The gateway over real loopback sockets: a client (raw sockets, curl) in
// front, portico servers and raw-socket upstreams behind, and what each side
// saw on the wire.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "gateway_test_support.hpp"
#include "portico/gateway.hpp"
#include "raw_upstream.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

// An upstream service: a portico Server on a free port.
struct Upstream {
  std::unique_ptr<Server> server;
  std::uint16_t port = 0;

  explicit Upstream(const std::function<void(Server&)>& configure) {
    ServerOptions options;
    options.port = 0;
    options.handle_signals = false;
    options.worker_threads = 1;
    options.max_body_bytes = 64 * 1024 * 1024;
    server = std::make_unique<Server>(options);
    configure(*server);
    EXPECT_FALSE(server->start()) << server->setup_error();
    port = server->port();
  }
  ~Upstream() {
    server->stop();
    server->wait();
  }
  std::uint64_t accepted() const { return server->stats().connections_accepted; }
};

// Echoes what the gateway sent as lines the tests read back.
void add_echo_routes(Server& server, std::string_view name) {
  const std::string who(name);
  server.get("/users/:id", [who](Request& req, Response& res) {
    res.text(who + ": user " + std::string(req.param("id")));
  });
  server.any("/inspect/*rest", [](Request& req, Response& res) {
    std::string out;
    out += "method=" + std::string(req.method_name()) + "\n";
    out += "target=" + std::string(req.target()) + "\n";
    for (const Header& field : req.headers())
      out += std::string(field.name) + "=" + std::string(field.value) + "\n";
    out += "body=" + std::string(req.body()) + "\n";
    res.text(out);
  });
  server.post("/echo", [](Request& req, Response& res) { res.body(std::string(req.body())); });
  server.get("/big/:bytes", [](Request& req, Response& res) {
    const std::size_t size = std::stoul(std::string(req.param("bytes")));
    std::string body(size, 'x');
    for (std::size_t i = 0; i < size; i += 4096) body[i] = static_cast<char>('a' + (i / 4096) % 26);
    res.body(std::move(body), "application/octet-stream");
  });
  server.get("/chunked", [](Request&, Response& res) {
    Completion done = res.defer();
    done.write("first,");
    done.write("second,");
    res.append("last");
    done.done();
  });
}

std::string config_yaml(std::uint16_t v1, std::uint16_t v2, std::string_view extra = {}) {
  return "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
         "clusters:\n"
         "  users:\n"
         "    endpoints: [{address: \"127.0.0.1:" + std::to_string(v1) + "\"}]\n"
         "  users-v2:\n"
         "    endpoints: [{address: \"127.0.0.1:" + std::to_string(v2) + "\"}]\n" +
         std::string(extra) +
         "routes:\n"
         "  - path: /api/users/:id\n"
         "    cluster: users\n"
         "    strip_prefix: /api\n"
         "    canary: [{header: X-Release-Version, value: v2-beta, cluster: users-v2}]\n"
         "    response_headers: {add: {X-Served-By: portico}}\n"
         "  - path: /inspect/*rest\n"
         "    cluster: users\n"
         "    request_headers: {add: {X-Gateway: portico}, remove: [X-Debug]}\n"
         "  - path: /echo\n"
         "    methods: [POST]\n"
         "    cluster: users\n"
         "  - path: /big/:bytes\n"
         "    cluster: users\n"
         "  - path: /chunked\n"
         "    cluster: users\n"
         "  - path: /healthz\n"
         "    respond: {status: 200, body: \"ok\\n\", content_type: text/plain}\n";
}

class GatewayProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1_ = std::make_unique<Upstream>([](Server& s) { add_echo_routes(s, "users v1"); });
    v2_ = std::make_unique<Upstream>([](Server& s) { add_echo_routes(s, "users v2"); });
  }
  void TearDown() override {
    if (gateway_) {
      gateway_->stop();
      gateway_->wait();
    }
  }
  Gateway& start_gateway(const std::string& yaml) {
    gateway_ = std::make_unique<Gateway>(parse_config(yaml));
    EXPECT_FALSE(gateway_->start()) << gateway_->setup_error();
    return *gateway_;
  }
  std::uint16_t port() const { return gateway_->port(); }

  std::unique_ptr<Upstream> v1_, v2_;
  std::unique_ptr<Gateway> gateway_;
};

std::string line_of(const std::string& body, std::string_view key) {
  const std::string prefix = std::string(key) + "=";
  std::size_t at = body.find(prefix);
  if (at == std::string::npos) return "<absent>";
  at += prefix.size();
  return body.substr(at, body.find('\n', at) - at);
}

TEST_F(GatewayProxyTest, ForwardsToTheRoutesClusterWithThePrefixStripped) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/api/users/42"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "users v1: user 42");
  EXPECT_EQ(r.response.header("X-Served-By"), "portico");
  EXPECT_TRUE(r.response.header("X-Request-Id").has_value());
  EXPECT_TRUE(r.response.header("Date").has_value());
}

TEST_F(GatewayProxyTest, CanaryHeaderPicksTheCanaryCluster) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/api/users/7", "X-Release-Version: v2-beta\r\n"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v2: user 7");
  // The value must match exactly.
  r = client.request(request_bytes("GET", "/api/users/7", "X-Release-Version: v2-BETA\r\n"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v1: user 7");
}

TEST_F(GatewayProxyTest, UpstreamSeesForwardingFieldsAndRouteEdits) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  const ReadResult r = client.request(request_bytes(
      "GET", "/inspect/a/%2e%2e/b?q=1",
      "X-Debug: yes\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
      "X-Request-Id: abc-123\r\n"));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.response.status, 200) << r.response.body;
  const std::string& seen = r.response.body;
  EXPECT_EQ(line_of(seen, "method"), "GET");
  EXPECT_EQ(line_of(seen, "target"), "/inspect/b?q=1");  // dot segments gone, once
  EXPECT_EQ(line_of(seen, "X-Forwarded-For"), "127.0.0.1");  // untrusted peer: replaced
  EXPECT_EQ(line_of(seen, "X-Forwarded-Proto"), "http");
  EXPECT_EQ(line_of(seen, "Via"), "1.1 portico");
  EXPECT_EQ(line_of(seen, "X-Gateway"), "portico");
  EXPECT_EQ(line_of(seen, "X-Debug"), "<absent>");
  EXPECT_EQ(line_of(seen, "X-Hop"), "<absent>");       // named in Connection
  EXPECT_EQ(line_of(seen, "Connection"), "<absent>");  // hop-by-hop
  EXPECT_EQ(line_of(seen, "X-Request-Id"), "abc-123");
  EXPECT_EQ(r.response.header("X-Request-Id"), "abc-123");
  EXPECT_NE(line_of(seen, "traceparent"), "<absent>");
}

TEST_F(GatewayProxyTest, TheNormalisedPathIsRoutedAndForwarded) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  // As sent it matches no route; normalised it is /inspect/x.
  ReadResult r = client.request(request_bytes("GET", "/api/users/1/%2E%2e/../../inspect/x"));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.response.status, 200) << r.response.body;
  EXPECT_EQ(line_of(r.response.body, "target"), "/inspect/x");
  // Climbing above the root: 400, and the connection closes.
  r = client.request(request_bytes("GET", "/inspect/../../etc/passwd"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 400);
  EXPECT_EQ(client.wait_for_close(), Outcome::kClosed);
}

TEST_F(GatewayProxyTest, KeepAliveRequestsShareOneUpstreamConnection) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  for (int i = 0; i < 5; ++i) {
    const ReadResult r = client.request(request_bytes("GET", "/api/users/" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.response.body, "users v1: user " + std::to_string(i));
  }
  EXPECT_EQ(v1_->accepted(), 1u);
}

// Deadlines move lazily (the client connection's, the route timeout's, the
// pooled upstream connection's idle timeout): a timer armed for an earlier
// deadline stays, and is armed again only when it fires. Keep-alive
// proxying then arms none per request (it armed three before).
TEST_F(GatewayProxyTest, KeepAliveProxyingArmsNoTimerPerRequest) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  constexpr int kWarmup = 10;
  constexpr int kMeasured = 300;
  std::uint64_t before = 0;
  for (int i = 0; i < kWarmup + kMeasured; ++i) {
    if (i == kWarmup) before = gateway_->server().stats().timer_arms;
    const ReadResult r = client.request(request_bytes("GET", "/api/users/" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.response.status, 200);
  }
  // Timers firing meanwhile (none of these deadlines is due) may re-arm.
  EXPECT_LT(gateway_->server().stats().timer_arms - before, std::uint64_t{kMeasured / 10});
  EXPECT_EQ(v1_->accepted(), 1u);
}

// A pooled connection's idle timeout counts from its last use: the timer
// armed when it was first parked fires while it is parked again, and must
// not drop it (the pool keeps it: the upstream sees one connection).
TEST_F(GatewayProxyTest, IdleTimeoutCountsFromTheLastTimeTheConnectionWasParked) {
  // users-v2, reached with the canary header, closes idle connections after 1 s.
  start_gateway(config_yaml(v1_->port, v2_->port, "    idle_timeout: 1s\n"));
  TestClient client(port());
  const auto canary = [&client](int id) {
    const ReadResult r = client.request(
        request_bytes("GET", "/api/users/" + std::to_string(id), "X-Release-Version: v2-beta\r\n"));
    EXPECT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.response.body, "users v2: user " + std::to_string(id));
  };
  // Parked at 0 (its timer: 1 s), at 0.6 s (idle until 1.6 s); asked again
  // at 1.2 s, after the first timer fired.
  canary(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  canary(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  canary(3);
  EXPECT_EQ(v2_->accepted(), 1u);
}

TEST_F(GatewayProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  // Three requests in one write, one with a body: each waits for the one before.
  ASSERT_TRUE(client.send(request_bytes("GET", "/api/users/1") +
                          request_bytes("POST", "/echo", "", "pipelined body") +
                          request_bytes("GET", "/api/users/3")));
  ReadResult r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v1: user 1");
  r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "pipelined body");
  r = client.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v1: user 3");
}

TEST_F(GatewayProxyTest, RequestBodiesStreamWithLengthOrChunked) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  std::string body(3 * 1024 * 1024 + 17, 'b');
  for (std::size_t i = 0; i < body.size(); i += 1000) body[i] = static_cast<char>('A' + i % 26);
  ReadResult r = client.request(request_bytes("POST", "/echo", "", body));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body.size(), body.size());
  EXPECT_TRUE(r.response.body == body);
  // Chunked from the client: the upstream gets a chunked body of the same bytes.
  const std::string chunked =
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  r = client.request(chunked);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "hello world");
}

TEST_F(GatewayProxyTest, LargeAndChunkedResponsesStreamBack) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port(), 20s);
  ReadResult r = client.request(request_bytes("GET", "/big/5000000"));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.response.body.size(), 5000000u);
  EXPECT_EQ(r.response.body[4096], 'b');
  // On the same pooled upstream connection, which the big body paused while
  // the client was slow: the pause must not outlive that exchange.
  r = client.request(request_bytes("GET", "/chunked"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.response.chunked);
  EXPECT_EQ(r.response.body, "first,second,last");
  // HEAD: the head only, forwarded as HEAD.
  r = client.request(request_bytes("HEAD", "/big/100"), true);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.header("Content-Length"), "100");
  EXPECT_TRUE(r.response.body.empty());
}

TEST_F(GatewayProxyTest, RoutingAnswersAndDirectResponses) {
  start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/nowhere"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 404);
  r = client.request(request_bytes("GET", "/echo"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 405);
  EXPECT_EQ(r.response.header("Allow"), "POST");
  r = client.request(request_bytes("GET", "/healthz"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "ok\n");
  EXPECT_EQ(r.response.header("Content-Type"), "text/plain");
}

TEST_F(GatewayProxyTest, RefusedUpstreamIs502) {
  // A port nothing listens on: bind one, note it, close it.
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
  const std::uint16_t closed_port = ntohs(address.sin_port);
  ::close(probe);
  start_gateway(config_yaml(closed_port, v2_->port));
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/api/users/1"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(gateway_->server().stats().replies(ErrorLabel::kUpstreamConnectFailure), 1u);
  // The connection stays usable.
  const ReadResult again = client.request(request_bytes("GET", "/healthz"));
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.response.status, 200);
}

TEST_F(GatewayProxyTest, AmbiguousFramingFromTheUpstreamIs502) {
  GarbageUpstream garbage;
  start_gateway(config_yaml(garbage.port, v2_->port));
  TestClient client(port());
  const ReadResult r = client.request(request_bytes("GET", "/api/users/1"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 502);
  EXPECT_EQ(gateway_->server().stats().replies(ErrorLabel::kUpstreamProtocolError), 1u);
}

TEST_F(GatewayProxyTest, ReloadSwapsRoutesAndAnInvalidConfigChangesNothing) {
  Gateway& gateway = start_gateway(config_yaml(v1_->port, v2_->port));
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/api/users/1"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v1: user 1");
  // The stable cluster now points at v2's server.
  EXPECT_TRUE(gateway.reload(parse_config(config_yaml(v2_->port, v2_->port))).empty());
  r = client.request(request_bytes("GET", "/api/users/1"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v2: user 1");
  // A config naming a cluster that does not exist is refused whole.
  GatewayConfig bad = parse_config(config_yaml(v1_->port, v2_->port));
  bad.routes.front().cluster = "nope";
  EXPECT_FALSE(gateway.reload(std::move(bad)).empty());
  r = client.request(request_bytes("GET", "/api/users/1"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v2: user 1");
  EXPECT_EQ(gateway.reloads_ok(), 1u);
  EXPECT_EQ(gateway.reloads_failed(), 1u);
}

TEST_F(GatewayProxyTest, AdminListenerAnswersWithCurl) {
  Gateway& gateway = start_gateway(config_yaml(v1_->port, v2_->port, "admin: {host: 127.0.0.1, port: 0}\n"));
  ASSERT_NE(gateway.admin_port(), 0);
  const auto body_of = [](const std::string& output) {
    const std::vector<HttpResponse> responses = parse_all_responses(output);
    return responses.empty() ? "<no response> " + output : responses.back().body;
  };
  const auto get = [&](std::uint16_t at, std::string_view path) {
    return body_of(run_curl(url(at, path)));
  };
  EXPECT_EQ(get(gateway.admin_port(), "/healthz"), "ok\n");
  EXPECT_EQ(get(gateway.admin_port(), "/ready"), "ready\n");
  const std::string routes = get(gateway.admin_port(), "/routes");
  EXPECT_NE(routes.find("\"path\": \"/api/users/:id\""), std::string::npos) << routes;
  EXPECT_NE(routes.find("\"canary\": [{\"header\": \"X-Release-Version\""), std::string::npos);
  // A request so a pool exists, then /clusters shows its connection.
  EXPECT_EQ(get(port(), "/api/users/9"), "users v1: user 9");
  const std::string clusters = get(gateway.admin_port(), "/clusters");
  EXPECT_NE(clusters.find("\"users\": {\"breaker\": \"closed\""), std::string::npos) << clusters;
  EXPECT_NE(clusters.find("\"pooled_connections\": 1"), std::string::npos) << clusters;
  // No config file: /reload says why and changes nothing.
  const std::string reload = body_of(run_curl("-X POST " + url(gateway.admin_port(), "/reload")));
  EXPECT_NE(reload.find("\"ok\": false"), std::string::npos) << reload;
}

// /routes lists every configured route in file order, from the tables the
// gateway serves (the config's route list is not kept once they are built),
// and a reload replaces the listing with the new file's.
TEST_F(GatewayProxyTest, RoutesListingFollowsTheFileAcrossReloads) {
  const std::string yaml =
      "listen: {host: 127.0.0.1, port: 0, threads: 1}\n"
      "clusters:\n"
      "  a: {endpoints: [{address: \"127.0.0.1:" + std::to_string(v1_->port) + "\"}]}\n"
      "  b: {endpoints: [{address: \"127.0.0.1:" + std::to_string(v2_->port) + "\"}]}\n"
      "routes:\n"
      "  - {path: /x/:id, methods: [POST, PURGE, GET], hosts: [api.example.com], cluster: a}\n"
      "  - {path: /x/:id, cluster: b}\n"
      "  - {path: /s, split: [{cluster: a, weight: 3}, {cluster: b, weight: 1}]}\n"
      "  - {path: /r, respond: {status: 204}}\n";
  Gateway& gateway = start_gateway(yaml);
  EXPECT_EQ(gateway.routes_json(),
            "[{\"path\": \"/x/:id\", \"hosts\": [\"api.example.com\"], "
            "\"methods\": [\"GET\", \"POST\", \"PURGE\"], \"cluster\": \"a\", \"canary\": []}, "
            "{\"path\": \"/x/:id\", \"hosts\": [], \"methods\": [], \"cluster\": \"b\", \"canary\": []}, "
            "{\"path\": \"/s\", \"hosts\": [], \"methods\": [], \"split\": [{\"cluster\": \"a\", "
            "\"weight\": 3}, {\"cluster\": \"b\", \"weight\": 1}], \"canary\": []}, "
            "{\"path\": \"/r\", \"hosts\": [], \"methods\": [], \"respond\": {\"status\": 204}, "
            "\"canary\": []}]\n");
  // The routes behind the listing serve.
  TestClient client(port());
  auto r = client.request(request_bytes("GET", "/r"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.status, 204);
  ASSERT_TRUE(gateway.reload(parse_config(config_yaml(v1_->port, v2_->port))).empty());
  const std::string after = gateway.routes_json();
  EXPECT_EQ(after.find("/x/:id"), std::string::npos) << after;
  EXPECT_LT(after.find("\"path\": \"/api/users/:id\""), after.find("\"path\": \"/healthz\"")) << after;
}

TEST_F(GatewayProxyTest, AccessLogLinesCarryGatewayFields) {
  const std::string path = ::testing::TempDir() + "gateway_access_log.json";
  std::remove(path.c_str());
  start_gateway(config_yaml(v1_->port, v2_->port,
                            "access_log: {format: json, path: \"" + path + "\"}\n"));
  TestClient client(port());
  ReadResult r = client.request(request_bytes("GET", "/api/users/42", "X-Request-Id: log-me\r\n"));
  ASSERT_TRUE(r.ok()) << r.error;
  r = client.request(request_bytes("POST", "/echo", "", "12345"));
  ASSERT_TRUE(r.ok()) << r.error;
  gateway_->stop();  // a reactor writes its log lines before it exits
  gateway_->wait();
  std::ifstream file(path);
  std::string first, second;
  ASSERT_TRUE(std::getline(file, first));
  ASSERT_TRUE(std::getline(file, second));
  for (const char* key : {"\"time\":", "\"trace_id\":", "\"client\":\"127.0.0.1\"",
                          "\"retries\":0", "\"fallback\":false", "\"duration_ms\":",
                          "\"upstream_connect_ms\":", "\"upstream_first_byte_ms\":"}) {
    EXPECT_NE(first.find(key), std::string::npos) << key << " in " << first;
  }
  EXPECT_NE(first.find("\"request_id\":\"log-me\""), std::string::npos) << first;
  EXPECT_NE(first.find("\"method\":\"GET\",\"path\":\"/api/users/42\",\"route\":\"/api/users/:id\",\"status\":200,\"error\":\"none\",\"cluster\":\"users\""),
            std::string::npos) << first;
  EXPECT_NE(first.find("\"upstream\":\"127.0.0.1:" + std::to_string(v1_->port) + "\""),
            std::string::npos) << first;
  EXPECT_NE(second.find("\"method\":\"POST\",\"path\":\"/echo\""), std::string::npos) << second;
  EXPECT_NE(second.find("\"bytes_in\":5,\"bytes_out\":5"), std::string::npos) << second;
  std::remove(path.c_str());
}

TEST_F(GatewayProxyTest, HostServerProxiesSomeRoutesNextToItsOwn) {
  Gateway& gateway = start_gateway(config_yaml(v1_->port, v2_->port));
  ServerOptions options;
  options.port = 0;
  options.handle_signals = false;
  Server host(options);
  host.get("/local", [](Request&, Response& res) { res.text("local"); });
  host.any("/users/*rest", gateway.proxy("users"));
  ASSERT_FALSE(host.start()) << host.setup_error();
  TestClient client(host.port());
  ReadResult r = client.request(request_bytes("GET", "/local"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "local");
  r = client.request(request_bytes("GET", "/users/5"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.response.body, "users v1: user 5");
  host.stop();
  host.wait();
}

}  // namespace
}  // namespace portico::testing
