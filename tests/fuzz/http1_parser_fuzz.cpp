// libFuzzer target: the HTTP/1 parser alone, no socket. The first byte picks
// the mode (request/response), whether the body streams, whether responses
// answer a HEAD; the second, where the rest is split into two reads. The
// split parse must agree with the whole one (a differential check), and
// small limits are reached. ASan/UBSan catch memory errors in the parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http1_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http1 = portico::detail::http1;
  if (size < 2) return 0;
  http1::testing::DriveOptions options;
  options.mode = (data[0] & 1) != 0 ? http1::Mode::kResponse : http1::Mode::kRequest;
  options.stream = (data[0] & 2) != 0;
  options.head_request = (data[0] & 4) != 0;
  options.limits = http1::Limits{.max_request_line = 256, .max_header_bytes = 1024,
                                 .max_header_count = 16, .max_body_bytes = 4096};
  const std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t cut = input.empty() ? 0 : data[1] % input.size();
  const http1::testing::Outcome whole = http1::testing::drive(input, {}, options);
  const http1::testing::Outcome split = http1::testing::drive(input, {cut}, options);
  if (!(whole == split)) std::abort();
  return 0;
}
