// JSON text helpers shared by every layer.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace flight {

// Serialises without ever throwing: invalid UTF-8 in strings (which may come
// from URLs, exception messages or user args) is replaced, not an exception.
std::string dump_json(const nlohmann::json& j);

}  // namespace flight
