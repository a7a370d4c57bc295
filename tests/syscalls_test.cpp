// tests/syscalls_test.cpp — the system-call seam (portico/detail/syscalls.hpp)
// seen from the server: an entry of the table is replaced to give the error
// the kernel gives rarely (an address in use, a reset, a broken pipe), and
// the libc table is put back when the test ends.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <system_error>

#include "portico/detail/syscalls.hpp"
#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

namespace detail = portico::detail;

// The errno an injecting entry fails with; 0 passes the call through to libc.
// Atomic: set by the test thread, read by the reactor thread.
std::atomic<int> g_inject_errno{0};

int failing_bind(int, const sockaddr*, socklen_t) {
  errno = EADDRINUSE;
  return -1;
}
int failing_listen(int, int) {
  errno = EADDRINUSE;
  return -1;
}
ssize_t injecting_recv(int fd, void* buffer, size_t count, int flags) {
  if (const int error = g_inject_errno.load(); error != 0) {
    errno = error;
    return -1;
  }
  return detail::default_syscalls().recv(fd, buffer, count, flags);
}
ssize_t injecting_send(int fd, const void* buffer, size_t count, int flags) {
  if (const int error = g_inject_errno.load(); error != 0) {
    errno = error;
    return -1;
  }
  return detail::default_syscalls().send(fd, buffer, count, flags);
}

// Puts the libc table back (tables are replaced only while no reactor runs:
// before start(), after wait()).
void restore_syscalls() {
  detail::syscall_table() = detail::default_syscalls();
  g_inject_errno.store(0);
}

ServerOptions one_thread() {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  options.handle_signals = false;
  return options;
}

TEST(SyscallsTest, StartReportsAddressInUseFromBindOrListen) {
  struct Case {
    const char* entry;
    void (*replace)(detail::SyscallTable&);
  };
  const Case cases[] = {
      {"bind", [](detail::SyscallTable& table) { table.bind = &failing_bind; }},
      {"listen", [](detail::SyscallTable& table) { table.listen = &failing_listen; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.entry);
    const std::size_t fds_before = count_open_fds();
    {
      c.replace(detail::syscall_table());
      Server server(one_thread());
      server.get("/", [](Request&, Response& res) { res.text("ok"); });
      const std::error_code error = server.start();
      restore_syscalls();
      EXPECT_TRUE(error == std::errc::address_in_use) << error.message();
      EXPECT_NE(server.setup_error().find("cannot listen on 127.0.0.1:0"), std::string::npos)
          << server.setup_error();
      EXPECT_FALSE(server.running());
    }
    EXPECT_EQ(count_open_fds(), fds_before) << describe_open_fds();  // the socket was closed
  }
}

// Reads and writes are one recv(2)/send(2) each with batch_io off (with it,
// they go through io_uring, past the seam).
class SyscallsServerTest : public ServerFixture {
 protected:
  void TearDown() override {
    ServerFixture::TearDown();  // stops the server first
    restore_syscalls();
  }
  // Serves one request with `replace` applied (passing through), then makes
  // the entry fail with `error` for the next one. The injected error closes
  // that connection: the client sees it closed (or reset: the server closed
  // with bytes unread), and the server still serves a new connection.
  void expect_error_closes_connection(void (*replace)(detail::SyscallTable&), int error) {
    replace(detail::syscall_table());
    ServerOptions options = one_thread();
    options.batch_io = false;
    start_server(std::move(options), [](Server& server) {
      server.get("/", [](Request&, Response& res) { res.text("ok"); });
    });
    TestClient client(port());
    ASSERT_TRUE(client.request(request_bytes("GET", "/")).ok());
    g_inject_errno.store(error);
    ASSERT_TRUE(client.send(request_bytes("GET", "/")));
    const Outcome outcome = client.wait_for_close();
    EXPECT_TRUE(outcome == Outcome::kClosed || outcome == Outcome::kReset) << to_string(outcome);
    g_inject_errno.store(0);
    TestClient next(port());
    const ReadResult result = next.request(request_bytes("GET", "/"));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.response.body, "ok");
    // One reactor: the first connection was closed before the second was served.
    EXPECT_EQ(server().stats().connections_open, 1u);
  }
};

TEST_F(SyscallsServerTest, ResetOnRecvClosesTheConnection) {
  expect_error_closes_connection([](detail::SyscallTable& table) { table.recv = &injecting_recv; },
                                 ECONNRESET);
}

TEST_F(SyscallsServerTest, BrokenPipeOnSendClosesTheConnection) {
  expect_error_closes_connection([](detail::SyscallTable& table) { table.send = &injecting_send; },
                                 EPIPE);
}

}  // namespace
}  // namespace portico::testing
