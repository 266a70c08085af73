// Internal: the small helpers every learning options parser shares — unknown
// key detection and typed field reads whose errors name "<where>.<key>".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/base/strings.h"

namespace flight::learning::detail {

// OK when `j` is an object whose keys are all in `known`.
inline Status check_object(const nlohmann::json& j, const std::vector<std::string>& known,
                           const std::string& where) {
  if (!j.is_object()) {
    return invalid_argument(where + ": expected an object, got " + j.dump());
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == it.key();
    if (!ok) {
      return invalid_argument(where + ": unknown key '" + it.key() + "'" +
                              did_you_mean(it.key(), known) + " (known: " + join(known, ", ") +
                              ")");
    }
  }
  return Status::ok();
}

inline Status type_error(const std::string& where, const char* key, const char* expected,
                         const nlohmann::json& v) {
  return invalid_argument(where + "." + key + ": expected " + expected + ", got " + v.dump());
}

// Each read leaves *out unchanged when the key is absent.
inline Status read_field(const nlohmann::json& j, const char* key, std::string* out,
                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_string()) return type_error(where, key, "a string", *it);
  *out = it->get<std::string>();
  return Status::ok();
}

inline Status read_field(const nlohmann::json& j, const char* key, int64_t* out,
                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_number_integer()) return type_error(where, key, "an integer", *it);
  *out = it->get<int64_t>();
  return Status::ok();
}

inline Status read_field(const nlohmann::json& j, const char* key, uint64_t* out,
                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  // Integers from C++ initialisers are signed, from parsed text unsigned: accept both.
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0)) {
    return type_error(where, key, "a non-negative integer", *it);
  }
  *out = it->get<uint64_t>();
  return Status::ok();
}

inline Status read_field(const nlohmann::json& j, const char* key, double* out,
                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Status::ok();
  if (!it->is_number()) return type_error(where, key, "a number", *it);
  *out = it->get<double>();
  return Status::ok();
}

}  // namespace flight::learning::detail
