// gateway/balancer.cpp — the load balancers (see balancer.hpp).
#include "gateway/balancer.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <numeric>

// Header-only: the hash inlines into the request path, and an installed
// portico needs no libxxhash at run time.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace portico {
inline namespace v0 {
namespace detail {

namespace {

constexpr std::string_view kPolicyNames[] = {"round_robin", "least_request", "ring_hash", "maglev",
                                             "random"};

bool is_prime(std::uint32_t n) noexcept {
  if (n < 2) return false;
  for (std::uint32_t d = 2; static_cast<std::uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// RFC 9110 §5.6.2 tchar.
bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::uint64_t hash_with_seed(std::string_view bytes, std::uint64_t seed) noexcept {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

// Maps a 64-bit key onto [0, n) by its high bits (Lemire's fast range): no
// division, and the key's top bits are XXH3's best mixed.
std::uint32_t fast_range(std::uint64_t key, std::uint32_t n) noexcept {
  return static_cast<std::uint32_t>(((key >> 32) * n) >> 32);
}

}  // namespace

std::optional<LbPolicy> parse_lb_policy(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(kPolicyNames); ++i) {
    if (kPolicyNames[i] == name) return static_cast<LbPolicy>(i);
  }
  return std::nullopt;
}

std::string_view lb_policy_name(LbPolicy policy) noexcept {
  return kPolicyNames[static_cast<std::size_t>(policy)];
}

bool Availability::any(std::uint32_t count) const noexcept {
  if (words_.empty()) return count > 0;
  const std::uint32_t full = count / 64;
  for (std::uint32_t w = 0; w < full; ++w) {
    if (words_[w] != 0) return true;
  }
  const std::uint32_t rest = count % 64;
  return rest != 0 && (words_[full] & ((std::uint64_t{1} << rest) - 1)) != 0;
}

// ---- BalancerTable ------------------------------------------------------------

std::optional<BalancerTable> BalancerTable::build(LbPolicy policy,
                                                  std::span<const BalancerEndpoint> endpoints,
                                                  const BalancerOptions& options,
                                                  std::string& error) {
  if (endpoints.empty()) {
    error = "a cluster needs at least one endpoint";
    return std::nullopt;
  }
  if (endpoints.size() > kMaxEndpoints) {
    error = "a cluster has at most " + std::to_string(kMaxEndpoints) + " endpoints";
    return std::nullopt;
  }
  for (const BalancerEndpoint& e : endpoints) {
    if (e.weight < kMinWeight || e.weight > kMaxWeight) {
      error = "endpoint " + std::string(e.address) + ": weight " + std::to_string(e.weight) +
              " is outside 1-1000";
      return std::nullopt;
    }
  }
  const bool hashed = policy == LbPolicy::kRingHash || policy == LbPolicy::kMaglev;
  if (hashed) {
    // Two endpoints of one address would share their points and
    // permutation: one key space, two owners. Refused rather than guessed.
    std::vector<std::string_view> sorted(endpoints.size());
    std::transform(endpoints.begin(), endpoints.end(), sorted.begin(),
                   [](const BalancerEndpoint& e) { return e.address; });
    std::sort(sorted.begin(), sorted.end());
    const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end()) {
      error = "endpoint " + std::string(*dup) + " is listed twice";
      return std::nullopt;
    }
  }
  if (policy == LbPolicy::kMaglev &&
      (!is_prime(options.maglev_table_size) || options.maglev_table_size <= endpoints.size())) {
    error = "the Maglev table size " + std::to_string(options.maglev_table_size) +
            " must be a prime larger than the endpoint count";
    return std::nullopt;
  }
  if (policy == LbPolicy::kRingHash &&
      (options.ring_min_size == 0 || options.ring_min_size > options.ring_max_size ||
       options.ring_max_size < endpoints.size())) {
    error = "the ring size bounds must satisfy endpoints <= ring_min_size <= ring_max_size";
    return std::nullopt;
  }

  BalancerTable table;
  table.policy_ = policy;
  table.weights_.reserve(endpoints.size());
  for (const BalancerEndpoint& e : endpoints) {
    table.total_weight_ += e.weight;
    table.weights_.push_back(e.weight);
  }
  table.build_alias();
  if (policy == LbPolicy::kRingHash) table.build_ring(endpoints, options);
  if (policy == LbPolicy::kMaglev) table.build_maglev(endpoints, options.maglev_table_size);
  return table;
}

// Vose's alias method in integers: bucket i starts with weight x n and a
// bucket's capacity is the total weight; an under-full bucket is topped up
// by one over-full endpoint, which then counts as under- or over-full again.
// Only the final scaling of `keep` to 32 bits rounds.
void BalancerTable::build_alias() {
  const auto n = static_cast<std::uint32_t>(weights_.size());
  const std::uint64_t capacity = total_weight_;
  std::vector<std::uint64_t> fill(n);
  std::vector<std::uint32_t> under;
  std::vector<std::uint32_t> over;
  for (std::uint32_t i = 0; i < n; ++i) {
    fill[i] = std::uint64_t{weights_[i]} * n;
    (fill[i] < capacity ? under : over).push_back(i);
  }
  const auto keep_of = [&](std::uint64_t f) {
    return f >= capacity ? std::numeric_limits<std::uint32_t>::max()
                         : static_cast<std::uint32_t>((f << 32) / capacity);
  };
  alias_.assign(n, Alias{std::numeric_limits<std::uint32_t>::max(), 0});
  for (std::uint32_t i = 0; i < n; ++i) alias_[i].other = static_cast<std::uint16_t>(i);
  while (!under.empty() && !over.empty()) {
    const std::uint32_t small = under.back();
    const std::uint32_t large = over.back();
    under.pop_back();
    alias_[small] = {keep_of(fill[small]), static_cast<std::uint16_t>(large)};
    fill[large] -= capacity - fill[small];
    if (fill[large] < capacity) {
      over.pop_back();
      under.push_back(large);
    }
  }
  // What is left is full to the unit (exact integers): it keeps itself.
}

// Ketama-style: endpoint e's points are XXH3(address, seed j) for j below its
// point count, so they depend on nothing but the endpoint itself.
void BalancerTable::build_ring(std::span<const BalancerEndpoint> endpoints,
                               const BalancerOptions& options) {
  const double natural = static_cast<double>(total_weight_) * kRingPointsPerWeight;
  double scale = kRingPointsPerWeight;
  if (natural < options.ring_min_size) scale = double(options.ring_min_size) / total_weight_;
  if (natural > options.ring_max_size) scale = double(options.ring_max_size) / total_weight_;

  struct Point {
    std::uint64_t hash;
    std::uint16_t endpoint;
  };
  std::vector<Point> points;
  points.reserve(static_cast<std::size_t>(natural < options.ring_max_size
                                              ? std::max<double>(natural, options.ring_min_size)
                                              : options.ring_max_size) +
                 endpoints.size());
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const auto count = std::max<std::uint64_t>(1, std::llround(endpoints[e].weight * scale));
    for (std::uint64_t j = 0; j < count; ++j) {
      points.push_back({hash_with_seed(endpoints[e].address, j), static_cast<std::uint16_t>(e)});
    }
  }
  // Ties (astronomically rare) go to the lower address, not the list order,
  // so the ring depends only on the set of endpoints.
  std::sort(points.begin(), points.end(), [&](const Point& a, const Point& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return endpoints[a.endpoint].address < endpoints[b.endpoint].address;
  });
  ring_hashes_.resize(points.size());
  ring_endpoints_.resize(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    ring_hashes_[i] = points[i].hash;
    ring_endpoints_[i] = points[i].endpoint;
  }
}

// Maglev (Eisenbud et al., NSDI 2016, §3.4) with weights as Envoy takes
// them: an endpoint claims a slot on a round only while its claims trail
// weight / max_weight of the rounds, so its share of the table follows its
// weight. Endpoints take turns in address order, so the table depends only
// on the set of endpoints, not on the order the config lists them.
void BalancerTable::build_maglev(std::span<const BalancerEndpoint> endpoints,
                                 std::uint32_t table_size) {
  struct Filler {
    std::uint32_t position;  // next slot of its permutation
    std::uint32_t skip;
    std::uint64_t claims_due;  // in units of weight x rounds
    std::uint32_t weight;
    std::uint16_t endpoint;
  };
  std::vector<std::uint16_t> order(endpoints.size());
  std::iota(order.begin(), order.end(), std::uint16_t{0});
  std::sort(order.begin(), order.end(), [&](std::uint16_t a, std::uint16_t b) {
    return endpoints[a].address < endpoints[b].address;
  });
  std::uint32_t max_weight = 0;
  std::vector<Filler> fillers;
  fillers.reserve(endpoints.size());
  for (const std::uint16_t e : order) {
    const std::string_view address = endpoints[e].address;
    fillers.push_back(
        {static_cast<std::uint32_t>(hash_with_seed(address, 0) % table_size),
         static_cast<std::uint32_t>(hash_with_seed(address, 1) % (table_size - 1)) + 1, 0,
         endpoints[e].weight, e});
    max_weight = std::max(max_weight, endpoints[e].weight);
  }

  constexpr std::uint16_t kEmpty = std::numeric_limits<std::uint16_t>::max();
  static_assert(kMaxEndpoints - 1 < kEmpty, "endpoint indexes stay below the empty mark");
  maglev_.assign(table_size, kEmpty);
  std::uint32_t filled = 0;
  for (std::uint64_t round = 1; filled < table_size; ++round) {
    for (Filler& f : fillers) {
      if (round * f.weight < f.claims_due) continue;
      f.claims_due += max_weight;
      while (maglev_[f.position] != kEmpty) {
        f.position += f.skip;
        if (f.position >= table_size) f.position -= table_size;
      }
      maglev_[f.position] = f.endpoint;
      if (++filled == table_size) break;
    }
  }
}

std::uint32_t BalancerTable::ring_lookup(std::uint64_t key, Availability available) const noexcept {
  if (!available.any(size())) return kNoEndpoint;
  const std::size_t n = ring_hashes_.size();
  // Branch-free lower bound: the comparisons of a random key are
  // unpredictable, and a conditional move costs less than a mispredict.
  const std::uint64_t* base = ring_hashes_.data();
  for (std::size_t len = n; len > 1;) {
    const std::size_t half = len / 2;
    base = base[half] < key ? base + half : base;
    len -= half;
  }
  std::size_t i = static_cast<std::size_t>(base - ring_hashes_.data()) + (*base < key ? 1 : 0);
  if (i == n) i = 0;
  // Every endpoint has a point, and one is available: the walk ends.
  while (!available.test(ring_endpoints_[i])) {
    if (++i == n) i = 0;
  }
  return ring_endpoints_[i];
}

std::uint32_t BalancerTable::maglev_lookup(std::uint64_t key,
                                           Availability available) const noexcept {
  const auto n = static_cast<std::uint32_t>(maglev_.size());
  std::uint32_t slot = fast_range(key, n);
  if (available.all()) return maglev_[slot];
  if (!available.any(size())) return kNoEndpoint;
  // Every endpoint claimed a slot on the first round: the walk ends.
  while (!available.test(maglev_[slot])) {
    if (++slot == n) slot = 0;
  }
  return maglev_[slot];
}

double BalancerTable::draw_probability(std::uint32_t endpoint) const noexcept {
  constexpr double kTwo32 = 4294967296.0;
  double p = 0;
  for (std::size_t bucket = 0; bucket < alias_.size(); ++bucket) {
    const double keep = alias_[bucket].keep / kTwo32;
    if (bucket == endpoint) p += keep;
    if (alias_[bucket].other == endpoint) p += 1 - keep;
  }
  return p / static_cast<double>(alias_.size());
}

// ---- SplitMix64, Balancer ---------------------------------------------------

std::uint32_t SplitMix64::below(std::uint32_t bound) noexcept {
  std::uint64_t m = ((*this)() >> 32) * bound;
  auto low = static_cast<std::uint32_t>(m);
  if (low < bound) {
    const std::uint32_t threshold = -bound % bound;
    while (low < threshold) {
      m = ((*this)() >> 32) * bound;
      low = static_cast<std::uint32_t>(m);
    }
  }
  return static_cast<std::uint32_t>(m >> 32);
}

Balancer::Balancer(const BalancerTable& table, std::uint64_t seed)
    : table_(&table), rng_(seed), in_flight_(table.size(), 0) {
  if (table.policy() == LbPolicy::kRoundRobin) current_.assign(table.size(), 0);
}

void Balancer::request_finished(std::uint32_t endpoint) noexcept {
  assert(in_flight_[endpoint] > 0 && "request_finished without request_started");
  --in_flight_[endpoint];
}

std::uint32_t Balancer::pick(Availability available, std::uint64_t key) noexcept {
  switch (table_->policy()) {
    case LbPolicy::kRoundRobin:
      return pick_round_robin(available);
    case LbPolicy::kLeastRequest:
      return pick_least_request(available);
    case LbPolicy::kRingHash:
      return table_->ring_lookup(key, available);
    case LbPolicy::kMaglev:
      return table_->maglev_lookup(key, available);
    case LbPolicy::kRandom:
      return pick_weighted_random(available);
  }
  return kNoEndpoint;
}

// nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every
// available endpoint's current weight grows by its weight, the largest wins
// and gives back the total. Unavailable endpoints sit out and keep their
// current weight, so the rest share exactly their own total.
std::uint32_t Balancer::pick_round_robin(Availability available) noexcept {
  const std::uint32_t n = table_->size();
  std::int32_t total = 0;
  std::uint32_t best = kNoEndpoint;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!available.test(i)) continue;
    const auto weight = static_cast<std::int32_t>(table_->weight(i));
    current_[i] += weight;
    total += weight;
    if (best == kNoEndpoint || current_[i] > current_[best]) best = i;
  }
  if (best != kNoEndpoint) current_[best] -= total;
  return best;
}

