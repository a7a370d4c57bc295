// Tests for the http1 writer: exact bytes for start lines, fields, framing,
// chunks and 100 Continue; and what it writes parses back (request and
// response mode) to what was written.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "http1/writer.hpp"
#include "http1_driver.hpp"

namespace {

namespace http1 = portico::detail::http1;

TEST(Http1WriterTest, StatusLines) {
  std::string out;
  http1::write_status_line(out, 200, "ignored for 200");
  http1::write_status_line(out, 404, "Not Found");
  http1::write_status_line(out, 100, "Continue");
  http1::write_status_line(out, 999, "Odd");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nHTTP/1.1 404 Not Found\r\nHTTP/1.1 100 Continue\r\nHTTP/1.1 999 Odd\r\n");
}

TEST(Http1WriterTest, FramingFieldsAndChunks) {
  std::string out;
  http1::write_framing(out, http1::Framing::kLength, 0);
  http1::write_framing(out, http1::Framing::kLength, 18446744073709551615ull);
  http1::write_framing(out, http1::Framing::kChunked, 0);
  http1::write_framing(out, http1::Framing::kNone, 5);
  EXPECT_EQ(out, "Content-Length: 0\r\nContent-Length: 18446744073709551615\r\nTransfer-Encoding: chunked\r\n");
  out.clear();
  http1::write_chunk(out, "");
  http1::write_chunk(out, "hello");
  http1::write_chunk(out, std::string(255, 'x'));
  http1::write_last_chunk(out);
  EXPECT_EQ(out, "5\r\nhello\r\nff\r\n" + std::string(255, 'x') + "\r\n0\r\n\r\n");
  out.clear();
  http1::write_continue(out);
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(Http1WriterTest, WrittenRequestParsesBack) {
  std::string out;
  http1::write_request_line(out, "PUT", "/a/b?c=d");
  http1::write_field(out, "Host", "upstream:9000");
  http1::write_field(out, "X-Id", "42");
  http1::write_framing(out, http1::Framing::kChunked, 0);
  http1::end_head(out);
  http1::write_chunk(out, "abc");
  http1::write_chunk(out, "defg");
  http1::write_last_chunk(out);
  const auto outcome = http1::testing::drive(out, {});
  ASSERT_EQ(outcome.error_status, 0) << outcome.error_reason;
  ASSERT_EQ(outcome.messages.size(), 1u);
  EXPECT_EQ(outcome.messages[0].method, "PUT");
  EXPECT_EQ(outcome.messages[0].target, "/a/b?c=d");
  EXPECT_EQ(outcome.messages[0].host, "upstream:9000");
  EXPECT_EQ(outcome.messages[0].body, "abcdefg");
}

TEST(Http1WriterTest, WrittenResponseParsesBack) {
  std::string out;
  http1::write_status_line(out, 201, "Created");
  http1::write_field(out, "Location", "/x");
  http1::write_framing(out, http1::Framing::kLength, 2);
  http1::end_head(out);
  out += "ok";
  http1::testing::DriveOptions options;
  options.mode = http1::Mode::kResponse;
  const auto outcome = http1::testing::drive(out, {}, options);
  ASSERT_EQ(outcome.error_status, 0) << outcome.error_reason;
  ASSERT_EQ(outcome.messages.size(), 1u);
  EXPECT_EQ(outcome.messages[0].status, 201);
  EXPECT_EQ(outcome.messages[0].body, "ok");
}

}  // namespace
