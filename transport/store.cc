#include "transport/store.h"
#include "flight/base/options.h"

#include <algorithm>
#include <exception>

#include "transport/codec.h"
#include "transport/registry.h"

namespace flight::transport {

Status StoreOptions::validate() const { return Status::ok(); }

StatusOr<StoreOptions> StoreOptions::from_json(const nlohmann::json& j) {
  StoreOptions o;
  OptionReader r(j, "store options");
  r.bytes("cache_bytes", &o.cache_bytes).optional("cache_puts", &o.cache_puts);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json StoreOptions::to_json() const {
  return {{"cache_bytes", cache_bytes}, {"cache_puts", cache_puts}};
}

nlohmann::json StoreStats::to_json() const {
  return {{"bytes_put", bytes_put},
          {"bytes_fetched", bytes_fetched},
          {"puts", puts},
          {"gets", gets},
          {"cache_hits", cache_hits},
          {"fetches", fetches},
          {"cached_bytes", cached_bytes},
          {"evictions", evictions}};
}

StoreStats& StoreStats::operator+=(const StoreStats& o) {
  bytes_put += o.bytes_put;
  bytes_fetched += o.bytes_fetched;
  puts += o.puts;
  gets += o.gets;
  cache_hits += o.cache_hits;
  fetches += o.fetches;
  cached_bytes += o.cached_bytes;
  evictions += o.evictions;
  return *this;
}

StoreStats StoreStats::operator-(const StoreStats& o) const {
  StoreStats d;
  d.bytes_put = bytes_put - o.bytes_put;
  d.bytes_fetched = bytes_fetched - o.bytes_fetched;
  d.puts = puts - o.puts;
  d.gets = gets - o.gets;
  d.cache_hits = cache_hits - o.cache_hits;
  d.fetches = fetches - o.fetches;
  d.cached_bytes = cached_bytes;  // a level, not a count: the later snapshot's
  d.evictions = evictions - o.evictions;
  return d;
}

Store::Store(std::shared_ptr<Connector> connector, StoreOptions options)
    : connector_(std::move(connector)),
      config_(connector_->config()),
      config_dump_(config_->dump()),
      options_(std::move(options)) {}

Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::create(const nlohmann::json& connector_config,
                                               const StoreOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  FLIGHT_ASSIGN_OR_RETURN(std::unique_ptr<Connector> c, make_connector(connector_config));
  return create(std::shared_ptr<Connector>(std::move(c)), options);
}

StatusOr<std::unique_ptr<Store>> Store::create(std::shared_ptr<Connector> connector,
                                               const StoreOptions& options) {
  if (!connector) return invalid_argument("Store::create: null connector");
  FLIGHT_RETURN_IF_ERROR(options.validate());
  // Shared, so that other Stores in this process resolve our Refs through the
  // very same connector (for memory: the same space).
  share_connector(connector);
  return std::unique_ptr<Store>(new Store(std::move(connector), options));
}

Store& Store::process_default() {
  static Store* s = [] {
    auto made = create(nlohmann::json{{"kind", "memory"}});
    FLIGHT_CHECK(made.is_ok(), "default store: " + made.status().to_string());
    return made->release();
  }();
  return *s;
}

// Refs of this Store's own connector (the common case) reuse the config's
// dump instead of serialising it on every get; so do Refs of another
// connector whose shared config this thread dumped recently (an aggregator
// resolving its workers' updates: one config object for all of them).
std::string Store::cache_id(const Ref& ref) const {
  if (ref.connector == config_) return ref.key + '\n' + config_dump_;
  thread_local std::vector<std::pair<ConnectorConfig, std::string>> dumps;
  for (const auto& [config, dump] : dumps) {
    if (config.same(ref.connector)) return ref.key + '\n' + dump;
  }
  if (dumps.size() >= 8) dumps.erase(dumps.begin());
  dumps.emplace_back(ref.connector, ref.connector->dump());
  return ref.key + '\n' + dumps.back().second;
}

StatusOr<std::shared_ptr<Connector>> Store::resolve(const ConnectorConfig& config) {
  if (config == config_) return connector_;
  return shared_connector(*config);
}

StatusOr<Ref> Store::put(const ParamSet& params, const PutOptions& options) {
  Bytes bytes;
  uint32_t checksum = 0;
  if (options.encoding.encoding != Encoding::kRaw) {
    FLIGHT_ASSIGN_OR_RETURN(bytes, encode(params, options.encoding));
    FLIGHT_ASSIGN_OR_RETURN(CodecHeader h, peek_header(ByteView(*bytes)));
    checksum = h.checksum;
  } else {
    FLIGHT_ASSIGN_OR_RETURN(uint64_t size, encoded_size(params));
    FLIGHT_ASSIGN_OR_RETURN(std::shared_ptr<Buffer> buf, Buffer::allocate(size));
    FLIGHT_ASSIGN_OR_RETURN(checksum, encode_into(params, buf->data(), buf->size()));
    bytes = Bytes(std::move(buf));
  }
  // Compressed puts are not cached: their decoded view is float32, four times
  // what the byte budget would count.
  return put_bytes(std::move(bytes), checksum, options,
                   options.encoding.encoding == Encoding::kRaw);
}

StatusOr<Ref> Store::put_encoded(SealedBytes sealed, const PutOptions& options) {
  if (!sealed.bytes) return invalid_argument("put_encoded: null buffer");
  FLIGHT_ASSIGN_OR_RETURN(CodecHeader h, peek_header(ByteView(*sealed.bytes)));
  if (h.checksum != sealed.checksum) {
    return invalid_argument("put_encoded: the preamble's checksum " + std::to_string(h.checksum) +
                            " is not the sealed one " + std::to_string(sealed.checksum));
  }
  return put_bytes(std::move(sealed.bytes), sealed.checksum, options, h.version == kCodecVersion);
}

StatusOr<Ref> Store::put_bytes(Bytes bytes, uint32_t checksum, const PutOptions& options,
                               bool cache) {
  const uint64_t size = bytes->size();
  PutHints hints;
  hints.tags = options.tags;
  hints.ttl_s = options.ttl_s;
  FLIGHT_ASSIGN_OR_RETURN(std::string key, connector_->put_shared(bytes, hints));
  Ref ref;
  ref.connector = config_;
  ref.key = std::move(key);
  ref.size = size;
  ref.checksum = checksum;
  std::optional<ParamSet> view;
  if (cache && options_.cache_puts && size <= options_.cache_bytes) {
    // Views of the buffer just encoded: no copy and no checksum pass.
    auto decoded = decode_trusted(bytes);
    if (decoded.is_ok()) view = std::move(*decoded);
  }
  std::string id = cache_id(ref);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.puts;
  stats_.bytes_put += size;
  if (!options.scope.empty()) {
    scopes_[options.scope].emplace(id, ref);
    scope_of_[id] = options.scope;
  }
  if (view) cache_insert_locked(id, std::move(*view), std::move(bytes), size);
  return ref;
}

StatusOr<Bytes> Store::fetch_bytes(const Ref& ref) {
  FLIGHT_ASSIGN_OR_RETURN(std::shared_ptr<Connector> conn, resolve(ref.connector));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.fetches;
  }
  FLIGHT_ASSIGN_OR_RETURN(std::optional<Bytes> got, conn->get(ref.key));
  if (!got) {
    return not_found("object '" + ref.key + "' is not in the " + conn->kind() +
                     " connector (evicted, expired, or its producer exited)");
  }
  Bytes bytes = std::move(*got);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_fetched += bytes->size();
  }
  if (bytes->size() != ref.size) {
    return data_loss("object '" + ref.key + "' has " + std::to_string(bytes->size()) +
                     " bytes, its Ref says " + std::to_string(ref.size));
  }
  FLIGHT_ASSIGN_OR_RETURN(CodecHeader header, peek_header(ByteView(*bytes)));
  if (header.checksum != ref.checksum) {
    return data_loss("object '" + ref.key + "' is not the one its Ref names (checksum " +
                     std::to_string(header.checksum) + " vs " + std::to_string(ref.checksum) + ")");
  }
  return bytes;
}

