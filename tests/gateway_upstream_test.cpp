// UpstreamConnection and UpstreamPool (src/gateway/) against a raw upstream
// the test drives byte by byte: connect outcomes, response framings, errors
// by label, reuse and its refusals, the pool's limits and backpressure.
// Real TCP on 127.0.0.1; the reactor runs on the test thread (the kernel
// completes a connect before the upstream accepts it), so nothing sleeps.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/upstream_connection.hpp"
#include "gateway/upstream_pool.hpp"
#include "net/io_batcher.hpp"
#include "net/state_heap.hpp"
#include "portico/buffer_pool.hpp"
#include "portico/detail/syscalls.hpp"
#include "portico/reactor.hpp"

namespace {

using namespace std::chrono_literals;
using portico::BufferPool;
using portico::ErrorLabel;
using portico::Reactor;
namespace detail = portico::detail;
using detail::ConnectFailure;
using detail::UpstreamConnection;
using detail::UpstreamPool;
using detail::UpstreamPoolOptions;
using detail::UpstreamResponseHead;

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: upstream\r\n\r\n";

bool wait_for(int fd, short events, int timeout_ms = 5000) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A listening socket the test accepts on and answers through by hand.
class RawUpstream {
 public:
  RawUpstream() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) != 0)
      ADD_FAILURE() << "listen: " << errno;
    std::memcpy(&address, &addr, sizeof addr);
    address_length = sizeof addr;
  }
  ~RawUpstream() {
    for (int fd : accepted_)
      if (fd >= 0) ::close(fd);
    ::close(listener_);
  }
  // The next connection (blocking, up to 5 s); -1 if none came.
  int accept_one() {
    if (!wait_for(listener_, POLLIN)) return -1;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) accepted_.push_back(fd);
    return fd;
  }
  // Whether a connection waits to be accepted (no waiting).
  bool connection_waiting() { return wait_for(listener_, POLLIN, 0); }
  std::size_t accepts() const { return accepted_.size(); }
  // Reads up to the end of a head ("\r\n\r\n"), blocking up to 5 s.
  static std::string read_head(int fd) {
    std::string got;
    char c;
    while (got.find("\r\n\r\n") == std::string::npos && wait_for(fd, POLLIN)) {
      if (::recv(fd, &c, 1, 0) != 1) break;
      got += c;
    }
    return got;
  }
  static void send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        ADD_FAILURE() << "send: " << errno;
        return;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Whether the peer closed `fd` (EOF or reset), waiting up to 5 s.
  static bool sees_close(int fd) {
    char c;
    while (wait_for(fd, POLLIN)) {
      const ssize_t n = ::recv(fd, &c, 1, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n < 0) return false;
    }
    return false;
  }
  // Closes `fd` with a reset (SO_LINGER 0).
  void reset(int fd) {
    const linger hard{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
  }
  void close(int fd) {
    for (int& a : accepted_)
      if (a == fd) a = -1;
    ::close(fd);
  }

  sockaddr_storage address{};
  socklen_t address_length = 0;

 private:
  int listener_ = -1;
  std::vector<int> accepted_;
};

// Records what a connection tells its owner; releases it to the pool when
// the exchange ends if asked to.
struct Recorder final : detail::UpstreamHandler {
  UpstreamPool* pool = nullptr;
  bool release_at_end = false;
  bool pause_at_first_body = false;
  bool tunnel_at_101 = false;  // start_tunnel() from a 101's head
  bool connected = false;
  bool connect_failed = false;
  ConnectFailure cause{};
  int status = 0;
  std::vector<std::string> fields;  // "name: value"
  std::vector<int> informational;
  std::string body;
  bool complete = false;
  bool reusable = false;
  ErrorLabel error = ErrorLabel::kNone;
  int writable = 0;
  std::string tunnel;  // raw bytes after start_tunnel()
  bool tunnel_eof = false;

  bool ended() const { return complete || error != ErrorLabel::kNone || connect_failed; }

