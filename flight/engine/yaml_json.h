// Configs as YAML: reading is topology's line-tracking reader (one YAML reader
// for the code base, topology/yaml_document.h), re-exported here for the
// engine; writing resolved configs back as YAML is here.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "topology/yaml_document.h"

namespace flight::engine {

using topology::load_yaml_document;
using topology::parse_yaml_document;
using topology::YamlDocument;

// Parses one scalar as load_yaml_document would ("5" -> 5, "true" -> true,
// "a" -> "a", "[1, 2]" -> [1, 2]), for command-line overrides.
nlohmann::json parse_yaml_scalar(const std::string& text);

// JSON -> YAML text (block style), for writing resolved configs; reads back
// (parse_yaml_document) to the same JSON.
std::string json_to_yaml(const nlohmann::json& value);

}  // namespace flight::engine
