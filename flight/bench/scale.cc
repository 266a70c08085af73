// `flight bench scale` and `flight bench hierarchy`: the paper's scaling (A1)
// and hierarchy (A2) experiments, on this machine.
//
// bench scale — seconds of one fedsgd round, params {workers, topology: flat |
//   3tier, model: tiny | mlp | mlp10m (784-2048-2048-2048-10, 10.0M params) |
//   lenet5 | resnet18, control: local | rest, mode}, by --mode:
//     data      case `round` (the headline): debug: true — no training, but a
//               real round's bytes move: every worker fetches the global model
//               and puts its own perturbed copy, every aggregating node
//               fetches each child's update and folds it.
//     dispatch  case `dispatch_round`: debug: dispatch — control messages
//               only; workers hand back the global model's Ref, no weight moves.
//     train     case `train_round`: no debug; one real training step per
//               worker (batch 8). No baseline (training has no ideal here).
//   Extra fields: peak_rss_mb (VmHWM of the coordinator process), tasks,
//   tasks_per_s, per_task_us (round wall time / tasks) next to noop_task_us
//   (a bare LocalInvoker's no-op task), first_round_s (the cold first round), run_s (the whole
//   3-round run incl. setup), and the measured round's data plane from the
//   Stores' own counters (transport::StoreStats, summed over the process's
//   stores: bytes handed to / received from the connectors, not Ref sizes):
//   bytes_put, bytes_fetched, bytes_moved (their sum), puts, fetches,
//   cache_hits. Embedded runs give each tier its own memory connector
//   (workers, aggregators, coordinator), as separate processes would have, so
//   every child's update is fetched from its producer's connector; REST runs
//   report the coordinator process's counters only. Where issue 14 sets a
//   target the record carries target_s / target_rss_mb.
//   The measured round is the second of three (warm; the third evaluates). Every
//   configuration runs in a fresh child process (`/proc/self/exe bench scale
//   --one SPEC`), so peak RSS is per configuration. 3tier = coordinator ->
//   round(sqrt(W)) aggregators -> W workers. REST cases spawn a redis-server
//   (data plane), `flight serve` and two `flight endpoint`s (workers on `edge`,
//   aggregators on `agg`, 2 threads each) from this binary, and also report the
//   endpoints' peak RSS.
//   Baseline `ideal`: the same number of tasks through a bare LocalInvoker
//   running `noop` plus the same number of model folds at the fold's best
//   measured speed (distinct encoded children folded in place in runs of 8,
//   as an aggregating node folds them: child_fold.h), and (mode data) one
//   memcpy of the model per worker (the least a distinct update costs; timed
//   with every invoker thread copying at once), all
//   measured in this run: what the round would cost if the engine, invoker
//   and store added nothing. ratio = ideal / value.
//
// bench hierarchy — balanced trees of --leaves leaves (by_leaves) at each
//   height, one real round (one local step per worker, fedavg): bytes each task
//   put and fetched as counted by the run (tasks.csv / rounds.csv: every Ref a
//   task resolves or produces, i.e. what crosses the network when nodes are
//   separate machines), per tier and in total, next to the reference's
//   analytic model for the same tree (E edges, L leaves, height h, model bytes
//   S): flat FL moves (E + L·h)·S, hierarchical 2·E·S.
//   Cases: bytes_total (value = bytes put + fetched in the round; baseline =
//   the measured flat tree, height 1) and coordinator_ingress (bytes the
//   coordinator fetched from its children; baseline = flat; ratio = flat /
//   value; extra `reduction` = 1 - value / flat).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/ids.h"
#include "flight/base/process.h"
#include "flight/base/redis_server.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/engine/child_fold.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/task_process.h"
#include "flight/faas/functions.h"
#include "flight/faas/local_invoker.h"
#include "flight/learning/model.h"
#include "topology/topology.h"
#include "transport/codec.h"
#include "transport/store.h"

