// stub_proxy: the floor of bench/gateway/proxy_compare.sh — a proxy with no
// HTTP. For each client connection it opens one upstream connection and
// relays bytes both ways as they come, without parsing, so what a real proxy
// costs above the kernel's share shows.
//
//   stub_proxy LISTEN_PORT UPSTREAM_PORT      (both on 127.0.0.1)
//
// One thread, one epoll set (level-triggered), non-blocking sockets with
// TCP_NODELAY. Each direction has one 64 KiB buffer: a read fills it, a write
// empties it, and while bytes wait for the destination the source is not
// read (backpressure, so a 1 GiB transfer stays in that buffer). An EOF is
// passed on as shutdown(SHUT_WR); the pair closes once both directions have
// ended, or at the first error. Prints "listening on http://127.0.0.1:PORT"
// once it accepts connections; exits 0 on SIGINT or SIGTERM.
//
// The upstream connect is blocking: on loopback it completes at once, and
// the benchmark opens its connections before it measures.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;

struct Pair;

// One socket of a pair; epoll's data.ptr points at it.
struct Side {
  Pair* pair = nullptr;
  int fd = -1;
  std::uint32_t interest = 0;  // what epoll watches now
};

// Bytes read from one side, waiting to be written to the other.
struct Direction {
  char bytes[kBufferSize];
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;  // the source ended; the destination was shut down once empty
};

struct Pair {
  Side side[2];         // 0: client, 1: upstream
  Direction toward[2];  // toward[i]: bytes to write to side[i]
  bool closed = false;
};

int epfd = -1;
volatile std::sig_atomic_t stopping = 0;  // SIGINT or SIGTERM: exit cleanly (callgrind)
std::vector<Pair*> closed_pairs;          // freed after the epoll batch that closed them

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

void close_pair(Pair& p) {
  if (p.closed) return;
  p.closed = true;
  for (Side& s : p.side) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s.fd, nullptr);
    close(s.fd);
  }
  closed_pairs.push_back(&p);
}

// Watches side i for reads while its outgoing buffer is empty and its source
// has not ended, and for writes while bytes wait for it.
void update_interest(Pair& p, int i) {
  Side& s = p.side[i];
  const Direction& out = p.toward[1 - i];  // what side i sends
  const Direction& in = p.toward[i];       // what side i receives
  std::uint32_t want = 0;
  if (!out.eof && out.begin == out.end) want |= EPOLLIN;
  if (in.begin != in.end) want |= EPOLLOUT;
  if (want == s.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = &s;
  epoll_ctl(epfd, EPOLL_CTL_MOD, s.fd, &ev);
  s.interest = want;
}

// Writes what waits for side i. Returns false on an error (the pair closed).
bool flush(Pair& p, int i) {
  Direction& d = p.toward[i];
  while (d.begin != d.end) {
    ssize_t n = write(p.side[i].fd, d.bytes + d.begin, d.end - d.begin);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return true;
      close_pair(p);
      return false;
    }
    d.begin += static_cast<std::size_t>(n);
  }
  d.begin = d.end = 0;
  if (d.eof) shutdown(p.side[i].fd, SHUT_WR);
  return true;
}

// Reads from side i into the buffer toward the other side and writes it on.
bool relay(Pair& p, int i) {
  Direction& d = p.toward[1 - i];
  ssize_t n;
  do {
    n = read(p.side[i].fd, d.bytes, sizeof d.bytes);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return true;
    close_pair(p);
    return false;
  }
  if (n == 0) {
    d.eof = true;
    if (p.toward[i].eof) {  // both directions ended
      close_pair(p);
      return false;
    }
  }
  d.begin = 0;
  d.end = static_cast<std::size_t>(n);
  return flush(p, 1 - i);
}

void accept_all(int lfd, int upstream_port) {
  const int one = 1;
  for (;;) {
    int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return;  // EAGAIN, or EMFILE: retried on the next event
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in up = loopback(upstream_port);
    if (ufd < 0 || connect(ufd, reinterpret_cast<sockaddr*>(&up), sizeof up) != 0) {
      std::perror("stub_proxy: upstream connect");
      if (ufd >= 0) close(ufd);
      close(cfd);
      continue;
    }
    fcntl(ufd, F_SETFL, O_NONBLOCK);
    auto* p = new Pair;
    p->side[0].fd = cfd;
    p->side[1].fd = ufd;
    for (Side& s : p->side) {
      s.pair = p;
      setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = &s;
      epoll_ctl(epfd, EPOLL_CTL_ADD, s.fd, &ev);
      s.interest = EPOLLIN;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int upstream_port = std::atoi(argv[2]);
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction stop {};
  stop.sa_handler = [](int) { stopping = 1; };
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(port);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(lfd, 4096) != 0) {
    std::perror("stub_proxy: listen");
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;  // the listener
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) != 0) {
    std::perror("stub_proxy: epoll");
    return 1;
  }
  std::printf("listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);

  epoll_event events[256];
  while (!stopping) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("stub_proxy: epoll_wait");
      return 1;
    }
    for (int e = 0; e < n; ++e) {
      auto* s = static_cast<Side*>(events[e].data.ptr);
      if (s == nullptr) {
        accept_all(lfd, upstream_port);
        continue;
      }
      Pair& p = *s->pair;
      if (p.closed) continue;  // closed earlier in this batch
      const int i = s == &p.side[0] ? 0 : 1;
      if (events[e].events & EPOLLERR) {
        close_pair(p);
        continue;
      }
      if ((events[e].events & EPOLLOUT) && !flush(p, i)) continue;
      if ((events[e].events & (EPOLLIN | EPOLLHUP)) && (s->interest & EPOLLIN) && !relay(p, i)) {
        continue;
      }
      update_interest(p, 0);
      update_interest(p, 1);
    }
    for (Pair* p : closed_pairs) delete p;
    closed_pairs.clear();
  }
  return 0;
}
