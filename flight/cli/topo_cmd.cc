// `flight topo validate | show | generate`: topology files from the command line.
//
//   flight topo validate FILE...        every problem, one per line (file:line: node 'x': ...)
//   flight topo show FILE [--tree|--dot]
//   flight topo generate flat --workers 8 -o t.yaml
//   flight topo generate balanced --branching 4 --height 2 -o t.yaml
//   flight topo generate by-leaves --leaves 256 --height 4 -o t.yaml
//   flight topo generate tiers --aggregators 4,16 --workers 256 --seed 1 -o t.yaml
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "flight/base/strings.h"
#include "flight/cli/command.h"
#include "topology/topology.h"

namespace flight::cli {
namespace {

using topology::NodeKind;
using topology::Topology;

struct Counts {
  size_t coordinators = 0, aggregators = 0, workers = 0;
};

Counts count_kinds(const Topology& t) {
  Counts c;
  for (const auto& n : t.nodes()) {
    c.coordinators += n.is_coordinator();
    c.aggregators += n.is_aggregator();
    c.workers += n.is_worker();
  }
  return c;
}

std::string plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string one_line_summary(const Topology& t) {
  Counts c = count_kinds(t);
  return plural(t.size(), "node") + ": " + plural(c.coordinators, "coordinator") + ", " +
         plural(c.aggregators, "aggregator") + ", " + plural(c.workers, "worker") + "; height " +
         std::to_string(t.height());
}

void print_error_lines(const std::string& message) {
  std::istringstream lines(message);
  std::string line;
  while (std::getline(lines, line)) std::cerr << line << "\n";
}

int validate(const std::vector<std::string>& files) {
  int rc = kExitOk;
  for (const auto& f : files) {
    auto t = Topology::load(f);
    if (!t.is_ok()) {
      print_error_lines(t.status().message());
      rc = kExitFailure;
      continue;
    }
    for (const auto& w : t->warnings()) std::cerr << "warning: " << w << "\n";
    std::cout << f << ": ok (" << one_line_summary(*t) << ")\n";
  }
  return rc;
}

std::string node_label(const topology::Node& n) {
  std::string s = n.id + " [" + topology::kind_name(n.kind) + "]";
  if (n.endpoint) s += " endpoint=" + *n.endpoint;
  if (n.speed != 1.0) s += " speed=" + nlohmann::json(n.speed).dump();
  return s;
}

// Depth-first with an explicit stack: a chain of 100,000 aggregators is a valid tree.
void print_tree(const Topology& t) {
  struct Item {
    const topology::Node* node;
    std::string prefix;  // drawn before this node's connector
    bool last;
    bool root;
  };
  std::vector<Item> stack{{&t.root(), "", true, true}};
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    if (it.root) {
      std::cout << node_label(*it.node) << "\n";
    } else {
      std::cout << it.prefix << (it.last ? "└── " : "├── ") << node_label(*it.node) << "\n";
    }
    std::string child_prefix = it.root ? "" : it.prefix + (it.last ? "    " : "│   ");
    const auto& kids = it.node->children;
    for (size_t i = kids.size(); i-- > 0;) {
      stack.push_back({&t.node(kids[i]), child_prefix, i + 1 == kids.size(), false});
    }
  }
}

std::string dot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void print_dot(const Topology& t) {
  std::cout << "digraph topology {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n";
  for (const auto& n : t.nodes()) {
    const char* shape = n.is_coordinator()  ? "doubleoctagon"
                        : n.is_aggregator() ? "box"
                                            : "ellipse";
    std::cout << "  " << dot_quote(n.id) << " [shape=" << shape << "];\n";
  }
  for (const auto& n : t.nodes()) {
    for (const auto& c : n.children) {
      std::cout << "  " << dot_quote(n.id) << " -> " << dot_quote(c) << ";\n";
    }
  }
  std::cout << "}\n";
}

void print_summary(const std::string& file, const Topology& t) {
  Counts c = count_kinds(t);
  std::cout << file << "\n";
  std::cout << "  nodes:     " << t.size() << " (" << plural(c.coordinators, "coordinator") << ", "
            << plural(c.aggregators, "aggregator") << ", " << plural(c.workers, "worker") << ")\n";
  std::cout << "  height:    " << t.height() << "\n";
  // Per tier: how many of each kind.
  std::vector<std::map<NodeKind, size_t>> per_tier(t.height() + 1);
  size_t internal = 0, fan_min = SIZE_MAX, fan_max = 0, fan_sum = 0, endpoints = 0;
  for (const auto& n : t.nodes()) {
    ++per_tier[t.tier(n.id)][n.kind];
    endpoints += n.endpoint.has_value();
    if (n.children.empty()) continue;
    ++internal;
    fan_min = std::min(fan_min, n.children.size());
    fan_max = std::max(fan_max, n.children.size());
    fan_sum += n.children.size();
  }
  auto tiers = t.nodes_per_tier();
  for (size_t k = 0; k < tiers.size(); ++k) {
    std::vector<std::string> parts;
    for (auto kind : {NodeKind::kCoordinator, NodeKind::kAggregator, NodeKind::kWorker}) {
      auto it = per_tier[k].find(kind);
      if (it != per_tier[k].end()) parts.push_back(plural(it->second, kind_name(kind)));
    }
    std::cout << "  tier " << k << ":    " << tiers[k] << " (" << join(parts, ", ") << ")\n";
  }
  char avg[32];
  std::snprintf(avg, sizeof(avg), "%.2f", static_cast<double>(fan_sum) / internal);
  std::cout << "  fan-out:   min " << fan_min << ", avg " << avg << ", max " << fan_max << " (over "
            << plural(internal, "node") << " with children)\n";
  std::cout << "  endpoints: " << endpoints << " of " << t.size() << " nodes name one\n";
}

struct ShowArgs {
  std::string file;
  bool tree = false;
  bool dot = false;
};

int show(const ShowArgs& a) {
  if (a.tree && a.dot) return usage_error("topo show: --tree and --dot are exclusive");
  auto t = Topology::load(a.file);
  if (!t.is_ok()) {
    print_error_lines(t.status().message());
    return kExitFailure;
  }
  if (a.dot) {
    print_dot(*t);
  } else if (a.tree) {
    print_tree(*t);
  } else {
    print_summary(a.file, *t);
  }
  return kExitOk;
}

struct GenerateArgs {
  std::string shape;
  CLI::App* app = nullptr;
  size_t workers = 0, branching = 0, height = 0, leaves = 0;
  std::vector<size_t> aggregators;
  uint64_t seed = 0;
  std::string output;
};

int generate(const GenerateArgs& a) {
  auto given = [&](const char* name) { return a.app->count(name) > 0; };
  // Each shape takes its own options; anything else is a usage error.
  std::map<std::string, std::vector<std::string>> wants = {
      {"flat", {"--workers"}},
      {"balanced", {"--branching", "--height"}},
      {"by-leaves", {"--leaves", "--height"}},
      {"tiers", {"--aggregators", "--workers", "--seed"}},
  };
  const auto& allowed = wants.at(a.shape);
  for (const char* opt :
       {"--workers", "--branching", "--height", "--leaves", "--aggregators", "--seed"}) {
    bool ok = std::find(allowed.begin(), allowed.end(), opt) != allowed.end();
    if (given(opt) && !ok) {
      return usage_error("topo generate " + a.shape + ": " + opt + " does not apply (it takes " +
                         join(allowed, ", ") + ")");
    }
  }
  auto require = [&](const char* opt, size_t value) -> bool { return given(opt) && value >= 1; };
  std::optional<Topology> t;
  if (a.shape == "flat") {
    if (!require("--workers", a.workers))
      return usage_error("topo generate flat: --workers N >= 1");
    t = topology::generate::flat(a.workers);
  } else if (a.shape == "balanced") {
    if (!require("--branching", a.branching) || !require("--height", a.height)) {
      return usage_error("topo generate balanced: --branching B >= 1 and --height H >= 1");
    }
    t = topology::generate::balanced(a.branching, a.height);
  } else if (a.shape == "by-leaves") {
    if (!require("--leaves", a.leaves) || !require("--height", a.height)) {
      return usage_error("topo generate by-leaves: --leaves L >= 1 and --height H >= 1");
    }
    t = topology::generate::by_leaves(a.leaves, a.height);
  } else {
    if (!require("--workers", a.workers)) {
      return usage_error("topo generate tiers: --workers N >= 1 (and --aggregators A1,A2,...)");
    }
    auto r = topology::generate::tiers(a.aggregators, a.workers, a.seed);
    if (!r.is_ok()) return usage_error(r.status().message());
    t = std::move(r).value();
  }
  if (t->size() > 20'000'000) return usage_error("topo generate: topology too large");
  if (a.output.empty()) {
    std::cout << t->to_yaml();
    return kExitOk;
  }
  Status st = t->save_yaml(a.output);
  if (!st.is_ok()) return fail(st.message());
  // What we wrote must read back as the same topology.
  auto back = Topology::load(a.output);
  if (!back.is_ok()) return fail("generated file does not load: " + back.status().message());
  if (*back != *t) return fail(a.output + ": generated file does not read back identically");
  std::cout << a.output << ": " << one_line_summary(*t) << "\n";
  return kExitOk;
}

}  // namespace

