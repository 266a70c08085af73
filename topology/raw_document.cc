#include "topology/raw_document.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

namespace flight::topology::internal {
namespace {

using Type = RawValue::Type;

Status syntax_error(const std::string& source, int line, const std::string& message) {
  return invalid_argument(source + ":" + std::to_string(line < 1 ? 1 : line) + ": " + message);
}

bool is_null_word(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// [-+]?[0-9]+
bool is_decimal_int(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  return all_digits(s);
}

bool is_float_text(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  if (s.empty()) return false;
  size_t i = 0;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

nlohmann::json resolve_plain(const std::string& s) {
  if (is_null_word(s)) return nullptr;
  static const char* kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char* kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  for (const char* t : kTrue) {
    if (s == t) return true;
  }
  for (const char* f : kFalse) {
    if (s == f) return false;
  }
  if (is_decimal_int(s)) {
    errno = 0;
    char* end = nullptr;
    if (s[0] == '-') {
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (errno == 0) return static_cast<int64_t>(v);
    } else {
      unsigned long long v = std::strtoull(s.c_str(), &end, 10);
      if (errno == 0) {
        if (v <= static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
          return static_cast<int64_t>(v);
        }
        return static_cast<uint64_t>(v);
      }
    }
    return std::strtod(s.c_str(), nullptr);  // too large for 64 bits
  }
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o')) {
    int base = body[1] == 'x' ? 16 : 8;
    std::string digits(body.substr(2));
    bool ok = !digits.empty();
    for (char c : digits) {
      ok = ok && (base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                             : (c >= '0' && c <= '7'));
    }
    if (ok) {
      errno = 0;
      unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
      if (errno == 0 && v <= static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
        return negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
      }
    }
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  if (is_float_text(s)) return std::strtod(s.c_str(), nullptr);
  return s;
}

// ---------------------------------------------------------------------------
// TreeBuilder: assembles a RawValue from a stream of events (yaml-cpp events,
// JSON SAX events). Errors are thrown as BuildError and turned into a Status
// by the caller, so both event sources stop at once.

struct BuildError : std::runtime_error {
  BuildError(int line_, const std::string& what) : std::runtime_error(what), line(line_) {}
  int line;
};

class TreeBuilder {
 public:
  explicit TreeBuilder(size_t max_values) : max_values_(max_values) {}

  void null_value(int line) {
    RawValue v;
    v.line = line;
    add(std::move(v), 1);
  }
  void scalar(std::string text, bool plain, int line) {
    RawValue v;
    v.type = Type::kScalar;
    v.plain = plain;
    v.line = line;
    v.scalar = std::move(text);
    add(std::move(v), 1);
  }
  // An already complete value (an alias), counting `count` values.
  void copy(const RawValue& v, size_t count) { add(RawValue(v), count); }

  void begin(Type type, int line) {
    if (static_cast<int>(stack_.size()) >= kMaxDepth) {
      throw BuildError(line, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    RawValue v;
    v.type = type;
    v.line = line;
    RawValue* slot = add(std::move(v), 1);
    stack_.push_back(slot);
    start_count_.push_back(values_);
  }
  // Closes the innermost collection; returns it and the values it holds.
  std::pair<const RawValue*, size_t> end() {
    RawValue* v = stack_.back();
    size_t count = values_ - start_count_.back() + 1;
    stack_.pop_back();
    start_count_.pop_back();
    return {v, count};
  }
  // The last value added at the current level (to register anchors).
  const RawValue* last() const {
    if (stack_.empty()) return &root_;
    return &stack_.back()->items.back();
  }

  bool has_root() const { return has_root_; }
  bool complete() const { return has_root_ && stack_.empty(); }
  RawValue take() { return std::move(root_); }

 private:
  RawValue* add(RawValue v, size_t count) {
    values_ += count;
    if (values_ > max_values_) {
      throw BuildError(v.line, "document too large: more than " + std::to_string(max_values_) +
                                   " values (after alias expansion)");
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      has_root_ = true;
      return &root_;
    }
    // Pointers on the stack stay valid: only the innermost open collection grows.
    stack_.back()->items.push_back(std::move(v));
    return &stack_.back()->items.back();
  }

  size_t max_values_;
  size_t values_ = 0;
  RawValue root_;
  bool has_root_ = false;
  std::vector<RawValue*> stack_;
  std::vector<size_t> start_count_;
};

size_t value_budget(size_t bytes) { return std::max<size_t>(1 << 16, bytes * kMaxValuesPerByte); }

// ---------------------------------------------------------------------------
// yaml-cpp events -> RawValue.

int mark_line(const YAML::Mark& m) { return m.is_null() || m.line < 0 ? 1 : m.line + 1; }

class YamlHandler : public YAML::EventHandler {
 public:
  explicit YamlHandler(size_t max_values) : builder_(max_values) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    builder_.null_value(mark_line(mark));
    remember(anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw BuildError(mark_line(mark), "unknown alias");
    builder_.copy(it->second.first, it->second.second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    // "?": plain; "!": quoted (non-specific); "tag:yaml.org,2002:str": explicit string.
    bool plain = !(tag == "!" || tag == "tag:yaml.org,2002:str");
    builder_.scalar(value, plain, mark_line(mark));
    remember(anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    builder_.begin(Type::kSequence, mark_line(mark));
    open_anchors_.push_back(anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    builder_.begin(Type::kMap, mark_line(mark));
    open_anchors_.push_back(anchor);
  }
  void OnMapEnd() override { close(); }

  TreeBuilder& builder() { return builder_; }

 private:
  void remember(YAML::anchor_t anchor, size_t count) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = {*builder_.last(), count};
  }
  void close() {
    auto [value, count] = builder_.end();
    YAML::anchor_t anchor = open_anchors_.back();
    open_anchors_.pop_back();
    if (anchor != YAML::NullAnchor) anchors_[anchor] = {*value, count};
  }

  TreeBuilder builder_;
  std::vector<YAML::anchor_t> open_anchors_;
  std::map<YAML::anchor_t, std::pair<RawValue, size_t>> anchors_;
};

StatusOr<RawValue> parse_yaml_cpp(std::string_view text, const std::string& source) {
  std::string buffer(text);
  std::istringstream in(buffer);
  try {
    YAML::Parser parser(in);
    YamlHandler first(value_budget(text.size()));
    if (!parser.HandleNextDocument(first)) {
      RawValue empty;
      empty.line = 1;
      return empty;  // no document at all: the semantic layer says "empty"
    }
    // A second document is an error, not silently ignored.
    YamlHandler second(value_budget(text.size()));
    if (parser.HandleNextDocument(second) && second.builder().has_root()) {
      return syntax_error(source, second.builder().take().line,
                          "more than one YAML document (a topology file holds exactly one)");
    }
    if (!first.builder().complete()) return syntax_error(source, 1, "incomplete YAML document");
    return first.builder().take();
  } catch (const BuildError& e) {
    return syntax_error(source, e.line, e.what());
  } catch (const YAML::Exception& e) {
    return syntax_error(source, mark_line(e.mark), "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return syntax_error(source, 1, std::string("YAML error: ") + e.what());
  }
}

// ---------------------------------------------------------------------------
// JSON: nlohmann's SAX parser drives the TreeBuilder. It reports no positions,
// so a light pre-scan records the line of every token that starts a key or a
// value, in order; SAX events arrive in the same order and consume them.

std::vector<int> json_token_lines(std::string_view text) {
  std::vector<int> lines;
  lines.reserve(text.size() / 8);
  int line = 1;
  size_t i = 0;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB && static_cast<unsigned char>(text[2]) == 0xBF) {
    i = 3;
  }
  while (i < text.size()) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == ',' || c == ':' || c == '}' || c == ']') {
      ++i;
    } else if (c == '"') {
      lines.push_back(line);
      ++i;
      while (i < text.size() && text[i] != '"') {
        if (text[i] == '\\') ++i;
        if (i < text.size() && text[i] == '\n') ++line;
        ++i;
      }
      ++i;
    } else if (c == '{' || c == '[') {
      lines.push_back(line);
      ++i;
    } else {  // number or literal
      lines.push_back(line);
      while (i < text.size() && !std::strchr(" \t\r\n,:{}[]\"", text[i])) ++i;
    }
  }
  return lines;
}

class JsonSax {
 public:
  using json = nlohmann::json;
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  // `lines`: token lines from json_token_lines, or nullptr to put every value on `fixed_line`.
  JsonSax(TreeBuilder* builder, const std::vector<int>* lines, int fixed_line)
      : builder_(builder), lines_(lines), fixed_line_(fixed_line) {}

  bool null() {
    builder_->null_value(next_line());
    return true;
  }
  bool boolean(bool v) {
    builder_->scalar(v ? "true" : "false", true, next_line());
    return true;
  }
  bool number_integer(number_integer_t v) {
    builder_->scalar(std::to_string(v), true, next_line());
    return true;
  }
  bool number_unsigned(number_unsigned_t v) {
    builder_->scalar(std::to_string(v), true, next_line());
    return true;
  }
  bool number_float(number_float_t, const string_t& raw) {
    builder_->scalar(raw, true, next_line());
    return true;
  }
  bool string(string_t& v) {
    builder_->scalar(std::move(v), false, next_line());
    return true;
  }
  bool binary(binary_t&) { return false; }  // not produced by the text parser
  bool start_object(std::size_t) {
    builder_->begin(Type::kMap, next_line());
    return true;
  }
  bool key(string_t& k) { return string(k); }
  bool end_object() {
    builder_->end();
    return true;
  }
  bool start_array(std::size_t) {
    builder_->begin(Type::kSequence, next_line());
    return true;
  }
  bool end_array() {
    builder_->end();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) {
    error_position_ = position;
    error_ = ex.what();
    return false;
  }

  const std::string& error() const { return error_; }
  size_t error_position() const { return error_position_; }

 private:
  int next_line() {
    if (lines_ == nullptr) return fixed_line_;
    if (cursor_ < lines_->size()) return (*lines_)[cursor_++];
    return lines_->empty() ? 1 : lines_->back();
  }

  TreeBuilder* builder_;
  const std::vector<int>* lines_;
  int fixed_line_;
  size_t cursor_ = 0;
  std::string error_;
  size_t error_position_ = 0;
};

// "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..." ->
// "syntax error ...".
std::string clean_json_error(const std::string& what) {
  std::string m = what;
  size_t p = m.find("] ");
  if (p != std::string::npos && m.rfind("[json.exception", 0) == 0) m = m.substr(p + 2);
  if (m.rfind("parse error at line", 0) == 0) {
    size_t c = m.find(": ");
    if (c != std::string::npos) m = m.substr(c + 2);
  }
  return m;
}

int line_of_offset(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  int line = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') ++line;
  }
  return line;
}

// ---------------------------------------------------------------------------
// YAML fast path: a line-oriented reader for the block subset Flight writes and
// most people write by hand:
//
//   id:                      (column 0, plain id, nothing after the colon)
//     key: value             (one indentation for all attributes of a node)
//
// where value is a plain or simply quoted scalar, ~/null, a one-line flow list of
// such scalars, or one-line JSON. Anything else (anchors, block lists, nesting,
// tabs, non-ASCII, ...) returns false and yaml-cpp reads the file. The result is
// identical to yaml-cpp's (tests compare the two on every test file).

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
         c == '/' || c == '+' || c == '@';
}

bool safe_key(std::string_view k) {
  if (k.empty()) return false;
  if (!std::isalnum(static_cast<unsigned char>(k[0])) && k[0] != '_') return false;
  for (char c : k) {
    if (!is_key_char(c)) return false;
  }
  return !is_null_word(k);
}

// A plain scalar of a block value or flow item that yaml-cpp reads as its text.
bool safe_plain(std::string_view s, bool in_flow) {
  if (s.empty()) return false;
  char first = s[0];
  if (std::strchr("-?:,[]{}#&*!|>'\"%@`~", first) != nullptr) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"' || c == '\'' || c == '[' || c == ']' || c == '{' || c == '}' || c == ',') {
      return false;
    }
    if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' ' || in_flow)) return false;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return false;
    if (in_flow && c == ' ') return false;
  }
  return s.back() != ' ';
}

