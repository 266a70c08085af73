#include "topology/topology.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "flight/base/check.h"
#include "flight/base/strings.h"
#include "topology/raw_document.h"

namespace flight::topology {

using internal::RawValue;

const char* kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::kCoordinator:
      return "coordinator";
    case NodeKind::kAggregator:
      return "aggregator";
    case NodeKind::kWorker:
      return "worker";
  }
  return "?";
}

std::optional<NodeKind> parse_kind(const std::string& s) {
  if (s == "worker") return NodeKind::kWorker;  // the common case, without allocating
  std::string k = to_lower(trim(s));
  if (k == "coordinator" || k == "leader") return NodeKind::kCoordinator;
  if (k == "aggregator") return NodeKind::kAggregator;
  if (k == "worker") return NodeKind::kWorker;
  return std::nullopt;
}

bool Node::operator==(const Node& o) const {
  return id == o.id && kind == o.kind && parent == o.parent && children == o.children &&
         endpoint == o.endpoint && proxystore_endpoint == o.proxystore_endpoint &&
         connector == o.connector && data == o.data && speed == o.speed && extra == o.extra;
}

namespace {

// Most errors listed for one file; the rest are counted.
constexpr size_t kMaxListedErrors = 200;
// Above this many nodes, "did you mean" for missing children is skipped (it is
// quadratic).
constexpr size_t kMaxSuggestNodes = 5000;

const std::vector<std::string>& known_attributes() {
  static const std::vector<std::string> k = {"kind",           "children",
                                             "endpoint",       "globus_compute_endpoint",
                                             "globus_comp_id", "proxystore_endpoint",
                                             "proxystore_id",  "connector",
                                             "data",           "speed",
                                             "extra"};
  return k;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// A scalar's text for messages, shortened.
std::string shown(const RawValue& v) {
  if (v.is_scalar()) {
    std::string s = v.scalar.size() > 40 ? v.scalar.substr(0, 37) + "..." : v.scalar;
    return quote(s);
  }
  return describe(v);
}

}  // namespace

// Turns parsed documents or node lists into validated Topologies, collecting
// every problem before giving up so `flight topo validate` can list them all.
class Builder {
 public:
  struct Draft {
    Node node;
    std::vector<int> child_lines;  // line of each entry of node.children
    int children_line = 0;         // line of the `children` attribute
    bool kind_known = false;
  };

  explicit Builder(std::string source) : source_(std::move(source)) {}

  void error(int line, const std::string& node, const std::string& message) {
    problems_.push_back({line, prefix(line, node) + message});
  }
  void warning(int line, const std::string& node, const std::string& message) {
    warnings_.push_back(prefix(line, node) + message);
  }

  StatusOr<Topology> from_raw(const RawValue& root) {
    if (root.is_null()) {
      error(root.line, "", "empty topology (expected a mapping from node id to attributes)");
      return finish_errors();
    }
    if (!root.is_map()) {
      error(
          root.line, "",
          std::string("a topology is a mapping from node id to attributes, got ") + describe(root));
      return finish_errors();
    }
    std::vector<Draft> drafts;
    drafts.reserve(root.map_size());
    for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
      const RawValue& key = root.items[i];
      const RawValue& value = root.items[i + 1];
      if (!key.is_scalar()) {
        error(key.line, "",
              std::string("node id must be an integer or a string, got ") + describe(key));
        continue;
      }
      std::string id = internal::scalar_id(key);
      if (id.empty()) {
        error(key.line, "", "node id is empty");
        continue;
      }
      Draft d;
      d.node.id = id;
      d.node.line = key.line;
      if (value.is_null()) {
        error(key.line, id, "has no attributes (expected a mapping with at least 'kind')");
      } else if (!value.is_map()) {
        error(value.line, id, std::string("attributes must be a mapping, got ") + describe(value));
      } else {
        read_attributes(value, &d);
      }
      drafts.push_back(std::move(d));
    }
    return from_drafts(std::move(drafts));
  }

