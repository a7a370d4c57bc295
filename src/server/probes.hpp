// server/probes.hpp (internal) — portico's USDT probes (sys/sdt.h, provider
// `portico`), fired by the server and by the gateway; compiled away when
// PORTICO_USDT is off or sys/sdt.h was missing (PORTICO_HAVE_USDT unset).
// Thread-safety: a probe fires on the reactor thread that runs the exchange.
// Pointer arguments are valid only while the probe fires: a tracer copies
// what it wants (bpftrace: str(ptr, length)).
//
// Each probe has a semaphore (sys/sdt.h's _SDT_HAS_SEMAPHORES): a tracer
// that attaches raises it (bpftrace does, through the kernel's uprobe
// reference counter or the process's memory), and only then are the
// arguments computed. With nobody attached a probe costs a load, a compare
// and a branch not taken; bench/README.md ("trace/") has the count, and
// the semaphore-less form's (a `nop`, but its arguments always computed).
// Arguments are values at hand (pointers, lengths, integers; nothing
// formatted, no clock read): a tracer timestamps each probe itself.
//
//   probe (portico:NAME)     arguments (arg0, arg1, ...)
//   ----------------------   ---------------------------------------------------
//   request_start            id, method (char*), method length,
//     its head is parsed       target (char*, as received), target length
//   route_matched            id, pattern (char*), pattern length: the route's
//     a route takes it         pattern ("/users/:id"); fired by the gateway for
//                              its routes ("(embedded)" for a host's
//                              gw.proxy() route), by the server for a
//                              handler's; not for another StreamingHandler's
//   upstream_connect         id, from_pool (1: an idle pooled connection was
//     (gateway) a connection   taken; 0: a new connection is established),
//     for this try             endpoint address (char*, "host:port"), length
//   upstream_response_head   id, the upstream's status, retries made so far
//     (gateway) a head read
//   request_done             id, status sent (0: none, the connection closes),
//     the response is          body bytes (as the access log counts them),
//     complete                 error label (the ErrorLabel's value: 0 none,
//                              1 route_not_found, ... in server.hpp's order)
//
// `id` (uint64) is the client connection's address: unique among requests
// in flight (a connection carries one request at a time, pipelined ones in
// turn), so it pairs one request's probes. The connection's next request,
// or after a close another connection, reuses it. The gateway fires
// request_done for every proxied exchange it ends (status 0 when nothing was
// sent, e.g. the client left); a local answer fires it when written, so a
// request whose connection closes before that (client gone, reset) has none.
#pragma once

#include <cstdint>

#if defined(PORTICO_HAVE_USDT) && PORTICO_HAVE_USDT
// Every probe in a translation unit that includes sys/sdt.h so needs one.
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

// The names sys/sdt.h's notes refer to (PROVIDER_NAME_semaphore, unmangled),
// defined in probes.cpp. A tracer writes them from outside: volatile.
extern "C" {
extern volatile unsigned short portico_request_start_semaphore;
extern volatile unsigned short portico_route_matched_semaphore;
extern volatile unsigned short portico_upstream_connect_semaphore;
extern volatile unsigned short portico_upstream_response_head_semaphore;
extern volatile unsigned short portico_request_done_semaphore;
}

#define PORTICO_PROBE_ENABLED(name) __builtin_expect(portico_##name##_semaphore != 0, 0)
#define PORTICO_PROBE3(name, a1, a2, a3)                                     \
  do {                                                                       \
    if (PORTICO_PROBE_ENABLED(name)) STAP_PROBE3(portico, name, a1, a2, a3); \
  } while (0)
#define PORTICO_PROBE4(name, a1, a2, a3, a4) PORTICO_PROBE4_IF(true, name, a1, a2, a3, a4)
#define PORTICO_PROBE5(name, a1, a2, a3, a4, a5) PORTICO_PROBE5_IF(true, name, a1, a2, a3, a4, a5)
// Fires only when `condition` holds too, tested once the semaphore is up.
#define PORTICO_PROBE4_IF(condition, name, a1, a2, a3, a4)                                      \
  do {                                                                                          \
    if (PORTICO_PROBE_ENABLED(name) && (condition)) STAP_PROBE4(portico, name, a1, a2, a3, a4); \
  } while (0)
#define PORTICO_PROBE5_IF(condition, name, a1, a2, a3, a4, a5) \
  do {                                                         \
    if (PORTICO_PROBE_ENABLED(name) && (condition))            \
      STAP_PROBE5(portico, name, a1, a2, a3, a4, a5);          \
  } while (0)
#else
// No probes: the arguments are never evaluated (but stay compiled, so they
// cannot rot, and no variable is left unused).
#define PORTICO_PROBE3(name, a1, a2, a3)  \
  do {                                    \
    if (false) {                          \
      (void)(a1), (void)(a2), (void)(a3); \
    }                                     \
  } while (0)
#define PORTICO_PROBE4(name, a1, a2, a3, a4)          \
  do {                                                \
    if (false) {                                      \
      (void)(a1), (void)(a2), (void)(a3), (void)(a4); \
    }                                                 \
  } while (0)
#define PORTICO_PROBE5(name, a1, a2, a3, a4, a5)                  \
  do {                                                            \
    if (false) {                                                  \
      (void)(a1), (void)(a2), (void)(a3), (void)(a4), (void)(a5); \
    }                                                             \
  } while (0)
#define PORTICO_PROBE4_IF(condition, name, a1, a2, a3, a4) \
  PORTICO_PROBE5(name, condition, a1, a2, a3, a4)
#define PORTICO_PROBE5_IF(condition, name, a1, a2, a3, a4, a5) \
  do {                                                         \
    if (false) {                                               \
      (void)(condition);                                       \
      PORTICO_PROBE5(name, a1, a2, a3, a4, a5);                \
    }                                                          \
  } while (0)
#endif

namespace portico {
inline namespace v0 {
namespace detail {

// The `id` argument of every probe: the client connection's address.
inline std::uint64_t probe_id(const void* connection) noexcept {
  return reinterpret_cast<std::uintptr_t>(connection);
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
