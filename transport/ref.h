// Ref: a small, self-describing, JSON-serialisable reference to a ParamSet put
// into a Store — what travels in control messages instead of the weights.
//
//   {"connector": {kind: tcp, ...}, "key": "10.0.0.5:40123/1048640/9f..",
//    "size": 1048640, "checksum": "1a2b3c4d"}
//
// connector is the producing connector's config(), so any process can rebuild
// it; size and checksum (the codec's CRC32C, 8 hex digits in JSON) let the
// consumer check it got exactly the object that was put.
//
// In process, the config is a ConnectorConfig: one immutable JSON shared by
// every Ref that names the connector, so copying a Ref (a round copies each
// a few times: task args, results, the parent's mail) copies a pointer, not a
// JSON object. The wire form is unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::transport {

// An immutable connector config, shared. Equality compares the JSON (a
// pointer compare first: configs handed out by one Store or one driver are
// the same object).
class ConnectorConfig {
 public:
  ConnectorConfig();                       // an empty object
  ConnectorConfig(nlohmann::json config);  // NOLINT(google-explicit-constructor): a config is JSON

  const nlohmann::json& json() const { return *config_; }
  const nlohmann::json& operator*() const { return *config_; }
  const nlohmann::json* operator->() const { return config_.get(); }
  // The very same shared object (a cheap test before comparing the JSON).
  bool same(const ConnectorConfig& o) const { return config_ == o.config_; }

  friend bool operator==(const ConnectorConfig& a, const ConnectorConfig& b) {
    return a.config_ == b.config_ || *a.config_ == *b.config_;
  }
  friend bool operator!=(const ConnectorConfig& a, const ConnectorConfig& b) { return !(a == b); }
  friend bool operator==(const ConnectorConfig& a, const nlohmann::json& b) {
    return *a.config_ == b;
  }

 private:
  std::shared_ptr<const nlohmann::json> config_;
};

struct Ref {
  ConnectorConfig connector;
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
