#include "transport/ref.h"
#include "flight/base/options.h"

#include <cstdio>

namespace flight::transport {

nlohmann::json Ref::to_json() const {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", checksum);
  return {{"connector", connector}, {"key", key}, {"size", size}, {"checksum", hex}};
}

StatusOr<Ref> Ref::from_json(const nlohmann::json& j) {
  Ref r;
  std::string hex;
  OptionReader in(j, "ref");
  in.required("connector", &r.connector)
      .required("key", &r.key)
      .required("size", &r.size)
      .required("checksum", &hex);
  FLIGHT_RETURN_IF_ERROR(in.finish());
  if (!r.connector.is_object() || !r.connector.contains("kind")) {
    return invalid_argument("ref: 'connector' must be a connector config object, got " +
                            r.connector.dump());
  }
  if (r.key.empty()) return invalid_argument("ref: 'key' is empty");
  if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return invalid_argument("ref: 'checksum' must be 8 hex digits, got '" + hex + "'");
  }
  r.checksum = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  return r;
}

}  // namespace flight::transport
