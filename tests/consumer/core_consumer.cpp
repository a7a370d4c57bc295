// Links portico::core alone; exits 0 only if the primitives work as expected.
#include <portico/buffer_pool.hpp>
#include <portico/mpmc_queue.hpp>

#include <cstdio>
#include <string>

int main() {
  portico::MpmcQueue<std::string> queue(3);
  if (queue.capacity() != 4) return 1;
  if (!queue.try_push(std::string("hello"))) return 1;
  std::string out;
  if (!queue.try_pop(out) || out != "hello" || queue.try_pop(out)) return 1;

  portico::BufferPool pool;
  portico::Buffer buffer = pool.acquire();
  if (!buffer || !buffer.append("GET / HTTP/1.1\r\n")) return 1;
  portico::BufferSlice slice = buffer.slice(0, 3);
  buffer.reset();
  if (slice.view() != "GET") return 1;
  std::puts("portico core consumer: ok");
  return 0;
}
