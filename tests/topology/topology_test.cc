// topology/: the reference formats, our attributes, round trips, every
// validation rule with its message and line, queries, induced subtrees and
// generators. The malformed-file corpus and the CLI are in malformed_test.cc.
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "flight/base/check.h"
#include "tests/support/process.h"
#include "topology/raw_document.h"
#include "topology/topology.h"

namespace flight::topology {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string data_path(const std::string& name) {
  return std::string(FLIGHT_SOURCE_DIR) + "/tests/data/topology/" + name;
}

Topology load_ok(const std::string& path) {
  auto t = Topology::load(path);
  EXPECT_TRUE(t.is_ok()) << t.status();
  if (!t.is_ok()) throw std::runtime_error(t.status().message());
  return std::move(t).value();
}

// The full error text of YAML that must not load.
std::string yaml_error(const std::string& text) {
  auto t = Topology::parse_yaml(text, "t.yaml");
  EXPECT_FALSE(t.is_ok()) << "loaded:\n" << text;
  return t.is_ok() ? "" : t.status().message();
}

// ---------------------------------------------------------------- formats

TEST(TopologyFormats, Reference2024LeaderAndGlobusEndpoints) {
  Topology t = load_ok(data_path("reference-2024.yaml"));
  EXPECT_EQ(t.size(), 5u);
  EXPECT_EQ(t.root().id, "0");
  EXPECT_EQ(t.root().kind, NodeKind::kCoordinator);  // kind: leader
  EXPECT_EQ(t.root().line, 3);
  EXPECT_EQ(t.root().endpoint, "5b0e7c1a-3f5d-4a8e-9d2b-7c61f0a4e912");
  EXPECT_FALSE(t.root().proxystore_endpoint.has_value());  // `~`
  EXPECT_THAT(t.children("0"), ElementsAre("1", "2"));
  EXPECT_EQ(t.node("1").kind, NodeKind::kAggregator);
  EXPECT_EQ(t.node("2").proxystore_endpoint, "3e8a1b5c-77d2-4f09-8c6e-5a1d9b2f0e37");
  EXPECT_EQ(t.node("4").kind, NodeKind::kWorker);  // `Worker`: case-insensitive
  EXPECT_THAT(t.workers(), ElementsAre("2", "3", "4"));
  EXPECT_EQ(t.node("4").line, 23);
}

TEST(TopologyFormats, Reference2025ExtraAndOptionalChildren) {
  Topology t = load_ok(data_path("reference-2025.yaml"));
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.height(), 1u);
  EXPECT_EQ(t.node("1").extra, nlohmann::json({{"device", "cpu"}}));
  EXPECT_EQ(t.node("2").extra, nlohmann::json({{"device", "cpu"}, {"cores", 4}}));
  EXPECT_EQ(t.node("3").extra["device"], "mps");
  EXPECT_FALSE(t.node("3").endpoint.has_value());  // globus_comp_id: ~
  EXPECT_TRUE(t.root().extra.is_null());
}

TEST(TopologyFormats, Reference2025GlobusCompAndProxystoreIds) {
  Topology t = load_ok(data_path("reference-2025-ids.yaml"));
  EXPECT_EQ(t.root().endpoint, "7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f");
  EXPECT_EQ(t.node("10").proxystore_endpoint, "9e8d7c6b-5a49-4837-a261-5f4e3d2c1b0a");
  EXPECT_EQ(t.node("12").extra, nlohmann::json({{"device", "cuda"}, {"gpu", 1}}));
  EXPECT_THAT(t.aggregators(), ElementsAre("10", "20"));
  EXPECT_THAT(t.leaves_under("10"), ElementsAre("11", "12"));
}

TEST(TopologyFormats, Reference2025Json) {
  Topology t = load_ok(data_path("reference-2025.json"));
  EXPECT_EQ(t.size(), 5u);
  // Integer children in JSON name the string keys.
  EXPECT_THAT(t.children("0"), ElementsAre("1", "2"));
  EXPECT_EQ(t.node("2").endpoint, "4d5e6f70-8192-4a3b-9c4d-5e6f708192a3");
  EXPECT_EQ(t.node("4").extra["memory_gb"], 16);
  EXPECT_EQ(t.node("3").line, 23);
  EXPECT_EQ(t.node("1").line, 9);
}

