// portico/portico.hpp — the umbrella header: everything a host application
// links with portico::portico. Each component header is usable on its own.
#pragma once

#include "portico/buffer_pool.hpp"
#include "portico/mpmc_queue.hpp"
#include "portico/router.hpp"
#include "portico/version.hpp"
