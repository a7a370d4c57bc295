// Proves the llhttp wiring (cmake/PorticoLlhttp.cmake): the library links and
// parses strictly, so the server can build on it.
#include <llhttp.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

struct Seen {
  std::string url;
  std::string body;
  int completed = 0;
};

Seen& seen_of(llhttp_t* parser) { return *static_cast<Seen*>(parser->data); }

int on_url(llhttp_t* parser, const char* at, size_t length) {
  seen_of(parser).url.append(at, length);
  return 0;
}

int on_body(llhttp_t* parser, const char* at, size_t length) {
  seen_of(parser).body.append(at, length);
  return 0;
}

int on_message_complete(llhttp_t* parser) {
  ++seen_of(parser).completed;
  return 0;
}

class LlhttpSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    llhttp_settings_init(&settings_);
    settings_.on_url = on_url;
    settings_.on_body = on_body;
    settings_.on_message_complete = on_message_complete;
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = &seen_;
  }

  llhttp_errno_t feed(std::string_view bytes) {
    return llhttp_execute(&parser_, bytes.data(), bytes.size());
  }

  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  Seen seen_;
};

TEST_F(LlhttpSmokeTest, ParsesPipelinedRequestsSplitAtEveryByte) {
  const std::string_view wire =
      "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /users/42 HTTP/1.1\r\nHost: a\r\n\r\n";
  for (char c : wire) ASSERT_EQ(feed(std::string_view(&c, 1)), HPE_OK);
  EXPECT_EQ(seen_.completed, 2);
  EXPECT_EQ(seen_.url, "/echo?x=1/users/42");
  EXPECT_EQ(seen_.body, "hello");
}

TEST_F(LlhttpSmokeTest, RejectsMalformedRequestLine) {
  EXPECT_NE(feed("GET /\x01 HTTP/1.1\r\n\r\n"), HPE_OK);
  EXPECT_EQ(seen_.completed, 0);
}

}  // namespace