namespace flight::bench {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// ------------------------------------------------------------------ helpers

std::vector<std::string> parse_words(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& part : split(s, ',')) {
    std::string t = trim(part);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

int64_t aggregators_for(int64_t workers) {
  return std::max<int64_t>(1, std::llround(std::sqrt(static_cast<double>(workers))));
}

// Generated topology of a scale case.
StatusOr<topology::Topology> scale_topology(const std::string& kind, int64_t workers) {
  if (kind == "flat") return topology::generate::flat(static_cast<size_t>(workers));
  if (kind == "3tier") {
    return topology::generate::tiers({static_cast<size_t>(aggregators_for(workers))},
                                     static_cast<size_t>(workers), 0);
  }
  return invalid_argument("unknown topology '" + kind + "' (use flat or 3tier)");
}

// A bench model name as a model spec: the built-ins, and mlp10m.
json model_spec(const std::string& model) {
  if (model == "mlp10m") {
    return {{"name", "mlp"}, {"options", {{"hidden", {2048, 2048, 2048}}}}};
  }
  return {{"name", model}};
}

const char* case_of_mode(const std::string& mode) {
  if (mode == "data") return "round";
  if (mode == "dispatch") return "dispatch_round";
  return "train_round";
}

// The experiment config shared by every scale case (embedded defaults).
json scale_config(const std::string& model, const std::string& mode, const std::string& out_dir,
                  int64_t threads) {
  json cfg{
      {"name", "bench-scale"},
      {"seed", 1},
      {"model", model_spec(model)},
      // Constant-size data: the bench measures the framework, not the data.
      {"data",
       {{"dataset", "synthetic"}, {"synthetic_samples", 10000}, {"synthetic_test_samples", 100}}},
      {"strategy", {{"name", "fedsgd"}}},
      // Round 1 is cold (endpoints registering, job runtimes built), round 2
      // is the one measured, round 3 evaluates (the last round always does;
      // evaluation is not part of the measurement).
      {"rounds", 3},
      {"threads", threads},
      {"eval", {{"every", 3}, {"batch_size", 100}}},
      {"output", {{"dir", out_dir}, {"checkpoint_every", 0}, {"save_model", false}}}};
  if (mode == "data") cfg["debug"] = true;
  if (mode == "dispatch") cfg["debug"] = "dispatch";
  if (mode == "train") cfg["train"] = {{"batch_size", 8}, {"max_steps", 1}};
  return cfg;
}

// ------------------------------------------------------------------ scale: one case (child)

struct ScaleArgs {
  bool quick = false;
  std::string workers;                  // override of the W list
  std::string topologies;               // override: flat,3tier
  std::string models;                   // override: tiny,resnet18
  std::string controls;                 // override: local,rest
  std::string modes = "data,dispatch";  // data | dispatch | train (file comment)
  int64_t threads = 2;
  int64_t max_resnet = 2048;
  int64_t max_rest = 2048;
  double timeout_s = 900;
  std::string one;  // internal: run one case in this process, print its JSON
};

// Runs the case described by `spec` in this process; returns its figures.
StatusOr<json> run_scale_case(const json& spec, int64_t threads) {
  const int64_t workers = spec.at("workers").get<int64_t>();
  const std::string topo = spec.at("topology").get<std::string>();
  const std::string model = spec.at("model").get<std::string>();
  const std::string control = spec.at("control").get<std::string>();
  const std::string mode = spec.value("mode", "data");
  TempDir dir("flight-bench-scale");
  json cfg = scale_config(model, mode, dir.path() + "/run", threads);
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology t, scale_topology(topo, workers));
  const int64_t aggregators = static_cast<int64_t>(t.aggregators().size());
  std::vector<topology::Node> nodes = t.nodes();

  // REST: redis-server + flight serve + two endpoints, all children of this process.
  std::unique_ptr<RedisServer> redis;
  std::unique_ptr<Process> service;
  std::vector<std::unique_ptr<Process>> endpoints;
  if (control == "rest") {
    FLIGHT_ASSIGN_OR_RETURN(redis, RedisServer::start());
    const int redis_port = redis->port();
    const std::string token_file = dir.path() + "/token";
    { std::ofstream(token_file) << random_hex(32) << "\n"; }
    FLIGHT_ASSIGN_OR_RETURN(
        service, Process::spawn(self_command({"--log-level", "warn", "serve", "--port", "0",
                                              "--token-file", token_file, "--threads", "2"},
                                             dir.path() + "/serve.out")));
    FLIGHT_ASSIGN_OR_RETURN(std::string listening,
                            service->wait_for_line("listening on ", std::chrono::seconds(30)));
    const std::string url = trim(listening.substr(listening.find("listening on ") + 13));
    for (const char* name : {"edge", "agg"}) {
      FLIGHT_ASSIGN_OR_RETURN(auto ep, Process::spawn(self_command(
                                           {"--log-level", "warn", "endpoint", "--service", url,
                                            "--token-file", token_file, "--name", name, "--threads",
                                            std::to_string(threads), "--prefetch", "256"},
                                           dir.path() + "/endpoint-" + name + ".out")));
      endpoints.push_back(std::move(ep));
    }
    // Workers run on endpoint `edge`, aggregators on `agg`.
    for (auto& n : nodes) {
      if (n.is_worker()) n.endpoint = "edge";
      if (n.is_aggregator()) n.endpoint = "agg";
    }
    cfg["control"] = {{"rest", {{"url", url}, {"token_file", token_file}}}};
    cfg["data_plane"] = {
        {"connector", {{"kind", "redis"}, {"host", "127.0.0.1"}, {"port", redis_port}}}};
  } else {
    // A memory connector per tier: each child's update is fetched from its
    // producer's connector, as between processes (one Store would serve a
    // parent its children's updates from the cache of their puts).
    json connectors = json::object();
    for (const char* tier : {"workers", "aggregators", "coordinator"}) {
      connectors[tier] = {{"kind", "memory"}, {"name", std::string("scale-") + tier}};
    }
    for (auto& n : nodes) {
      n.connector = n.is_worker() ? "workers" : n.is_aggregator() ? "aggregators" : "coordinator";
    }
    cfg["data_plane"] = {{"connector", "coordinator"}, {"connectors", connectors}};
  }
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology placed,
                          topology::Topology::from_nodes(std::move(nodes), "bench-scale"));
  FLIGHT_RETURN_IF_ERROR(placed.save_yaml(dir.path() + "/topology.yaml"));
  cfg["topology"] = dir.path() + "/topology.yaml";

