// GatewayConfig: the YAML loader's errors (exact text, line and column), the
// values of a full config, the defaults, JSON, notices, validate() for configs
// built in code, and Cidr.
#include "portico/gateway_config.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "gateway/config_loader.hpp"

namespace {

using namespace std::chrono_literals;
using portico::ConfigResult;
using portico::GatewayConfig;

// No DNS in unit tests: "localhost" and "two.test" resolve, nothing else.
std::vector<std::string> fake_resolve(const std::string& host, std::string& error) {
  if (host == "localhost") return {"127.0.0.1", "::1"};
  if (host == "two.test") return {"192.0.2.1", "192.0.2.2"};
  error = "no such name";
  return {};
}

ConfigResult parse(std::string_view text) {
  return portico::detail::parse_gateway_config(text, "t.yaml", fake_resolve);
}

std::vector<std::string> errors_of(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& e : parse(text).errors) out.push_back(e.to_string());
  return out;
}

// A valid cluster and route to put a broken line beside.
constexpr std::string_view kCluster =
    "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n";

struct ErrorRow {
  const char* rule;
  std::string yaml;
  std::vector<std::string> errors;
};

std::string with_cluster(std::string_view rest) {
  return std::string(kCluster) + std::string(rest);
}

TEST(GatewayConfigTest, ErrorsHaveLineColumnAndExactText) {
  const std::vector<ErrorRow> rows = {
      {"unknown top-level key",
       "lisen: {}\n",
       {"t.yaml:1:1: unknown key \"lisen\" in the top level (expected listen, admin, server, "
        "trusted_proxies, access_log, via, clusters or routes)"}},
      {"unknown nested key",
       "listen: {host: 127.0.0.1, prot: 1}\n",
       {"t.yaml:1:27: unknown key \"prot\" in listen (expected host, port or threads)"}},
      {"duplicate key", "via: a\nvia: b\n", {"t.yaml:2:1: duplicate key \"via\" (first at 1:1)"}},
      {"duplicate cluster name",
       with_cluster("  a:\n    endpoints: [{address: \"127.0.0.1:2\"}]\n"),
       {"t.yaml:4:3: duplicate key \"a\" (first at 2:3)"}},
      {"mapping expected",
       "listen: 8080\n",
       {"t.yaml:1:9: listen: expected a mapping, got \"8080\""}},
      {"list expected",
       "trusted_proxies: 10.0.0.0/8\n",
       {"t.yaml:1:18: trusted_proxies: expected a list, got \"10.0.0.0/8\""}},
      {"string expected", "via: [a]\n", {"t.yaml:1:6: via: expected a string, got a list"}},
      {"a quoted number is a string",
       "listen: {port: \"8080\"}\n",
       {"t.yaml:1:16: port: expected an integer from 0 to 65535, got the quoted string \"8080\""}},
      {"port out of range",
       "admin: {port: 65536}\n",
       {"t.yaml:1:15: port: expected an integer from 0 to 65535, got \"65536\""}},
      {"no signs or leading zeros",
       "listen: {threads: 010, port: -1}\n",
       {"t.yaml:1:19: threads: expected an integer from 0 to 1024, got \"010\"",
        "t.yaml:1:30: port: expected an integer from 0 to 65535, got \"-1\""}},
      {"YAML 1.1 booleans are strings",
       "listen: {threads: on}\naccess_log: {format: off}\n",
       {"t.yaml:1:19: threads: expected an integer from 0 to 1024, got \"on\"",
        "t.yaml:2:22: format: expected none, common or json, got \"off\""}},
      {"weight range",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\", weight: 0},\n"
       "                {address: \"127.0.0.1:2\", weight: 1001}]\n",
       {"t.yaml:3:50: weight: expected an integer from 1 to 1000, got \"0\"",
        "t.yaml:4:50: weight: expected an integer from 1 to 1000, got \"1001\""}},
      {"status range",
       with_cluster("routes:\n  - {path: /x, respond: {status: 600}}\n"),
       {"t.yaml:5:34: status: expected an integer from 200 to 599, got \"600\""}},
      {"a 204 has no body",
       "routes:\n  - {path: /x, respond: {status: 204, body: x}}\n",
       {"t.yaml:2:45: body: a 204 response has no body"}},
      {"threshold range",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    circuit_breaker: {error_rate: {threshold: 1.5}}\n",
       {"t.yaml:4:47: threshold: expected a number above 0 and at most 1, got \"1.5\""}},
      {"percent range",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    outlier_detection: {max_ejection_percent: 101}\n",
       {"t.yaml:4:47: max_ejection_percent: expected an integer from 0 to 100, got \"101\""}},
      {"max_ejection below base_ejection",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    outlier_detection: {base_ejection: 1m, max_ejection: 30s}\n",
       {"t.yaml:4:58: max_ejection (30s) is shorter than base_ejection (60s)"}},
      {"base_ejection past the default max_ejection",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    outlier_detection: {base_ejection: 400s}\n",
       {"t.yaml:4:40: max_ejection (300s) is shorter than base_ejection (400s)"}},
      {"duration without unit",
       "server: {header_timeout: 5}\n",
       {"t.yaml:1:26: header_timeout: expected a duration: an integer and ms, s, m or h "
        "(250ms, 5s, 2m, 1h), or 0, got \"5\""}},
      {"duration fractions and signs",
       "server: {body_timeout: 1.5s, idle_timeout: -1s}\n",
       {"t.yaml:1:24: body_timeout: expected a duration: an integer and ms, s, m or h "
        "(250ms, 5s, 2m, 1h), or 0, got \"1.5s\"",
        "t.yaml:1:44: idle_timeout: expected a duration: an integer and ms, s, m or h "
        "(250ms, 5s, 2m, 1h), or 0, got \"-1s\""}},
      {"0 alone disables, 0s is a typo",
       "server: {write_timeout: 0s}\n",
       {"t.yaml:1:25: write_timeout: write 0 alone to disable, got \"0s\""}},
      {"0 where 0 cannot disable",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n    connect_timeout: 0\n",
       {"t.yaml:4:22: connect_timeout: must be more than 0, got \"0\""}},
      {"empty path and cluster",
       "routes:\n  - {path: \"\", cluster: \"\"}\n",
       {"t.yaml:2:12: path: expected a route pattern, got the quoted string \"\"",
        "t.yaml:2:25: cluster: expected a cluster name, got the quoted string \"\""}},
      {"missing path",
       with_cluster("routes:\n  - {cluster: a}\n"),
       {"t.yaml:5:5: missing required key \"path\""}},
      {"missing endpoints",
       "clusters:\n  a: {lb: random}\n",
       {"t.yaml:2:6: missing required key \"endpoints\""}},
      {"no endpoint",
       "clusters:\n  a: {endpoints: []}\n",
       {"t.yaml:2:18: endpoints: a cluster needs at least one endpoint"}},
      {"missing address",
       "clusters:\n  a: {endpoints: [{weight: 2}]}\n",
       {"t.yaml:2:19: missing required key \"address\""}},
      {"no target",
       "routes:\n  - {path: /x}\n",
       {"t.yaml:2:5: a route needs one of cluster, split or respond"}},
      {"two targets",
       with_cluster("routes:\n  - {path: /x, cluster: a, respond: {status: 200}}\n"),
       {"t.yaml:5:28: respond: a route takes exactly one of cluster, split or respond (it has "
        "cluster)"}},
      {"unknown cluster",
       with_cluster("routes:\n  - {path: /x, cluster: b}\n"),
       {"t.yaml:5:25: no cluster named \"b\""}},
      {"unknown split cluster",
       with_cluster("routes:\n  - path: /x\n    split: [{cluster: a, weight: 9}, {cluster: c}]\n"),
       {"t.yaml:6:48: no cluster named \"c\""}},
      {"unknown canary cluster",
       with_cluster("routes:\n  - path: /x\n    cluster: a\n"
                    "    canary: [{header: X-V, value: \"2\", cluster: z}]\n"),
       {"t.yaml:7:49: no cluster named \"z\""}},
      {"invalid pattern, at its byte",
       with_cluster("routes:\n  - path: /x/{id\n    cluster: a\n"),
       {"t.yaml:5:14: pattern \"/x/{id\": unclosed '{' (at byte 3)"}},
      {"conflicting routes",
       with_cluster("routes:\n  - {path: /u/:id, cluster: a}\n  - {path: /u/:name, cluster: a}\n"),
       {"t.yaml:6:12: pattern \"/u/:name\": duplicate route: ANY \"/u/:id\" was added before "
        "(same method, same pattern up to parameter names)"}},
      {"same path, other hosts: no conflict",
       with_cluster(
           "routes:\n  - {path: /u, cluster: a}\n  - {path: /u, hosts: [a.test], cluster: a}\n"
           "  - {path: /u, hosts: [b.test], cluster: a}\n"),
       {}},
      {"any-method and GET on one host: no conflict",
       with_cluster("routes:\n  - {path: /u, hosts: [a.test], cluster: a}\n"
                    "  - {path: /u, hosts: [A.test], methods: [GET], cluster: a}\n"),
       {}},
      {"same method twice",
       with_cluster("routes:\n  - {path: /u, methods: [GET], cluster: a}\n"
                    "  - {path: /u, methods: [GET], cluster: a}\n"),
       {"t.yaml:6:12: pattern \"/u\": duplicate route: GET \"/u\" was added before "
        "(same method, same pattern up to parameter names)"}},
      {"methods are tokens, case-sensitive",
       with_cluster("routes:\n  - {path: /x, cluster: a, methods: [get, \"G T\", PURGE]}\n"),
       {"t.yaml:5:38: methods: \"get\" is not GET (methods are case-sensitive)",
        "t.yaml:5:43: methods: expected a method (an HTTP token such as GET), got the quoted "
        "string \"G T\""}},
      {"header names are tokens",
       with_cluster("routes:\n  - path: /x\n    cluster: a\n"
                    "    request_headers: {add: {\"X Y\": v}, remove: [\"a:b\"]}\n"
                    "    canary: [{header: \"X:Y\", value: v, cluster: a}]\n"),
       {"t.yaml:7:29: add: \"X Y\" is not a header name (an HTTP token)",
        "t.yaml:7:49: remove: expected a header name (an HTTP token), got the quoted string "
        "\"a:b\"",
        "t.yaml:8:23: header: expected a header name (an HTTP token), got the quoted string "
        "\"X:Y\""}},
      {"header values have no CR or LF",
       with_cluster("routes:\n  - path: /x\n    cluster: a\n"
                    "    response_headers: {add: {X-A: \"a\\r\\nb\"}}\n"),
       {"t.yaml:7:35: X-A: expected a header value (no CR, LF or NUL), got the quoted string "
        "\"a\r\nb\""}},
      {"hash_on values",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    lb: ring_hash\n    hash_on: \"header:\"\n",
       {"t.yaml:5:14: hash_on: expected client_ip, path or header:NAME, got the quoted string "
        "\"header:\""}},
      {"hash_on with another lb is accepted (GATEWAY.md's example has it)",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    lb: round_robin\n    hash_on: client_ip\n",
       {}},
      {"lb names",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n    lb: fastest\n",
       {"t.yaml:4:9: lb: expected round_robin, least_request, ring_hash, maglev or random, got "
        "\"fastest\""}},
      {"retry_on names",
       "clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n"
       "    retry: {retry_on: [reset, 500]}\n",
       {"t.yaml:4:31: retry_on: expected connect_failure, reset, timeout, 502, 503 or 504, got "
        "\"500\""}},
      {"endpoint address shapes",
       "clusters:\n  a:\n    endpoints:\n      - {address: \"127.0.0.1\"}\n      - {address: "
       "\"[::1:80\"}\n"
       "      - {address: \"[nope]:80\"}\n      - {address: \"a b:80\"}\n      - {address: "
       "\"h:0\"}\n",
       {"t.yaml:4:19: address: endpoint address \"127.0.0.1\" is not host:port or [IPv6]:port "
        "(port 1-65535)",
        "t.yaml:5:19: address: endpoint address \"[::1:80\" is not host:port or [IPv6]:port (port "
        "1-65535)",
        "t.yaml:6:19: address: endpoint address \"[nope]:80\": not an IPv6 address in brackets",
        "t.yaml:7:19: address: endpoint address \"a b:80\": \"a b\" is neither an IPv4 address nor "
        "a host name (IPv6 goes in brackets)",
        "t.yaml:8:19: address: endpoint address \"h:0\" is not host:port or [IPv6]:port (port "
        "1-65535)"}},
      {"a name that does not resolve",
       "clusters:\n  a:\n    endpoints: [{address: \"nowhere.test:80\"}]\n",
       {"t.yaml:3:27: address: cannot resolve \"nowhere.test\": no such name"}},
      {"CIDRs",
       "trusted_proxies: [10.0.0.1/8, \"::1/129\", 10.0.0.0/8, nope]\n",
       {"t.yaml:1:19: trusted_proxies: \"10.0.0.1/8\" is not an address block (10.0.0.0/8, "
        "fd00::/8, "
        "192.0.2.7) with the bits past its prefix zero",
        "t.yaml:1:31: trusted_proxies: \"::1/129\" is not an address block (10.0.0.0/8, fd00::/8, "
        "192.0.2.7) with the bits past its prefix zero",
        "t.yaml:1:54: trusted_proxies: \"nope\" is not an address block (10.0.0.0/8, fd00::/8, "
        "192.0.2.7) with the bits past its prefix zero"}},
      {"listen host",
       "listen: {host: \"not a host\"}\n",
       {"t.yaml:1:16: host: expected an IP address or a host name, got the quoted string \"not a "
        "host\""}},
      {"hosts entries",
       with_cluster("routes:\n  - {path: /x, cluster: a, hosts: [\"*.ok.test\", \"a*b\"]}\n"),
       {"t.yaml:5:49: hosts: expected a host name, a \"*.\" wildcard or an IP address, got the "
        "quoted string \"a*b\""}},
      {"strip_prefix begins the path",
       with_cluster("routes:\n  - {path: /api/x, cluster: a, strip_prefix: /v1}\n"),
       {"t.yaml:5:46: strip_prefix: \"/v1\" does not begin the path"}},
      {"cluster names",
       "clusters:\n  \"a b\": {endpoints: [{address: \"127.0.0.1:1\"}]}\n",
       {"t.yaml:2:3: cluster name \"a b\": use letters, digits, '-', '_' and '.'"}},
      {"anchors and aliases",
       "listen: &l {port: 1}\nadmin: *l\n",
       {"t.yaml:1:9: anchors are not supported", "t.yaml:2:8: aliases are not supported"}},
      {"tags", "via: !!str x\n", {"t.yaml:1:6: tags are not supported"}},
      {"keys are scalars, reported in file order",
       "{[a]: 1, b: !!str 2}\n",
       {"t.yaml:1:2: a key must be a scalar", "t.yaml:1:13: tags are not supported"}},
      {"one document",
       "via: a\n---\nvia: b\n",
       {"t.yaml:2:1: a config file holds one YAML document"}},
      {"syntax error",
       "listen: {port: 1\n",
       {"t.yaml:2:1: did not find expected ',' or '}' while parsing a flow mapping"}},
      {"every error, not the first",
       "via: [x]\nlisten: {port: x}\nadmin: {port: y}\n",
       {"t.yaml:1:6: via: expected a string, got a list",
        "t.yaml:2:16: port: expected an integer from 0 to 65535, got \"x\"",
        "t.yaml:3:15: port: expected an integer from 0 to 65535, got \"y\""}},
  };
  for (const ErrorRow& row : rows) {
    EXPECT_EQ(errors_of(row.yaml), row.errors) << row.rule << "\n" << row.yaml;
  }
}

