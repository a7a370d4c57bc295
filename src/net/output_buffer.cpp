// net/output_buffer.cpp — OutputBuffer's growth (see output_buffer.hpp), out
// of line so that append() stays small enough to inline everywhere.
#include "net/output_buffer.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

void OutputBuffer::grow(std::size_t extra) {
  const std::size_t capacity = std::max(capacity_ * 2, size_ + extra);
  auto data = std::make_unique_for_overwrite<char[]>(capacity);
  std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