  FLIGHT_ASSIGN_OR_RETURN(engine::ExperimentConfig config,
                          engine::ExperimentConfig::from_json(cfg, "bench-scale", dir.path()));
  engine::RunOptions options;
  options.quiet = true;
  std::vector<engine::RoundRow> rows;
  std::vector<transport::StoreStats> stores;  // after each round
  options.on_round = [&](const engine::RoundRow& r) {
    rows.push_back(r);
    stores.push_back(engine::process_store_stats());
  };
  Stopwatch sw;
  FLIGHT_ASSIGN_OR_RETURN(engine::RunSummary summary, engine::run_experiment(config, options));
  const double run_s = sw.seconds();
  (void)summary;
  if (rows.size() < 2) return internal_error("the run reported fewer than 2 rounds");
  const engine::RoundRow& row = rows[1];
  const double round_s = row.end - row.start;
  const int64_t tasks = row.selected + aggregators;
  // The measured round's data plane: between the ends of rounds 1 and 2
  // (round 2's global-model put included; round 1 does not evaluate).
  const transport::StoreStats moved = stores[1] - stores[0];
  json out{{"round_s", round_s},
           {"bytes_put", moved.bytes_put},
           {"bytes_fetched", moved.bytes_fetched},
           {"puts", moved.puts},
           {"fetches", moved.fetches},
           {"cache_hits", moved.cache_hits},
           {"first_round_s", rows[0].end - rows[0].start},
           {"run_s", run_s},
           {"selected", row.selected},
           {"returned", row.returned},
           {"tasks", tasks},
           {"aggregators", aggregators},
           {"tasks_per_s", round_s > 0 ? static_cast<double>(tasks) / round_s : 0.0},
           {"coordinator_ingress", row.coordinator_ingress},
           {"peak_rss_mb", peak_rss_mib()}};
  if (!endpoints.empty()) {
    double sum = 0;
    for (const auto& e : endpoints) sum += std::max(0.0, peak_rss_mib(e->pid()));
    out["endpoints_peak_rss_mb"] = sum;
  }
  return out;
}

// ------------------------------------------------------------------ scale: baselines (parent)

// Seconds per task of a bare LocalInvoker running `noop` with `threads` threads.
double noop_task_seconds(int64_t threads) {
  faas::FunctionRegistry registry;
  faas::add_builtin_functions(registry);
  faas::LocalInvokerOptions lo;
  lo.threads = static_cast<size_t>(threads);
  auto inv = faas::make_local_invoker(lo, registry);
  const size_t n = 20000;
  std::vector<faas::TaskSpec> specs(n);
  for (auto& s : specs) {
    s.endpoint = "bench";
    s.function = "noop";
  }
  double best = 1e30;  // best of 3: the machine is shared
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<faas::TaskSpec> batch = specs;
    Stopwatch sw;
    auto handles = inv->submit_batch(std::move(batch));
    for (auto& h : handles) (void)h.wait();
    best = std::min(best, sw.seconds() / static_cast<double>(n));
  }
  (void)inv->close();
  return best;
}