TEST(GatewayConfigTest, HostNamesCompareWithoutCase) {
  const auto result =
      parse(with_cluster("routes:\n  - {path: /u, hosts: [a.test], cluster: a}\n"
                         "  - {path: /u, hosts: [A.TEST], cluster: a}\n"));
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 6u);
  EXPECT_NE(result.errors[0].message.find("duplicate route"), std::string::npos);
}

TEST(GatewayConfigTest, FullExampleLandsEveryValue) {
  const ConfigResult result = portico::detail::parse_gateway_config(
      [] {
        std::FILE* f = std::fopen(PORTICO_SOURCE_DIR "/examples/gateway.yaml", "rb");
        std::string text;
        char block[4096];
        std::size_t got = 0;
        while (f != nullptr && (got = std::fread(block, 1, sizeof block, f)) > 0)
          text.append(block, got);
        if (f != nullptr) std::fclose(f);
        return text;
      }(),
      "gateway.yaml", fake_resolve);
  ASSERT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  const GatewayConfig& c = *result.config;

  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 8080);
  EXPECT_EQ(c.listen.threads, 2u);
  ASSERT_TRUE(c.admin);
  EXPECT_EQ(c.admin->host, "127.0.0.1");
  EXPECT_EQ(c.admin->port, 9901);
  EXPECT_EQ(c.server.max_request_line, 8192u);
  EXPECT_EQ(c.server.max_header_bytes, 65536u);
  EXPECT_EQ(c.server.max_header_count, 100u);
  EXPECT_EQ(c.server.max_body_bytes, 10485760u);
  EXPECT_EQ(c.server.max_connections, 65536u);
  EXPECT_EQ(c.server.max_requests_per_connection, 0u);
  EXPECT_EQ(c.server.header_timeout, 10s);
  EXPECT_EQ(c.server.body_timeout, 30s);
  EXPECT_EQ(c.server.idle_timeout, 60s);
  EXPECT_EQ(c.server.write_timeout, 30s);
  EXPECT_EQ(c.server.shutdown_timeout, 10s);
  ASSERT_EQ(c.trusted_proxies.size(), 2u);
  EXPECT_EQ(c.trusted_proxies[0], *portico::Cidr::parse("10.0.0.0/8"));
  EXPECT_TRUE(c.trusted_proxies[1].v6);
  EXPECT_EQ(c.trusted_proxies[1].prefix_length, 8);
  EXPECT_EQ(c.access_log.format, portico::AccessLogConfig::Format::kJson);
  EXPECT_EQ(c.access_log.path, "/dev/stdout");
  EXPECT_EQ(c.via, "portico");

  ASSERT_EQ(c.clusters.size(), 4u);
  const portico::Cluster& users = c.clusters[0];
  EXPECT_EQ(users.name, "users");
  ASSERT_EQ(users.endpoints.size(), 4u);  // localhost resolved to two
  EXPECT_EQ(users.endpoints[0].address, "127.0.0.1:9001");
  EXPECT_EQ(users.endpoints[0].weight, 3u);
  EXPECT_EQ(users.endpoints[0].resolved_from, "");
  EXPECT_EQ(users.endpoints[1].address, "[::1]:9002");
  EXPECT_EQ(users.endpoints[1].weight, 1u);
  EXPECT_EQ(users.endpoints[2].address, "127.0.0.1:9003");
  EXPECT_EQ(users.endpoints[2].resolved_from, "localhost:9003");
  EXPECT_EQ(users.endpoints[3].address, "[::1]:9003");
  EXPECT_EQ(users.lb, portico::LoadBalancer::kRingHash);
  EXPECT_EQ(users.hash_on.kind, portico::HashOn::Kind::kHeader);
  EXPECT_EQ(users.hash_on.header, "X-User-Id");
  EXPECT_EQ(users.connect_timeout, 1s);
  EXPECT_EQ(users.idle_timeout, 60s);
  EXPECT_EQ(users.max_idle_per_endpoint, 64u);
  ASSERT_TRUE(users.health_check);
  EXPECT_EQ(users.health_check->path, "/healthz");
  EXPECT_EQ(users.health_check->interval, 1s);
  EXPECT_EQ(users.health_check->timeout, 500ms);
  EXPECT_EQ(users.health_check->healthy_threshold, 2u);
  EXPECT_EQ(users.health_check->unhealthy_threshold, 2u);
  ASSERT_TRUE(users.outlier_detection);
  EXPECT_EQ(users.outlier_detection->consecutive_5xx, 5u);
  EXPECT_EQ(users.outlier_detection->consecutive_connect_failures, 5u);
  EXPECT_EQ(users.outlier_detection->base_ejection, 30s);
  EXPECT_EQ(users.outlier_detection->max_ejection, 300s);
  EXPECT_EQ(users.outlier_detection->max_ejection_percent, 50u);
  EXPECT_EQ(users.circuit_breaker.max_connections, 1024u);
  EXPECT_EQ(users.circuit_breaker.max_requests, 1024u);
  EXPECT_EQ(users.circuit_breaker.max_pending, 256u);
  EXPECT_EQ(users.circuit_breaker.max_retries, 3u);
  ASSERT_TRUE(users.circuit_breaker.error_rate);
  EXPECT_EQ(users.circuit_breaker.error_rate->threshold, 0.5);
  EXPECT_EQ(users.circuit_breaker.error_rate->min_requests, 20u);
  EXPECT_EQ(users.circuit_breaker.error_rate->window, 10s);
  EXPECT_EQ(users.circuit_breaker.error_rate->open_for, 5s);
  ASSERT_TRUE(users.retry);
  EXPECT_EQ(users.retry->attempts, 2u);
  EXPECT_EQ(users.retry->retry_on, portico::RetryPolicy::kAllConditions);
  EXPECT_EQ(users.retry->per_try_timeout, 2s);
  EXPECT_EQ(users.retry->buffer_bytes, 65536u);
  EXPECT_EQ(users.retry->budget_percent, 20u);
  EXPECT_EQ(users.retry->min_concurrency, 3u);
  EXPECT_EQ(c.clusters[1].name, "users-v2");
  EXPECT_EQ(c.clusters[2].lb, portico::LoadBalancer::kLeastRequest);
  EXPECT_EQ(c.clusters[3].lb, portico::LoadBalancer::kMaglev);
  EXPECT_EQ(c.clusters[3].hash_on.kind, portico::HashOn::Kind::kPath);
  EXPECT_EQ(c.find_cluster("cdn-b"), &c.clusters[3]);
  EXPECT_EQ(c.find_cluster("nope"), nullptr);

  ASSERT_EQ(c.routes.size(), 3u);
  const portico::Route& api = c.routes[0];
  EXPECT_EQ(api.path, "/api/users/:id");
  EXPECT_EQ(api.hosts, (std::vector<std::string>{"api.example.com", "*.example.com"}));
  EXPECT_EQ(api.methods, (std::vector<std::string>{"GET", "PUT"}));
  EXPECT_EQ(api.cluster, "users");
  EXPECT_EQ(api.timeout, 15s);
  ASSERT_TRUE(api.options);
  const portico::RouteExtras& o = *api.options;
  ASSERT_EQ(o.canary.size(), 1u);
  EXPECT_EQ(o.canary[0].header, "X-Release-Version");
  EXPECT_EQ(o.canary[0].value, "v2-beta");
  EXPECT_EQ(o.canary[0].cluster, "users-v2");
  EXPECT_EQ(o.strip_prefix, "/api");
  EXPECT_EQ(o.host_rewrite, "users.internal");
  ASSERT_TRUE(o.retry);
  EXPECT_EQ(o.retry->attempts, 1u);
  EXPECT_EQ(o.retry->retry_on, static_cast<std::uint8_t>(portico::RetryOn::kConnectFailure));
  EXPECT_TRUE(o.retry->retries_on(portico::RetryOn::kConnectFailure));
  EXPECT_FALSE(o.retry->retries_on(portico::RetryOn::k503));
  EXPECT_FALSE(o.retry->per_try_timeout);
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.request_headers.add, (Fields{{"X-Gateway", "portico"}}));
  EXPECT_EQ(o.request_headers.remove, (std::vector<std::string>{"X-Debug"}));
  EXPECT_EQ(o.response_headers.add, (Fields{{"X-Served-By", "portico"}}));
  EXPECT_EQ(o.response_headers.remove, (std::vector<std::string>{"Server"}));
  EXPECT_EQ(api.respond(), nullptr);

  const portico::Route& cdn = c.routes[1];
  EXPECT_EQ(cdn.path, "/static/*rest");
  EXPECT_TRUE(cdn.cluster.empty());
  ASSERT_EQ(cdn.split.size(), 2u);
  EXPECT_EQ(cdn.split[0].cluster, "cdn-a");
  EXPECT_EQ(cdn.split[0].weight, 90u);
  EXPECT_EQ(cdn.split[1].cluster, "cdn-b");
  EXPECT_EQ(cdn.split[1].weight, 10u);
  EXPECT_FALSE(cdn.options);  // nothing out of line

  const portico::DirectResponse* health = c.routes[2].respond();
  ASSERT_NE(health, nullptr);
  EXPECT_EQ(health->status, 200u);
  EXPECT_EQ(health->body, "ok\n");
  EXPECT_EQ(health->content_type, "text/plain");

  EXPECT_TRUE(c.validate().empty());
}

