#include "flight/base/options.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <sstream>

#include "flight/base/strings.h"

namespace flight {
namespace {

using nlohmann::json;

const json& null_json() {
  static const json kNull;
  return kNull;
}

// Values are quoted in messages; a huge object would drown the message.
std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

std::string show_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Whole numbers as int64: integers, and floats with no fractional part
// (JSON from other tools writes 2.0 for 2) that a double holds exactly.
bool whole_number(const json& v, int64_t* out, bool* negative_unsigned = nullptr) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      if (negative_unsigned) *negative_unsigned = true;
      return false;
    }
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

template <class Int>
bool read_integer(const json& v, Int* out) {
  if (v.is_number_unsigned() && !std::is_signed_v<Int>) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return false;
    *out = static_cast<Int>(u);
    return true;
  }
  int64_t i = 0;
  if (!whole_number(v, &i)) return false;
  if constexpr (std::is_signed_v<Int>) {
    if (i < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<Int>::max())) {
      return false;
    }
  } else {
    if (i < 0) return false;
  }
  *out = static_cast<Int>(i);
  return true;
}

template <class Int>
const char* integer_kind() {
  if constexpr (!std::is_signed_v<Int>) return "a non-negative integer";
  if constexpr (sizeof(Int) == 4) return "a 32-bit integer";
  return "an integer";
}

}  // namespace

// ---------------------------------------------------------------- SourceLines

int SourceLines::line_of(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto it = lines.find(p);
    if (it != lines.end()) return it->second;
    if (p.empty()) return 0;
    auto slash = p.rfind('/');
    p = slash == std::string::npos ? "" : p.substr(0, slash);
  }
}

std::string SourceLines::where(const std::string& pointer) const {
  int line = line_of(pointer);
  return source + (line > 0 ? ":" + std::to_string(line) : "") + ": ";
}

std::string json_pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------- OptionReader

OptionReader::OptionReader(const json& j, std::string path, const SourceLines* lines,
                           std::string pointer)
    : j_(&j), path_(std::move(path)), lines_(lines), pointer_(std::move(pointer)) {}

std::string OptionReader::label(const char* key) const {
  std::string where = lines_ ? lines_->where(pointer_ + "/" + json_pointer_token(key)) : "";
  return where + (path_.empty() ? std::string(key) : path_ + "." + key);
}

Status OptionReader::error(const std::string& message) const {
  std::string where = lines_ ? lines_->where(pointer_) : "";
  return invalid_argument(where + (path_.empty() ? "" : path_ + ": ") + message);
}

int OptionReader::line_of(const char* key) const {
  return lines_ ? lines_->line_of(pointer_ + "/" + json_pointer_token(key)) : 0;
}

bool OptionReader::has(const char* key) const {
  if (!j_->is_object()) return false;
  auto it = j_->find(key);
  return it != j_->end() && !it->is_null();
}

OptionReader& OptionReader::known(std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    if (std::find(read_.begin(), read_.end(), k) == read_.end()) read_.emplace_back(k);
  }
  return *this;
}

OptionReader& OptionReader::fail(const char* key, const std::string& problem) {
  if (status_.is_ok()) status_ = invalid_argument(label(key) + ": " + problem);
  return *this;
}

OptionReader& OptionReader::fail(const std::string& problem) {
  if (status_.is_ok()) status_ = error(problem);
  return *this;
}

void OptionReader::wrong_type(const char* key, const char* expected, const json& got) {
  fail(key, std::string("expected ") + expected + ", got " + show(got));
}

OptionReader& OptionReader::fail_choice(const char* key, const std::string& got,
                                        const std::vector<std::string>& names) {
  return fail(key, "expected one of " + join(names, ", ") + ", got '" + got + "'" +
                       did_you_mean(got, names));
}

void OptionReader::fail_range(const char* key, bool closed, double lo, double hi, double got) {
  std::string want =
      closed ? "in [" + show_number(lo) + ", " + show_number(hi) + "]" : ">= " + show_number(lo);
  fail(key, "must be " + want + ", got " + show_number(got));
}

const json* OptionReader::find(const char* key, bool required) {
  known({key});
  if (!j_->is_object() && !j_->is_null()) return nullptr;  // finish() reports the type
  auto it = j_->is_null() ? j_->end() : j_->find(key);
  if (it == j_->end() || it->is_null()) {
    if (required && missing_.is_ok()) {
      missing_ = error("missing required field '" + std::string(key) + "'");
    }
    return nullptr;
  }
  return &*it;
}

OptionReader& OptionReader::read(const char* key, std::string* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  if (!v->is_string()) {
    wrong_type(key, "a string", *v);
  } else {
    *out = v->get<std::string>();
  }
  return *this;
}