// Seconds to fold one update of `model` into a fedsgd aggregation, at the
// best the engine's fold can do: distinct encoded children folded in place,
// in runs of the longest batch (child_fold.h), i.e. each child read once and
// the accumulator read and written once per run.
StatusOr<double> fold_seconds(const std::string& model) {
  FLIGHT_ASSIGN_OR_RETURN(auto spec, learning::ModelSpec::from_json(model_spec(model)));
  FLIGHT_ASSIGN_OR_RETURN(auto m, learning::make_model(spec));
  ParamSet state = m->state().clone();
  constexpr size_t kRun = engine::ChildFold::kMaxFoldBatch;
  std::vector<transport::Bytes> children;
  for (size_t j = 0; j < kRun; ++j) {
    for (size_t i = 0; i < state.size(); ++i) {
      if (at::isFloatingType(state[i].tensor.scalar_type())) state[i].tensor.add_(1e-3);
    }
    FLIGHT_ASSIGN_OR_RETURN(transport::Bytes b, transport::encode(state));
    children.push_back(std::move(b));
  }
  std::vector<const transport::Bytes*> batch;
  for (const auto& c : children) batch.push_back(&c);
  const std::vector<double> weights(kRun, 1.0);
  ParamSet acc = state.clone();
  transport::AccumulateOptions o;
  o.verify_checksum = false;  // the fetch checks it; `ideal` counts no fetch
  const int reps = state.numel() > 1000000 ? 1 : 200;
  double best = 1e30;  // best of 5 batches: the machine is shared
  for (int b = 0; b < 5; ++b) {
    Stopwatch sw;
    for (int i = 0; i < reps; ++i) {
      FLIGHT_RETURN_IF_ERROR(transport::accumulate_encoded(acc, batch, weights, o));
    }
    best = std::min(best, sw.seconds() / (reps * static_cast<double>(kRun)));
  }
  return best;
}

// Seconds per copy of one encoded model of `model` (memcpy) when `threads`
// threads copy at once, as the invoker's threads produce updates: the least a
// worker's distinct update costs to produce with the whole machine's memory
// bandwidth (one thread alone does not saturate it).
StatusOr<double> copy_seconds(const std::string& model, int64_t threads) {
  FLIGHT_ASSIGN_OR_RETURN(auto spec, learning::ModelSpec::from_json(model_spec(model)));
  FLIGHT_ASSIGN_OR_RETURN(auto m, learning::make_model(spec));
  FLIGHT_ASSIGN_OR_RETURN(uint64_t bytes, transport::encoded_size(m->state()));
  const auto n = static_cast<size_t>(std::max<int64_t>(threads, 1));
  std::vector<std::vector<char>> from(n, std::vector<char>(bytes, 1)), to(n);
  for (auto& t : to) t.assign(bytes, 0);  // touched: no page faults in the timed copies
  return best_of(5, [&] {
    Stopwatch sw;
    std::vector<std::thread> pool;
    for (size_t i = 1; i < n; ++i) {
      pool.emplace_back([&, i] { std::memcpy(to[i].data(), from[i].data(), bytes); });
    }
    std::memcpy(to[0].data(), from[0].data(), bytes);
    for (auto& t : pool) t.join();
    const double per_copy = sw.seconds() / static_cast<double>(n);
    for (const auto& t : to) {
      if (t[bytes / 2] != 1) return 1e300;  // keeps the copies observable
    }
    return per_copy;
  });
}

// Issue 14's targets for a case (embedded), as {target_s, target_rss_mb}.
json targets(int64_t workers, const std::string& model, const std::string& mode,
             const std::string& control) {
  if (control != "local") return json::object();
  if (model == "tiny" && workers == 10000 && mode == "data") {
    return {{"target_s", 2.0}, {"target_rss_mb", 1024}};
  }
  if (model == "tiny" && workers == 10000 && mode == "dispatch") return {{"target_s", 0.1}};
  if (model == "mlp10m" && workers == 2048 && mode == "data") {
    return {{"target_s", 15.0}, {"target_rss_mb", 2048}};
  }
  if (model == "resnet18" && workers == 2048 && mode == "data") {
    return {{"target_s", 30.0}, {"target_rss_mb", 2048}};
  }
  if (model == "mlp10m" && workers == 512 && mode == "train") return {{"target_rss_mb", 2048}};
  return json::object();
}