bool simple_quoted(std::string_view s, char q) {
  if (s.size() < 2 || s.front() != q || s.back() != q) return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == q || s[i] == '\\') return false;
  }
  return true;
}

std::string_view trim_view(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool fast_scalar(std::string_view s, int line, bool in_flow, RawValue* out) {
  out->line = line;
  if (s == "~" || (!s.empty() && is_null_word(s))) {
    out->type = Type::kNull;
    return true;
  }
  if (simple_quoted(s, '"') || simple_quoted(s, '\'')) {
    out->type = Type::kScalar;
    out->plain = false;
    out->scalar = std::string(s.substr(1, s.size() - 2));
    return true;
  }
  if (!safe_plain(s, in_flow)) return false;
  out->type = Type::kScalar;
  out->plain = true;
  out->scalar = std::string(s);
  return true;
}

bool fast_json(std::string_view s, int line, RawValue* out) {
  TreeBuilder builder(value_budget(s.size()));
  JsonSax sax(&builder, nullptr, line);
  try {
    if (!nlohmann::json::sax_parse(s.begin(), s.end(), &sax) || !builder.complete()) return false;
  } catch (const std::exception&) {
    return false;
  }
  *out = builder.take();
  return true;
}

bool fast_value(std::string_view v, int line, RawValue* out) {
  if (v.empty()) return false;
  if (v.front() == '{') return fast_json(v, line, out);
  if (v.front() == '"') {
    // A JSON string means the same in YAML's double-quoted style.
    if (simple_quoted(v, '"')) return fast_scalar(v, line, false, out);
    if (!fast_json(v, line, out)) return false;
    return out->is_scalar();
  }
  if (v.front() == '[') {
    if (v.back() != ']') return false;
    out->type = Type::kSequence;
    out->line = line;
    std::string_view inner = trim_view(v.substr(1, v.size() - 2));
    if (inner.empty()) return true;
    size_t start = 0;
    while (true) {
      size_t comma = inner.find(',', start);
      std::string_view item = trim_view(
          inner.substr(start, comma == std::string_view::npos ? inner.npos : comma - start));
      RawValue element;
      if (!fast_scalar(item, line, true, &element)) return false;
      out->items.push_back(std::move(element));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return true;
  }
  return fast_scalar(v, line, false, out);
}

}  // namespace

bool RawValue::operator==(const RawValue& o) const {
  return type == o.type && line == o.line && items == o.items &&
         (type != Type::kScalar || (plain == o.plain && scalar == o.scalar));
}

const char* describe(const RawValue& v) {
  switch (v.type) {
    case Type::kNull:
      return "null";
    case Type::kScalar:
      return "a scalar";
    case Type::kSequence:
      return "a list";
    case Type::kMap:
      return "a mapping";
  }
  return "?";
}

nlohmann::json to_json(const RawValue& v) {
  switch (v.type) {
    case Type::kNull:
      return nullptr;
    case Type::kScalar:
      return v.plain ? resolve_plain(v.scalar) : nlohmann::json(v.scalar);
    case Type::kSequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : v.items) a.push_back(to_json(item));
      return a;
    }
    case Type::kMap: {
      nlohmann::json o = nlohmann::json::object();
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        const RawValue& k = v.items[i];
        std::string key = k.is_scalar() ? k.scalar : (k.is_null() ? "null" : to_json(k).dump());
        o[key] = to_json(v.items[i + 1]);
      }
      return o;
    }
  }
  return nullptr;
}

