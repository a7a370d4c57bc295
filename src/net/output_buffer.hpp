// net/output_buffer.hpp (internal) — OutputBuffer: the bytes a reactor
// serialises before sending them with one write.
// Thread-safety: owned by one reactor thread. Views from data()/view() are
// valid until the next append (which may grow and move the storage).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace portico {
inline namespace v0 {
namespace detail {

// The responses a reactor serialises for one connection before sending them
// with one write. append() is inline, so a literal of known length becomes a
// few stores, where std::string's and fmt::memory_buffer's appends are calls.
class OutputBuffer {
 public:
  using value_type = char;  // for std::back_inserter (fmt::format_to)

  explicit OutputBuffer(std::size_t capacity)
      : data_(std::make_unique_for_overwrite<char[]>(capacity)), capacity_(capacity) {}

  const char* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept { size_ = 0; }
  void truncate(std::size_t size) noexcept { size_ = size; }  // REQUIRES: size <= size()
  std::string_view view() const noexcept { return {data_.get(), size_}; }

  void append(std::string_view bytes) {
    if (bytes.size() > capacity_ - size_) grow(bytes.size());
    std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  void push_back(char c) {
    if (size_ == capacity_) grow(1);
    data_[size_++] = c;
  }

 private:
  void grow(std::size_t extra);

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
