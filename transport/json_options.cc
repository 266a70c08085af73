#include "transport/json_options.h"

#include <cmath>

#include "flight/base/strings.h"

namespace flight::transport::json_options {
namespace {

Status wrong_type(const std::string& what, const char* key, const char* expected,
                  const nlohmann::json& v) {
  return invalid_argument(what + ": '" + key + "' must be " + expected + ", got " + v.dump());
}

}  // namespace

Status check_keys(const nlohmann::json& j, const std::string& what,
                  const std::vector<std::string>& known) {
  if (!j.is_object()) return invalid_argument(what + ": expected a JSON object, got " + j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == it.key();
    if (!ok) {
      return invalid_argument(what + ": unknown key '" + it.key() + "'" +
                              did_you_mean(it.key(), known) + " (known: " + join(known, ", ") +
                              ")");
    }
  }
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_string()) return wrong_type(what, key, "a string", *it);
  *out = it->get<std::string>();
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_boolean()) return wrong_type(what, key, "true or false", *it);
  *out = it->get<bool>();
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_number()) return wrong_type(what, key, "a number", *it);
  *out = it->get<double>();
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key, int* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_number_integer()) return wrong_type(what, key, "an integer", *it);
  int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return wrong_type(what, key, "a 32-bit integer", *it);
  *out = static_cast<int>(v);
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key,
            std::optional<double>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::ok();
  if (!it->is_number()) return wrong_type(what, key, "a number or null", *it);
  *out = it->get<double>();
  return Status::ok();
}

Status read(const nlohmann::json& j, const std::string& what, const char* key,
            std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_array()) return wrong_type(what, key, "a list of strings", *it);
  std::vector<std::string> v;
  for (const auto& e : *it) {
    if (!e.is_string()) return wrong_type(what, key, "a list of strings", *it);
    v.push_back(e.get<std::string>());
  }
  *out = std::move(v);
  return Status::ok();
}

Status read_bytes(const nlohmann::json& j, const std::string& what, const char* key,
                  uint64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (it->is_number_unsigned()) {
    *out = it->get<uint64_t>();
    return Status::ok();
  }
  if (it->is_number_integer() && it->get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(it->get<int64_t>());
    return Status::ok();
  }
  if (it->is_string() && parse_bytes(it->get<std::string>(), out)) return Status::ok();
  return wrong_type(what, key, "a byte count (e.g. 1048576 or \"4MiB\")", *it);
}

}  // namespace flight::transport::json_options
