// `flight bench wire`: the hierarchy measured on the wire. The same real round
// (every worker takes --steps SGD steps) over emulated hosts — one network
// namespace per host behind a tbf-capped veth (flight/deploy/emulated_hosts.h)
// — for three trees over the same workers (--sites sites × --per-site
// workers, one site per host, subtree placement), for a ~1M and a ~10M
// parameter model:
//   flat   coordinator -> every worker (2 levels; configs/fmnist-2tier.yaml's shape)
//   3tier  coordinator -> one aggregator per site -> its workers
//   4tier  coordinator -> --regions regions -> their sites -> workers (a region
//          runs on its first site's host)
// Weights travel over `tcp` connectors bound inside the namespaces, so every
// byte that crosses a link is counted by the interfaces themselves
// (/sys/class/net/*/statistics, read in the bridge's namespace).
//
// Cases per model and topology:
//   <topo>_coordinator_link_bytes  bytes both ways on the coordinator's link per
//                           measured round; baseline: the analytic model (H + C)·S
//                           (the model once to each of H hosts, one update up
//                           from each of the coordinator's C children; S the
//                           encoded model): flat (H + W)·S, 3tier 2·H·S; and,
//                           as reference_2ES_bytes, the reference's 2·E·S on
//                           the C edges crossing that link
//   <topo>_round_time       the median measured round's wall time (evaluation
//                           excluded); baseline: the link-limited ideal = the
//                           busiest link's bytes (both ways) / its rate + the
//                           longest compute path (the busiest host's training
//                           and aggregation time in that round, from tasks.csv)
// and per model and hierarchical topology: coordinator bytes saved and the
// round-time speed-up against flat, from the same bench run.
// Round 1 warms the hosts (data set, model, sockets); rounds 2..--rounds are
// measured. The load average is recorded: training shares the machine's
// cores, so a loaded machine lengthens the compute path. Needs root.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "flight/base/process.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/deploy/emulated_hosts.h"
#include "flight/deploy/launcher.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/learning/model.h"
#include "topology/topology.h"
#include "transport/codec.h"

namespace flight::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct WireArgs {
  int64_t sites = 4;
  int64_t per_site = 8;
  int64_t regions = 2;
  int64_t steps = 1;
  int64_t rounds = 4;
  double coordinator_mbit = 100;  // the coordinator's uplink is the bottleneck
  double host_mbit = 1000;
  std::vector<std::string> models = {"1m", "10m"};
  std::vector<std::string> topologies = {"flat", "3tier", "4tier"};
  std::string dir;
};

struct ModelCase {
  std::string label;
  std::vector<int64_t> hidden;
};

const std::map<std::string, ModelCase>& model_cases() {
  static const std::map<std::string, ModelCase> m = {
      {"1m", {"mlp_1m", {1024, 256}}},     // 784·1024 + 1024·256 + ... ≈ 1.07 M
      {"10m", {"mlp_10m", {4096, 1536}}},  // 784·4096 + 4096·1536 + ... ≈ 9.5 M
  };
  return m;
}

struct Measured {
  double round_s = 0;         // median over the measured rounds
  double train_max_s = 0;     // in the median round
  double compute_path_s = 0;  // the busiest host's training + aggregation, median round
  uint64_t model_bytes = 0;
  size_t coordinator_children = 0;
  std::vector<double> rounds_s;  // every measured round
  // Mean bytes per measured round, per link.
  std::map<std::string, deploy::LinkBytes> links;
  double load_before = 0, load_after = 0;  // 1-minute load average
};