  StatusOr<Topology> from_nodes(std::vector<Node> nodes) {
    std::vector<Draft> drafts;
    drafts.reserve(nodes.size());
    for (auto& n : nodes) {
      if (n.id.empty()) {
        error(n.line, "", "node id is empty");
        continue;
      }
      if (!(n.speed > 0) || !std::isfinite(n.speed)) {
        error(n.line, n.id, "'speed' must be a positive number, got " + std::to_string(n.speed));
      }
      if (!n.extra.is_null() && !n.extra.is_object()) {
        error(n.line, n.id, "'extra' must be a mapping");
      }
      if (n.extra.is_object() && n.extra.empty()) n.extra = nullptr;
      Draft d;
      d.child_lines.assign(n.children.size(), n.line);
      d.children_line = n.line;
      d.kind_known = true;
      n.parent.reset();
      std::unordered_set<std::string> listed;
      for (const auto& c : n.children) {
        if (!listed.insert(c).second) error(n.line, n.id, "child " + quote(c) + " listed twice");
      }
      d.node = std::move(n);
      drafts.push_back(std::move(d));
    }
    return from_drafts(std::move(drafts));
  }

 private:
  std::string prefix(int line, const std::string& node) const {
    std::string p = source_ + ":" + std::to_string(line < 1 ? 1 : line) + ": ";
    if (!node.empty()) p += "node " + quote(node) + ": ";
    return p;
  }