  void on_upstream_connected(UpstreamConnection&) noexcept override { connected = true; }
  void on_upstream_connect_failed(UpstreamConnection& c, ConnectFailure why) noexcept override {
    connect_failed = true;
    cause = why;
    if (release_at_end) pool->release(c);
  }
  void on_upstream_informational(UpstreamConnection&,
                                 const UpstreamResponseHead& head) noexcept override {
    informational.push_back(head.status);
  }
  void on_upstream_head(UpstreamConnection& c, const UpstreamResponseHead& head) noexcept override {
    if (tunnel_at_101 && head.status == 101) c.start_tunnel();
    status = head.status;
    for (const auto& f : head.fields)
      fields.push_back(std::string(head.name(f)) + ": " + std::string(head.value(f)));
  }
  void on_upstream_body(UpstreamConnection& c, std::string_view bytes) noexcept override {
    body.append(bytes);
    if (pause_at_first_body) {
      pause_at_first_body = false;
      c.pause_reading();
    }
  }
  void on_upstream_complete(UpstreamConnection& c, bool can_reuse) noexcept override {
    complete = true;
    reusable = can_reuse;
    if (release_at_end) pool->release(c);
  }
  void on_upstream_error(UpstreamConnection& c, ErrorLabel label) noexcept override {
    error = label;
    if (release_at_end) pool->release(c);
  }
  void on_upstream_writable(UpstreamConnection&) noexcept override { ++writable; }
  void on_upstream_tunnel_data(UpstreamConnection&, std::string_view bytes) noexcept override {
    tunnel.append(bytes);
  }
  void on_upstream_tunnel_end(UpstreamConnection&) noexcept override { tunnel_eof = true; }
};

// Connect injected to "start" and never finish: the socket is swapped for
// the read end of a pipe, which never becomes writable nor hangs up.
int g_never_writable = -1;
int connect_never_completes(int fd, const sockaddr*, socklen_t) {
  ::dup2(g_never_writable, fd);
  errno = EINPROGRESS;
  return -1;
}

class UpstreamTest : public ::testing::Test {
 protected:
  UpstreamTest() {
    batched = batcher.open(8);  // without io_uring each stream reads and sends itself
    reactor.add_iteration_hook([this] {
      batcher.flush_reads();
      batcher.flush_sends();
    });
  }
  ~UpstreamTest() override {
    pool_.reset();
    // A connection closed in a batch is freed when the batch ends.
    batcher.flush_reads();
    batcher.flush_sends();
    detail::syscall_table() = detail::default_syscalls();
  }

  UpstreamPool& pool(UpstreamPoolOptions options = {}) {
    pool_ = std::make_unique<UpstreamPool>(detail::UpstreamIo{reactor, buffers, batcher, heap},
                                           upstream.address, upstream.address_length, options);
    return *pool_;
  }
  // Runs the reactor until `done` holds (at most 5 s of iterations).
  bool run_until(const std::function<bool()>& done) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      reactor.run_once(10ms);
    }
    return true;
  }
  // acquire + request sent + the upstream reads it; returns the upstream's fd
  // for this connection (accepting a new one unless `upstream_fd` is given).
  UpstreamConnection* start(Recorder& r, int& upstream_fd, bool head = false,
                            std::string_view request = kGet) {
    r.pool = pool_.get();
    UpstreamConnection* c = pool_->acquire(r, head);
    if (c == nullptr) return nullptr;
    c->send(request);
    c->end_request();
    // The connect completes (the request goes out then), or the batched
    // send is issued at the end of an iteration.
    EXPECT_TRUE(run_until([&] { return c->state() != UpstreamConnection::State::kConnecting; }));
    reactor.run_once(0ms);
    if (upstream_fd < 0) upstream_fd = upstream.accept_one();
    EXPECT_EQ(RawUpstream::read_head(upstream_fd), request);
    return c;
  }

  Reactor reactor;
  BufferPool buffers;
  detail::IoBatcher batcher;
  detail::StateHeap heap;
  bool batched = false;
  RawUpstream upstream;
  std::unique_ptr<UpstreamPool> pool_;
};

