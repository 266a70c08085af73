// ObjectTable: key -> Bytes with optional expiry; the storage behind the memory
// connector and the tcp connector's server. Expired objects read as missing and
// are swept on later puts.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "transport/buffer.h"

namespace flight::transport {

class ObjectTable {
 public:
  void put(const std::string& key, Bytes value, std::optional<double> ttl_s);
  std::optional<Bytes> get(const std::string& key);
  bool exists(const std::string& key);
  void erase(const std::string& key);
  size_t size();

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Bytes value;
    Clock::time_point expiry;  // time_point::max() when the object has no lease
  };
  // Requires mu_; drops `it` and returns true when it has expired.
  bool expired_locked(std::unordered_map<std::string, Entry>::iterator it, Clock::time_point now);

  std::mutex mu_;
  std::unordered_map<std::string, Entry> objects_;
  size_t with_lease_ = 0;
  Clock::time_point next_sweep_{};
};

}  // namespace flight::transport
