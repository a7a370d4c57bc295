// ByteStream (src/net/byte_stream.hpp) and IoBatcher (src/net/io_batcher.hpp)
// without the server: writes whole, short and refused, pending output drained
// in order on writability, failures injected through the syscall seam,
// linger, and batched sends and reads. Real TCP connections on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "net/byte_stream.hpp"
#include "net/io_batcher.hpp"
#include "portico/detail/syscalls.hpp"
#include "portico/reactor.hpp"
#include "tcp_pair.hpp"

namespace {

using portico::Reactor;
using portico::detail::ByteStream;
using portico::detail::IoBatcher;
using portico::detail::LingerStatus;
using portico::detail::StreamHandler;
using portico::detail::WriteStatus;
namespace detail = portico::detail;

// Small socket buffers, so that a few hundred kilobytes fill them.
constexpr int kSmallBuffer = 16 * 1024;

// Waits (up to 5 s) for `events` on `fd`.
bool wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 5000) == 1;
}

// Reads what `fd` has now, without blocking; appends it to `out`.
// False at end of stream.
bool read_available(int fd, std::string& out) {
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    return n != 0;
  }
}

std::string read_exactly(int fd, std::size_t n) {
  std::string out;
  while (out.size() < n && wait_for(fd, POLLIN))
    if (!read_available(fd, out)) break;
  return out;
}