FLIGHT_COMMAND(
    topo_validate,
    {"topo", "validate",
     "Validate topology files; lists every problem as file:line: node 'x': message",
     [](CLI::App* app) {
       auto files = std::make_shared<std::vector<std::string>>();
       app->add_option("files", *files, "Topology files (.yaml, .yml, .json)")->required();
       return [files] { return validate(*files); };
     }});

FLIGHT_COMMAND(topo_show,
               {"topo", "show", "Summarise a topology: nodes per tier and kind, height, fan-out",
                [](CLI::App* app) {
                  auto a = std::make_shared<ShowArgs>();
                  app->add_option("file", a->file, "Topology file")->required();
                  app->add_flag("--tree", a->tree, "Print the tree");
                  app->add_flag("--dot", a->dot, "Print Graphviz (dot) source");
                  return [a] { return show(*a); };
                }});

FLIGHT_COMMAND(
    topo_generate,
    {"topo", "generate", "Generate a topology (ids: coordinator, agg-<tier>-<i>, worker-<i>)",
     [](CLI::App* app) {
       auto a = std::make_shared<GenerateArgs>();
       a->app = app;
       app->add_option("shape", a->shape, "flat | balanced | by-leaves | tiers")
           ->required()
           ->check(CLI::IsMember({"flat", "balanced", "by-leaves", "tiers"}));
       app->add_option("--workers,-n", a->workers, "Workers (flat, tiers)");
       app->add_option("--branching,-b", a->branching, "Children per internal node (balanced)");
       app->add_option("--height", a->height, "Tree height: workers' depth (balanced, by-leaves)");
       app->add_option("--leaves,-l", a->leaves,
                       "Approximate workers; branching = round(leaves^(1/height)) (by-leaves)");
       app->add_option("--aggregators,-a", a->aggregators,
                       "Aggregators per tier, top down, comma-separated (tiers)")
           ->delimiter(',');
       app->add_option("--seed", a->seed, "Seed for tiers (default 0)");
       app->add_option("-o,--output", a->output, "Output YAML file (default: stdout)");
       return [a] { return generate(*a); };
     }});

}  // namespace flight::cli