  Status finish_errors() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const Problem& a, const Problem& b) { return a.line < b.line; });
    std::string message;
    size_t listed = std::min(problems_.size(), kMaxListedErrors);
    for (size_t i = 0; i < listed; ++i) {
      if (i) message += "\n";
      message += problems_[i].text;
    }
    if (problems_.size() > listed) {
      message += "\n" + source_ + ": ... and " + std::to_string(problems_.size() - listed) +
                 " more errors";
    }
    return invalid_argument(message);
  }

  // Reads one node's attribute mapping into `d`, reporting bad attributes.
  void read_attributes(const RawValue& attrs, Draft* d) {
    Node& n = d->node;
    const std::string& id = n.id;
    // Duplicate attribute names: a linear scan for the usual handful, a set beyond.
    constexpr size_t kLinearScan = 16;
    std::unordered_map<std::string_view, int> seen;
    bool kind_seen = false;
    // Endpoint spellings, highest priority first; the losers are kept in extra.
    std::vector<std::pair<std::string, std::string>> endpoints, proxystores;
    nlohmann::json extra;  // null until needed: most nodes have none
    nlohmann::json unknown;
    for (size_t i = 0; i + 1 < attrs.items.size(); i += 2) {
      const RawValue& k = attrs.items[i];
      const RawValue& v = attrs.items[i + 1];
      if (!k.is_scalar()) {
        error(k.line, id, std::string("attribute names must be strings, got ") + describe(k));
        continue;
      }
      const std::string& name = k.scalar;
      int first_line = 0;
      if (attrs.map_size() <= kLinearScan) {
        for (size_t j = 0; j < i && first_line == 0; j += 2) {
          if (attrs.items[j].is_scalar() && attrs.items[j].scalar == name) {
            first_line = attrs.items[j].line;
          }
        }
      } else {
        auto [it, inserted] = seen.emplace(name, k.line);
        if (!inserted) first_line = it->second;
      }
      if (first_line != 0) {
        error(k.line, id,
              "attribute " + quote(name) + " given twice (first on line " +
                  std::to_string(first_line) + ")");
        continue;
      }
      if (name == "kind") {
        kind_seen = true;
        if (!v.is_scalar()) {
          error(v.line, id, std::string("'kind' must be a string, got ") + describe(v));
          continue;
        }
        auto kind = parse_kind(v.scalar);
        if (!kind) {
          error(v.line, id,
                "unknown kind " + shown(v) +
                    " (expected leader, coordinator, aggregator or worker)" +
                    did_you_mean(to_lower(trim(v.scalar)),
                                 {"leader", "coordinator", "aggregator", "worker"}));
          continue;
        }
        n.kind = *kind;
        d->kind_known = true;
      } else if (name == "children") {
        d->children_line = v.line;
        if (v.is_null()) continue;
        if (!v.is_sequence()) {
          error(v.line, id,
                std::string("'children' must be a list of node ids, got ") + describe(v));
          continue;
        }
        std::unordered_set<std::string> listed;
        for (size_t c = 0; c < v.items.size(); ++c) {
          const RawValue& item = v.items[c];
          std::string child = item.is_scalar() ? internal::scalar_id(item) : "";
          if (child.empty()) {
            error(item.line, id,
                  "child #" + std::to_string(c + 1) +
                      " must be a node id (integer or string), got " +
                      (item.is_scalar() ? "an empty string" : describe(item)));
            continue;
          }
          if (!listed.insert(child).second) {
            error(item.line, id, "child " + quote(child) + " listed twice");
            continue;
          }
          n.children.push_back(child);
          d->child_lines.push_back(item.line);
        }
      } else if (name == "endpoint" || name == "globus_compute_endpoint" ||
                 name == "globus_comp_id" || name == "proxystore_endpoint" ||
                 name == "proxystore_id") {
        if (v.is_null()) continue;
        if (!v.is_scalar()) {
          error(v.line, id, quote(name) + " must be a string, got " + describe(v));
          continue;
        }
        bool proxystore = name.rfind("proxystore", 0) == 0;
        (proxystore ? proxystores : endpoints).emplace_back(name, v.scalar);
      } else if (name == "connector") {
        n.connector = internal::to_json(v);
      } else if (name == "data") {
        n.data = internal::to_json(v);
      } else if (name == "speed") {
        nlohmann::json s = v.is_scalar() && v.plain ? internal::to_json(v) : nlohmann::json();
        double speed = s.is_number() ? s.get<double>() : 0.0;
        if (!s.is_number() || !(speed > 0) || !std::isfinite(speed)) {
          error(v.line, id, "'speed' must be a positive number, got " + shown(v));
          continue;
        }
        n.speed = speed;
      } else if (name == "extra") {
        if (v.is_null()) continue;
        if (!v.is_map()) {
          error(v.line, id, std::string("'extra' must be a mapping, got ") + describe(v));
          continue;
        }
        extra = internal::to_json(v);
      } else {
        if (unknown.is_null()) unknown = nlohmann::json::object();
        unknown[name] = internal::to_json(v);
        std::string hint = did_you_mean(name, known_attributes());
        if (!hint.empty()) {
          warning(k.line, id, "unknown attribute " + quote(name) + " kept in extra" + hint);
        }
      }
    }
    if (!kind_seen) {
      error(n.line, id, "missing 'kind' (expected coordinator, aggregator or worker)");
    }
    // Priority: ours, then the 2024 reference spelling, then the 2025 one.
    auto pick = [&](auto& found, const std::vector<std::string>& order,
                    std::optional<std::string>* out) {
      for (const auto& want : order) {
        for (const auto& [name, value] : found) {
          if (name != want) continue;
          if (!out->has_value()) {
            *out = value;
          } else if (extra.is_null() || !extra.contains(name)) {
            extra[name] = value;  // null becomes an object
          }
        }
      }
    };
    pick(endpoints, {"endpoint", "globus_compute_endpoint", "globus_comp_id"}, &n.endpoint);
    pick(proxystores, {"proxystore_endpoint", "proxystore_id"}, &n.proxystore_endpoint);
    if (unknown.is_object()) {
      for (auto it = unknown.begin(); it != unknown.end(); ++it) {
        if (extra.is_null() || !extra.contains(it.key())) extra[it.key()] = it.value();
      }
    }
    if (extra.is_object() && !extra.empty()) n.extra = std::move(extra);
  }

  // Structural validation, then the BFS-ordered Topology. Hash lookups happen
  // once per id and once per child; everything after works on indices (this is
  // the hot part of loading 100,000 nodes).
  StatusOr<Topology> from_drafts(std::vector<Draft> all) {
    constexpr size_t kNone = static_cast<size_t>(-1);
    std::unordered_map<std::string, size_t> idx;
    idx.reserve(all.size());
    std::vector<char> duplicate(all.size(), 0);
    size_t kept = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      auto [it, inserted] = idx.emplace(all[i].node.id, i);
      if (!inserted) {
        const Node& first = all[it->second].node;
        error(all[i].node.line, all[i].node.id,
              "duplicate id" + (first.line > 0
                                    ? " (first defined on line " + std::to_string(first.line) + ")"
                                    : std::string()));
        duplicate[i] = 1;
        continue;
      }
      ++kept;
    }
    // Drop duplicates (rare) so that indices in `idx` address `drafts`.
    std::vector<Draft> drafts;
    if (kept == all.size()) {
      drafts = std::move(all);
    } else {
      std::vector<size_t> moved_to(all.size(), 0);
      drafts.reserve(kept);
      for (size_t i = 0; i < all.size(); ++i) {
        if (duplicate[i]) continue;
        moved_to[i] = drafts.size();
        drafts.push_back(std::move(all[i]));
      }
      for (auto& entry : idx) entry.second = moved_to[entry.second];
    }
    const size_t n = drafts.size();
    int first_line = n ? drafts[0].node.line : 1;

    std::vector<std::string> all_ids;
    if (n <= kMaxSuggestNodes) {
      for (const auto& d : drafts) all_ids.push_back(d.node.id);
    }

    // Parents from children lists; child_index[first_child[i] + c] is the index of
    // node i's c-th child, kNone when it is unusable (missing, self, second parent).
    std::vector<size_t> parent(n, kNone);
    std::vector<size_t> first_child(n + 1, 0);
    for (size_t i = 0; i < n; ++i)
      first_child[i + 1] = first_child[i] + drafts[i].node.children.size();
    std::vector<size_t> child_index(first_child[n], kNone);
    for (size_t i = 0; i < n; ++i) {
      const Node& node = drafts[i].node;
      for (size_t c = 0; c < node.children.size(); ++c) {
        const std::string& child = node.children[c];
        int line = c < drafts[i].child_lines.size() ? drafts[i].child_lines[c] : node.line;
        auto it = idx.find(child);
        if (it == idx.end()) {
          error(line, node.id,
                "child " + quote(child) + " does not exist" + did_you_mean(child, all_ids));
          continue;
        }
        size_t k = it->second;
        if (k == i) {
          error(line, node.id, "lists itself as a child");
          continue;
        }
        if (parent[k] != kNone) {
          const Node& first = drafts[parent[k]].node;
          error(line, child,
                "has two parents, " + quote(first.id) + " (line " + std::to_string(first.line) +
                    ") and " + quote(node.id) + " (line " + std::to_string(node.line) +
                    "); a topology is a tree");
          continue;
        }
        parent[k] = i;
        child_index[first_child[i] + c] = k;
      }
    }

    // Kinds. A node whose kind could not be read might be the missing coordinator
    // or worker, so the global counts are only checked when every kind is known.
    std::vector<size_t> coordinators;
    size_t workers = 0;
    bool all_kinds_known = true;
    for (size_t i = 0; i < n; ++i) {
      const Draft& d = drafts[i];
      all_kinds_known = all_kinds_known && d.kind_known;
      if (!d.kind_known) continue;
      const Node& node = d.node;
      switch (node.kind) {
        case NodeKind::kCoordinator:
          coordinators.push_back(i);
          break;
        case NodeKind::kWorker:
          ++workers;
          if (!node.children.empty()) {
            error(d.children_line ? d.children_line : node.line, node.id,
                  "worker has children (workers must be leaves; make it an aggregator)");
          }
          break;
        case NodeKind::kAggregator:
          if (node.children.empty()) {
            error(node.line, node.id, "aggregator has no children (it needs at least one)");
          }
          break;
      }
    }
    size_t root = kNone;
    if (coordinators.empty()) {
      if ((n > 0 && all_kinds_known) || problems_.empty()) {
        error(first_line, "", "no coordinator (exactly one node must have kind coordinator)");
      }
    } else {
      root = coordinators[0];
      const Node& r = drafts[root].node;
      for (size_t c = 1; c < coordinators.size(); ++c) {
        const Node& extra = drafts[coordinators[c]].node;
        error(extra.line, extra.id,
              "second coordinator (the first is " + quote(r.id) + " on line " +
                  std::to_string(r.line) + "); a topology has exactly one");
      }
      if (parent[root] != kNone) {
        error(r.line, r.id,
              "the coordinator has a parent, " + quote(drafts[parent[root]].node.id) +
                  " (the coordinator must be the root)");
      }
    }
    if (workers == 0 && n > 0 && all_kinds_known) {
      error(first_line, "", "no worker (a topology needs at least one worker)");
    }
    // Other roots.
    for (size_t i = 0; i < n; ++i) {
      if (parent[i] != kNone || i == root) continue;
      const Draft& d = drafts[i];
      // A second coordinator is reported above; an unknown kind may be the coordinator.
      if (!d.kind_known || d.node.kind == NodeKind::kCoordinator) continue;
      error(d.node.line, d.node.id,
            "has no parent and is not the coordinator (unreachable; only the coordinator may "
            "be a root)");
    }
    // Breadth-first from the coordinator: the final order, and reachability.
    std::vector<size_t> order;
    order.reserve(n);
    std::vector<uint32_t> tier_of(n, 0);
    std::vector<char> reached(n, 0);
    if (root != kNone) {
      order.push_back(root);
      reached[root] = 1;
      for (size_t head = 0; head < order.size(); ++head) {
        size_t i = order[head];
        for (size_t c = first_child[i]; c < first_child[i + 1]; ++c) {
          size_t k = child_index[c];
          if (k == kNone || reached[k]) continue;
          reached[k] = 1;
          tier_of[k] = tier_of[i] + 1;
          order.push_back(k);
        }
      }
    }
    // What the coordinator does not reach and has a parent sits on or below a
    // cycle; report each cycle once.
    std::vector<size_t> walk_of(n, 0);
    size_t walk = 0;
    for (size_t i = 0; i < n; ++i) {
      if (reached[i] || walk_of[i] || parent[i] == kNone) continue;
      ++walk;
      size_t v = i;
      while (v != kNone && !reached[v] && walk_of[v] == 0) {
        walk_of[v] = walk;
        v = parent[v];
      }
      if (v == kNone || reached[v] || walk_of[v] != walk) continue;  // ends at a root or known
      // v is on a new cycle: list it parent -> child, starting at its first line.
      std::vector<size_t> cycle;
      size_t u = v;
      do {
        cycle.push_back(u);
        u = parent[u];
      } while (u != v);
      std::reverse(cycle.begin(), cycle.end());
      auto first = std::min_element(cycle.begin(), cycle.end(), [&](size_t a, size_t b) {
        return drafts[a].node.line < drafts[b].node.line;
      });
      std::rotate(cycle.begin(), first, cycle.end());
      std::string path;
      for (size_t c : cycle) path += drafts[c].node.id + " -> ";
      path += drafts[cycle[0]].node.id;
      const Node& at = drafts[cycle[0]].node;
      error(at.line, at.id, "cycle " + path + " (not reachable from the coordinator)");
    }
    if (!problems_.empty()) return finish_errors();
    FLIGHT_CHECK(order.size() == n, "validated topology is not connected");

    // Valid: lay the nodes out breadth-first; the id map is reused as the index.
    Topology t;
    t.source_ = source_;
    t.warnings_ = std::move(warnings_);
    std::vector<size_t> position(n, kNone);
    for (size_t p = 0; p < n; ++p) position[order[p]] = p;
    t.nodes_.reserve(n);
    t.tier_.reserve(n);
    for (size_t i : order) {
      Node node = std::move(drafts[i].node);
      // Parents come first in BFS order, so their node is already placed.
      if (parent[i] != kNone) node.parent = t.nodes_[position[parent[i]]].id;
      t.tier_.push_back(tier_of[i]);
      t.tier_count_ = std::max<size_t>(t.tier_count_, tier_of[i] + 1);
      t.nodes_.push_back(std::move(node));
    }
    for (auto& entry : idx) entry.second = position[entry.second];
    t.index_ = std::move(idx);
    return t;
  }

  struct Problem {
    int line;
    std::string text;
  };
  std::string source_;
  std::vector<Problem> problems_;
  std::vector<std::string> warnings_;
};

