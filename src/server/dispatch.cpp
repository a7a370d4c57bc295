// server/dispatch.cpp — what happens to a parsed request: routing (and the
// answers routing gives itself), middleware, the handler inline or offloaded
// to a worker, deferred completion, finishing the response.
// Thread-safety: on the connection's reactor thread, except
// ServerExchange::post_completion (any thread).
#include <fmt/format.h>

#include <optional>
#include <string>
#include <vector>

#include "http1/target.hpp"
#include "server/local_replies.hpp"
#include "server/probes.hpp"
#include "server/request_metrics.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

std::string_view target_path(std::string_view target) noexcept {
  // absolute-form ("http://host/path?q"): route on the path part.
  if (!target.empty() && target.front() != '/') {
    const std::size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      const std::size_t slash = target.find('/', scheme + 3);
      return slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  return target;
}

}  // namespace

// The methods an Allow header lists for routes taking `routed`: HEAD wherever
// GET is (HEAD falls back to the GET route), and OPTIONS when the server
// answers it.
MethodSet ServerConnection::advertised(MethodSet routed) const noexcept {
  if (routed.contains(Method::Get)) routed.insert(Method::Head);
  if (shard_.core.options().handle_options) routed.insert(Method::Options);
  return routed;
}

// Inlined into both callers: dispatch() is on every request's path.
[[gnu::always_inline]] inline bool ServerConnection::fill_request(ServerExchange& ex) noexcept {
  Request& req = ex.request;
  const ServerOptions& options = shard_.core.options();
  const char* base = in_.data();

  // Views into the buffer, now that it no longer moves for this request.
  const http1::Parser& parsed = ex.parser;
  req.method_name_ = parsed.method().view(base);
  req.method_ = parse_method(req.method_name_);
  req.target_ = parsed.target().view(base);
  if (options.normalize_target) {
    const std::optional<std::string_view> normalized =
        http1::normalize_target(req.target_, ex.target_scratch);
    if (!normalized) return false;
    req.target_ = *normalized;
  }
  const std::string_view path_and_query = target_path(req.target_);
  const std::size_t question = path_and_query.find('?');
  req.path_ = path_and_query.substr(0, question);
  req.query_ = question == std::string_view::npos ? std::string_view{}
                                                  : path_and_query.substr(question + 1);
  // Values come without the whitespace around them (the parser trims).
  const std::span<const http1::Field> fields = parsed.fields();
  const std::size_t count = fields.size();
  if (req.headers_.size() < count) req.headers_.resize(count);
  for (std::size_t i = 0; i < count; ++i)
    req.headers_[i] = Header{fields[i].name.view(base), fields[i].value.view(base)};
  req.header_count_ = count;
  req.body_ = parsed.body().view(base);
  req.version_minor_ = parsed.version_minor();
  bool keep_alive = parsed.keep_alive() && !shard_.shutting_down && !ex.answered_early;
  if (options.max_requests_per_connection != 0 &&
      requests_ + 1 >= options.max_requests_per_connection)
    keep_alive = false;
  // After an Upgrade request a handler's connection closes; a taker may
  // keep it (start_streaming) when it does not tunnel.
  ex.upgrade_keep_alive = keep_alive && parsed.upgrade();
  keep_alive = keep_alive && !parsed.upgrade();
  ex.keep_alive = keep_alive;
  req.keep_alive_ = keep_alive;
  ex.head_request = req.method_ == Method::Head;
  return true;
}

bool ServerConnection::dispatch_head() noexcept {
  ServerExchange& ex = *exchange_;
  Request& req = ex.request;
  if (!fill_request(ex)) return false;  // dispatch() refuses it
  const FrozenRouter<RouteRef>& table = shard_.reader->table();
  RouteMatch<RouteRef> match = req.method_ ? table.match(*req.method_, req.path_, req.params_)
                                           : table.match(req.method_name_, req.path_, req.params_);
  if (!match || !(*match.handler)->taker) {
    req.params_.clear();
    if (!match && ex.continue_due && !ex.head_request && parsed_ == in_.size()) {
      // No route, and the client waits for 100 Continue before its body:
      // the answer (404, 405, a redirect) goes now, without inviting the
      // body, and the connection closes after it (RFC 9110 §10.1.1).
      ex.continue_due = false;
      ex.answered_early = true;
      dispatch();
      return true;
    }
    // Routed again, with its body, at dispatch().
    return false;
  }
  ++requests_;
  bump(shard_.counters.requests);
  ex.route_ref = match.handler;
  ex.route = match.handler->get();
  if (!req.params_.empty())
    ParamsAccess::rebind_names(req.params_, ex.route->param_names(req.params_));
  start_streaming(false);
  return true;
}

