// Internal: the syntax layer of topology loading. YAML and JSON text become the
// same small tree of RawValues that remembers, for every value, its source line
// and whether a scalar was plain (unquoted: may be an int, float, bool or null)
// or quoted (always a string). The semantic layer (topology.cc) works on this
// tree only, so both formats share every rule and message.
//
// Not part of the public API; exposed for tests (the YAML fast path is checked
// against yaml-cpp on every test file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::topology::internal {

// Deepest nesting accepted (mappings and lists); deeper input is an error, not
// a stack overflow.
constexpr int kMaxDepth = 256;
// Values produced after alias expansion, per input byte (guards "billion laughs").
constexpr size_t kMaxValuesPerByte = 4;
// Largest file read.
constexpr size_t kMaxFileBytes = size_t{256} << 20;

struct RawValue {
  enum class Type : uint8_t { kNull, kScalar, kSequence, kMap };
  Type type = Type::kNull;
  bool plain = true;  // scalars: unquoted (resolved by YAML core rules) vs quoted
  int line = 0;       // 1-based
  std::string scalar;
  // Sequence items; for a mapping: key, value, key, value, ... in source order
  // (duplicate keys are kept, so the semantic layer can report them).
  std::vector<RawValue> items;

  bool is_null() const { return type == Type::kNull; }
  bool is_scalar() const { return type == Type::kScalar; }
  bool is_sequence() const { return type == Type::kSequence; }
  bool is_map() const { return type == Type::kMap; }
  size_t map_size() const { return items.size() / 2; }

  bool operator==(const RawValue& o) const;
  bool operator!=(const RawValue& o) const { return !(*this == o); }
};

// "null", "a scalar", "a list", "a mapping": for error messages.
const char* describe(const RawValue& v);

// The JSON value of a RawValue: plain scalars resolve like YAML's core schema
// (null/~, true/false (also yes/no/on/off, as PyYAML), integers (decimal, 0x, 0o),
// floats (incl. .inf/.nan)), quoted scalars are strings, mappings become objects
// (the last of duplicate keys wins).
nlohmann::json to_json(const RawValue& v);

// The id a scalar names: a plain decimal integer is canonicalised ("007" and
// "+7" -> "7"), anything else is its text.
std::string scalar_id(const RawValue& v);

// Parses YAML. `allow_fast_path`: try the line-oriented reader for the plain
// block subset Flight writes (falls back to yaml-cpp for anything else).
// Errors: InvalidArgument "source:line: message".
StatusOr<RawValue> parse_yaml_raw(std::string_view text, const std::string& source,
                                  bool allow_fast_path = true);
// The fast path alone: true and *out set when `text` is in its subset.
bool parse_yaml_fast(std::string_view text, RawValue* out);

StatusOr<RawValue> parse_json_raw(std::string_view text, const std::string& source);

// Benchmark baseline (`flight bench topology`): yaml-cpp's own YAML::Load of
// `text` into its node tree, nothing more. Returns the number of top-level
// entries, or -1 when yaml-cpp rejects the text.
long yaml_cpp_baseline_load(const std::string& text);

}  // namespace flight::topology::internal
