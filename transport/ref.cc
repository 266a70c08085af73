#include "transport/ref.h"

#include <cstdio>

#include "transport/json_options.h"

namespace flight::transport {

nlohmann::json Ref::to_json() const {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", checksum);
  return {{"connector", connector}, {"key", key}, {"size", size}, {"checksum", hex}};
}

StatusOr<Ref> Ref::from_json(const nlohmann::json& j) {
  const std::string what = "ref";
  FLIGHT_RETURN_IF_ERROR(
      json_options::check_keys(j, what, {"connector", "key", "size", "checksum"}));
  for (const char* field : {"connector", "key", "size", "checksum"}) {
    if (!j.contains(field)) return invalid_argument(std::string("ref: missing '") + field + "'");
  }
  Ref r;
  if (!j["connector"].is_object() || !j["connector"].contains("kind")) {
    return invalid_argument("ref: 'connector' must be a connector config object, got " +
                            j["connector"].dump());
  }
  r.connector = j["connector"];
  FLIGHT_RETURN_IF_ERROR(json_options::read(j, what, "key", &r.key));
  if (r.key.empty()) return invalid_argument("ref: 'key' is empty");
  if (!j["size"].is_number_unsigned() &&
      !(j["size"].is_number_integer() && j["size"].get<int64_t>() >= 0)) {
    return invalid_argument("ref: 'size' must be a non-negative integer, got " + j["size"].dump());
  }
  r.size = j["size"].get<uint64_t>();
  std::string hex;
  FLIGHT_RETURN_IF_ERROR(json_options::read(j, what, "checksum", &hex));
  if (hex.size() != 8 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return invalid_argument("ref: 'checksum' must be 8 hex digits, got '" + hex + "'");
  }
  r.checksum = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  return r;
}

}  // namespace flight::transport
