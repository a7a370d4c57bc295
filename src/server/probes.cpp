// server/probes.cpp — the semaphores of portico's USDT probes
// (server/probes.hpp): a tracer that attaches to a probe raises its
// semaphore, and the library computes the probe's arguments only then.
#include "server/probes.hpp"

#if defined(PORTICO_HAVE_USDT) && PORTICO_HAVE_USDT
// In section .probes, where sys/sdt.h's notes expect them (systemtap's
// `dtrace -G` places them the same way).
#define PORTICO_SEMAPHORE(name)                                                            \
  __extension__ volatile unsigned short portico_##name##_semaphore __attribute__((unused)) \
  __attribute__((section(".probes"))) = 0

extern "C" {
PORTICO_SEMAPHORE(request_start);
PORTICO_SEMAPHORE(route_matched);
PORTICO_SEMAPHORE(upstream_connect);
PORTICO_SEMAPHORE(upstream_response_head);
PORTICO_SEMAPHORE(request_done);
}
#endif
