// Building connectors from configuration: `connector: {kind: redis, host: ..., port: ...}`
// in YAML (converted to JSON by the engine) becomes a connector through the
// registry. Every connector's config() round-trips through make_connector.
//
// Thread safety: all functions may be called concurrently.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "flight/base/registry.h"
#include "transport/connector.h"

namespace flight::transport {

using ConnectorRegistry = Registry<Connector, const nlohmann::json&>;

// The process-wide registry, with memory, file, redis, tcp and multi registered.
// Factories receive the whole config object (kind included) and reject unknown keys.
ConnectorRegistry& connector_registry();

// A new connector from {kind: ..., ...}. InvalidArgument for a missing or unknown
// kind (listing the known ones, with a "did you mean") and for bad options.
StatusOr<std::unique_ptr<Connector>> make_connector(const nlohmann::json& config);

// The process's shared connector for `config`: built on first use and kept
// until clear_shared_connectors(), so resolving many Refs that name one
// connector reuses its connections (and, for memory, its space). Connectors
// registered with share_connector are found under their config().
StatusOr<std::shared_ptr<Connector>> shared_connector(const nlohmann::json& config);

// Makes `connector` the shared connector for its config() (first one wins);
// returns the one now registered.
std::shared_ptr<Connector> share_connector(std::shared_ptr<Connector> connector);

// Drops the process's shared connectors (tests; objects held only by them go).
void clear_shared_connectors();

}  // namespace flight::transport
