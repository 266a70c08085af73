#include "flight/deploy/placement.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "flight/base/registry.h"
#include "topology/topology.h"

namespace flight::deploy {
namespace {

using topology::Topology;

class SubtreePolicy : public PlacementPolicy {
 public:
  std::map<std::string, size_t> assign(const Topology& t, const std::vector<std::string>& nodes,
                                       size_t hosts) const override {
    const std::set<std::string> free(nodes.begin(), nodes.end());
    // Fewer units than hosts (e.g. 2 regions of 2 sites on 4 hosts): split every
    // unit whose children are all aggregators into those children, so every host
    // gets a site; the split aggregator goes with its first child. An aggregator
    // is never separated from its workers.
    std::vector<std::string> units = t.children(t.root().id);
    std::map<std::string, std::string> follows;  // split aggregator -> its first child
    while (units.size() < hosts) {
      std::vector<std::string> next;
      for (const auto& u : units) {
        const auto& kids = t.children(u);
        const bool split = !kids.empty() && std::all_of(kids.begin(), kids.end(), [&](auto& k) {
          return t.node(k).is_aggregator();
        });
        if (!split) {
          next.push_back(u);
          continue;
        }
        follows[u] = kids.front();
        next.insert(next.end(), kids.begin(), kids.end());
      }
      if (next.size() == units.size()) break;
      units = std::move(next);
    }
    std::vector<size_t> weight;
    size_t total = 0;
    for (const auto& u : units) {
      weight.push_back(std::max<size_t>(1, t.leaves_under(u).size()));
      total += weight.back();
    }
    // Contiguous runs: unit k goes to the host whose share of the cumulative
    // worker count its midpoint falls in, so hosts get about total/hosts workers
    // and neighbouring units (usually neighbouring data) share a host.
    std::map<std::string, size_t> out;
    size_t before = 0;
    for (size_t k = 0; k < units.size(); ++k) {
      const double mid = static_cast<double>(before) + weight[k] / 2.0;
      const size_t host = std::min(hosts - 1, static_cast<size_t>(mid * hosts / total));
      before += weight[k];
      for (const auto& n : t.subtree(units[k])) {
        if (free.count(n)) out[n] = host;
      }
    }
    for (const auto& [agg, first] : follows) {
      std::string unit = first;
      while (follows.count(unit)) unit = follows.at(unit);
      if (!free.count(agg)) continue;
      if (out.count(unit)) {
        out[agg] = out.at(unit);
        continue;
      }
      for (const auto& n : t.subtree(agg)) {  // its first child has an endpoint of its own
        if (out.count(n)) {
          out[agg] = out.at(n);
          break;
        }
      }
    }
    return out;
  }
};

class RoundRobinPolicy : public PlacementPolicy {
 public:
  std::map<std::string, size_t> assign(const Topology&, const std::vector<std::string>& nodes,
                                       size_t hosts) const override {
    std::map<std::string, size_t> out;
    for (size_t i = 0; i < nodes.size(); ++i) out[nodes[i]] = i % hosts;
    return out;
  }
};

using PolicyRegistry = Registry<PlacementPolicy>;

PolicyRegistry& policies() {
  static PolicyRegistry* r = [] {
    auto* reg = new PolicyRegistry("placement");
    reg->add("subtree", [] {
      return StatusOr<std::unique_ptr<PlacementPolicy>>(std::make_unique<SubtreePolicy>());
    });
    reg->add("round_robin", [] {
      return StatusOr<std::unique_ptr<PlacementPolicy>>(std::make_unique<RoundRobinPolicy>());
    });
    return reg;
  }();
  return *r;
}

}  // namespace

std::string host_name(size_t i) { return "host-" + std::to_string(i); }

std::vector<std::string> placement_names() { return policies().names(); }

std::string Placement::endpoint_of(const std::string& node) const {
  auto e = explicit_.find(node);
  if (e != explicit_.end()) return e->second;
  auto a = assigned.find(node);
  return a != assigned.end() ? a->second : node;
}

std::vector<std::string> Placement::endpoint_names() const {
  std::set<std::string> used;
  for (const auto& kv : assigned) used.insert(kv.second);
  std::vector<std::string> out;
  for (const auto& h : hosts) {
    if (used.count(h)) out.push_back(h);  // a host with nothing to run is not started
  }
  std::set<std::string> seen(out.begin(), out.end());
  std::set<std::string> extra;
  for (const auto& [node, ep] : explicit_) {
    if (!seen.count(ep)) extra.insert(ep);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::string Placement::describe(const Topology& t) const {
  std::map<std::string, std::vector<std::string>> workers, aggregators;
  for (const auto& n : t.nodes()) {
    if (n.is_coordinator()) continue;
    (n.is_worker() ? workers : aggregators)[endpoint_of(n.id)].push_back(n.id);
  }
  auto brief = [](const std::vector<std::string>& ids) {
    if (ids.empty()) return std::string("-");
    if (ids.size() <= 4) {
      std::string s;
      for (const auto& id : ids) s += (s.empty() ? "" : ",") + id;
      return s;
    }
    return ids.front() + ".." + ids.back();
  };
  std::ostringstream os;
  os << "# placement: " << policy << " on " << hosts.size() << " hosts; coordinator " << t.root().id
     << " in the coordinator process\n";
  for (const auto& ep : endpoint_names()) {
    const auto& w = workers[ep];
    const auto& a = aggregators[ep];
    os << ep << "\t" << w.size() << " workers [" << brief(w) << "]\t" << a.size()
       << " aggregators [" << brief(a) << "]\n";
  }
  return os.str();
}

StatusOr<Placement> place(const Topology& t, const std::string& policy, size_t hosts) {
  if (hosts == 0) return invalid_argument("placement needs at least one host");
  FLIGHT_ASSIGN_OR_RETURN(auto p, policies().create(policy));
  Placement out;
  out.policy = policy;
  for (size_t i = 0; i < hosts; ++i) out.hosts.push_back(host_name(i));
  std::vector<std::string> free;
  for (const auto& n : t.nodes()) {
    if (n.is_coordinator()) continue;
    if (n.endpoint) {
      out.explicit_[n.id] = *n.endpoint;
    } else {
      free.push_back(n.id);
    }
  }
  for (const auto& [node, host] : p->assign(t, free, hosts)) out.assigned[node] = out.hosts[host];
  return out;
}

}  // namespace flight::deploy