void ServerConnection::start_streaming(bool whole) noexcept {
  ServerExchange& ex = *exchange_;
  ex.route_hold = *ex.route_ref;  // the table may be replaced while it streams
  // A taker answers an Upgrade request itself: unless it tunnels, the next
  // bytes are the next request (GATEWAY.md), so keep-alive stands.
  if (ex.upgrade_keep_alive) ex.keep_alive = ex.request.keep_alive_ = true;
  StreamingExchange* taken = ex.route->taker->take(ClientStream(this), ex);
  if (taken == nullptr) {
    // Answered at once. A body not read yet cannot be skipped: close after.
    if (!whole) ex.keep_alive = false;
    finish_response();
    return;
  }
  ex.streaming = taken;
  ex.taken = true;
  ex.request_done = whole;
  phase_ = Phase::kTaken;
  if (!whole) {
    ex.parser.stream_body(&ServerConnection::on_body_piece, this);
    return;
  }
  // Routed at its end (no route streamed when its head came): the body was
  // read whole, and goes to the taker in one piece.
  if (!ex.request.body_.empty()) taken->on_request_body(ex.request.body_);
  if (ex.streaming == taken) taken->on_request_end();
}

void ServerConnection::dispatch() noexcept {
  ServerExchange& ex = *exchange_;
  Request& req = ex.request;
  const ServerOptions& options = shard_.core.options();
  if (!fill_request(ex)) {
    // A target that climbs above the root (normalize_target): 400, close.
    bump(shard_.counters.bad_requests);
    LocalReplies::bad_request(ex);
    finish_response();
    return;
  }
  ++requests_;
  bump(shard_.counters.requests);

  // Route.
  const FrozenRouter<RouteRef>& table = shard_.reader->table();
  if (req.method_ == Method::Options && req.target_ == "*" && options.handle_options) {
    // A question about the server as a whole: every method some route takes.
    LocalReplies::options(ex, table.allow_header(advertised(table.methods())));
    finish_response();
    return;
  }
  RouteMatch<RouteRef> match = req.method_ ? table.match(*req.method_, req.path_, req.params_)
                                           : table.match(req.method_name_, req.path_, req.params_);
  if (!match && ex.head_request) {
    // HEAD falls back to the GET route; the body is not sent.
    Params params;
    RouteMatch<RouteRef> get = table.match(Method::Get, req.path_, params);
    if (get) {
      match = get;
      req.params_ = params;
    }
  }
  if (match) {
    ex.route_ref = match.handler;
    ex.route = match.handler->get();
    if (!req.params_.empty())
      ParamsAccess::rebind_names(req.params_, ex.route->param_names(req.params_));
    if (ex.route->taker) {
      start_streaming(true);
      return;
    }
    // A taker's route fires its own (it may pick among targets).
    PORTICO_PROBE3(route_matched, probe_id(this), route_name(ex.route->name_id()).data(),
                   route_name(ex.route->name_id()).size());
    run_handler();
    return;
  }
  const bool is_connect = req.method_ == Method::Connect;
  if (!is_connect && req.path_ != "/" &&
      (options.redirect_trailing_slash || options.redirect_fixed_path)) {
    std::optional<std::string> location;
    if (options.redirect_trailing_slash && match.redirect_trailing_slash) {
      std::string fixed(req.path_);
      if (fixed.size() > 1 && fixed.back() == '/') {
        fixed.pop_back();
      } else {
        fixed.push_back('/');
      }
      location = std::move(fixed);
    } else if (options.redirect_fixed_path) {
      location = req.method_ ? table.fixed_path(*req.method_, req.path_, true)
                             : table.fixed_path(req.method_name_, req.path_, true);
      if (location && *location == req.path_) location.reset();
    }
    if (location) {
      if (!req.query_.empty()) {
        location->push_back('?');
        location->append(req.query_);
      }
      LocalReplies::redirect(ex, req.method_ == Method::Get ? 301 : 308, *location);
      finish_response();
      return;
    }
  }
  if (match.status == MatchStatus::kMethodNotAllowed) {
    // The path exists. An OPTIONS request without a route of its own is
    // answered with what the path takes (httprouter's HandleOPTIONS);
    // anything else is 405 with the same list.
    const std::string allow = table.allow_header(advertised(match.allowed));
    if (req.method_ == Method::Options && options.handle_options) {
      LocalReplies::options(ex, allow);
    } else {
      LocalReplies::method_not_allowed(ex, allow);
    }
  } else {
    LocalReplies::not_found(ex);
  }
  finish_response();
}

