#include "flight/engine/yaml_json.h"

#include <yaml-cpp/yaml.h>

namespace flight::engine {
namespace {

void emit(YAML::Emitter& e, const nlohmann::json& v) {
  if (v.is_object()) {
    e << YAML::BeginMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      e << YAML::Key << it.key() << YAML::Value;
      emit(e, it.value());
    }
    e << YAML::EndMap;
  } else if (v.is_array()) {
    bool flat = std::all_of(v.begin(), v.end(), [](const auto& x) { return x.is_primitive(); });
    e << (flat ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
    for (const auto& x : v) emit(e, x);
    e << YAML::EndSeq;
  } else if (v.is_null()) {
    e << YAML::Null;
  } else if (v.is_boolean()) {
    e << v.get<bool>();
  } else if (v.is_number_integer()) {
    e << v.get<int64_t>();
  } else if (v.is_number_unsigned()) {
    e << v.get<uint64_t>();
  } else if (v.is_number_float()) {
    // Shortest text that reads back to the same double.
    e << YAML::Precision(17) << v.get<double>();
  } else {
    const std::string s = v.get<std::string>();
    // Quote strings that would otherwise read back as another type.
    if (!topology::plain_scalar_value(s).is_string())
      e << YAML::DoubleQuoted << s;
    else
      e << s;
  }
}

}  // namespace

nlohmann::json parse_yaml_scalar(const std::string& text) {
  auto doc = parse_yaml_document(text, "<override>");
  if (!doc.is_ok()) return text;
  return doc->value;
}

std::string json_to_yaml(const nlohmann::json& value) {
  YAML::Emitter e;
  emit(e, value);
  return std::string(e.c_str()) + "\n";
}

}  // namespace flight::engine
