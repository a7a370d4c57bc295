// tests/integration/local_replies_test.cpp — the answers the server writes
// itself carry an ErrorLabel, and ServerStats counts them by label
// (src/server/local_replies.{hpp,cpp}).
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

#include "portico/server.hpp"
#include "test_client.hpp"

namespace portico::testing {
namespace {

TEST(LocalRepliesTest, LabelNamesAreTheGatewaysLabels) {
  struct Case {
    ErrorLabel label;
    std::string_view name;
  };
  const Case cases[] = {
      {ErrorLabel::kNone, "none"},
      {ErrorLabel::kRouteNotFound, "route_not_found"},
      {ErrorLabel::kMethodNotAllowed, "method_not_allowed"},
      {ErrorLabel::kBadRequest, "bad_request"},
      {ErrorLabel::kTooLarge, "too_large"},
      {ErrorLabel::kClientTimeout, "client_timeout"},
      {ErrorLabel::kInternalError, "internal_error"},
      {ErrorLabel::kOverflow, "overflow"},
      {ErrorLabel::kUpstreamConnectFailure, "upstream_connect_failure"},
      {ErrorLabel::kUpstreamReset, "upstream_reset"},
      {ErrorLabel::kUpstreamProtocolError, "upstream_protocol_error"},
      {ErrorLabel::kUpstreamTimeout, "upstream_timeout"},
      {ErrorLabel::kNoHealthyUpstream, "no_healthy_upstream"},
      {ErrorLabel::kCircuitOpen, "circuit_open"},
  };
  static_assert(std::size(cases) == kErrorLabelCount);
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(cases[i].label), i);
    EXPECT_EQ(label_name(cases[i].label), cases[i].name);
    names.insert(label_name(cases[i].label));
  }
  EXPECT_EQ(names.size(), kErrorLabelCount);
}

class LocalRepliesServerTest : public ServerFixture {};

TEST_F(LocalRepliesServerTest, StatsCountEachLocalReplyByLabel) {
  ServerOptions options;
  options.threads = 1;  // one reactor: each count is stored before its answer is sent
  start_server(std::move(options), [](Server& server) {
    server.get("/users/:id", [](Request&, Response& res) { res.text("user"); });
    server.get("/boom", [](Request&, Response&) { throw std::runtime_error("boom"); });
  });
  TestClient client(port());
  const auto status_of = [&](std::string_view method, std::string_view target) {
    const ReadResult result = client.request(request_bytes(method, target), method == "HEAD");
    EXPECT_TRUE(result.ok()) << method << ' ' << target << ": " << result.error;
    return result.response.status;
  };
  EXPECT_EQ(status_of("GET", "/users/1"), 200);  // a handler's answer: not counted
  EXPECT_EQ(status_of("GET", "/nowhere"), 404);
  EXPECT_EQ(status_of("DELETE", "/users/1"), 405);
  EXPECT_EQ(status_of("OPTIONS", "/users/1"), 200);
  EXPECT_EQ(status_of("GET", "/users/1/"), 301);
  EXPECT_EQ(status_of("GET", "/boom"), 500);
  TestClient bad(port());
  const ReadResult refused = bad.request("NOT HTTP\r\n\r\n");
  ASSERT_TRUE(refused.ok()) << refused.error;
  EXPECT_EQ(refused.response.status, 400);

  const ServerStats stats = server().stats();
  EXPECT_EQ(stats.replies(ErrorLabel::kRouteNotFound), 1u);
  EXPECT_EQ(stats.replies(ErrorLabel::kMethodNotAllowed), 1u);
  EXPECT_EQ(stats.replies(ErrorLabel::kNone), 2u);  // OPTIONS and the redirect
  EXPECT_EQ(stats.replies(ErrorLabel::kInternalError), 1u);
  EXPECT_EQ(stats.replies(ErrorLabel::kBadRequest), 1u);
  EXPECT_EQ(stats.replies(ErrorLabel::kTooLarge), 0u);
  EXPECT_EQ(stats.replies(ErrorLabel::kOverflow), 0u);
  // The existing counters count as they did.
  EXPECT_EQ(stats.responses_4xx, 3u);
  EXPECT_EQ(stats.responses_5xx, 1u);
  EXPECT_EQ(stats.bad_requests, 1u);
}

}  // namespace
}  // namespace portico::testing
