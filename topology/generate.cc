// Generators. Nodes are produced directly in breadth-first order with the id
// scheme documented in topology.h, then go through the same validation as a
// loaded file (a generator bug becomes a CheckError, never a bad Topology).
#include <cmath>
#include <string>

#include "flight/base/check.h"
#include "topology/topology.h"

namespace flight::topology::generate {
namespace {

// Generated topologies larger than this are a caller bug (or an overflow).
constexpr size_t kMaxGeneratedNodes = size_t{50} * 1000 * 1000;

// SplitMix64: tiny, well mixed, and the same on every platform and standard
// library (std:: distributions are not), so seeds reproduce everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (multiply-shift; bias is below 2^-32 for any n used here).
  size_t below(size_t n) {
    return static_cast<size_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

Node make_node(std::string id, NodeKind kind) {
  Node n;
  n.id = std::move(id);
  n.kind = kind;
  return n;
}

std::string agg_id(size_t tier, size_t i) {
  return "agg-" + std::to_string(tier) + "-" + std::to_string(i);
}
std::string worker_id(size_t i) { return "worker-" + std::to_string(i); }

// Builds the tree tier by tier: child_counts[t][p] children for the p-th node of
// tier t. The last tier holds the workers.
Topology build(const std::vector<std::vector<size_t>>& child_counts) {
  std::vector<Node> nodes;
  nodes.push_back(make_node("coordinator", NodeKind::kCoordinator));
  size_t tier_begin = 0;  // index in `nodes` of the current tier's first node
  const size_t tiers = child_counts.size();
  for (size_t t = 0; t < tiers; ++t) {
    const bool leaves = t + 1 == tiers;
    const size_t tier_end = nodes.size();
    FLIGHT_CHECK(child_counts[t].size() == tier_end - tier_begin, "tier size mismatch");
    size_t numbered = 0;
    for (size_t p = tier_begin; p < tier_end; ++p) {
      for (size_t c = 0; c < child_counts[t][p - tier_begin]; ++c) {
        ++numbered;
        std::string id = leaves ? worker_id(numbered) : agg_id(t + 1, numbered);
        nodes[p].children.push_back(id);
        nodes.push_back(
            make_node(std::move(id), leaves ? NodeKind::kWorker : NodeKind::kAggregator));
      }
    }
    tier_begin = tier_end;
  }
  auto t = Topology::from_nodes(std::move(nodes), "<generated>");
  FLIGHT_CHECK(t.is_ok(), "generator produced an invalid topology: " + t.status().message());
  return std::move(t).value();
}

}  // namespace

Topology flat(size_t n) {
  FLIGHT_CHECK(n >= 1, "flat() needs at least one worker");
  FLIGHT_CHECK(n < kMaxGeneratedNodes, "flat(): too many workers");
  return build({{n}});
}

Topology balanced(size_t branching, size_t height) {
  FLIGHT_CHECK(branching >= 1 && height >= 1, "balanced() needs branching >= 1 and height >= 1");
  std::vector<std::vector<size_t>> counts;
  size_t width = 1, total = 1;
  for (size_t t = 0; t < height; ++t) {
    counts.emplace_back(width, branching);
    FLIGHT_CHECK(width <= kMaxGeneratedNodes / branching, "balanced(): tree too large");
    width *= branching;
    total += width;
    FLIGHT_CHECK(total <= kMaxGeneratedNodes, "balanced(): tree too large");
  }
  return build(counts);
}

Topology by_leaves(size_t leaves, size_t height) {
  FLIGHT_CHECK(leaves >= 1 && height >= 1, "by_leaves() needs leaves >= 1 and height >= 1");
  // Python's round() (ties to even), as the reference; nearbyint uses the current
  // rounding mode, which is round-to-nearest-even by default.
  double b =
      std::nearbyint(std::pow(static_cast<double>(leaves), 1.0 / static_cast<double>(height)));
  size_t branching = b < 1 ? 1 : static_cast<size_t>(b);
  return balanced(branching, height);
}

StatusOr<Topology> tiers(const std::vector<size_t>& aggregators_per_tier, size_t workers,
                         uint64_t seed) {
  if (workers == 0) return invalid_argument("tiers(): need at least one worker");
  std::vector<size_t> widths{1};
  for (size_t t = 0; t < aggregators_per_tier.size(); ++t) {
    size_t a = aggregators_per_tier[t];
    if (a == 0) {
      return invalid_argument("tiers(): tier " + std::to_string(t + 1) + " has no aggregators");
    }
    if (a < widths.back()) {
      return invalid_argument("tiers(): tier " + std::to_string(t + 1) + " has " +
                              std::to_string(a) + " aggregators, fewer than the " +
                              std::to_string(widths.back()) +
                              " nodes above it (every parent needs a child)");
    }
    widths.push_back(a);
  }
  if (workers < widths.back()) {
    return invalid_argument("tiers(): " + std::to_string(workers) + " workers for " +
                            std::to_string(widths.back()) +
                            " aggregators in the last tier (every aggregator needs a child)");
  }
  widths.push_back(workers);
  size_t total = 0;
  for (size_t w : widths) total += w;
  if (total > kMaxGeneratedNodes) return invalid_argument("tiers(): topology too large");

  SplitMix64 rng(seed);
  std::vector<std::vector<size_t>> counts;
  for (size_t t = 0; t + 1 < widths.size(); ++t) {
    // One child each, then the rest uniformly at random.
    std::vector<size_t> c(widths[t], 1);
    for (size_t extra = widths[t + 1] - widths[t]; extra > 0; --extra) ++c[rng.below(widths[t])];
    counts.push_back(std::move(c));
  }
  return build(counts);
}

}  // namespace flight::topology::generate
