// Topology: the tree that says who trains (workers, the leaves) and who
// aggregates (the coordinator at the root, aggregators in between).
//
// File format (YAML or JSON; the Python Flight reference's files load unchanged):
// a mapping from node id (integer or string) to attributes:
//
//   coordinator:                       # or 0:
//     kind: coordinator                # leader | coordinator | aggregator | worker
//     children: [site-a, site-b]       # ids, in order; omit or [] for workers
//     endpoint: hq                     # FaaS endpoint name (ours)
//   site-a:
//     kind: aggregator
//     globus_compute_endpoint: 9f3c... # 2024 reference format; 2025: globus_comp_id
//     proxystore_endpoint: ~           # 2025: proxystore_id
//     children: [1, 2]
//   1: {kind: worker, speed: 0.5, data: {shard: 3}, extra: {device: cpu}}
//
// Attributes: `kind` (required, case-insensitive), `children`, `endpoint` (else
// `globus_compute_endpoint`, else `globus_comp_id`), `proxystore_endpoint` (else
// `proxystore_id`), `connector` (any JSON value), `data` (partition hints, any JSON
// value), `speed` (relative device speed, > 0, default 1), `extra` (a mapping).
// Unknown attributes are kept: they are merged into `extra` (a key already in
// `extra` wins). Integer ids (unquoted in YAML, numbers in JSON `children`) are
// stored as their decimal string, so `1`, `"1"` and `01` name the same node.
//
// Validation (all problems are reported, each as "file:line: node 'x': message"):
// exactly one coordinator and it is the root; a tree (no cycle, no node with two
// parents, every node reachable from the coordinator); children exist; ids are
// unique; workers are leaves; aggregators have at least one child; at least one
// worker; attribute types as above.
//
// Thread safety: a Topology is an immutable value after construction; concurrent
// const access is safe. Copy freely (it owns its nodes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::topology {

enum class NodeKind { kCoordinator, kAggregator, kWorker };  // "leader" == coordinator

// "coordinator", "aggregator", "worker".
const char* kind_name(NodeKind kind);
// Case-insensitive, surrounding whitespace ignored; "leader" -> kCoordinator.
std::optional<NodeKind> parse_kind(const std::string& s);

struct Node {
  std::string id;  // ints are stored as their decimal string
  NodeKind kind = NodeKind::kWorker;
  std::optional<std::string> parent;    // nullopt for the root
  std::vector<std::string> children;    // in file order
  std::optional<std::string> endpoint;  // FaaS endpoint name, else globus_compute_endpoint /
                                        // globus_comp_id
  std::optional<std::string> proxystore_endpoint;  // proxystore_endpoint / proxystore_id
  nlohmann::json connector;                        // null when absent
  nlohmann::json data;                             // partition hints, null when absent
  double speed = 1.0;                              // relative device speed (> 0)
  nlohmann::json extra;  // `extra` + unknown attributes, kept verbatim (null when none)
  int line = 0;          // 1-based line in the source file (0 if generated)

  bool is_worker() const { return kind == NodeKind::kWorker; }
  bool is_aggregator() const { return kind == NodeKind::kAggregator; }
  bool is_coordinator() const { return kind == NodeKind::kCoordinator; }

  // Field-wise equality, ignoring `line`.
  bool operator==(const Node& o) const;
  bool operator!=(const Node& o) const { return !(*this == o); }
};

class Topology {
 public:
  // Reads and validates a file: .json is JSON, .yaml/.yml is YAML; any other
  // extension is JSON when the first non-blank character is '{', else YAML.
  // Errors: NotFound when the file cannot be read, InvalidArgument listing every
  // problem, one per line, each "path:line: node 'x': message".
  [[nodiscard]] static StatusOr<Topology> load(const std::string& path);
  [[nodiscard]] static StatusOr<Topology> parse_yaml(const std::string& text,
                                                     const std::string& source_name);
  [[nodiscard]] static StatusOr<Topology> parse_json(const std::string& text,
                                                     const std::string& source_name);
  // Validates nodes built in code (their `parent` fields are ignored and
  // recomputed from `children`). Errors as for load(), with `source_name`.
  [[nodiscard]] static StatusOr<Topology> from_nodes(std::vector<Node> nodes,
                                                     const std::string& source_name = "<nodes>");

  // YAML that load() reads back to an equal Topology (nodes in nodes() order).
  std::string to_yaml() const;
  Status save_yaml(const std::string& path) const;

