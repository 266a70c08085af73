// NodeTable: the dense-index view of a topology the sync driver's per-task
// bookkeeping uses must say exactly what the topology's string-keyed queries
// say — parents, tiers, worker partitions — and rank() must order nodes as
// their ids sort, since canonical fold order (and so bit-reproducible
// aggregates) is sorted ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "flight/engine/node_table.h"
#include "topology/topology.h"

namespace flight::engine {
namespace {

void expect_matches(const topology::Topology& t) {
  const std::vector<std::string> workers = t.workers();
  const NodeTable table(t, workers);
  ASSERT_EQ(table.size(), t.nodes().size());
  EXPECT_EQ(table.id(NodeTable::root()), t.root().id);
  EXPECT_EQ(table.parent(NodeTable::root()), NodeTable::kNone);
  for (NodeTable::Index i = 0; i < table.size(); ++i) {
    const topology::Node& n = t.nodes()[i];
    EXPECT_EQ(table.id(i), n.id);
    EXPECT_EQ(table.index_of(n.id), i);
    EXPECT_EQ(table.tier(i), static_cast<int64_t>(t.tier(n.id))) << n.id;
    EXPECT_EQ(table.is_worker(i), n.is_worker()) << n.id;
    if (n.parent) {
      ASSERT_NE(table.parent(i), NodeTable::kNone) << n.id;
      EXPECT_EQ(table.id(table.parent(i)), *n.parent);
    }
  }
  for (size_t k = 0; k < workers.size(); ++k) {
    const NodeTable::Index i = table.worker(k);
    EXPECT_EQ(table.id(i), workers[k]);
    EXPECT_EQ(table.worker_index(i), static_cast<int64_t>(k));
  }
  // Sorting by rank is sorting by id.
  std::vector<NodeTable::Index> by_rank(table.size());
  for (NodeTable::Index i = 0; i < table.size(); ++i) by_rank[i] = i;
  std::sort(by_rank.begin(), by_rank.end(),
            [&](auto a, auto b) { return table.rank(a) < table.rank(b); });
  for (size_t r = 1; r < by_rank.size(); ++r) {
    EXPECT_LT(table.id(by_rank[r - 1]), table.id(by_rank[r]));
  }
}

TEST(NodeTable, FlatTopologyMatchesTheTopologysQueries) {
  expect_matches(topology::generate::flat(120));
}

TEST(NodeTable, ThreeTierTopologyMatchesTheTopologysQueries) {
  // Ids like w10 < w2 as strings: rank must follow the string order, not
  // the BFS order or the numbers.
  auto t = topology::generate::tiers({3, 11}, 250, 7);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  expect_matches(*t);
}

TEST(NodeTable, WorkerIndicesFollowTheGivenWorkerList) {
  const topology::Topology t = topology::generate::flat(5);
  std::vector<std::string> workers = t.workers();
  std::reverse(workers.begin(), workers.end());
  const NodeTable table(t, workers);
  for (size_t k = 0; k < workers.size(); ++k) {
    EXPECT_EQ(table.worker_index(table.index_of(workers[k])), static_cast<int64_t>(k));
  }
  EXPECT_EQ(table.worker_index(NodeTable::root()), -1);
}

}  // namespace
}  // namespace flight::engine