struct ScaleCase {
  int64_t workers;
  std::string topology, model, control, mode;
  json to_json() const {
    return {{"workers", workers},
            {"topology", topology},
            {"model", model},
            {"control", control},
            {"mode", mode}};
  }
};

int run_scale(const ScaleArgs& a) {
  if (!a.one.empty()) {
    json spec;
    try {
      spec = json::parse(a.one);
    } catch (const json::exception& e) {
      return usage_error(std::string("--one: not JSON: ") + e.what());
    }
    auto out = run_scale_case(spec, a.threads);
    if (!out.is_ok()) return fail("bench scale " + a.one + ": " + out.status().message());
    std::cout << out->dump() << std::endl;
    return kExitOk;
  }
  if (a.threads < 1) return usage_error("--threads must be >= 1");

  std::vector<int64_t> ws = {2, 8, 32, 128, 512, 2048, 10000, 100000};
  std::vector<std::string> topologies = {"flat", "3tier"};
  std::vector<std::string> models = {"tiny", "resnet18"};
  std::vector<std::string> controls = {"local", "rest"};
  if (a.quick) {
    ws = {8, 512, 10000};
    controls = {"local"};
  }
  if (!a.workers.empty() && !parse_positive_ints(a.workers, &ws)) {
    return usage_error("--workers must be a comma-separated list of positive integers");
  }
  if (!a.topologies.empty()) topologies = parse_words(a.topologies);
  if (!a.models.empty()) models = parse_words(a.models);
  if (!a.controls.empty()) controls = parse_words(a.controls);
  for (const auto& t : topologies) {
    if (t != "flat" && t != "3tier") return usage_error("--topologies: unknown '" + t + "'");
  }
  for (const auto& m : models) {
    if (m != "tiny" && m != "resnet18" && m != "lenet5" && m != "mlp" && m != "mlp10m") {
      return usage_error("--models: unknown '" + m + "' (tiny, mlp, mlp10m, lenet5, resnet18)");
    }
  }
  for (const auto& c : controls) {
    if (c != "local" && c != "rest") return usage_error("--controls: unknown '" + c + "'");
  }
  const std::vector<std::string> modes = parse_words(a.modes);
  for (const auto& m : modes) {
    if (m != "data" && m != "dispatch" && m != "train") {
      return usage_error("--mode: unknown '" + m + "' (data, dispatch, train)");
    }
  }

  std::vector<ScaleCase> cases;
  for (const auto& control : controls) {
    for (const auto& model : models) {
      for (int64_t w : ws) {
        if (model != "tiny" && w > a.max_resnet) continue;
        if (control == "rest" && w > a.max_rest) continue;
        if (a.quick && model != "tiny" && w > 32) continue;
        for (const auto& mode : modes) {
          for (const auto& topo : topologies) cases.push_back({w, topo, model, control, mode});
        }
      }
    }
  }
  if (a.quick && std::find(models.begin(), models.end(), "resnet18") != models.end()) {
    for (const auto& mode : modes) cases.push_back({32, "3tier", "resnet18", "local", mode});
  }

  // Baselines, measured once in this run.
  const double noop_s = noop_task_seconds(a.threads);
  std::map<std::string, double> fold_s, copy_s;
  for (const auto& m : models) {
    auto f = fold_seconds(m);
    if (!f.is_ok())
      return fail("bench scale: fold baseline for " + m + ": " + f.status().message());
    fold_s[m] = *f;
    auto c = copy_seconds(m, a.threads);
    if (!c.is_ok())
      return fail("bench scale: copy baseline for " + m + ": " + c.status().message());
    copy_s[m] = *c;
  }

  TempDir dir("flight-bench-scale-parent");
  std::map<std::string, double> local_round;  // "W/topology/model/mode" -> seconds
  int failures = 0;
  for (const auto& c : cases) {
    const std::string out = dir.path() + "/case.out";
    auto child =
        Process::spawn(self_command({"--log-level", "warn", "bench", "scale", "--threads",
                                     std::to_string(a.threads), "--one", c.to_json().dump()},
                                    out));
    if (!child.is_ok()) return fail("bench scale: " + child.status().message());
    // -1: timed out (the child is then stopped).
    const int rc =
        (*child)
            ->wait_for(std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1e3)))
            .value_or(-1);
    (*child)->terminate();
    json got;
    std::string text = read_text_file(out);
    auto nl = text.rfind('{');
    if (rc == 0 && nl != std::string::npos) {
      try {
        got = json::parse(text.substr(nl));
      } catch (const json::exception&) {
        got = nullptr;
      }
    }
    if (!got.is_object()) {
      ++failures;
      std::string err = trim(read_text_file(out + ".err"));
      if (err.size() > 400) err = err.substr(err.size() - 400);
      std::cerr << "flight bench scale: case " << c.to_json().dump() << " failed ("
                << (rc == -1 ? "timed out after " + std::to_string(a.timeout_s) + " s"
                             : "exit " + std::to_string(rc))
                << "): " << err << std::endl;
      continue;
    }
    const double round_s = got.at("round_s").get<double>();
    const int64_t tasks = got.at("tasks").get<int64_t>();
    BenchRecord r;
    r.bench = "scale";
    r.case_name = case_of_mode(c.mode);
    r.params = {{"workers", c.workers},
                {"topology", c.topology},
                {"model", c.model},
                {"control", c.control},
                {"mode", c.mode}};
    r.value = round_s;
    r.unit = "s";
    r.higher_is_better = false;
    if (c.mode != "train") {
      r.baseline = "ideal";
      // Every task at bare-invoker cost, every child update folded once and,
      // with data moving, every worker's update copied once.
      r.baseline_value =
          static_cast<double>(tasks) * (noop_s + fold_s[c.model]) +
          (c.mode == "data"
               ? static_cast<double>(got.at("selected").get<int64_t>()) * copy_s[c.model]
               : 0.0);
    }
    r.extra = {{"peak_rss_mb", got.at("peak_rss_mb")},    {"tasks", tasks},
               {"tasks_per_s", got.at("tasks_per_s")},    {"selected", got.at("selected")},
               {"returned", got.at("returned")},          {"run_s", got.at("run_s")},
               {"first_round_s", got.at("first_round_s")}};
    for (const char* k : {"bytes_put", "bytes_fetched", "puts", "fetches", "cache_hits"}) {
      r.extra[k] = got.at(k);
    }
    // Engine cost per task of the round (all threads, wall): a dispatch round
    // at 10,000 workers is mostly this; the bare invoker's no-op beside it.
    r.extra["per_task_us"] = round_s * 1e6 / static_cast<double>(std::max<int64_t>(tasks, 1));
    r.extra["noop_task_us"] = noop_s * 1e6;
    r.extra["bytes_moved"] =
        got.at("bytes_put").get<uint64_t>() + got.at("bytes_fetched").get<uint64_t>();
    if (got.contains("endpoints_peak_rss_mb")) {
      r.extra["endpoints_peak_rss_mb"] = got["endpoints_peak_rss_mb"];
    }
    const std::string key =
        std::to_string(c.workers) + "/" + c.topology + "/" + c.model + "/" + c.mode;
    if (c.control == "local") local_round[key] = round_s;
    if (c.control == "rest" && local_round.count(key)) {
      r.extra["local_round_s"] = local_round[key];
    }
    r.extra.update(targets(c.workers, c.model, c.mode, c.control));
    emit_bench(r);
  }
  return failures == 0 ? kExitOk : kExitFailure;
}

