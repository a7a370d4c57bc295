// net/io_batcher.cpp — IoBatcher: queueing and issuing a reactor's reads and
// sends (see io_batcher.hpp). Runs on the owning reactor thread only.
#include "net/io_batcher.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

bool IoBatcher::open(unsigned depth) noexcept {
  if (!io_batch_.open(depth)) return false;
  depth_ = depth;
  queued_sends_.reserve(depth);
  sending_.reserve(depth);
  queued_reads_.reserve(depth);
  io_ops_.reserve(depth);
  return true;
}

void IoBatcher::flush_reads() noexcept {
  if (queued_reads_.empty()) return;
  // One pass: a handler's on_received reads on by itself and never queues a
  // read; only its on_io does.
  io_ops_.clear();
  for (const QueuedRead& q : queued_reads_) {
    // A stream closed since (a timer; its buffer may be gone) reads nothing:
    // fd -1. An open one's room stays as queued: nothing else reads into it.
    io_ops_.push_back({q.stream->fd(), q.room.data(), q.room.size(), 0});
  }
  io_batch_.recv_all(io_ops_);
  for (std::size_t i = 0; i < queued_reads_.size(); ++i) {
    const QueuedRead& q = queued_reads_[i];
    q.stream->read_queued_ = false;
    q.handler->on_received(q.room, io_ops_[i].result, q.events);
  }
  queued_reads_.clear();
}

void IoBatcher::flush_sends() noexcept {
  while (!queued_sends_.empty()) {
    sending_.swap(queued_sends_);
    io_ops_.clear();
    for (const QueuedSend& q : sending_)
      io_ops_.push_back({q.stream->fd(), const_cast<char*>(out.data()) + q.offset, q.length, 0});
    io_batch_.send_all(io_ops_);
    for (std::size_t i = 0; i < sending_.size(); ++i) {
      const QueuedSend& q = sending_[i];
      ByteStream& stream = *q.stream;
      stream.send_queued_ = false;
      const WriteStatus status =
          stream.closed() ? WriteStatus::kFailed
                          : stream.take_sent({out.data() + q.offset, q.length}, io_ops_[i].result);
      q.handler->on_sent(status);
    }
    sending_.clear();
  }
  out.clear();
  out_mark_ = 0;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
