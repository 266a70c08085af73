#include "transport/buffer.h"

#include <sys/mman.h>

#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace flight::transport {
namespace {

constexpr size_t kMapThreshold = size_t{1} << 20;  // 1 MiB
constexpr size_t kHugePage = size_t{2} << 20;      // 2 MiB

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Maps `capacity` bytes (a multiple of 2 MiB) at a 2 MiB-aligned address, so the
// kernel can back it with transparent huge pages: 512x fewer page faults.
uint8_t* map_block(size_t capacity) {
  size_t span = capacity + kHugePage;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto base = reinterpret_cast<uintptr_t>(p);
  uintptr_t aligned = round_up(base, kHugePage);
  if (aligned > base) munmap(p, aligned - base);
  uintptr_t tail = aligned + capacity;
  uintptr_t end = base + span;
  if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), capacity, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<uint8_t*>(aligned);
}

// Recycles large mapped blocks. Blocks are reused only by requests of a similar
// size (within 1/8 more), so a pool of 64 MiB blocks does not serve 1 MiB requests.
class Pool {
 public:
  uint8_t* take(size_t capacity, size_t* got) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.lower_bound(capacity);
    if (it == free_.end() || it->first > capacity + capacity / 8) return nullptr;
    uint8_t* p = it->second.back();
    *got = it->first;
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
    cached_ -= *got;
    return p;
  }

  void give(uint8_t* p, size_t capacity) {
    std::vector<std::pair<uint8_t*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (capacity > limit_) {
        drop.emplace_back(p, capacity);
      } else {
        while (cached_ + capacity > limit_ && !free_.empty()) pop_largest(&drop);
        free_[capacity].push_back(p);
        cached_ += capacity;
      }
    }
    for (auto& [q, n] : drop) munmap(q, n);
  }

  void set_limit(size_t limit) {
    std::vector<std::pair<uint8_t*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      limit_ = limit;
      while (cached_ > limit_ && !free_.empty()) pop_largest(&drop);
    }
    for (auto& [q, n] : drop) munmap(q, n);
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  void pop_largest(std::vector<std::pair<uint8_t*, size_t>>* drop) {
    auto it = std::prev(free_.end());
    drop->emplace_back(it->second.back(), it->first);
    cached_ -= it->first;
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
  }

  std::mutex mu_;
  std::map<size_t, std::vector<uint8_t*>> free_;
  size_t cached_ = 0;
  size_t limit_ = size_t{512} << 20;
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked: buffers may be released during static destruction
  return *p;
}

}  // namespace

StatusOr<std::shared_ptr<Buffer>> Buffer::allocate(size_t size) {
  uint8_t* data = nullptr;
  size_t capacity = 0;
  bool mapped = false;
  if (size >= kMapThreshold) {
    if (size > (size_t{1} << 46)) {
      return resource_exhausted("cannot allocate a buffer of " + std::to_string(size) + " bytes");
    }
    capacity = round_up(size, kHugePage);
    size_t got = 0;
    data = pool().take(capacity, &got);
    if (data != nullptr) {
      capacity = got;
    } else {
      data = map_block(capacity);
    }
    mapped = true;
  } else {
    capacity = round_up(size == 0 ? 1 : size, kBufferAlignment);
    data = static_cast<uint8_t*>(
        ::operator new(capacity, std::align_val_t(kBufferAlignment), std::nothrow));
  }
  if (data == nullptr) {
    return resource_exhausted("cannot allocate a buffer of " + std::to_string(size) + " bytes");
  }
  return std::shared_ptr<Buffer>(new Buffer(data, size, capacity, mapped));
}

StatusOr<std::shared_ptr<Buffer>> Buffer::copy_of(const void* data, size_t size) {
  FLIGHT_ASSIGN_OR_RETURN(auto buf, allocate(size));
  if (size > 0) std::memcpy(buf->data(), data, size);
  return buf;
}

Buffer::~Buffer() {
  if (mapped_) {
    pool().give(data_, capacity_);
  } else {
    ::operator delete(data_, std::align_val_t(kBufferAlignment));
  }
}

void set_buffer_pool_limit(size_t bytes) { pool().set_limit(bytes); }
size_t buffer_pool_cached_bytes() { return pool().cached(); }

}  // namespace flight::transport
