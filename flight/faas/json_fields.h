// Small JSON field readers shared by the option parsers and the REST bodies.
// Every error names the location ("task[3].deadline_s: expected a number").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::faas {

// `j` must be an object whose keys are all in `allowed` (unknown keys are an
// error with a "did you mean").
Status check_object(const nlohmann::json& j, const std::string& where,
                    const std::vector<std::string>& allowed);

// Each reader leaves *out unchanged when the key is absent (and not required).
Status get_string(const nlohmann::json& j, const char* key, const std::string& where,
                  std::string* out, bool required = false);
Status get_number(const nlohmann::json& j, const char* key, const std::string& where, double* out,
                  bool required = false);
Status get_int(const nlohmann::json& j, const char* key, const std::string& where, int64_t* out,
               bool required = false);
Status get_size(const nlohmann::json& j, const char* key, const std::string& where, size_t* out,
                bool required = false);
Status get_bool(const nlohmann::json& j, const char* key, const std::string& where, bool* out,
                bool required = false);
Status get_string_list(const nlohmann::json& j, const char* key, const std::string& where,
                       std::vector<std::string>* out, bool required = false);

// Serialises without ever throwing: invalid UTF-8 in strings (which may come
// from URLs, exception messages or user args) is replaced, not an exception.
std::string dump_json(const nlohmann::json& j);

// Reads a bearer token from a file (surrounding whitespace trimmed); an empty
// file is an error.
StatusOr<std::string> read_token_file(const std::string& path);

}  // namespace flight::faas
