// The integration tests' raw-socket client, response parser, curl runner and
// server fixture (see test_client.hpp).
#include "test_client.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace portico::testing {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool icontains(std::string_view haystack, std::string_view needle) noexcept {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (ascii_iequals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void set_error(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// Parses the chunked body starting at data[pos]. kDone sets `end` past the
// trailer's empty line.
ParseStatus parse_chunked(std::string_view data, std::size_t pos, std::string& body,
                          std::size_t& end, std::string* error) {
  body.clear();
  for (;;) {
    const std::size_t line_end = data.find("\r\n", pos);
    if (line_end == std::string_view::npos) return ParseStatus::kNeedMore;
    std::string_view size_text = data.substr(pos, line_end - pos);
    if (const std::size_t semi = size_text.find(';'); semi != std::string_view::npos) {
      size_text = size_text.substr(0, semi);
    }
    size_text = trim(size_text);
    std::size_t size = 0;
    const auto [ptr, ec] =
        std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (ec != std::errc() || ptr != size_text.data() + size_text.size() || size_text.empty()) {
      set_error(error, "bad chunk size line: " + printable(size_text));
      return ParseStatus::kBad;
    }
    pos = line_end + 2;
    if (size == 0) {
      // Trailer fields, then an empty line.
      for (;;) {
        const std::size_t trailer_end = data.find("\r\n", pos);
        if (trailer_end == std::string_view::npos) return ParseStatus::kNeedMore;
        const bool empty = trailer_end == pos;
        pos = trailer_end + 2;
        if (empty) {
          end = pos;
          return ParseStatus::kDone;
        }
      }
    }
    if (data.size() < pos + size + 2) return ParseStatus::kNeedMore;
    body.append(data.substr(pos, size));
    if (data.substr(pos + size, 2) != "\r\n") {
      set_error(error, "chunk data not followed by CRLF");
      return ParseStatus::kBad;
    }
    pos += size + 2;
  }
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (ascii_iequals(field, name)) return value;
  }
  return std::nullopt;
}

std::size_t HttpResponse::header_count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& [field, value] : headers) n += ascii_iequals(field, name) ? 1 : 0;
  return n;
}

const char* to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::kResponse: return "response";
    case Outcome::kClosed: return "closed";
    case Outcome::kReset: return "reset";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kMalformed: return "malformed";
  }
  return "?";
}

ParseStatus parse_response(std::string_view data, bool head_request, bool eof,
                           HttpResponse& out, std::size_t& consumed, std::string* error) {
  out = HttpResponse{};
  const std::size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    // Reject early what can never become a status line.
    constexpr std::string_view kPrefix = "HTTP/1.";
    const std::size_t n = std::min(data.size(), kPrefix.size());
    if (data.substr(0, n) != kPrefix.substr(0, n)) {
      set_error(error, "not an HTTP response: " + printable(data, 120));
      return ParseStatus::kBad;
    }
    if (eof) {
      set_error(error, "connection closed inside the response head: " + printable(data, 200));
      return ParseStatus::kBad;
    }
    return ParseStatus::kNeedMore;
  }
  const std::string_view head = data.substr(0, head_end);
  std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.x NNN reason"
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
      (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    set_error(error, "bad status line: " + printable(status_line));
    return ParseStatus::kBad;
  }
  out.version_minor = status_line[7] - '0';
  const std::string_view code = status_line.substr(9, 3);
  const auto [ptr, ec] = std::from_chars(code.data(), code.data() + 3, out.status);
  if (ec != std::errc() || ptr != code.data() + 3 || out.status < 100 || out.status > 999) {
    set_error(error, "bad status code: " + printable(status_line));
    return ParseStatus::kBad;
  }
  out.reason = std::string(status_line.size() > 13 ? status_line.substr(13) : std::string_view{});

  std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    line_end = head.find("\r\n", pos);
    if (line_end == std::string_view::npos) line_end = head.size();
    const std::string_view line = head.substr(pos, line_end - pos);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      set_error(error, "bad header line: " + printable(line));
      return ParseStatus::kBad;
    }
    out.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(trim(line.substr(colon + 1))));
    pos = line_end + 2;
  }

  const std::size_t body_start = head_end + 4;
  std::size_t end = body_start;
  const bool no_body = head_request || out.status < 200 || out.status == 204 || out.status == 304;
  const auto transfer_encoding = out.header("Transfer-Encoding");
  const auto content_length = out.header("Content-Length");
  if (no_body) {
    end = body_start;
  } else if (transfer_encoding && icontains(*transfer_encoding, "chunked")) {
    out.chunked = true;
    const ParseStatus status = parse_chunked(data, body_start, out.body, end, error);
    if (status == ParseStatus::kBad) return status;
    if (status == ParseStatus::kNeedMore) {
      if (eof) {
        set_error(error, "connection closed inside a chunked body");
        return ParseStatus::kBad;
      }
      return status;
    }
  } else if (content_length) {
    std::size_t length = 0;
    const std::string& text = *content_length;
    const auto [lptr, lec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (lec != std::errc() || lptr != text.data() + text.size()) {
      set_error(error, "bad Content-Length: " + printable(text));
      return ParseStatus::kBad;
    }
    if (data.size() < body_start + length) {
      if (eof) {
        set_error(error, "connection closed after " + std::to_string(data.size() - body_start) +
                             " of " + std::to_string(length) + " body bytes");
        return ParseStatus::kBad;
      }
      return ParseStatus::kNeedMore;
    }
    out.body = std::string(data.substr(body_start, length));
    end = body_start + length;
  } else {
    // Delimited by the close.
    if (!eof) return ParseStatus::kNeedMore;
    out.body = std::string(data.substr(body_start));
    end = data.size();
  }
  out.raw = std::string(data.substr(0, end));
  consumed = end;
  return ParseStatus::kDone;
}