// ------------------------------------------------------------------ hierarchy

struct HierarchyArgs {
  int64_t leaves = 256;
  std::string heights = "1,2,4,8";
  std::string model = "lenet5";
  int64_t threads = 2;
};

struct TierBytes {
  uint64_t put = 0, fetched = 0;
};

// Per-tier bytes from a run's tasks.csv (columns by header name).
StatusOr<std::map<int64_t, TierBytes>> tier_bytes(const std::string& tasks_csv,
                                                  uint64_t* model_bytes) {
  std::ifstream in(tasks_csv);
  if (!in) return not_found("cannot read '" + tasks_csv + "'");
  std::string line;
  std::getline(in, line);
  auto header = split(line, ',');
  auto col = [&](const std::string& name) -> int {
    for (size_t i = 0; i < header.size(); ++i) {
      if (trim(header[i]) == name) return static_cast<int>(i);
    }
    return -1;
  };
  const int tier = col("tier"), put = col("bytes_put"), fetched = col("bytes_fetched"),
            kind = col("kind");
  if (tier < 0 || put < 0 || fetched < 0 || kind < 0) {
    return data_loss("'" + tasks_csv + "' lacks tier/kind/bytes_put/bytes_fetched columns");
  }
  std::map<int64_t, TierBytes> out;
  while (std::getline(in, line)) {
    auto cells = split(line, ',');  // no field of these rows holds a comma
    const size_t need = static_cast<size_t>(std::max({tier, put, fetched, kind})) + 1;
    if (cells.size() < need) continue;
    TierBytes& t = out[std::stoll(cells[static_cast<size_t>(tier)])];
    t.put += std::stoull(cells[static_cast<size_t>(put)]);
    const uint64_t f = std::stoull(cells[static_cast<size_t>(fetched)]);
    t.fetched += f;
    if (cells[static_cast<size_t>(kind)] == "train") *model_bytes = f;  // the global model
  }
  return out;
}

