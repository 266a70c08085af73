// Buffer: an immutable-once-shared, 64-byte-aligned block of bytes — the unit every
// connector moves. `Bytes` (shared_ptr<const Buffer>) is what connectors return
// from get(): the decoder wraps it without copying (tensors keep it alive), the
// Store's cache shares it, and the memory/tcp connectors keep it without copying.
//
// Allocation: blocks under 1 MiB come from aligned operator new. Larger blocks are
// mmap'd, 2 MiB-aligned and advised for transparent huge pages, and are recycled
// through a bounded process-wide pool when released: a federated run moves the
// same model-sized buffers every round, and a fresh 64 MiB mapping costs as much
// in page faults as moving it over loopback. Contents of a new Buffer are
// uninitialised.
//
// Thread safety: a Buffer is written by its creator before it is shared and only
// read afterwards. The pool is internally synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "flight/base/status.h"

namespace flight::transport {

constexpr size_t kBufferAlignment = 64;

class Buffer;
using Bytes = std::shared_ptr<const Buffer>;

class Buffer {
 public:
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // A new writable buffer of `size` uninitialised bytes. ResourceExhausted when
  // the memory cannot be had (never throws, never aborts): sizes arrive from
  // the network and from file headers.
  static StatusOr<std::shared_ptr<Buffer>> allocate(size_t size);
  // A new buffer holding a copy of [data, data + size).
  static StatusOr<std::shared_ptr<Buffer>> copy_of(const void* data, size_t size);
  static StatusOr<std::shared_ptr<Buffer>> copy_of(std::string_view s) {
    return copy_of(s.data(), s.size());
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }

 private:
  Buffer(uint8_t* data, size_t size, size_t capacity, bool mapped)
      : data_(data), size_(size), capacity_(capacity), mapped_(mapped) {}

  uint8_t* data_;
  size_t size_;
  size_t capacity_;  // bytes actually reserved (mapped blocks round up to 2 MiB)
  bool mapped_;
};

// A non-owning view of contiguous bytes (what put() accepts).
struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;

  ByteView() = default;
  ByteView(const void* d, size_t n) : data(static_cast<const uint8_t*>(d)), size(n) {}
  ByteView(const Buffer& b) : data(b.data()), size(b.size()) {}  // NOLINT(runtime/explicit)
  ByteView(std::string_view s)                                   // NOLINT(runtime/explicit)
      : data(reinterpret_cast<const uint8_t*>(s.data())), size(s.size()) {}
  ByteView(const std::string& s)  // NOLINT(runtime/explicit)
      : data(reinterpret_cast<const uint8_t*>(s.data())), size(s.size()) {}
};

// Upper bound of bytes kept in the recycling pool for large blocks (default
// 512 MiB). Setting 0 disables recycling and releases what is cached.
void set_buffer_pool_limit(size_t bytes);
size_t buffer_pool_cached_bytes();

}  // namespace flight::transport