TEST(GatewayConfigTest, DefaultsWhenAbsent) {
  for (const std::string_view empty : {"", "# nothing\n", "{}\n", "---\n"}) {
    const ConfigResult result = parse(empty);
    ASSERT_TRUE(result.ok()) << "[" << empty << "] " << result.errors[0].to_string();
    const GatewayConfig& c = *result.config;
    EXPECT_EQ(c.listen.host, "127.0.0.1");
    EXPECT_EQ(c.listen.port, 8080);
    EXPECT_EQ(c.listen.threads, 1u);
    EXPECT_FALSE(c.admin);
    EXPECT_EQ(c.server.header_timeout, 10s);
    EXPECT_EQ(c.server.max_body_bytes, 0u);
    EXPECT_TRUE(c.trusted_proxies.empty());
    EXPECT_EQ(c.access_log.format, portico::AccessLogConfig::Format::kNone);
    EXPECT_EQ(c.via, "portico");
    EXPECT_TRUE(c.clusters.empty());
    EXPECT_TRUE(c.routes.empty());
  }
  const ConfigResult result =
      parse(with_cluster("admin: {}\nroutes:\n  - {path: /x, cluster: a}\n"
                         "  - {path: /y, respond: {}}\n"));
  ASSERT_TRUE(result.ok());
  const GatewayConfig& c = *result.config;
  ASSERT_TRUE(c.admin);
  EXPECT_EQ(c.admin->port, 9901);
  const portico::Cluster& a = c.clusters[0];
  EXPECT_EQ(a.endpoints[0].weight, 1u);
  EXPECT_EQ(a.lb, portico::LoadBalancer::kRoundRobin);
  EXPECT_EQ(a.hash_on.kind, portico::HashOn::Kind::kClientIp);
  EXPECT_EQ(a.connect_timeout, 1s);
  EXPECT_EQ(a.idle_timeout, 60s);
  EXPECT_EQ(a.max_idle_per_endpoint, 64u);
  EXPECT_FALSE(a.health_check);
  EXPECT_FALSE(a.outlier_detection);
  EXPECT_EQ(a.circuit_breaker.max_requests, 1024u);
  EXPECT_FALSE(a.circuit_breaker.error_rate);
  EXPECT_FALSE(a.retry);
  const portico::Route& x = c.routes[0];
  EXPECT_TRUE(x.hosts.empty());
  EXPECT_TRUE(x.methods.empty());
  EXPECT_EQ(x.timeout, 15s);
  EXPECT_FALSE(x.options);
  const portico::DirectResponse* respond = c.routes[1].respond();
  ASSERT_NE(respond, nullptr);
  EXPECT_EQ(respond->status, 200u);
  EXPECT_EQ(respond->body, "");
  EXPECT_EQ(respond->content_type, "text/plain");
}

