#include "flight/engine/node_table.h"

#include <algorithm>
#include <numeric>

#include "flight/base/check.h"

namespace flight::engine {

NodeTable::NodeTable(const topology::Topology& topology, const std::vector<std::string>& workers)
    : topology_(topology) {
  const auto& nodes = topology.nodes();
  FLIGHT_CHECK(nodes.size() < kNone, "topology too large for 32-bit node indices");
  const size_t n = nodes.size();
  parent_.assign(n, kNone);
  worker_index_.assign(n, -1);
  tier_.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (nodes[i].parent) {
      parent_[i] = index_of(*nodes[i].parent);
      // BFS order: a parent comes before its children, so its tier is known.
      tier_[i] = tier_[parent_[i]] + 1;
    }
  }
  workers_.reserve(workers.size());
  for (size_t k = 0; k < workers.size(); ++k) {
    const Index i = index_of(workers[k]);
    FLIGHT_CHECK(nodes[i].is_worker(), "node '" + workers[k] + "' is not a worker");
    worker_index_[i] = static_cast<int64_t>(k);
    workers_.push_back(i);
  }
  std::vector<Index> by_id(n);
  std::iota(by_id.begin(), by_id.end(), Index{0});
  std::sort(by_id.begin(), by_id.end(),
            [&](Index a, Index b) { return nodes[a].id < nodes[b].id; });
  rank_.assign(n, 0);
  for (size_t r = 0; r < n; ++r) rank_[by_id[r]] = static_cast<Index>(r);
}

}  // namespace flight::engine
