// Proves that the per-request forwarding work allocates nothing after
// warm-up: the global operator new is replaced by one that counts, and
// request heads, response heads and path normalisation run many times
// between two readings of the counter.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "counting_new.hpp"
#include "gateway/forward.hpp"
#include "http1/parser.hpp"
#include "http1/target.hpp"
#include "net/output_buffer.hpp"

namespace {

namespace gw = portico::detail::gateway;
namespace http1 = portico::detail::http1;

TEST(GatewayForwardAllocTest, ForwardingAllocatesNothingAfterWarmUp) {
  std::string request =
      "GET /api/./users/%2e%2e/users/42?tab=orders HTTP/1.1\r\nHost: shop.example\r\n"
      "User-Agent: Mozilla/5.0\r\nAccept: text/html\r\nAccept-Language: en\r\n"
      "Accept-Encoding: gzip, br\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
      "Cookie: session=abc\r\nX-Forwarded-For: 10.1.1.1\r\nVia: 1.0 edge\r\n\r\n";
  std::string response =
      "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nContent-Type: text/html\r\n"
      "X-Hop: 2\r\nContent-Length: 10\r\n\r\n";
  const gw::FieldValue add[] = {{"X-Gateway", "portico"}};
  const std::string_view remove[] = {"Cookie"};

  http1::Parser request_parser;
  http1::Parser response_parser;
  portico::detail::OutputBuffer out(64);  // grows during warm-up only
  std::string scratch;
  const std::string_view clean = "/api/users/42/orders?since=2024-01-01";
  std::size_t bytes = 0;
  const auto one_exchange = [&](bool trusted) {
    request_parser.reset(http1::Mode::kRequest, nullptr);
    ASSERT_EQ(
        request_parser.execute(request.data(), 0, static_cast<std::uint32_t>(request.size())).event,
        http1::Event::kMessage);
    const auto target =
        http1::normalize_target(request_parser.target().view(request.data()), scratch);
    ASSERT_TRUE(target.has_value());
    ASSERT_TRUE(http1::normalize_target(clean, scratch).has_value());
    gw::RequestForwarding how;
    how.client_address = "192.0.2.7";
    how.trusted_peer = trusted;
    how.edits = {add, remove};
    gw::RequestIds ids;
    out.clear();
    gw::write_request_head(out,
                           gw::ClientRequest::from(request_parser, request.data(),
                                                   http1::strip_prefix(*target, "/api")),
                           how, ids);
    bytes += out.size();

    response_parser.reset(http1::Mode::kResponse, nullptr);
    ASSERT_NE(
        response_parser.execute(response.data(), 0, static_cast<std::uint32_t>(response.size()))
            .event,
        http1::Event::kError);
    gw::ResponseForwarding back;
    back.date_line = "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n";
    back.request_id = ids.request_id();
    back.edits = {add, remove};
    out.clear();
    gw::write_response_head(out,
                            gw::UpstreamResponse::from(response_parser, response.data(),
                                                       gw::status_reason(response), false),
                            back);
    bytes += out.size();
  };
  const std::size_t start = portico::testing::allocations();
  for (int i = 0; i < 10; ++i) one_exchange(i % 2 == 0);  // warm-up: buffers reach their size
  // The counter sees this code's allocations: the parsers' field lists,
  // the scratch string and the output buffer grew during warm-up.
  ASSERT_GT(portico::testing::allocations(), start);
  const std::size_t before = portico::testing::allocations();
  for (int i = 0; i < 10000; ++i) one_exchange(i % 2 == 0);
  const std::size_t after = portico::testing::allocations();
  EXPECT_EQ(after - before, 0u);
  EXPECT_GT(bytes, 0u);
}

}  // namespace
