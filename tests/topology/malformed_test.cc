// The malformed-file corpus (tests/data/topology/malformed): every file fails
// with its own specific error, naming the node and line where there is one, and
// nothing crashes or throws. Also: huge inputs, and the real `flight topo` CLI.
#include <dirent.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "topology/topology.h"

namespace flight::topology {
namespace {

using ::testing::HasSubstr;

const std::string kDir = std::string(FLIGHT_SOURCE_DIR) + "/tests/data/topology/malformed/";

// File -> the errors it must produce ("line: message", prefixed with the path).
const std::map<std::string, std::vector<std::string>>& expectations() {
  static const std::map<std::string, std::vector<std::string>> e = {
      {"empty.yaml", {"1: empty topology (expected a mapping from node id to attributes)"}},
      {"comments-only.yaml", {"1: empty topology"}},
      {"list.yaml", {"1: a topology is a mapping from node id to attributes, got a list"}},
      {"scalar.yaml", {"1: a topology is a mapping from node id to attributes, got a scalar"}},
      {"array.json", {"1: a topology is a mapping from node id to attributes, got a list"}},
      {"binary.yaml", {"3: binary data (NUL byte at offset 8); a topology is YAML or JSON text"}},
      {"binary-no-nul.yaml", {"1: not UTF-8 text (invalid byte at offset 0)"}},
      {"invalid-utf8.yaml", {"3: not UTF-8 text (invalid byte at offset 47)"}},
      {"deep-nesting.yaml", {"3: nesting deeper than 256 levels"}},
      {"deep-nesting.json", {"1: nesting deeper than 256 levels"}},
      {"billion-laughs.yaml", {"4: document too large: more than 65536 values"}},
      {"syntax-error.yaml", {"4: YAML syntax error: end of sequence flow not found"}},
      {"tab-indent.yaml", {"2: YAML syntax error:"}},
      {"unknown-alias.yaml", {"3: YAML syntax error: the referenced anchor is not defined"}},
      {"two-documents.yaml",
       {"7: more than one YAML document (a topology file holds exactly one)"}},
      {"syntax-error.json",
       {"4: JSON syntax error: syntax error while parsing object - unexpected string literal"}},
      {"truncated.json", {"3: JSON syntax error:"}},
      {"cycle.yaml",
       {"6: node 'agg-a': cycle agg-a -> agg-b -> agg-a (not reachable from the "
        "coordinator)"}},
      {"two-parents.yaml",
       {"9: node 'w2': has two parents, 'agg-1' (line 4) and 'agg-2' (line 7); a topology is a "
        "tree"}},
      {"unreachable.yaml",
       {"6: node 'w2': has no parent and is not the coordinator (unreachable; only the "
        "coordinator may be a root)"}},
      {"missing-child.yaml",
       {"5: node 'coordinator': child 'w9' does not exist (did you mean "
        "'w1'?)"}},
      {"duplicate-id.yaml", {"6: node 'w1': duplicate id (first defined on line 4)"}},
      {"duplicate-int-id.yaml", {"6: node '1': duplicate id (first defined on line 4)"}},
      {"duplicate-id.json", {"4: node 'w': duplicate id (first defined on line 3)"}},
      {"duplicate-attribute.yaml",
       {"7: node 'w1': attribute 'kind' given twice (first on line 5)"}},
      {"worker-with-children.yaml",
       {"6: node 'w1': worker has children (workers must be leaves; make it an aggregator)"}},
      {"aggregator-without-children.yaml",
       {"4: node 'agg': aggregator has no children (it needs at least one)"}},
      {"two-roots.yaml",
       {"6: node 'c2': second coordinator (the first is 'c1' on line 1); a "
        "topology has exactly one"}},
      {"no-worker.yaml", {"1: no worker (a topology needs at least one worker)"}},
      {"no-coordinator.yaml",
       {"1: no coordinator (exactly one node must have kind coordinator)",
        "1: node 'agg': has no parent and is not the coordinator"}},
      {"bad-kind.yaml",
       {"5: node 'w1': unknown kind 'wroker' (expected leader, coordinator, "
        "aggregator or worker) (did you mean 'worker'?)"}},
      {"missing-kind.yaml",
       {"4: node 'w1': missing 'kind' (expected coordinator, aggregator or worker)"}},
      {"kind-not-string.yaml", {"2: node 'coordinator': 'kind' must be a string, got a list"}},
      {"bad-speed.yaml",
       {"6: node 'w1': 'speed' must be a positive number, got '-1'",
        "9: node 'w2': 'speed' must be a positive number, got 'fast'"}},
      {"children-not-list.yaml",
       {"3: node 'coordinator': 'children' must be a list of node ids, got a mapping",
        "4: node 'w1': has no parent and is not the coordinator"}},
      {"child-not-scalar.yaml",
       {"3: node 'coordinator': child #2 must be a node id (integer or string), got a list"}},
      {"child-listed-twice.yaml", {"3: node 'coordinator': child 'w1' listed twice"}},
      {"attributes-not-map.yaml", {"4: node 'w1': attributes must be a mapping, got a list"}},
      {"no-attributes.yaml",
       {"4: node 'w1': has no attributes (expected a mapping with at least 'kind')"}},
      {"self-child.yaml", {"6: node 'agg': lists itself as a child"}},
      {"coordinator-with-parent.yaml",
       {"4: node 'coordinator': the coordinator has a parent, 'agg' (the coordinator must be the "
        "root)"}},
      {"extra-not-map.yaml", {"6: node 'w1': 'extra' must be a mapping, got a list"}},
      {"endpoint-not-string.yaml", {"6: node 'w1': 'endpoint' must be a string, got a mapping"}},
      {"complex-key.yaml", {"6: node id must be an integer or a string, got a list"}},
      {"many-errors.yaml",
       {"4: node 'coordinator': child 'w9' does not exist (did you mean 'w1'?)",
        "5: node 'agg': aggregator has no children (it needs at least one)",
        "8: node 'w1': unknown kind 'wrker' (expected leader, coordinator, aggregator or worker) "
        "(did you mean 'worker'?)",
        "9: node 'w1': 'speed' must be a positive number, got '0'"}},
  };
  return e;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(TopologyMalformed, CorpusHasAtLeast25FilesAndAllAreExpected) {
  std::set<std::string> files;
  DIR* d = ::opendir(kDir.c_str());
  ASSERT_NE(d, nullptr) << kDir;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") files.insert(name);
  }
  ::closedir(d);
  EXPECT_GE(files.size(), 25u);
  for (const auto& f : files) EXPECT_TRUE(expectations().count(f)) << "no expectation for " << f;
  for (const auto& [f, _] : expectations()) EXPECT_TRUE(files.count(f)) << "missing file " << f;
}

TEST(TopologyMalformed, EachFileFailsWithItsError) {
  for (const auto& [file, expected] : expectations()) {
    SCOPED_TRACE(file);
    std::string path = kDir + file;
    StatusOr<Topology> t = Topology::load(path);
    ASSERT_FALSE(t.is_ok()) << file << " loaded";
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    std::vector<std::string> lines = split_lines(t.status().message());
    // Exactly the expected problems, in line order, each prefixed with the path.
    ASSERT_EQ(lines.size(), expected.size()) << t.status().message();
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_THAT(lines[i], HasSubstr(path + ":" + expected[i])) << t.status().message();
      EXPECT_EQ(lines[i].rfind(path + ":", 0), 0u) << lines[i];
    }
  }
}

TEST(TopologyMalformed, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string text(rng() % 300, '\0');
    for (auto& c : text) c = static_cast<char>(rng() % 256);
    auto y = Topology::parse_yaml(text, "r.yaml");
    auto j = Topology::parse_json(text, "r.json");
    EXPECT_FALSE(y.is_ok());
    EXPECT_FALSE(j.is_ok());
    EXPECT_THAT(y.status().message(), HasSubstr("r.yaml:"));
    EXPECT_THAT(j.status().message(), HasSubstr("r.json:"));
  }
  // Mutations of a valid file: any outcome but a crash; errors carry the name.
  std::string valid = generate::tiers({2, 4}, 10, 1).value().to_yaml();
  for (int i = 0; i < 300; ++i) {
    std::string text = valid;
    for (int k = 0; k < 3; ++k) text[rng() % text.size()] = "[]{}:,-#&*! \n\"'x0"[rng() % 17];
    auto y = Topology::parse_yaml(text, "m.yaml");
    if (!y.is_ok()) {
      EXPECT_THAT(y.status().message(), HasSubstr("m.yaml:"));
    }
  }
}

