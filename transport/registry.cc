#include "transport/registry.h"

#include <map>
#include <mutex>

#include "transport/file_connector.h"
#include "transport/memory_connector.h"
#include "transport/multi_connector.h"
#include "transport/redis_connector.h"
#include "transport/tcp_connector.h"

namespace flight::transport {
namespace {

template <typename Options>
StatusOr<std::unique_ptr<Connector>> build(
    const nlohmann::json& j, StatusOr<std::unique_ptr<Connector>> (*make)(const Options&)) {
  FLIGHT_ASSIGN_OR_RETURN(Options o, Options::from_json(j));
  return make(o);
}

void register_builtins(ConnectorRegistry* r) {
  r->add("memory", [](const nlohmann::json& j) { return build(j, &make_memory_connector); });
  r->add("file", [](const nlohmann::json& j) { return build(j, &make_file_connector); });
  r->add("redis", [](const nlohmann::json& j) { return build(j, &make_redis_connector); });
  r->add("tcp", [](const nlohmann::json& j) { return build(j, &make_tcp_connector); });
  r->add("multi", [](const nlohmann::json& j) { return build(j, &make_multi_connector); });
}

struct SharedConnectors {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Connector>> by_config;
};

SharedConnectors& shared() {
  static auto* s = new SharedConnectors();
  return *s;
}

}  // namespace

ConnectorRegistry& connector_registry() {
  static ConnectorRegistry* r = [] {
    auto* reg = new ConnectorRegistry("connector");
    register_builtins(reg);
    return reg;
  }();
  return *r;
}

StatusOr<std::unique_ptr<Connector>> make_connector(const nlohmann::json& config) {
  if (!config.is_object()) {
    return invalid_argument(
        "connector config must be an object like {\"kind\": \"redis\", ...}, got " + config.dump());
  }
  auto kind = config.find("kind");
  if (kind == config.end() || !kind->is_string()) {
    return invalid_argument("connector config needs a string 'kind' (one of " +
                            join(connector_registry().names(), ", ") + "): " + config.dump());
  }
  auto c = connector_registry().create(kind->get<std::string>(), config);
  if (!c.is_ok() && c.status().code() == StatusCode::kNotFound) {
    return invalid_argument("connector config: " + c.status().message());
  }
  return c;
}

StatusOr<std::shared_ptr<Connector>> shared_connector(const nlohmann::json& config) {
  std::string id = config.dump();
  auto& s = shared();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.by_config.find(id);
    if (it != s.by_config.end()) return it->second;
  }
  // Built outside the lock (a redis connector may resolve hosts); if two threads
  // race, the first registered wins.
  FLIGHT_ASSIGN_OR_RETURN(std::unique_ptr<Connector> made, make_connector(config));
  std::shared_ptr<Connector> c(std::move(made));
  std::lock_guard<std::mutex> lock(s.mu);
  auto [it, inserted] = s.by_config.emplace(id, c);
  if (inserted) s.by_config.emplace(c->config().dump(), c);
  return it->second;
}

std::shared_ptr<Connector> share_connector(std::shared_ptr<Connector> connector) {
  std::string id = connector->config().dump();
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mu);
  auto [it, inserted] = s.by_config.emplace(id, std::move(connector));
  return it->second;
}

void clear_shared_connectors() {
  std::map<std::string, std::shared_ptr<Connector>> dropped;
  auto& s = shared();
  std::lock_guard<std::mutex> lock(s.mu);
  dropped.swap(s.by_config);
}

}  // namespace flight::transport