void ServerConnection::run_handler() noexcept {
  ServerExchange& ex = *exchange_;
  Request& req = ex.request;
  Response& res = ex.response;
  std::vector<Middleware>& server_mw = shard_.core.middleware();
  std::vector<Middleware>& route_mw = ex.route->local().middleware;
  const std::size_t total = server_mw.size() + route_mw.size();
  try {
    for (std::size_t i = 0; i < total; ++i) {
      Middleware& mw = i < server_mw.size() ? server_mw[i] : route_mw[i - server_mw.size()];
      ex.middleware_reached = i + 1;
      if (mw.before && !mw.before(req, res)) {
        finish_response();
        return;
      }
    }
    if (ex.route->local().blocking) {
      // Offloaded: a worker runs the handler, then completes the exchange.
      res.deferred_ = true;
      ex.route_hold = *ex.route_ref;
      ++shard_.deferred_outstanding;
      phase_ = Phase::kDeferred;
      if (shard_.core.offload(&ex)) return;
      --shard_.deferred_outstanding;
      phase_ = Phase::kHead;
      ex.route_hold.reset();
      bump(shard_.counters.rejected_503);
      LocalReplies::overflow(ex, shard_.core.options().retry_after_seconds);
      finish_response();
      return;
    }
    ex.route->local().handler(req, res);
  } catch (...) {
    if (res.deferred_) return;  // the Completion is out; it finishes the exchange
    LocalReplies::internal_error(ex);
  }
  if (res.deferred_) {
    ex.route_hold = *ex.route_ref;
    ++shard_.deferred_outstanding;
    phase_ = Phase::kDeferred;
    return;
  }
  finish_response();
}

void ServerConnection::finish_response() noexcept {
  ServerExchange& ex = *exchange_;
  Response& res = ex.response;
  if (res.source_) {
    // While pumping, the connection is as a deferred one: it reads nothing
    // and neither lingers nor closes when its output drains.
    const Phase before = phase_;
    phase_ = Phase::kDeferred;
    ex.pumping = true;
    if (!pump_source(ex)) {
      // The socket is full: the exchange waits for it (or the peer left,
      // and close() released it).
      if (!stream_.closed() && ex.route_ref != nullptr && !ex.route_hold)
        ex.route_hold = *ex.route_ref;
      return;
    }
    ex.pumping = false;
    phase_ = before;
  }
  if (!ex.stream_started) run_afters(ex);
  if (res.status_ < 100 || res.status_ > 999) LocalReplies::invalid_status(ex);
  if (ex.local_reply) shard_.counters.count_reply(ex.label);
  if (res.close_ || shard_.shutting_down) ex.keep_alive = false;
  if (!ex.keep_alive) close_after_write_ = true;
  serialize(ex, res.body_);
}

namespace {
constexpr std::size_t kSourceGather = 16 * 1024;  // a body source's bytes per write, at least
}  // namespace

bool ServerConnection::pump_source(ServerExchange& ex) noexcept {
  Response& res = ex.response;
  if (!status_has_body(res.status_)) {
    res.source_.reset();
    return true;
  }
  if (ex.head_request) {
    // The head a GET would get, without the body.
    res.source_.reset();
    res.chunked_ = true;
    return true;
  }
  std::string& piece = shard_.source_piece;
  while (!stream_.closed()) {
    if (stream_.blocked()) return false;
    // Small pieces are gathered into one chunk and one write.
    piece.clear();
    bool more = true;
    try {
      while (more && piece.size() < kSourceGather) more = res.source_(piece);
    } catch (...) {
      res.source_.reset();
      if (!ex.stream_started) {
        LocalReplies::internal_error(ex);
        return true;
      }
      close();  // the body is cut: the client sees no last chunk
      return false;
    }
    if (!more) {
      res.source_.reset();
      res.body_.append(piece);
      return true;
    }
    if (!piece.empty()) {
      if (!ex.stream_started && (res.close_ || shard_.shutting_down)) ex.keep_alive = false;
      on_stream_write(&ex, piece);
    }
  }
  return false;
}

bool ServerConnection::source_due() const noexcept {
  return phase_ == Phase::kDeferred && exchange_ != nullptr && exchange_->pumping &&
         !stream_.blocked();
}

void ServerConnection::continue_source() noexcept {
  if (!pump_source(*exchange_)) return;  // the socket is full again, or closed
  exchange_->pumping = false;
  phase_ = Phase::kHead;
  finish_response();
  complete_exchange();
  process_input();  // requests pipelined behind it
  flush();
}

void ServerConnection::run_afters(ServerExchange& ex) noexcept {
  Request& req = ex.request;
  Response& res = ex.response;
  if (ex.route != nullptr && ex.middleware_reached > 0) {
    std::vector<Middleware>& server_mw = shard_.core.middleware();
    std::vector<Middleware>& route_mw = ex.route->local().middleware;
    for (std::size_t i = ex.middleware_reached; i-- > 0;) {
      Middleware& mw = i < server_mw.size() ? server_mw[i] : route_mw[i - server_mw.size()];
      if (!mw.after) continue;
      try {
        mw.after(req, res);
      } catch (...) {
        LocalReplies::internal_error(ex, {});
      }
    }
  }
}

void ServerExchange::post_completion() noexcept {
  // post() never drops a task; the reactor stays up while completions are out.
  ServerExchange* self = this;
  shard->post_from_another_thread([self] { self->connection->on_completion(self); });
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