Store::Result Store::fetch(const Ref& ref, Bytes* encoded) {
  FLIGHT_ASSIGN_OR_RETURN(*encoded, fetch_bytes(ref));
  return decode(*encoded);
}

StatusOr<Bytes> Store::get_bytes(const Ref& ref) {
  std::string id = cache_id(ref);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.gets;
    auto hit = index_.find(id);
    if (hit != index_.end() && hit->second->encoded) {
      // Encoded here or verified when fetched.
      ++stats_.cache_hits;
      lru_.splice(lru_.begin(), lru_, hit->second);
      return hit->second->encoded;
    }
  }
  try {
    FLIGHT_ASSIGN_OR_RETURN(Bytes bytes, fetch_bytes(ref));
    // The checks decode() makes (checksum, table, payloads), without decoding.
    Status checked = inspect_encoded(bytes).status();
    if (!checked.is_ok()) return checked.with_context("object '" + ref.key + "'");
    return bytes;
  } catch (const std::exception& e) {
    return internal_error(std::string("fetching '") + ref.key + "': " + e.what());
  }
}

StatusOr<ParamSet> Store::get(const Ref& ref) {
  std::string id = cache_id(ref);
  // Made only by the thread that fetches: a cache hit allocates no promise.
  std::optional<std::promise<Result>> promise;
  std::shared_future<Result> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.gets;
    auto hit = index_.find(id);
    if (hit != index_.end()) {
      ++stats_.cache_hits;
      lru_.splice(lru_.begin(), lru_, hit->second);
      return hit->second->value;
    }
    auto pending = inflight_.find(id);
    if (pending != inflight_.end()) {
      waiting = pending->second;
    } else {
      promise.emplace();
      inflight_.emplace(id, promise->get_future().share());
    }
  }
  // Another thread is fetching this Ref: share its result.
  if (waiting.valid()) return waiting.get();
  Result result = internal_error("fetch did not complete");
  Bytes encoded;
  try {
    result = fetch(ref, &encoded);
  } catch (const std::exception& e) {
    // Decoding runs ATen code; nothing it throws may leave waiters hanging.
    result = internal_error(std::string("fetching '") + ref.key + "': " + e.what());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (result.is_ok() && ref.size <= options_.cache_bytes) {
      cache_insert_locked(id, *result, std::move(encoded), ref.size);
    }
    inflight_.erase(id);
  }
  promise->set_value(result);
  return result;
}

