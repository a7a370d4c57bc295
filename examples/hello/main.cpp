// portico-hello: the Server in the smallest useful program.
//
//   portico-hello [--host ADDR] [--port N] [--threads N] [--workers N]
//                 [--access-log common|json] [--no-batch-io] [--no-metrics]
//
//   GET  /plaintext  -> Hello, World!                  (text/plain)
//   GET  /json       -> {"message":"Hello, World!"}    (application/json)
//   GET  /users/:id  -> user <id>
//   POST /echo       -> the request body
//   GET  /slow       -> answered from the blocking worker pool after 50 ms
//   GET  /metrics    -> the request metrics (Prometheus text format 0.0.4)
//
// Runs until SIGINT/SIGTERM, then drains in-flight requests and exits 0.
// Exit status 2 for bad options, 1 when the server cannot start.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "portico/server.hpp"

namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: portico-hello [--host ADDR] [--port N] [--threads N] [--workers N]\n"
      "                     [--access-log common|json] [--no-batch-io] [--no-metrics]\n"
      "  --host ADDR     address to listen on (default 127.0.0.1)\n"
      "  --port N        port (default 8080; 0 picks a free one)\n"
      "  --threads N     reactor threads (default 1; 0 = one per CPU)\n"
      "  --workers N     threads of the blocking-handler pool that answers /slow\n"
      "                  (default 16, ServerOptions::worker_threads)\n"
      "  --access-log F  write an access log to stdout in format F\n"
      "  --no-batch-io   one recv(2)/send(2) per connection instead of one io_uring\n"
      "                  call for a loop iteration's reads and one for its sends\n"
      "                  (ServerOptions::batch_io)\n"
      "  --no-metrics    count no request metrics (ServerOptions::metrics; /metrics\n"
      "                  then shows the server's counters only)\n",
      out);
}

template <class T>
bool parse_number(const char* text, T& out) {
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

int main(int argc, char** argv) {
  portico::ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--port" && has_value) {
      if (!parse_number(argv[++i], options.port)) {
        std::fprintf(stderr, "portico-hello: --port wants a number 0-65535, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--threads" && has_value) {
      if (!parse_number(argv[++i], options.threads) || options.threads > 1024) {
        std::fprintf(stderr, "portico-hello: --threads wants a number 0-1024, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--workers" && has_value) {
      if (!parse_number(argv[++i], options.worker_threads) || options.worker_threads == 0 ||
          options.worker_threads > 1024) {
        std::fprintf(stderr, "portico-hello: --workers wants a number 1-1024, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--no-batch-io") {
      options.batch_io = false;
    } else if (arg == "--no-metrics") {
      options.metrics = false;
    } else if (arg == "--host" && has_value) {
      options.host = argv[++i];
    } else if (arg == "--access-log" && has_value) {
      const std::string_view format = argv[++i];
      if (format == "common") {
        options.access_log = portico::AccessLogFormat::kCommon;
      } else if (format == "json") {
        options.access_log = portico::AccessLogFormat::kJson;
      } else {
        std::fprintf(stderr, "portico-hello: --access-log wants common or json\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "portico-hello: unknown or incomplete option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  portico::Server server(options);
  server.get("/plaintext", [](portico::Request&, portico::Response& res) {
    res.text("Hello, World!");
  });
  server.get("/json", [](portico::Request&, portico::Response& res) {
    res.json(R"({"message":"Hello, World!"})");
  });
  server.get("/users/:id", [](portico::Request& req, portico::Response& res) {
    res.content_type("text/plain").append("user ").append(req.param("id"));
  });
  server.post("/echo", [](portico::Request& req, portico::Response& res) {
    res.body(req.body(), req.header("Content-Type").value_or("application/octet-stream"));
  });
  server.get(
      "/slow",
      [](portico::Request&, portico::Response& res) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the blocking work
        res.text("slow");
      },
      {.blocking = true});
  server.get("/metrics", [&server](portico::Request&, portico::Response& res) {
    res.body(server.metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });

  std::error_code error = server.start();
  if (error) {
    std::fprintf(stderr, "portico-hello: %s\n", server.setup_error().c_str());
    return 1;
  }
  const std::string& host = options.host;
  const bool v6 = host.find(':') != std::string::npos;
  std::printf("portico-hello listening on http://%s%s%s:%u/ (try /plaintext, /json, /users/42)\n",
              v6 ? "[" : "", host.c_str(), v6 ? "]" : "", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.run();  // until SIGINT/SIGTERM, then drain
  return 0;
}