namespace {

// Offset of the first byte that is not part of well-formed UTF-8 (no
// overlong forms, surrogates or code points above U+10FFFF); npos if none.
size_t utf8_error_offset(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

Status check_text(std::string_view text, const std::string& source) {
  size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    return invalid_argument(source + ":" + std::to_string(line) +
                            ": binary data (NUL byte at offset " + std::to_string(nul) +
                            "); a topology is YAML or JSON text");
  }
  // YAML and JSON text is UTF-8; anything else would reach ids and attributes
  // that are written back out as JSON strings (found by fuzz_topology_yaml).
  size_t bad = utf8_error_offset(text);
  if (bad != std::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + bad, '\n'));
    return invalid_argument(source + ":" + std::to_string(line) +
                            ": not UTF-8 text (invalid byte at offset " + std::to_string(bad) +
                            ")");
  }
  return Status::ok();
}

bool looks_like_json(const std::string& text) {
  size_t p = text.find_first_not_of(" \t\r\n");
  return p != std::string::npos && text[p] == '{';
}

// Scalar text for YAML output: plain when it reads back as the same id/string,
// else a JSON string (a valid YAML double-quoted scalar).
std::string yaml_text(const std::string& s) {
  bool plain = !s.empty() && (std::isalnum(static_cast<unsigned char>(s[0])) || s[0] == '_');
  for (char c : s) {
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                      c == '-' || c == '/' || c == '+' || c == '@');
  }
  if (plain && (s == "null" || s == "Null" || s == "NULL")) plain = false;
  if (plain) {
    RawValue v;
    v.type = RawValue::Type::kScalar;
    v.scalar = s;
    plain = internal::scalar_id(v) == s;  // "007" would read back as "7"
  }
  return plain ? s : nlohmann::json(s).dump();
}

