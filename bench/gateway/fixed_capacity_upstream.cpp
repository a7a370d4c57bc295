// fixed_capacity_upstream: the upstream of bench/gateway/load_shedding.sh,
// a service of fixed capacity: each GET /work takes --service-ms (10) of a
// worker's time, with --workers (64) workers, so at most workers x 1000 /
// service-ms requests a second (6,400 by default); more wait in line.
//
//   fixed_capacity_upstream PORT [--workers N] [--service-ms MS]
//
// A portico Server on 127.0.0.1 whose /work is a blocking route (run on the
// worker pool, which sleeps through the service time). Prints "listening
// on http://127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "portico/server.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fixed_capacity_upstream PORT [--workers N] [--service-ms MS]\n");
    return 2;
  }
  portico::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  options.threads = 1;
  options.worker_threads = 64;
  int service_ms = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--workers") {
      options.worker_threads = static_cast<std::size_t>(std::atoi(argv[i + 1]));
    } else if (flag == "--service-ms") {
      service_ms = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "fixed_capacity_upstream: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  portico::Server server(options);
  const auto service = std::chrono::milliseconds(service_ms);
  server.get(
      "/work",
      [service](portico::Request&, portico::Response& res) {
        std::this_thread::sleep_for(service);
        res.text("ok\n");
      },
      portico::RouteOptions{.blocking = true});
  if (std::error_code error = server.start()) {
    std::fprintf(stderr, "fixed_capacity_upstream: %s\n", server.setup_error().c_str());
    return 1;
  }
  std::printf("listening on http://127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  return server.run() ? 1 : 0;  // started: waits, and stops on SIGINT/SIGTERM
}
