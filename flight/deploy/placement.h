// Placement: which host process runs each topology node. A run with N host
// processes names them "host-0" .. "host-(N-1)"; a policy maps every node that
// names no `endpoint:` of its own onto one of them (an explicit `endpoint:`
// always wins). The coordinator is never placed: it runs in the coordinator's
// process. The result is handed to the engine as RunOptions::placement.
//
// Policies (a registry, by name):
//   subtree      the coordinator's children are units: each one's whole subtree
//                goes to one host, so an aggregator folds its children's updates
//                from that host's memory and only the partial aggregate leaves
//                it. Units are dealt out in topology order in contiguous runs of
//                about equal worker count (with flat topologies: blocks of workers).
//                With fewer units than hosts, a unit whose children are all
//                aggregators (a region of sites) is split into them and goes with
//                its first child; an aggregator never leaves its workers' host.
//   round_robin  nodes in breadth-first order, node i on host i mod N.
//
// Thread safety: pure functions; the registry is thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flight/base/status.h"

namespace flight::topology {
class Topology;
}

namespace flight::deploy {

struct Placement {
  std::string policy;
  std::vector<std::string> hosts;                // "host-0", ... in order
  std::map<std::string, std::string> assigned;   // node -> host, placed by the policy
  std::map<std::string, std::string> explicit_;  // node -> its own `endpoint:`

  // The endpoint every non-coordinator node runs on (assigned or explicit).
  std::string endpoint_of(const std::string& node) const;
  // Endpoints a deployment must start: the hosts that run a node, then the
  // explicit names not among them.
  std::vector<std::string> endpoint_names() const;
  // Human-readable table: one line per endpoint with its workers and aggregators.
  std::string describe(const topology::Topology& topology) const;
};

// A placement policy: assigns each of `nodes` (non-coordinator nodes without an
// explicit endpoint, in breadth-first order) a host index in [0, hosts).
class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  virtual std::map<std::string, size_t> assign(const topology::Topology& topology,
                                               const std::vector<std::string>& nodes,
                                               size_t hosts) const = 0;
};

std::vector<std::string> placement_names();

// Places `topology` onto `hosts` host processes with the named policy.
StatusOr<Placement> place(const topology::Topology& topology, const std::string& policy,
                          size_t hosts);

// "host-<i>"
std::string host_name(size_t i);

}  // namespace flight::deploy
