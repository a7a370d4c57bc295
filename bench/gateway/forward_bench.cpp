// The forwarding rules' cost per request: the upstream request head of a
// typical browser request (8 fields; and with the client's own X-Request-Id
// and traceparent, so no ids are generated), the client response head, and the
// normalisation of a clean path (the common case: one scan, no copy).
// Heads are written into the reactor's OutputBuffer, cleared per iteration.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "gateway/forward.hpp"
#include "http1/parser.hpp"
#include "http1/target.hpp"
#include "net/output_buffer.hpp"

namespace {

namespace gw = portico::detail::gateway;
namespace http1 = portico::detail::http1;

std::string browser_request() {
  return "GET /api/users/42/orders?since=2024-01-01 HTTP/1.1\r\n"
         "Host: shop.example.com\r\n"
         "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
         "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
         "Accept-Language: en-GB,en;q=0.5\r\n"
         "Accept-Encoding: gzip, deflate, br, zstd\r\n"
         "Connection: keep-alive\r\n"
         "Cookie: session=6f1c3a9be0d24f7f; theme=dark\r\n"
         "Referer: https://shop.example.com/account\r\n\r\n";
}

void BM_RequestHead(benchmark::State& state) {
  std::string request = browser_request();
  http1::Parser parser;
  parser.reset(http1::Mode::kRequest, nullptr);
  parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size()));
  std::string scratch;
  const auto target = http1::normalize_target(parser.target().view(request.data()), scratch);
  const gw::ClientRequest client =
      gw::ClientRequest::from(parser, request.data(), http1::strip_prefix(*target, "/api"));
  gw::RequestForwarding how;
  how.client_address = "203.0.113.9";
  portico::detail::OutputBuffer out(4096);
  for (auto _ : state) {
    out.clear();
    gw::RequestIds ids;
    gw::write_request_head(out, client, how, ids);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["head_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_RequestHead);

// The same request from a client (or a proxy in front) that sent a sane
// X-Request-Id and a valid traceparent: no ids to generate, so what is
// left is the head writing itself.
void BM_RequestHeadWithIds(benchmark::State& state) {
  std::string request = browser_request();
  request.insert(request.size() - 2,
                 "X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n"
                 "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n");
  http1::Parser parser;
  parser.reset(http1::Mode::kRequest, nullptr);
  parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size()));
  std::string scratch;
  const auto target = http1::normalize_target(parser.target().view(request.data()), scratch);
  const gw::ClientRequest client =
      gw::ClientRequest::from(parser, request.data(), http1::strip_prefix(*target, "/api"));
  gw::RequestForwarding how;
  how.client_address = "203.0.113.9";
  portico::detail::OutputBuffer out(4096);
  for (auto _ : state) {
    out.clear();
    gw::RequestIds ids;
    gw::write_request_head(out, client, how, ids);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["head_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_RequestHeadWithIds);

void BM_ResponseHead(benchmark::State& state) {
  std::string response =
      "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
      "Content-Type: application/json\r\nContent-Length: 512\r\nConnection: keep-alive\r\n"
      "Cache-Control: no-cache\r\nETag: \"5f3c-1a2b\"\r\n\r\n";
  http1::Parser parser;
  parser.reset(http1::Mode::kResponse, nullptr);
  parser.execute(response.data(), 0, static_cast<std::uint32_t>(response.size()));
  const auto upstream =
      gw::UpstreamResponse::from(parser, response.data(), gw::status_reason(response), false);
  gw::ResponseForwarding how;
  how.date_line = "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n";
  how.request_id = "0af7651916cd43dd8448eb211c80319c";
  portico::detail::OutputBuffer out(4096);
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(gw::write_response_head(out, upstream, how));
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_ResponseHead);

void BM_NormalizeCleanPath(benchmark::State& state) {
  const std::string target = "/api/users/42/orders?since=2024-01-01&page=2";
  std::string scratch;
  for (auto _ : state) {
    std::string_view t = target;
    benchmark::DoNotOptimize(t);
    benchmark::DoNotOptimize(http1::normalize_target(t, scratch));
  }
}
BENCHMARK(BM_NormalizeCleanPath);

void BM_NormalizeDottedPath(benchmark::State& state) {
  const std::string target = "/api/./users/%2e%2e/users/42/orders?since=2024-01-01";
  std::string scratch;
  for (auto _ : state) {
    std::string_view t = target;
    benchmark::DoNotOptimize(t);
    benchmark::DoNotOptimize(http1::normalize_target(t, scratch));
  }
}
BENCHMARK(BM_NormalizeDottedPath);

}  // namespace

BENCHMARK_MAIN();
