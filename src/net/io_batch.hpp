// io_batch.hpp (internal) — IoBatch: many socket reads, or many socket
// writes, with one system call. A reactor queues the reads that epoll reported
// and the responses it wrote during one loop iteration, and issues each kind
// at the iteration's end through io_uring: one io_uring_enter instead of one
// recv(2) or send(2) per connection, because a system call is a large share
// of a keep-alive request (bench/README.md).
// Thread-safety: an IoBatch belongs to the thread that opened it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <span>

namespace portico {
inline namespace v0 {
namespace detail {

struct IoOp {
  int fd;          // < 0: skipped (result -EBADF)
  char* data;      // what to send, or where to receive
  std::size_t size;
  ssize_t result;  // set by send_all/recv_all: bytes, or -errno
};

class IoBatch {
 public:
  IoBatch() noexcept;
  ~IoBatch();
  IoBatch(const IoBatch&) = delete;
  IoBatch& operator=(const IoBatch&) = delete;

  // Sets up an io_uring instance of `depth` entries for the calling thread,
  // the only one that may use it afterwards. False where io_uring is missing
  // (built without liburing, an old kernel, a seccomp filter, or
  // kernel.io_uring_disabled): then each op is one send(2)/recv(2).
  bool open(unsigned depth) noexcept;
  bool active() const noexcept { return ring_ != nullptr; }

  // Each op as send(2)/recv(2) with MSG_DONTWAIT would do it (sends with
  // MSG_NOSIGNAL): never blocking, a full or empty socket gives a short count
  // or -EAGAIN. Ops go in as few io_uring_enter calls as the depth allows.
  // When the syscall seam's send/recv was replaced (tests injecting faults),
  // each op goes through the seam instead, so injected faults reach them too.
  void send_all(std::span<IoOp> ops) noexcept;
  void recv_all(std::span<IoOp> ops) noexcept;

 private:
  enum class Kind { kSend, kRecv };
  void run(Kind kind, std::span<IoOp> ops) noexcept;
  struct Ring;
  std::unique_ptr<Ring> ring_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
