#include "transport/memory_connector.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>

#include "flight/base/ids.h"
#include "flight/base/options.h"
#include "transport/object_table.h"

namespace flight::transport {
namespace {

// Named spaces, alive while any connector uses them.
std::shared_ptr<ObjectTable> space(const std::string& name) {
  static std::mutex mu;
  static auto* spaces = new std::map<std::string, std::weak_ptr<ObjectTable>>();
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = spaces->begin(); it != spaces->end();) {
    it = it->second.expired() ? spaces->erase(it) : std::next(it);
  }
  auto& slot = (*spaces)[name];
  auto table = slot.lock();
  if (!table) {
    table = std::make_shared<ObjectTable>();
    slot = table;
  }
  return table;
}

// Keys are unique within the process, which is all a memory space spans: a
// counter from a random start, 15 characters, so a key (copied into every
// task message and result that names the object) fits std::string's inline
// buffer.
std::string next_key() {
  static std::atomic<uint64_t> next{std::stoull(random_hex(12), nullptr, 16) << 8};
  static const char kHex[] = "0123456789abcdef";
  uint64_t v = next.fetch_add(1, std::memory_order_relaxed);
  std::string key(15, 'm');
  for (size_t i = 14; i >= 1; --i, v >>= 4) key[i] = kHex[v & 0xf];
  return key;
}

class MemoryConnector : public Connector {
 public:
  explicit MemoryConnector(MemoryConnectorOptions options)
      : options_(std::move(options)), table_(space(options_.name)) {}

  std::string kind() const override { return "memory"; }

  StatusOr<std::string> put(ByteView value, const PutHints& hints) override {
    FLIGHT_ASSIGN_OR_RETURN(auto copy, Buffer::copy_of(value.data, value.size));
    return put_shared(std::move(copy), hints);
  }

  StatusOr<std::string> put_shared(Bytes value, const PutHints& hints) override {
    if (!value) return invalid_argument("memory connector: put_shared of a null buffer");
    std::string key = next_key();
    table_->put(key, std::move(value), hints.ttl_s);
    return key;
  }

  StatusOr<std::optional<Bytes>> get(const std::string& key) override { return table_->get(key); }

  StatusOr<bool> exists(const std::string& key) override { return table_->exists(key); }

  Status evict(const std::string& key) override {
    table_->erase(key);
    return Status::ok();
  }

  nlohmann::json config() const override { return options_.to_json(); }

 private:
  MemoryConnectorOptions options_;
  std::shared_ptr<ObjectTable> table_;
};

}  // namespace

Status MemoryConnectorOptions::validate() const { return Status::ok(); }

StatusOr<MemoryConnectorOptions> MemoryConnectorOptions::from_json(const nlohmann::json& j) {
  MemoryConnectorOptions o;
  OptionReader r(j, "memory connector");
  r.known({"kind"}).optional("name", &o.name);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json MemoryConnectorOptions::to_json() const {
  return {{"kind", "memory"}, {"name", name}};
}

StatusOr<std::unique_ptr<Connector>> make_memory_connector(const MemoryConnectorOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  MemoryConnectorOptions o = options;
  if (o.name.empty()) o.name = "mem-" + random_hex(16);
  return std::unique_ptr<Connector>(new MemoryConnector(std::move(o)));
}

}  // namespace flight::transport
