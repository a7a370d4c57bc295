// server/reactor_shard.hpp (internal) — ReactorShard: everything one reactor
// thread owns: its reactor, buffer pool, listener, connections, pooled
// exchanges, the batched read and send queues, the Date line, shutdown.
// Thread-safety: every member belongs to the shard's thread, except
// `counters` (read by any thread) and `reactor.post()`.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net/io_batch.hpp"
#include "net/output_buffer.hpp"
#include "net/state_heap.hpp"
#include "portico/buffer_pool.hpp"
#include "portico/reactor.hpp"
#include "portico/server.hpp"
#include "server/listener.hpp"
#include "server/routes.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

class ServerCore;
class ServerConnection;
struct ServerExchange;

// Relaxed single-writer counters: the owning reactor bumps, anyone reads.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

struct ReactorStatsCounters {
  std::atomic<std::uint64_t> accepted{0}, rejected{0}, requests{0}, responses_4xx{0},
      responses_5xx{0}, rejected_503{0}, timeouts{0}, bad_requests{0};
  std::atomic<std::size_t> open{0};
  // Local replies by label (ServerStats::replies_by_label).
  std::array<std::atomic<std::uint64_t>, kErrorLabelCount> replies{};

  void count_reply(ErrorLabel label) noexcept { bump(replies[static_cast<std::size_t>(label)]); }
};

struct ReactorShard {
  ReactorShard(ServerCore& core_ref, const ServerOptions& options);

  ServerCore& core;
  Reactor reactor;
  BufferPool pool;
  std::optional<RouteTable::Reader> reader;
  Listener listener;
  StateHeap heap;
  std::thread thread;

  // Serialised responses. out[0, out_mark) holds the sends queued this
  // iteration (queued_sends), sent together by flush_sends() at its end; the
  // connection being served appends its own after out_mark.
  OutputBuffer out{64 * 1024};
  std::size_t out_mark = 0;
  struct QueuedSend {
    ServerConnection* connection;
    std::size_t offset;
    std::size_t length;
  };
  std::vector<QueuedSend> queued_sends;  // capacity kIoBatchDepth, never more
  std::vector<QueuedSend> sending;
  // Reads epoll reported this iteration, issued together by flush_reads().
  struct QueuedRead {
    ServerConnection* connection;
    std::span<char> room;  // the connection's input buffer; valid while it is open
    std::uint32_t events;
  };
  std::vector<QueuedRead> queued_reads;  // capacity kIoBatchDepth, never more
  std::vector<IoOp> io_ops;
  IoBatch io_batch;
  std::string date_line;
  // "HTTP/1.1 200 OK", Server and Date: what most responses start with, in
  // one append (refreshed with date_line).
  std::string ok_head;
  std::time_t date_second = 0;
  std::string access_log;

  ServerExchange* free_exchanges = nullptr;
  std::size_t free_exchange_count = 0;
  ServerConnection* connections = nullptr;  // intrusive list of every live connection
  std::size_t connection_count = 0;
  std::size_t deferred_outstanding = 0;
  bool shutting_down = false;
  Timer shutdown_timer;
  ReactorStatsCounters counters;

  ServerExchange* acquire_exchange(ServerConnection* connection);
  void release_exchange(ServerExchange* exchange) noexcept;
  // The bytes the connection being served has written and not yet flushed.
  std::string_view own_output() const noexcept { return out.view().substr(out_mark); }
  void drop_own_output() noexcept { out.truncate(out_mark); }
  // Queues own_output() for `connection`; false when batching is off or the
  // batch is full (then the caller sends it itself).
  bool queue_send(ServerConnection* connection) noexcept;
  // Sends every queued response (one system call) and lets each connection
  // act on its result. Runs at the end of each loop iteration.
  void flush_sends() noexcept;
  // Queues a read for `connection` (epoll reported `events`); false when
  // batching is off or the batch is full (then the caller reads itself).
  bool queue_read(ServerConnection* connection, std::uint32_t events) noexcept;
  // Issues every queued read (one system call) and lets each connection
  // serve what arrived. Runs at the end of each loop iteration, before
  // flush_sends().
  void flush_reads() noexcept;
  void refresh_date() noexcept;
  void begin_shutdown() noexcept;
  void maybe_finish_shutdown() noexcept;
  void thread_main();
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