// JSON in flow style with spaces (`{"a": 1, "b": [1, 2]}`), which is also YAML.
void write_flow(const nlohmann::json& j, std::string* out) {
  if (j.is_object()) {
    *out += '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) *out += ", ";
      first = false;
      *out += nlohmann::json(it.key()).dump();
      *out += ": ";
      write_flow(it.value(), out);
    }
    *out += '}';
  } else if (j.is_array()) {
    *out += '[';
    for (size_t i = 0; i < j.size(); ++i) {
      if (i) *out += ", ";
      write_flow(j[i], out);
    }
    *out += ']';
  } else {
    *out += j.dump();
  }
}

}  // namespace

StatusOr<Topology> Topology::parse_yaml(const std::string& text, const std::string& source_name) {
  FLIGHT_RETURN_IF_ERROR(check_text(text, source_name));
  FLIGHT_ASSIGN_OR_RETURN(RawValue raw, internal::parse_yaml_raw(text, source_name));
  return Builder(source_name).from_raw(raw);
}

StatusOr<Topology> Topology::parse_json(const std::string& text, const std::string& source_name) {
  FLIGHT_RETURN_IF_ERROR(check_text(text, source_name));
  FLIGHT_ASSIGN_OR_RETURN(RawValue raw, internal::parse_json_raw(text, source_name));
  return Builder(source_name).from_raw(raw);
}

