// `flight bench async-vs-sync`: the Python reference's experiment A3. Twelve
// workers with sample-count skew (samples_alpha 10) and device speeds spread
// 1–4×, the same number of worker updates for every mode:
//   sync_fedavg         R synchronous rounds of all 12 workers;
//   async_fedasync      flat, fedasync with alpha = 1/12;
//   async_fedbuff       flat, fedbuff (buffer 4);
//   async_fedbuff_hier  3 aggregators × 4 workers, aggregators forward every 2
//                       updates, fedbuff (buffer 2) at the coordinator.
// Cases per mode: `makespan` (simulated seconds under `clock: virtual`, so a
// 2-core machine can stand in for 12 devices; baseline sync_fedavg, ratio =
// speed-up), `idle_fraction` (mean over workers of 1 − busy / makespan; max in
// an extra field) and `final_accuracy` (Fashion-MNIST test set).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <unistd.h>

#include "flight/base/strings.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/yaml_json.h"

namespace flight::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct AsyncBenchArgs {
  int64_t rounds = 5;
  std::string model = "mlp";
  std::string dir;
  bool keep = false;
};

// Speeds 1, 1/4 and evenly in between: device i is 1 + 3i/11 times slower.
double speed_of(int i) { return 1.0 / (1.0 + 3.0 * i / 11.0); }

std::string topology_yaml(bool hierarchical) {
  std::string y;
  if (!hierarchical) {
    y = "coordinator:\n  kind: coordinator\n  children: [";
    for (int i = 0; i < 12; ++i) y += (i ? ", " : "") + std::string("w") + std::to_string(i);
    y += "]\n";
  } else {
    y = "coordinator:\n  kind: coordinator\n  children: [site0, site1, site2]\n";
    for (int s = 0; s < 3; ++s) {
      y += "site" + std::to_string(s) + ":\n  kind: aggregator\n  children: [";
      for (int k = 0; k < 4; ++k)
        y += (k ? ", " : "") + std::string("w") + std::to_string(s + 3 * k);
      y += "]\n";
    }
  }
  for (int i = 0; i < 12; ++i) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "w%d: {kind: worker, speed: %.6f}\n", i, speed_of(i));
    y += buf;
  }
  return y;
}

struct ModeResult {
  double makespan = 0, idle_mean = 0, idle_max = 0, accuracy = 0, wall = 0;
};

StatusOr<ModeResult> run_mode(const AsyncBenchArgs& a, const std::string& mode) {
  const bool hier = mode == "async_fedbuff_hier";
  const std::string dir = a.dir + "/" + mode;
  fs::create_directories(dir);
  std::ofstream(dir + "/topology.yaml") << topology_yaml(hier);
  const int64_t updates = 12 * a.rounds;
  json c = {
      {"name", mode},
      {"seed", 1},
      {"topology", dir + "/topology.yaml"},
      {"model", {{"name", a.model}}},
      {"data",
       {{"dataset", "fashion_mnist"}, {"partition", {{"method", "iid"}, {"samples_alpha", 10.0}}}}},
      {"train", {{"epochs", 1}, {"batch_size", 32}, {"lr", 0.05}, {"momentum", 0.9}}},
      {"clock", "virtual"},
      {"output", {{"dir", dir + "/out"}, {"checkpoint_every", 0}, {"save_model", false}}}};
  if (mode == "sync_fedavg") {
    c["strategy"] = {{"name", "fedavg"}};
    c["rounds"] = a.rounds;
    c["eval"] = {{"every", a.rounds}};
  } else {
    c["mode"] = "async";
    c["async"] = {{"max_updates", updates}, {"eval_every", updates}, {"aggregator_buffer", 2}};
    if (mode == "async_fedasync") {
      c["strategy"] = {{"name", "fedasync"}, {"params", {{"alpha", 1.0 / 12.0}}}};
    } else {
      c["strategy"] = {{"name", "fedbuff"}, {"params", {{"buffer_size", hier ? 2 : 4}}}};
    }
  }
  FLIGHT_ASSIGN_OR_RETURN(auto config, engine::ExperimentConfig::from_json(c, mode, dir));
  engine::RunOptions opts;
  opts.quiet = true;
  FLIGHT_ASSIGN_OR_RETURN(auto summary, engine::run_experiment(config, opts));
  ModeResult r;
  r.makespan = summary.makespan_s;
  r.accuracy = summary.final_accuracy;
  r.wall = summary.seconds;
  std::ifstream in(summary.output_dir + "/workers.csv");
  std::string line;
  std::getline(in, line);
  int n = 0;
  while (std::getline(in, line)) {
    auto cells = split(line, ',');
    const double idle = std::stod(cells.back());
    r.idle_mean += idle;
    r.idle_max = std::max(r.idle_max, idle);
    ++n;
  }
  if (n > 0) r.idle_mean /= n;
  return r;
}

int bench(AsyncBenchArgs a) {
  if (a.dir.empty()) {
    a.dir =
        (fs::temp_directory_path() / ("flight-bench-async-" + std::to_string(getpid()))).string();
  }
  ModeResult sync;
  for (const std::string mode :
       {"sync_fedavg", "async_fedasync", "async_fedbuff", "async_fedbuff_hier"}) {
    auto r = run_mode(a, mode);
    if (!r.is_ok()) return fail(mode + ": " + r.status().message());
    if (mode == "sync_fedavg") sync = *r;
    const json params = {{"mode", mode},
                         {"workers", 12},
                         {"updates", 12 * a.rounds},
                         {"model", a.model},
                         {"clock", "virtual"}};
    BenchRecord makespan{"async-vs-sync", "makespan", params, r->makespan, "s"};
    makespan.baseline = "sync_fedavg";
    makespan.baseline_value = sync.makespan;
    makespan.higher_is_better = false;
    makespan.extra = {{"wall_s", r->wall}};
    emit_bench(makespan);
    BenchRecord idle{"async-vs-sync", "idle_fraction", params, r->idle_mean, "fraction"};
    idle.extra = {{"max", r->idle_max}, {"sync_fedavg", sync.idle_mean}};
    emit_bench(idle);
    BenchRecord acc{"async-vs-sync", "final_accuracy", params, r->accuracy, "accuracy"};
    acc.extra = {{"sync_fedavg", sync.accuracy}};
    emit_bench(acc);
  }
  if (!a.keep) {
    std::error_code ec;
    fs::remove_all(a.dir, ec);
  }
  return kExitOk;
}

FLIGHT_BENCH(
    bench_async,
    {"async-vs-sync",
     "Sync FedAvg vs async FedAsync / FedBuff / hierarchical FedBuff under stragglers "
     "(experiment A3)",
     [](CLI::App* app) {
       auto a = std::make_shared<AsyncBenchArgs>();
       app->add_option("--rounds", a->rounds,
                       "sync rounds; every mode merges 12 × rounds worker updates")
           ->capture_default_str()
           ->check(CLI::Range(1, 1000));
       app->add_option("--model", a->model, "model (mlp, lenet5, ...)")->capture_default_str();
       app->add_option("--dir", a->dir, "work directory (default: a temp dir)");
       app->add_flag("--keep", a->keep, "keep the runs' output directories");
       return [a] { return bench(*a); };
     }});

}  // namespace
}  // namespace flight::bench
