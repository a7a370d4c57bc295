// gateway/proxy.hpp (internal) — the reverse proxy: a loaded configuration
// as reactors read it (Snapshot: clusters, endpoints, balancer tables), the
// routes that take exchanges over (RouteGroup), each reactor's upstream
// pools and balancers (ReactorGateway), and one proxied exchange
// (ProxyExchange) relaying a request to an endpoint and its response back.
// Thread-safety: a Snapshot and the RouteTargets are immutable once built
// and shared by every reactor; a ReactorGateway and its exchanges belong to
// one reactor thread.
// Lifetimes: a RouteSet owns a configuration's RouteTargets, RouteGroups and
// Snapshot; the route table's handlers share the RouteSet, and the server
// holds a handler while an exchange on it runs.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/balancer.hpp"
#include "gateway/cidr.hpp"
#include "gateway/forward.hpp"
#include "gateway/request_ids.hpp"
#include "gateway/resilience.hpp"
#include "gateway/upstream_pool.hpp"
#include "portico/reactor.hpp"
#include "server/exchange_taker.hpp"
#include "server/reactor_shard.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace gateway {

// ---- what a configuration becomes ------------------------------------------------

struct EndpointState {
  std::string address;  // "host:port" as it reaches the upstream (its pool key)
  sockaddr_storage sockaddr{};
  socklen_t length = 0;
  std::uint32_t weight = 1;
};

struct ClusterState {
  std::string name;
  std::vector<EndpointState> endpoints;
  std::optional<BalancerTable> table;  // always set once built
  HashOn hash_on;
  UpstreamPoolOptions pool;
  ClusterResilience resilience;  // health, ejections, their settings
};

// One loaded configuration's clusters and forwarding settings.
struct Snapshot {
  std::uint64_t generation = 0;
  std::vector<ClusterState> clusters;
  std::vector<Cidr> trusted_proxies;
  std::string via = "portico";
  Resilience* resilience = nullptr;  // the gateway's, which outlives its snapshots

  std::uint32_t cluster_index(std::string_view name) const noexcept;
};

struct OwnedField {
  std::string name;
  std::string value;
};

// One configured route's forwarding (or direct answer).
// One configured route's forwarding (or direct answer). A table of 120,000
// routes holds one each: what few routes set lives out of line.
struct RouteTarget {
  struct Weighted {
    std::uint32_t cluster;
    std::uint32_t weight;
  };
  struct Canary {
    std::string header;
    std::string value;
    std::uint32_t cluster;
  };
  struct Extras {
    std::vector<std::string> hosts;  // empty: any Host
    std::vector<std::string> other_methods;  // listed tokens that are not standard methods
    std::vector<Weighted> split;     // instead of `cluster`
    std::uint32_t split_total = 0;
    std::vector<Canary> canary;
    std::optional<RetryPolicy> retry;  // replaces the cluster's
    std::string strip_prefix;
    std::string host_rewrite;
    std::vector<OwnedField> request_add, response_add;
    std::vector<std::string> request_remove, response_remove;
    std::vector<FieldValue> request_add_views, response_add_views;  // into the above
    std::vector<std::string_view> request_remove_views, response_remove_views;
    int respond_status = 200;  // `respond`
    std::string respond_body;
    std::string respond_type;

    // Fills the *_views members from the owned strings, once filled.
    void bind_views();
  };

  const Snapshot* snapshot = nullptr;  // the RouteSet's
  std::string_view pattern;             // into the RouteSet's patterns
  std::uint32_t cluster = kNoEndpoint;  // the route's own cluster, or kNoEndpoint
  bool respond = false;                 // answered here, never forwarded
  // The standard methods the route lists, as MethodSet bits (with
  // Extras::other_methods); none at all: any method.
  std::uint16_t methods = 0;
  std::chrono::milliseconds timeout{15000};  // 0: none
  std::unique_ptr<Extras> extras;  // nullptr: none set

