// server/response_writer.cpp — writing a response into the reactor's output:
// status line, head, framing (length, chunked, close-delimited), chunks of a
// streamed response, and the body (copied, or written beside a big one).
// Runs on the connection's reactor thread only.
#include <cassert>
#include <chrono>

#include "http1/writer.hpp"
#include "server/access_log.hpp"
#include "server/probes.hpp"
#include "server/request_metrics.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

using namespace std::string_view_literals;  // literals appended with their length known

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr std::size_t kBigBody = 64 * 1024;  // bodies above this are written, not copied

}  // namespace

void ServerConnection::write_status_line(int status) noexcept {
  OutputBuffer& out = shard_.batcher.out;
  if (status == 200) {
    out.append(shard_.ok_head);
    return;
  }
  http1::write_status_line(out, status, reason_phrase(status));
  out.append(shard_.core.server_line());
  out.append(shard_.date_line);
}

void ServerConnection::write_head(ServerExchange& ex, Framing framing,
                                  std::size_t length) noexcept {
  OutputBuffer& out = shard_.batcher.out;
  const Response& res = ex.response;
  const int status = res.status_;
  write_status_line(status);
  if (const std::string_view type = res.content_type_value(); !type.empty()) {
    out.append("Content-Type: "sv);
    out.append(type);
    out.append("\r\n"sv);
  }
  out.append(res.fields_);
  http1::write_framing(out, framing, length);
  if (!ex.keep_alive) {
    out.append("Connection: close\r\n"sv);
  } else if (ex.parser.version_minor() == 0) {
    out.append("Connection: keep-alive\r\n"sv);
  }
  http1::end_head(out);
  if (status >= 400)
    bump(status >= 500 ? shard_.counters.responses_5xx : shard_.counters.responses_4xx);
}

// How the body of `ex` is framed: a chunked response to an HTTP/1.0 client is
// delimited by closing the connection instead.
http1::Framing ServerConnection::framing_of(ServerExchange& ex) noexcept {
  const int status = ex.response.status_;
  if (!status_has_body(status)) return Framing::kNone;
  if (!ex.response.chunked_) return Framing::kLength;
  if (ex.parser.version_minor() >= 1) return Framing::kChunked;
  ex.keep_alive = false;
  close_after_write_ = true;
  return Framing::kNone;
}

void ServerConnection::append_chunk(ServerExchange& ex, std::string_view bytes) noexcept {
  // Completion::write() of a 204 or 304: its bytes have nowhere to go.
  if (bytes.empty() || ex.head_request || !status_has_body(ex.response.status_)) return;
  OutputBuffer& out = shard_.batcher.out;
  if (ex.parser.version_minor() == 0) {  // close-delimited
    out.append(bytes);
    return;
  }
  http1::write_chunk(out, bytes);
}

void ServerConnection::on_stream_write(ServerExchange* ex, std::string_view bytes) noexcept {
  assert(ex == exchange_);
  if (stream_.closed()) return;  // the peer left; the completion cleans up
  if (!ex->stream_started) {
    run_afters(*ex);
    ex->response.chunked_ = true;
    if (shard_.shutting_down) ex->keep_alive = false;
    write_head(*ex, framing_of(*ex), 0);
    ex->stream_started = true;
  }
  append_chunk(*ex, bytes);
  if (!ex->head_request && status_has_body(ex->response.status_))
    ex->streamed_bytes += bytes.size();
  flush();
  if (!stream_.closed()) {
    update_interest();
    update_timer();
  }
}

void ServerConnection::serialize(ServerExchange& ex, std::string_view body) noexcept {
  OutputBuffer& out = shard_.batcher.out;
  const Response& res = ex.response;
  const int status = res.status_;
  if (ex.stream_started) {
    // Streamed: the head went out with the first write(); the rest of the
    // body is the last chunk, then the terminator.
    append_chunk(ex, body);
    if (ex.parser.version_minor() >= 1 && !ex.head_request && status_has_body(status))
      http1::write_last_chunk(out);
  } else {
    const Framing framing = framing_of(ex);
    write_head(ex, framing, body.size());
    if (framing == Framing::kChunked) {
      append_chunk(ex, body);
      if (!ex.head_request) http1::write_last_chunk(out);
      body = {};
    } else if (framing == Framing::kNone && status_has_body(status)) {
      append_chunk(ex, body);  // close-delimited
      body = {};
    } else if (framing == Framing::kNone) {
      body = {};
    }
  }

  const ServerOptions& options = shard_.core.options();
  // What went out streamed before this last piece, and the last piece.
  const std::uint64_t body_bytes = ex.streamed_bytes + (ex.head_request ? 0 : res.body_.size());
  if (options.metrics && !ex.taken) {
    // The loop's clock (read once per iteration): no clock read per request.
    shard_.request_metrics.record(
        series_key(ex.route != nullptr ? ex.route->name_id() : 0, method_index(ex.request.method()),
                   status, ex.label, ex.fallback),
        elapsed_ns(ex.started, shard_.reactor.now()), ex.request.body().size(), body_bytes);
  }
  if (options.access_log != AccessLogFormat::kOff) {
    append_access_log(shard_.access_log, options.access_log, shard_.date_second, ex.request, status,
                      body_bytes);
  }

  // A taken exchange's taker fires request_done (it knows what it sent).
  PORTICO_PROBE4_IF(phase_ != Phase::kTaken, request_done, probe_id(this), status, body_bytes,
                    static_cast<unsigned>(ex.label));

  if (ex.stream_started || ex.head_request || body.empty()) return;
  if (body.size() >= kBigBody) {
    // A rest the socket does not take keeps the response's own string.
    flush_with(body, body.data() == res.body_.data() ? &ex.response.body_ : nullptr);
  } else {
    out.append(body);
  }
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
