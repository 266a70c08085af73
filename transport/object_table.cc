#include "transport/object_table.h"

#include <vector>

namespace flight::transport {

void ObjectTable::put(const std::string& key, Bytes value, std::optional<double> ttl_s) {
  Clock::time_point now = Clock::now();
  Clock::time_point expiry = Clock::time_point::max();
  if (ttl_s) {
    expiry =
        now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*ttl_s));
  }
  std::vector<Bytes> dropped;  // released after unlocking: freeing a large buffer is not free
  std::lock_guard<std::mutex> lock(mu_);
  // Sweep expired leases at most once a second, so a run that only uses TTLs
  // for cleanup does not accumulate dead objects.
  if (with_lease_ > 0 && now >= next_sweep_) {
    for (auto it = objects_.begin(); it != objects_.end();) {
      if (it->second.expiry <= now) {
        dropped.push_back(std::move(it->second.value));
        --with_lease_;
        it = objects_.erase(it);
      } else {
        ++it;
      }
    }
    next_sweep_ = now + std::chrono::seconds(1);
  }
  auto [it, inserted] = objects_.try_emplace(key);
  if (!inserted) {
    if (it->second.expiry != Clock::time_point::max()) --with_lease_;
    dropped.push_back(std::move(it->second.value));
  }
  it->second.value = std::move(value);
  it->second.expiry = expiry;
  if (ttl_s) ++with_lease_;
}

bool ObjectTable::expired_locked(std::unordered_map<std::string, Entry>::iterator it,
                                 Clock::time_point now) {
  if (it->second.expiry > now) return false;
  --with_lease_;
  objects_.erase(it);
  return true;
}

std::optional<Bytes> ObjectTable::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  if (it->second.expiry != Clock::time_point::max() && expired_locked(it, Clock::now())) {
    return std::nullopt;
  }
  return it->second.value;
}

bool ObjectTable::exists(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return false;
  return it->second.expiry == Clock::time_point::max() || !expired_locked(it, Clock::now());
}

void ObjectTable::erase(const std::string& key) {
  Bytes dropped;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  if (it->second.expiry != Clock::time_point::max()) --with_lease_;
  dropped = std::move(it->second.value);
  objects_.erase(it);
}

size_t ObjectTable::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

}  // namespace flight::transport