TEST(GatewayConfigTest, RetryDefaultsInABlock) {
  const ConfigResult result =
      parse("clusters:\n  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n    retry: {}\n");
  ASSERT_TRUE(result.ok());
  const portico::RetryPolicy& retry = *result.config->clusters[0].retry;
  EXPECT_EQ(retry.attempts, 2u);
  EXPECT_EQ(retry.retry_on, portico::RetryPolicy::kAllConditions);
  EXPECT_FALSE(retry.per_try_timeout);
}

TEST(GatewayConfigTest, StringsStayStrings) {
  const ConfigResult result = parse("via: yes\naccess_log: {path: no}\n");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->via, "yes");
  EXPECT_EQ(result.config->access_log.path, "no");
}

TEST(GatewayConfigTest, JsonLoads) {
  const ConfigResult result = parse(R"({
  "listen": {"host": "::1", "port": 0, "threads": 0},
  "trusted_proxies": ["192.0.2.0/24"],
  "clusters": {"a": {"endpoints": [{"address": "two.test:8000", "weight": 5}]}},
  "routes": [{"path": "/users/:id", "methods": ["GET"], "cluster": "a", "timeout": "0"}]
})");
  ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
  const GatewayConfig& c = *result.config;
  EXPECT_EQ(c.listen.host, "::1");
  EXPECT_EQ(c.listen.port, 0);
  ASSERT_EQ(c.clusters[0].endpoints.size(), 2u);
  EXPECT_EQ(c.clusters[0].endpoints[1].address, "192.0.2.2:8000");
  EXPECT_EQ(c.clusters[0].endpoints[1].weight, 5u);
  EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"GET"}));
  // JSON writes a duration as a string; an integer never comes from one.
  EXPECT_EQ(c.routes[0].timeout, 0s);
  EXPECT_EQ(
      errors_of(R"({"listen": {"port": "80"}})"),
      (std::vector<std::string>{
          "t.yaml:1:21: port: expected an integer from 0 to 65535, got the quoted string \"80\""}));
}