struct HierarchyResult {
  int64_t height = 0, edges = 0, leaves = 0;
  uint64_t model_bytes = 0, put = 0, fetched = 0, ingress = 0;
  std::map<int64_t, TierBytes> tiers;
  double round_s = 0;
};

StatusOr<HierarchyResult> run_hierarchy_case(const HierarchyArgs& a, int64_t height) {
  TempDir dir("flight-bench-hierarchy");
  topology::Topology t =
      topology::generate::by_leaves(static_cast<size_t>(a.leaves), static_cast<size_t>(height));
  json cfg{
      {"name", "bench-hierarchy"},
      {"seed", 1},
      {"topology", {{"generate", "by_leaves"}, {"leaves", a.leaves}, {"height", height}}},
      {"model", {{"name", a.model}}},
      {"data",
       {{"dataset", "synthetic"},
        {"synthetic_samples", std::max<int64_t>(1024, 8 * a.leaves)},
        {"synthetic_test_samples", 100}}},
      // One real local step per worker: workers put real updates.
      {"train", {{"batch_size", 8}, {"max_steps", 1}}},
      {"strategy", {{"name", "fedavg"}}},
      {"rounds", 1},
      {"threads", a.threads},
      {"eval", {{"batch_size", 100}}},
      {"output", {{"dir", dir.path() + "/run"}, {"checkpoint_every", 0}, {"save_model", false}}}};
  FLIGHT_ASSIGN_OR_RETURN(engine::ExperimentConfig config,
                          engine::ExperimentConfig::from_json(cfg, "bench-hierarchy", dir.path()));
  engine::RunOptions options;
  options.quiet = true;
  engine::RoundRow row;
  options.on_round = [&](const engine::RoundRow& r) { row = r; };
  FLIGHT_ASSIGN_OR_RETURN(auto summary, engine::run_experiment(config, options));
  HierarchyResult h;
  h.height = static_cast<int64_t>(t.height());
  h.edges = static_cast<int64_t>(t.size()) - 1;
  h.leaves = static_cast<int64_t>(t.workers().size());
  h.put = row.bytes_put;
  h.fetched = row.bytes_fetched;
  h.ingress = row.coordinator_ingress;
  h.round_s = row.end - row.start;
  FLIGHT_ASSIGN_OR_RETURN(h.tiers, tier_bytes(summary.output_dir + "/tasks.csv", &h.model_bytes));
  return h;
}

