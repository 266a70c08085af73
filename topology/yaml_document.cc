#include "topology/yaml_document.h"

#include <fstream>
#include <sstream>

#include "topology/raw_document.h"

namespace flight::topology {
namespace {

using internal::RawValue;

Status convert(const RawValue& v, const std::string& pointer, YamlDocument& doc,
               nlohmann::json* out) {
  doc.lines.emplace(pointer, v.line);
  switch (v.type) {
    case RawValue::Type::kNull:
    case RawValue::Type::kScalar:
      *out = internal::to_json(v);
      return Status::ok();
    case RawValue::Type::kSequence:
      *out = nlohmann::json::array();
      for (size_t i = 0; i < v.items.size(); ++i) {
        nlohmann::json item;
        FLIGHT_RETURN_IF_ERROR(convert(v.items[i], pointer + "/" + std::to_string(i), doc, &item));
        out->push_back(std::move(item));
      }
      return Status::ok();
    case RawValue::Type::kMap:
      *out = nlohmann::json::object();
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        const RawValue& key = v.items[i];
        const std::string where = doc.source + ":" + std::to_string(key.line) + ": ";
        if (!key.is_scalar()) return invalid_argument(where + "map keys must be scalars");
        if (out->contains(key.scalar)) {
          return invalid_argument(where + "duplicate key '" + key.scalar + "'");
        }
        const std::string child = pointer + "/" + json_pointer_token(key.scalar);
        nlohmann::json value;
        FLIGHT_RETURN_IF_ERROR(convert(v.items[i + 1], child, doc, &value));
        // The key's own line is the useful one ("lr: x" rather than where x starts).
        doc.lines[child] = key.line;
        (*out)[key.scalar] = std::move(value);
      }
      return Status::ok();
  }
  return Status::ok();
}

}  // namespace

StatusOr<YamlDocument> parse_yaml_document(std::string_view text, const std::string& source) {
  FLIGHT_ASSIGN_OR_RETURN(RawValue raw, internal::parse_yaml_raw(text, source));
  YamlDocument doc;
  doc.source = source;
  FLIGHT_RETURN_IF_ERROR(convert(raw, "", doc, &doc.value));
  return doc;
}

StatusOr<YamlDocument> load_yaml_document(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '" + path + "'");
  std::ostringstream os;
  os << in.rdbuf();
  return parse_yaml_document(os.str(), path);
}

nlohmann::json plain_scalar_value(const std::string& text) {
  RawValue v;
  v.type = RawValue::Type::kScalar;
  v.scalar = text;
  return internal::to_json(v);
}

}  // namespace flight::topology
