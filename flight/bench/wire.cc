// `flight bench wire`: the hierarchy measured on the wire. The same real round
// (every worker takes --steps SGD steps) over emulated hosts — one network
// namespace per host behind a tbf-capped veth (flight/deploy/emulated_hosts.h)
// — for a flat and a 3-tier topology over the same workers (--sites sites ×
// --per-site workers, one site per host), for a ~1M and a ~10M parameter
// model. Weights travel over `tcp` connectors bound inside the namespaces, so
// every byte that crosses a link is counted by the interfaces themselves
// (/sys/class/net/*/statistics, read in the bridge's namespace).
//
// Cases per model and topology:
//   coordinator_link_bytes  bytes both ways on the coordinator's link in the
//                           measured round; baseline: the analytic model
//                           (flat (H + W)·S, hierarchical 2·H·S; H hosts, W
//                           workers, S encoded model bytes); ratio = analytic / value
//   round_time              the measured round's wall time (evaluation excluded);
//                           baseline: the link-limited ideal = the busiest link's
//                           bytes (both ways) / its rate + the longest compute
//                           path (the busiest host's training and aggregation
//                           time in that round, from tasks.csv); ratio = ideal / value
// and per model: hierarchical vs flat coordinator bytes and round time.
// Round 2 of 2 is measured (round 1 warms the hosts: data set, model, sockets).
// Needs root.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "flight/bench/record.h"
#include "flight/base/process.h"
#include "flight/bench/registry.h"
#include "flight/deploy/emulated_hosts.h"
#include "flight/deploy/launcher.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/learning/model.h"
#include "transport/codec.h"

namespace flight::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct WireArgs {
  int64_t sites = 4;
  int64_t per_site = 8;
  int64_t steps = 2;
  double coordinator_mbit = 1000;
  double host_mbit = 100;
  std::vector<std::string> models = {"1m", "10m"};
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
  double round_s = 0;
  double train_max_s = 0;
  double compute_path_s = 0;  // the busiest host's training + aggregation in the round
  uint64_t model_bytes = 0;
  std::map<std::string, deploy::LinkBytes> links;  // the measured round's bytes per link
};

StatusOr<engine::ExperimentConfig> make_config(const WireArgs& a, const ModelCase& m,
                                               bool hierarchical, const std::string& out) {
  const int64_t workers = a.sites * a.per_site;
  json topo = hierarchical ? json{{"generate", "tiers"},
                                  {"aggregators", json::array({a.sites})},
                                  {"workers", workers}}
                           : json{{"generate", "flat"}, {"workers", workers}};
  json j = {{"name", "wire"},
            {"seed", 5},
            {"topology", topo},
            {"model", {{"name", "mlp"}, {"options", {{"hidden", m.hidden}}}}},
            {"data", {{"dataset", "fashion_mnist"}, {"partition", {{"method", "iid"}}}}},
            {"train", {{"epochs", 1}, {"batch_size", 32}, {"lr", 0.05}, {"max_steps", a.steps}}},
            {"strategy", {{"name", "fedavg"}, {"participation", 1.0}}},
            {"rounds", 2},
            {"threads", 2},
            {"eval", {{"every", 1000}}},
            {"output", {{"dir", out}, {"checkpoint_every", 0}, {"save_model", false}}}};
  return engine::ExperimentConfig::from_json(j, "bench wire", ".");
}

double round_seconds(const engine::RoundRow& r) { return r.end - r.start - r.eval_seconds; }

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

StatusOr<Measured> run_case(const WireArgs& a, const ModelCase& m, bool hierarchical,
                            deploy::EmulatedHosts* hosts, const std::string& out) {
  FLIGHT_ASSIGN_OR_RETURN(auto config, make_config(a, m, hierarchical, out));
  deploy::DeployOptions d;
  d.launcher = hosts ? "processes" : "embedded";
  d.hosts = a.sites;
  d.placement = "subtree";
  d.threads = 1;
  d.emulate = hosts != nullptr;
  d.register_timeout_s = 300;
  Measured meas;
  std::map<std::string, deploy::LinkBytes> before;
  engine::RunOptions run;
  run.quiet = true;
  Status link_error = Status::ok();
  run.on_round = [&](const engine::RoundRow& row) {
    if (!hosts) return;
    auto now = hosts->link_bytes();
    if (!now.is_ok()) {
      link_error = now.status();
      return;
    }
    if (row.round == 1) before = *now;
    if (row.round == 2) {
      for (const auto& [name, b] : *now) {
        meas.links[name] = {b.rx - before[name].rx, b.tx - before[name].tx};
      }
    }
  };
  FLIGHT_ASSIGN_OR_RETURN(auto summary, deploy::run_deployed(config, run, d, hosts));
  FLIGHT_RETURN_IF_ERROR(link_error);
  FLIGHT_ASSIGN_OR_RETURN(auto rows, engine::read_rounds_csv(summary.output_dir + "/rounds.csv"));
  if (rows.size() != 2) return internal_error("bench wire: expected 2 rounds in " + out);
  meas.round_s = round_seconds(rows[1]);
  meas.train_max_s = rows[1].train_seconds_max;
  FLIGHT_ASSIGN_OR_RETURN(meas.compute_path_s, compute_path(summary.output_dir + "/tasks.csv", 2));
  // S: the model as the codec puts it on the wire (header + aligned tensors).
  FLIGHT_ASSIGN_OR_RETURN(auto model, learning::make_model(config.model));
  FLIGHT_ASSIGN_OR_RETURN(meas.model_bytes, transport::encoded_size(model->state()));
  return meas;
}

