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
#include "server/server_core.hpp"
#include "server/server_exchange.hpp"

using namespace std::string_view_literals;

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {
namespace {

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
      io{reactor_shard.reactor, reactor_shard.pool, reactor_shard.batcher, reactor_shard.heap} {}

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
    : reactor_(reactor), timer_(&ProxyExchange::on_timeout, this) {}

bool ProxyExchange::start(const RouteTarget& route, ClientStream client,
                          ServerExchange& exchange) noexcept {
  const Request& request = exchange.request;
  const http1::Parser& parser = exchange.parser;
  // The parser's Spans are offsets from the connection's read buffer (the
  // target may be a normalised copy; the method never is).
  const char* base = request.method_name().data() - parser.method().offset;
  route_ = &route;
  client_ = client;
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

  // The cluster: a canary whose header matches, else a split's draw, else
  // the route's own.
  const Snapshot& snapshot = *route.snapshot;
  std::uint32_t cluster = route.cluster;
  for (const RouteTarget::Canary& canary : more.canary) {
    if (has_header_value(request, canary.header, canary.value)) {
      cluster = canary.cluster;
      break;
    }
  }
  if (cluster == route.cluster && !more.split.empty()) {
    std::uint64_t draw = random_u64() % more.split_total;
    for (const RouteTarget::Weighted& weighted : more.split) {
      if (draw < weighted.weight) {
        cluster = weighted.cluster;
        break;
      }
      draw -= weighted.weight;
    }
  }

  sockaddr_storage peer{};
  const bool have_peer = client.peer(peer);
  const ClusterState& state = snapshot.clusters[cluster];
  Balancer& balancer = reactor_.balancer(snapshot, cluster);
  std::uint32_t endpoint;
  if (balancer.table().uses_key()) {
    std::uint64_t key = 0;
    switch (state.hash_on.source) {
      case HashOn::Source::kClientIp:
        key = hash_client_ip(have_peer ? reinterpret_cast<const sockaddr*>(&peer) : nullptr);
        break;
      case HashOn::Source::kHeader:
        key = hash_key(find_header(request, state.hash_on.header));
        break;
      case HashOn::Source::kPath:
        key = hash_key(target.substr(0, target.find('?')));
        break;
    }
    endpoint = balancer.pick(Availability{}, key);
  } else {
    endpoint = balancer.pick(Availability{});
  }
  if (endpoint == kNoEndpoint) {
    answer(exchange, 503, ErrorLabel::kNoHealthyUpstream);
    return false;
  }
  pool_ = &reactor_.pool(snapshot, cluster, endpoint);
  upstream_ = pool_->acquire(*this, head_request_);
  if (upstream_ == nullptr) {
    answer(exchange, 502, ErrorLabel::kUpstreamConnectFailure);
    return false;
  }
  balancer_ = &balancer;
  endpoint_ = endpoint;
  cluster_ = cluster;
  generation_ = snapshot.generation;
  balancer.request_started(endpoint);

  // The upstream's request head.
  char* const client_address = client_address_;
  const std::size_t address_length =
      have_peer ? address_text(reinterpret_cast<const sockaddr*>(&peer), client_address_) : 0;
  client_address_length_ = static_cast<std::uint8_t>(address_length);
  RequestForwarding how;
  how.client_address = std::string_view(client_address, address_length);
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
  if (upgrade_sent_) upstream_->forbid_reuse();
  request_framing_ = forwarded.framing;
  std::string& head = head_;
  head.clear();
  write_request_head(head, forwarded, how, ids_);
  request_id_.assign(ids_.request_id());
  const std::string_view method = forwarded.method;
  idempotent_ = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
                method == "DELETE" || method == "TRACE";
  logging_ = client.shard().core.options().access_log != AccessLogFormat::kOff;
  if (logging_) {
    started_ = std::chrono::steady_clock::now();
    method_.assign(method);
    path_.assign(request.target());
    if (upstream_->reused()) connect_ms_ = 0;  // taken from the pool
  }
  const bool sent = upstream_->send(head);
  if (!sent) {
    upstream_blocked_ = true;
    client_.pause_body();
  }
  // Expect: 100-continue: the client may send the body once the upstream
  // has the head (GATEWAY.md: when the gateway is ready for it), not before
  // (a refused connect answers 502 without it and closes).
  if (exchange.continue_due) {
    if (sent && upstream_->all_sent()) {
      client_.send_continue();
    } else {
      continue_due_ = true;  // on_upstream_writable() once the head is out
    }
  }
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
  if (upstream_ == nullptr || bytes.empty()) return;
  bytes_in_ += bytes.size();
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
  if (logging_) {
    connect_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            started_).count();
  }
}

void ProxyExchange::on_upstream_connect_failed(UpstreamConnection& connection,
                                               ConnectFailure cause) noexcept {
  (void)connection;
  (void)cause;
  let_go_upstream();
  fail(502, ErrorLabel::kUpstreamConnectFailure);
}

void ProxyExchange::on_upstream_head(UpstreamConnection& connection,
                                     const UpstreamResponseHead& head) noexcept {
  (void)connection;
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
  if (head.status == 101) start_tunnel();
}

void ProxyExchange::start_tunnel() noexcept {
  // The route's timeout does not apply to a tunnel: the client
  // connection's idle timeout ends one (GATEWAY.md).
  reactor_.io.reactor.cancel(timer_);
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
  fail(502, label);
}

bool ProxyExchange::resend() noexcept {
  // Only a request sent whole in its head (no body to send again), and
  // safe to repeat; once (GATEWAY.md: not counted as a retry).
  if (resent_ || !idempotent_ || request_framing_ != http1::Framing::kNone) return false;
  resent_ = true;
  upstream_ = pool_->connect_new(*this, head_request_);
  if (upstream_ == nullptr) return false;
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
  self->let_go_upstream();
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
  ReactorShard& shard = reactor_.shard;
  try {
    append_proxy_access_log(shard.access_log, shard.core.options().access_log, std::time(nullptr),
                            entry);
  } catch (...) {
    // A line that cannot be formatted is dropped: the log never fails a request.
  }
}

void ProxyExchange::recycle() noexcept {
  if (logging_ && route_ != nullptr) log_exchange();
  logging_ = false;
  status_ = 0;
  label_ = ErrorLabel::kNone;
  bytes_in_ = bytes_out_ = 0;
  connect_ms_ = first_byte_ms_ = -1;
  client_address_length_ = 0;
  timed_ = false;  // the timer stays armed (start() may keep it): on_timeout() skips it
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

void Runtime::pool_counts(std::string_view cluster, std::string_view address,
                          std::size_t& active, std::size_t& pooled) const {
  std::lock_guard lock(pools_mutex_);
  for (const PoolEntry& entry : pools_) {
    if (entry.cluster == cluster && entry.address == address) {
      active += entry.pool->active();
      pooled += entry.pool->pooled();
    }
  }
}

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
