// Placement policies and the deploy: section's options.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "flight/base/process.h"
#include "flight/deploy/deploy_options.h"
#include "flight/deploy/launcher.h"
#include "flight/deploy/placement.h"
#include "flight/engine/config.h"
#include "topology/topology.h"

namespace flight::deploy {
namespace {

using topology::Topology;

Topology three_tier(size_t sites, size_t workers) {
  auto t = topology::generate::tiers({sites}, workers, 0);
  EXPECT_TRUE(t.is_ok()) << t.status();
  return *t;
}

TEST(Placement, SubtreeKeepsEachAggregatorWithAllItsWorkers) {
  const Topology t = three_tier(4, 32);
  for (size_t hosts : {1u, 2u, 3u, 4u}) {
    auto p = place(t, "subtree", hosts);
    ASSERT_TRUE(p.is_ok()) << p.status();
    std::set<std::string> used;
    for (const auto& agg : t.aggregators()) {
      const std::string h = p->endpoint_of(agg);
      used.insert(h);
      for (const auto& n : t.subtree(agg)) EXPECT_EQ(p->endpoint_of(n), h) << n;
    }
    EXPECT_EQ(used.size(), hosts);
    EXPECT_EQ(p->endpoint_names().size(), hosts);
  }
  // More hosts than subtrees: the extra hosts have nothing and are not started.
  auto p = place(t, "subtree", 6);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->endpoint_names().size(), 4u);
}

TEST(Placement, SubtreeSplitsRegionsOfSitesWhenHostsOutnumberThem) {
  // coordinator -> 2 regions -> 2 sites each -> 8 workers each, on 4 hosts:
  // one site per host, each region with its first site.
  auto t = topology::generate::tiers({2, 4}, 32, 0);
  ASSERT_TRUE(t.is_ok()) << t.status();
  auto p = place(*t, "subtree", 4);
  ASSERT_TRUE(p.is_ok()) << p.status();
  std::set<std::string> site_hosts;
  for (const auto& agg : t->aggregators()) {
    const auto& kids = t->children(agg);
    if (t->node(kids.front()).is_aggregator()) {
      EXPECT_EQ(p->endpoint_of(agg), p->endpoint_of(kids.front())) << agg;
      continue;
    }
    site_hosts.insert(p->endpoint_of(agg));
    for (const auto& n : t->subtree(agg)) EXPECT_EQ(p->endpoint_of(n), p->endpoint_of(agg)) << n;
  }
  EXPECT_EQ(site_hosts.size(), 4u);
  EXPECT_EQ(p->endpoint_names().size(), 4u);
  // Two hosts: regions stay whole.
  auto two = place(*t, "subtree", 2);
  ASSERT_TRUE(two.is_ok());
  for (const auto& region : t->children(t->root().id)) {
    for (const auto& n : t->subtree(region)) {
      EXPECT_EQ(two->endpoint_of(n), two->endpoint_of(region)) << n;
    }
  }
}

TEST(Placement, SubtreeBalancesWorkersOnFlatTopologies) {
  auto t = topology::generate::flat(10);
  auto p = place(t, "subtree", 3);
  ASSERT_TRUE(p.is_ok());
  std::map<std::string, int> count;
  for (const auto& w : t.workers()) ++count[p->endpoint_of(w)];
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [h, n] : count) {
    EXPECT_GE(n, 3) << h;
    EXPECT_LE(n, 4) << h;
  }
}

TEST(Placement, RoundRobinDealsNodesInBreadthFirstOrder) {
  const Topology t = three_tier(2, 4);
  auto p = place(t, "round_robin", 2);
  ASSERT_TRUE(p.is_ok());
  std::vector<std::string> order;
  for (const auto& n : t.nodes()) {
    if (!n.is_coordinator()) order.push_back(n.id);
  }
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(p->endpoint_of(order[i]), host_name(i % 2));
}

TEST(Placement, ExplicitEndpointWins) {
  auto t = Topology::parse_yaml(R"(
root: {kind: coordinator, children: [a, b]}
a: {kind: aggregator, children: [w1, w2], endpoint: edge-a}
b: {kind: aggregator, children: [w3, w4]}
w1: {kind: worker}
w2: {kind: worker, endpoint: phone}
w3: {kind: worker}
w4: {kind: worker}
)",
                                "test.yaml");
  ASSERT_TRUE(t.is_ok()) << t.status();
  auto p = place(*t, "subtree", 2);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->endpoint_of("a"), "edge-a");
  EXPECT_EQ(p->endpoint_of("w2"), "phone");
  EXPECT_EQ(p->endpoint_of("w1"), "host-0");
  EXPECT_EQ(p->endpoint_of("w3"), "host-1");
  EXPECT_EQ(p->assigned.count("a"), 0u);
  EXPECT_EQ(p->endpoint_names(), (std::vector<std::string>{"host-0", "host-1", "edge-a", "phone"}));
  EXPECT_NE(p->describe(*t).find("phone\t1 workers [w2]"), std::string::npos) << p->describe(*t);
}

