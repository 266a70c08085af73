// YAML -> JSON with line numbers, for configs. yaml-cpp parses; nlohmann::json
// is what every options struct reads (options also travel as JSON in control
// messages), so configs become JSON once, here, and keep a map from each
// value's JSON pointer ("/train/lr") to its 1-based line for error messages.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/options.h"
#include "flight/base/status.h"

namespace flight::engine {

// `lines` (from SourceLines) holds the keys of maps and list items.
struct YamlDocument : SourceLines {
  nlohmann::json value;
};

// Plain scalars become null/bool/int/float when they look like one (YAML 1.2
// core schema); quoted scalars always stay strings. Duplicate keys are errors.
StatusOr<YamlDocument> parse_yaml_document(const std::string& text, const std::string& source);
StatusOr<YamlDocument> load_yaml_document(const std::string& path);

// Parses one scalar as load_yaml_document would ("5" -> 5, "true" -> true,
// "a" -> "a"), for command-line overrides.
nlohmann::json parse_yaml_scalar(const std::string& text);

// JSON -> YAML text (block style), for writing resolved configs.
std::string json_to_yaml(const nlohmann::json& value);

}  // namespace flight::engine
