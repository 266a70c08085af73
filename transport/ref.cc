#include "transport/ref.h"
#include "flight/base/options.h"

#include <cstdio>

namespace flight::transport {

ConnectorConfig::ConnectorConfig() {
  // Default-constructed Refs are common (results before they are filled):
  // they share one empty object instead of allocating one each.
  static const auto* empty = new std::shared_ptr<const nlohmann::json>(
      std::make_shared<const nlohmann::json>(nlohmann::json::object()));
  config_ = *empty;
}

ConnectorConfig::ConnectorConfig(nlohmann::json config)
    : config_(std::make_shared<const nlohmann::json>(std::move(config))) {}

nlohmann::json Ref::to_json() const {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", checksum);
  return {{"connector", *connector}, {"key", key}, {"size", size}, {"checksum", hex}};
}

StatusOr<Ref> Ref::from_json(const nlohmann::json& j) {
  Ref r;
  std::string hex;
  nlohmann::json connector;
  OptionReader in(j, "ref");
  in.required("connector", &connector)
      .required("key", &r.key)
      .required("size", &r.size)
      .required("checksum", &hex);
  FLIGHT_RETURN_IF_ERROR(in.finish());
  if (!connector.is_object() || !connector.contains("kind")) {
    return invalid_argument("ref: 'connector' must be a connector config object, got " +
                            connector.dump());
  }
  r.connector = std::move(connector);
  if (r.key.empty()) return invalid_argument("ref: 'key' is empty");
  if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return invalid_argument("ref: 'checksum' must be 8 hex digits, got '" + hex + "'");
  }
  r.checksum = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  return r;
}

}  // namespace flight::transport
