// portico/arena.hpp — Arena: a chunked bump allocator. It owns every byte it
// hands out and frees them all at once, in O(chunks), when it is destroyed or
// reset; nothing is freed one object at a time.
// Thread-safety: none; an arena belongs to one owner (the frozen route table
// that it backs is read-only once built, so readers never touch the arena).
// Lifetimes: memory it returns stays valid until reset() or destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

namespace portico {
inline namespace v0 {

namespace detail {
// Memory for large blocks straight from the OS, every page mapped up front
// (Linux: mmap at a 2 MiB boundary, transparent huge pages where allowed,
// then every page populated in one system call -- instead of a page fault
// per 4 KiB page, which dominated building large route tables). Returns
// nullptr where that is not available or fails; the caller then falls back
// to operator new. Defined in src/router/router.cpp.
void* map_populated(std::size_t bytes) noexcept;
void unmap_populated(void* memory, std::size_t bytes) noexcept;
// Makes the whole pages inside [memory, memory + bytes) present for
// writing, in one system call (Linux 5.14+; elsewhere, and for less than
// kPopulateMin bytes, nothing): for memory from operator new that is about
// to be filled, instead of a page fault per page.
void populate(void* memory, std::size_t bytes) noexcept;
inline constexpr std::size_t kPopulateMin = std::size_t{64} << 10;
// Blocks at least this large go to map_populated().
inline constexpr std::size_t kMapPopulatedMin = std::size_t{1} << 20;
}  // namespace detail

// A bump allocator over a list of chunks. Objects placed in it must be
// trivially destructible: the arena never runs destructors.
class Arena {
 public:
  // Chunks are at least `chunk_size` bytes; a larger request gets a chunk of
  // its own, so one big frozen table lives in a single contiguous chunk.
  explicit Arena(std::size_t chunk_size = kDefaultChunkSize) noexcept : chunk_size_(chunk_size) {}
  ~Arena() { reset(); }

  Arena(Arena&& other) noexcept
      : chunk_size_(other.chunk_size_),
        head_(std::exchange(other.head_, nullptr)),
        cursor_(std::exchange(other.cursor_, nullptr)),
        end_(std::exchange(other.end_, nullptr)),
        bytes_used_(std::exchange(other.bytes_used_, 0)),
        bytes_reserved_(std::exchange(other.bytes_reserved_, 0)) {}
  Arena& operator=(Arena&& other) noexcept {
    if (this != &other) {
      reset();
      chunk_size_ = other.chunk_size_;
      head_ = std::exchange(other.head_, nullptr);
      cursor_ = std::exchange(other.cursor_, nullptr);
      end_ = std::exchange(other.end_, nullptr);
      bytes_used_ = std::exchange(other.bytes_used_, 0);
      bytes_reserved_ = std::exchange(other.bytes_reserved_, 0);
    }
    return *this;
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Returns `size` bytes aligned to `align`. Throws std::bad_alloc when the
  // system is out of memory.
  // REQUIRES: align is a power of two no larger than alignof(std::max_align_t).
  void* allocate(std::size_t size, std::size_t align = alignof(std::max_align_t)) {
    std::uintptr_t at = (reinterpret_cast<std::uintptr_t>(cursor_) + align - 1) & ~(align - 1);
    if (cursor_ == nullptr || at + size > reinterpret_cast<std::uintptr_t>(end_)) {
      grow(size + align);
      at = (reinterpret_cast<std::uintptr_t>(cursor_) + align - 1) & ~(align - 1);
    }
    char* out = cursor_ + (at - reinterpret_cast<std::uintptr_t>(cursor_));
    bytes_used_ += size + static_cast<std::size_t>(out - cursor_);
    cursor_ = out + size;
    return out;
  }

  // Uninitialised storage for `count` objects of trivially destructible `T`.
  template <class T>
  T* allocate_array(std::size_t count) {
    static_assert(std::is_trivially_destructible_v<T>, "the arena never runs destructors");
    if (count == 0) return nullptr;
    return static_cast<T*>(allocate(sizeof(T) * count, alignof(T)));
  }

  // A copy of `text` that lives as long as the arena.
  std::string_view copy(std::string_view text) {
    if (text.empty()) return {};
    char* out = static_cast<char*>(allocate(text.size(), 1));
    std::memcpy(out, text.data(), text.size());
    return {out, text.size()};
  }

  // Frees every chunk. All memory handed out so far becomes invalid.
  void reset() noexcept {
    while (head_ != nullptr) {
      ChunkHeader* next = head_->next;
      if (head_->mapped_bytes != 0) {
        detail::unmap_populated(head_, head_->mapped_bytes);
      } else {
        ::operator delete(static_cast<void*>(head_));
      }
      head_ = next;
    }
    cursor_ = end_ = nullptr;
    bytes_used_ = bytes_reserved_ = 0;
  }

  // Bytes handed out (including alignment padding).
  std::size_t bytes_used() const noexcept { return bytes_used_; }
  // Bytes obtained from the system, chunk headers included.
  std::size_t bytes_reserved() const noexcept { return bytes_reserved_; }

  static constexpr std::size_t kDefaultChunkSize = 64 * 1024;

 private:
  struct alignas(std::max_align_t) ChunkHeader {
    ChunkHeader* next;
    std::size_t mapped_bytes;  // 0: from operator new
  };

  void grow(std::size_t at_least) {
    const std::size_t payload = at_least > chunk_size_ ? at_least : chunk_size_;
    const std::size_t total = sizeof(ChunkHeader) + payload;
    void* memory = total >= detail::kMapPopulatedMin ? detail::map_populated(total) : nullptr;
    const std::size_t mapped = memory != nullptr ? total : 0;
    if (memory == nullptr) memory = ::operator new(total);
    auto* chunk = static_cast<ChunkHeader*>(memory);
    chunk->mapped_bytes = mapped;
    chunk->next = head_;
    head_ = chunk;
    cursor_ = reinterpret_cast<char*>(chunk + 1);
    end_ = cursor_ + payload;
    bytes_reserved_ += total;
  }

  std::size_t chunk_size_;
  ChunkHeader* head_ = nullptr;
  char* cursor_ = nullptr;
  char* end_ = nullptr;
  std::size_t bytes_used_ = 0;
  std::size_t bytes_reserved_ = 0;
};

}  // namespace v0
}  // namespace portico
