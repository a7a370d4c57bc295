// server/reactor_shard.cpp — ReactorShard: pooled exchanges, the Date line,
// shutdown and the reactor thread's main.
// Runs on the shard's thread only (see reactor_shard.hpp).
#include "server/reactor_shard.hpp"

#include <time.h>

#include <algorithm>
#include <chrono>

#include "server/access_log.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr std::size_t kExchangeReserve = 256;  // pooled exchanges kept per reactor
constexpr unsigned kIoBatchDepth = 256;        // reads (and sends) queued per iteration, at most

BufferPoolOptions pool_options(const ServerOptions& options) {
  BufferPoolOptions pool;
  pool.block_size = std::max<std::size_t>(1024, (options.read_buffer_size + 63) / 64 * 64);
  pool.max_blocks = std::max<std::size_t>(1, options.max_read_buffers);
  pool.slab_size = std::min<std::size_t>(2 * 1024 * 1024, pool.block_size * pool.max_blocks);
  return pool;
}

void on_shutdown_timer(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* shard = static_cast<ReactorShard*>(context);
  // The drain deadline: close whatever is still open.
  ServerConnection* c = shard->connections;
  while (c != nullptr) {
    ServerConnection* next = c->next;
    c->force_close();
    c = next;
  }
  shard->maybe_finish_shutdown();
}

}  // namespace

ReactorShard::ReactorShard(ServerCore& core_ref, const ServerOptions& options)
    : core(core_ref),
      reactor(ReactorOptions{}),
      pool(pool_options(options)),
      listener(*this),
      shutdown_timer(&on_shutdown_timer, this) {}

ServerExchange* ReactorShard::acquire_exchange(ServerConnection* connection) {
  ServerExchange* ex = free_exchanges;
  if (ex != nullptr) {
    free_exchanges = ex->next_free;
    --free_exchange_count;
  } else {
    ex = heap.make<ServerExchange>();
    ex->shard = this;
  }
  ex->next_free = nullptr;
  ex->connection = connection;
  ex->reset();
  ex->request.connection_ = connection;
  return ex;
}

void ServerExchange::reset() noexcept {
  parser.reset(http1::Mode::kRequest, &shard->core.limits());
  streaming = nullptr;
  keep_alive = true;
  continue_due = false;
  stream_started = false;
  request_done = false;
  body_paused = false;
  write_blocked = false;
  upgrade_keep_alive = false;
  tunnel_eof = false;
  tunnel_shut_due = false;
  answered_early = false;
  pumping = false;
  streamed_bytes = 0;
  route = nullptr;
  route_ref = nullptr;
  route_hold.reset();
  middleware_reached = 0;
  head_request = false;
  local_reply = false;
  label = ErrorLabel::kNone;
  taken = false;
  fallback = false;
  response.reset();
  response.exchange_ = this;
  request.header_count_ = 0;
  request.params_.clear();
  request.remote_length_ = 0;
}

void ReactorShard::release_exchange(ServerExchange* ex) noexcept {
  ex->route_hold.reset();
  // A body source left unfinished (its client gone) may hold much: not
  // until the exchange is reused.
  ex->response.source_.reset();
  ex->connection = nullptr;
  // Keep a bounded reserve: a burst of slow requests must not pin its peak.
  if (free_exchange_count >= kExchangeReserve) {
    heap.destroy(ex);
    return;
  }
  ex->next_free = free_exchanges;
  free_exchanges = ex;
  ++free_exchange_count;
}

void ReactorShard::refresh_date() noexcept {
  const std::time_t now = std::time(nullptr);
  if (now == date_second && !date_line.empty()) return;
  date_second = now;
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  const std::size_t n =
      std::strftime(text, sizeof text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  date_line.assign(text, n);
  ok_head.assign("HTTP/1.1 200 OK\r\n");
  ok_head.append(core.server_line());
  ok_head.append(date_line);
}

void ReactorShard::begin_shutdown() noexcept {
  if (shutting_down) return;
  shutting_down = true;
  reactor.cancel(listener.retry_timer);
  listener.close();
  ServerConnection* c = connections;
  while (c != nullptr) {
    ServerConnection* next = c->next;
    c->on_shutdown();
    c = next;
  }
  const auto timeout = core.options().shutdown_timeout;
  reactor.arm(shutdown_timer, timeout.count() > 0 ? timeout : std::chrono::milliseconds(0));
  maybe_finish_shutdown();
}

void ReactorShard::maybe_finish_shutdown() noexcept {
  if (shutting_down && connection_count == 0 && deferred_outstanding == 0) {
    reactor.cancel(shutdown_timer);
    reactor.stop();
  }
}

void ReactorShard::thread_main() {
  pool.bind_to_current_thread();
  heap.open();
  refresh_date();
  if (core.options().batch_io) (void)batcher.open(kIoBatchDepth);
  reactor.add_iteration_hook([this] {
    batcher.flush_reads();
    batcher.flush_sends();
    refresh_date();
    if (!access_log.empty()) flush_access_log(core.options().access_log_fd, access_log);
    // A quiescent point for the route table: nothing here holds a view into
    // it across iterations (deferred requests own their parameter names and
    // hold their route by shared_ptr).
    if (reader) reader->quiescent();
  });
  reactor.run();
  // None are queued after the last iteration's hook; kept for safety.
  batcher.flush_reads();
  batcher.flush_sends();
  // Stopped: everything was closed by the shutdown; free the pooled state.
  reactor.cancel(shutdown_timer);
  reactor.cancel(listener.retry_timer);
  while (connections != nullptr) connections->force_close();
  // Upstream pools and the like, after the exchanges that used them.
  batcher.flush_reads();
  batcher.flush_sends();
  extensions.clear();
  while (free_exchanges != nullptr) {
    ServerExchange* next = free_exchanges->next_free;
    heap.destroy(free_exchanges);
    free_exchanges = next;
  }
  if (!access_log.empty()) flush_access_log(core.options().access_log_fd, access_log);
  reader.reset();
  heap.close();
  core.reactor_exited();
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