TEST(GatewayConfigTest, EveryResilienceKeyLoadsWithoutNotices) {
  const ConfigResult result = parse(
      "clusters:\n"
      "  a:\n    endpoints: [{address: \"127.0.0.1:1\"}]\n    health_check: {}\n    retry: {}\n"
      "  b:\n    endpoints: [{address: \"127.0.0.1:2\"}]\n    health_check: {}\n"
      "    outlier_detection: {}\n    circuit_breaker: {error_rate: {}}\n"
      "routes:\n  - {path: /x, cluster: a, retry: {}}\n");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.notices.empty());
  ASSERT_EQ(result.config->clusters.size(), 2u);
  EXPECT_TRUE(result.config->clusters[0].retry.has_value());
  EXPECT_TRUE(result.config->clusters[1].circuit_breaker.error_rate.has_value());
  EXPECT_TRUE(parse(kCluster).notices.empty());
}

TEST(GatewayConfigTest, ValidateChecksConfigsBuiltInCode) {
  GatewayConfig config;
  portico::Cluster& users = config.clusters.emplace_back();
  users.name = "users";
  users.endpoints.push_back({"127.0.0.1:9001", 1, {}});
  users.endpoints.push_back({"users.internal:9002", 2000, {}});
  portico::Cluster& empty = config.clusters.emplace_back();
  empty.name = "users";
  portico::Route& a = config.routes.emplace_back();
  a.path = "/u/:id";
  a.cluster = "users";
  portico::Route& b = config.routes.emplace_back();
  b.path = "/u/:name";
  b.cluster = "nope";
  b.options.emplace().canary.push_back({"X-V", "2", "gone"});
  portico::Route& c = config.routes.emplace_back();
  c.path = "/c";
  c.methods = {"GET", "BAD METHOD"};
  c.split = {{"users", 1}};
  c.options.emplace().respond.emplace().status = 700;
  std::vector<std::string> errors;
  for (const auto& e : config.validate()) {
    EXPECT_EQ(e.line, 0u);
    errors.push_back(e.to_string());
  }
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "clusters[0].endpoints[1].weight: must be from 1 to 1000",
                "clusters[1].name: a second cluster named \"users\"",
                "clusters[1].endpoints: a cluster needs at least one endpoint",
                "routes[2].methods: \"BAD METHOD\" is not an HTTP token",
                "routes[2]: a route takes exactly one of cluster, split or respond",
                "routes[2].respond.status: must be from 200 to 599",
                "routes[1].cluster: no cluster named \"nope\"",
                "routes[1].canary[0].cluster: no cluster named \"gone\"",
                "routes[1].path: pattern \"/u/:name\": duplicate route: ANY \"/u/:id\" was added "
                "before (same method, same pattern up to parameter names)"}));
}

