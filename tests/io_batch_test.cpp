// IoBatch (src/net/io_batch.hpp): many non-blocking sends or receives with one
// io_uring_enter, and the same results as send(2)/recv(2) would give — also
// when it is not opened (no io_uring) or the syscall seam's send is replaced.
// Real TCP connections on 127.0.0.1.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "net/io_batch.hpp"
#include "portico/detail/syscalls.hpp"
#include "tcp_pair.hpp"

namespace {

using portico::detail::IoBatch;
using portico::detail::IoOp;

// Waits (up to 5 s) until `fd` has bytes or end of stream to read.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1;
}

std::string read_exactly(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

class IoBatchTest : public ::testing::TestWithParam<bool> {
 protected:
  // Param: whether to open the ring (false: the one-syscall-per-op path).
  void SetUp() override {
    if (GetParam() && !batch_.open(8)) GTEST_SKIP() << "io_uring unavailable here";
  }
  IoBatch batch_;
};

TEST_P(IoBatchTest, SendsToManySocketsAndReportsEach) {
  std::vector<TcpPair> pairs(12);  // more than the depth: two submissions
  std::vector<std::string> messages;
  std::vector<IoOp> ops;
  for (std::size_t i = 0; i < pairs.size(); ++i) messages.push_back("message " + std::to_string(i));
  for (std::size_t i = 0; i < pairs.size(); ++i)
    ops.push_back({pairs[i].first, messages[i].data(), messages[i].size(), 0});
  ops.push_back({-1, messages[0].data(), messages[0].size(), 0});  // a closed connection
  batch_.send_all(ops);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(ops[i].result, static_cast<ssize_t>(messages[i].size())) << i;
    EXPECT_EQ(read_exactly(pairs[i].second, messages[i].size()), messages[i]) << i;
  }
  EXPECT_EQ(ops.back().result, -EBADF);
}

TEST_P(IoBatchTest, FullSocketGivesAShortCountThenEagainNeverBlocks) {
  TcpPair pair;
  int small = 4096;
  ASSERT_EQ(::setsockopt(pair.first, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_EQ(::setsockopt(pair.second, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  std::string big(8 << 20, 'x');
  IoOp op{pair.first, big.data(), big.size(), 0};
  batch_.send_all({&op, 1});
  ASSERT_GT(op.result, 0);
  EXPECT_LT(op.result, static_cast<ssize_t>(big.size())) << "8 MiB fit a 4 KiB buffer?";
  // The peer reads nothing: as the window closes each send takes less and
  // returns at once, until the socket takes nothing (-EAGAIN), never blocking.
  for (int i = 0; i < 1000 && op.result != -EAGAIN; ++i) {
    op.result = 0;
    batch_.send_all({&op, 1});
    ASSERT_TRUE(op.result > 0 || op.result == -EAGAIN) << op.result;
  }
  EXPECT_EQ(op.result, -EAGAIN);
}

TEST_P(IoBatchTest, ReceivesWhatArrivedAndEagainWhenEmpty) {
  TcpPair a, b;
  ASSERT_EQ(::send(a.second, "hello", 5, 0), 5);
  char room_a[64], room_b[64];
  std::vector<IoOp> ops = {{a.first, room_a, sizeof room_a, 0},
                           {b.first, room_b, sizeof room_b, 0}};
  ASSERT_TRUE(wait_readable(a.first));
  batch_.recv_all(ops);
  EXPECT_EQ(ops[0].result, 5);
  EXPECT_EQ(std::string(room_a, 5), "hello");
  EXPECT_EQ(ops[1].result, -EAGAIN);
  ::close(a.second);
  a.second = -1;
  ASSERT_TRUE(wait_readable(a.first));
  ops.resize(1);
  batch_.recv_all(ops);
  EXPECT_EQ(ops[0].result, 0) << "end of stream";
}

// Tests replace seam entries to inject faults; batched ops must see them.
ssize_t refusing_send(int, const void*, size_t, int) {
  errno = EPIPE;
  return -1;
}

TEST_P(IoBatchTest, ReplacedSendSeamIsHonoured) {
  TcpPair pair;
  std::string text = "abc";
  IoOp op{pair.first, text.data(), text.size(), 0};
  portico::detail::syscall_table().send = &refusing_send;
  batch_.send_all({&op, 1});
  portico::detail::syscall_table() = portico::detail::default_syscalls();
  EXPECT_EQ(op.result, -EPIPE);
}

INSTANTIATE_TEST_SUITE_P(Ring, IoBatchTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "IoUring" : "OneCallEach";
                         });

}  // namespace
