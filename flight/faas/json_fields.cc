#include "flight/faas/json_fields.h"

#include <fstream>
#include <sstream>

#include "flight/base/strings.h"

namespace flight::faas {

namespace {

std::string type_name(const nlohmann::json& v) { return v.type_name(); }

Status missing(const std::string& where, const char* key) {
  return invalid_argument(where + ": missing required field '" + key + "'");
}

Status wrong_type(const std::string& where, const char* key, const char* expected,
                  const nlohmann::json& v) {
  return invalid_argument(where + "." + key + ": expected " + expected + ", got " + type_name(v));
}

}  // namespace

Status check_object(const nlohmann::json& j, const std::string& where,
                    const std::vector<std::string>& allowed) {
  if (!j.is_object()) {
    return invalid_argument(where + ": expected a JSON object, got " + type_name(j));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const auto& a : allowed) known = known || a == it.key();
    if (!known) {
      return invalid_argument(where + ": unknown key '" + it.key() + "'" +
                              did_you_mean(it.key(), allowed) + " (known: " + join(allowed, ", ") +
                              ")");
    }
  }
  return Status::ok();
}

Status get_string(const nlohmann::json& j, const char* key, const std::string& where,
                  std::string* out, bool required) {
  auto it = j.find(key);
  if (it == j.end()) return required ? missing(where, key) : Status::ok();
  if (!it->is_string()) return wrong_type(where, key, "a string", *it);
  *out = it->get<std::string>();
  return Status::ok();
}

Status get_number(const nlohmann::json& j, const char* key, const std::string& where, double* out,
                  bool required) {
  auto it = j.find(key);
  if (it == j.end()) return required ? missing(where, key) : Status::ok();
  if (!it->is_number()) return wrong_type(where, key, "a number", *it);
  *out = it->get<double>();
  return Status::ok();
}

Status get_int(const nlohmann::json& j, const char* key, const std::string& where, int64_t* out,
               bool required) {
  auto it = j.find(key);
  if (it == j.end()) return required ? missing(where, key) : Status::ok();
  if (!it->is_number_integer()) return wrong_type(where, key, "an integer", *it);
  *out = it->get<int64_t>();
  return Status::ok();
}

Status get_size(const nlohmann::json& j, const char* key, const std::string& where, size_t* out,
                bool required) {
  int64_t v = 0;
  bool present = j.contains(key);
  FLIGHT_RETURN_IF_ERROR(get_int(j, key, where, &v, required));
  if (!present) return Status::ok();
  if (v < 0)
    return invalid_argument(where + "." + key + ": must be >= 0, got " + std::to_string(v));
  *out = static_cast<size_t>(v);
  return Status::ok();
}

Status get_bool(const nlohmann::json& j, const char* key, const std::string& where, bool* out,
                bool required) {
  auto it = j.find(key);
  if (it == j.end()) return required ? missing(where, key) : Status::ok();
  if (!it->is_boolean()) return wrong_type(where, key, "a boolean", *it);
  *out = it->get<bool>();
  return Status::ok();
}

Status get_string_list(const nlohmann::json& j, const char* key, const std::string& where,
                       std::vector<std::string>* out, bool required) {
  auto it = j.find(key);
  if (it == j.end()) return required ? missing(where, key) : Status::ok();
  if (!it->is_array()) return wrong_type(where, key, "an array of strings", *it);
  std::vector<std::string> v;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& e = (*it)[i];
    if (!e.is_string()) {
      return invalid_argument(where + "." + key + "[" + std::to_string(i) +
                              "]: expected a string, got " + type_name(e));
    }
    v.push_back(e.get<std::string>());
  }
  *out = std::move(v);
  return Status::ok();
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("token file '" + path + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = trim(ss.str());
  if (token.empty()) return invalid_argument("token file '" + path + "' is empty");
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return invalid_argument("token file '" + path + "' must hold one token without whitespace");
  }
  return token;
}

}  // namespace flight::faas