  const Extras& more() const noexcept { return extras ? *extras : kNoExtras; }
  Extras& edit() {
    if (!extras) extras = std::make_unique<Extras>();
    return *extras;
  }
  // Whether this route serves requests for `host` (the client's Host value,
  // port and all): 2 exact, 1 wildcard, 0 any (no hosts), -1 not at all.
  int host_rank(std::string_view host) const noexcept;

  static const Extras kNoExtras;
};

class Runtime;

// The router's entry for one path and method: the routes that share them,
// told apart by Host (exact names, then wildcards, then routes without hosts).
class RouteGroup final : public ExchangeTaker {
 public:
  RouteGroup(Runtime& runtime, std::span<const RouteTarget* const> targets) noexcept
      : runtime_(runtime), targets_(targets) {}
  StreamingExchange* take(ClientStream client, ServerExchange& exchange) noexcept override;
  std::string_view route_pattern() const noexcept override { return targets_.front()->pattern; }

 private:
  Runtime& runtime_;
  std::span<const RouteTarget* const> targets_;  // into the RouteSet's members
};

// One configuration's routes, built in a few allocations however many there
// are: the route table's handlers point into it, each an aliasing
// shared_ptr that keeps the whole set (and its Snapshot) alive.
struct RouteSet {
  std::shared_ptr<const Snapshot> snapshot;
  std::string patterns;                     // each distinct path, back to back
  std::vector<RouteTarget> targets;         // in file order: the /routes listing
  std::vector<const RouteTarget*> members;  // each group's targets, back to back
  std::vector<RouteGroup> groups;           // one per path and method (or any)

  // A handler for groups[index], sharing `set`.
  static StreamingHandler handler(const std::shared_ptr<RouteSet>& set, std::size_t index) {
    return StreamingHandler{std::shared_ptr<ExchangeTaker>(set, &set->groups[index])};
  }
};

// ---- one reactor's side ------------------------------------------------------------

class ProxyExchange;

// A reactor's upstream pools (by cluster and endpoint, kept across reloads
// while the endpoint stays), its balancers (per snapshot) and its free
// exchanges.
class ReactorGateway final : public ShardExtension {
 public:
  ReactorGateway(Runtime& runtime, ReactorShard& shard) noexcept;
  ~ReactorGateway() override;

  Runtime& runtime;
  ReactorShard& shard;
  UpstreamIo io;
  std::string scratch;         // an upstream request head
  std::string target_scratch;  // a normalised target, when it differs

  // The balancer and pools of `cluster` in `snapshot`, made current first.
  Balancer& balancer(const Snapshot& snapshot, std::uint32_t cluster);
  UpstreamPool& pool(const Snapshot& snapshot, std::uint32_t cluster, std::uint32_t endpoint);

  // Which endpoints of `cluster` a pick may choose now: all, or a copy of
  // their flags (they change under a pick) made in this reactor's words;
  // without `exclude` (a retry's last endpoint) unless it is the only one.
  Availability availability(const ClusterState& cluster,
                            std::uint32_t exclude = kNoEndpoint) noexcept;

  ProxyExchange* acquire_exchange();
  void release_exchange(ProxyExchange* exchange) noexcept;

  // Exchanges waiting for room in their cluster (the circuit breaker's
  // max_requests, max_connections), oldest first: tried again when a
  // request of this reactor ends, and every millisecond while any waits
  // (room freed on another reactor tells no one).
  void park(ProxyExchange& exchange) noexcept;
  void unpark(ProxyExchange& exchange) noexcept;
  void room_freed() noexcept;

  // The snapshot generation the balancers belong to.
  std::uint64_t generation() const noexcept { return generation_; }

 private:
  void adopt(const Snapshot& snapshot);

  std::uint64_t generation_ = 0;
  std::vector<std::unique_ptr<Balancer>> balancers_;
  std::vector<std::vector<UpstreamPool*>> cluster_pools_;
  // "cluster\naddress" -> pool. Pools of endpoints no longer configured
  // drain and go once nothing uses them.
  std::unordered_map<std::string, std::unique_ptr<UpstreamPool>> pools_;
  std::vector<ProxyExchange*> free_;
  std::vector<std::uint64_t> available_;  // availability()'s words, sized by adopt()
  ProxyExchange* waiting_head_ = nullptr;
  ProxyExchange* waiting_tail_ = nullptr;
  Timer wake_timer_;