TEST(TopologyMalformed, TenMegabyteFiles) {
  testing::TempDir dir;
  // One 10 MB scalar: a clear error, not a hang or a crash.
  std::string scalar_path = dir.file("big-scalar.yaml");
  {
    std::ofstream out(scalar_path);
    out << std::string(10 << 20, 'a') << "\n";
  }
  auto s = Topology::load(scalar_path);
  ASSERT_FALSE(s.is_ok());
  EXPECT_THAT(s.status().message(),
              HasSubstr(scalar_path + ":1: a topology is a mapping from node id to attributes"));

  // A 10 MB topology with one bad node at the end: found, with its line.
  std::string big_path = dir.file("big.yaml");
  size_t lines = 0;
  {
    std::ofstream out(big_path);
    out << "coordinator:\n  kind: coordinator\n  children: [";
    const size_t n = 340000;  // > 10 MB
    for (size_t i = 1; i <= n; ++i) out << (i > 1 ? ", " : "") << "w" << i;
    out << "]\n";
    lines = 3;
    for (size_t i = 1; i <= n; ++i) {
      out << "w" << i << ":\n  kind: " << (i == n ? "worker\n  speed: 0\n" : "worker\n");
      lines += 2;
    }
    lines += 1;
  }
  EXPECT_GE(testing::read_file(big_path).size(), size_t{10} << 20);
  auto big = Topology::load(big_path);
  ASSERT_FALSE(big.is_ok());
  EXPECT_EQ(big.status().message(),
            big_path + ":" + std::to_string(lines) +
                ": node 'w340000': 'speed' must be a positive number, got '0'");
}

