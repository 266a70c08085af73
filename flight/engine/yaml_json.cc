#include "flight/engine/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace flight::engine {
namespace {

nlohmann::json plain_scalar(const std::string& s) {
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, kInt)) {
    try {
      return static_cast<int64_t>(std::stoll(s));
    } catch (const std::out_of_range&) {
      return s;
    }
  }
  if (std::regex_match(s, kFloat)) {
    try {
      return std::stod(s);
    } catch (const std::out_of_range&) {
      return s;
    }
  }
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf") return -std::numeric_limits<double>::infinity();
  return s;
}

Status convert(const YAML::Node& node, const std::string& pointer, YamlDocument& doc,
               nlohmann::json& out, int depth) {
  if (depth > 64) {
    return invalid_argument(doc.source + ":" + std::to_string(node.Mark().line + 1) +
                            ": nesting deeper than 64 levels");
  }
  doc.lines.emplace(pointer, node.Mark().line + 1);
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out = nullptr;
      return Status::ok();
    case YAML::NodeType::Scalar:
      out = node.Tag() == "!" ? nlohmann::json(node.Scalar()) : plain_scalar(node.Scalar());
      return Status::ok();
    case YAML::NodeType::Sequence: {
      out = nlohmann::json::array();
      size_t i = 0;
      for (const auto& item : node) {
        nlohmann::json v;
        FLIGHT_RETURN_IF_ERROR(convert(item, pointer + "/" + std::to_string(i), doc, v, depth + 1));
        out.push_back(std::move(v));
        ++i;
      }
      return Status::ok();
    }
    case YAML::NodeType::Map: {
      out = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return invalid_argument(doc.source + ":" + std::to_string(kv.first.Mark().line + 1) +
                                  ": map keys must be scalars");
        }
        const std::string key = kv.first.Scalar();
        const std::string child = pointer + "/" + json_pointer_token(key);
        if (out.contains(key)) {
          return invalid_argument(doc.source + ":" + std::to_string(kv.first.Mark().line + 1) +
                                  ": duplicate key '" + key + "'");
        }
        nlohmann::json v;
        FLIGHT_RETURN_IF_ERROR(convert(kv.second, child, doc, v, depth + 1));
        // The key's own line is the useful one ("lr: x" rather than where x starts).
        doc.lines[child] = kv.first.Mark().line + 1;
        out[key] = std::move(v);
      }
      return Status::ok();
    }
  }
  return Status::ok();
}

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
    if (!plain_scalar(s).is_string())
      e << YAML::DoubleQuoted << s;
    else
      e << s;
  }
}

}  // namespace

StatusOr<YamlDocument> parse_yaml_document(const std::string& text, const std::string& source) {
  YamlDocument doc;
  doc.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  try {
    FLIGHT_RETURN_IF_ERROR(convert(root, "", doc, doc.value, 0));
  } catch (const YAML::Exception& e) {
    return invalid_argument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return doc;
}

StatusOr<YamlDocument> load_yaml_document(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '" + path + "'");
  std::ostringstream os;
  os << in.rdbuf();
  return parse_yaml_document(os.str(), path);
}

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
