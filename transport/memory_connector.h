// The `memory` connector: objects live in a named in-process space and are
// shared, not copied, on get (and on put_shared). Connectors built from the same
// config in one process see the same space; another process sees an empty one.
// TTL leases are honoured (expired objects read as missing).
//
//   {kind: memory, name: "run-1"}   name optional: omitted -> a new unique space
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "transport/connector.h"

namespace flight::transport {

struct MemoryConnectorOptions {
  std::string name;  // space name; "" = a fresh space named "mem-<random>"

  Status validate() const;
  static StatusOr<MemoryConnectorOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

StatusOr<std::unique_ptr<Connector>> make_memory_connector(const MemoryConnectorOptions& options);

}  // namespace flight::transport