  static void on_wake(Timer& timer, void* context) noexcept;
};

// One proxied exchange: the client's request to an upstream endpoint, the
// response back, both bodies streamed with backpressure both ways. An
// Upgrade the upstream accepts (101) makes it a two-way byte tunnel between
// the two connections until both sides have sent their EOF, either fails,
// or the client connection's idle timeout passes.
class ProxyExchange final : public StreamingExchange, public UpstreamHandler {
 public:
  explicit ProxyExchange(ReactorGateway& reactor) noexcept;
  ProxyExchange(const ProxyExchange&) = delete;
  ProxyExchange& operator=(const ProxyExchange&) = delete;

  // Starts the exchange (take()'s work once a route is chosen). False when
  // it answered at once through `exchange.response`.
  bool start(const RouteTarget& route, ClientStream client, ServerExchange& exchange) noexcept;

  // StreamingExchange
  void on_request_body(std::string_view bytes) noexcept override;
  void on_request_end() noexcept override;
  void on_client_writable() noexcept override;
  void on_request_error(int status) noexcept override;
  void on_client_gone() noexcept override;
  void on_tunnel_data(std::string_view bytes) noexcept override;
  void on_tunnel_end() noexcept override;

  // UpstreamHandler
  void on_upstream_connected(UpstreamConnection& connection) noexcept override;
  void on_upstream_connect_failed(UpstreamConnection& connection,
                                  ConnectFailure cause) noexcept override;
  void on_upstream_head(UpstreamConnection& connection,
                        const UpstreamResponseHead& head) noexcept override;
  void on_upstream_body(UpstreamConnection& connection, std::string_view bytes) noexcept override;
  void on_upstream_read_done(UpstreamConnection& connection) noexcept override;
  void on_upstream_complete(UpstreamConnection& connection, bool reusable) noexcept override;
  void on_upstream_error(UpstreamConnection& connection, ErrorLabel label) noexcept override;
  void on_upstream_writable(UpstreamConnection& connection) noexcept override;
  void on_upstream_tunnel_data(UpstreamConnection& connection,
                               std::string_view bytes) noexcept override;
  void on_upstream_tunnel_end(UpstreamConnection& connection) noexcept override;

 private:
  static void on_timeout(Timer& timer, void* context) noexcept;
  static void on_try_timeout(Timer& timer, void* context) noexcept;

  friend class ReactorGateway;  // its wait list links exchanges

  // Room in the cluster (its circuit breaker) for one more request.
  enum class Room : std::uint8_t { kYes, kWait, kOpen };
  enum class Dispatch : std::uint8_t { kSent, kNoEndpoint, kNoConnection, kConnectFailed };
  // The key ring_hash and maglev pick by (0 for other policies).
  static std::uint64_t request_key(const ClusterState& state, const Request& request,
                                   std::string_view target, const sockaddr_storage* peer) noexcept;
  // Takes a request slot of cluster_ (kYes), or says why not.
  Room admit() noexcept;
  // Gives the slot back; `announce`: waiting exchanges look again (not
  // when it was taken back at once, which would have them spin).
  void release_slot(bool announce = true) noexcept;
  void give_back_probe() noexcept;
  // With a slot: an endpoint, a connection, the head (and what body waited) sent.
  Dispatch dispatch() noexcept;
  // The answer to a dispatch that did not send (kNoConnection: overflow,
  // for a retry, which does not wait; a first try waits for room instead).
  struct Refusal {
    int status;
    ErrorLabel label;
  };
  static Refusal refusal(Dispatch outcome) noexcept;
  // Waits for room (false: max_pending are waiting already).
  bool wait_for_room() noexcept;
  void stop_waiting() noexcept;
  // A waiting exchange tries again; true when it stopped waiting (sent or failed).
  bool try_again() noexcept;
  bool armed(const RouteTarget& route) noexcept;
  // Request body bytes to the upstream: counted, kept for a retry, framed.
  void forward_body(std::string_view bytes) noexcept;
  void send_body(std::string_view bytes) noexcept;
  // The route's retry policy, else its cluster's (nullptr: none).
  const RetryPolicy* retry_policy() const noexcept;
  // Whether this try's failure may be retried (GATEWAY.md, retry): the
  // condition listed, attempts left, nothing sent to the client, the body
  // kept, an idempotent method unless nothing was sent, and room in the
  // retry budget and max_retries (counted from here).
  bool may_retry(RetryOn condition) noexcept;
  // The next try, on another endpoint when there is one. REQUIRES:
  // may_retry(), and the last try's upstream let go.
  void redispatch() noexcept;
  void forward_end() noexcept;
  // The error_rate breaker's count of this request (once).
  void record_outcome(bool error) noexcept;
  const ClusterState& cluster_state() const noexcept {
    return route_->snapshot->clusters[cluster_];
  }
  // The endpoint answered (or failed after the request went): outlier
  // detection's count.
  void report_response(bool server_error) noexcept;

