// Store: the typed layer over a connector. put(ParamSet) -> Ref; get(Ref) ->
// ParamSet, for a Ref made by any process and any connector.
//
//   auto store = Store::create({{"kind", "redis"}, {"port", 6379}});
//   FLIGHT_ASSIGN_OR_RETURN(Ref ref, (*store)->put(global, {.scope = "round-3"}));
//   ... ref.to_json() travels in a control message ...
//   FLIGHT_ASSIGN_OR_RETURN(ParamSet p, store->get(ref));   // on the consumer
//   store->evict_scope("round-3");                          // nothing left behind
//
// get() resolves through ref.connector: the Store's own connector when the
// config matches, otherwise the process's shared connector for that config
// (registry.h), so a worker's Ref resolves on its aggregator without setup.
//
// Cache: decoded ParamSets, least recently used first out, bounded by the
// encoded size in bytes (objects bigger than the whole budget are not cached).
// A ParamSet returned by get() shares its buffer with the cache and stays valid
// after eviction. Treat returned tensors as read-only (clone() to modify): other
// get()s of the same Ref see the same memory.
//
// Concurrency: all methods are thread-safe. Concurrent get()s of one Ref fetch
// it once (the others wait for that fetch; stats().fetches counts real fetches).
// Connector I/O, encoding and decoding never run under the Store's lock.
//
// Lifetimes: objects stay until evict()/evict_scope(), their TTL lease ends, or
// (memory/tcp) their process exits. Destroying a Store does not evict: its Refs
// may be in use elsewhere.
#pragma once

#include <cstdint>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/codec.h"
#include "transport/connector.h"
#include "transport/ref.h"
#include "transport/update_encoding.h"

namespace flight::transport {

struct PutOptions {
  std::vector<std::string> tags;  // routing hints (multi connector)
  std::string scope;              // e.g. "round-3": evict_scope() removes the scope's objects
  std::optional<double> ttl_s;    // lease, where the connector supports it
  EncodeOptions encoding;         // compressed update encoding (default: raw float32)
};

struct StoreOptions {
  uint64_t cache_bytes = 256ull << 20;  // byte budget of the decoded-object cache; 0 = no cache
  bool cache_puts = true;               // cache what this Store puts (zero-copy views)

  Status validate() const;
  // {cache_bytes: 268435456 | "256MiB", cache_puts: true}; unknown keys are errors.
  static StatusOr<StoreOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct StoreStats {
  uint64_t bytes_put = 0;      // encoded bytes handed to connectors by put()
  uint64_t bytes_fetched = 0;  // encoded bytes received from connectors by get()
  uint64_t puts = 0;
  uint64_t gets = 0;          // get() calls
  uint64_t cache_hits = 0;    // get()s answered by the cache
  uint64_t fetches = 0;       // connector gets (one per miss, however many waited on it)
  uint64_t cached_bytes = 0;  // current cache occupancy
  uint64_t evictions = 0;     // objects evicted through evict()/evict_scope()

  nlohmann::json to_json() const;
  // Sums and differences field by field (cached_bytes included), for totals
  // over several Stores and for what happened between two snapshots.
  StoreStats& operator+=(const StoreStats& o);
  StoreStats operator-(const StoreStats& o) const;
};

class Store {
 public:
  // Builds the connector from `connector_config` (registry.h) and shares it with
  // the process, so Refs naming its config resolve to it.
  static StatusOr<std::unique_ptr<Store>> create(const nlohmann::json& connector_config,
                                                 const StoreOptions& options = {});
  // Uses an existing connector.
  static StatusOr<std::unique_ptr<Store>> create(std::shared_ptr<Connector> connector,
                                                 const StoreOptions& options = {});

  // A Store for resolving Refs when the caller has none:
  // a memory connector and the default options; lives for the whole process.
  static Store& process_default();

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  StatusOr<Ref> put(const ParamSet& params, const PutOptions& options = {});
  // As put(), for bytes this process encoded and sealed itself
  // (EncodingWriter): put as they are, no encode pass. The Ref, the stats and
  // the cache (raw encodings, as put() caches them) are what put() of the
  // decoded ParamSet gives. InvalidArgument if the preamble does not match
  // the bytes' size or checksum.
  StatusOr<Ref> put_encoded(SealedBytes sealed, const PutOptions& options = {});
  // NotFound when the object is gone (evicted, expired, producer exited);
  // DataLoss when the bytes do not match the Ref or fail the codec's checks.
  StatusOr<ParamSet> get(const Ref& ref);
  // The object's encoded bytes, checked as get() checks them (size and
  // checksum against the Ref, then the codec's checksum and structure), not
  // decoded: for a consumer that reads the encoding in place (a fold with
  // accumulate_encoded, which may then skip its own checksum pass). Served from
  // the cache when get() or put() left the object there; never adds to it (a
  // child's update is read once). Errors as get().
  StatusOr<Bytes> get_bytes(const Ref& ref);
  // Removes the object from its connector and this Store's cache (OK if absent).
  Status evict(const Ref& ref);
  // Evicts every object this Store put with `scope`; tries all, returns the
  // first error.
  Status evict_scope(const std::string& scope);
  // Scopes that still hold objects.
  std::vector<std::string> scopes() const;

  StoreStats stats() const;
  void reset_stats();

  Connector& connector() { return *connector_; }
  const nlohmann::json& connector_config() const { return *config_; }
  // The same, shared: the connector of every Ref this Store puts.
  const ConnectorConfig& shared_config() const { return config_; }
  const StoreOptions& options() const { return options_; }

 private:
  Store(std::shared_ptr<Connector> connector, StoreOptions options);

  struct CacheEntry {
    std::string id;
    ParamSet value;
    Bytes encoded;  // the buffer `value` views or was decoded from (checked)
    uint64_t bytes = 0;
  };
  using Result = StatusOr<ParamSet>;

  // Hands encoded bytes to the connector; `cache`: keep a view of them.
  StatusOr<Ref> put_bytes(Bytes bytes, uint32_t checksum, const PutOptions& options, bool cache);
  StatusOr<std::shared_ptr<Connector>> resolve(const ConnectorConfig& config);
  // Connector get, size and checksum against the Ref (not the codec's checks).
  StatusOr<Bytes> fetch_bytes(const Ref& ref);
  Result fetch(const Ref& ref, Bytes* encoded);
  std::string cache_id(const Ref& ref) const;
  void cache_insert_locked(const std::string& id, ParamSet value, Bytes encoded, uint64_t bytes);
  void cache_erase_locked(const std::string& id);

  std::shared_ptr<Connector> connector_;
  ConnectorConfig config_;
  std::string config_dump_;
  StoreOptions options_;

  mutable std::mutex mu_;
  std::list<CacheEntry> lru_;  // front = most recent
  std::unordered_map<std::string, std::list<CacheEntry>::iterator> index_;
  uint64_t cached_bytes_ = 0;
  std::unordered_map<std::string, std::shared_future<Result>> inflight_;
  // scope -> its objects by cache id, and back: evict() is O(1), not a scan of
  // every scope (a round scope holds one object per worker).
  std::map<std::string, std::unordered_map<std::string, Ref>> scopes_;
  std::unordered_map<std::string, std::string> scope_of_;
  StoreStats stats_;
};

}  // namespace flight::transport
