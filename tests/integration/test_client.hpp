// tests/integration/test_client.hpp — what the server's integration tests
// talk to it with: a raw-socket HTTP/1.1 client (blocking, with receive and
// send timeouts so a hang fails the test instead of blocking it), a small
// response parser, a curl runner, and ServerFixture (a Server on a free
// loopback port per test, checked for leaked file descriptors afterwards).
// Thread-safety: a TestClient belongs to one thread at a time; the free
// functions are thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "portico/server.hpp"

namespace portico::testing {

using namespace std::chrono_literals;

// One parsed HTTP response.
struct HttpResponse {
  int version_minor = -1;
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;  // the body came with Transfer-Encoding: chunked
  std::string raw;       // every byte of the response as received

  // The first header called `name` (ASCII case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
  // How many headers are called `name`.
  std::size_t header_count(std::string_view name) const;
};

// What reading from the server ended with.
enum class Outcome {
  kResponse,   // a complete response was read
  kClosed,     // the server closed the connection cleanly (read returned 0)
  kReset,      // the connection was reset (ECONNRESET / EPIPE)
  kTimeout,    // nothing arrived within the timeout: the server hangs
  kMalformed,  // bytes arrived that are not an HTTP response, or a response
               // was cut short by a close
};
const char* to_string(Outcome outcome) noexcept;

struct ReadResult {
  Outcome outcome = Outcome::kTimeout;
  HttpResponse response;  // valid when outcome == kResponse
  std::string error;      // why, when it is not
  bool ok() const noexcept { return outcome == Outcome::kResponse; }
};

// Parses one response from the front of `data`. `head_request`: the request
// was HEAD (no body follows, whatever Content-Length says). `eof`: no more
// bytes will come (a body without Content-Length or chunking ends here).
enum class ParseStatus { kDone, kNeedMore, kBad };
ParseStatus parse_response(std::string_view data, bool head_request, bool eof,
                           HttpResponse& out, std::size_t& consumed, std::string* error = nullptr);

// Every response in `data` (e.g. curl -i output, which prints interim 100
// responses and the bodies of all URLs given).
std::vector<HttpResponse> parse_all_responses(std::string_view data);

// The bytes with CR, LF and non-printables escaped, for failure messages.
std::string printable(std::string_view bytes, std::size_t max = 600);

// "GET <target> HTTP/1.1\r\nHost: 127.0.0.1\r\n<extra>\r\n" (extra lines end
// in CRLF).
std::string request_bytes(std::string_view method, std::string_view target,
                          std::string_view extra_headers = {}, std::string_view body = {},
                          std::string_view version = "HTTP/1.1");

// A blocking TCP socket connected to 127.0.0.1:`port`, with `timeout` on
// every send and receive and TCP_NODELAY; -1 with errno set on failure.
// Robust to EINTR (libFuzzer's SIGALRM): an interrupted connect goes on in
// the background, so its result is waited for, not connect() called again.
int connect_loopback(std::uint16_t port, std::chrono::milliseconds timeout);

class TestClient {
 public:
  // Connects to 127.0.0.1:port with TCP_NODELAY and the given receive/send
  // timeout. Check connected().
  explicit TestClient(std::uint16_t port, std::chrono::milliseconds timeout = 5s);
  ~TestClient();
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  bool connected() const noexcept { return fd_ >= 0; }
  int connect_errno() const noexcept { return connect_errno_; }
  int fd() const noexcept { return fd_; }

  // Writes every byte (false on error, e.g. the server reset the connection).
  bool send(std::string_view bytes);
  // Writes `bytes` in pieces of at most `piece` bytes, one send() each.
  bool send_in_pieces(std::string_view bytes, std::size_t piece);
  // Half-closes: the server reads EOF.
  void shutdown_write();

  // Reads the next response (an interim 1xx counts as one).
  ReadResult read_response(bool head_request = false);
  // send() then read_response().
  ReadResult request(std::string_view bytes, bool head_request = false);
  // Reads until the server closes (kClosed or kReset) or the timeout passes
  // (kTimeout); whatever arrives first (e.g. a 408) is appended to `received`.
  Outcome wait_for_close(std::string* received = nullptr);
  // Whether a byte (or EOF) is readable within `wait` (poll, no read).
  bool readable_within(std::chrono::milliseconds wait) const;
  // Bytes received but not yet consumed by read_response().
  const std::string& pending() const noexcept { return buffer_; }

 private:
  // One recv() into buffer_: >0 bytes, 0 on EOF, -1 on error (errno kept).
  long receive_some();
  void close_fd() noexcept;

  int fd_ = -1;
  int connect_errno_ = 0;
  bool eof_ = false;
  std::string buffer_;
};

// Runs `curl -sS -i --max-time 5 <args>` and returns what it printed (stdout
// and stderr); `exit_code` gets curl's status.
std::string run_curl(const std::string& args, int* exit_code = nullptr);
// "http://127.0.0.1:<port><path>"
std::string url(std::uint16_t port, std::string_view path);

// Open file descriptors of this process (/proc/self/fd).
std::size_t count_open_fds();
std::string describe_open_fds();

// A Server on a free loopback port per test. start_server() builds it,
// registers routes through `configure` and calls start(), which returns once
// the reactor threads accept connections — no sleeps are needed. TearDown
// stops and destroys it and checks that every fd the test opened (server and
// clients) is closed again.
// Polls `predicate` (a condition the test cannot be woken on, such as a stats
// counter) every millisecond until it holds or `bound` passes.
template <class Predicate>
bool wait_until(Predicate predicate, std::chrono::milliseconds bound = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  Server& start_server(ServerOptions options, const std::function<void(Server&)>& configure);
  // stop(), wait() and destroy the server (idempotent).
  void stop_server();
  std::uint16_t port() const { return port_; }
  Server& server() { return *server_; }

  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
  std::size_t fd_baseline_ = 0;
};

}  // namespace portico::testing
