// gateway/proxy.cpp — routes taking exchanges over, each reactor's pools and
// balancers, and the proxied exchange (see proxy.hpp).
// Thread-safety: RouteGroup::take and everything below it run on the
// client connection's reactor thread.
#include "gateway/proxy.hpp"

#include <fmt/format.h>

#include <ctime>

#include <algorithm>
#include <utility>

#include "http1/target.hpp"
#include "server/access_log.hpp"
#include "server/local_replies.hpp"
#include "server/probes.hpp"
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

using namespace std::string_view_literals;

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {
namespace {

// A loop-clock time (Reactor::now(): the steady clock, read once per loop
// iteration) in nanoseconds: the error-rate breaker's clock, no read per request.
std::int64_t ns_of(std::chrono::steady_clock::time_point at) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

// Response bytes gathered for the client past this go out at once.
constexpr std::size_t kGatherLimit = 64 * 1024;

// The server's own answer, filled into the exchange's response (take()
// returns nullptr and the server writes it).
void answer(ServerExchange& exchange, int status, ErrorLabel label) {
  exchange.local_reply = true;
  exchange.label = label;
  exchange.response.status(status);
  if (status == 503) exchange.response.header("Retry-After", "1");
  exchange.response.text(reason_phrase(status));
}

std::string_view find_header(const Request& request, std::string_view name) noexcept {
  for (const Header& field : request.headers()) {
    if (iequals(field.name, name)) return field.value;
  }
  return {};
}

bool has_header_value(const Request& request, std::string_view name,
                      std::string_view value) noexcept {
  for (const Header& field : request.headers()) {
    if (field.value == value && iequals(field.name, name)) return true;
  }
  return false;
}

// "example.com:8080" -> "example.com"; "[::1]:80" -> "[::1]".
std::string_view host_name(std::string_view host) noexcept {
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const std::size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

}  // namespace

// ---- Snapshot and routes --------------------------------------------------------------

std::uint32_t Snapshot::cluster_index(std::string_view name) const noexcept {
  for (std::uint32_t i = 0; i < clusters.size(); ++i) {
    if (clusters[i].name == name) return i;
  }
  return kNoEndpoint;
}

const RouteTarget::Extras RouteTarget::kNoExtras{};

void RouteTarget::Extras::bind_views() {
  request_add_views.clear();
  for (const OwnedField& field : request_add) request_add_views.push_back({field.name, field.value});
  response_add_views.clear();
  for (const OwnedField& field : response_add)
    response_add_views.push_back({field.name, field.value});
  request_remove_views.assign(request_remove.begin(), request_remove.end());
  response_remove_views.assign(response_remove.begin(), response_remove.end());
}

int RouteTarget::host_rank(std::string_view host) const noexcept {
  const std::vector<std::string>& hosts = more().hosts;
  if (hosts.empty()) return 0;
  const std::string_view name = host_name(host);
  int best = -1;
  for (const std::string& wanted : hosts) {
    if (wanted.size() > 1 && wanted[0] == '*' && wanted[1] == '.') {
      // "*.example.com" takes "a.example.com" (any labels before), not "example.com".
      const std::string_view suffix = std::string_view(wanted).substr(1);
      if (name.size() > suffix.size() &&
          iequals(name.substr(name.size() - suffix.size()), suffix))
        best = std::max(best, 1);
    } else if (iequals(name, wanted)) {
      return 2;
    }
  }
  return best;
}

StreamingExchange* RouteGroup::take(ClientStream client, ServerExchange& exchange) noexcept {
  const RouteTarget* chosen = targets_.front();
  if (targets_.size() > 1 || !chosen->more().hosts.empty()) {
    const std::string_view host = find_header(exchange.request, "host");
    int best = -1;
    chosen = nullptr;
    for (const RouteTarget* target : targets_) {
      const int rank = target->host_rank(host);
      if (rank > best) {
        best = rank;
        chosen = target;
      }
    }
    if (chosen == nullptr) {
      answer(exchange, 404, ErrorLabel::kRouteNotFound);
      return nullptr;
    }
  }
  PORTICO_PROBE3(route_matched, client.probe_id(), chosen->pattern.data(), chosen->pattern.size());
  if (chosen->respond) {
    Response& response = exchange.response;
    const RouteTarget::Extras& answer_with = chosen->more();
    response.status(answer_with.respond_status);
    response.body(answer_with.respond_body, answer_with.respond_type);
    return nullptr;
  }
  ReactorGateway& reactor = runtime_.reactor(client.shard());
  ProxyExchange* proxied = reactor.acquire_exchange();
  if (proxied == nullptr) {
    answer(exchange, 503, ErrorLabel::kOverflow);
    return nullptr;
  }
  if (!proxied->start(*chosen, client, exchange)) {
    reactor.release_exchange(proxied);
    return nullptr;
  }
  return proxied;
}

// ---- ReactorGateway ---------------------------------------------------------------------

ReactorGateway::ReactorGateway(Runtime& owner, ReactorShard& reactor_shard) noexcept
    : runtime(owner),
      shard(reactor_shard),
      io{reactor_shard.reactor, reactor_shard.pool, reactor_shard.batcher, reactor_shard.heap},
      wake_timer_(&ReactorGateway::on_wake, this) {}

ReactorGateway::~ReactorGateway() {
  for (ProxyExchange* exchange : free_) shard.heap.destroy(exchange);
  balancers_.clear();
  for (const auto& [key, pool] : pools_) runtime.unregister_pool(pool.get());
  pools_.clear();
}

void ReactorGateway::adopt(const Snapshot& snapshot) {
  generation_ = snapshot.generation;
  balancers_.clear();
  balancers_.reserve(snapshot.clusters.size());
  cluster_pools_.assign(snapshot.clusters.size(), {});
  std::size_t most = 0;
  for (const ClusterState& cluster : snapshot.clusters) most = std::max(most, cluster.endpoints.size());
  available_.assign((most + 63) / 64, 0);
  for (std::size_t i = 0; i < snapshot.clusters.size(); ++i) {
    const ClusterState& cluster = snapshot.clusters[i];
    balancers_.push_back(std::make_unique<Balancer>(*cluster.table, random_u64()));
    cluster_pools_[i].assign(cluster.endpoints.size(), nullptr);
    for (std::size_t e = 0; e < cluster.endpoints.size(); ++e) {
      const auto found = pools_.find(cluster.name + '\n' + cluster.endpoints[e].address);
      if (found == pools_.end()) continue;
      // A pool drained by an earlier snapshot stays until its busy
      // connections come back; this one has the endpoint again.
      found->second->resume();
      cluster_pools_[i][e] = found->second.get();
    }
  }
  // Pools of endpoints the snapshot no longer has: idle connections close
  // now, busy ones when their exchange ends; the pool goes once empty.
  for (auto it = pools_.begin(); it != pools_.end();) {
    bool kept = false;
    for (const auto& pools : cluster_pools_) {
      kept = kept || std::find(pools.begin(), pools.end(), it->second.get()) != pools.end();
    }
    if (!kept) it->second->drain();
    if (!kept && it->second->active() == 0) {
      runtime.unregister_pool(it->second.get());
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
}

Availability ReactorGateway::availability(const ClusterState& cluster,
                                          std::uint32_t exclude) noexcept {
  const ClusterResilience& shared = cluster.resilience;
  const bool all = !shared.health || shared.health->unavailable.load(std::memory_order_relaxed) == 0;
  if (all && exclude == kNoEndpoint) return {};
  const std::size_t count = shared.endpoints.size();
  const std::size_t words = (count + 63) / 64;
  std::fill_n(available_.begin(), words, std::uint64_t{0});
  std::size_t set = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (all || shared.endpoints[i]->available.load(std::memory_order_relaxed)) {
      available_[i >> 6] |= std::uint64_t{1} << (i & 63);
      ++set;
    }
  }
  if (exclude < count && set > 1 && (available_[exclude >> 6] >> (exclude & 63) & 1) != 0)
    available_[exclude >> 6] &= ~(std::uint64_t{1} << (exclude & 63));
  return Availability(std::span<const std::uint64_t>(available_.data(), words));
}

Balancer& ReactorGateway::balancer(const Snapshot& snapshot, std::uint32_t cluster) {
  if (snapshot.generation != generation_) adopt(snapshot);
  return *balancers_[cluster];
}

UpstreamPool& ReactorGateway::pool(const Snapshot& snapshot, std::uint32_t cluster,
                                   std::uint32_t endpoint) {
  if (snapshot.generation != generation_) adopt(snapshot);
  UpstreamPool*& slot = cluster_pools_[cluster][endpoint];
  if (slot == nullptr) {
    const ClusterState& state = snapshot.clusters[cluster];
    const EndpointState& target = state.endpoints[endpoint];
    auto made = std::make_unique<UpstreamPool>(io, target.sockaddr, target.length, state.pool);
    slot = made.get();
    runtime.register_pool(state.name, target.address, slot);
    pools_[state.name + '\n' + target.address] = std::move(made);
  }
  return *slot;
}

void ReactorGateway::park(ProxyExchange& exchange) noexcept {
  exchange.wait_prev_ = waiting_tail_;
  exchange.wait_next_ = nullptr;
  (waiting_tail_ != nullptr ? waiting_tail_->wait_next_ : waiting_head_) = &exchange;
  waiting_tail_ = &exchange;
  // Room may free on another reactor, which tells no one: look again soon.
  if (!wake_timer_.armed()) shard.reactor.arm(wake_timer_, std::chrono::milliseconds(1));
}

void ReactorGateway::unpark(ProxyExchange& exchange) noexcept {
  (exchange.wait_prev_ != nullptr ? exchange.wait_prev_->wait_next_ : waiting_head_) =
      exchange.wait_next_;
  (exchange.wait_next_ != nullptr ? exchange.wait_next_->wait_prev_ : waiting_tail_) =
      exchange.wait_prev_;
  exchange.wait_prev_ = exchange.wait_next_ = nullptr;
}

void ReactorGateway::room_freed() noexcept {
  if (waiting_head_ != nullptr) shard.reactor.arm(wake_timer_, std::chrono::milliseconds(0));
}

void ReactorGateway::on_wake(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* self = static_cast<ReactorGateway*>(context);
  // Oldest first; one that still finds no room leaves room for none after
  // it in the same cluster only if they share it, so all are tried.
  for (ProxyExchange* exchange = self->waiting_head_; exchange != nullptr;) {
    ProxyExchange* next = exchange->wait_next_;
    exchange->try_again();
    exchange = next;
  }
  if (self->waiting_head_ != nullptr && !self->wake_timer_.armed())
    self->shard.reactor.arm(self->wake_timer_, std::chrono::milliseconds(1));
}

ProxyExchange* ReactorGateway::acquire_exchange() {
  if (!free_.empty()) {
    ProxyExchange* exchange = free_.back();
    free_.pop_back();
    return exchange;
  }
  try {
    return shard.heap.make<ProxyExchange>(*this);
  } catch (...) {
    return nullptr;
  }
}

void ReactorGateway::release_exchange(ProxyExchange* exchange) noexcept {
  try {
    free_.push_back(exchange);
  } catch (...) {
    shard.heap.destroy(exchange);
  }
}

// ---- ProxyExchange ----------------------------------------------------------------------

ProxyExchange::ProxyExchange(ReactorGateway& reactor) noexcept
    : reactor_(reactor),
      timer_(&ProxyExchange::on_timeout, this),
      try_timer_(&ProxyExchange::on_try_timeout, this) {}

std::uint64_t ProxyExchange::request_key(const ClusterState& state, const Request& request,
                                         std::string_view target,
                                         const sockaddr_storage* peer) noexcept {
  if (!state.table->uses_key()) return 0;
  switch (state.hash_on.source) {
    case HashOn::Source::kClientIp:
      return hash_client_ip(reinterpret_cast<const sockaddr*>(peer));
    case HashOn::Source::kHeader:
      return hash_key(find_header(request, state.hash_on.header));
    case HashOn::Source::kPath:
      return hash_key(target.substr(0, target.find('?')));
  }
  return 0;
}

ProxyExchange::Room ProxyExchange::admit() noexcept {
  const ClusterState& state = cluster_state();
  ClusterShared& shared = *state.resilience.health;
  const CircuitBreaker& breaker = state.resilience.breaker;
  if (breaker.error_rate) {
    switch (shared.error_rate.admit(ns_of(reactor_.io.reactor.now()))) {
      case ErrorRateState::Admit::kNo:
        return Room::kOpen;
      case ErrorRateState::Admit::kProbe:
        probe_ = true;
        break;
      case ErrorRateState::Admit::kYes:
        break;
    }
  }
  std::uint32_t requests = shared.requests.load(std::memory_order_relaxed);
  do {
    if (requests >= breaker.max_requests) {
      give_back_probe();
      return Room::kWait;
    }
  } while (!shared.requests.compare_exchange_weak(requests, requests + 1,
                                                  std::memory_order_relaxed));
  holds_slot_ = true;
  return Room::kYes;
}

void ProxyExchange::give_back_probe() noexcept {
  if (std::exchange(probe_, false)) cluster_state().resilience.health->error_rate.abandon_probe();
}

void ProxyExchange::release_slot(bool announce) noexcept {
  give_back_probe();
  if (!std::exchange(holds_slot_, false)) return;
  cluster_state().resilience.health->requests.fetch_sub(1, std::memory_order_relaxed);
  if (announce) reactor_.room_freed();
}

ProxyExchange::Refusal ProxyExchange::refusal(Dispatch outcome) noexcept {
  switch (outcome) {
    case Dispatch::kNoEndpoint:
      return {503, ErrorLabel::kNoHealthyUpstream};
    case Dispatch::kConnectFailed:
      return {502, ErrorLabel::kUpstreamConnectFailure};
    case Dispatch::kNoConnection:
    case Dispatch::kSent:
      break;
  }
  return {503, ErrorLabel::kOverflow};
}

ProxyExchange::Dispatch ProxyExchange::dispatch() noexcept {
  const Snapshot& snapshot = *route_->snapshot;
  const ClusterState& state = cluster_state();
  if (attempts_ == 0) retry_ = retry_policy();
  Balancer& balancer = reactor_.balancer(snapshot, cluster_);
  const std::uint32_t endpoint = balancer.pick(reactor_.availability(state, exclude_), key_);
  if (endpoint == kNoEndpoint) return Dispatch::kNoEndpoint;
  UpstreamPool& pool = reactor_.pool(snapshot, cluster_, endpoint);
  if (!pool.has_idle() && state.pool.connections &&
      state.pool.connections->load(std::memory_order_relaxed) >=
          state.resilience.breaker.max_connections)
    return Dispatch::kNoConnection;
  upstream_ = pool.acquire(*this, head_request_);
  if (upstream_ == nullptr) {
    bump(pool.counters.connect_failures);
    return Dispatch::kConnectFailed;
  }
  bump(pool.counters.requests);
  if (attempts_ > 0) bump(pool.counters.retries);
  pool_ = &pool;
  balancer_ = &balancer;
  endpoint_ = endpoint;
  generation_ = snapshot.generation;
  balancer.request_started(endpoint);
  if (upgrade_sent_) upstream_->forbid_reuse();
  if (logging_ && upstream_->reused()) connect_ms_ = 0;  // taken from the pool
  if (metering_ && upstream_->reused()) connected_at_ = reactor_.io.reactor.now();
  PORTICO_PROBE4_IF(upstream_->reused(), upstream_connect, client_.probe_id(), 1,
                    state.endpoints[endpoint].address.data(),
                    state.endpoints[endpoint].address.size());

  bool sent = upstream_->send(head_);
  // A retry's body so far; body bytes read while the request waited for
  // room; then its end.
  if (attempts_ > 0 && !retry_body_.empty()) send_body(retry_body_);
  if (!waiting_body_.empty()) {
    forward_body(waiting_body_);
    waiting_body_.clear();
  }
  if (request_ended_) forward_end();
  sent = sent && !upstream_blocked_;
  if (!sent && !upstream_blocked_) {
    upstream_blocked_ = true;
    client_.pause_body();
  }
  // Expect: 100-continue: the client may send the body once the upstream
  // has the head (GATEWAY.md: when the gateway is ready for it), not before
  // (a refused connect answers 502 without it and closes).
  if (std::exchange(continue_wanted_, false)) {
    if (sent && upstream_->all_sent()) {
      client_.send_continue();
    } else {
      continue_due_ = true;  // on_upstream_writable() once the head is out
    }
  }
  if (retry_ != nullptr && retry_->per_try_timeout)
    reactor_.io.reactor.arm(try_timer_, *retry_->per_try_timeout);
  return Dispatch::kSent;
}

const RetryPolicy* ProxyExchange::retry_policy() const noexcept {
  if (const std::optional<RetryPolicy>& own = route_->more().retry) return &*own;
  const std::optional<RetryPolicy>& cluster = cluster_state().resilience.retry;
  return cluster ? &*cluster : nullptr;
}

bool ProxyExchange::may_retry(RetryOn condition) noexcept {
  if (retry_ == nullptr || response_started_ || upgrade_sent_ || tunnel_ || !replayable_) return false;
  if (!retry_->retries_on(condition) || attempts_ >= retry_->attempts) return false;
  // Past a connect failure nothing was sent; else the request may have had
  // its effect, and only an idempotent one is sent again.
  if (condition != RetryOn::kConnectFailure && !idempotent_) return false;
  if (retrying_) return true;  // counted once, however many tries
  const ClusterResilience& resilience = cluster_state().resilience;
  ClusterShared& shared = *resilience.health;
  const std::size_t in_flight = shared.requests.load(std::memory_order_relaxed);
  const std::size_t allowed =
      std::min<std::size_t>(resilience.breaker.max_retries,
                            std::max<std::size_t>(retry_->min_concurrency,
                                                  in_flight * retry_->budget_percent / 100));
  std::uint32_t retries = shared.retries.load(std::memory_order_relaxed);
  do {
    if (retries >= allowed) return false;
  } while (!shared.retries.compare_exchange_weak(retries, retries + 1, std::memory_order_relaxed));
  retrying_ = true;
  return true;
}

void ProxyExchange::redispatch() noexcept {
  ++attempts_;
  exclude_ = endpoint_;
  chunk_sent_ = false;
  reported_ = false;  // each try counts for the error_rate breaker
  const bool was_blocked = std::exchange(upstream_blocked_, false);
  const Dispatch outcome = dispatch();
  if (outcome == Dispatch::kSent) {
    if (was_blocked && !upstream_blocked_) client_.resume_body();
    return;
  }
  const Refusal refused = refusal(outcome);  // a retry does not wait for room
  fail(refused.status, refused.label);
}

bool ProxyExchange::wait_for_room() noexcept {
  ClusterShared& shared = *cluster_state().resilience.health;
  const std::size_t most = cluster_state().resilience.breaker.max_pending;
  std::uint32_t pending = shared.pending.load(std::memory_order_relaxed);
  do {
    if (pending >= most) return false;
  } while (!shared.pending.compare_exchange_weak(pending, pending + 1, std::memory_order_relaxed));
  waiting_ = true;
  client_.pause_body();  // what this read holds still comes: waiting_body_ keeps it
  reactor_.park(*this);
  return true;
}

void ProxyExchange::stop_waiting() noexcept {
  if (!std::exchange(waiting_, false)) return;
  reactor_.unpark(*this);
  cluster_state().resilience.health->pending.fetch_sub(1, std::memory_order_relaxed);
}

bool ProxyExchange::try_again() noexcept {
  switch (admit()) {
    case Room::kWait:
      return false;
    case Room::kOpen:
      stop_waiting();
      fail(503, ErrorLabel::kCircuitOpen);
      return true;
    case Room::kYes:
      break;
  }
  const Dispatch outcome = dispatch();
  if (outcome == Dispatch::kNoConnection) {
    release_slot(false);  // taken back at once: no room was made
    return false;
  }
  stop_waiting();
  if (outcome == Dispatch::kSent) {
    if (!upstream_blocked_) client_.resume_body();
  } else {
    const Refusal refused = refusal(outcome);
    fail(refused.status, refused.label);
  }
  return true;
}

bool ProxyExchange::start(const RouteTarget& route, ClientStream client,
                          ServerExchange& exchange) noexcept {
  const Request& request = exchange.request;
  const http1::Parser& parser = exchange.parser;
  // The parser's Spans are offsets from the connection's read buffer (the
  // target may be a normalised copy; the method never is).
  const char* base = request.method_name().data() - parser.method().offset;
  route_ = &route;
  client_ = client;
  fallback_ = false;
  head_request_ = exchange.head_request;
  client_http11_ = request.version_minor() >= 1;
  client_keep_alive_ = exchange.keep_alive;

  // The gateway's own server normalised the target before routing it; a
  // host's server may not have.
  const std::optional<std::string_view> normalized =
      client.shard().core.options().normalize_target
          ? std::optional<std::string_view>(request.target())
          : http1::normalize_target(request.target(), reactor_.target_scratch);
  if (!normalized) {
    answer(exchange, 400, ErrorLabel::kBadRequest);
    return false;
  }
  const RouteTarget::Extras& more = route.more();
  const std::string_view target = http1::strip_prefix(*normalized, more.strip_prefix);
  const Snapshot& snapshot = *route.snapshot;
  sockaddr_storage peer{};
  const bool have_peer = client.peer(peer);

  // The upstream's request head (the same whichever endpoint takes it).
  RequestForwarding how;
  how.client_address = std::string_view(
      client_address_,
      have_peer ? address_text(reinterpret_cast<const sockaddr*>(&peer), client_address_) : 0);
  client_address_length_ = static_cast<std::uint8_t>(how.client_address.size());
  how.trusted_peer = have_peer && in_any(snapshot.trusted_proxies,
                                         reinterpret_cast<const sockaddr*>(&peer));
  how.via = snapshot.via;
  how.host_rewrite = more.host_rewrite;
  how.edits = HeaderEdits{more.request_add_views, more.request_remove_views};
  const ClientRequest forwarded = ClientRequest::from(parser, base, target);
  // An Upgrade goes upstream (the tunnel follows a 101) when the request
  // is its head alone: the tunnel's bytes then start right after it.
  // CONNECT is no Upgrade, and not proxied as a tunnel.
  upgrade_sent_ = parser.upgrade() && request.method() != Method::Connect &&
                  forwarded.framing == http1::Framing::kNone;
  how.tunnel = upgrade_sent_;
  request_framing_ = forwarded.framing;
  head_.clear();
  write_request_head(head_, forwarded, how, ids_);
  request_id_.assign(ids_.request_id());
  const std::string_view method = forwarded.method;
  idempotent_ = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
                method == "DELETE" || method == "TRACE";
  metering_ = client.shard().core.options().metrics;
  if (metering_) {
    series_route_ = exchange.route != nullptr ? exchange.route->name_id() : 0;
    series_method_ = static_cast<std::uint8_t>(method_index(request.method()));
    head_at_ = exchange.started;
  }
  logging_ = client.shard().core.options().access_log != AccessLogFormat::kOff;
  if (logging_) {
    started_ = std::chrono::steady_clock::now();
    method_.assign(method);
    path_.assign(request.target());
  }
  continue_wanted_ = exchange.continue_due;

  // The cluster: a canary whose header matches, else a split's draw, else
  // the route's own. A canary that cannot take the request at once (its
  // breaker open or at a limit, no endpoint available) falls back to the
  // route's own.
  const sockaddr_storage* client_ip = have_peer ? &peer : nullptr;
  for (const RouteTarget::Canary& canary : more.canary) {
    if (!has_header_value(request, canary.header, canary.value)) continue;
    cluster_ = canary.cluster;
    key_ = request_key(cluster_state(), request, target, client_ip);
    if (admit() == Room::kYes) {
      if (dispatch() == Dispatch::kSent) return armed(route);
      release_slot(false);
    }
    fallback_ = true;
    exchange.fallback = true;  // for the metrics of an answer given at once
    break;
  }
  cluster_ = route.cluster;
  if (!more.split.empty()) {
    std::uint64_t draw = random_u64() % more.split_total;
    for (const RouteTarget::Weighted& weighted : more.split) {
      if (draw < weighted.weight) {
        cluster_ = weighted.cluster;
        break;
      }
      draw -= weighted.weight;
    }
  }
  key_ = request_key(cluster_state(), request, target, client_ip);
  Room room = admit();
  if (room == Room::kOpen) {
    answer(exchange, 503, ErrorLabel::kCircuitOpen);
    return false;
  }
  if (room == Room::kYes) {
    const Dispatch outcome = dispatch();
    if (outcome == Dispatch::kSent) return armed(route);
    release_slot(false);
    if (outcome != Dispatch::kNoConnection) {
      const Refusal refused = refusal(outcome);
      answer(exchange, refused.status, refused.label);
      return false;
    }
  }
  // At max_requests or max_connections: wait for room, or 503 past max_pending.
  if (!wait_for_room()) {
    answer(exchange, 503, ErrorLabel::kOverflow);
    return false;
  }
  return armed(route);
}

bool ProxyExchange::armed(const RouteTarget& route) noexcept {
  if (route.timeout.count() > 0) {
    // Lazy: a timer still armed by an earlier exchange of this object, for
    // no later than this deadline, stays; on_timeout() arms it for the rest.
    Reactor& reactor = reactor_.io.reactor;
    deadline_ = reactor.now() + route.timeout;
    timed_ = true;
    if (!timer_.armed() || deadline_ < armed_for_) {
      armed_for_ = deadline_;
      reactor.arm(timer_, route.timeout);
    }
  }
  return true;
}

bool ProxyExchange::send_upstream(std::string_view head, std::string_view tail) noexcept {
  if (upstream_->send(head, tail)) return true;
  if (!upstream_blocked_) {
    upstream_blocked_ = true;
    client_.pause_body();
  }
  return false;
}

void ProxyExchange::on_request_body(std::string_view bytes) noexcept {
  if (waiting_) {
    waiting_body_.append(bytes);  // this read's rest: the body is paused
    return;
  }
  forward_body(bytes);
}

void ProxyExchange::forward_body(std::string_view bytes) noexcept {
  if (upstream_ == nullptr || bytes.empty()) return;
  bytes_in_ += bytes.size();
  if (retry_ != nullptr && replayable_) {
    if (retry_body_.size() + bytes.size() <= retry_->buffer_bytes) {
      retry_body_.append(bytes);
    } else {
      replayable_ = false;  // past buffer_bytes: this request is not retried
      retry_body_.clear();
    }
  }
  send_body(bytes);
}

void ProxyExchange::send_body(std::string_view bytes) noexcept {
  if (request_framing_ == http1::Framing::kChunked) {
    // Each chunk's CRLF goes in front of the next chunk's size line.
    char line[24];
    const auto end = fmt::format_to(line, "{}{:x}\r\n", chunk_sent_ ? "\r\n" : "", bytes.size());
    chunk_sent_ = true;
    send_upstream({line, static_cast<std::size_t>(end - line)}, bytes);
  } else {
    send_upstream(bytes, {});
  }
}

void ProxyExchange::on_request_end() noexcept {
  request_ended_ = true;
  if (!waiting_) forward_end();
}

void ProxyExchange::forward_end() noexcept {
  if (upstream_ == nullptr) return;
  if (request_framing_ == http1::Framing::kChunked)
    send_upstream(chunk_sent_ ? "\r\n0\r\n\r\n"sv : "0\r\n\r\n"sv, {});
  upstream_->end_request();
}

void ProxyExchange::on_upstream_writable(UpstreamConnection& connection) noexcept {
  (void)connection;
  if (std::exchange(continue_due_, false)) client_.send_continue();
  if (upstream_blocked_) {
    upstream_blocked_ = false;
    client_.resume_body();
  }
  if (tunnel_) end_tunnel_if_done();  // the upstream's FIN may just have gone
}

void ProxyExchange::on_upstream_connected(UpstreamConnection& connection) noexcept {
  (void)connection;  // the request waiting in the connection goes out by itself
  PORTICO_PROBE4(upstream_connect, client_.probe_id(), 0,
                 cluster_state().endpoints[endpoint_].address.data(),
                 cluster_state().endpoints[endpoint_].address.size());
  if (Resilience* resilience = route_->snapshot->resilience)
    resilience->connected(cluster_state().resilience, endpoint_);
  if (logging_) {
    connect_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            started_).count();
  }
  if (metering_) connected_at_ = reactor_.io.reactor.now();
}

void ProxyExchange::on_upstream_connect_failed(UpstreamConnection& connection,
                                               ConnectFailure cause) noexcept {
  (void)connection;
  (void)cause;
  if (pool_ != nullptr) bump(pool_->counters.connect_failures);
  if (Resilience* resilience = route_->snapshot->resilience)
    resilience->connect_failed(cluster_state().resilience, endpoint_);
  record_outcome(true);
  let_go_upstream();
  if (may_retry(RetryOn::kConnectFailure)) {
    redispatch();
    return;
  }
  fail(502, ErrorLabel::kUpstreamConnectFailure);
}

void ProxyExchange::on_upstream_head(UpstreamConnection& connection,
                                     const UpstreamResponseHead& head) noexcept {
  (void)connection;
  PORTICO_PROBE3(upstream_response_head, client_.probe_id(), head.status, attempts_);
  UpstreamResponse response;
  response.status = head.status;
  response.reason = status_reason({head.base, head.head_length});
  response.base = head.base;
  response.fields = head.fields;
  response.has_body = !head_request_ && head.status >= 200 && head.status != 204 &&
                      head.status != 304;
  response.chunked = head.chunked;
  response.has_content_length = head.has_content_length;
  response.content_length = head.content_length;
  ResponseForwarding how;
  how.date_line = reactor_.shard.date_line;
  how.request_id = request_id_;
  how.edits = HeaderEdits{route_->more().response_add_views, route_->more().response_remove_views};
  how.client_http11 = client_http11_;
  how.client_keep_alive = client_keep_alive_;
  report_response(head.status >= 500);
  if ((head.status == 502 && may_retry(RetryOn::k502)) ||
      (head.status == 503 && may_retry(RetryOn::k503)) ||
      (head.status == 504 && may_retry(RetryOn::k504))) {
    let_go_upstream();  // the rest of that response unread: the connection closes
    redispatch();
    return;
  }
  if (head.status == 101 && !(upgrade_sent_ && request_ended_ && connection.upgraded())) {
    // Switching protocols unasked (or without the Upgrade fields): no
    // tunnel can follow, and nothing else can either.
    let_go_upstream();
    fail(502, ErrorLabel::kUpstreamProtocolError);
    return;
  }
  client_framing_ = write_response_head(out_, response, how);
  response_started_ = true;
  status_ = head.status;
  if (logging_) {
    first_byte_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                               started_).count();
  }
  if (metering_) first_byte_at_ = reactor_.io.reactor.now();
  if (head.status == 101) start_tunnel();
}

void ProxyExchange::start_tunnel() noexcept {
  // The route's timeout does not apply to a tunnel: the client
  // connection's idle timeout ends one (GATEWAY.md).
  reactor_.io.reactor.cancel(timer_);
  reactor_.io.reactor.cancel(try_timer_);
  timed_ = false;
  tunnel_ = true;
  upstream_->start_tunnel();
  if (!flush_client()) {  // the 101 head, before any tunnel byte
    let_go_upstream();
    fail(502, ErrorLabel::kNone);
    return;
  }
  client_.start_tunnel();
}

void ProxyExchange::on_upstream_tunnel_data(UpstreamConnection& connection,
                                            std::string_view bytes) noexcept {
  (void)connection;
  bytes_out_ += bytes.size();
  if (!write_client(bytes)) {
    let_go_upstream();
    fail(502, ErrorLabel::kNone);
  }
}

void ProxyExchange::on_upstream_tunnel_end(UpstreamConnection& connection) noexcept {
  (void)connection;
  upstream_eof_ = true;
  client_.shutdown_write();  // once what the upstream sent before is out
  end_tunnel_if_done();
}

void ProxyExchange::on_tunnel_data(std::string_view bytes) noexcept {
  if (upstream_ == nullptr) return;
  bytes_in_ += bytes.size();
  send_upstream(bytes, {});
}

void ProxyExchange::on_tunnel_end() noexcept {
  client_eof_ = true;
  if (upstream_ != nullptr) upstream_->shutdown_write();
  end_tunnel_if_done();
}

void ProxyExchange::end_tunnel_if_done() noexcept {
  if (!client_eof_ || !upstream_eof_ || upstream_ == nullptr || !upstream_->write_shut()) return;
  // From the loop: on_tunnel_end() runs inside the client connection's own
  // read, which finish() must not free under it.
  reactor_.io.reactor.arm(timer_, std::chrono::milliseconds(0));
}

void ProxyExchange::end_tunnel() noexcept {
  let_go_upstream();  // never pooled after a 101
  ClientStream client = client_;
  recycle();
  client.finish(true);  // closes once the client's output is out
}

void ProxyExchange::on_upstream_body(UpstreamConnection& connection,
                                     std::string_view bytes) noexcept {
  (void)connection;
  bytes_out_ += bytes.size();
  if (client_framing_.framing == http1::Framing::kChunked) {
    char line[24];
    const auto end = fmt::format_to(line, "{:x}\r\n", bytes.size());
    out_.append(line, static_cast<std::size_t>(end - line));
    out_.append(bytes);
    out_.append("\r\n"sv);
  } else {
    out_.append(bytes);
  }
  if (out_.size() >= kGatherLimit && !flush_client()) {
    let_go_upstream();
    fail(502, ErrorLabel::kNone);
  }
}

void ProxyExchange::on_upstream_read_done(UpstreamConnection& connection) noexcept {
  (void)connection;
  if (!flush_client()) {
    let_go_upstream();
    fail(502, ErrorLabel::kNone);
  }
}

bool ProxyExchange::flush_client() noexcept {
  if (out_.empty()) return true;
  const bool written = write_client(out_);
  out_.clear();
  return written;
}

bool ProxyExchange::write_client(std::string_view bytes) noexcept {
  const ClientWrite result = client_.write(bytes);
  if (result == ClientWrite::kFailed) return false;
  if (result == ClientWrite::kBlocked && !client_blocked_) {
    client_blocked_ = true;
    if (upstream_ != nullptr) upstream_->pause_reading();
  }
  return true;
}

void ProxyExchange::on_client_writable() noexcept {
  if (client_blocked_) {
    client_blocked_ = false;
    if (upstream_ != nullptr) upstream_->resume_reading();
  }
}

void ProxyExchange::on_upstream_complete(UpstreamConnection& connection, bool reusable) noexcept {
  (void)connection;
  (void)reusable;  // the pool reads it from the connection
  if (client_framing_.framing == http1::Framing::kChunked) out_.append("0\r\n\r\n"sv);
  const bool written = flush_client();
  let_go_upstream();
  const bool close = client_framing_.close;
  ClientStream client = client_;
  recycle();
  if (written) {
    client.finish(close);
  } else {
    client.abort();
  }
}

void ProxyExchange::on_upstream_error(UpstreamConnection& connection, ErrorLabel label) noexcept {
  const bool crossed_idle_close = connection.reused() && !connection.response_started();
  let_go_upstream();
  if (crossed_idle_close && resend()) return;
  if (!connection.response_started()) report_response(true);  // else the head counted
  if (label == ErrorLabel::kUpstreamReset && may_retry(RetryOn::kReset)) {
    redispatch();
    return;
  }
  fail(502, label);
}

bool ProxyExchange::resend() noexcept {
  // Only a request sent whole in its head (no body to send again), and
  // safe to repeat; once (GATEWAY.md: not counted as a retry).
  if (resent_ || !idempotent_ || request_framing_ != http1::Framing::kNone) return false;
  resent_ = true;
  upstream_ = pool_->connect_new(*this, head_request_);
  if (upstream_ == nullptr) return false;
  bump(pool_->counters.requests);
  if (generation_ == reactor_.generation()) balancer_->request_started(endpoint_);
  (void)upstream_->send(head_);  // waits for the connect; nothing more to pause
  upstream_->end_request();
  return true;
}

void ProxyExchange::on_request_error(int status) noexcept {
  // The server answers it (or closes, if the response had started).
  if (!response_started_) status_ = status;
  label_ = refusal_label(status);
  let_go_upstream();
  recycle();
}

void ProxyExchange::on_client_gone() noexcept {
  let_go_upstream();
  recycle();
}

void ProxyExchange::on_timeout(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* self = static_cast<ProxyExchange*>(context);
  if (self->tunnel_) {
    // A tunnel's timer is only end_tunnel_if_done()'s (the route's timeout
    // was cancelled at the 101).
    self->end_tunnel();
    return;
  }
  // Armed lazily: for an exchange that ended, or one with a later deadline.
  if (!self->timed_) return;
  Reactor& reactor = self->reactor_.io.reactor;
  if (reactor.now() < self->deadline_) {
    self->armed_for_ = self->deadline_;
    reactor.arm(self->timer_,
                std::chrono::ceil<std::chrono::milliseconds>(self->deadline_ - reactor.now()));
    return;
  }
  if (self->upstream_ != nullptr && !self->upstream_->response_started())
    self->report_response(true);
  self->let_go_upstream();
  self->fail(504, ErrorLabel::kUpstreamTimeout);
}

void ProxyExchange::report_response(bool server_error) noexcept {
  if (Resilience* resilience = route_->snapshot->resilience)
    resilience->responded(cluster_state().resilience, endpoint_, server_error);
  record_outcome(server_error);
}

void ProxyExchange::record_outcome(bool error) noexcept {
  if (std::exchange(reported_, true)) return;
  const ClusterResilience& shared = cluster_state().resilience;
  if (!shared.breaker.error_rate) return;
  shared.health->error_rate.record(*shared.breaker.error_rate, ns_of(reactor_.io.reactor.now()),
                                   error, probe_);
  probe_ = false;
}

void ProxyExchange::on_try_timeout(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* self = static_cast<ProxyExchange*>(context);
  if (self->tunnel_ || self->upstream_ == nullptr) return;
  if (!self->upstream_->response_started()) self->report_response(true);
  self->let_go_upstream();
  if (self->may_retry(RetryOn::kTimeout)) {
    self->redispatch();
    return;
  }
  self->fail(504, ErrorLabel::kUpstreamTimeout);
}

void ProxyExchange::let_go_upstream() noexcept {
  if (upstream_ == nullptr) return;
  if (generation_ == reactor_.generation()) balancer_->request_finished(endpoint_);
  UpstreamConnection* connection = std::exchange(upstream_, nullptr);
  pool_->release(*connection);
}

void ProxyExchange::fail(int status, ErrorLabel label) noexcept {
  const bool started = response_started_;
  if (!started) status_ = status;
  label_ = label;
  ClientStream client = client_;
  recycle();
  if (started) {
    client.abort();
  } else {
    client.reply(status, label);
  }
}

void ProxyExchange::log_exchange() noexcept {
  const Snapshot& snapshot = *route_->snapshot;
  const ClusterState& cluster = snapshot.clusters[cluster_];
  ProxyLogEntry entry;
  entry.request_id = request_id_;
  entry.trace_id = ids_.trace_id();
  entry.client = std::string_view(client_address_, client_address_length_);
  entry.method = method_;
  entry.path = path_;
  entry.route = route_->pattern;
  entry.error = label_name(label_);
  entry.cluster = cluster.name;
  if (endpoint_ < cluster.endpoints.size()) entry.upstream = cluster.endpoints[endpoint_].address;
  entry.status = status_;
  entry.bytes_in = bytes_in_;
  entry.bytes_out = bytes_out_;
  entry.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
  entry.upstream_connect_ms = connect_ms_;
  entry.upstream_first_byte_ms = first_byte_ms_;
  entry.fallback = fallback_;
  entry.retries = attempts_;
  ReactorShard& shard = reactor_.shard;
  try {
    append_proxy_access_log(shard.access_log, shard.core.options().access_log, std::time(nullptr),
                            entry);
  } catch (...) {
    // A line that cannot be formatted is dropped: the log never fails a request.
  }
}

void ProxyExchange::record_phase(RequestPhase phase,
                                 std::chrono::steady_clock::time_point at) noexcept {
  if (at == std::chrono::steady_clock::time_point{}) return;  // not reached
  reactor_.shard.request_metrics.record(phase_key(series_route_, phase), elapsed_ns(head_at_, at),
                                        0, 0);
}

void ProxyExchange::recycle() noexcept {
  if (route_ != nullptr) {
    PORTICO_PROBE4(request_done, client_.probe_id(), status_, bytes_out_,
                   static_cast<unsigned>(label_));
    stop_waiting();
    release_slot();
    if (std::exchange(retrying_, false))
      cluster_state().resilience.health->retries.fetch_sub(1, std::memory_order_relaxed);
  }
  if (metering_ && route_ != nullptr && status_ != 0) {
    // A client gone before any answer (status 0) is in no series.
    reactor_.shard.request_metrics.record(
        series_key(series_route_, series_method_, status_, label_, fallback_),
        elapsed_ns(head_at_, reactor_.io.reactor.now()), bytes_in_, bytes_out_);
    record_phase(RequestPhase::kUpstreamConnect, connected_at_);
    record_phase(RequestPhase::kUpstreamFirstByte, first_byte_at_);
  }
  connected_at_ = first_byte_at_ = {};
  metering_ = false;
  if (logging_ && route_ != nullptr) log_exchange();
  logging_ = false;
  status_ = 0;
  label_ = ErrorLabel::kNone;
  bytes_in_ = bytes_out_ = 0;
  connect_ms_ = first_byte_ms_ = -1;
  client_address_length_ = 0;
  timed_ = false;  // the timer stays armed (armed() may keep it): on_timeout() skips it
  reactor_.io.reactor.cancel(try_timer_);
  route_ = nullptr;
  balancer_ = nullptr;
  pool_ = nullptr;
  upstream_ = nullptr;
  endpoint_ = kNoEndpoint;
  out_.clear();
  request_framing_ = http1::Framing::kNone;
  client_framing_ = {};
  head_request_ = false;
  idempotent_ = false;
  resent_ = false;
  request_ended_ = false;
  continue_due_ = false;
  upgrade_sent_ = false;
  tunnel_ = false;
  client_eof_ = false;
  upstream_eof_ = false;
  chunk_sent_ = false;
  upstream_blocked_ = false;
  client_blocked_ = false;
  response_started_ = false;
  fallback_ = false;
  reported_ = false;
  continue_wanted_ = false;
  key_ = 0;
  waiting_body_.clear();
  retry_ = nullptr;
  retry_body_.clear();
  replayable_ = true;
  attempts_ = 0;
  exclude_ = kNoEndpoint;
  reactor_.release_exchange(this);
}

// ---- Runtime ------------------------------------------------------------------------------

ReactorGateway& Runtime::reactor(ReactorShard& shard) {
  if (ShardExtension* state = shard.extension(this)) return static_cast<ReactorGateway&>(*state);
  auto made = std::make_unique<ReactorGateway>(*this, shard);
  ReactorGateway& state = *made;
  shard.extensions.emplace_back(this, std::move(made));
  return state;
}

void Runtime::register_pool(const std::string& cluster, const std::string& address,
                            const UpstreamPool* pool) {
  std::lock_guard lock(pools_mutex_);
  pools_.push_back({cluster, address, pool});
}

void Runtime::unregister_pool(const UpstreamPool* pool) noexcept {
  std::lock_guard lock(pools_mutex_);
  std::erase_if(pools_, [pool](const PoolEntry& entry) { return entry.pool == pool; });
}

Runtime::UpstreamTotals Runtime::upstream_totals(std::string_view cluster,
                                                 std::string_view address) const {
  constexpr auto relaxed = std::memory_order_relaxed;
  UpstreamTotals totals;
  std::lock_guard lock(pools_mutex_);
  for (const PoolEntry& entry : pools_) {
    if (entry.cluster == cluster && entry.address == address) {
      totals.active += entry.pool->active();
      totals.pooled += entry.pool->pooled();
      totals.requests += entry.pool->counters.requests.load(relaxed);
      totals.connect_failures += entry.pool->counters.connect_failures.load(relaxed);
      totals.retries += entry.pool->counters.retries.load(relaxed);
    }
  }
  return totals;
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
