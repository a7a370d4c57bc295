// net/read_buffer.hpp (internal) — ReadBuffer: a connection's received bytes,
// in a pooled block or, for a request larger than a block, a heap buffer.
// Thread-safety: owned by one connection on its reactor thread. Offsets from
// data() stay valid across grow(); pointers do not.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

#include "portico/buffer_pool.hpp"

namespace portico {
inline namespace v0 {
namespace detail {

// A connection's received bytes: a pooled block, or — for a request larger
// than a block — a heap buffer up to the connection's limit. Offsets from
// data() stay valid across grow() (it moves the readable bytes as a whole).
class ReadBuffer {
 public:
  bool has_storage() const noexcept { return block_ || heap_; }
  bool acquire(BufferPool& pool) noexcept {
    block_ = pool.acquire();
    return static_cast<bool>(block_);
  }
  char* data() noexcept { return heap_ ? heap_->bytes.get() + heap_->begin : block_.data(); }
  std::size_t size() const noexcept { return heap_ ? heap_->end - heap_->begin : block_.size(); }
  std::span<char> tail() noexcept {
    return heap_ ? std::span<char>(heap_->bytes.get() + heap_->end, heap_->capacity - heap_->end)
                 : block_.prepare();
  }
  void commit(std::size_t n) noexcept {
    if (heap_) {
      heap_->end += n;
    } else {
      block_.commit(n);
    }
  }
  void consume(std::size_t n) noexcept {
    if (heap_) {
      heap_->begin += n;
      if (heap_->begin == heap_->end) heap_->begin = heap_->end = 0;
    } else {
      block_.consume(n);
    }
  }
  // Makes the tail non-empty: compacts, or moves to a bigger heap buffer of at
  // most `limit` bytes. False when the readable bytes already fill `limit`.
  bool grow(std::size_t limit) {
    if (!heap_) {
      if (block_.compact() && !block_.prepare().empty()) return true;
      const std::size_t used = block_.size();
      if (used >= limit) return false;
      auto heap = std::make_unique<Heap>();
      heap->capacity = std::min(limit, std::max<std::size_t>(used * 2, 4096));
      heap->bytes = std::make_unique<char[]>(heap->capacity);
      std::memcpy(heap->bytes.get(), block_.data(), used);
      heap->end = used;
      block_.reset();
      heap_ = std::move(heap);
      return true;
    }
    Heap& heap = *heap_;
    if (heap.begin > 0) {
      std::memmove(heap.bytes.get(), heap.bytes.get() + heap.begin, heap.end - heap.begin);
      heap.end -= heap.begin;
      heap.begin = 0;
      if (heap.end < heap.capacity) return true;
    }
    if (heap.capacity >= limit) return false;
    const std::size_t capacity = std::min(limit, heap.capacity * 2);
    auto fresh = std::make_unique<char[]>(capacity);
    std::memcpy(fresh.get(), heap.bytes.get(), heap.end);
    heap.bytes = std::move(fresh);
    heap.capacity = capacity;
    return true;
  }
  // Gives the storage back when nothing is left in it.
  void release_if_empty() noexcept {
    if (has_storage() && size() == 0) release();
  }
  void release() noexcept {
    block_.reset();
    heap_.reset();
  }

 private:
  // A request larger than one block (rare): kept out of line so an idle
  // connection stays small.
  struct Heap {
    std::unique_ptr<char[]> bytes;
    std::size_t begin = 0, end = 0, capacity = 0;
  };
  Buffer block_;
  std::unique_ptr<Heap> heap_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