// ---- connecting ----------------------------------------------------------------

TEST_F(UpstreamTest, ConnectRefusedIsReportedWithoutWaitingForTheTimeout) {
  // A port nothing listens on: bound (not listening), its number taken, closed.
  sockaddr_storage address{};
  socklen_t length = sizeof(sockaddr_in);
  {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    v4->sin_family = AF_INET;
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length), 0);
    ::close(s);
  }
  UpstreamPoolOptions options;
  options.connect_timeout = 60s;  // a timeout would fail run_until
  pool_ = std::make_unique<UpstreamPool>(detail::UpstreamIo{reactor, buffers, batcher, heap},
                                         address, length, options);
  Recorder r;
  r.pool = pool_.get();
  r.release_at_end = true;
  ASSERT_NE(pool_->acquire(r), nullptr);
  EXPECT_EQ(pool_->active(), 1u);
  EXPECT_FALSE(r.connect_failed);  // never from inside acquire()
  ASSERT_TRUE(run_until([&] { return r.connect_failed; }));
  EXPECT_EQ(r.cause, ConnectFailure::kRefused);
  EXPECT_FALSE(r.connected);
  EXPECT_EQ(pool_->active(), 0u);
  EXPECT_EQ(pool_->pooled(), 0u);
}

TEST_F(UpstreamTest, ConnectThatNeverCompletesTimesOut) {
  int never[2];
  ASSERT_EQ(::pipe2(never, O_CLOEXEC), 0);
  g_never_writable = never[0];
  detail::syscall_table().connect = &connect_never_completes;
  UpstreamPoolOptions options;
  options.connect_timeout = 20ms;
  UpstreamPool& p = pool(options);
  Recorder r;
  r.pool = &p;
  r.release_at_end = true;
  ASSERT_NE(p.acquire(r), nullptr);
  ASSERT_TRUE(run_until([&] { return r.connect_failed; }));
  EXPECT_EQ(r.cause, ConnectFailure::kTimeout);
  EXPECT_FALSE(r.connected);
  EXPECT_EQ(p.active(), 0u);
  EXPECT_GE(reactor.stats().timers_fired, 1u);
  ::close(never[0]);
  ::close(never[1]);
}

// The request may be sent before the connect completes: it waits, then goes.
TEST_F(UpstreamTest, RequestSentWhileConnectingGoesOutOnceConnected) {
  UpstreamPool& p = pool();
  Recorder r;
  r.pool = &p;
  UpstreamConnection* c = p.acquire(r);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->send(kGet));  // waits for the connect: backpressure
  c->end_request();
  ASSERT_TRUE(run_until([&] { return r.connected && r.writable == 1; }));
  const int fd = upstream.accept_one();
  EXPECT_EQ(RawUpstream::read_head(fd), kGet);
  EXPECT_FALSE(c->reused());
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_TRUE(r.complete && r.reusable);
  p.release(*c);
}

// ---- responses -----------------------------------------------------------------

struct ResponseCase {
  const char* name;
  bool head_request;
  std::string response;
  bool byte_by_byte;
  int status;
  std::string body;
  std::vector<int> informational;
  bool reusable;
};

class UpstreamResponseTest : public UpstreamTest,
                             public ::testing::WithParamInterface<ResponseCase> {};

