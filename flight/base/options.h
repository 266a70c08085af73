// OptionReader: the one way every layer reads an options object from JSON
// (configs parsed from YAML, connector configs, strategy params, REST bodies,
// task messages). One argument order everywhere: key first, destination second.
//
//   OptionReader r(j, "train");                 // j: the object; "train": its dotted path
//   r.optional("epochs", &o.epochs)             // absent or null: o.epochs keeps its default
//       .required("lr", &o.lr)
//       .bytes("chunk", &o.chunk)               // 4096, "4MiB", "256M"
//       .choice("mode", &o.mode, kModeNames);   // enum from its string name
//   if (o.lr <= 0) r.fail("lr", "must be > 0");
//   FLIGHT_RETURN_IF_ERROR(r.finish());         // first error, else unknown keys
//
// Errors name the field's dotted path ("train.lr: expected a number, got "x"")
// and, when `lines` is given (input parsed from YAML), start with "file:line: ".
// The first error is kept; later reads are no-ops on their destination.
// Not thread-safe; a reader refers to `j` and `lines`, which must outlive it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight {

// Where each value of a parsed document came from: JSON pointer ("/train/lr")
// -> 1-based line, and the file name.
struct SourceLines {
  std::string source;
  std::map<std::string, int> lines;

  // Line of `pointer` or of its nearest ancestor that has one (0 if none).
  int line_of(const std::string& pointer) const;
  // "source:line: " (or "source: " without a line) for messages about `pointer`.
  std::string where(const std::string& pointer) const;
};

// "~" and "/" escaped as JSON pointers require ("a/b" -> "a~1b").
std::string json_pointer_token(const std::string& key);

// A name table for an enum read with OptionReader::choice and written back by
// enum_name: {{"sync", Mode::kSync}, {"async", Mode::kAsync}}.
template <class E>
using EnumNames = std::initializer_list<std::pair<const char*, E>>;

// The name of `value` in `names` ("?" if absent, which is a programming error).
template <class E>
const char* enum_name(E value, EnumNames<E> names) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "?";
}

class OptionReader {
 public:
  // `j` must be an object (null reads as an empty object). `path` labels it
  // in messages ("" for a document's top level); `pointer` is its JSON pointer
  // in the document `lines` describes.
  OptionReader(const nlohmann::json& j, std::string path, const SourceLines* lines = nullptr,
               std::string pointer = "");
  // The reader refers to `j`: a temporary would dangle.
  OptionReader(nlohmann::json&& j, std::string path, const SourceLines* lines = nullptr,
               std::string pointer = "") = delete;

  // Typed reads. Supported T: std::string, bool, int, int64_t, uint64_t,
  // size_t (where distinct), double (finite), std::optional<double>,
  // std::vector<std::string>, std::vector<int64_t>, nlohmann::json (any value).
  // Integers also accept whole floats (2.0). Absent or null: *out unchanged.
  template <class T>
  OptionReader& optional(const char* key, T* out) {
    return read(key, out, false);
  }
  template <class T>
  OptionReader& required(const char* key, T* out) {
    return read(key, out, true);
  }
  // A byte count: a non-negative integer or a string such as "4MiB" / "256M".
  OptionReader& bytes(const char* key, uint64_t* out, bool required = false);
  // An enum from its name; an unknown name lists the names, with "did you mean".
  template <class E>
  OptionReader& choice(const char* key, E* out, EnumNames<E> names, bool required = false) {
    if (!status_.is_ok()) return known({key});
    std::string s;
    read(key, &s, required);
    if (!status_.is_ok() || !has(key)) return *this;
    std::vector<std::string> all;
    for (const auto& [name, v] : names) {
      if (s == name) {
        *out = v;
        return *this;
      }
      all.push_back(name);
    }
    return fail_choice(key, s, all);
  }
  // A string that must be one of `names` (for settings kept as strings).
  OptionReader& choice(const char* key, std::string* out, std::initializer_list<const char*> names,
                       bool required = false);
  // Numeric reads with a closed range check ("must be in [1, 1024], got 0").
  template <class T>
  OptionReader& in_range(const char* key, T* out, T lo, T hi, bool required = false) {
    read(key, out, required);
    if (has(key) && !(*out >= lo && *out <= hi)) fail_range(key, true, lo, hi, *out);
    return *this;
  }
  // Numeric read that must be >= lo.
  template <class T>
  OptionReader& at_least(const char* key, T* out, T lo, bool required = false) {
    read(key, out, required);
    if (has(key) && !(*out >= lo)) fail_range(key, false, lo, lo, *out);
    return *this;
  }

  // The nested object at `key` (absent or null: an empty object), path
  // "<path>.<key>", same line map. Its errors are its own: call its finish().
  OptionReader child(const char* key);
  // True when `key` is present and not null (does not count as reading it).
  bool has(const char* key) const;
  // Declares keys read some other way (or only in some cases) as known.
  OptionReader& known(std::initializer_list<const char*> keys);
  // Accepts keys nobody reads (messages that newer peers may extend).
  OptionReader& ignore_unknown() {
    ignore_unknown_ = true;
    return *this;
  }
  // Records "<path>.<key>: <problem>" (with the key's line) unless an error is
  // already recorded; for checks the typed reads cannot express.
  OptionReader& fail(const char* key, const std::string& problem);
  // Records "<path>: <problem>" for the object as a whole.
  OptionReader& fail(const std::string& problem);
  // The message prefix for `key` ("file:3: train.lr") without recording anything.
  std::string label(const char* key) const;
  // An InvalidArgument "file:line: <path>: message" about the object itself.
  Status error(const std::string& message) const;

  // The first error; else, when the value was not an object, a type error;
  // else the first key never read nor declared, with "did you mean" and its
  // line; else the first missing required field.
  [[nodiscard]] Status finish() const;

  const nlohmann::json& value() const { return *j_; }
  const std::string& path() const { return path_; }
  const std::string& pointer() const { return pointer_; }
  const SourceLines* lines() const { return lines_; }
  // The document line of `key` (or of the nearest ancestor with one), 0 if unknown.
  int line_of(const char* key) const;

 private:
  const nlohmann::json* find(const char* key, bool required);
  void wrong_type(const char* key, const char* expected, const nlohmann::json& got);
  OptionReader& fail_choice(const char* key, const std::string& got,
                            const std::vector<std::string>& names);
  void fail_range(const char* key, bool closed, double lo, double hi, double got);

  OptionReader& read(const char* key, std::string* out, bool required);
  OptionReader& read(const char* key, bool* out, bool required);
  OptionReader& read(const char* key, int* out, bool required);
  OptionReader& read(const char* key, long* out, bool required);
  OptionReader& read(const char* key, long long* out, bool required);
  OptionReader& read(const char* key, unsigned long* out, bool required);
  OptionReader& read(const char* key, unsigned long long* out, bool required);
  OptionReader& read(const char* key, double* out, bool required);
  OptionReader& read(const char* key, std::optional<double>* out, bool required);
  OptionReader& read(const char* key, std::vector<std::string>* out, bool required);
  OptionReader& read(const char* key, std::vector<int64_t>* out, bool required);
  OptionReader& read(const char* key, nlohmann::json* out, bool required);

  const nlohmann::json* j_;
  std::string path_;
  const SourceLines* lines_;
  std::string pointer_;
  std::vector<std::string> read_;  // keys read or declared, in order
  Status status_;
  // A missing required field is reported after unknown keys: a misspelt
  // required key is best explained by its "did you mean".
  Status missing_;
  bool ignore_unknown_ = false;
};

}  // namespace flight