  const Node& root() const { return nodes_.front(); }
  // Broken invariant (CheckError) when `id` is not in the topology; see find().
  const Node& node(const std::string& id) const;
  const Node* find(const std::string& id) const;  // nullptr when absent; O(1)
  bool contains(const std::string& id) const { return index_.count(id) != 0; }
  size_t size() const { return nodes_.size(); }
  // Stable order: breadth-first from the root, each node's children in file order.
  // So the root is first, tiers are contiguous, and workers of one parent are adjacent.
  const std::vector<Node>& nodes() const { return nodes_; }
  // Position of `id` in nodes() (CheckError when absent).
  size_t index_of(const std::string& id) const;

  // Ids in nodes() order.
  std::vector<std::string> workers() const;
  std::vector<std::string> aggregators() const;

  const std::optional<std::string>& parent(const std::string& id) const;
  const std::vector<std::string>& children(const std::string& id) const;
  // Parent first, root last; empty for the root.
  std::vector<std::string> ancestors(const std::string& id) const;
  // `id` and all its descendants, breadth-first (nodes() order).
  std::vector<std::string> subtree(const std::string& id) const;
  // The workers in subtree(id), in nodes() order ([id] for a worker).
  std::vector<std::string> leaves_under(const std::string& id) const;
  // Depth: root = 0, its children 1, ...
  size_t tier(const std::string& id) const;
  // nodes_per_tier()[t] = number of nodes at depth t; size() == height() + 1.
  std::vector<size_t> nodes_per_tier() const;
  // Depth of the deepest node (1 for coordinator + workers).
  size_t height() const { return tier_count_ - 1; }

  // The subtree induced by `selected_workers`: those workers plus every node on
  // their paths to the root (the aggregators that take part in a round). Children
  // lists keep only selected nodes, in their original order. Every id must name a
  // worker and the list must not be empty (CheckError otherwise: the engine picks
  // them from workers()). Duplicates are ignored.
  Topology induced(const std::vector<std::string>& selected_workers) const;

  // Warnings from loading (e.g. an unknown attribute that looks like a typo of a
  // known one: "file:line: node 'x': unknown attribute 'childern' kept in extra (did
  // you mean 'children'?)"). Not part of equality.
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The source name given at load (the path) or "<generated>".
  const std::string& source() const { return source_; }

  // Same nodes in the same order, field-wise (lines, source, warnings ignored).
  bool operator==(const Topology& o) const { return nodes_ == o.nodes_; }
  bool operator!=(const Topology& o) const { return !(*this == o); }

 private:
  Topology() = default;
  friend class Builder;

  std::vector<Node> nodes_;  // BFS order; nodes_[0] is the root
  std::unordered_map<std::string, size_t> index_;
  std::vector<uint32_t> tier_;  // parallel to nodes_
  size_t tier_count_ = 0;
  std::vector<std::string> warnings_;
  std::string source_;
};

// Seeded, reproducible generators. Id scheme (readable, sorts by tier):
//   "coordinator"            the root;
//   "agg-<t>-<i>"            the i-th aggregator (1-based, left to right) of tier t
//                            (t = 1 for the root's children);
//   "worker-<i>"             the i-th worker (1-based, left to right).
// Numbering follows nodes() order, so the children of one parent carry consecutive
// numbers. Generated nodes have line 0 and default attributes.
namespace generate {

// Coordinator + n workers (n >= 1).
Topology flat(size_t n);
// Every internal node has `branching` children; workers at depth `height`
// (branching >= 1, height >= 1); branching^height workers.
Topology balanced(size_t branching, size_t height);
// balanced(b, height) with b = round(leaves^(1/height)) (ties to even, at least 1),
// like the reference's balanced_tree_with_fixed_leaves: the leaf count is only
// exactly `leaves` when it is a perfect power.
Topology by_leaves(size_t leaves, size_t height);
// aggregators_per_tier[k] aggregators at depth k+1, then `workers` workers. Every
// parent gets at least one child, so the counts must not decrease and workers >=
// the last count; the rest of each tier is spread over the tier above at random
// (seeded, identical on every platform). Empty list: flat(workers).
StatusOr<Topology> tiers(const std::vector<size_t>& aggregators_per_tier, size_t workers,
                         uint64_t seed);

}  // namespace generate

}  // namespace flight::topology