std::string pattern(std::size_t size, char seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

// Records what the stream's owner is told.
struct RecordingHandler final : StreamHandler {
  explicit RecordingHandler(ByteStream& s) : stream(s) {}
  ByteStream& stream;
  std::vector<std::uint32_t> events;
  std::vector<WriteStatus> sent;
  std::vector<ssize_t> received;
  std::string received_bytes;

  void on_io(std::uint32_t e) noexcept override {
    events.push_back(e);
    // What a connection does on writability: write out what waits.
    if ((e & EPOLLOUT) && stream.has_pending() && !stream.send_queued())
      sent.push_back(stream.write_pending());
  }
  void on_sent(WriteStatus status) noexcept override { sent.push_back(status); }
  void on_received(std::span<char> room, ssize_t result, std::uint32_t) noexcept override {
    received.push_back(result);
    if (result > 0) received_bytes.append(room.data(), static_cast<std::size_t>(result));
  }
};

ssize_t send_reset(int, const void*, size_t, int) {
  errno = ECONNRESET;
  return -1;
}
ssize_t sendmsg_reset(int, const msghdr*, int) {
  errno = ECONNRESET;
  return -1;
}
ssize_t send_would_block(int, const void*, size_t, int) {
  errno = EAGAIN;
  return -1;
}
// Takes at most 5 bytes of any send: a short write.
ssize_t send_five(int fd, const void* buffer, size_t count, int flags) {
  return detail::default_syscalls().send(fd, buffer, std::min<size_t>(count, 5), flags);
}

// One stream on `pair.first`, `pair.second` its peer. Entries of the syscall
// table a test replaces are restored after it.
class ByteStreamTest : public ::testing::Test {
 protected:
  void TearDown() override {
    detail::syscall_table() = detail::default_syscalls();
    stream.close(reactor);
  }
  // Writes out what is pending, reading the peer's side as it goes; returns
  // all the peer got, `expected` bytes at most.
  std::string drain_to_peer(std::size_t expected) {
    std::string got;
    while (stream.has_pending()) {
      read_available(pair.second, got);
      if (!wait_for(stream.fd(), POLLOUT)) break;
      if (stream.write_pending() == WriteStatus::kFailed) break;
    }
    EXPECT_FALSE(stream.has_pending());
    if (got.size() < expected) got += read_exactly(pair.second, expected - got.size());
    return got;
  }

  TcpPair pair{kSmallBuffer};
  Reactor reactor;
  ByteStream stream{pair.release_first()};
  RecordingHandler handler{stream};
};

// The batched cases: skipped where io_uring is not available (the batcher
// then refuses and each stream writes for itself, as tested above).
class ByteStreamBatchTest : public ByteStreamTest {
 protected:
  void SetUp() override {
    if (!batcher.open(8)) GTEST_SKIP() << "io_uring unavailable here";
  }
  IoBatcher batcher;
};

TEST_F(ByteStreamTest, WriteTheSocketTakesWhole) {
  EXPECT_EQ(stream.write("hello, "), WriteStatus::kWritten);
  EXPECT_EQ(stream.write("head|", "tail"), WriteStatus::kWritten);  // sendmsg, two buffers
  EXPECT_FALSE(stream.has_pending());
  EXPECT_TRUE(stream.idle());
  EXPECT_EQ(read_exactly(pair.second, 16), "hello, head|tail");
  stream.close(reactor);
  EXPECT_TRUE(stream.closed());
  EXPECT_EQ(stream.fd(), -1);
}

// A write bigger than the socket buffers goes pending; EPOLLOUT (through a
// reactor, edge-triggered) drains it in order, and output written meanwhile
// follows it.
TEST_F(ByteStreamTest, FullSocketGoesPendingAndDrainsInOrderOnWritability) {
  ASSERT_TRUE(stream.add(reactor, &handler, EPOLLIN | EPOLLRDHUP));
  const std::string big = pattern(4 * 1024 * 1024, 'a');
  ASSERT_EQ(stream.write(big), WriteStatus::kProgress);  // some, not all
  EXPECT_TRUE(stream.has_pending());
  EXPECT_TRUE(stream.blocked());
  // Written after the pending output: it must follow it.
  stream.append_pending("|after");
  ASSERT_TRUE(stream.update_interest(reactor, &handler, /*reading=*/false));

  std::string got;
  for (int i = 0; i < 10000 && stream.has_pending(); ++i) {
    read_available(pair.second, got);
    reactor.run_once(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(stream.has_pending());
  ASSERT_FALSE(handler.sent.empty());
  EXPECT_EQ(handler.sent.back(), WriteStatus::kWritten);
  for (std::uint32_t e : handler.events) EXPECT_TRUE(e & EPOLLOUT);
  // Nothing pending: interest drops EPOLLOUT again.
  ASSERT_TRUE(stream.update_interest(reactor, &handler, /*reading=*/true));
  const std::string expected = big + "|after";
  got += read_exactly(pair.second, expected.size() - got.size());
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

// With output pending, a write goes behind it (append_pending), and a
// write_pending the socket refuses keeps everything.
TEST_F(ByteStreamTest, WriteAfterPendingKeepsOrder) {
  const std::string big = pattern(2 * 1024 * 1024, 'A');
  ASSERT_EQ(stream.write(big), WriteStatus::kProgress);
  // A socket that takes nothing (EAGAIN, injected) keeps everything.
  detail::syscall_table().send = &send_would_block;
  EXPECT_EQ(stream.write_pending(), WriteStatus::kBlocked);
  detail::syscall_table() = detail::default_syscalls();
  stream.append_pending("one|", "two");
  stream.append_pending("|three");
  const std::string expected = big + "one|two|three";
  EXPECT_TRUE(drain_to_peer(expected.size()) == expected);
}

// A reset peer (injected through the seam: ECONNRESET) is a failure, for
// one buffer (send), two (sendmsg), and pending output.
TEST_F(ByteStreamTest, FailedWriteReportsFailure) {
  ASSERT_EQ(stream.write(pattern(2 * 1024 * 1024, 'x')), WriteStatus::kProgress);
  detail::syscall_table().send = &send_reset;
  detail::syscall_table().sendmsg = &sendmsg_reset;
  EXPECT_EQ(stream.write_pending(), WriteStatus::kFailed);
  stream.drop_pending();
  EXPECT_EQ(stream.write("x"), WriteStatus::kFailed);
  EXPECT_EQ(stream.write("x", "y"), WriteStatus::kFailed);
  EXPECT_FALSE(stream.has_pending());  // a failure keeps nothing
}

// A real reset: the peer closes with unread input and SO_LINGER 0.
TEST_F(ByteStreamTest, PeerResetIsAFailure) {
  const linger abort_close{1, 0};
  ASSERT_EQ(::setsockopt(pair.second, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close), 0);
  ASSERT_EQ(stream.write("unread"), WriteStatus::kWritten);
  ::close(std::exchange(pair.second, -1));
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));  // the RST arrived
  EXPECT_EQ(stream.write("more"), WriteStatus::kFailed);
}

// Linger: half-close, drain what the peer still sends, done when it closes.
TEST_F(ByteStreamTest, LingerDrainsAndEndsWhenThePeerCloses) {
  ASSERT_EQ(stream.write("last response"), WriteStatus::kWritten);
  ASSERT_EQ(::send(pair.second, "unread request", 14, 0), 14);
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  EXPECT_EQ(stream.start_linger(), LingerStatus::kDraining);
  // The peer sees the whole response, then our FIN.
  std::string got;
  while (wait_for(pair.second, POLLIN) && read_available(pair.second, got)) {
  }
  EXPECT_EQ(got, "last response");
  // More input while lingering is discarded.
  ASSERT_EQ(::send(pair.second, "more", 4, 0), 4);
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  EXPECT_EQ(stream.drain_linger(), LingerStatus::kDraining);
  ::close(std::exchange(pair.second, -1));
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  EXPECT_EQ(stream.drain_linger(), LingerStatus::kDone);
}

TEST_F(ByteStreamTest, ReceiveReportsBytesEofAndWouldBlock) {
  char room[16];
  EXPECT_EQ(stream.receive(room), -EAGAIN);
  ASSERT_EQ(::send(pair.second, "abc", 3, 0), 3);
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  EXPECT_EQ(stream.receive(room), 3);
  ::shutdown(pair.second, SHUT_WR);
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  EXPECT_EQ(stream.receive(room), 0);
}

// A batched send the socket takes only part of (a short count, injected):
// the rest is kept ahead of output appended while the send was queued.
TEST_F(ByteStreamBatchTest, SendWithAShortCountKeepsTheRestFirst) {
  batcher.out.append("0123456789");
  EXPECT_EQ(batcher.own_output(), "0123456789");
  ASSERT_TRUE(batcher.queue_send(stream, &handler));
  EXPECT_TRUE(stream.send_queued());
  EXPECT_TRUE(stream.blocked());
  EXPECT_TRUE(batcher.own_output().empty());
  // Output flushed while the send is queued waits behind it.
  batcher.out.append("|later");
  stream.append_pending(batcher.own_output());
  batcher.drop_own_output();

  detail::syscall_table().send = &send_five;  // the batch goes through the seam
  batcher.flush_sends();
  detail::syscall_table() = detail::default_syscalls();
  ASSERT_EQ(handler.sent.size(), 1u);
  EXPECT_EQ(handler.sent[0], WriteStatus::kProgress);
  EXPECT_FALSE(stream.send_queued());
  ASSERT_TRUE(stream.has_pending());
  EXPECT_EQ(drain_to_peer(16), "0123456789|later");
}

TEST_F(ByteStreamBatchTest, SendOfAClosedStreamFails) {
  batcher.out.append("lost");
  ASSERT_TRUE(batcher.queue_send(stream, &handler));
  stream.close(reactor);
  batcher.flush_sends();
  ASSERT_EQ(handler.sent.size(), 1u);
  EXPECT_EQ(handler.sent[0], WriteStatus::kFailed);
  EXPECT_TRUE(batcher.out.empty());
}

TEST_F(ByteStreamBatchTest, ReadsReachTheirHandlers) {
  TcpPair other_pair(kSmallBuffer);
  ByteStream other(other_pair.release_first());
  RecordingHandler on_other(other);
  ASSERT_EQ(::send(pair.second, "from a", 6, 0), 6);
  ASSERT_TRUE(wait_for(stream.fd(), POLLIN));
  char room[32], other_room[32];
  ASSERT_TRUE(batcher.can_queue_read());
  batcher.queue_read(stream, &handler, room, EPOLLIN);
  batcher.queue_read(other, &on_other, other_room, EPOLLIN);
  EXPECT_TRUE(stream.read_queued());
  EXPECT_FALSE(stream.idle());
  batcher.flush_reads();
  EXPECT_FALSE(stream.read_queued());
  EXPECT_FALSE(other.read_queued());
  ASSERT_EQ(handler.received.size(), 1u);
  EXPECT_EQ(handler.received[0], 6);
  EXPECT_EQ(handler.received_bytes, "from a");
  ASSERT_EQ(on_other.received.size(), 1u);
  EXPECT_EQ(on_other.received[0], -EAGAIN);
  other.close(reactor);
}

}  // namespace
