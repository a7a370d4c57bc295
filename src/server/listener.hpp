// server/listener.hpp (internal) — Listener: a reactor's listening socket;
// accepts connections into its shard, backing off when out of descriptors.
// Thread-safety: owned by its shard's reactor thread (fd is set before the
// thread starts and closed after it ends).
#pragma once

#include <cstdint>

#include "portico/reactor.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

struct ReactorShard;

class Listener final : public IoHandler {
 public:
  explicit Listener(ReactorShard& shard) noexcept;
  void on_io(std::uint32_t events) noexcept override;
  void close() noexcept;

  int fd = -1;
  Timer retry_timer;

 private:
  ReactorShard& shard_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
