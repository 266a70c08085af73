// ByteLru: a least-recently-used map from string keys to values, bounded by
// the bytes its entries say they hold — the policy behind the process caches
// that a long-lived endpoint fills one job at a time (the engine's job cache,
// learning's dataset cache).
//
// Values are handles (shared_ptrs, or structs of them): dropping an entry
// drops the cache's reference only, so a task still using the value keeps it
// alive. Entries reported in use by `in_use` (e.g. a shared_ptr held outside
// the cache) are pinned: eviction skips them, since dropping them would free
// nothing and make the next task rebuild what is still in memory. Pinned
// entries still count, so bytes() may exceed the capacity while everything
// in it is in use.
//
// Thread safety: none; callers hold their own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace flight {

template <typename V>
class ByteLru {
 public:
  using InUse = std::function<bool(const V&)>;

  // `in_use` null: nothing is pinned.
  explicit ByteLru(uint64_t capacity_bytes, InUse in_use = nullptr)
      : capacity_(capacity_bytes), in_use_(std::move(in_use)) {}

  // The value of `key` (now the most recently used), or nullopt.
  std::optional<V> get(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }

  bool contains(const std::string& key) const { return index_.count(key) != 0; }

  // Inserts or replaces `key` as the most recently used entry, accounted as
  // `bytes`, then evicts least recently used unpinned entries (possibly this
  // one, when it is unpinned and alone exceeds the capacity) until the total
  // fits or only pinned entries remain.
  void put(const std::string& key, V value, uint64_t bytes) {
    erase(key);
    order_.push_front(Entry{key, std::move(value), bytes});
    index_.emplace(key, order_.begin());
    bytes_ += bytes;
    evict_to_fit();
  }

  bool erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    bytes_ -= it->second->bytes;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  void set_capacity(uint64_t capacity_bytes) {
    capacity_ = capacity_bytes;
    evict_to_fit();
  }

  // Evicts unpinned entries, least recently used first, until the total fits.
  void evict_to_fit() {
    auto it = order_.end();
    while (bytes_ > capacity_ && it != order_.begin()) {
      --it;
      if (in_use_ && in_use_(it->value)) continue;
      bytes_ -= it->bytes;
      index_.erase(it->key);
      it = order_.erase(it);
      ++evictions_;
    }
  }

  uint64_t capacity() const { return capacity_; }
  uint64_t bytes() const { return bytes_; }
  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }
  // Keys from most to least recently used.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(order_.size());
    for (const auto& e : order_) out.push_back(e.key);
    return out;
  }

 private:
  struct Entry {
    std::string key;
    V value;
    uint64_t bytes;
  };

  uint64_t capacity_;
  InUse in_use_;
  uint64_t bytes_ = 0;
  uint64_t evictions_ = 0;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

}  // namespace flight
