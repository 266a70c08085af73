// `flight bench scale` and `flight bench hierarchy`: the paper's scaling (A1)
// and hierarchy (A2) experiments, on this machine.
//
// bench scale — case `round`: seconds of one no-training (debug) fedsgd round,
//   params {workers, topology: flat | 3tier, model: tiny | resnet18,
//   control: local | rest}, extra fields peak_rss_mb (VmHWM of the coordinator
//   process), tasks, tasks_per_s, first_round_s (the cold first round),
//   run_s (the whole 3-round run incl. setup). The measured round is the
//   second of three (warm; the third evaluates). Every
//   configuration runs in a fresh child process (`/proc/self/exe bench scale
//   --one SPEC`), so peak RSS is per configuration. 3tier = coordinator ->
//   round(sqrt(W)) aggregators -> W workers. REST cases spawn a redis-server
//   (data plane), `flight serve` and two `flight endpoint`s (workers on `edge`,
//   aggregators on `agg`, 2 threads each) from this binary, and also report the
//   endpoints' peak RSS.
//   Baseline `ideal`: the same number of tasks through a bare LocalInvoker
//   running `noop` plus the same number of model folds at the measured fold
//   speed, both measured in this run: what the round would cost if the engine,
//   invoker and store added nothing per task. ratio = ideal / value.
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
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/faas/functions.h"
#include "flight/faas/local_invoker.h"
#include "flight/learning/model.h"
#include "topology/topology.h"

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

// The experiment config shared by every scale case (embedded defaults).
json scale_config(const std::string& model, const std::string& out_dir, int64_t threads) {
  return json{
      {"name", "bench-scale"},
      {"seed", 1},
      {"model", {{"name", model}}},
      // Constant-size data: the bench measures the framework, not the data.
      {"data",
       {{"dataset", "synthetic"}, {"synthetic_samples", 10000}, {"synthetic_test_samples", 100}}},
      {"strategy", {{"name", "fedsgd"}}},
      // Round 1 is cold (endpoints registering, job runtimes built), round 2
      // is the one measured, round 3 evaluates (the last round always does;
      // evaluation is not part of the measurement).
      {"rounds", 3},
      {"debug", "dispatch"},
      {"threads", threads},
      {"eval", {{"every", 3}, {"batch_size", 100}}},
      {"output", {{"dir", out_dir}, {"checkpoint_every", 0}, {"save_model", false}}}};
}

// ------------------------------------------------------------------ scale: one case (child)