int bench(const WireArgs& a) {
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
    auto mc = model_cases().find(key);
    if (mc == model_cases().end()) return usage_error("bench wire: --models takes 1m and/or 10m");
    const ModelCase& m = mc->second;
    std::map<bool, Measured> wire;
    for (bool hier : {false, true}) {
      const std::string tag = m.label + (hier ? "_3tier" : "_flat");
      auto w = run_case(a, m, hier, hosts->get(), dir + "/" + tag);
      if (!w.is_ok()) return fail(w.status().message());
      wire[hier] = *w;
    }
    for (bool hier : {false, true}) {
      const Measured& w = wire[hier];
      const double S = static_cast<double>(w.model_bytes);
      const double analytic = hier ? 2.0 * a.sites * S : (a.sites + workers) * S;
      const auto& coord = w.links.count("coord") ? w.links.at("coord") : deploy::LinkBytes{};
      const double coord_bytes = static_cast<double>(coord.rx + coord.tx);
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
                           {"topology", hier ? "3tier" : "flat"},
                           {"workers", workers},
                           {"hosts", a.sites},
                           {"steps", a.steps},
                           {"model_bytes", w.model_bytes},
                           {"coordinator_mbit", a.coordinator_mbit},
                           {"host_mbit", a.host_mbit}};
      BenchRecord bytes{"wire", std::string(hier ? "3tier" : "flat") + "_coordinator_link_bytes",
                        params};
      bytes.value = coord_bytes;
      bytes.unit = "bytes";
      bytes.baseline = hier ? "analytic_2HS" : "analytic_(H+W)S";
      bytes.baseline_value = analytic;
      bytes.higher_is_better = false;
      bytes.extra = {{"links", per_link}};
      emit_bench(bytes);
      BenchRecord time{"wire", std::string(hier ? "3tier" : "flat") + "_round_time", params};
      time.value = w.round_s;
      time.unit = "s";
      time.baseline = "link_limited_ideal";
      time.baseline_value = wire_s + w.compute_path_s;
      time.higher_is_better = false;
      time.extra = {{"bottleneck_link", bottleneck},
                    {"bottleneck_seconds", wire_s},
                    {"compute_path_seconds", w.compute_path_s},
                    {"train_seconds_max", w.train_max_s}};
      emit_bench(time);
    }
    const auto coord_total = [&](bool hier) {
      const auto& l = wire[hier].links;
      return l.count("coord") ? static_cast<double>(l.at("coord").rx + l.at("coord").tx) : 0.0;
    };
    BenchRecord red{"wire", "coordinator_bytes_saved_by_hierarchy", {{"model", m.label}}};
    red.value = coord_total(false) > 0 ? 1.0 - coord_total(true) / coord_total(false) : 0;
    red.unit = "fraction";
    emit_bench(red);
    BenchRecord speed{"wire", "hierarchy_speedup", {{"model", m.label}}};
    speed.value = wire[true].round_s > 0 ? wire[false].round_s / wire[true].round_s : 0;
    speed.unit = "x";
    speed.extra = {{"flat_round_s", wire[false].round_s}, {"3tier_round_s", wire[true].round_s}};
    emit_bench(speed);
  }
  return kExitOk;
}

FLIGHT_BENCH(bench_wire,
               {"wire",
                "Flat vs 3-tier rounds over emulated hosts with capped links: bytes per link and "
                "round time vs the link-limited ideal (needs root)",
                [](CLI::App* app) {
                  auto a = std::make_shared<WireArgs>();
                  app->add_option("--sites", a->sites, "sites = emulated hosts")
                      ->capture_default_str()
                      ->check(CLI::Range(1, 64));
                  app->add_option("--per-site", a->per_site, "workers per site")
                      ->capture_default_str()
                      ->check(CLI::Range(1, 1000));
                  app->add_option("--steps", a->steps, "SGD steps per worker and round")
                      ->capture_default_str();
                  app->add_option("--coordinator-mbit", a->coordinator_mbit,
                                  "coordinator link cap, Mbit/s each way")
                      ->capture_default_str();
                  app->add_option("--host-mbit", a->host_mbit, "every site link's cap, Mbit/s")
                      ->capture_default_str();
                  app->add_option("--models", a->models, "1m and/or 10m")->capture_default_str();
                  app->add_option("--dir", a->dir, "keep the runs here (default: a temp dir)");
                  return [a] { return bench(*a); };
                }});

}  // namespace
}  // namespace flight::bench