TEST_P(UpstreamResponseTest, ParsedAndReuseDecided) {
  const ResponseCase& k = GetParam();
  UpstreamPool& p = pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd, k.head_request);
  ASSERT_NE(c, nullptr);
  if (k.byte_by_byte) {
    // Every byte in its own segment, read on its own: every boundary.
    for (char ch : k.response) {
      RawUpstream::send_all(fd, std::string_view(&ch, 1));
      const std::size_t before = r.body.size();
      run_until([&] {
        int queued = 0;
        ::ioctl(c->fd(), FIONREAD, &queued);
        return queued == 0 || r.ended() || r.body.size() > before;
      });
    }
  } else {
    RawUpstream::send_all(fd, k.response);
  }
  if (!k.reusable) ::shutdown(fd, SHUT_WR);  // ends a close-delimited body
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.error, ErrorLabel::kNone);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.status, k.status);
  EXPECT_EQ(r.body, k.body);
  EXPECT_EQ(r.informational, k.informational);
  EXPECT_EQ(r.reusable, k.reusable);
  p.release(*c);
  EXPECT_EQ(p.pooled(), k.reusable ? 1u : 0u);
  EXPECT_EQ(p.active(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Framings, UpstreamResponseTest,
    ::testing::Values(
        ResponseCase{"content_length", false,
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", false, 200,
                     "hello", {}, true},
        ResponseCase{"content_length_bytewise", false,
                     "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", true, 201,
                     "hello", {}, true},
        ResponseCase{"chunked_with_trailer_bytewise", false,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: value\r\n\r\n",
                     true, 200, "hello world", {}, true},
        ResponseCase{"chunked", false,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                     false, 200, "abcde", {}, true},
        ResponseCase{"close_delimited", false, "HTTP/1.1 200 OK\r\n\r\nuntil the end", false,
                     200, "until the end", {}, false},
        ResponseCase{"head_with_content_length", true,
                     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false, 200, "", {}, true},
        ResponseCase{"no_content", false, "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", {},
                     true},
        ResponseCase{"not_modified_with_length", false,
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 304, "",
                     {}, true},
        ResponseCase{"interim_then_final", false,
                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     false, 200, "ok", {100, 103}, true},
        ResponseCase{"connection_close", false,
                     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false,
                     200, "ok", {}, false},
        ResponseCase{"http10_without_keep_alive", false,
                     "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", {},
                     false}),
    [](const ::testing::TestParamInfo<ResponseCase>& param_info) { return param_info.param.name; });

TEST_F(UpstreamTest, HeadFieldsAreTheUpstreamsAsSent) {
  pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Served-By:  a b \r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.fields, (std::vector<std::string>{"Content-Length: 0", "X-Served-By: a b"}));
  pool_->release(*c);
}

// A framing error is upstream_protocol_error and closes the connection.
TEST_F(UpstreamTest, FramingErrorsAreProtocolErrorsAndClose) {
  const char* const responses[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
      "garbage\r\n\r\n",
  };
  UpstreamPool& p = pool();
  for (const char* response : responses) {
    SCOPED_TRACE(response);
    Recorder r;
    int fd = -1;
    UpstreamConnection* c = start(r, fd);
    ASSERT_NE(c, nullptr);
    RawUpstream::send_all(fd, response);
    ASSERT_TRUE(run_until([&] { return r.ended(); }));
    EXPECT_EQ(r.error, ErrorLabel::kUpstreamProtocolError);
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(c->state(), UpstreamConnection::State::kClosed);
    EXPECT_TRUE(RawUpstream::sees_close(fd));
    p.release(*c);
    EXPECT_EQ(p.pooled(), 0u);
  }
}

TEST_F(UpstreamTest, ResetMidBodyIsUpstreamReset) {
  pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
  ASSERT_TRUE(run_until([&] { return r.body.size() == 10; }));
  upstream.reset(fd);
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.error, ErrorLabel::kUpstreamReset);
  EXPECT_TRUE(c->response_started());
  pool_->release(*c);
  EXPECT_EQ(pool_->pooled(), 0u);
}

// A FIN before the body's declared end is a truncation, not a response.
TEST_F(UpstreamTest, CloseBeforeTheDeclaredLengthIsUpstreamReset) {
  pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  ::shutdown(fd, SHUT_WR);
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.error, ErrorLabel::kUpstreamReset);
  EXPECT_EQ(r.body, "short");
  pool_->release(*c);
}