  // Sends request bytes (framed for the upstream); false when it must wait.
  bool send_upstream(std::string_view head, std::string_view tail) noexcept;
  // Response bytes for the client, gathered until the end of the read.
  void to_client(std::string_view bytes) noexcept;
  // Writes what was gathered; false when the client connection failed.
  bool flush_client() noexcept;
  // Writes `bytes` to the client (pausing the upstream while the client is
  // slow); false when the client connection failed.
  bool write_client(std::string_view bytes) noexcept;
  // A 101 to the Upgrade it asked for: the head goes out, then the tunnel.
  void start_tunnel() noexcept;
  // Both sides sent their EOF and the upstream's FIN went: the end, from
  // the loop (end_tunnel()).
  void end_tunnel_if_done() noexcept;
  void end_tunnel() noexcept;
  // Gives the upstream connection back to its pool (closed unless reusable).
  void let_go_upstream() noexcept;
  // A pooled connection failed before any response byte (the upstream's
  // idle close crossing the request): sends the request once more on a new
  // connection when that is safe. True when it did.
  bool resend() noexcept;
  // The exchange failed: an answer if nothing was written yet, else the
  // client connection closes.
  void fail(int status, ErrorLabel label) noexcept;
  // The access log line (when the server writes one), then back to the
  // reactor's free list.
  void recycle() noexcept;
  void log_exchange() noexcept;