// The tree of `topo` over a.sites × a.per_site workers, as nodes: the same
// worker ids (and so the same data partitions) in every topology.
StatusOr<std::vector<topology::Node>> tree(const WireArgs& a, const std::string& topo) {
  using topology::Node;
  using topology::NodeKind;
  std::vector<Node> nodes;
  auto add = [&](std::string id, NodeKind kind, std::optional<std::string> parent) -> Node& {
    Node n;
    n.id = std::move(id);
    n.kind = kind;
    n.parent = std::move(parent);
    if (n.parent) {
      for (auto& p : nodes) {
        if (p.id == *n.parent) p.children.push_back(n.id);
      }
    }
    nodes.push_back(std::move(n));
    return nodes.back();
  };
  add("coordinator", NodeKind::kCoordinator, std::nullopt);
  const auto worker = [](int64_t i) { return "worker-" + std::to_string(i + 1); };
  const auto site = [](int64_t s) { return "site-" + std::to_string(s + 1); };
  if (topo == "flat") {
    for (int64_t i = 0; i < a.sites * a.per_site; ++i) {
      add(worker(i), NodeKind::kWorker, "coordinator");
    }
    return nodes;
  }
  std::vector<std::string> site_parent(static_cast<size_t>(a.sites), "coordinator");
  if (topo == "4tier") {
    if (a.regions < 1 || a.sites % a.regions != 0) {
      return invalid_argument("bench wire: --sites must be a multiple of --regions for 4tier");
    }
    const int64_t per_region = a.sites / a.regions;
    for (int64_t r = 0; r < a.regions; ++r) {
      add("region-" + std::to_string(r + 1), NodeKind::kAggregator, "coordinator");
      for (int64_t s = r * per_region; s < (r + 1) * per_region; ++s) {
        site_parent[static_cast<size_t>(s)] = "region-" + std::to_string(r + 1);
      }
    }
  } else if (topo != "3tier") {
    return invalid_argument("bench wire: --topologies takes flat, 3tier and/or 4tier, not '" +
                            topo + "'");
  }
  for (int64_t s = 0; s < a.sites; ++s) {
    add(site(s), NodeKind::kAggregator, site_parent[static_cast<size_t>(s)]);
  }
  for (int64_t s = 0; s < a.sites; ++s) {
    for (int64_t i = s * a.per_site; i < (s + 1) * a.per_site; ++i) {
      add(worker(i), NodeKind::kWorker, site(s));
    }
  }
  return nodes;
}

StatusOr<engine::ExperimentConfig> make_config(const WireArgs& a, const ModelCase& m,
                                               const std::string& topology_file,
                                               const std::string& out) {
  json j = {{"name", "wire"},
            {"seed", 5},
            {"topology", topology_file},
            {"model", {{"name", "mlp"}, {"options", {{"hidden", m.hidden}}}}},
            {"data", {{"dataset", "fashion_mnist"}, {"partition", {{"method", "iid"}}}}},
            {"train", {{"epochs", 1}, {"batch_size", 32}, {"lr", 0.05}, {"max_steps", a.steps}}},
            {"strategy", {{"name", "fedavg"}, {"participation", 1.0}}},
            {"rounds", a.rounds},
            {"threads", 2},
            {"eval", {{"every", 1000}}},
            {"output", {{"dir", out}, {"checkpoint_every", 0}, {"save_model", false}}}};
  return engine::ExperimentConfig::from_json(j, "bench wire", ".");
}

double round_seconds(const engine::RoundRow& r) { return r.end - r.start - r.eval_seconds; }

double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

// The longest compute path of `round`: per endpoint, its workers' training
// time (one task thread per host, so they add up) plus its aggregations; the
// busiest endpoint. From tasks.csv, measured in the same run.
StatusOr<double> compute_path(const std::string& tasks_csv, int64_t round) {
  std::ifstream in(tasks_csv);
  std::string line;
  if (!std::getline(in, line)) return not_found("bench wire: no " + tasks_csv);
  std::map<std::string, size_t> col;
  {
    std::istringstream h(line);
    std::string name;
    for (size_t i = 0; std::getline(h, name, ','); ++i) col[name] = i;
  }
  for (const char* c : {"round", "kind", "endpoint", "started_s", "finished_s", "train_seconds"}) {
    if (!col.count(c)) return data_loss(std::string("bench wire: tasks.csv lacks ") + c);
  }
  std::map<std::string, double> busy;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream r(line);
    std::string cell;
    while (std::getline(r, cell, ',')) f.push_back(cell);
    if (f.size() <= col["train_seconds"] || std::stoll(f[col["round"]]) != round) continue;
    const std::string& kind = f[col["kind"]];
    if (kind == "train") {
      busy[f[col["endpoint"]]] += std::stod(f[col["train_seconds"]]);
    } else if (kind == "aggregate") {
      busy[f[col["endpoint"]]] += std::stod(f[col["finished_s"]]) - std::stod(f[col["started_s"]]);
    }
  }
  double longest = 0;
  for (const auto& [ep, s] : busy) longest = std::max(longest, s);
  return longest;
}