TEST(TopologyFormats, FlightAttributesAndUnknownAttributesKept) {
  Topology t = load_ok(data_path("flight-attributes.yaml"));
  EXPECT_EQ(t.root().endpoint, "hq");
  EXPECT_EQ(t.root().connector,
            nlohmann::json({{"kind", "redis"}, {"host", "127.0.0.1"}, {"port", 6379}}));
  EXPECT_EQ(t.node("edge-east").proxystore_endpoint, "ps-east");
  EXPECT_DOUBLE_EQ(t.node("pi-1").speed, 0.25);
  EXPECT_EQ(t.node("pi-1").data, nlohmann::json({{"partition", 0}}));
  EXPECT_EQ(t.node("pi-1").extra, nlohmann::json({{"site", "east"}}));  // unknown attribute
  EXPECT_EQ(t.node("pi-2").extra["site"], "lab");                       // `extra` wins
  const Node& j = t.node("jetson-1");
  EXPECT_EQ(j.endpoint, "jetson-1");  // ours wins over globus_compute_endpoint ...
  EXPECT_EQ(j.extra["globus_compute_endpoint"],
            "11111111-2222-4333-8444-555555555555");  // ... which is kept
  EXPECT_DOUBLE_EQ(j.speed, 2.0);
  EXPECT_EQ(j.data["classes"], nlohmann::json({0, 1, 2}));
  EXPECT_TRUE(t.warnings().empty());
}

TEST(TopologyFormats, TypoedAttributeIsKeptWithAWarning) {
  auto t = Topology::parse_yaml(
      "c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  sped: 2\n", "t.yaml");
  ASSERT_TRUE(t.is_ok()) << t.status();
  EXPECT_EQ(t->node("w").extra["sped"], 2);
  ASSERT_EQ(t->warnings().size(), 1u);
  EXPECT_EQ(t->warnings()[0],
            "t.yaml:6: node 'w': unknown attribute 'sped' kept in extra (did you mean 'speed'?)");
}

TEST(TopologyFormats, IdsIntegersAndStringsAreOneNamespace) {
  // Unquoted integers are canonical decimal strings; quoted ones stay as written.
  auto t = Topology::parse_yaml(
      "0:\n  kind: coordinator\n  children: [007, \"8\", nine]\n"
      "7: {kind: worker}\n'8': {kind: worker}\nnine: {kind: worker}\n",
      "t.yaml");
  ASSERT_TRUE(t.is_ok()) << t.status();
  EXPECT_THAT(t->children("0"), ElementsAre("7", "8", "nine"));
  auto q = Topology::parse_yaml(
      "0:\n  kind: coordinator\n  children: [1]\n\"01\": {kind: worker}\n", "q.yaml");
  ASSERT_FALSE(q.is_ok());
  EXPECT_THAT(q.status().message(), HasSubstr("q.yaml:3: node '0': child '1' does not exist"));
}

