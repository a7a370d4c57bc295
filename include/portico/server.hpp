// portico/server.hpp — Server: the HTTP/1.1 server a host application links.
// N shared-nothing reactor threads, each with its own SO_REUSEPORT listener,
// buffer pool and timers; routes in a published frozen radix trie; blocking
// handlers on a worker pool fed by an MPMC queue.
// Thread-safety: configure (routes, middleware) before start() from one
// thread; after start(), stop(), wait(), routes(), port() and stats() are
// safe from any thread; get()/post()/... after start() publish a new table
// and are serialised internally.
// Lifetimes: the Server must outlive every Completion it handed out that is
// still pending when it is destroyed (the destructor stops and waits).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "portico/detail/unique_function.hpp"
#include "portico/http.hpp"
#include "portico/router.hpp"

namespace portico {
inline namespace v0 {

// A route handler: runs on the reactor thread (or a worker, for a blocking
// route). It fills the response, or calls res.defer() to finish it later.
using Handler = detail::UniqueFunction<void(Request&, Response&)>;

// A middleware wraps handlers. `before` runs in order of registration (the
// server's, then the route's); returning false short-circuits: the handler
// and the remaining `before`s are skipped and the response as it stands is
// sent. `after` runs in reverse order for every middleware whose `before`
// ran (or that has none), just before the response is written — also for a
// deferred response, on the reactor thread, when it completes. Either may be
// empty.
struct Middleware {
  detail::UniqueFunction<bool(Request&, Response&)> before;
  detail::UniqueFunction<void(const Request&, Response&)> after;
};

namespace detail {
class ExchangeTaker;
}  // namespace detail
struct MetricsSnapshot;  // portico/metrics.hpp

// A handler that takes its exchanges over at the request head and streams
// them both ways itself: the request body as it is read, the response as it
// comes (the gateway's proxy, made by portico::Gateway::proxy()). Opaque to
// a host, which passes it to any() or add_route() like a Handler; no
// middleware runs around it.
struct StreamingHandler {
  std::shared_ptr<detail::ExchangeTaker> taker;
};

struct RouteOptions {
  // Run the handler on the worker pool (for handlers that block). When the
  // worker queue is full the request is answered 503 with Retry-After.
  bool blocking = false;
  // Middleware around this route only, inside the server's.
  std::vector<Middleware> middleware{};
};

// A set of routes, built off to the side and published in one step with
// Server::routes(). The same route-adding calls as Server.
// What Server::routes() keeps of a table it publishes.
enum class RouteRetention : std::uint8_t {
  kBuilder,     // the table itself, for routes added later
  kFrozenOnly,  // only the frozen table: one always replaced whole
};

class Routes {
 public:
  Routes();
  ~Routes();
  Routes(Routes&&) noexcept;
  Routes& operator=(Routes&&) noexcept;

  // Adds a route; the error names the pattern and position when the pattern is
  // invalid or conflicts with one added before (nothing is added then).
  RouteError add(Method method, std::string_view pattern, Handler handler,
                 RouteOptions route_options = {});
  RouteError add(std::string_view method_token, std::string_view pattern, Handler handler,
                 RouteOptions route_options = {});
  // Any method.
  RouteError add_any(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  RouteError add(Method method, std::string_view pattern, StreamingHandler handler);
  RouteError add(std::string_view method_token, std::string_view pattern,
                 StreamingHandler handler);
  RouteError add_any(std::string_view pattern, StreamingHandler handler);

  std::size_t size() const noexcept;

 private:
  friend class Server;
  friend class detail::ServerCore;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class AccessLogFormat { kOff, kCommon, kJson };

struct ServerOptions {
  // Listening address (IPv4 or IPv6 literal) and port; port 0 picks a free
  // one, readable from port() after start().
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  // Reactor threads, each with its own listener; 0 means one per CPU.
  unsigned threads = 1;
  int backlog = 4096;
  // Connections per reactor; beyond it new connections are closed at once.
  std::size_t max_connections = 65536;

  // Read buffers: pooled blocks per reactor (a request whose head and body
  // fit one block is never copied) and the bound on blocks out at once.
  std::size_t read_buffer_size = 16 * 1024;
  std::size_t max_read_buffers = 16384;

  // Limits; past them the request is answered with the status named and the
  // connection is closed.
  std::size_t max_request_line = 8 * 1024;   // method + target + version: 414
  std::size_t max_header_bytes = 64 * 1024;  // the whole head: 431
  std::size_t max_header_count = 100;        // header fields: 431
  std::size_t max_body_bytes = 8 * 1024 * 1024;  // 413
  // Requests served on one connection before it is closed (0: unlimited).
  std::size_t max_requests_per_connection = 0;

  // Timeouts (0 disables one). A request's head must arrive within
  // header_timeout of its first byte (slowloris); its body within body_timeout
  // of the head; an idle keep-alive connection is closed after idle_timeout;
  // a response that cannot be written for write_timeout is abandoned.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds write_timeout{30'000};

  // Each reactor issues the reads epoll reported in one loop iteration
  // together, and the responses written in it together: one io_uring_enter
  // call for each instead of one recv(2)/send(2) per connection (fewer system
  // calls per request; see README, Measured). Where io_uring is unavailable
  // (no liburing at build time, an old kernel, a seccomp filter) every read
  // and write is its own system call, as with false.
  bool batch_io = true;

  // 301/308 to the path with its trailing slash fixed, and to the cleaned,
  // case-corrected path (httprouter's RedirectTrailingSlash/RedirectFixedPath).
  bool redirect_trailing_slash = true;
  bool redirect_fixed_path = true;
  // OPTIONS on a path whose routes have no OPTIONS handler is answered 200
  // with an Allow header listing the path's methods; `OPTIONS *` lists every
  // method the table routes. Allow headers (405 too) then include OPTIONS.
  bool handle_options = true;
  // Route and serve the request-target with its dot segments removed and
  // `%2E` decoded (RFC 3986 §5.2.4; nothing else is decoded); one that would
  // climb above `/` is 400. Off: the target as sent. The gateway turns it on,
  // so the path it routes is the path it forwards.
  bool normalize_target = false;

  // The blocking-handler worker pool. Its handlers mostly wait (on a
  // database, a file, another service), so it has more threads than a
  // machine has cores: 16 handlers that each wait 50 ms answer 320 requests
  // a second. Requests beyond the queue are answered 503.
  unsigned worker_threads = 16;
  std::size_t worker_queue_capacity = 1024;
  // Seconds sent in Retry-After with a 503.
  unsigned retry_after_seconds = 1;

  // stop(): in-flight requests get this long to finish before connections are
  // closed.
  std::chrono::milliseconds shutdown_timeout{10'000};
  // run() stops the server on SIGINT/SIGTERM.
  bool handle_signals = true;

  // The Server header ("" sends none).
  std::string server_name = "portico";

  // Access log lines are formatted on the reactor into a per-reactor buffer
  // and written to access_log_fd once per loop iteration.
  AccessLogFormat access_log = AccessLogFormat::kOff;
  int access_log_fd = 1;

  // Request metrics (metrics(), README "Metrics"): each reactor counts its
  // requests by route pattern, method, status class and error label into
  // series of its own, merged when scraped. Off: nothing is counted per
  // request (ServerStats still is).
  bool metrics = true;
};

// What an answer the server writes itself (rather than a handler) is, as
// logs and metrics name it: the error labels of the gateway's design
// (GATEWAY.md, "Answers the gateway writes itself"). kNone marks answers
// that are no error: OPTIONS, redirects, 100 Continue. The upstream labels
// are for the gateway; the server alone never uses them.
enum class ErrorLabel : std::uint8_t {
  kNone,
  kRouteNotFound,     // 404
  kMethodNotAllowed,  // 405 + Allow
  kBadRequest,        // 400, 417, 505
  kTooLarge,          // 413, 414, 431
  kClientTimeout,     // 408
  kInternalError,     // 500: a handler threw or set no valid status, a Completion was dropped
  kOverflow,          // 503 + Retry-After: worker queue full, out of read buffers or memory
  kUpstreamConnectFailure,
  kUpstreamReset,
  kUpstreamProtocolError,
  kUpstreamTimeout,
  kNoHealthyUpstream,
  kCircuitOpen,
};
inline constexpr std::size_t kErrorLabelCount = 14;
// The label in snake_case ("route_not_found"), as logs and metrics spell it.
std::string_view label_name(ErrorLabel label) noexcept;

struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0;  // past max_connections or out of buffers
  std::size_t connections_open = 0;
  std::uint64_t requests = 0;
  std::uint64_t responses_4xx = 0;
  std::uint64_t responses_5xx = 0;
  std::uint64_t rejected_503 = 0;  // worker queue full
  std::uint64_t timeouts = 0;
  std::uint64_t bad_requests = 0;  // parse errors and limits
  // Timers armed by the server's reactors (ReactorStats::timer_arms): the
  // deadlines of connections, exchanges and pools are moved lazily, so a
  // steady keep-alive load arms few, not some per request.
  std::uint64_t timer_arms = 0;
  // Route tables replaced by routes()/add_route() and not freed yet: each is
  // freed once every reactor has passed a quiescent point (within a loop
  // iteration) and the next change comes; this stays small under route churn.
  std::size_t route_tables_retired = 0;
  // Answers the server wrote itself, by label (index: the ErrorLabel; see
  // replies()). Each is also counted by the fields above as it always was
  // (a 404 in responses_4xx, a full worker queue in rejected_503, ...).
  std::array<std::uint64_t, kErrorLabelCount> replies_by_label{};

  std::uint64_t replies(ErrorLabel label) const noexcept {
    return replies_by_label[static_cast<std::size_t>(label)];
  }
};

class Server {
 public:
  explicit Server(ServerOptions options = {});
  // Stops (if running) and waits for every thread.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Route registration, cpp-httplib style. An invalid route is not added; its
  // error is kept and returned by start() (setup_error() has the message).
  // Use add_route() to see the error at once.
  Server& get(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& post(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& put(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& patch(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& del(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& head(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& options(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& any(std::string_view pattern, Handler handler, RouteOptions route_options = {});
  Server& any(std::string_view pattern, StreamingHandler handler);
  RouteError add_route(Method method, std::string_view pattern, StreamingHandler handler);
  RouteError add_route(Method method, std::string_view pattern, Handler handler,
                       RouteOptions route_options = {});
  RouteError add_route(std::string_view method_token, std::string_view pattern,
                       Handler handler, RouteOptions route_options = {});

  // Server-wide middleware, outermost first. REQUIRES: before start().
  Server& use(Middleware middleware);

  // Replaces the whole route table while serving: requests already routed
  // finish on the old table; no request fails during the swap. With
  // RouteRetention::kBuilder (the default) the server keeps `table`, so
  // routes added later (add_route(), get(), ...) join it; with kFrozenOnly
  // it keeps only the frozen table, not what building it took (for 120,000
  // routes about 10 MiB: a gateway replaces its table whole on each reload),
  // and adding a route then fails with RouteErrc::kFrozen until the next
  // routes() call with kBuilder.
  void routes(Routes table, RouteRetention retention = RouteRetention::kBuilder);

  // Binds the listeners and starts the reactor threads; returns once the
  // server accepts connections. Errors: address in use, bad host, a route
  // error kept from get()/post()/..., already started.
  std::error_code start();
  // The message of the error start() returned ("" when none).
  const std::string& setup_error() const noexcept { return setup_error_; }
  // start() (unless started already), then wait(); with
  // options.handle_signals, SIGINT/SIGTERM call stop(). Returns start()'s
  // error or, after a clean stop, {}.
  std::error_code run();
  // Graceful shutdown, from any thread or a handler: stop accepting, finish
  // in-flight requests within shutdown_timeout, close idle connections.
  void stop() noexcept;
  // Blocks until every reactor and worker has exited after stop().
  void wait();

  // The bound port (after start()).
  std::uint16_t port() const noexcept { return port_.load(std::memory_order_acquire); }
  bool running() const noexcept;
  ServerStats stats() const noexcept;
  // The request series of every reactor, merged, with stats() (include
  // portico/metrics.hpp). Empty series when options.metrics is off.
  MetricsSnapshot metrics_snapshot() const;
  // metrics_snapshot() in the Prometheus text format 0.0.4, for a host to
  // serve from a route of its own (Content-Type: text/plain; version=0.0.4;
  // charset=utf-8). Safe from any thread, a handler included; takes no lock
  // a reactor waits on.
  std::string metrics() const;
  void append_metrics(std::string& out) const;
  // The same text a piece at a time, for Response::body_source(): a scrape
  // of thousands of series is written as the client reads it, never held
  // whole. The snapshot is taken now.
  //   s.get("/metrics", [&s](Request&, Response& res) {
  //     res.body_source(s.metrics_source(), "text/plain; version=0.0.4; charset=utf-8");
  //   });
  Response::BodySource metrics_source() const;
  const ServerOptions& config() const noexcept { return options_; }

 private:
  Server& keep_error(RouteError error);

  ServerOptions options_;
  std::unique_ptr<detail::ServerCore> core_;
  std::error_code setup_code_;
  std::string setup_error_;
  std::atomic<std::uint16_t> port_{0};
};

}  // namespace v0
}  // namespace portico
