// NodeTable: a run's topology as dense indices, for the sync driver's
// per-task bookkeeping — a round keeps its per-node state in vectors indexed
// by node (positions, attempts, pending children), not in maps keyed by id
// strings, so a task costs no hashing, string copies or map nodes.
//
// Index i is the topology's node i (Topology::nodes(): BFS order, 0 is the
// root). rank(i) is the position of node i's id among all ids sorted, so
// sorting by rank is sorting by id: the canonical (fold) order of a node's
// children, and the order per-worker sums are taken in, stay exactly the
// string order they always were.
//
// Thread safety: immutable after construction; read concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "topology/topology.h"

namespace flight::engine {

class NodeTable {
 public:
  using Index = uint32_t;
  static constexpr Index kNone = std::numeric_limits<Index>::max();

  // `workers`: the run's workers in partition order (RunContext::workers);
  // each must be a worker of `topology`. The topology must outlive the table.
  NodeTable(const topology::Topology& topology, const std::vector<std::string>& workers);

  size_t size() const { return parent_.size(); }
  static constexpr Index root() { return 0; }
  const std::string& id(Index i) const { return topology_.nodes()[i].id; }
  // FLIGHT_CHECK that `id` is a node.
  Index index_of(const std::string& id) const { return static_cast<Index>(topology_.index_of(id)); }
  Index parent(Index i) const { return parent_[i]; }  // kNone for the root
  bool is_worker(Index i) const { return worker_index_[i] >= 0; }
  // The worker's position in the run's worker list (its partition); -1 for
  // the coordinator and aggregators.
  int64_t worker_index(Index i) const { return worker_index_[i]; }
  int64_t tier(Index i) const { return tier_[i]; }  // depth; the root is 0
  Index rank(Index i) const { return rank_[i]; }
  // The node of the run's k-th worker.
  Index worker(size_t k) const { return workers_[k]; }

 private:
  const topology::Topology& topology_;
  std::vector<Index> parent_;
  std::vector<int64_t> worker_index_;
  std::vector<int64_t> tier_;
  std::vector<Index> rank_;
  std::vector<Index> workers_;
};

}  // namespace flight::engine