std::vector<HttpResponse> parse_all_responses(std::string_view data) {
  std::vector<HttpResponse> responses;
  while (!data.empty()) {
    HttpResponse response;
    std::size_t consumed = 0;
    if (parse_response(data, false, true, response, consumed) != ParseStatus::kDone) break;
    responses.push_back(std::move(response));
    data.remove_prefix(consumed);
  }
  return responses;
}

std::string printable(std::string_view bytes, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (out.size() >= max) {
      out += "...(" + std::to_string(bytes.size()) + " bytes)";
      break;
    }
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      std::array<char, 8> hex{};
      std::snprintf(hex.data(), hex.size(), "\\x%02x", c);
      out += hex.data();
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string request_bytes(std::string_view method, std::string_view target,
                          std::string_view extra_headers, std::string_view body,
                          std::string_view version) {
  std::string out;
  out.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
  out.append("Host: 127.0.0.1\r\n");
  out.append(extra_headers);
  if (!body.empty()) out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("\r\n");
  out.append(body);
  return out;
}

// ---- TestClient ---------------------------------------------------------------

int connect_loopback(std::uint16_t port, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  if (!ok && errno == EINTR) {
    pollfd p{fd, POLLOUT, 0};
    int rc = 0;
    do {
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    int error = ETIMEDOUT;
    socklen_t length = sizeof error;
    if (rc > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    errno = error;
    ok = error == 0;
  }
  if (!ok) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

TestClient::TestClient(std::uint16_t port, std::chrono::milliseconds timeout)
    : fd_(connect_loopback(port, timeout)) {
  if (fd_ < 0) connect_errno_ = errno;
}

TestClient::~TestClient() { close_fd(); }

TestClient::TestClient(TestClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      connect_errno_(other.connect_errno_),
      eof_(other.eof_),
      buffer_(std::move(other.buffer_)) {}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    close_fd();
    fd_ = std::exchange(other.fd_, -1);
    connect_errno_ = other.connect_errno_;
    eof_ = other.eof_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void TestClient::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool TestClient::send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool TestClient::send_in_pieces(std::string_view bytes, std::size_t piece) {
  while (!bytes.empty()) {
    const std::size_t n = std::min(piece, bytes.size());
    if (!send(bytes.substr(0, n))) return false;
    bytes.remove_prefix(n);
  }
  return true;
}

void TestClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

long TestClient::receive_some() {
  std::array<char, 16 * 1024> chunk{};
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) buffer_.append(chunk.data(), static_cast<std::size_t>(n));
    if (n == 0) eof_ = true;
    return static_cast<long>(n);
  }
}

ReadResult TestClient::read_response(bool head_request) {
  ReadResult result;
  if (fd_ < 0) {
    result.outcome = Outcome::kClosed;
    result.error = "not connected";
    return result;
  }
  for (;;) {
    if (!buffer_.empty() || eof_) {
      std::size_t consumed = 0;
      const ParseStatus status =
          buffer_.empty() ? ParseStatus::kNeedMore
                          : parse_response(buffer_, head_request, eof_, result.response, consumed,
                                           &result.error);
      if (status == ParseStatus::kDone) {
        buffer_.erase(0, consumed);
        result.outcome = Outcome::kResponse;
        return result;
      }
      if (status == ParseStatus::kBad) {
        result.outcome = Outcome::kMalformed;
        return result;
      }
      if (eof_) {
        result.outcome = Outcome::kClosed;
        result.error = "closed before a response";
        return result;
      }
    }
    const long n = receive_some();
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        result.outcome = Outcome::kTimeout;
        result.error = "no complete response within the timeout; have: " + printable(buffer_);
      } else if (buffer_.empty() && (err == ECONNRESET || err == EPIPE)) {
        result.outcome = Outcome::kReset;
        result.error = "reset before a response";
      } else {
        result.outcome = Outcome::kMalformed;
        result.error = std::string("recv failed (") + std::strerror(err) +
                       ") inside a response: " + printable(buffer_);
      }
      return result;
    }
  }
}

ReadResult TestClient::request(std::string_view bytes, bool head_request) {
  if (!send(bytes)) {
    ReadResult result;
    result.outcome = Outcome::kReset;
    result.error = std::string("send failed: ") + std::strerror(errno);
    return result;
  }
  return read_response(head_request);
}

Outcome TestClient::wait_for_close(std::string* received) {
  if (fd_ < 0) return Outcome::kClosed;
  if (received != nullptr) *received += buffer_;
  buffer_.clear();
  while (!eof_) {
    const long n = receive_some();
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return Outcome::kTimeout;
      if (err == ECONNRESET || err == EPIPE) return Outcome::kReset;
      return Outcome::kMalformed;
    }
    if (received != nullptr) *received += buffer_;
    buffer_.clear();
  }
  return Outcome::kClosed;
}

