// Ref: a small, self-describing, JSON-serialisable reference to a ParamSet put
// into a Store — what travels in control messages instead of the weights.
//
//   {"connector": {kind: tcp, ...}, "key": "10.0.0.5:40123/1048640/9f..",
//    "size": 1048640, "checksum": "1a2b3c4d"}
//
// connector is the producing connector's config(), so any process can rebuild
// it; size and checksum (the codec's CRC32C, 8 hex digits in JSON) let the
// consumer check it got exactly the object that was put.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::transport {

struct Ref {
  nlohmann::json connector = nlohmann::json::object();
  std::string key;
  uint64_t size = 0;      // encoded bytes
  uint32_t checksum = 0;  // CRC32C from the encoding's preamble

  nlohmann::json to_json() const;
  // InvalidArgument naming the field for missing/ill-typed/unknown fields.
  static StatusOr<Ref> from_json(const nlohmann::json& j);

  bool operator==(const Ref& o) const {
    return key == o.key && size == o.size && checksum == o.checksum && connector == o.connector;
  }
  bool operator!=(const Ref& o) const { return !(*this == o); }
};

}  // namespace flight::transport