TEST(Placement, UnknownPolicyIsAnErrorWithASuggestion) {
  auto p = place(three_tier(2, 4), "subtre", 2);
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("did you mean 'subtree'"), std::string::npos) << p.status();
}

TEST(DeployOptions, ParsesEveryFieldAndRejectsUnknownKeys) {
  auto o = DeployOptions::from_json(nlohmann::json::parse(R"({
    "launcher": "slurm", "hosts": 4, "placement": "round_robin", "threads": 3,
    "address": "10.0.0.5", "register_timeout_s": 30,
    "slurm": {"nodes": 2, "tasks_per_node": 2, "partition": "debug", "time": "00:10:00",
              "extra": ["--account=ml"]}})"));
  ASSERT_TRUE(o.is_ok()) << o.status();
  EXPECT_EQ(o->launcher, "slurm");
  EXPECT_EQ(o->hosts, 4);
  EXPECT_EQ(o->slurm.partition, "debug");
  EXPECT_EQ(o->slurm.extra, std::vector<std::string>{"--account=ml"});
  auto back = DeployOptions::from_json(o->to_json());
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->to_json(), o->to_json());

  auto typo = DeployOptions::from_json(nlohmann::json::parse(R"({"slurm": {"partiton": "x"}})"));
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("deploy.slurm"), std::string::npos) << typo.status();
  EXPECT_NE(typo.status().message().find("partiton"), std::string::npos) << typo.status();
  EXPECT_NE(typo.status().message().find("'partition'"), std::string::npos) << typo.status();
  auto launcher = DeployOptions::from_json(nlohmann::json::parse(R"({"launcher": "srun"})"));
  ASSERT_FALSE(launcher.is_ok());
  EXPECT_NE(launcher.status().message().find("known: embedded, mpi, processes, slurm"),
            std::string::npos)
      << launcher.status();
  EXPECT_FALSE(DeployOptions::from_json(nlohmann::json::parse(R"({"hosts": 0})")).is_ok());
  EXPECT_FALSE(DeployOptions::from_json(nlohmann::json::parse(R"({"hosts": "two"})")).is_ok());
}

// A config file whose deploy: section holds `deploy_lines` (from line 5 on);
// the error resolve_options gives for it.
std::string deploy_error(const std::string& deploy_lines) {
  TempDir dir("deploy-options");
  const std::string path = dir.file("job.yaml");
  std::ofstream(path) << "name: job\n"
                         "topology: {generate: tiers, aggregators: [2], workers: 4}\n"
                         "model: {name: mlp}\n"
                         "deploy:\n"
                      << deploy_lines;
  auto config = engine::ExperimentConfig::load(path);
  EXPECT_TRUE(config.is_ok()) << config.status();
  if (!config.is_ok()) return "";
  auto o = resolve_options(*config, {});
  EXPECT_FALSE(o.is_ok());
  return o.is_ok() ? "" : o.status().message();
}

TEST(DeployOptions, PlacementErrorNamesFileAndLineOfTheField) {
  const std::string m = deploy_error(
      "  launcher: processes\n"
      "  hosts: 2\n"
      "  placement: subtre\n");
  EXPECT_NE(m.find("job.yaml:7: deploy.placement: unknown placement 'subtre'"), std::string::npos)
      << m;
  EXPECT_NE(m.find("did you mean 'subtree'"), std::string::npos) << m;
}

TEST(DeployOptions, EmulatedLinkAndSlurmErrorsNameFileAndLineOfTheField) {
  const std::string link = deploy_error(
      "  hosts: 2\n"
      "  emulate:\n"
      "    links:\n"
      "      coordinator: 100\n"
      "      host: 0\n");
  EXPECT_NE(link.find("job.yaml:9: deploy.emulate.links.host: must be > 0 Mbit/s"),
            std::string::npos)
      << link;
  const std::string slurm = deploy_error(
      "  launcher: slurm\n"
      "  slurm:\n"
      "    time: \"00:10:00\"\n"
      "    partiton: debug\n");
  EXPECT_NE(slurm.find("job.yaml:8: deploy.slurm"), std::string::npos) << slurm;
  EXPECT_NE(slurm.find("partiton"), std::string::npos) << slurm;
  const std::string hosts = deploy_error("  hosts: 0\n");
  EXPECT_NE(hosts.find("job.yaml:5: deploy.hosts: must be in [1, 100000], got 0"),
            std::string::npos)
      << hosts;
}

}  // namespace
}  // namespace flight::deploy
