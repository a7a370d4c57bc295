// server/server.cpp — the public API glue: Server, Request::remote_address,
// Response::defer and Completion, over ServerCore and the connection.
// Thread-safety: as documented in portico/server.hpp and portico/http.hpp.
#include "portico/server.hpp"
#include "portico/metrics.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <cassert>
#include <string>
#include <utility>

#include "server/local_replies.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {

std::string_view Request::remote_address() const noexcept {
  if (remote_length_ == 0 && connection_ != nullptr) {
    remote_length_ =
        static_cast<std::uint8_t>(connection_->format_peer(remote_text_, sizeof remote_text_));
  }
  return {remote_text_, remote_length_};
}

Completion Response::defer() noexcept {
  assert(!deferred_);
  deferred_ = true;
  return Completion(exchange_);
}

void Completion::done() noexcept {
  detail::ServerExchange* ex = std::exchange(exchange_, nullptr);
  assert(ex != nullptr);
  if (ex == nullptr) return;
  ex->post_completion();
}

void Completion::write(std::string_view bytes) {
  detail::ServerExchange* ex = exchange_;
  assert(ex != nullptr);
  if (ex == nullptr) return;
  ex->shard->post_from_another_thread(
      [ex, chunk = std::string(bytes)] { ex->connection->on_stream_write(ex, chunk); });
}

void Completion::abandon() noexcept {
  if (exchange_ == nullptr) return;
  // A dropped Completion: a 500 with no body.
  detail::LocalReplies::internal_error(*exchange_, {});
  done();
}

Server::Server(ServerOptions options)
    : options_(std::move(options)), core_(std::make_unique<detail::ServerCore>(options_)) {}

Server::~Server() {
  core_->stop_and_wait();
}

Server& Server::keep_error(RouteError error) {
  if (error && !setup_code_) {
    setup_code_ = error.code();
    setup_error_ = error.message();
  }
  return *this;
}

Server& Server::get(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Get, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::post(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Post, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::put(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Put, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::patch(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(
      add_route(Method::Patch, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::del(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(
      add_route(Method::Delete, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::head(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(add_route(Method::Head, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::options(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(
      add_route(Method::Options, pattern, std::move(handler), std::move(route_options)));
}
Server& Server::any(std::string_view pattern, Handler handler, RouteOptions route_options) {
  return keep_error(core_->change_routes([&](Routes& routes) {
    return routes.add_any(pattern, std::move(handler), std::move(route_options));
  }));
}

Server& Server::any(std::string_view pattern, StreamingHandler handler) {
  return keep_error(core_->change_routes(
      [&](Routes& routes) { return routes.add_any(pattern, std::move(handler)); }));
}

RouteError Server::add_route(Method method, std::string_view pattern, StreamingHandler handler) {
  return core_->change_routes(
      [&](Routes& routes) { return routes.add(method, pattern, std::move(handler)); });
}

RouteError Server::add_route(Method method, std::string_view pattern, Handler handler,
                             RouteOptions route_options) {
  return core_->change_routes([&](Routes& routes) {
    return routes.add(method, pattern, std::move(handler), std::move(route_options));
  });
}

RouteError Server::add_route(std::string_view method_token, std::string_view pattern,
                             Handler handler, RouteOptions route_options) {
  if (method_token == "*") {
    return RouteError(RouteErrc::kBadSyntax, 0, "'*' is not a method token; use any()");
  }
  return core_->change_routes([&](Routes& routes) {
    return routes.add(method_token, pattern, std::move(handler), std::move(route_options));
  });
}

Server& Server::use(Middleware middleware) {
  core_->use(std::move(middleware));
  return *this;
}

void Server::routes(Routes table, RouteRetention retention) {
  core_->replace_routes(std::move(table), retention);
}

std::error_code Server::start() {
  if (setup_code_) {
    if (setup_error_.empty()) setup_error_ = setup_code_.message();
    return setup_code_;
  }
  std::uint16_t bound = 0;
  std::string message;
  std::error_code error = core_->start(message, bound);
  if (error) {
    setup_error_ = std::move(message);
    return error;
  }
  setup_error_.clear();
  port_.store(bound, std::memory_order_release);
  return {};
}

std::error_code Server::run() {
  std::error_code error;
  if (!core_->started()) error = start();
  if (error) return error;
  if (options_.handle_signals) {
    sigset_t signals;
    sigset_t previous;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    // The server's own threads block these (see start()); blocking them here
    // too routes them to this sigtimedwait.
    pthread_sigmask(SIG_BLOCK, &signals, &previous);
    while (core_->running()) {
      const timespec tick{0, 100 * 1000 * 1000};
      const int signal_number = sigtimedwait(&signals, nullptr, &tick);
      if (signal_number == SIGINT || signal_number == SIGTERM) stop();
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  wait();
  return {};
}

void Server::stop() noexcept {
  core_->stop();
}
void Server::wait() {
  core_->wait();
}
bool Server::running() const noexcept {
  return core_->running();
}
MetricsSnapshot Server::metrics_snapshot() const {
  return core_->metrics_snapshot();
}

std::string Server::metrics() const {
  std::string out;
  append_metrics(out);
  return out;
}

void Server::append_metrics(std::string& out) const {
  append_prometheus(out, metrics_snapshot());
}

Response::BodySource Server::metrics_source() const {
  return [writer = PrometheusWriter(metrics_snapshot())](std::string& out) mutable {
    return writer.next(out, PrometheusWriter::kPiece);
  };
}

ServerStats Server::stats() const noexcept {
  return core_->stats();
}

}  // namespace v0
}  // namespace portico
