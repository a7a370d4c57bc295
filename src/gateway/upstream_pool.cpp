// gateway/upstream_pool.cpp — UpstreamPool: handing connections out, taking
// them back, closing idle ones (see upstream_pool.hpp). Reactor thread only.
#include "gateway/upstream_pool.hpp"

#include <cassert>
#include <new>
#include <system_error>

#include "net/sockets.hpp"
#include "portico/detail/syscalls.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

UpstreamPool::UpstreamPool(UpstreamIo io, const sockaddr_storage& address, socklen_t length,
                           const UpstreamPoolOptions& options) noexcept
    : io_(io), address_(address), length_(length), options_(options) {}

UpstreamPool::~UpstreamPool() {
  assert(active() == 0);
  drain();
}

UpstreamConnection* UpstreamPool::acquire(UpstreamHandler& handler, bool head_request) noexcept {
  assert(!draining_);
  if (UpstreamConnection* connection = idle_; connection != nullptr) {
    unlink(*connection);
    set(pooled_, pooled() - 1);
    set(active_, active() + 1);
    connection->begin_exchange(handler, head_request);
    return connection;
  }
  return connect_new(handler, head_request);
}

UpstreamConnection* UpstreamPool::connect_new(UpstreamHandler& handler, bool head_request) noexcept {
  std::error_code error;
  const int fd = open_client_socket(address_.ss_family, error);
  if (fd < 0) return nullptr;
  UpstreamConnection* connection;
  try {
    connection = io_.heap.make<UpstreamConnection>(*this, fd);
  } catch (const std::bad_alloc&) {
    sys::close(fd);
    return nullptr;
  }
  set(active_, active() + 1);
  count_open(1);
  connection->connect(reinterpret_cast<const sockaddr*>(&address_), length_, handler,
                      head_request);
  return connection;
}

void UpstreamPool::release(UpstreamConnection& connection) noexcept {
  assert(active() > 0);
  set(active_, active() - 1);
  // LIFO: the most recently used connection is the one least likely to have
  // been closed by the upstream's own idle timeout, and its state is warm.
  if (!draining_ && pooled() < options_.max_idle_per_endpoint && connection.poolable()) {
    connection.prev = nullptr;
    connection.next = idle_;
    if (idle_ != nullptr) idle_->prev = &connection;
    idle_ = &connection;
    set(pooled_, pooled() + 1);
    connection.park();
    return;
  }
  count_open(-1);
  connection.close();
  connection.release_when_unused();
}

void UpstreamPool::drop_idle(UpstreamConnection& connection) noexcept {
  unlink(connection);
  set(pooled_, pooled() - 1);
  count_open(-1);
  connection.close();
  connection.release_when_unused();
}

void UpstreamPool::drain() noexcept {
  draining_ = true;
  while (idle_ != nullptr) drop_idle(*idle_);
}

void UpstreamPool::unlink(UpstreamConnection& connection) noexcept {
  if (connection.prev != nullptr) {
    connection.prev->next = connection.next;
  } else {
    idle_ = connection.next;
  }
  if (connection.next != nullptr) connection.next->prev = connection.prev;
  connection.prev = connection.next = nullptr;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
