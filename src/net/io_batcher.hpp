// net/io_batcher.hpp (internal) — IoBatcher: a reactor's output buffer and the
// reads and sends of its ByteStreams, each kind issued once per loop iteration.
// Thread-safety: owned by one reactor thread; views of `out` last until its next append.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "net/byte_stream.hpp"
#include "net/io_batch.hpp"
#include "net/output_buffer.hpp"
#include "portico/reactor.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// The owner of a ByteStream (a server or an upstream connection): its epoll
// events and the results of its batched ops. One vtable with on_io, so an
// idle connection carries one pointer for both.
class StreamHandler : public IoHandler {
 public:
  // The batched send queued for this handler's stream ended; `status` as
  // ByteStream::take_sent reports it (kFailed too when the stream closed
  // meanwhile). The stream's send_queued() is already false.
  virtual void on_sent(WriteStatus status) noexcept = 0;
  // The queued read into `room` ended with `result`: bytes, 0 at EOF, or
  // -errno (-EBADF when the stream closed meanwhile). `events`: what epoll
  // reported when it was queued. The stream's read_queued() is already false.
  virtual void on_received(std::span<char> room, ssize_t result, std::uint32_t events) noexcept = 0;

 protected:
  ~StreamHandler() = default;
};

class IoBatcher {
 public:
  IoBatcher() = default;
  IoBatcher(const IoBatcher&) = delete;
  IoBatcher& operator=(const IoBatcher&) = delete;

  // Batches from now on if io_uring is there (`depth` ops per kind and
  // iteration, at most); without it (false) queue_send and can_queue_read
  // refuse and each stream does its own system calls. Call on the thread
  // that will use it.
  bool open(unsigned depth) noexcept;

  // Serialised output. out[0, mark) is queued for sending; the stream being
  // served appends its own after the mark.
  OutputBuffer out{64 * 1024};
  // The bytes the stream being served has written and not yet flushed.
  std::string_view own_output() const noexcept { return out.view().substr(out_mark_); }
  void drop_own_output() noexcept { out.truncate(out_mark_); }

  // Queues own_output() for `stream`; false when batching is off or the
  // batch is full (then the caller writes it itself). REQUIRES: !stream.blocked().
  bool queue_send(ByteStream& stream, StreamHandler* handler) noexcept {
    if (!io_batch_.active() || queued_sends_.size() == depth_) return false;
    queued_sends_.push_back({&stream, handler, out_mark_, out.size() - out_mark_});
    out_mark_ = out.size();
    stream.send_queued_ = true;
    return true;
  }
  // Whether queue_read can take one more read.
  bool can_queue_read() const noexcept {
    return io_batch_.active() && queued_reads_.size() < depth_;
  }
  // Queues a read of `stream` into `room` (epoll reported `events`).
  // REQUIRES: can_queue_read(); `room` stays valid until on_received.
  void queue_read(ByteStream& stream, StreamHandler* handler, std::span<char> room,
                  std::uint32_t events) noexcept {
    queued_reads_.push_back({&stream, handler, room, events});
    stream.read_queued_ = true;
  }
  // Issues every queued read (one system call) and hands each result to its
  // handler. Runs at the end of each loop iteration, before flush_sends().
  void flush_reads() noexcept;
  // Sends every queued output (one system call) and hands each result to its
  // handler, until nothing is queued (a handler may queue again). Runs at the
  // end of each loop iteration.
  void flush_sends() noexcept;

 private:
  struct QueuedSend {
    ByteStream* stream;
    StreamHandler* handler;
    std::size_t offset;  // into `out`: a handler's on_sent may grow it
    std::size_t length;
  };
  struct QueuedRead {
    ByteStream* stream;
    StreamHandler* handler;
    std::span<char> room;
    std::uint32_t events;
  };

  std::size_t out_mark_ = 0;
  unsigned depth_ = 0;
  std::vector<QueuedSend> queued_sends_;  // capacity depth_, never more
  std::vector<QueuedSend> sending_;
  std::vector<QueuedRead> queued_reads_;  // capacity depth_, never more
  std::vector<IoOp> io_ops_;
  IoBatch io_batch_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