struct ScaleArgs {
  bool quick = false;
  std::string workers;     // override of the W list
  std::string topologies;  // override: flat,3tier
  std::string models;      // override: tiny,resnet18
  std::string controls;    // override: local,rest
  // What a no-training worker does. Only `dispatch` exists today (debug: the
  // worker hands back the global model's Ref; nothing is fetched or put). The
  // data-moving mode (every worker gets the model and puts its own update)
  // joins here when the engine has it; then the default becomes both.
  std::string modes = "dispatch";
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
  TempDir dir("flight-bench-scale");
  json cfg = scale_config(model, dir.path() + "/run", threads);
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology t, scale_topology(topo, workers));
  const int64_t aggregators = static_cast<int64_t>(t.aggregators().size());

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
    std::vector<topology::Node> nodes = t.nodes();
    for (auto& n : nodes) {
      if (n.is_worker()) n.endpoint = "edge";
      if (n.is_aggregator()) n.endpoint = "agg";
    }
    FLIGHT_ASSIGN_OR_RETURN(topology::Topology with_endpoints,
                            topology::Topology::from_nodes(std::move(nodes), "bench-scale"));
    FLIGHT_RETURN_IF_ERROR(with_endpoints.save_yaml(dir.path() + "/topology.yaml"));
    cfg["topology"] = dir.path() + "/topology.yaml";
    cfg["control"] = {{"rest", {{"url", url}, {"token_file", token_file}}}};
    cfg["data_plane"] = {
        {"connector", {{"kind", "redis"}, {"host", "127.0.0.1"}, {"port", redis_port}}}};
  } else if (topo == "flat") {
    cfg["topology"] = {{"generate", "flat"}, {"workers", workers}};
  } else {
    cfg["topology"] = {{"generate", "tiers"},
                       {"aggregators", json::array({aggregators_for(workers)})},
                       {"workers", workers}};
  }

  FLIGHT_ASSIGN_OR_RETURN(engine::ExperimentConfig config,
                          engine::ExperimentConfig::from_json(cfg, "bench-scale", dir.path()));
  engine::RunOptions options;
  options.quiet = true;
  std::vector<engine::RoundRow> rows;
  options.on_round = [&](const engine::RoundRow& r) { rows.push_back(r); };
  Stopwatch sw;
  FLIGHT_ASSIGN_OR_RETURN(engine::RunSummary summary, engine::run_experiment(config, options));
  const double run_s = sw.seconds();
  (void)summary;
  if (rows.size() < 2) return internal_error("the run reported fewer than 2 rounds");
  const engine::RoundRow& row = rows[1];
  const double round_s = row.end - row.start;
  const int64_t tasks = row.selected + aggregators;
  json out{{"round_s", round_s},
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

// Seconds to fold one update of `model` into a fedsgd aggregation.
StatusOr<double> fold_seconds(const std::string& model) {
  learning::ModelSpec spec;
  spec.name = model;
  FLIGHT_ASSIGN_OR_RETURN(auto m, learning::make_model(spec));
  ParamSet state = m->state().clone();
  aggregators::StrategyOptions so;
  so.name = "fedsgd";
  FLIGHT_ASSIGN_OR_RETURN(auto strategy, aggregators::make_strategy(so));
  auto fold = strategy->begin();
  FLIGHT_RETURN_IF_ERROR(fold->accumulate(state, 1.0));  // first: allocation
  const int reps = state.numel() > 1000000 ? 4 : 1000;
  double best = 1e30;  // best of 5 batches: the machine is shared
  for (int b = 0; b < 5; ++b) {
    Stopwatch sw;
    for (int i = 0; i < reps; ++i) FLIGHT_RETURN_IF_ERROR(fold->accumulate(state, 1.0));
    best = std::min(best, sw.seconds() / reps);
  }
  return best;
}

struct ScaleCase {
  int64_t workers;
  std::string topology, model, control;
  json to_json() const {
    return {{"workers", workers}, {"topology", topology}, {"model", model}, {"control", control}};
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
    if (m != "tiny" && m != "resnet18" && m != "lenet5" && m != "mlp") {
      return usage_error("--models: unknown '" + m + "' (tiny, resnet18, lenet5, mlp)");
    }
  }
  for (const auto& c : controls) {
    if (c != "local" && c != "rest") return usage_error("--controls: unknown '" + c + "'");
  }
  for (const auto& m : parse_words(a.modes)) {
    if (m != "dispatch") {
      return usage_error("--mode: unknown '" + m +
                         "' (only 'dispatch' exists until the engine's data-moving "
                         "no-training mode lands)");
    }
  }

  std::vector<ScaleCase> cases;
  for (const auto& control : controls) {
    for (const auto& model : models) {
      for (int64_t w : ws) {
        if (model != "tiny" && w > a.max_resnet) continue;
        if (control == "rest" && w > a.max_rest) continue;
        if (a.quick && model != "tiny" && w > 32) continue;
        for (const auto& topo : topologies) cases.push_back({w, topo, model, control});
      }
    }
  }
  if (a.quick && std::find(models.begin(), models.end(), "resnet18") != models.end()) {
    cases.push_back({32, "3tier", "resnet18", "local"});
  }

  // Baselines, measured once in this run.
  const double noop_s = noop_task_seconds(a.threads);
  std::map<std::string, double> fold_s;
  for (const auto& m : models) {
    auto f = fold_seconds(m);
    if (!f.is_ok())
      return fail("bench scale: fold baseline for " + m + ": " + f.status().message());
    fold_s[m] = *f;
  }

  TempDir dir("flight-bench-scale-parent");
  std::map<std::string, double> local_round;  // "W/topology/model" -> seconds
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
    r.case_name = "round";
    r.params = {{"workers", c.workers},
                {"topology", c.topology},
                {"model", c.model},
                {"control", c.control},
                {"mode", "dispatch"}};
    r.value = round_s;
    r.unit = "s";
    r.baseline = "ideal";
    // Every task at bare-invoker cost, every child update folded once.
    r.baseline_value =
        static_cast<double>(tasks) * noop_s + static_cast<double>(tasks) * fold_s[c.model];
    r.higher_is_better = false;
    r.extra = {{"peak_rss_mb", got.at("peak_rss_mb")},    {"tasks", tasks},
               {"tasks_per_s", got.at("tasks_per_s")},    {"selected", got.at("selected")},
               {"returned", got.at("returned")},          {"run_s", got.at("run_s")},
               {"first_round_s", got.at("first_round_s")}};
    if (got.contains("endpoints_peak_rss_mb")) {
      r.extra["endpoints_peak_rss_mb"] = got["endpoints_peak_rss_mb"];
    }
    const std::string key = std::to_string(c.workers) + "/" + c.topology + "/" + c.model;
    if (c.control == "local") local_round[key] = round_s;
    if (c.control == "rest" && local_round.count(key)) {
      r.extra["local_round_s"] = local_round[key];
    }
    if (c.model == "tiny" && c.control == "local" && c.workers == 10000) {
      r.extra["target_s"] = 5.0;
      r.extra["target_rss_mb"] = 2048;
    }
    if (c.model == "resnet18" && c.control == "local" && c.workers == 2048) {
      r.extra["target_s"] = 60.0;
    }
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
     "One no-training round at 2..100,000 virtual workers: round time, tasks/s, "
     "peak RSS (embedded and REST + redis)",
     [](CLI::App* app) {
       auto a = std::make_shared<ScaleArgs>();
       app->add_flag("--quick", a->quick,
                     "A small subset (tiny at 8, 512, 10000 workers; resnet18 at 8 "
                     "and 32; embedded only)");
       app->add_option("--workers", a->workers,
                       "Worker counts (default 2,8,32,128,512,2048,10000,100000)");
       app->add_option("--topologies", a->topologies, "flat,3tier (default both)");
       app->add_option("--models", a->models, "tiny,resnet18 (default both)");
       app->add_option("--controls", a->controls, "local,rest (default both)");
       app->add_option("--mode", a->modes,
                       "No-training worker behaviour: dispatch (hands back the global "
                       "model's Ref; moves no data). A data-moving mode joins later")
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
