// The `file` connector: one file per object in a directory, typically on a
// shared file system. put writes a temp file then renames it into place
// (atomic), so a reader never sees half an object. TTL hints are ignored (files
// stay until evicted; use Store scopes for cleanup).
//
//   {kind: file, dir: "/shared/flight-objects", fsync: false}
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "transport/connector.h"

namespace flight::transport {

struct FileConnectorOptions {
  std::string dir;     // required; created if missing
  bool fsync = false;  // fsync each object before the rename (durability across crashes)

  Status validate() const;
  static StatusOr<FileConnectorOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

StatusOr<std::unique_ptr<Connector>> make_file_connector(const FileConnectorOptions& options);

}  // namespace flight::transport
