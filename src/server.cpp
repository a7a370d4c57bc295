// Placeholder: the implementation lands with issue 4.
#include "portico/reactor.hpp"
#include "portico/server.hpp"
