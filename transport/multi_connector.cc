#include "transport/multi_connector.h"

#include <algorithm>
#include <map>
#include <set>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "transport/registry.h"

namespace flight::transport {
namespace {

class MultiConnector : public Connector {
 public:
  struct Route {
    MultiRule rule;
    std::unique_ptr<Connector> connector;
  };

  explicit MultiConnector(std::vector<Route> routes) : routes_(std::move(routes)) {}

  std::string kind() const override { return "multi"; }

  StatusOr<std::string> put(ByteView value, const PutHints& hints) override {
    FLIGHT_ASSIGN_OR_RETURN(Route * r, route(value.size, hints));
    FLIGHT_ASSIGN_OR_RETURN(std::string key, r->connector->put(value, hints));
    return r->rule.name + ":" + key;
  }

  StatusOr<std::string> put_shared(Bytes value, const PutHints& hints) override {
    if (!value) return invalid_argument("multi connector: put_shared of a null buffer");
    FLIGHT_ASSIGN_OR_RETURN(Route * r, route(value->size(), hints));
    FLIGHT_ASSIGN_OR_RETURN(std::string key, r->connector->put_shared(std::move(value), hints));
    return r->rule.name + ":" + key;
  }

  StatusOr<std::optional<Bytes>> get(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(auto parts, split_key(key));
    return parts.first->connector->get(parts.second);
  }

  StatusOr<std::vector<std::optional<Bytes>>> get_batch(
      const std::vector<std::string>& keys) override {
    // One batch per underlying connector, so each can pipeline its share.
    std::map<Route*, std::vector<size_t>> groups;
    std::vector<std::string> sub(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      FLIGHT_ASSIGN_OR_RETURN(auto parts, split_key(keys[i]));
      groups[parts.first].push_back(i);
      sub[i] = parts.second;
    }
    std::vector<std::optional<Bytes>> out(keys.size());
    for (auto& [route, idx] : groups) {
      std::vector<std::string> ks;
      for (size_t i : idx) ks.push_back(sub[i]);
      FLIGHT_ASSIGN_OR_RETURN(auto values, route->connector->get_batch(ks));
      for (size_t j = 0; j < idx.size(); ++j) out[idx[j]] = std::move(values[j]);
    }
    return out;
  }

  StatusOr<bool> exists(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(auto parts, split_key(key));
    return parts.first->connector->exists(parts.second);
  }

  Status evict(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(auto parts, split_key(key));
    return parts.first->connector->evict(parts.second);
  }

  nlohmann::json config() const override {
    MultiConnectorOptions o;
    for (const auto& r : routes_) {
      MultiRule rule = r.rule;
      rule.connector = r.connector->config();  // resolved form: memory names, absolute dirs
      o.connectors.push_back(std::move(rule));
    }
    return o.to_json();
  }

 private:
  StatusOr<Route*> route(uint64_t size, const PutHints& hints) {
    Route* best = nullptr;
    for (auto& r : routes_) {
      if (size < r.rule.min_size || size > r.rule.max_size) continue;
      bool tags_ok = std::all_of(r.rule.tags.begin(), r.rule.tags.end(), [&](const std::string& t) {
        return std::find(hints.tags.begin(), hints.tags.end(), t) != hints.tags.end();
      });
      if (!tags_ok) continue;
      if (best == nullptr || r.rule.priority > best->rule.priority) best = &r;
    }
    if (best == nullptr) {
      return failed_precondition("multi connector: no rule accepts a put of " +
                                 std::to_string(size) + " bytes with tags [" +
                                 join(hints.tags, ", ") + "]");
    }
    return best;
  }

  StatusOr<std::pair<Route*, std::string>> split_key(const std::string& key) {
    size_t colon = key.find(':');
    if (colon == std::string::npos) {
      return invalid_argument("multi connector: bad key '" + key + "' (expected <rule>:<key>)");
    }
    std::string name = key.substr(0, colon);
    for (auto& r : routes_) {
      if (r.rule.name == name) return std::make_pair(&r, key.substr(colon + 1));
    }
    return invalid_argument("multi connector: key '" + key + "' names no rule '" + name + "'");
  }

  std::vector<Route> routes_;
};

}  // namespace

Status MultiRule::validate() const {
  if (name.empty()) return invalid_argument("multi connector: a rule has no 'name'");
  for (char c : name) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_';
    if (!ok) return invalid_argument("multi connector: rule name '" + name + "' has a '" + c + "'");
  }
  if (!connector.is_object()) {
    return invalid_argument("multi connector: rule '" + name + "' needs a 'connector' object");
  }
  if (min_size > max_size) {
    return invalid_argument("multi connector: rule '" + name + "' has min_size > max_size");
  }
  return Status::ok();
}

StatusOr<MultiRule> MultiRule::from_json(const nlohmann::json& j) {
  std::string what = "multi connector rule";
  if (j.is_object() && j.contains("name") && j["name"].is_string()) {
    what += " '" + j["name"].get<std::string>() + "'";
  }
  MultiRule r;
  OptionReader in(j, what);
  in.optional("name", &r.name)
      .optional("connector", &r.connector)
      .bytes("min_size", &r.min_size)
      .bytes("max_size", &r.max_size)  // null: no upper bound
      .optional("tags", &r.tags)
      .optional("priority", &r.priority);
  FLIGHT_RETURN_IF_ERROR(in.finish());
  FLIGHT_RETURN_IF_ERROR(r.validate());
  return r;
}

nlohmann::json MultiRule::to_json() const {
  nlohmann::json j = {{"name", name},        {"connector", connector}, {"min_size", min_size},
                      {"max_size", nullptr}, {"tags", tags},           {"priority", priority}};
  if (max_size != std::numeric_limits<uint64_t>::max()) j["max_size"] = max_size;
  return j;
}

Status MultiConnectorOptions::validate() const {
  if (connectors.empty()) return invalid_argument("multi connector: 'connectors' is empty");
  std::set<std::string> names;
  for (const auto& r : connectors) {
    FLIGHT_RETURN_IF_ERROR(r.validate());
    if (!names.insert(r.name).second) {
      return invalid_argument("multi connector: two rules are named '" + r.name + "'");
    }
  }
  return Status::ok();
}

StatusOr<MultiConnectorOptions> MultiConnectorOptions::from_json(const nlohmann::json& j) {
  MultiConnectorOptions o;
  nlohmann::json rules;
  OptionReader in(j, "multi connector");
  in.known({"kind"}).required("connectors", &rules);
  if (in.has("connectors") && !rules.is_array()) in.fail("connectors", "must be a list of rules");
  FLIGHT_RETURN_IF_ERROR(in.finish());
  for (const auto& r : rules) {
    FLIGHT_ASSIGN_OR_RETURN(MultiRule rule, MultiRule::from_json(r));
    o.connectors.push_back(std::move(rule));
  }
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json MultiConnectorOptions::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : connectors) list.push_back(r.to_json());
  return {{"kind", "multi"}, {"connectors", list}};
}

StatusOr<std::unique_ptr<Connector>> make_multi_connector(const MultiConnectorOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  std::vector<MultiConnector::Route> routes;
  for (const auto& rule : options.connectors) {
    auto c = make_connector(rule.connector);
    if (!c.is_ok()) return c.status().with_context("multi connector rule '" + rule.name + "'");
    routes.push_back({rule, std::move(*c)});
  }
  return std::unique_ptr<Connector>(new MultiConnector(std::move(routes)));
}

}  // namespace flight::transport
