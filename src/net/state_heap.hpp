// net/state_heap.hpp (internal) — StateHeap: a mimalloc heap per reactor for
// connection state (the standard allocator when built without mimalloc).
// Thread-safety: owned by one reactor thread; make/destroy only there.
#pragma once

#include <new>
#include <utility>

#if defined(PORTICO_HAVE_MIMALLOC)
#include <mimalloc.h>
#endif

namespace portico {
inline namespace v0 {
namespace detail {

// A mimalloc heap per reactor for connection state (when built with it).
class StateHeap {
 public:
  void open() noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    heap_ = mi_heap_new();
#endif
  }
  void close() noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    // Blocks still out (none after a clean shutdown) move to the thread's
    // default heap rather than being freed.
    if (heap_ != nullptr) mi_heap_delete(heap_);
    heap_ = nullptr;
#endif
  }
  template <class T, class... Args>
  T* make(Args&&... args) {
#if defined(PORTICO_HAVE_MIMALLOC)
    if (heap_ != nullptr) {
      void* memory = mi_heap_malloc_aligned(heap_, sizeof(T), alignof(T));
      if (memory == nullptr) throw std::bad_alloc();
      return ::new (memory) T(std::forward<Args>(args)...);
    }
#endif
    return new T(std::forward<Args>(args)...);
  }
  template <class T>
  void destroy(T* object) noexcept {
#if defined(PORTICO_HAVE_MIMALLOC)
    if (heap_ != nullptr) {
      object->~T();
      mi_free(object);
      return;
    }
#endif
    delete object;
  }

 private:
#if defined(PORTICO_HAVE_MIMALLOC)
  mi_heap_t* heap_ = nullptr;
#endif
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
