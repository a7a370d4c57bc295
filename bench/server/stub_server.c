/* stub_server.c: the floor reference for bench/server/compare_servers.sh.
 *
 * One thread, one epoll set, non-blocking sockets. It answers every request
 * (anything ending in "\r\n\r\n") with the same canned plaintext response and
 * does nothing else: no parsing, no routing, no Date header, no bodies (a
 * request with a body is not supported). All requests found in one read are
 * answered with one write, so it pipelines like a real server would.
 *
 *   cc -O2 -o stub_server stub_server.c && ./stub_server PORT
 *
 * Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
 * Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char kResponse[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: stub\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";
enum { kResponseLen = sizeof kResponse - 1, kReadSize = 64 * 1024, kMaxFd = 1 << 20 };

/* How many bytes of "\r\n\r\n" the previous read ended with, per fd, so a
 * terminator split across reads is still found. */
static unsigned char matched[kMaxFd];
static char out[kReadSize / 4 * kResponseLen + kResponseLen];

static void close_conn(int epfd, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  matched[fd] = 0;
  close(fd);
}

/* Reads everything available and answers each complete request. A client
 * that does not read its responses (the socket buffer fills) is closed: the
 * benchmark clients always read. */
static void serve(int epfd, int fd) {
  static char in[kReadSize];
  for (;;) {
    ssize_t n = read(fd, in, sizeof in);
    if (n == 0) { close_conn(epfd, fd); return; }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) close_conn(epfd, fd);
      return;
    }
    size_t requests = 0;
    unsigned m = matched[fd];
    for (ssize_t i = 0; i < n; ++i) {
      char c = in[i];
      if (c == (m % 2 == 0 ? '\r' : '\n')) {
        if (++m == 4) { ++requests; m = 0; }
      } else {
        m = (c == '\r') ? 1 : 0;
      }
    }
    matched[fd] = (unsigned char)m;
    size_t len = requests * kResponseLen;
    for (size_t r = 0; r < requests; ++r) memcpy(out + r * kResponseLen, kResponse, kResponseLen);
    size_t off = 0;
    while (off < len) {
      ssize_t w = write(fd, out + off, len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) { close_conn(epfd, fd); return; }
      off += (size_t)w;
    }
    if ((size_t)n < sizeof in) return;
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    perror("stub_server: listen");
    return 1;
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0) {
    perror("stub_server: epoll");
    return 1;
  }
  printf("listening on http://127.0.0.1:%s\n", argv[1]);
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("stub_server: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd != lfd) { serve(epfd, fd); continue; }
      for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) break; /* EAGAIN, or EMFILE: retried on the next event */
        if (cfd >= kMaxFd) { close(cfd); continue; }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev) != 0) close(cfd);
      }
    }
  }
}