OptionReader& OptionReader::read(const char* key, bool* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  if (!v->is_boolean()) {
    wrong_type(key, "true or false", *v);
  } else {
    *out = v->get<bool>();
  }
  return *this;
}

#define FLIGHT_OPTION_INTEGER(Int)                                             \
  OptionReader& OptionReader::read(const char* key, Int* out, bool required) { \
    const json* v = find(key, required);                                       \
    if (!v) return *this;                                                      \
    Int x{};                                                                   \
    if (!read_integer(*v, &x)) {                                               \
      wrong_type(key, integer_kind<Int>(), *v);                                \
    } else {                                                                   \
      *out = x;                                                                \
    }                                                                          \
    return *this;                                                              \
  }
FLIGHT_OPTION_INTEGER(int)
FLIGHT_OPTION_INTEGER(long)
FLIGHT_OPTION_INTEGER(long long)
FLIGHT_OPTION_INTEGER(unsigned long)
FLIGHT_OPTION_INTEGER(unsigned long long)
#undef FLIGHT_OPTION_INTEGER

OptionReader& OptionReader::read(const char* key, double* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  if (!v->is_number() || !std::isfinite(v->get<double>())) {
    wrong_type(key, "a finite number", *v);
  } else {
    *out = v->get<double>();
  }
  return *this;
}

OptionReader& OptionReader::read(const char* key, std::optional<double>* out, bool required) {
  double d = 0;
  const bool was_ok = status_.is_ok();
  read(key, &d, required);
  if (was_ok && status_.is_ok() && has(key)) *out = d;
  return *this;
}

OptionReader& OptionReader::read(const char* key, std::vector<std::string>* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  std::vector<std::string> items;
  bool ok = v->is_array();
  for (size_t i = 0; ok && i < v->size(); ++i) {
    ok = (*v)[i].is_string();
    if (ok) items.push_back((*v)[i].get<std::string>());
  }
  if (!ok) {
    wrong_type(key, "a list of strings", *v);
  } else {
    *out = std::move(items);
  }
  return *this;
}

OptionReader& OptionReader::read(const char* key, std::vector<int64_t>* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  std::vector<int64_t> items;
  bool ok = v->is_array();
  for (size_t i = 0; ok && i < v->size(); ++i) {
    int64_t x = 0;
    ok = read_integer((*v)[i], &x);
    if (ok) items.push_back(x);
  }
  if (!ok) {
    wrong_type(key, "a list of integers", *v);
  } else {
    *out = std::move(items);
  }
  return *this;
}

OptionReader& OptionReader::read(const char* key, json* out, bool required) {
  const json* v = find(key, required);
  if (v) *out = *v;
  return *this;
}

OptionReader& OptionReader::bytes(const char* key, uint64_t* out, bool required) {
  const json* v = find(key, required);
  if (!v) return *this;
  uint64_t n = 0;
  if (read_integer(*v, &n) || (v->is_string() && parse_bytes(v->get<std::string>(), &n))) {
    *out = n;
  } else {
    wrong_type(key, "a byte count (e.g. 1048576 or \"4MiB\")", *v);
  }
  return *this;
}

OptionReader& OptionReader::choice(const char* key, std::string* out,
                                   std::initializer_list<const char*> names, bool required) {
  if (!status_.is_ok()) return known({key});
  std::string s;
  read(key, &s, required);
  if (!status_.is_ok() || !has(key)) return *this;
  std::vector<std::string> all(names.begin(), names.end());
  if (std::find(all.begin(), all.end(), s) == all.end()) return fail_choice(key, s, all);
  *out = s;
  return *this;
}

OptionReader OptionReader::child(const char* key) {
  const json* v = find(key, false);
  return OptionReader(v ? *v : null_json(), path_.empty() ? key : path_ + "." + key, lines_,
                      pointer_ + "/" + json_pointer_token(key));
}

Status OptionReader::finish() const {
  FLIGHT_RETURN_IF_ERROR(status_);
  if (j_->is_null()) return missing_;
  if (!j_->is_object()) {
    return error(std::string("expected a mapping of keys, got ") + j_->type_name() + " " +
                 show(*j_));
  }
  for (auto it = j_->begin(); !ignore_unknown_ && it != j_->end(); ++it) {
    if (std::find(read_.begin(), read_.end(), it.key()) != read_.end()) continue;
    std::string where = lines_ ? lines_->where(pointer_ + "/" + json_pointer_token(it.key())) : "";
    std::string known = read_.empty() ? "none" : join(read_, ", ");
    return invalid_argument(where + (path_.empty() ? "" : path_ + ": ") + "unknown key '" +
                            it.key() + "'" + did_you_mean(it.key(), read_) + " (known: " + known +
                            ")");
  }
  return missing_;
}

}  // namespace flight
