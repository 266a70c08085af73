// YAML (or JSON) text -> nlohmann::json plus the source line of every value:
// the one line-tracking YAML reader of the code base. It is topology's reader
// (raw_document: the line-oriented fast path, else yaml-cpp's events), so a
// config and a topology file resolve scalars by the same rules (plain scalars
// by YAML's core schema plus yes/no/on/off, as PyYAML; quoted ones stay
// strings). The engine reads experiment configs through it; errors in them
// then name "file:line:" via SourceLines.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "flight/base/options.h"
#include "flight/base/status.h"

namespace flight::topology {

// `lines` (from SourceLines) maps the JSON pointer of every value to its
// 1-based line: for a mapping's entries the line of the key.
struct YamlDocument : SourceLines {
  nlohmann::json value;
};

// Duplicate keys and non-scalar keys are errors ("source:line: duplicate key 'x'").
StatusOr<YamlDocument> parse_yaml_document(std::string_view text, const std::string& source);
// NotFound when `path` cannot be read.
StatusOr<YamlDocument> load_yaml_document(const std::string& path);

// The value of one plain (unquoted) scalar by the rules above ("5" -> 5,
// "true" -> true, "a" -> "a"), for command-line overrides and for deciding
// which strings a YAML writer must quote.
nlohmann::json plain_scalar_value(const std::string& text);

}  // namespace flight::topology
