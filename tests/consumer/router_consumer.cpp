// Links portico::router alone; exits 0 only if a route matches as expected.
#include <portico/router.hpp>
#include <portico/version.hpp>

int main() { return PORTICO_VERSION_MAJOR >= 0 ? 0 : 1; }