StatusOr<Topology> Topology::from_nodes(std::vector<Node> nodes, const std::string& source_name) {
  return Builder(source_name).from_nodes(std::move(nodes));
}

StatusOr<Topology> Topology::load(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return not_found(path + ": cannot read: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return invalid_argument(path + ": is a directory, not a topology file");
  if (static_cast<size_t>(st.st_size) > internal::kMaxFileBytes) {
    return resource_exhausted(path + ": file too large (" + human_bytes(st.st_size) + "; at most " +
                              human_bytes(internal::kMaxFileBytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot read: " + std::strerror(errno));
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.gcount() != static_cast<std::streamsize>(text.size())) {
    return data_loss(path + ": short read");
  }
  std::string lower = to_lower(path);
  bool json = ends_with(lower, ".json") ||
              (!ends_with(lower, ".yaml") && !ends_with(lower, ".yml") && looks_like_json(text));
  return json ? parse_json(text, path) : parse_yaml(text, path);
}

std::string Topology::to_yaml() const {
  std::string out;
  out.reserve(nodes_.size() * 48);
  size_t aggs = 0, workers = 0;
  for (const auto& n : nodes_) {
    aggs += n.is_aggregator();
    workers += n.is_worker();
  }
  out += "# Flight topology: " + std::to_string(nodes_.size()) + " nodes (1 coordinator, " +
         std::to_string(aggs) + " aggregators, " + std::to_string(workers) + " workers), height " +
         std::to_string(height()) + "\n";
  for (const auto& n : nodes_) {
    out += yaml_text(n.id);
    out += ":\n  kind: ";
    out += kind_name(n.kind);
    out += '\n';
    if (!n.children.empty()) {
      out += "  children: [";
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i) out += ", ";
        out += yaml_text(n.children[i]);
      }
      out += "]\n";
    }
    if (n.endpoint) out += "  endpoint: " + yaml_text(*n.endpoint) + "\n";
    if (n.proxystore_endpoint) {
      out += "  proxystore_endpoint: " + yaml_text(*n.proxystore_endpoint) + "\n";
    }
    auto json_attr = [&out](const char* name, const nlohmann::json& j) {
      if (j.is_null()) return;
      out += "  ";
      out += name;
      out += ": ";
      write_flow(j, &out);
      out += '\n';
    };
    json_attr("connector", n.connector);
    json_attr("data", n.data);
    if (n.speed != 1.0) out += "  speed: " + nlohmann::json(n.speed).dump() + "\n";
    json_attr("extra", n.extra);
  }
  return out;
}

Status Topology::save_yaml(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return unavailable(path + ": cannot write: " + std::strerror(errno));
  std::string text = to_yaml();
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return unavailable(path + ": write failed: " + std::strerror(errno));
  return Status::ok();
}

const Node* Topology::find(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &nodes_[it->second];
}

size_t Topology::index_of(const std::string& id) const {
  auto it = index_.find(id);
  FLIGHT_CHECK(it != index_.end(), "no node '" + id + "' in topology " + source_);
  return it->second;
}

const Node& Topology::node(const std::string& id) const { return nodes_[index_of(id)]; }

std::vector<std::string> Topology::workers() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) {
    if (n.is_worker()) out.push_back(n.id);
  }
  return out;
}