Status Store::evict(const Ref& ref) {
  {
    const std::string id = cache_id(ref);
    std::lock_guard<std::mutex> lock(mu_);
    cache_erase_locked(id);
    auto owner = scope_of_.find(id);
    if (owner != scope_of_.end()) {
      auto scope = scopes_.find(owner->second);
      if (scope != scopes_.end()) {
        scope->second.erase(id);
        if (scope->second.empty()) scopes_.erase(scope);
      }
      scope_of_.erase(owner);
    }
    ++stats_.evictions;
  }
  FLIGHT_ASSIGN_OR_RETURN(std::shared_ptr<Connector> conn, resolve(ref.connector));
  return conn->evict(ref.key);
}

Status Store::evict_scope(const std::string& scope) {
  std::vector<Ref> refs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = scopes_.find(scope);
    if (it == scopes_.end()) return Status::ok();
    refs.reserve(it->second.size());
    for (auto& [id, r] : it->second) {
      cache_erase_locked(id);
      scope_of_.erase(id);
      refs.push_back(std::move(r));
    }
    scopes_.erase(it);
    stats_.evictions += refs.size();
  }
  Status first = Status::ok();
  for (const auto& r : refs) {
    auto conn = resolve(r.connector);
    Status st = conn.is_ok() ? (*conn)->evict(r.key) : conn.status();
    if (!st.is_ok() && first.is_ok()) first = st.with_context("evicting scope '" + scope + "'");
  }
  return first;
}

std::vector<std::string> Store::scopes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& kv : scopes_) out.push_back(kv.first);
  return out;
}

StoreStats Store::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  StoreStats s = stats_;
  s.cached_bytes = cached_bytes_;
  return s;
}

void Store::reset_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = StoreStats{};
}

void Store::cache_insert_locked(const std::string& id, ParamSet value, Bytes encoded,
                                uint64_t bytes) {
  if (bytes > options_.cache_bytes || options_.cache_bytes == 0) return;
  cache_erase_locked(id);
  // Evicted ParamSets stay valid for whoever holds them (shared buffers); the
  // cache just stops pointing at them.
  while (cached_bytes_ + bytes > options_.cache_bytes && !lru_.empty()) {
    cached_bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().id);
    lru_.pop_back();
  }
  lru_.push_front(CacheEntry{id, std::move(value), std::move(encoded), bytes});
  index_[id] = lru_.begin();
  cached_bytes_ += bytes;
}

void Store::cache_erase_locked(const std::string& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  cached_bytes_ -= it->second->bytes;
  lru_.erase(it->second);
  index_.erase(it);
}

}  // namespace flight::transport
