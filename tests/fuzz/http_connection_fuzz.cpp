// libFuzzer target: arbitrary bytes into a real server connection.
// One Server (started once, on a free loopback port, with small limits so
// they are reached) serves every input. The first two input bytes choose
// where the rest is split into two writes; the rest goes to a fresh
// connection, which is then half-closed (SHUT_WR) and read until the server
// closes it. A server that neither answers nor closes within 5 s is a hang:
// the target aborts. ASan/UBSan catch memory errors in the server itself.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "portico/server.hpp"
#include "test_client.hpp"

namespace {

using namespace std::chrono_literals;

portico::Server& server() {
  static portico::Server instance([] {
    portico::ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 1;
    options.handle_signals = false;
    options.read_buffer_size = 1024;
    options.max_request_line = 512;
    options.max_header_bytes = 2048;
    options.max_header_count = 16;
    options.max_body_bytes = 2048;
    options.max_requests_per_connection = 64;
    options.header_timeout = 2s;
    options.body_timeout = 2s;
    options.idle_timeout = 2s;
    options.worker_threads = 1;
    options.worker_queue_capacity = 4;
    return options;
  }());
  return instance;
}

void start_server() {
  portico::Server& s = server();
  s.get("/plaintext", [](portico::Request&, portico::Response& res) { res.text("Hello, World!"); });
  s.get("/users/:id", [](portico::Request& req, portico::Response& res) {
    res.format("user {}", req.param("id"));
  });
  s.get("/files/*path", [](portico::Request& req, portico::Response& res) {
    res.format("file {} {}", req.param("path"), req.query_param("v").value_or("-"));
  });
  s.post("/echo", [](portico::Request& req, portico::Response& res) { res.body(req.body()); });
  s.put("/users/:id", [](portico::Request& req, portico::Response& res) {
    res.status(201).header("X-Id", req.param("id")).body(req.body());
  });
  s.get("/dir/", [](portico::Request&, portico::Response& res) { res.text("dir"); });
  s.any("/any", [](portico::Request& req, portico::Response& res) {
    res.format("{} {}", req.method_name(), req.header("x-a").value_or(""));
  });
  portico::RouteOptions blocking;
  blocking.blocking = true;
  s.get("/blocking", [](portico::Request&, portico::Response& res) { res.text("worker"); },
        std::move(blocking));
  portico::Middleware deny;
  deny.before = [](portico::Request& req, portico::Response& res) {
    if (!req.header("x-deny")) return true;
    res.status(403);
    return false;
  };
  deny.after = [](const portico::Request&, portico::Response& res) { res.header("X-After", "1"); };
  s.use(std::move(deny));
  if (const std::error_code error = s.start()) {
    std::fprintf(stderr, "server start failed: %s %s\n", error.message().c_str(),
                 s.setup_error().c_str());
    std::abort();
  }
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // the server may close early (400, 413, ...)
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  start_server();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t split = input.size();
  if (input.size() >= 2) {
    const unsigned choice = (static_cast<unsigned>(data[0]) << 8) | data[1];
    input.remove_prefix(2);
    split = choice % (input.size() + 1);
  }

  const int fd = portico::testing::connect_loopback(server().port(), 5s);
  if (fd < 0) {
    std::fprintf(stderr, "connect failed: %s\n", std::strerror(errno));
    std::abort();
  }
  if (send_all(fd, input.substr(0, split))) (void)send_all(fd, input.substr(split));
  ::shutdown(fd, SHUT_WR);

  std::array<char, 16 * 1024> buffer{};
  std::size_t received = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n > 0) {
      received += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      std::fprintf(stderr,
                   "hang: the server neither answered nor closed within 5 s (%zu bytes received)\n",
                   received);
      std::abort();
    }
    break;  // reset: a close
  }
  ::close(fd);
  return 0;
}