// ---------------------------------------------------------------- the real CLI

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun flight(const std::vector<std::string>& args) {
  testing::TempDir dir;
  testing::Subprocess::Options o;
  o.stdout_path = dir.file("out");
  o.stderr_path = dir.file("err");
  std::vector<std::string> argv{FLIGHT_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  testing::Subprocess p(argv, o);
  int code = p.wait();
  return {code, testing::read_file(o.stdout_path), testing::read_file(o.stderr_path)};
}

TEST(TopologyCli, ValidateMalformedFileGivesOneLineWithNodeAndLine) {
  std::string file = kDir + "worker-with-children.yaml";
  CliRun r = flight({"topo", "validate", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, file +
                       ":6: node 'w1': worker has children (workers must be leaves; make it "
                       "an aggregator)\n");
  EXPECT_EQ(r.out, "");
}

TEST(TopologyCli, ValidateListsEveryErrorAndOkFiles) {
  std::string bad = kDir + "many-errors.yaml";
  std::string good = std::string(FLIGHT_SOURCE_DIR) + "/tests/data/topology/reference-2024.yaml";
  CliRun r = flight({"topo", "validate", good, bad});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(split_lines(r.err).size(), 4u) << r.err;
  EXPECT_THAT(r.err, HasSubstr(bad + ":9: node 'w1': 'speed' must be a positive number"));
  EXPECT_EQ(r.out, good + ": ok (5 nodes: 1 coordinator, 1 aggregator, 3 workers; height 2)\n");
}

TEST(TopologyCli, ShippedConfigsValidate) {
  std::string dir = std::string(FLIGHT_SOURCE_DIR) + "/configs/topologies/";
  std::vector<std::string> args = {"topo", "validate"};
  for (const char* f : {"2tier.yaml", "3tier.yaml", "3tier-small.yaml", "balanced-256-h1.yaml",
                        "balanced-256-h2.yaml", "balanced-256-h4.yaml", "balanced-256-h8.yaml"}) {
    args.push_back(dir + f);
  }
  CliRun r = flight(args);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(split_lines(r.out).size(), 7u);
  EXPECT_THAT(r.out, HasSubstr("3tier.yaml: ok (37 nodes: 1 coordinator, 4 aggregators, 32 "
                               "workers; height 2)"));
  EXPECT_THAT(r.out, HasSubstr("3tier-small.yaml: ok (11 nodes: 1 coordinator, 2 aggregators, 8 "
                               "workers; height 2)"));
  EXPECT_THAT(r.out, HasSubstr("2tier.yaml: ok (9 nodes: 1 coordinator, 0 aggregators, 8 "
                               "workers; height 1)"));
  for (int h : {1, 2, 4, 8}) {
    auto t = Topology::load(dir + "balanced-256-h" + std::to_string(h) + ".yaml");
    ASSERT_TRUE(t.is_ok()) << t.status();
    EXPECT_EQ(t->workers().size(), 256u);
    EXPECT_EQ(t->height(), static_cast<size_t>(h));
    EXPECT_EQ(*t, generate::by_leaves(256, h));
  }
}

TEST(TopologyCli, ShowSummaryTreeAndDot) {
  std::string file = std::string(FLIGHT_SOURCE_DIR) + "/tests/data/topology/flight-attributes.yaml";
  CliRun s = flight({"topo", "show", file});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_THAT(s.out, HasSubstr("nodes:     6 (1 coordinator, 2 aggregators, 3 workers)"));
  EXPECT_THAT(s.out, HasSubstr("tier 2:    3 (3 workers)"));
  EXPECT_THAT(s.out, HasSubstr("fan-out:   min 1, avg 1.67, max 2 (over 3 nodes with children)"));

  CliRun t = flight({"topo", "show", file, "--tree"});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out,
            "coordinator [coordinator] endpoint=hq\n"
            "├── edge-east [aggregator] endpoint=edge-east\n"
            "│   ├── pi-1 [worker] endpoint=pi-1 speed=0.25\n"
            "│   └── pi-2 [worker] endpoint=pi-2 speed=0.25\n"
            "└── edge-west [aggregator] endpoint=edge-west\n"
            "    └── jetson-1 [worker] endpoint=jetson-1 speed=2.0\n");

  CliRun d = flight({"topo", "show", file, "--dot"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_THAT(d.out, HasSubstr("digraph topology {"));
  EXPECT_THAT(d.out, HasSubstr("\"edge-west\" -> \"jetson-1\";"));
  EXPECT_THAT(d.out, HasSubstr("\"coordinator\" [shape=doubleoctagon];"));

  CliRun both = flight({"topo", "show", file, "--tree", "--dot"});
  EXPECT_EQ(both.code, 2);
  CliRun bad = flight({"topo", "show", kDir + "cycle.yaml"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("cycle.yaml:6: node 'agg-a': cycle"));
}

TEST(TopologyCli, GenerateWritesFilesThatValidateAndRoundTrip) {
  testing::TempDir dir;
  struct Case {
    std::vector<std::string> args;
    Topology expected;
  };
  std::vector<Case> cases = {
      {{"flat", "--workers", "6"}, generate::flat(6)},
      {{"balanced", "--branching", "3", "--height", "2"}, generate::balanced(3, 2)},
      {{"by-leaves", "--leaves", "64", "--height", "3"}, generate::by_leaves(64, 3)},
      {{"tiers", "--aggregators", "2,5", "--workers", "20", "--seed", "3"},
       generate::tiers({2, 5}, 20, 3).value()},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string out = dir.file("g" + std::to_string(i) + ".yaml");
    std::vector<std::string> args = {"topo", "generate"};
    args.insert(args.end(), cases[i].args.begin(), cases[i].args.end());
    args.insert(args.end(), {"-o", out});
    CliRun r = flight(args);
    ASSERT_EQ(r.code, 0) << r.err;
    auto t = Topology::load(out);
    ASSERT_TRUE(t.is_ok()) << t.status();
    EXPECT_EQ(*t, cases[i].expected) << cases[i].args[0];
    CliRun v = flight({"topo", "validate", out});
    EXPECT_EQ(v.code, 0) << v.err;
  }
}

TEST(TopologyCli, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"topo", "generate", "star", "--workers", "3"},
           {"topo", "generate", "flat"},
           {"topo", "generate", "flat", "--workers", "3", "--height", "2"},
           {"topo", "generate", "balanced", "--branching", "2"},
           {"topo", "generate", "tiers", "--aggregators", "4,2", "--workers", "9"},
           {"topo", "validate"},
           {"topo", "show"},
       }) {
    CliRun r = flight(args);
    EXPECT_EQ(r.code, 2) << args[2] << " " << r.err;
    EXPECT_EQ(split_lines(r.err).size(), 1u) << r.err;
  }
  CliRun missing = flight({"topo", "validate", "/nonexistent/t.yaml"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/t.yaml: cannot read"));
}

}  // namespace
}  // namespace flight::topology