StatusOr<Measured> run_case(const WireArgs& a, const ModelCase& m, const std::string& topo,
                            deploy::EmulatedHosts* hosts, const std::string& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  FLIGHT_ASSIGN_OR_RETURN(auto nodes, tree(a, topo));
  FLIGHT_ASSIGN_OR_RETURN(auto t, topology::Topology::from_nodes(std::move(nodes), "bench wire"));
  const std::string topology_file = fs::absolute(out + "/wire-topology.yaml").string();
  FLIGHT_RETURN_IF_ERROR(t.save_yaml(topology_file));
  FLIGHT_ASSIGN_OR_RETURN(auto config, make_config(a, m, topology_file, out));
  deploy::DeployOptions d;
  d.launcher = "processes";
  d.hosts = a.sites;
  d.placement = "subtree";
  d.threads = 1;
  d.emulate = true;
  d.register_timeout_s = 300;
  Measured meas;
  meas.coordinator_children = t.children(t.root().id).size();
  meas.load_before = load_average();
  std::map<int64_t, std::map<std::string, deploy::LinkBytes>> at;  // after round r
  engine::RunOptions run;
  run.quiet = true;
  Status link_error = Status::ok();
  run.on_round = [&](const engine::RoundRow& row) {
    auto now = hosts->link_bytes();
    if (!now.is_ok()) {
      link_error = now.status();
      return;
    }
    at[row.round] = *now;
  };
  FLIGHT_ASSIGN_OR_RETURN(auto summary, deploy::run_deployed(config, run, d, hosts));
  FLIGHT_RETURN_IF_ERROR(link_error);
  meas.load_after = load_average();
  FLIGHT_ASSIGN_OR_RETURN(auto rows, engine::read_rounds_csv(summary.output_dir + "/rounds.csv"));
  if (rows.size() != static_cast<size_t>(a.rounds) || at.size() != rows.size()) {
    return internal_error("bench wire: expected " + std::to_string(a.rounds) + " rounds in " + out);
  }
  // Rounds 2..N: their times, compute paths and link bytes.
  std::vector<std::pair<double, size_t>> by_time;
  for (size_t i = 1; i < rows.size(); ++i) {
    meas.rounds_s.push_back(round_seconds(rows[i]));
    by_time.push_back({round_seconds(rows[i]), i});
    for (const auto& [name, b] : at[rows[i].round]) {
      const auto& before = at[rows[i - 1].round][name];
      meas.links[name].rx += b.rx - before.rx;
      meas.links[name].tx += b.tx - before.tx;
    }
  }
  const uint64_t measured = rows.size() - 1;
  for (auto& [name, b] : meas.links) {
    b.rx /= measured;
    b.tx /= measured;
  }
  std::sort(by_time.begin(), by_time.end());
  const auto& median = rows[by_time[by_time.size() / 2].second];
  meas.round_s = round_seconds(median);
  meas.train_max_s = median.train_seconds_max;
  FLIGHT_ASSIGN_OR_RETURN(meas.compute_path_s,
                          compute_path(summary.output_dir + "/tasks.csv", median.round));
  // S: the model as the codec puts it on the wire (header + aligned tensors).
  FLIGHT_ASSIGN_OR_RETURN(auto model, learning::make_model(config.model));
  FLIGHT_ASSIGN_OR_RETURN(meas.model_bytes, transport::encoded_size(model->state()));
  return meas;
}

double coordinator_bytes(const Measured& w) {
  auto it = w.links.find("coord");
  return it == w.links.end() ? 0.0 : static_cast<double>(it->second.rx + it->second.tx);
}

