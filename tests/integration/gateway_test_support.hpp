// tests/integration/gateway_test_support.hpp — what the gateway tests share:
// a config parsed with its errors as test failures, an upstream service (a
// portico Server on a free port answering GET /users/:id), and the config
// the metrics and reload tests route /api/users/:id to it with.
// Thread-safety: an Upstream serves from its own reactor; build and destroy
// it on one thread.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "portico/gateway_config.hpp"
#include "portico/server.hpp"

namespace portico::testing {

// `yaml` parsed (`name` in its diagnostics); each error a test failure, and
// then an empty config.
inline GatewayConfig parse_config(const std::string& yaml, const std::string& name = "test.yaml") {
  ConfigResult result = GatewayConfig::parse(yaml, name);
  for (const ConfigDiagnostic& error : result.errors) ADD_FAILURE() << error.to_string();
  return result.ok() ? std::move(*result.config) : GatewayConfig{};
}

// Answers GET /users/:id with "<prefix>user <id>".
struct Upstream {
  std::unique_ptr<Server> server;
  std::uint16_t port = 0;

  explicit Upstream(std::string prefix = {}) {
    ServerOptions options;
    options.port = 0;
    options.handle_signals = false;
    options.worker_threads = 1;
    server = std::make_unique<Server>(options);
    server->get("/users/:id", [prefix](Request& req, Response& res) {
      res.text(prefix + "user " + std::string(req.param("id")));
    });
    EXPECT_FALSE(server->start()) << server->setup_error();
    port = server->port();
  }
  ~Upstream() {
    server->stop();
    server->wait();
  }
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;
};

// /api/users/:id to the cluster `users`, its one endpoint on `port` (the
// /api prefix stripped), and /healthz answered by the gateway itself;
// `threads` reactors, an admin listener on a free port when `admin`.
inline std::string users_gateway_yaml(std::uint16_t port, unsigned threads, bool admin) {
  return "listen: {host: 127.0.0.1, port: 0, threads: " + std::to_string(threads) + "}\n" +
         (admin ? "admin: {host: 127.0.0.1, port: 0}\n" : "") +
         "clusters:\n"
         "  users:\n"
         "    endpoints: [{address: \"127.0.0.1:" +
         std::to_string(port) +
         "\"}]\n"
         "routes:\n"
         "  - path: /api/users/:id\n"
         "    cluster: users\n"
         "    strip_prefix: /api\n"
         "  - path: /healthz\n"
         "    respond: {status: 200, body: \"ok\\n\", content_type: text/plain}\n";
}

}  // namespace portico::testing
