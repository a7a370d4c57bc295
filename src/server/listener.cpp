// server/listener.cpp — Listener: accepts connections into its shard (see
// listener.hpp). Runs on the shard's thread only.
#include "server/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "portico/detail/syscalls.hpp"
#include "server/reactor_shard.hpp"
#include "server/server_connection.hpp"
#include "server/server_core.hpp"

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

constexpr std::chrono::milliseconds kAcceptRetry{100};

void on_accept_retry(Timer& timer, void* context) noexcept {
  (void)timer;
  auto* shard = static_cast<ReactorShard*>(context);
  if (!shard->shutting_down && shard->listener.fd >= 0) {
    (void)shard->reactor.modify(shard->listener.fd, EPOLLIN, &shard->listener);
  }
}

}  // namespace

Listener::Listener(ReactorShard& shard) noexcept
    : retry_timer(&on_accept_retry, &shard), shard_(shard) {}

void Listener::close() noexcept {
  if (fd < 0) return;
  (void)shard_.reactor.remove(fd);
  sys::close(fd);
  fd = -1;
}

void Listener::on_io(std::uint32_t /*events*/) noexcept {
  const ServerOptions& options = shard_.core.options();
  for (int i = 0; i < 64 && fd >= 0; ++i) {
    // The peer's address is looked up only if asked for (getpeername).
    const int client = sys::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop polling the listener for a moment rather
        // than spin on a level-triggered readiness we cannot clear.
        (void)shard_.reactor.modify(fd, 0, this);
        shard_.reactor.arm(retry_timer, kAcceptRetry);
        return;
      }
      continue;  // ECONNABORTED and friends: that client is gone
    }
    if (shard_.connection_count >= options.max_connections || shard_.shutting_down) {
      bump(shard_.counters.rejected);
      sys::close(client);
      continue;
    }
    const int one = 1;
    (void)sys::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ServerConnection* connection = nullptr;
    try {
      connection = shard_.heap.make<ServerConnection>(shard_, client);
    } catch (...) {
      bump(shard_.counters.rejected);
      sys::close(client);
      continue;
    }
    bump(shard_.counters.accepted);
    connection->open();
  }
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