  ReactorGateway& reactor_;
  // The route's timeout, armed lazily (armed()), or a tunnel's end.
  Timer timer_;
  Reactor::Clock::time_point deadline_{};   // the route's timeout ends then, when timed_
  Reactor::Clock::time_point armed_for_{};  // timer_ fires then (lazily: maybe earlier)
  bool timed_ = false;
  Timer try_timer_;  // per_try_timeout
  ClientStream client_;
  const RouteTarget* route_ = nullptr;
  Balancer* balancer_ = nullptr;
  UpstreamPool* pool_ = nullptr;
  UpstreamConnection* upstream_ = nullptr;
  std::uint32_t endpoint_ = kNoEndpoint;
  std::uint64_t generation_ = 0;  // of the balancer it counted itself in
  RequestIds ids_;
  std::string request_id_;  // the response echoes it (the client's head is gone by then)
  std::string out_;         // response bytes gathered for the client
  std::string head_;        // the upstream request head, kept for a resend
  http1::Framing request_framing_ = http1::Framing::kNone;
  ClientFraming client_framing_;
  bool head_request_ = false;
  bool client_http11_ = true;
  bool client_keep_alive_ = true;
  bool chunk_sent_ = false;        // a request body chunk went upstream
  bool upstream_blocked_ = false;  // the request body waits for the upstream
  bool client_blocked_ = false;    // the response waits for the client
  bool response_started_ = false;  // the response head went to the client
  bool idempotent_ = false;        // the method is (RFC 9110 §9.2.2)
  bool resent_ = false;            // resend() was used
  bool request_ended_ = false;     // on_request_end() came
  bool continue_due_ = false;      // 100 Continue once the upstream has the head
  bool upgrade_sent_ = false;      // the Upgrade went upstream (how.tunnel)
  bool tunnel_ = false;            // the 101 came: raw bytes both ways
  bool client_eof_ = false;        // tunnel: the client sent its EOF
  bool upstream_eof_ = false;      // tunnel: the upstream sent its EOF
  bool fallback_ = false;          // a canary's request went to the route's own cluster
  bool holds_slot_ = false;        // counted in its cluster's requests in flight
  bool probe_ = false;             // a half-open error_rate breaker's probe
  bool reported_ = false;          // record_outcome() ran
  bool waiting_ = false;           // parked for room (the body paused)
  bool continue_wanted_ = false;   // 100 Continue once dispatched
  std::uint64_t key_ = 0;          // request_key() for cluster_
  std::string waiting_body_;       // body bytes read while waiting
  const RetryPolicy* retry_ = nullptr;  // retry_policy(), set at the first dispatch
  std::string retry_body_;         // the body forwarded so far, for a retry
  bool replayable_ = true;         // retry_body_ holds every body byte forwarded
  bool retrying_ = false;          // counted in its cluster's retries in flight
  std::uint32_t attempts_ = 0;     // retries made
  std::uint32_t exclude_ = kNoEndpoint;  // the endpoint the last try went to
  ProxyExchange* wait_prev_ = nullptr;
  ProxyExchange* wait_next_ = nullptr;

  // For the request metrics (ServerOptions::metrics): the series' route
  // and method, and when the request's first byte was read (the loop clock).
  bool metering_ = false;
  std::uint8_t series_method_ = 0;
  std::uint32_t series_route_ = 0;
  std::chrono::steady_clock::time_point head_at_;
  // When this exchange's upstream connection was ready and its response head
  // came, by the loop clock (portico_request_phase_seconds); {}: not reached.
  // A retry's later connection and response replace the first's.
  std::chrono::steady_clock::time_point connected_at_, first_byte_at_;
  void record_phase(RequestPhase phase, std::chrono::steady_clock::time_point at) noexcept;

  // For the access log (GATEWAY.md's fields), kept only while it is on.
  bool logging_ = false;
  int status_ = 0;  // what the client got
  ErrorLabel label_ = ErrorLabel::kNone;
  std::uint32_t cluster_ = 0;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::chrono::steady_clock::time_point started_;
  double connect_ms_ = -1;     // < 0: no new connection was made
  double first_byte_ms_ = -1;  // < 0: no response came
  std::string method_;
  std::string path_;
  char client_address_[46] = {};
  std::uint8_t client_address_length_ = 0;
};

// What a Gateway shares between its reactors: each reactor's state, and a
// registry of their upstream pools for /clusters (pools come and go rarely,
// so a lock; their counts are relaxed atomics each pool's thread writes).
class Runtime {
 public:
  virtual ~Runtime() = default;
  // The calling reactor's state, made on first use.
  ReactorGateway& reactor(ReactorShard& shard);

  void register_pool(const std::string& cluster, const std::string& address,
                     const UpstreamPool* pool);
  void unregister_pool(const UpstreamPool* pool) noexcept;
  // What the pools to `address` of `cluster` hold and counted, all reactors
  // (pools dropped with an endpoint a reload removed no longer count):
  // connections handed out and pooled now, and the upstream metrics.
  struct UpstreamTotals {
    std::size_t active = 0, pooled = 0;
    std::uint64_t requests = 0, connect_failures = 0, retries = 0;
  };
  UpstreamTotals upstream_totals(std::string_view cluster, std::string_view address) const;

 private:
  struct PoolEntry {
    std::string cluster;
    std::string address;
    const UpstreamPool* pool;
  };
  mutable std::mutex pools_mutex_;
  std::vector<PoolEntry> pools_;
};

}  // namespace gateway
}  // namespace detail
}  // namespace v0
}  // namespace portico
