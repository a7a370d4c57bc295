// portico-gateway-host: a host application that serves its own routes and
// proxies one path prefix to an upstream cluster through an embedded
// portico::Gateway, bodies streamed both ways, upstream pools on the host
// server's own reactors.
//
//   portico-gateway-host [--port N] --upstream HOST:PORT
//
// GET /local is answered here; /api/* goes to the upstream (the path as
// sent: /api/users/42 reaches the upstream as /api/users/42).
// Prints "listening on http://127.0.0.1:PORT"; SIGINT/SIGTERM stop it.
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

#include "portico/gateway.hpp"
#include "portico/server.hpp"

int main(int argc, char** argv) {
  std::uint16_t port = 8081;
  std::string upstream;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--port") {
      unsigned parsed = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (error != std::errc{} || end != value.data() + value.size() || parsed > 65535) {
        std::fprintf(stderr, "portico-gateway-host: bad --port\n");
        return 2;
      }
      port = static_cast<std::uint16_t>(parsed);
    } else if (flag == "--upstream") {
      upstream = std::string(value);
    }
  }
  if (upstream.empty() || argc % 2 == 0) {
    std::fprintf(stderr, "usage: portico-gateway-host [--port N] --upstream HOST:PORT\n");
    return 2;
  }

  // The gateway's clusters, built in code (a config file works as well:
  // portico::GatewayConfig::load). No routes and no listener of its own.
  portico::GatewayConfig config;
  portico::Cluster& api = config.clusters.emplace_back();
  api.name = "api";
  portico::Endpoint& endpoint = api.endpoints.emplace_back();
  endpoint.address = upstream;
  try {
    portico::Gateway gateway(std::move(config));

    portico::ServerOptions options;
    options.port = port;
    portico::Server server(options);
    server.get("/local", [](portico::Request&, portico::Response& res) {
      res.text("answered by the host\n");
    });
    server.any("/api/*rest", gateway.proxy("api"));
    if (const std::error_code error = server.start()) {
      std::fprintf(stderr, "portico-gateway-host: %s\n", server.setup_error().c_str());
      return 1;
    }
    std::printf("listening on http://%s:%u\n", options.host.c_str(), server.port());
    std::fflush(stdout);
    (void)server.run();  // until SIGINT/SIGTERM; the gateway outlives it
  } catch (const std::exception& error) {
    std::fprintf(stderr, "portico-gateway-host: %s\n", error.what());
    return 2;
  }
  return 0;
}
