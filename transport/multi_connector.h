// The `multi` connector: routes each put to one of several connectors by rules
// (after ProxyStore's MultiConnector). A rule matches a put when the value's size
// is in [min_size, max_size] and the put carries every tag the rule lists; among
// matching rules the highest priority wins (ties: the earlier rule). Keys are
// "<rule name>:<key of the chosen connector>", so get/exists/evict go straight to
// the connector that holds the object. A put no rule matches is
// FailedPrecondition naming the size and tags.
//
//   {kind: multi, connectors: [
//      {name: small, connector: {kind: redis, ...}, max_size: "1MiB"},
//      {name: large, connector: {kind: tcp}, min_size: "1MiB", priority: 1},
//      {name: shared, connector: {kind: file, dir: /shared}, tags: [checkpoint], priority: 2}]}
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "transport/connector.h"

namespace flight::transport {

struct MultiRule {
  std::string name;          // key prefix; letters, digits, '-', '_'
  nlohmann::json connector;  // any connector config (multi included)
  uint64_t min_size = 0;
  uint64_t max_size = std::numeric_limits<uint64_t>::max();
  std::vector<std::string> tags;  // all required; empty matches any put
  int priority = 0;

  Status validate() const;
  static StatusOr<MultiRule> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct MultiConnectorOptions {
  std::vector<MultiRule> connectors;  // at least one; names unique

  Status validate() const;
  static StatusOr<MultiConnectorOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

StatusOr<std::unique_ptr<Connector>> make_multi_connector(const MultiConnectorOptions& options);

}  // namespace flight::transport
