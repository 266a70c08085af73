// `flight bench topology`: loading, lookups and induced subtrees at scale.
//
// Cases (one JSON line each, see flight/base/bench.h):
//   load       Topology::load of a YAML file of params.nodes nodes (3 tiers),
//              against yaml-cpp's bare YAML::Load of the same text (baseline).
//   load_json  the same topology as JSON, against nlohmann::json::parse.
//   lookup     Topology::node(id) per worker id (shuffled), against a bare
//              std::unordered_map<std::string, size_t>::find + index of the same ids.
//   induced    Topology::induced() for 10% of the workers (no baseline).
//   generate   generate::tiers for params.nodes nodes (no baseline).
// Times are medians of --repeat runs; ratio > 1 means faster than the baseline.
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "flight/base/process.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "topology/raw_document.h"
#include "topology/topology.h"

namespace flight::bench {
namespace {

using topology::Topology;

struct BenchArgs {
  size_t nodes = 100000;
  int repeat = 5;
};

BenchRecord record(const char* case_name, const nlohmann::json& params, double value,
                   const char* unit) {
  BenchRecord r;
  r.bench = "topology";
  r.case_name = case_name;
  r.params = params;
  r.value = value;
  r.unit = unit;
  r.higher_is_better = false;  // every case here is a time
  return r;
}

template <typename F>
double median_seconds(int repeat, F&& f) {
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    Stopwatch sw;
    f();
    times.push_back(sw.seconds());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The topology as JSON in the reference shape (ids as keys, children lists).
std::string to_json_text(const Topology& t) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& n : t.nodes()) {
    nlohmann::json node = {{"kind", topology::kind_name(n.kind)}};
    if (!n.children.empty()) node["children"] = n.children;
    j[n.id] = std::move(node);
  }
  return j.dump(1);
}

int bench(const BenchArgs& a) {
  // Coordinator, 32 + 1024 aggregators, and at least one worker under each
  // last-tier aggregator (tiers() refuses an aggregator without children).
  constexpr size_t kMinNodes = 1 + 32 + 2 * 1024;
  if (a.nodes < kMinNodes) {
    return usage_error("bench topology: --nodes must be at least " + std::to_string(kMinNodes));
  }
  if (a.repeat < 1) return usage_error("bench topology: --repeat must be at least 1");
  // Coordinator -> 32 -> 1024 aggregators -> the rest as workers.
  const std::vector<size_t> tiers = {32, 1024};
  const size_t workers = a.nodes - 1 - 32 - 1024;
  nlohmann::json params = {{"nodes", a.nodes}};

  std::optional<Topology> t;
  double gen = median_seconds(a.repeat, [&] {
    auto r = topology::generate::tiers(tiers, workers, 1);
    t = std::move(r).value();
  });
  BenchRecord g = record("generate", params, gen, "s");
  emit_bench(g);

  TempDir tmp("flight-bench-topology");
  const std::string dir = tmp.path();
  std::string yaml_path = dir + "/topology.yaml";
  std::string json_path = dir + "/topology.json";
  Status st = t->save_yaml(yaml_path);
  if (!st.is_ok()) return fail(st.message());
  {
    std::ofstream out(json_path, std::ios::binary);
    out << to_json_text(*t);
  }

  // load (YAML): ours reads the file and validates; the baseline only parses it.
  size_t yaml_bytes = read_all(yaml_path).size();
  bool loaded_ok = true;
  double ours = median_seconds(a.repeat, [&] {
    auto r = Topology::load(yaml_path);
    loaded_ok = loaded_ok && r.is_ok() && r->size() == a.nodes;
  });
  long baseline_entries = 0;
  double raw = median_seconds(a.repeat, [&] {
    baseline_entries = topology::internal::yaml_cpp_baseline_load(read_all(yaml_path));
  });
  if (!loaded_ok || baseline_entries != static_cast<long>(a.nodes)) {
    return fail("bench topology: load produced the wrong topology");
  }
  BenchRecord load = record("load", params, ours, "s");
  load.params["bytes"] = yaml_bytes;
  load.baseline = "yaml_cpp_load";
  load.baseline_value = raw;
  emit_bench(load);

  // load_json.
  double ours_json = median_seconds(a.repeat, [&] {
    auto r = Topology::load(json_path);
    loaded_ok = loaded_ok && r.is_ok() && r->size() == a.nodes;
  });
  double raw_json = median_seconds(a.repeat, [&] {
    auto j = nlohmann::json::parse(read_all(json_path));
    baseline_entries = static_cast<long>(j.size());
  });
  if (!loaded_ok) return fail("bench topology: load_json produced the wrong topology");
  BenchRecord lj = record("load_json", params, ours_json, "s");
  lj.baseline = "nlohmann_json_parse";
  lj.baseline_value = raw_json;
  emit_bench(lj);

  // lookup: every worker id, shuffled, through node() and through a bare hash map.
  std::vector<std::string> ids = t->workers();
  std::mt19937_64 rng(7);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::unordered_map<std::string, size_t> bare;
  bare.reserve(t->size());
  for (size_t i = 0; i < t->size(); ++i) bare.emplace(t->nodes()[i].id, i);
  size_t sink = 0;
  const auto& nodes = t->nodes();
  // One untimed pass of each first, so neither pays for cold caches alone.
  for (const auto& id : ids) sink += static_cast<size_t>(t->node(id).speed);
  for (const auto& id : ids) sink += bare.find(id)->second;
  double look = median_seconds(a.repeat, [&] {
    for (const auto& id : ids) sink += static_cast<size_t>(t->node(id).speed);
  });
  double look_raw = median_seconds(a.repeat, [&] {
    for (const auto& id : ids) sink += static_cast<size_t>(nodes[bare.find(id)->second].speed);
  });
  double per = 1e9 / static_cast<double>(ids.size());
  BenchRecord lk = record("lookup", params, look * per, "ns/op");
  lk.baseline = "unordered_map_find";
  lk.baseline_value = look_raw * per;
  lk.extra["checksum"] = sink % 1000;  // keeps the loops from being optimised away
  emit_bench(lk);

  // induced: 10% of the workers.
  std::vector<std::string> selected(ids.begin(), ids.begin() + ids.size() / 10);
  size_t induced_size = 0;
  double ind = median_seconds(a.repeat, [&] { induced_size = t->induced(selected).size(); });
  BenchRecord in = record("induced", params, ind, "s");
  in.params["selected"] = selected.size();
  in.extra["induced_nodes"] = induced_size;
  emit_bench(in);
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(bench_topology,
             {"topology",
              "Topology load (YAML/JSON), lookup, induced subtree and generation at scale",
              [](CLI::App* app) {
                auto a = std::make_shared<BenchArgs>();
                app->add_option("--nodes", a->nodes, "Nodes in the topology (default 100000)");
                app->add_option("--repeat", a->repeat, "Runs per case; the median is reported");
                return [a] { return bench(*a); };
              }});

}  // namespace flight::bench