TEST(TopologyFormats, LoadPicksTheParserByExtensionOrContent) {
  testing::TempDir dir;
  std::string text =
      "{\"c\": {\"kind\": \"coordinator\", \"children\": [\"w\"]}, "
      "\"w\": {\"kind\": \"worker\"}}";
  std::ofstream(dir.file("t.txt")) << text;
  Topology t = load_ok(dir.file("t.txt"));
  EXPECT_EQ(t.size(), 2u);
  auto missing = Topology::load(dir.file("nope.yaml"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.yaml: cannot read"));
  auto is_dir = Topology::load(dir.path());
  ASSERT_FALSE(is_dir.is_ok());
  EXPECT_THAT(is_dir.status().message(), HasSubstr("is a directory"));
}

// ---------------------------------------------------------------- round trip

TEST(TopologyRoundTrip, EveryValidSampleSurvivesSaveAndLoad) {
  testing::TempDir dir;
  for (const char* name : {"reference-2024.yaml", "reference-2025.yaml", "reference-2025-ids.yaml",
                           "reference-2025.json", "flight-attributes.yaml"}) {
    Topology t = load_ok(data_path(name));
    std::string out = dir.file(std::string(name) + ".out.yaml");
    ASSERT_TRUE(t.save_yaml(out).is_ok());
    Topology back = load_ok(out);
    EXPECT_EQ(back, t) << name << "\n" << t.to_yaml();
    EXPECT_EQ(back.to_yaml(), t.to_yaml()) << name;
  }
}

TEST(TopologyRoundTrip, AwkwardStringsAndValues) {
  std::vector<Node> nodes(3);
  nodes[0].id = "the coordinator: \"main\" #1";
  nodes[0].kind = NodeKind::kCoordinator;
  nodes[0].children = {"007", "null"};
  nodes[0].endpoint = "ünïcode-endpoint";
  nodes[0].connector = {{"kind", "tcp"}, {"port", 0}, {"hosts", {"a", "b"}}, {"tls", false}};
  nodes[1].id = "007";  // must stay "007", not become "7"
  nodes[1].speed = 0.1;
  nodes[1].data = nlohmann::json::array({1.5e-300, -2, "3", nullptr});
  nodes[1].extra = {{"yes", "yes"}, {"empty", ""}, {"nested", {{"a", {{"b", 1}}}}}};
  nodes[2].id = "null";  // must stay a string id
  nodes[2].proxystore_endpoint = "~";
  auto t = Topology::from_nodes(nodes);
  ASSERT_TRUE(t.is_ok()) << t.status();
  auto back = Topology::parse_yaml(t->to_yaml(), "rt.yaml");
  ASSERT_TRUE(back.is_ok()) << back.status() << "\n" << t->to_yaml();
  EXPECT_EQ(*back, *t) << t->to_yaml();
  EXPECT_EQ(back->node("007").data[0].get<double>(), 1.5e-300);
  EXPECT_EQ(back->node("null").proxystore_endpoint, "~");
}

TEST(TopologyRoundTrip, GeneratedTopologies) {
  for (const Topology& t : {generate::flat(5), generate::balanced(3, 3),
                            generate::by_leaves(256, 4), generate::tiers({3, 7}, 40, 9).value()}) {
    auto back = Topology::parse_yaml(t.to_yaml(), "gen.yaml");
    ASSERT_TRUE(back.is_ok()) << back.status();
    EXPECT_EQ(*back, t);
  }
}

// The YAML fast path must read exactly what yaml-cpp reads, or decline.
TEST(TopologyRoundTrip, FastPathAgreesWithYamlCpp) {
  std::vector<std::string> texts;
  for (const char* name : {"reference-2024.yaml", "reference-2025.yaml", "reference-2025-ids.yaml",
                           "flight-attributes.yaml"}) {
    texts.push_back(testing::read_file(data_path(name)));
  }
  for (const char* name :
       {"2tier.yaml", "3tier.yaml", "3tier-small.yaml", "balanced-256-h8.yaml"}) {
    texts.push_back(
        testing::read_file(std::string(FLIGHT_SOURCE_DIR) + "/configs/topologies/" + name));
  }
  texts.push_back(generate::tiers({2, 5}, 30, 3).value().to_yaml());
  std::vector<Node> nodes(2);
  nodes[0].id = "c";
  nodes[0].kind = NodeKind::kCoordinator;
  nodes[0].children = {"w"};
  nodes[0].connector = {{"a", {1, 2.5, "x y", nullptr, true}}, {"k", "v:w"}};
  nodes[1].id = "w";
  nodes[1].extra = {{"s", "quote\"d"}};
  texts.push_back(Topology::from_nodes(nodes)->to_yaml());
  size_t fast_taken = 0;
  for (const auto& text : texts) {
    ASSERT_FALSE(text.empty());
    internal::RawValue fast;
    bool took = internal::parse_yaml_fast(text, &fast);
    auto slow = internal::parse_yaml_raw(text, "x", /*allow_fast_path=*/false);
    ASSERT_TRUE(slow.is_ok()) << slow.status();
    if (took) {
      ++fast_taken;
      EXPECT_EQ(internal::to_json(fast), internal::to_json(*slow)) << text;
      EXPECT_TRUE(fast == *slow) << "lines or scalar styles differ:\n" << text;
    }
  }
  EXPECT_GE(fast_taken, 6u);  // our own files are in its subset
}

// ---------------------------------------------------------------- validation rules

TEST(TopologyValidation, EachRuleNamesNodeAndLine) {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  const Case cases[] = {
      {"c:\n  kind: coordinator\n  children: [w, x]\nw:\n  kind: worker\n",
       "t.yaml:3: node 'c': child 'x' does not exist"},
      {"c:\n  kind: coordinator\n  children: [a, b]\na:\n  kind: aggregator\n  children: [w]\n"
       "b:\n  kind: aggregator\n  children: [w]\nw:\n  kind: worker\n",
       "t.yaml:9: node 'w': has two parents, 'a' (line 4) and 'b' (line 7); a topology is a tree"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\na:\n  kind: aggregator\n"
       "  children: [b]\nb:\n  kind: aggregator\n  children: [a]\n",
       "t.yaml:6: node 'a': cycle a -> b -> a (not reachable from the coordinator)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\nv:\n  kind: worker\n",
       "t.yaml:6: node 'v': has no parent and is not the coordinator"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  children: [v]\nv:\n"
       "  kind: worker\n",
       "t.yaml:6: node 'w': worker has children (workers must be leaves; make it an aggregator)"},
      {"c:\n  kind: coordinator\n  children: [a, w]\na:\n  kind: aggregator\nw:\n  kind: worker\n",
       "t.yaml:4: node 'a': aggregator has no children (it needs at least one)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\nd:\n  kind: leader\n"
       "  children: [v]\nv:\n  kind: worker\n",
       "t.yaml:6: node 'd': second coordinator (the first is 'c' on line 1); a topology has "
       "exactly "
       "one"},
      {"c:\n  kind: coordinator\n", "t.yaml:1: no worker (a topology needs at least one worker)"},
      {"a:\n  kind: aggregator\n  children: [w]\nw:\n  kind: worker\n",
       "t.yaml:1: no coordinator (exactly one node must have kind coordinator)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\nw:\n  kind: worker\n",
       "t.yaml:6: node 'w': duplicate id (first defined on line 4)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: boss\n",
       "t.yaml:5: node 'w': unknown kind 'boss' (expected leader, coordinator, aggregator or "
       "worker)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  speed: 2\n",
       "t.yaml:4: node 'w': missing 'kind' (expected coordinator, aggregator or worker)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  speed: 0\n",
       "t.yaml:6: node 'w': 'speed' must be a positive number, got '0'"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  speed: \"2\"\n",
       "t.yaml:6: node 'w': 'speed' must be a positive number, got '2'"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  speed: .inf\n",
       "t.yaml:6: node 'w': 'speed' must be a positive number, got '.inf'"},
      {"c:\n  kind: coordinator\n  children: w\nw:\n  kind: worker\n",
       "t.yaml:3: node 'c': 'children' must be a list of node ids, got a scalar"},
      {"c:\n  kind: coordinator\n  children: [w, {x: 1}]\nw:\n  kind: worker\n",
       "t.yaml:3: node 'c': child #2 must be a node id (integer or string), got a mapping"},
      {"c:\n  kind: coordinator\n  children: [w, w]\nw:\n  kind: worker\n",
       "t.yaml:3: node 'c': child 'w' listed twice"},
      {"c:\n  kind: coordinator\n  children: [c, w]\nw:\n  kind: worker\n",
       "t.yaml:3: node 'c': lists itself as a child"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  kind: worker\n",
       "t.yaml:6: node 'w': attribute 'kind' given twice (first on line 5)"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  extra: 3\n",
       "t.yaml:6: node 'w': 'extra' must be a mapping, got a scalar"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n  kind: worker\n  proxystore_id: [1]\n",
       "t.yaml:6: node 'w': 'proxystore_id' must be a string, got a list"},
      {"c:\n  kind: coordinator\n  children: [w]\nw: worker\n",
       "t.yaml:4: node 'w': attributes must be a mapping, got a scalar"},
      {"c:\n  kind: coordinator\n  children: [w]\nw:\n",
       "t.yaml:4: node 'w': has no attributes (expected a mapping with at least 'kind')"},
      {"a:\n  kind: aggregator\n  children: [c, w]\nc:\n  kind: coordinator\n  children: [a]\n"
       "w:\n  kind: worker\n",
       "t.yaml:4: node 'c': the coordinator has a parent, 'a' (the coordinator must be the root)"},
      {"\"\":\n  kind: worker\n", "t.yaml:1: node id is empty"},
      {"- 1\n- 2\n", "t.yaml:1: a topology is a mapping from node id to attributes, got a list"},
      {"", "t.yaml:1: empty topology (expected a mapping from node id to attributes)"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(yaml_error(c.yaml), HasSubstr(c.expected)) << c.yaml;
  }
}

TEST(TopologyValidation, JsonErrorsCarryLines) {
  auto t = Topology::parse_json(
      "{\n  \"c\": {\"kind\": \"coordinator\", \"children\": [\"w\", \"x\"]},\n"
      "  \"w\": {\"kind\": \"worker\",\n         \"speed\": -3}\n}\n",
      "t.json");
  ASSERT_FALSE(t.is_ok());
  EXPECT_THAT(t.status().message(), HasSubstr("t.json:2: node 'c': child 'x' does not exist"));
  EXPECT_THAT(t.status().message(),
              HasSubstr("t.json:4: node 'w': 'speed' must be a positive number, got '-3'"));
  auto bad =
      Topology::parse_json("{\n  \"c\": {\"kind\": \"coordinator\"},\n  \"w\" {}\n}", "b.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("b.json:3: JSON syntax error:"));
}

TEST(TopologyValidation, AllProblemsAreListedSortedByLine) {
  std::string msg = yaml_error(
      "c:\n  kind: coordinator\n  children: [a, w, ghost]\na:\n  kind: aggregator\n"
      "w:\n  kind: worker\n  speed: -1\nv:\n  kind: worker\n");
  std::vector<std::string> lines;
  std::istringstream in(msg);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  EXPECT_THAT(lines, ElementsAre("t.yaml:3: node 'c': child 'ghost' does not exist",
                                 "t.yaml:4: node 'a': aggregator has no children (it needs at "
                                 "least one)",
                                 "t.yaml:8: node 'w': 'speed' must be a positive number, got '-1'",
                                 "t.yaml:9: node 'v': has no parent and is not the coordinator "
                                 "(unreachable; only the coordinator may be a root)"));
}

TEST(TopologyValidation, FromNodesValidatesToo) {
  std::vector<Node> nodes(2);
  nodes[0].id = "c";
  nodes[0].kind = NodeKind::kCoordinator;
  nodes[0].children = {"w", "zz"};
  nodes[1].id = "w";
  nodes[1].speed = -1;
  auto t = Topology::from_nodes(nodes, "code");
  ASSERT_FALSE(t.is_ok());
  EXPECT_THAT(t.status().message(), HasSubstr("code:1: node 'c': child 'zz' does not exist"));
  EXPECT_THAT(t.status().message(), HasSubstr("node 'w': 'speed' must be a positive number"));
}

// ---------------------------------------------------------------- queries

TEST(TopologyQueries, TreeNavigation) {
  Topology t = load_ok(data_path("flight-attributes.yaml"));
  // BFS order: root, tier 1 in file order, then their children.
  std::vector<std::string> order;
  for (const auto& n : t.nodes()) order.push_back(n.id);
  EXPECT_THAT(order,
              ElementsAre("coordinator", "edge-east", "edge-west", "pi-1", "pi-2", "jetson-1"));
  EXPECT_EQ(t.parent("pi-2"), "edge-east");
  EXPECT_FALSE(t.parent("coordinator").has_value());
  EXPECT_THAT(t.ancestors("jetson-1"), ElementsAre("edge-west", "coordinator"));
  EXPECT_TRUE(t.ancestors("coordinator").empty());
  EXPECT_THAT(t.subtree("edge-east"), ElementsAre("edge-east", "pi-1", "pi-2"));
  EXPECT_THAT(t.leaves_under("coordinator"), ElementsAre("pi-1", "pi-2", "jetson-1"));
  EXPECT_THAT(t.leaves_under("pi-1"), ElementsAre("pi-1"));
  EXPECT_EQ(t.tier("coordinator"), 0u);
  EXPECT_EQ(t.tier("edge-west"), 1u);
  EXPECT_EQ(t.tier("jetson-1"), 2u);
  EXPECT_THAT(t.nodes_per_tier(), ElementsAre(1u, 2u, 3u));
  EXPECT_EQ(t.height(), 2u);
  EXPECT_EQ(t.index_of("pi-2"), 4u);
  EXPECT_TRUE(t.contains("pi-1"));
  EXPECT_FALSE(t.contains("pi-3"));
  EXPECT_EQ(t.find("pi-3"), nullptr);
  EXPECT_THROW(t.node("pi-3"), CheckError);
}

TEST(TopologyQueries, InducedSubtreeKeepsPathsToTheRoot) {
  auto t = generate::tiers({2, 4}, 12, 5).value();
  // Pick one worker under two different tier-2 aggregators.
  std::string w1 = t.leaves_under("agg-2-1").front();
  std::string w2 = t.leaves_under("agg-2-4").back();
  Topology s = t.induced({w2, w1, w1});
  std::set<std::string> expect = {w1, w2};
  for (const auto& a : t.ancestors(w1)) expect.insert(a);
  for (const auto& a : t.ancestors(w2)) expect.insert(a);
  std::set<std::string> got;
  for (const auto& n : s.nodes()) got.insert(n.id);
  EXPECT_EQ(got, expect);
  EXPECT_EQ(s.root().id, "coordinator");
  EXPECT_THAT(s.workers(), ElementsAre(w1, w2));  // nodes() order, not selection order
  EXPECT_THAT(s.children("agg-2-1"), ElementsAre(w1));
  EXPECT_EQ(s.tier(w2), 3u);
  EXPECT_EQ(s.height(), 3u);
  // The induced topology is itself valid: it survives a round trip.
  auto back = Topology::parse_yaml(s.to_yaml(), "s.yaml");
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_THROW(t.induced({"agg-1-1"}), CheckError);
  EXPECT_THROW(t.induced({}), CheckError);
  EXPECT_THROW(t.induced({"nobody"}), CheckError);
}

// ---------------------------------------------------------------- generators

TEST(TopologyGenerators, FlatAndBalancedShapes) {
  Topology f = generate::flat(4);
  EXPECT_THAT(f.nodes_per_tier(), ElementsAre(1u, 4u));
  EXPECT_THAT(f.workers(), ElementsAre("worker-1", "worker-2", "worker-3", "worker-4"));
  EXPECT_EQ(f.root().id, "coordinator");
  EXPECT_EQ(f.root().line, 0);

  Topology b = generate::balanced(3, 3);
  EXPECT_THAT(b.nodes_per_tier(), ElementsAre(1u, 3u, 9u, 27u));
  EXPECT_THAT(b.children("coordinator"), ElementsAre("agg-1-1", "agg-1-2", "agg-1-3"));
  EXPECT_THAT(b.children("agg-1-2"), ElementsAre("agg-2-4", "agg-2-5", "agg-2-6"));
  EXPECT_THAT(b.children("agg-2-9"), ElementsAre("worker-25", "worker-26", "worker-27"));
  for (const auto& n : b.nodes()) {
    if (!n.is_worker()) {
      EXPECT_EQ(n.children.size(), 3u) << n.id;
    }
  }
  Topology chain = generate::balanced(1, 4);
  EXPECT_THAT(chain.nodes_per_tier(), ElementsAre(1u, 1u, 1u, 1u, 1u));
  EXPECT_THROW(generate::flat(0), CheckError);
  EXPECT_THROW(generate::balanced(2, 0), CheckError);
}

TEST(TopologyGenerators, ByLeavesRoundsLikeTheReference) {
  EXPECT_EQ(generate::by_leaves(256, 1).workers().size(), 256u);
  EXPECT_EQ(generate::by_leaves(256, 2).children("coordinator").size(), 16u);
  EXPECT_EQ(generate::by_leaves(256, 4).workers().size(), 256u);
  EXPECT_EQ(generate::by_leaves(256, 8).workers().size(), 256u);
  EXPECT_EQ(generate::by_leaves(256, 8).height(), 8u);
  EXPECT_EQ(generate::by_leaves(1000, 3).workers().size(), 1000u);
  EXPECT_EQ(generate::by_leaves(100, 3).workers().size(), 125u);  // round(4.64) = 5
  EXPECT_EQ(generate::by_leaves(30, 2).workers().size(), 25u);    // round(5.48) = 5
  EXPECT_EQ(generate::by_leaves(6, 2).workers().size(), 4u);      // round(2.449) = 2
  EXPECT_EQ(generate::by_leaves(1, 3).workers().size(), 1u);
}

TEST(TopologyGenerators, TiersAreSeededAndEveryParentHasAChild) {
  auto a = generate::tiers({3, 10}, 50, 42);
  auto b = generate::tiers({3, 10}, 50, 42);
  auto c = generate::tiers({3, 10}, 50, 43);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_THAT(a->nodes_per_tier(), ElementsAre(1u, 3u, 10u, 50u));
  for (const auto& n : a->nodes()) {
    if (!n.is_worker()) {
      EXPECT_GE(n.children.size(), 1u) << n.id;
    }
    if (n.is_worker()) {
      EXPECT_EQ(a->tier(n.id), 3u);
    }
  }
  // Ids number left to right: the workers read worker-1 .. worker-50 in nodes() order.
  std::vector<std::string> w = a->workers();
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], "worker-" + std::to_string(i + 1));
  // The same seed gives the same shape everywhere: pin the first tier's fan-out.
  std::vector<size_t> fan;
  for (const auto& id : a->children("coordinator")) fan.push_back(a->children(id).size());
  EXPECT_EQ(fan[0] + fan[1] + fan[2], 10u);
  auto tight = generate::tiers({4}, 4, 1);
  ASSERT_TRUE(tight.is_ok());
  for (const auto& id : tight->aggregators()) EXPECT_EQ(tight->children(id).size(), 1u);

  EXPECT_EQ(generate::tiers({}, 3, 0)->size(), 4u);  // flat
  EXPECT_THAT(generate::tiers({4, 2}, 10, 0).status().message(),
              HasSubstr("tier 2 has 2 aggregators, fewer than the 4 nodes above it"));
  EXPECT_THAT(generate::tiers({4}, 3, 0).status().message(),
              HasSubstr("3 workers for 4 aggregators"));
  EXPECT_THAT(generate::tiers({0}, 3, 0).status().message(),
              HasSubstr("tier 1 has no aggregators"));
  EXPECT_FALSE(generate::tiers({2}, 0, 0).is_ok());
}

TEST(TopologyGenerators, LargeTopologyLookupsAreByIndex) {
  // 10,000+ workers: lookups by id must agree with positions (O(1) map).
  auto t = generate::tiers({10, 100}, 20000, 7).value();
  EXPECT_EQ(t.size(), 20111u);
  const auto& nodes = t.nodes();
  for (size_t i = 0; i < nodes.size(); i += 997) {
    EXPECT_EQ(t.index_of(nodes[i].id), i);
    EXPECT_EQ(&t.node(nodes[i].id), &nodes[i]);
  }
  EXPECT_EQ(t.leaves_under("coordinator").size(), 20000u);
}

}  // namespace
}  // namespace flight::topology