std::string scalar_id(const RawValue& v) {
  if (!v.plain || !is_decimal_int(v.scalar)) return v.scalar;
  std::string_view s = v.scalar;
  bool negative = s[0] == '-';
  if (s[0] == '+' || s[0] == '-') s.remove_prefix(1);
  while (s.size() > 1 && s[0] == '0') s.remove_prefix(1);
  if (s == "0") negative = false;
  return (negative ? "-" : "") + std::string(s);
}

bool parse_yaml_fast(std::string_view text, RawValue* out) {
  RawValue root;
  root.type = Type::kMap;
  bool saw_doc_start = false;
  int node_indent = -1;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    bool has_quote = false;
    for (char c : line) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f) return false;  // tabs, CR, control, non-ASCII
      has_quote = has_quote || c == '"' || c == '\'';
    }
    size_t first = line.find_first_not_of(' ');
    if (first == std::string_view::npos || line[first] == '#') continue;  // blank or comment
    size_t hash = line.find('#');
    if (hash != std::string_view::npos) {
      if (has_quote) return false;
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '#' && (i == 0 || line[i - 1] == ' ')) {
          line = line.substr(0, i);
          break;
        }
      }
    }
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t indent = line.find_first_not_of(' ');
    if (indent == 0) {
      if (line == "---" && !saw_doc_start && root.items.empty()) {
        saw_doc_start = true;
        continue;
      }
      if (line.back() != ':') return false;
      std::string_view key = line.substr(0, line.size() - 1);
      if (!safe_key(key)) return false;
      if (!root.items.empty() && root.items.back().is_null()) return false;  // no attributes
      if (root.items.empty()) root.line = line_no;
      RawValue k;
      k.type = Type::kScalar;
      k.line = line_no;
      k.scalar = std::string(key);
      root.items.push_back(std::move(k));
      root.items.emplace_back();  // null until its first attribute
      node_indent = -1;
      continue;
    }
    if (root.items.empty()) return false;
    RawValue& node = root.items.back();
    if (node_indent < 0) {
      node_indent = static_cast<int>(indent);
      node.type = Type::kMap;
      node.line = line_no;
    } else if (static_cast<int>(indent) != node_indent) {
      return false;
    }
    std::string_view content = line.substr(indent);
    size_t colon = content.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view key = content.substr(0, colon);
    std::string_view rest = content.substr(colon + 1);
    if (!safe_key(key) || rest.empty() || rest[0] != ' ') return false;
    RawValue k;
    k.type = Type::kScalar;
    k.line = line_no;
    k.scalar = std::string(key);
    RawValue v;
    if (!fast_value(trim_view(rest), line_no, &v)) return false;
    node.items.push_back(std::move(k));
    node.items.push_back(std::move(v));
  }
  if (root.items.empty() || root.items.back().is_null()) return false;
  *out = std::move(root);
  return true;
}