TEST(GatewayConfigTest, CopiesAreDeep) {
  GatewayConfig config;
  config.routes.emplace_back().options.emplace().strip_prefix = "/a";
  GatewayConfig copy = config;
  copy.routes[0].options->strip_prefix = "/b";
  EXPECT_EQ(config.routes[0].options->strip_prefix, "/a");
}

TEST(GatewayConfigTest, ResolvesNamesWithGetaddrinfo) {
  const ConfigResult result = GatewayConfig::parse(
      "clusters:\n  a: {endpoints: [{address: \"localhost:80\"}]}\n", "t.yaml");
  ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
  ASSERT_FALSE(result.config->clusters[0].endpoints.empty());
  for (const auto& endpoint : result.config->clusters[0].endpoints) {
    EXPECT_TRUE(endpoint.address == "127.0.0.1:80" || endpoint.address == "[::1]:80")
        << endpoint.address;
    EXPECT_EQ(endpoint.resolved_from, "localhost:80");
  }
}

TEST(GatewayConfigTest, LoadReportsAMissingFile) {
  const ConfigResult result = GatewayConfig::load("/nonexistent/gw.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(),
            "/nonexistent/gw.yaml: cannot read: No such file or directory");
  EXPECT_FALSE(result.config);
}

TEST(CidrTest, ParseAndContains) {
  const auto v4 = portico::Cidr::parse("10.1.0.0/16");
  ASSERT_TRUE(v4);
  const std::array<std::uint8_t, 4> inside{10, 1, 200, 3};
  const std::array<std::uint8_t, 4> outside{10, 2, 0, 1};
  EXPECT_TRUE(v4->contains(inside));
  EXPECT_FALSE(v4->contains(outside));
  std::array<std::uint8_t, 16> mapped{};
  mapped[10] = mapped[11] = 0xff;
  mapped[12] = 10;
  mapped[13] = 1;
  EXPECT_TRUE(v4->contains(mapped));  // ::ffff:10.1.0.0 is an IPv4 peer

  const auto odd = portico::Cidr::parse("192.168.0.128/25");
  ASSERT_TRUE(odd);
  const std::array<std::uint8_t, 4> high{192, 168, 0, 200};
  const std::array<std::uint8_t, 4> low{192, 168, 0, 100};
  EXPECT_TRUE(odd->contains(high));
  EXPECT_FALSE(odd->contains(low));

  const auto v6 = portico::Cidr::parse("fd00::/8");
  ASSERT_TRUE(v6);
  std::array<std::uint8_t, 16> ula{};
  ula[0] = 0xfd;
  ula[15] = 1;
  EXPECT_TRUE(v6->contains(ula));
  EXPECT_FALSE(v6->contains(inside));

  const auto host = portico::Cidr::parse("192.0.2.7");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix_length, 32);
  const auto all = portico::Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(outside));

  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "::/129", "x/8",
                          "", "/8", "10.0.0.0/8/8"}) {
    EXPECT_FALSE(portico::Cidr::parse(bad)) << bad;
  }
}

}  // namespace