int bench(const WireArgs& a) {
  if (a.rounds < 2) return usage_error("bench wire: --rounds must be >= 2 (round 1 warms up)");
  for (const auto& key : a.models) {
    if (!model_cases().count(key)) return usage_error("bench wire: --models takes 1m and/or 10m");
  }
  TempDir tmp("bench-wire");
  const std::string dir = a.dir.empty() ? tmp.path() : a.dir;
  deploy::EmulatedHostsOptions eo;
  eo.hosts = static_cast<size_t>(a.sites);
  eo.coordinator_mbit = a.coordinator_mbit;
  eo.host_mbit = a.host_mbit;
  auto hosts = deploy::EmulatedHosts::create(eo);
  if (!hosts.is_ok()) return fail(hosts.status().message());
  const int64_t workers = a.sites * a.per_site;
  for (const auto& key : a.models) {
    const ModelCase& m = model_cases().at(key);
    std::map<std::string, Measured> wire;
    for (const auto& topo : a.topologies) {
      auto w = run_case(a, m, topo, hosts->get(), dir + "/" + m.label + "_" + topo);
      if (!w.is_ok()) return fail(w.status().message());
      wire[topo] = *w;
    }
    for (const auto& topo : a.topologies) {
      const Measured& w = wire[topo];
      const double S = static_cast<double>(w.model_bytes);
      const double analytic = static_cast<double>(a.sites + w.coordinator_children) * S;
      // The busiest link sets the wire's share of the round: a sync round sends
      // the model down and the updates up one after the other, so both
      // directions of a link add up.
      double wire_s = 0;
      std::string bottleneck;
      json per_link = json::object();
      for (const auto& [name, b] : w.links) {
        const double mbit = name == "coord" ? a.coordinator_mbit : a.host_mbit;
        const double t = (b.rx + b.tx) * 8.0 / (mbit * 1e6);
        per_link[name] = {{"to_node_bytes", b.tx}, {"from_node_bytes", b.rx}, {"seconds", t}};
        if (t > wire_s) {
          wire_s = t;
          bottleneck = name;
        }
      }
      const json params = {{"model", m.label},
                           {"topology", topo},
                           {"workers", workers},
                           {"hosts", a.sites},
                           {"coordinator_children", w.coordinator_children},
                           {"steps", a.steps},
                           {"measured_rounds", a.rounds - 1},
                           {"model_bytes", w.model_bytes},
                           {"coordinator_mbit", a.coordinator_mbit},
                           {"host_mbit", a.host_mbit}};
      BenchRecord bytes{"wire", topo + "_coordinator_link_bytes", params};
      bytes.value = coordinator_bytes(w);
      bytes.unit = "bytes";
      bytes.baseline = "analytic_(H+C)S";
      bytes.baseline_value = analytic;
      bytes.higher_is_better = false;
      // The reference's model on the C edges that cross the coordinator's
      // link: 2·E·S (for the flat tree also its flat (E + L·h)·S, E = L = W,
      // h = 1). It counts the model once per edge; Flight sends it once per host.
      bytes.extra = {
          {"links", per_link},
          {"reference_2ES_bytes", 2.0 * static_cast<double>(w.coordinator_children) * S}};
      emit_bench(bytes);
      BenchRecord time{"wire", topo + "_round_time", params};
      time.value = w.round_s;
      time.unit = "s";
      time.baseline = "link_limited_ideal";
      time.baseline_value = wire_s + w.compute_path_s;
      time.higher_is_better = false;
      time.extra = {{"bottleneck_link", bottleneck},
                    {"bottleneck_seconds", wire_s},
                    {"compute_path_seconds", w.compute_path_s},
                    {"train_seconds_max", w.train_max_s},
                    {"rounds_s", w.rounds_s},
                    {"load_average", {w.load_before, w.load_after}}};
      emit_bench(time);
    }
    if (!wire.count("flat")) continue;
    for (const auto& topo : a.topologies) {
      if (topo == "flat") continue;
      const double flat_bytes = coordinator_bytes(wire["flat"]);
      BenchRecord red{
          "wire", "coordinator_bytes_saved_by_hierarchy", {{"model", m.label}, {"topology", topo}}};
      red.value = flat_bytes > 0 ? 1.0 - coordinator_bytes(wire[topo]) / flat_bytes : 0;
      red.unit = "fraction";
      emit_bench(red);
      BenchRecord speed{"wire", "hierarchy_speedup", {{"model", m.label}, {"topology", topo}}};
      speed.value = wire[topo].round_s > 0 ? wire["flat"].round_s / wire[topo].round_s : 0;
      speed.unit = "x";
      speed.extra = {{"flat_round_s", wire["flat"].round_s},
                     {topo + "_round_s", wire[topo].round_s}};
      emit_bench(speed);
    }
  }
  return kExitOk;
}

FLIGHT_BENCH(bench_wire,
             {"wire",
              "Flat vs 3-tier vs 4-tier rounds over emulated hosts with capped links: bytes per "
              "link and "
              "round time vs the link-limited ideal (needs root)",
              [](CLI::App* app) {
                auto a = std::make_shared<WireArgs>();
                app->add_option("--sites", a->sites, "sites = emulated hosts")
                    ->capture_default_str()
                    ->check(CLI::Range(1, 64));
                app->add_option("--per-site", a->per_site, "workers per site")
                    ->capture_default_str()
                    ->check(CLI::Range(1, 1000));
                app->add_option("--regions", a->regions, "regions of sites (4tier)")
                    ->capture_default_str()
                    ->check(CLI::Range(1, 64));
                app->add_option("--steps", a->steps, "SGD steps per worker and round")
                    ->capture_default_str();
                app->add_option("--rounds", a->rounds,
                                "rounds per run; round 1 warms up, the rest are measured")
                    ->capture_default_str()
                    ->check(CLI::Range(2, 100));
                app->add_option("--coordinator-mbit", a->coordinator_mbit,
                                "coordinator link cap, Mbit/s each way")
                    ->capture_default_str();
                app->add_option("--host-mbit", a->host_mbit, "every site link's cap, Mbit/s")
                    ->capture_default_str();
                app->add_option("--models", a->models, "1m and/or 10m")
                    ->delimiter(',')
                    ->capture_default_str();
                app->add_option("--topologies", a->topologies, "flat, 3tier and/or 4tier")
                    ->delimiter(',')
                    ->capture_default_str();
                app->add_option("--dir", a->dir, "keep the runs here (default: a temp dir)");
                return [a] { return bench(*a); };
              }});

}  // namespace
}  // namespace flight::bench