bool TestClient::readable_within(std::chrono::milliseconds wait) const {
  if (fd_ < 0) return false;
  if (!buffer_.empty() || eof_) return true;
  pollfd p{fd_, POLLIN, 0};
  int rc = 0;
  do {
    rc = ::poll(&p, 1, static_cast<int>(wait.count()));
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

// ---- curl ---------------------------------------------------------------------

std::string run_curl(const std::string& args, int* exit_code) {
  const std::string command = "curl -sS -i --max-time 5 " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    if (exit_code != nullptr) *exit_code = -1;
    return "popen failed";
  }
  std::string output;
  std::array<char, 4096> chunk{};
  std::size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) output.append(chunk.data(), n);
  const int status = ::pclose(pipe);
  if (exit_code != nullptr) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

std::string url(std::uint16_t port, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
}

// ---- fds ----------------------------------------------------------------------

namespace {
template <class F>
void for_each_fd(F&& f) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    f(fd);
  }
  ::closedir(dir);
}
}  // namespace

std::size_t count_open_fds() {
  std::size_t n = 0;
  for_each_fd([&n](int) { ++n; });
  return n;
}

std::string describe_open_fds() {
  std::string out;
  for_each_fd([&out](int fd) {
    std::array<char, 256> target{};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target.data(), target.size() - 1);
    out += std::to_string(fd) + " -> " +
           (n > 0 ? std::string(target.data(), static_cast<std::size_t>(n)) : "?") + "\n";
  });
  return out;
}

// ---- ServerFixture ------------------------------------------------------------

void ServerFixture::SetUp() { fd_baseline_ = count_open_fds(); }

void ServerFixture::TearDown() {
  stop_server();
  EXPECT_EQ(count_open_fds(), fd_baseline_)
      << "file descriptors leaked by the server (or the test); open now:\n"
      << describe_open_fds();
}

Server& ServerFixture::start_server(ServerOptions options,
                                    const std::function<void(Server&)>& configure) {
  options.host = "127.0.0.1";
  options.port = 0;
  options.handle_signals = false;
  // ctest runs server_http_test a second time with this set (suffix
  // .unbatched) so both ways of sending are covered.
  if (const char* batch = std::getenv("PORTICO_TEST_BATCH_IO"); batch && *batch == '0')
    options.batch_io = false;
  server_ = std::make_unique<Server>(std::move(options));
  if (configure) configure(*server_);
  const std::error_code error = server_->start();
  EXPECT_FALSE(error) << error.message() << ": " << server_->setup_error();
  port_ = server_->port();
  EXPECT_NE(port_, 0) << "port() after start()";
  return *server_;
}

void ServerFixture::stop_server() {
  if (server_ == nullptr) return;
  server_->stop();
  server_->wait();
  server_.reset();
}

}  // namespace portico::testing
