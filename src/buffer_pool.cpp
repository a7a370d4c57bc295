#include "portico/buffer_pool.hpp"