StatusOr<RawValue> parse_yaml_raw(std::string_view text, const std::string& source,
                                  bool allow_fast_path) {
  if (allow_fast_path) {
    RawValue fast;
    if (parse_yaml_fast(text, &fast)) return fast;
  }
  return parse_yaml_cpp(text, source);
}

StatusOr<RawValue> parse_json_raw(std::string_view text, const std::string& source) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    RawValue empty;
    empty.line = 1;
    return empty;
  }
  std::vector<int> lines = json_token_lines(text);
  TreeBuilder builder(value_budget(text.size()));
  JsonSax sax(&builder, &lines, 0);
  try {
    bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
    if (!ok) {
      if (!sax.error().empty()) {
        // The error position is one past the offending character.
        size_t at = sax.error_position() > 0 ? sax.error_position() - 1 : 0;
        return syntax_error(source, line_of_offset(text, at),
                            "JSON syntax error: " + clean_json_error(sax.error()));
      }
      return syntax_error(source, 1, "JSON syntax error");
    }
  } catch (const BuildError& e) {
    return syntax_error(source, e.line, e.what());
  } catch (const std::exception& e) {
    return syntax_error(source, 1, std::string("JSON error: ") + e.what());
  }
  if (!builder.complete()) return syntax_error(source, 1, "incomplete JSON document");
  return builder.take();
}

long yaml_cpp_baseline_load(const std::string& text) {
  try {
    YAML::Node n = YAML::Load(text);
    return static_cast<long>(n.size());
  } catch (const YAML::Exception&) {
    return -1;
  }
}

}  // namespace flight::topology::internal
