// io_batch.cpp — IoBatch over liburing (see io_batch.hpp).
#include "net/io_batch.hpp"

#include <cerrno>
#include <memory>
#include <new>

#include "portico/detail/syscalls.hpp"

#if defined(PORTICO_HAVE_LIBURING)
#include <liburing.h>
#endif

namespace portico {
inline namespace v0 {
namespace detail {

namespace {
// One system call per op, through the seam.
void each(bool send, std::span<IoOp> ops) noexcept {
  for (IoOp& op : ops) {
    if (op.fd < 0) {
      op.result = -EBADF;
      continue;
    }
    const ssize_t n =
        send ? sys::send(op.fd, op.data, op.size) : sys::recv(op.fd, op.data, op.size);
    op.result = n >= 0 ? n : -errno;
  }
}
}  // namespace

void IoBatch::send_all(std::span<IoOp> ops) noexcept { run(Kind::kSend, ops); }
void IoBatch::recv_all(std::span<IoOp> ops) noexcept { run(Kind::kRecv, ops); }

#if defined(PORTICO_HAVE_LIBURING)

namespace {
constexpr ssize_t kUnset = -1 - 0x7fffffff;
}

struct IoBatch::Ring {
  io_uring ring{};
  unsigned depth = 0;
  // io_uring_queue_exit() closes ring.ring_fd: after a failed init that is
  // 0, someone else's descriptor (stdin, or whatever got number 0 since).
  bool initialised = false;
  ~Ring() {
    if (initialised) io_uring_queue_exit(&ring);
  }
};

IoBatch::IoBatch() noexcept = default;
IoBatch::~IoBatch() = default;

bool IoBatch::open(unsigned depth) noexcept {
  std::unique_ptr<Ring> ring;
  try {
    ring = std::make_unique<Ring>();
  } catch (const std::bad_alloc&) {
    return false;
  }
  // Every op completes inline during io_uring_enter (MSG_DONTWAIT), so the
  // ring needs no kernel-side task work: DEFER_TASKRUN with SINGLE_ISSUER
  // (Linux 6.1) makes completion the cheapest; SUBMIT_ALL keeps one failed
  // op from holding back the others.
  io_uring_params params{};
  params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(depth, &ring->ring, &params);
  if (rc == -EINVAL) {  // an older kernel: no such flags
    params = io_uring_params{};
    rc = io_uring_queue_init_params(depth, &ring->ring, &params);
  }
  if (rc < 0) return false;
  ring->initialised = true;
  ring->depth = params.sq_entries;
  ring_ = std::move(ring);
  return true;
}

void IoBatch::run(Kind kind, std::span<IoOp> ops) noexcept {
  const bool send = kind == Kind::kSend;
  const SyscallTable& table = syscall_table();
  const bool seam_replaced =
      send ? table.send != default_syscalls().send : table.recv != default_syscalls().recv;
  if (ring_ == nullptr || seam_replaced) {
    each(send, ops);
    return;
  }
  io_uring& ring = ring_->ring;
  while (!ops.empty()) {
    const std::size_t count = std::min<std::size_t>(ops.size(), ring_->depth);
    std::span<IoOp> chunk = ops.first(count);
    ops = ops.subspan(count);
    unsigned queued = 0;
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      IoOp& op = chunk[i];
      op.result = kUnset;
      if (op.fd < 0) {
        op.result = -EBADF;
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (sqe == nullptr) {  // not with an empty ring of `depth` entries; still correct
        each(send, chunk.subspan(i, 1));
        continue;
      }
      if (send) {
        io_uring_prep_send(sqe, op.fd, op.data, op.size, MSG_DONTWAIT | MSG_NOSIGNAL);
      } else {
        io_uring_prep_recv(sqe, op.fd, op.data, op.size, MSG_DONTWAIT);
      }
      io_uring_sqe_set_data64(sqe, i);
      ++queued;
    }
    if (queued == 0) continue;
    int rc;
    do rc = io_uring_submit_and_wait(&ring, queued);
    while (rc == -EINTR);
    if (rc < 0) {
      // Nothing was submitted (io_uring_enter fails only then). Give up on
      // the ring for good: its unsubmitted entries go with it.
      ring_.reset();
      for (std::size_t i = 0; i < chunk.size(); ++i)
        if (chunk[i].result == kUnset) each(send, chunk.subspan(i, 1));
      each(send, ops);
      return;
    }
    // Non-blocking ops complete during the submit (which waited for them
    // all); this reaps them in one pass over the completion ring.
    unsigned seen = 0;
    while (seen < queued) {
      unsigned head;
      unsigned batch = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring, head, cqe) {
        chunk[io_uring_cqe_get_data64(cqe)].result = cqe->res;
        ++batch;
      }
      io_uring_cq_advance(&ring, batch);
      seen += batch;
      if (seen < queued) {  // not expected: submit_and_wait waited for them all
        int wait;
        do wait = io_uring_wait_cqe(&ring, &cqe);
        while (wait == -EINTR);
        if (wait < 0) {  // cannot happen with a live ring; never leave an op unset
          for (IoOp& op : chunk)
            if (op.result == kUnset) op.result = -EIO;
          for (IoOp& op : ops) op.result = -EIO;
          return;
        }
      }
    }
  }
}

#else  // built without liburing

struct IoBatch::Ring {};
IoBatch::IoBatch() noexcept = default;
IoBatch::~IoBatch() = default;
bool IoBatch::open(unsigned /*depth*/) noexcept { return false; }
void IoBatch::run(Kind kind, std::span<IoOp> ops) noexcept { each(kind == Kind::kSend, ops); }

#endif

}  // namespace detail
}  // namespace v0
}  // namespace portico