// A close with no response byte on a reused connection: the owner may send
// the request once more (reused() and !response_started()).
TEST_F(UpstreamTest, ReusedConnectionClosedBeforeAnyResponseByte) {
  UpstreamPool& p = pool();
  Recorder first;
  int fd = -1;
  UpstreamConnection* c = start(first, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return first.ended(); }));
  p.release(*c);
  Recorder second;
  UpstreamConnection* again = start(second, fd);
  ASSERT_EQ(again, c);
  upstream.close(fd);
  ASSERT_TRUE(run_until([&] { return second.ended(); }));
  EXPECT_EQ(second.error, ErrorLabel::kUpstreamReset);
  EXPECT_TRUE(again->reused());
  EXPECT_FALSE(again->response_started());
  p.release(*again);
}

// ---- reuse -----------------------------------------------------------------------

TEST_F(UpstreamTest, KeepAliveReusesOneConnection) {
  UpstreamPool& p = pool();
  int fd = -1;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    Recorder r;
    UpstreamConnection* c = start(r, fd);  // accepts only the first time
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->reused(), i > 0);
    EXPECT_EQ(p.active(), 1u);
    EXPECT_EQ(p.pooled(), 0u);
    RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    ASSERT_TRUE(run_until([&] { return r.ended(); }));
    EXPECT_TRUE(r.reusable);
    EXPECT_EQ(r.body, "ok");
    p.release(*c);
    EXPECT_EQ(p.pooled(), 1u);
    EXPECT_EQ(p.active(), 0u);
  }
  EXPECT_EQ(upstream.accepts(), 1u);
  EXPECT_FALSE(upstream.connection_waiting());
}

// The response came before the request's end was sent: never reused.
TEST_F(UpstreamTest, EarlyResponseIsNotReused) {
  UpstreamPool& p = pool();
  Recorder r;
  r.pool = &p;
  UpstreamConnection* c = p.acquire(r);
  const std::string head = "POST / HTTP/1.1\r\nHost: upstream\r\nContent-Length: 10\r\n\r\n";
  c->send(head);  // the body is still to come: no end_request()
  ASSERT_TRUE(run_until([&] { return r.connected; }));
  const int fd = upstream.accept_one();
  EXPECT_EQ(RawUpstream::read_head(fd), head);
  RawUpstream::send_all(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.reusable);
  EXPECT_TRUE(c->early_response());
  p.release(*c);
  EXPECT_EQ(p.pooled(), 0u);
  EXPECT_TRUE(RawUpstream::sees_close(fd));
}

// Bytes after a complete response (nobody asked for them): not reused.
TEST_F(UpstreamTest, BytesAfterTheResponseAreNotReused) {
  UpstreamPool& p = pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  p.release(*c);
  EXPECT_EQ(p.pooled(), 0u);
}

// ---- the pool ----------------------------------------------------------------------

TEST_F(UpstreamTest, IdleConnectionClosedByTheUpstreamIsDroppedAtOnce) {
  UpstreamPool& p = pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  p.release(*c);
  ASSERT_EQ(p.pooled(), 1u);
  upstream.close(fd);
  ASSERT_TRUE(run_until([&] { return p.pooled() == 0; }));
  // The next exchange connects anew.
  Recorder next;
  int fd2 = -1;
  UpstreamConnection* c2 = start(next, fd2);
  EXPECT_FALSE(c2->reused());
  EXPECT_EQ(upstream.accepts(), 2u);
  p.release(*c2);
}

TEST_F(UpstreamTest, StrayBytesOnAnIdleConnectionDropIt) {
  UpstreamPool& p = pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  p.release(*c);
  ASSERT_EQ(p.pooled(), 1u);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\n");
  ASSERT_TRUE(run_until([&] { return p.pooled() == 0; }));
  EXPECT_TRUE(RawUpstream::sees_close(fd));
}