std::vector<std::string> Topology::aggregators() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) {
    if (n.is_aggregator()) out.push_back(n.id);
  }
  return out;
}

const std::optional<std::string>& Topology::parent(const std::string& id) const {
  return node(id).parent;
}

const std::vector<std::string>& Topology::children(const std::string& id) const {
  return node(id).children;
}

std::vector<std::string> Topology::ancestors(const std::string& id) const {
  std::vector<std::string> out;
  const Node* n = &node(id);
  while (n->parent) {
    out.push_back(*n->parent);
    n = &node(*n->parent);
  }
  return out;
}

std::vector<std::string> Topology::subtree(const std::string& id) const {
  std::vector<std::string> out{node(id).id};
  for (size_t head = 0; head < out.size(); ++head) {
    for (const auto& c : node(out[head]).children) out.push_back(c);
  }
  return out;
}

std::vector<std::string> Topology::leaves_under(const std::string& id) const {
  std::vector<std::string> out;
  for (auto& s : subtree(id)) {
    if (node(s).is_worker()) out.push_back(std::move(s));
  }
  return out;
}

size_t Topology::tier(const std::string& id) const { return tier_[index_of(id)]; }

std::vector<size_t> Topology::nodes_per_tier() const {
  std::vector<size_t> out(tier_count_, 0);
  for (uint32_t t : tier_) ++out[t];
  return out;
}

Topology Topology::induced(const std::vector<std::string>& selected_workers) const {
  FLIGHT_CHECK(!selected_workers.empty(), "induced() needs at least one selected worker");
  std::vector<char> keep(nodes_.size(), 0);
  for (const auto& w : selected_workers) {
    size_t i = index_of(w);
    FLIGHT_CHECK(nodes_[i].is_worker(), "induced(): '" + w + "' is not a worker");
    while (!keep[i]) {
      keep[i] = 1;
      if (!nodes_[i].parent) break;
      i = index_.at(*nodes_[i].parent);
    }
  }
  // The kept nodes in BFS order are a BFS order of the induced tree.
  Topology t;
  t.source_ = source_;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!keep[i]) continue;
    Node n = nodes_[i];
    n.children.erase(std::remove_if(n.children.begin(), n.children.end(),
                                    [&](const std::string& c) { return !keep[index_.at(c)]; }),
                     n.children.end());
    t.index_.emplace(n.id, t.nodes_.size());
    t.tier_.push_back(tier_[i]);
    t.tier_count_ = std::max<size_t>(t.tier_count_, tier_[i] + 1);
    t.nodes_.push_back(std::move(n));
  }
  return t;
}

}  // namespace flight::topology
