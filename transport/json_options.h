// Helpers for the one from_json parser each options struct in transport/ has:
// unknown keys and wrong types are errors that name the object and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::transport::json_options {

// InvalidArgument unless `j` is an object whose keys are all in `known`
// ("redis connector: unknown key 'prot' (did you mean 'port'?)").
Status check_keys(const nlohmann::json& j, const std::string& what,
                  const std::vector<std::string>& known);

// Each reader leaves *out untouched when the key is absent.
Status read(const nlohmann::json& j, const std::string& what, const char* key, std::string* out);
Status read(const nlohmann::json& j, const std::string& what, const char* key, bool* out);
Status read(const nlohmann::json& j, const std::string& what, const char* key, double* out);
Status read(const nlohmann::json& j, const std::string& what, const char* key, int* out);
Status read(const nlohmann::json& j, const std::string& what, const char* key,
            std::optional<double>* out);
Status read(const nlohmann::json& j, const std::string& what, const char* key,
            std::vector<std::string>* out);
// A byte count: a non-negative integer or a string such as "4MiB" / "256M".
Status read_bytes(const nlohmann::json& j, const std::string& what, const char* key, uint64_t* out);

}  // namespace flight::transport::json_options