TEST_F(UpstreamTest, MaxIdlePerEndpointClosesTheRest) {
  UpstreamPoolOptions options;
  options.max_idle_per_endpoint = 1;
  UpstreamPool& p = pool(options);
  Recorder a, b;
  int fa = -1, fb = -1;
  UpstreamConnection* ca = start(a, fa);
  UpstreamConnection* cb = start(b, fb);
  ASSERT_NE(ca, cb);
  EXPECT_EQ(p.active(), 2u);
  RawUpstream::send_all(fa, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  RawUpstream::send_all(fb, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return a.ended() && b.ended(); }));
  ASSERT_TRUE(a.reusable && b.reusable);
  p.release(*ca);
  p.release(*cb);
  EXPECT_EQ(p.pooled(), 1u);
  EXPECT_EQ(p.active(), 0u);
  EXPECT_TRUE(RawUpstream::sees_close(fb));  // the second one had no room
  // LIFO: the pooled one is handed out next.
  Recorder c;
  int fc = fa;
  EXPECT_EQ(start(c, fc), ca);
  p.release(*ca);
}

TEST_F(UpstreamTest, MaxIdleZeroPoolsNothing) {
  UpstreamPoolOptions options;
  options.max_idle_per_endpoint = 0;
  UpstreamPool& p = pool(options);
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  p.release(*c);
  EXPECT_EQ(p.pooled(), 0u);
  EXPECT_TRUE(RawUpstream::sees_close(fd));
}

TEST_F(UpstreamTest, IdleTimeoutClosesAPooledConnection) {
  UpstreamPoolOptions options;
  options.idle_timeout = 20ms;
  UpstreamPool& p = pool(options);
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  p.release(*c);
  ASSERT_EQ(p.pooled(), 1u);
  const auto fired = reactor.stats().timers_fired;
  ASSERT_TRUE(run_until([&] { return p.pooled() == 0; }));
  EXPECT_GT(reactor.stats().timers_fired, fired);  // the timer, not the upstream
  EXPECT_TRUE(RawUpstream::sees_close(fd));
}

TEST_F(UpstreamTest, DrainClosesIdleNowAndBusyOnRelease) {
  UpstreamPool& p = pool();
  Recorder a, b;
  int fa = -1, fb = -1;
  UpstreamConnection* ca = start(a, fa);
  UpstreamConnection* cb = start(b, fb);
  RawUpstream::send_all(fa, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  RawUpstream::send_all(fb, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return a.ended() && b.ended(); }));
  p.release(*ca);
  ASSERT_EQ(p.pooled(), 1u);
  p.drain();
  EXPECT_EQ(p.pooled(), 0u);
  EXPECT_EQ(p.active(), 1u);
  EXPECT_TRUE(RawUpstream::sees_close(fa));
  p.release(*cb);  // reusable, but the endpoint is gone
  EXPECT_EQ(p.pooled(), 0u);
  EXPECT_EQ(p.active(), 0u);
  EXPECT_TRUE(RawUpstream::sees_close(fb));
}

// ---- backpressure --------------------------------------------------------------------

TEST_F(UpstreamTest, PausedReadingDeliversNothingUntilResumed) {
  pool();
  Recorder r;
  r.pause_at_first_body = true;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234");
  ASSERT_TRUE(run_until([&] { return r.body == "01234"; }));
  EXPECT_TRUE(c->reading_paused());
  RawUpstream::send_all(fd, "56789abcdefghij");
  // The bytes are in our socket's receive queue, and stay there.
  ASSERT_TRUE(run_until([&] {
    int queued = 0;
    ::ioctl(c->fd(), FIONREAD, &queued);
    return queued == 15;
  }));
  for (int i = 0; i < 5; ++i) reactor.run_once(0ms);
  EXPECT_EQ(r.body, "01234");
  EXPECT_FALSE(r.ended());
  c->resume_reading();
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_EQ(r.body, "0123456789abcdefghij");
  EXPECT_TRUE(r.reusable);
  pool_->release(*c);
}

