// portico/portico.hpp — the umbrella header: everything a host application
// links with portico::portico. Each component header is usable on its own.
#pragma once

#include "portico/arena.hpp"
#include "portico/buffer_pool.hpp"
#include "portico/gateway_config.hpp"
#include "portico/http.hpp"
#include "portico/mpmc_queue.hpp"
#include "portico/published.hpp"
#include "portico/reactor.hpp"
#include "portico/router.hpp"
#include "portico/server.hpp"
#include "portico/metrics.hpp"
#include "portico/version.hpp"