// A weighted draw among the available endpoints. Draws from the whole table
// and redraws on an unavailable endpoint (exact, and constant time while most
// are available); after a few misses, one exact pass over the available ones.
std::uint32_t Balancer::pick_weighted_random(Availability available) noexcept {
  const BalancerTable& t = *table_;
  if (available.all()) return t.draw(rng_());
  constexpr int kRedraws = 4;
  for (int i = 0; i < kRedraws; ++i) {
    const std::uint32_t e = t.draw(rng_());
    if (available.test(e)) return e;
  }
  std::uint32_t available_weight = 0;
  for (std::uint32_t e = 0; e < t.size(); ++e) {
    if (available.test(e)) available_weight += t.weight(e);
  }
  if (available_weight == 0) return kNoEndpoint;
  std::uint32_t r = rng_.below(available_weight);
  for (std::uint32_t e = 0;; ++e) {
    if (!available.test(e)) continue;
    if (r < t.weight(e)) return e;
    r -= t.weight(e);
  }
}

// Power of two choices. Both candidates are drawn by weight; the one with
// fewer requests in flight per unit of weight wins, ties to the first. So an
// idle cluster is balanced exactly by weight (every comparison ties), and a
// loaded one tends to in-flight counts proportional to weight. Envoy's
// weight / (in_flight + 1) would instead favour heavy endpoints twice when
// idle (once in the draw, once in the score).
std::uint32_t Balancer::pick_least_request(Availability available) noexcept {
  const std::uint32_t first = pick_weighted_random(available);
  if (first == kNoEndpoint) return kNoEndpoint;
  const std::uint32_t second = pick_weighted_random(available);
  const std::uint64_t first_load = std::uint64_t{in_flight_[first]} * table_->weight(second);
  const std::uint64_t second_load = std::uint64_t{in_flight_[second]} * table_->weight(first);
  return second_load < first_load ? second : first;
}