// A request body the upstream does not read yet: send() says wait, and
// on_upstream_writable comes once it has all gone out.
TEST_F(UpstreamTest, SendBackpressureThenWritable) {
  pool();
  Recorder r;
  r.pool = pool_.get();
  UpstreamConnection* c = pool_->acquire(r);
  ASSERT_TRUE(run_until([&] { return r.connected; }));
  const int fd = upstream.accept_one();
  const std::string body(16 * 1024 * 1024, 'x');  // more than loopback buffers hold
  const std::string head = "POST / HTTP/1.1\r\nHost: upstream\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  // Batched, the send is queued (true) and goes short at the end of the
  // iteration; unbatched it goes short at once (false). Either way the
  // rest waits, and writable comes only once the upstream has read it.
  c->send(head, body);
  c->end_request();
  for (int i = 0; i < 3; ++i) reactor.run_once(0ms);
  EXPECT_EQ(r.writable, 0);
  std::string got;
  char buffer[65536];
  while (got.size() < head.size() + body.size() && r.error == ErrorLabel::kNone) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) got.append(buffer, static_cast<std::size_t>(n));
    reactor.run_once(n > 0 ? 0ms : 1ms);
  }
  ASSERT_TRUE(run_until([&] { return r.writable == 1; }));
  EXPECT_EQ(got.size(), head.size() + body.size());
  EXPECT_TRUE(got == head + body);
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_TRUE(r.reusable);
  pool_->release(*c);
}

// ---- tunnels ------------------------------------------------------------------

// After a 101 the handler may take the connection raw: the bytes that came
// with the head and every later one, the upstream's EOF, a FIN our way once
// our output is out; the exchange never completes and the pool drops it.
TEST_F(UpstreamTest, TunnelAfter101IsRawBytesBothWaysAndNeverPooled) {
  UpstreamPool& p = pool();
  Recorder r;
  r.tunnel_at_101 = true;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  RawUpstream::send_all(fd,
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                        "Connection: upgrade\r\n\r\nfirst");
  ASSERT_TRUE(run_until([&] { return r.tunnel == "first"; }));
  EXPECT_EQ(r.status, 101);
  EXPECT_TRUE(c->upgraded());
  // Not HTTP any more: a status line is just bytes.
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return r.tunnel == "firstHTTP/1.1 200 OK\r\n\r\n"; }));

  EXPECT_TRUE(c->send("to the upstream"));
  c->shutdown_write();
  std::string got;
  char chunk[256];
  ASSERT_TRUE(run_until([&] {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) got.append(chunk, static_cast<std::size_t>(n));
    return n == 0;  // our FIN, after the bytes
  }));
  EXPECT_EQ(got, "to the upstream");
  EXPECT_TRUE(c->write_shut());

  ::shutdown(fd, SHUT_WR);
  ASSERT_TRUE(run_until([&] { return r.tunnel_eof; }));
  EXPECT_FALSE(r.ended());  // a tunnel never completes as an exchange
  p.release(*c);
  EXPECT_EQ(p.pooled(), 0u);
  EXPECT_EQ(p.active(), 0u);
  upstream.close(fd);
}

// An Upgrade that got a 200 instead: the response is whole and keep-alive,
// and still the connection is not reused (forbid_reuse).
TEST_F(UpstreamTest, ForbiddenReuseIsNotPooledAfterAnOrdinaryResponse) {
  UpstreamPool& p = pool();
  Recorder r;
  int fd = -1;
  UpstreamConnection* c = start(r, fd);
  c->forbid_reuse();
  RawUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno");
  ASSERT_TRUE(run_until([&] { return r.ended(); }));
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.reusable);
  EXPECT_EQ(r.body, "no");
  p.release(*c);
  EXPECT_EQ(p.pooled(), 0u);
  upstream.close(fd);
}

}  // namespace