int run_hierarchy(const HierarchyArgs& a) {
  std::vector<int64_t> heights;
  if (!parse_positive_ints(a.heights, &heights)) {
    return usage_error("--heights must be a comma-separated list of positive integers");
  }
  if (a.leaves < 1) return usage_error("--leaves must be >= 1");
  // The flat tree (height 1) is the baseline of every case.
  auto flat = run_hierarchy_case(a, 1);
  if (!flat.is_ok()) return fail("bench hierarchy: flat: " + flat.status().message());
  for (int64_t height : heights) {
    StatusOr<HierarchyResult> got = height == 1 ? flat : run_hierarchy_case(a, height);
    if (!got.is_ok()) {
      return fail("bench hierarchy: height " + std::to_string(height) + ": " +
                  got.status().message());
    }
    const HierarchyResult& h = *got;
    const double s = static_cast<double>(h.model_bytes);
    const double e = static_cast<double>(h.edges), l = static_cast<double>(h.leaves),
                 ht = static_cast<double>(h.height);
    const double analytic_flat = (e + l * ht) * s, analytic_hier = 2 * e * s;
    json tiers = json::array();
    for (const auto& [tier, b] : h.tiers) {
      tiers.push_back({{"tier", tier}, {"put", b.put}, {"fetched", b.fetched}});
    }
    tiers.push_back({{"tier", 0}, {"put", 0}, {"fetched", h.ingress}});  // the coordinator
    const json params{{"height", height}, {"leaves", a.leaves}, {"model", a.model}};
    {
      BenchRecord r;
      r.bench = "hierarchy";
      r.case_name = "bytes_total";
      r.params = params;
      r.value = static_cast<double>(h.put + h.fetched);
      r.unit = "bytes";
      r.baseline = "flat_measured";
      r.baseline_value = static_cast<double>(flat->put + flat->fetched);
      r.higher_is_better = false;
      r.extra = {{"bytes_put", h.put},
                 {"bytes_fetched", h.fetched},
                 {"per_tier", tiers},
                 {"model_bytes", h.model_bytes},
                 {"edges", h.edges},
                 {"tree_height", h.height},
                 {"transfers", s > 0 ? static_cast<double>(h.fetched) / s : 0.0},
                 {"analytic_flat_bytes", analytic_flat},
                 {"analytic_hier_bytes", analytic_hier},
                 {"analytic_reduction", analytic_flat > 0 ? 1 - analytic_hier / analytic_flat : 0},
                 {"round_s", h.round_s}};
      emit_bench(r);
    }
    {
      BenchRecord r;
      r.bench = "hierarchy";
      r.case_name = "coordinator_ingress";
      r.params = params;
      r.value = static_cast<double>(h.ingress);
      r.unit = "bytes";
      r.baseline = "flat";
      r.baseline_value = static_cast<double>(flat->ingress);
      r.higher_is_better = false;
      r.extra = {{"reduction", flat->ingress > 0 ? 1.0 - static_cast<double>(h.ingress) /
                                                             static_cast<double>(flat->ingress)
                                                 : 0.0},
                 {"coordinator_children", s > 0 ? static_cast<double>(h.ingress) / s : 0.0},
                 {"target_reduction", 0.6}};
      emit_bench(r);
    }
  }
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(
    bench_scale,
    {"scale",
     "One round at 2..100,000 virtual workers (no training with data moving; dispatch only; "
     "one real step): round time, tasks/s, bytes moved (store counters), "
     "peak RSS (embedded and REST + redis)",
     [](CLI::App* app) {
       auto a = std::make_shared<ScaleArgs>();
       app->add_flag("--quick", a->quick,
                     "A small subset (tiny at 8, 512, 10000 workers; resnet18 at 8 "
                     "and 32; embedded only)");
       app->add_option("--workers", a->workers,
                       "Worker counts (default 2,8,32,128,512,2048,10000,100000)");
       app->add_option("--topologies", a->topologies, "flat,3tier (default both)");
       app->add_option("--models", a->models,
                       "tiny,mlp,mlp10m,lenet5,resnet18 (default tiny,resnet18)");
       app->add_option("--controls", a->controls, "local,rest (default both)");
       app->add_option("--mode", a->modes,
                       "data (no training, a real round's bytes move: the headline), "
                       "dispatch (control messages only), train (one real step per worker)")
           ->capture_default_str();
       app->add_option("--threads", a->threads, "Embedded invoker / endpoint threads")
           ->capture_default_str();
       app->add_option("--max-resnet-workers", a->max_resnet,
                       "Largest W for models other than tiny")
           ->capture_default_str();
       app->add_option("--max-rest-workers", a->max_rest, "Largest W over REST")
           ->capture_default_str();
       app->add_option("--timeout-s", a->timeout_s, "Per-case time limit")->capture_default_str();
       app->add_option("--one", a->one, "(internal) run one case given as JSON")->group("");
       return [a] { return run_scale(*a); };
     }});

FLIGHT_BENCH(
    bench_hierarchy,
    {"hierarchy",
     "Bytes moved per tier and coordinator ingress on balanced trees of 256 leaves, "
     "against the flat tree and the reference's analytic model",
     [](CLI::App* app) {
       auto a = std::make_shared<HierarchyArgs>();
       app->add_option("--leaves", a->leaves, "Leaves of every tree")->capture_default_str();
       app->add_option("--heights", a->heights, "Tree heights")->capture_default_str();
       app->add_option("--model", a->model, "Model (lenet5, mlp, tiny, ...)")
           ->capture_default_str();
       app->add_option("--threads", a->threads, "Embedded invoker threads")->capture_default_str();
       return [a] { return run_hierarchy(*a); };
     }});

}  // namespace flight::bench
