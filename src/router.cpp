#include "portico/router.hpp"
