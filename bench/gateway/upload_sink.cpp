// upload_sink: the upstream of bench/gateway/proxy_compare.sh --bulk's
// upload. It reads each request's body and throws it away as fast as the
// socket delivers it, then answers 200 with "received N\n" (N the body's
// bytes), so the script can check that the whole upload went through.
//
//   upload_sink PORT      (on 127.0.0.1)
//
// A thread per connection, blocking reads into one 256 KiB buffer; HTTP/1.1
// keep-alive; bodies framed by Content-Length or chunked (anything else is
// answered 400 and closed). Enough HTTP for proxies forwarding one client's
// requests, not a server. Prints "listening on http://127.0.0.1:PORT".

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr std::size_t kBufferSize = 256 * 1024;
constexpr std::size_t kMaxHead = 64 * 1024;

// Buffered reads from one connection.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd), buf_(new char[kBufferSize]) {}
  ~Reader() { delete[] buf_; }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Up to and including the next "\r\n" (without it); false at EOF or when
  // the line would exceed kMaxHead.
  bool line(std::string& out) {
    out.clear();
    for (;;) {
      for (std::size_t i = begin_; i < end_; ++i) {
        if (buf_[i] == '\n') {
          out.append(buf_ + begin_, i - begin_);
          begin_ = i + 1;
          if (!out.empty() && out.back() == '\r') out.pop_back();
          return true;
        }
      }
      out.append(buf_ + begin_, end_ - begin_);
      begin_ = end_;
      if (out.size() > kMaxHead || !fill()) return false;
    }
  }

  // Reads and drops n bytes; false at EOF first.
  bool discard(std::uint64_t n) {
    while (n > 0) {
      if (begin_ == end_ && !fill()) return false;
      std::size_t take = end_ - begin_;
      if (take > n) take = static_cast<std::size_t>(n);
      begin_ += take;
      n -= take;
    }
    return true;
  }

 private:
  bool fill() {
    for (;;) {
      ssize_t n = read(fd_, buf_, kBufferSize);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      begin_ = 0;
      end_ = static_cast<std::size_t>(n);
      return true;
    }
  }

  int fd_;
  char* buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool starts_with_field(const std::string& line, const char* name) {
  const std::size_t len = std::strlen(name);
  return line.size() > len && line[len] == ':' && strncasecmp(line.data(), name, len) == 0;
}

std::string field_value(const std::string& line) {
  std::size_t i = line.find(':') + 1;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  std::size_t j = line.size();
  while (j > i && (line[j - 1] == ' ' || line[j - 1] == '\t')) --j;
  return line.substr(i, j - i);
}

// Reads a chunked body; returns its size, or -1 on a framing error or EOF.
std::int64_t discard_chunked(Reader& in) {
  std::string line;
  std::int64_t total = 0;
  for (;;) {
    if (!in.line(line)) return -1;
    char* end = nullptr;
    const unsigned long long size = std::strtoull(line.c_str(), &end, 16);
    if (end == line.c_str()) return -1;
    if (size == 0) break;
    if (!in.discard(size) || !in.line(line) || !line.empty()) return -1;
    total += static_cast<std::int64_t>(size);
  }
  do {  // trailer fields, up to the empty line
    if (!in.line(line)) return -1;
  } while (!line.empty());
  return total;
}

void serve(int fd) {
  Reader in(fd);
  std::string line;
  for (;;) {
    if (!in.line(line)) break;  // the request line (or EOF between requests)
    if (line.empty()) continue;
    std::int64_t length = 0;
    bool chunked = false;
    bool close_after = false;
    bool bad = false;
    for (;;) {
      if (!in.line(line)) {
        bad = true;
        break;
      }
      if (line.empty()) break;
      if (starts_with_field(line, "Content-Length")) {
        length = std::strtoll(field_value(line).c_str(), nullptr, 10);
      } else if (starts_with_field(line, "Transfer-Encoding")) {
        chunked = strcasecmp(field_value(line).c_str(), "chunked") == 0;
        bad = !chunked;
      } else if (starts_with_field(line, "Connection")) {
        close_after = strcasecmp(field_value(line).c_str(), "close") == 0;
      }
    }
    std::int64_t received = length;
    if (!bad && chunked) {
      received = discard_chunked(in);
    } else if (!bad && !in.discard(static_cast<std::uint64_t>(length))) {
      received = -1;
    }
    if (bad || received < 0) {
      write_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      break;
    }
    const std::string body = "received " + std::to_string(received) + "\n";
    const std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
    if (!write_all(fd, response) || close_after) break;
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  std::signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(lfd, 1024) != 0) {
    std::perror("upload_sink: listen");
    return 1;
  }
  std::printf("listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::perror("upload_sink: accept");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(serve, fd).detach();
  }
}
