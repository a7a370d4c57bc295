// gateway/balancer.hpp (internal) — the load balancers of GATEWAY.md (`lb:`):
// smooth weighted round robin, least request (P2C), ring hash, Maglev, random;
// and the hash of a request's `hash_on` value that ring hash and Maglev use.
// Thread-safety: a BalancerTable is immutable once built and is read by every
// reactor (it lives in the cluster's published snapshot); a Balancer (round
// robin positions, PRNG, in-flight counts) belongs to one reactor thread.
// Lifetimes: a Balancer refers to its table; the table must outlive it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portico {
inline namespace v0 {
namespace detail {

enum class LbPolicy : std::uint8_t { kRoundRobin, kLeastRequest, kRingHash, kMaglev, kRandom };

// The config names: round_robin, least_request, ring_hash, maglev, random.
std::optional<LbPolicy> parse_lb_policy(std::string_view name) noexcept;
std::string_view lb_policy_name(LbPolicy policy) noexcept;

// What a pick returns when no endpoint is available.
inline constexpr std::uint32_t kNoEndpoint = std::numeric_limits<std::uint32_t>::max();

// GATEWAY.md's bounds on `weight`, and ours on a cluster's size: endpoint
// indexes are stored in 16 bits to halve the Maglev table and the ring.
inline constexpr std::uint32_t kMinWeight = 1;
inline constexpr std::uint32_t kMaxWeight = 1000;
inline constexpr std::size_t kMaxEndpoints = 65535;

// One endpoint as the balancer sees it. `address` is the endpoint's identity
// ("host:port"): ring points and Maglev permutations derive from it, not from
// the endpoint's position in the list, so adding or removing one endpoint
// leaves the others' keys where they were.
struct BalancerEndpoint {
  std::string_view address;
  std::uint32_t weight = 1;
};

struct BalancerOptions {
  // Maglev lookup table entries: a prime larger than the endpoint count;
  // more entries per endpoint follow the weights more closely (the paper's
  // 65537 by default).
  std::uint32_t maglev_table_size = 65537;
  // Ring hash: each endpoint gets kRingPointsPerWeight points per unit of
  // weight, raised so the ring has at least ring_min_size points (Envoy's
  // minimum) and lowered so it has at most ring_max_size.
  std::uint32_t ring_min_size = 1024;
  std::uint32_t ring_max_size = 1u << 20;
};

// Points per unit of weight on the ring. A constant, not derived from the
// endpoint count as Envoy's scale is, so that a cluster gaining or losing an
// endpoint keeps every other endpoint's points (and keys) — as long as
// sum(weights) x 256 stays within [ring_min_size, ring_max_size].
inline constexpr std::uint32_t kRingPointsPerWeight = 256;

// Which endpoints a pick may choose: bit i (of word i / 64) set means
// endpoint i is available (healthy, not ejected). A default-constructed view
// means all are; the words are the resilience layer's published snapshot.
// REQUIRES: a non-empty view has a bit for every endpoint of the table.
class Availability {
 public:
  constexpr Availability() noexcept = default;
  constexpr explicit Availability(std::span<const std::uint64_t> words) noexcept : words_(words) {}

  constexpr bool all() const noexcept { return words_.empty(); }
  constexpr bool test(std::uint32_t endpoint) const noexcept {
    return words_.empty() || ((words_[endpoint >> 6] >> (endpoint & 63)) & 1) != 0;
  }
  // Whether any of endpoints [0, count) is available.
  bool any(std::uint32_t count) const noexcept;

 private:
  std::span<const std::uint64_t> words_;
};

// The part of a cluster's balancing that depends only on its endpoint list:
// weights, their alias table, the ring or the Maglev table. Built once per
// config (re)load, then shared read-only; lookups allocate nothing.
class BalancerTable {
 public:
  // An error names the endpoint and says what is wrong with it, for the
  // config loader to report (it validates weights itself first).
  static std::optional<BalancerTable> build(LbPolicy policy,
                                            std::span<const BalancerEndpoint> endpoints,
                                            const BalancerOptions& options, std::string& error);

  LbPolicy policy() const noexcept { return policy_; }
  std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(weights_.size()); }
  std::uint32_t weight(std::uint32_t endpoint) const noexcept { return weights_[endpoint]; }
  std::uint32_t total_weight() const noexcept { return total_weight_; }
  // ring_hash and maglev pick by the request's key (hash_key and friends);
  // the others ignore it, so the caller need not compute one.
  bool uses_key() const noexcept {
    return policy_ == LbPolicy::kRingHash || policy_ == LbPolicy::kMaglev;
  }

  // The endpoint owning `key` on the ring: the first point at or after it
  // (wrapping), walking on past points of unavailable endpoints.
  // REQUIRES: policy() == kRingHash.
  std::uint32_t ring_lookup(std::uint64_t key, Availability available) const noexcept;
  // The endpoint in the key's Maglev slot, or in the next slot whose
  // endpoint is available. REQUIRES: policy() == kMaglev.
  std::uint32_t maglev_lookup(std::uint64_t key, Availability available) const noexcept;

  // The tables themselves, for tests and the admin page.
  std::span<const std::uint16_t> maglev_entries() const noexcept { return maglev_; }
  std::size_t ring_points() const noexcept { return ring_hashes_.size(); }

  // An endpoint drawn with probability weight / total_weight() from 64
  // uniform random bits, in constant time (Walker's alias method).
  std::uint32_t draw(std::uint64_t random) const noexcept {
    const auto bucket = static_cast<std::uint32_t>(((random >> 32) * alias_.size()) >> 32);
    const Alias& a = alias_[bucket];
    return static_cast<std::uint32_t>(random) < a.keep ? bucket : a.other;
  }
  // The probability draw() gives `endpoint`, from the alias table itself
  // (tests check it against the weights). O(endpoints).
  double draw_probability(std::uint32_t endpoint) const noexcept;

 private:
  BalancerTable() = default;
  void build_alias();
  void build_ring(std::span<const BalancerEndpoint> endpoints, const BalancerOptions& options);
  void build_maglev(std::span<const BalancerEndpoint> endpoints, std::uint32_t table_size);

  LbPolicy policy_ = LbPolicy::kRoundRobin;
  std::uint32_t total_weight_ = 0;
  std::vector<std::uint32_t> weights_;
  // Bucket i keeps i when the low 32 random bits are below `keep`, else
  // gives `other` (random and least_request draw from it).
  struct Alias {
    std::uint32_t keep;
    std::uint16_t other;
  };
  std::vector<Alias> alias_;
  // The ring, sorted by point: parallel arrays so the binary search touches
  // only the hashes.
  std::vector<std::uint64_t> ring_hashes_;
  std::vector<std::uint16_t> ring_endpoints_;
  std::vector<std::uint16_t> maglev_;
};

// SplitMix64 (Steele, Lea, Flood 2014): one word of state and a few
// instructions per draw, statistically sound for picking endpoints (not for
// secrets). Meets UniformRandomBitGenerator.
class SplitMix64 {
 public:
  using result_type = std::uint64_t;
  explicit constexpr SplitMix64(std::uint64_t seed) noexcept : state_(seed) {}
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }
  constexpr result_type operator()() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), without modulo bias (Lemire 2019).
  // REQUIRES: bound > 0.
  std::uint32_t below(std::uint32_t bound) noexcept;

 private:
  std::uint64_t state_;
};