// ---- hash_on ----------------------------------------------------------------

std::optional<HashOn> HashOn::parse(std::string_view text) {
  if (text == "client_ip") return HashOn{Source::kClientIp, {}};
  if (text == "path") return HashOn{Source::kPath, {}};
  constexpr std::string_view kHeader = "header:";
  if (text.starts_with(kHeader) && is_token(text.substr(kHeader.size()))) {
    return HashOn{Source::kHeader, std::string(text.substr(kHeader.size()))};
  }
  return std::nullopt;
}

std::uint64_t hash_key(std::string_view bytes) noexcept {
  return XXH3_64bits(bytes.data(), bytes.size());
}

std::uint64_t hash_client_ip(const sockaddr* address) noexcept {
  if (address == nullptr) return hash_key({});
  if (address->sa_family == AF_INET) {
    in_addr ip;
    std::memcpy(&ip, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, sizeof ip);
    return XXH3_64bits(&ip, sizeof ip);
  }
  if (address->sa_family == AF_INET6) {
    in6_addr ip;
    std::memcpy(&ip, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, sizeof ip);
    // ::ffff:a.b.c.d is the IPv4 client a dual-stack listener saw.
    if (IN6_IS_ADDR_V4MAPPED(&ip)) return XXH3_64bits(ip.s6_addr + 12, 4);
    return XXH3_64bits(&ip, sizeof ip);
  }
  return hash_key({});
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