// One reactor's balancer for one cluster: the table's policy plus the state
// that changes with every pick. Picks allocate nothing and take no lock.
class Balancer {
 public:
  // `seed` differs per reactor, so reactors do not draw in lockstep.
  Balancer(const BalancerTable& table, std::uint64_t seed);

  // An available endpoint, or kNoEndpoint when none is. `key` is the hash of
  // the request's hash_on value; only ring_hash and maglev read it.
  std::uint32_t pick(Availability available, std::uint64_t key) noexcept;
  // The request has no key (its hash_on header is absent): ring_hash and
  // maglev pick as if by a random key, as Envoy does.
  std::uint32_t pick(Availability available) noexcept { return pick(available, rng_()); }

  // Requests in flight on this reactor, per endpoint: least_request reads
  // them; the caller counts every policy's requests (the admin page shows
  // them). REQUIRES: each request_finished matches a request_started.
  void request_started(std::uint32_t endpoint) noexcept { ++in_flight_[endpoint]; }
  void request_finished(std::uint32_t endpoint) noexcept;
  std::uint32_t in_flight(std::uint32_t endpoint) const noexcept { return in_flight_[endpoint]; }

  const BalancerTable& table() const noexcept { return *table_; }

 private:
  std::uint32_t pick_round_robin(Availability available) noexcept;
  std::uint32_t pick_least_request(Availability available) noexcept;
  std::uint32_t pick_weighted_random(Availability available) noexcept;

  const BalancerTable* table_;
  SplitMix64 rng_;
  // nginx's current weights (round_robin only). |current| <= total weight
  // <= 65535 x 1000, so 32 bits hold it.
  std::vector<std::int32_t> current_;
  std::vector<std::uint32_t> in_flight_;
};

// ---- hash_on ----------------------------------------------------------------

// `hash_on`: client_ip | header:NAME | path.
struct HashOn {
  enum class Source : std::uint8_t { kClientIp, kHeader, kPath };
  Source source = Source::kClientIp;
  std::string header;  // the field name, for kHeader

  // Parses the config value; nullopt for anything else (an empty or invalid
  // field name included).
  static std::optional<HashOn> parse(std::string_view text);
};

// The 64-bit key of a hash_on value (a header's value, the path): XXH3 with
// seed 0, so every reactor, process and restart maps a value to the same key.
std::uint64_t hash_key(std::string_view bytes) noexcept;
// The key of a client address: its IP only (not the port, which changes with
// every connection); an IPv4-mapped IPv6 address hashes as its IPv4 address.
// Any other family (or none: nullptr) hashes as the empty string.
std::uint64_t hash_client_ip(const sockaddr* address) noexcept;

}  // namespace detail
}  // namespace v0
}  // namespace portico
