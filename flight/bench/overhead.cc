// `flight bench overhead`: what the framework costs on top of the learning.
//
// The main job's config (default configs/fmnist-3tier.yaml) runs for a few
// rounds through the engine, and a bare loop does the same work with
// flight/learning and the strategy directly — no engine, invoker or store:
// the same workers each round (the strategy's seeded selection, as the
// engine draws it), the same partitions, training options and per-task seeds
// (engine::task_seed), the same fold (each aggregator folds its children in
// id order, the coordinator its aggregators', then the server step), the same
// sharded evaluation (engine::evaluate_sharded) — on the same number of
// threads. Its final model is bit-identical to the engine's: `same_model`
// says so, and a false there means the two sides no longer do the same work.
// `clock: virtual` is set so that the topology's simulated slow devices are
// not held back in real time (that delay is not overhead). Before either
// side is timed the dataset is loaded and an untimed one-round, one-step run
// warms torch (and, over REST, the endpoints' job runtimes and datasets);
// REST endpoints are timed from their registration on.
//
// --repeats N runs N (engine, bare) pairs, alternating which side goes first
// (the second runs on warmer caches and allocator); value and baseline are
// the medians. --side engine|bare runs one side only (for `perf record`) and
// prints its times.
//
// Cases (value = engine, baseline = bare loop, times, ratio = bare / engine;
// extra `overhead` = (engine - bare) / bare):
//   embedded_cpu, embedded_wall       control: local, memory connector
//   rest_redis_cpu, rest_redis_wall   `flight serve` + N `flight endpoint`
//                                     processes + redis-server, all started
//                                     here; CPU summed over this process and
//                                     the children (from /proc, during the run)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
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
#include "flight/engine/job.h"
#include "flight/engine/run_context.h"
#include "flight/engine/task_process.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "flight/learning/trainer.h"
#include "topology/topology.h"

namespace flight::bench {
namespace {

using nlohmann::json;

struct OverheadArgs {
  std::string config = "configs/fmnist-3tier.yaml";
  int64_t rounds = 3;
  std::string controls = "local,rest";
  int64_t endpoints = 2;  // REST: 1 for aggregators + (N - 1) for workers
  int64_t repeats = 1;    // (engine, bare) pairs; medians reported
  std::string side = "both";
};

// CPU seconds (user + system) of this process, all threads.
double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// CPU seconds of another (running) process, from /proc/PID/stat.
double proc_cpu_s(pid_t pid) {
  std::string stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields after ')': state(3) ... utime is field 14, stime 15 (1-based).
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Cost {
  double cpu_s = 0, wall_s = 0;
  double accuracy = -1;
  ParamSet model;  // the final global model
};

// The topology's nodes depth-first with every node's children in canonical
// (id) order: the order the engine submits a round's workers in and folds
// each node's children in.
std::vector<std::string> canonical_order(const topology::Topology& topo) {
  std::vector<std::string> out;
  std::vector<std::string> stack{topo.root().id};
  while (!stack.empty()) {
    std::string id = std::move(stack.back());
    stack.pop_back();
    std::vector<std::string> kids = topo.children(id);
    std::sort(kids.begin(), kids.end());
    for (auto k = kids.rbegin(); k != kids.rend(); ++k) stack.push_back(*k);
    out.push_back(std::move(id));
  }
  return out;
}

// One round's hierarchical fold, as the engine's aggregators and coordinator
// do it: each node folds its children's (partial) updates in id order with
// the strategy's aggregation and passes {mean, total weight} upward.
// `updates` holds the trained workers' results (absent: not selected).
StatusOr<std::optional<aggregators::Weighted>> fold_subtree(
    const topology::Topology& topo, const aggregators::Strategy& strategy, const std::string& id,
    std::map<std::string, learning::TrainResult>& updates) {
  if (topo.node(id).is_worker()) {
    auto it = updates.find(id);
    if (it == updates.end()) return std::optional<aggregators::Weighted>();
    aggregators::Weighted w;
    w.params = std::move(it->second.state);
    w.weight = strategy.worker_weight(it->second.n_samples);
    updates.erase(it);
    return std::optional<aggregators::Weighted>(std::move(w));
  }
  std::vector<std::string> kids = topo.children(id);
  std::sort(kids.begin(), kids.end());
  auto fold = strategy.begin();
  size_t folded = 0;
  for (const auto& k : kids) {
    FLIGHT_ASSIGN_OR_RETURN(auto part, fold_subtree(topo, strategy, k, updates));
    if (!part) continue;
    FLIGHT_RETURN_IF_ERROR(fold->accumulate(part->params, part->weight));
    ++folded;
  }
  if (folded == 0) return std::optional<aggregators::Weighted>();
  FLIGHT_ASSIGN_OR_RETURN(aggregators::Weighted w, fold->finalize());
  return std::optional<aggregators::Weighted>(std::move(w));
}

// The bare loop: the engine's trainings, folds and evaluations, nothing else.
StatusOr<Cost> bare_loop(const engine::ExperimentConfig& config) {
  const double cpu0 = self_cpu_s();
  Stopwatch wall;
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology topo, topology::Topology::load(config.topology.file));
  std::vector<std::string> workers = topo.workers();
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < workers.size(); ++i) index[workers[i]] = static_cast<int64_t>(i);
  std::map<std::string, size_t> place;
  for (const auto& id : canonical_order(topo)) place.emplace(id, place.size());
  FLIGHT_ASSIGN_OR_RETURN(learning::DatasetPair data, learning::load_dataset(config.data));
  FLIGHT_ASSIGN_OR_RETURN(
      auto parts,
      learning::worker_partitions(data, workers.size(), config.data.partition, config.seed));
  FLIGHT_ASSIGN_OR_RETURN(auto strategy, aggregators::make_strategy(config.strategy));
  at::manual_seed(static_cast<uint64_t>(config.seed));
  FLIGHT_ASSIGN_OR_RETURN(auto init, learning::make_model(config.model));
  ParamSet global = init->state().clone();
  const size_t threads = static_cast<size_t>(std::max<int64_t>(1, config.threads));
  std::vector<std::unique_ptr<learning::Model>> models;
  for (size_t t = 0; t < threads; ++t) {
    FLIGHT_ASSIGN_OR_RETURN(auto m, learning::make_model(config.model));
    models.push_back(std::move(m));
  }
  std::mt19937_64 rng(static_cast<uint64_t>(config.seed));  // the engine's selection RNG
  Cost cost;
  for (int64_t round = 1; round <= config.rounds; ++round) {
    std::vector<std::string> nodes;
    for (size_t k : strategy->select(workers.size(), round, rng)) nodes.push_back(workers[k]);
    // In the engine's submission order.
    std::sort(nodes.begin(), nodes.end(),
              [&](const std::string& a, const std::string& b) { return place[a] < place[b]; });
    std::vector<StatusOr<learning::TrainResult>> results(nodes.size(),
                                                         internal_error("not trained"));
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        engine::configure_task_threads();  // as the engine's task threads
        auto hook = strategy->worker_hook();
        for (size_t i = next++; i < nodes.size(); i = next++) {
          const int64_t w = index.at(nodes[i]);
          results[i] =
              learning::train(*models[t], global, *data.train, parts[static_cast<size_t>(w)],
                              config.train, engine::task_seed(config.seed, w, round), hook.get());
        }
      });
    }
    for (auto& th : pool) th.join();
    std::map<std::string, learning::TrainResult> updates;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!results[i].is_ok()) return results[i].status();
      updates.emplace(nodes[i], std::move(results[i]).value());
    }
    FLIGHT_ASSIGN_OR_RETURN(auto agg, fold_subtree(topo, *strategy, topo.root().id, updates));
    if (!agg) return internal_error("round " + std::to_string(round) + ": nothing trained");
    FLIGHT_ASSIGN_OR_RETURN(global, strategy->server_update(global, *agg));
    if (round == config.rounds || (config.eval.every > 0 && round % config.eval.every == 0)) {
      FLIGHT_ASSIGN_OR_RETURN(auto ev,
                              engine::evaluate_sharded(*models[0], config.model, global, *data.test,
                                                       config.threads, config.eval.batch_size));
      cost.accuracy = ev.second;
    }
  }
  cost.wall_s = wall.seconds();
  cost.cpu_s = self_cpu_s() - cpu0;
  cost.model = std::move(global);
  return cost;
}

// Whether two models are bit-identical (names, dtypes, shapes and values).
bool same_model(const ParamSet& a, const ParamSet& b) {
  if (a.size() == 0 || !a.check_compatible(b).is_ok()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!at::equal(a[i].tensor, b[i].tensor)) return false;
  }
  return true;
}

// The REST + Redis deployment of one run: redis-server, `flight serve`, one
// `agg` endpoint and N-1 `edge` endpoints, all children of this process.
struct RestDeployment {
  std::unique_ptr<RedisServer> redis;
  std::unique_ptr<Process> service;
  std::vector<std::unique_ptr<Process>> endpoints;
  std::string url, token_file;

  std::vector<pid_t> pids() const {
    std::vector<pid_t> p = {redis->pid(), service->pid()};
    for (const auto& e : endpoints) p.push_back(e->pid());
    return p;
  }
};

StatusOr<std::unique_ptr<RestDeployment>> deploy(const std::string& dir, int64_t endpoints,
                                                 int64_t threads) {
  auto d = std::make_unique<RestDeployment>();
  FLIGHT_ASSIGN_OR_RETURN(d->redis, RedisServer::start());
  d->token_file = dir + "/token";
  { std::ofstream(d->token_file) << random_hex(32) << "\n"; }
  FLIGHT_ASSIGN_OR_RETURN(
      d->service, Process::spawn(self_command({"--log-level", "warn", "serve", "--port", "0",
                                               "--token-file", d->token_file, "--threads", "2"},
                                              dir + "/serve.out")));
  FLIGHT_ASSIGN_OR_RETURN(std::string line,
                          d->service->wait_for_line("listening on ", std::chrono::seconds(30)));
  d->url = trim(line.substr(line.find("listening on ") + 13));
  for (int64_t i = 0; i < endpoints; ++i) {
    const std::string name = i == 0 ? "agg" : "edge";
    ProcessOptions po =
        self_command({"--log-level", "info", "endpoint", "--service", d->url, "--token-file",
                      d->token_file, "--name", name, "--threads", std::to_string(threads)},
                     "");
    // One log: the registration line (stderr) is what we wait for.
    const std::string log = dir + "/endpoint-" + std::to_string(i) + ".log";
    po.out = Redirect::file(log, true);
    po.err = Redirect::file(log, true);
    FLIGHT_ASSIGN_OR_RETURN(auto ep, Process::spawn(std::move(po)));
    d->endpoints.push_back(std::move(ep));
  }
  // Registered: their start-up (loading libtorch) is the deployment's, not a run's.
  for (auto& ep : d->endpoints) {
    FLIGHT_RETURN_IF_ERROR(ep->wait_for_line("registered as", std::chrono::seconds(60)).status());
  }
  return d;
}

// The bench's config over `d`: every worker on the `edge` endpoints, every
// aggregator on `agg`, weights through its redis-server.
StatusOr<engine::ExperimentConfig> over_rest_config(const engine::ExperimentConfig& base,
                                                    const RestDeployment& d,
                                                    const std::string& dir) {
  json j = base.to_json();
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology topo, topology::Topology::load(base.topology.file));
  std::vector<topology::Node> nodes = topo.nodes();
  for (auto& n : nodes) {
    if (n.is_worker()) n.endpoint = "edge";
    if (n.is_aggregator()) n.endpoint = "agg";
  }
  FLIGHT_ASSIGN_OR_RETURN(auto with_endpoints,
                          topology::Topology::from_nodes(std::move(nodes), "bench-overhead"));
  FLIGHT_RETURN_IF_ERROR(with_endpoints.save_yaml(dir + "/topology.yaml"));
  j["topology"] = dir + "/topology.yaml";
  j["control"] = {{"rest", {{"url", d.url}, {"token_file", d.token_file}}}};
  j["data_plane"] = {
      {"connector", {{"kind", "redis"}, {"host", "127.0.0.1"}, {"port", d.redis->port()}}}};
  return engine::ExperimentConfig::from_json(j, "bench-overhead", dir);
}

// One engine run; CPU includes `children` (their CPU during the run).
StatusOr<Cost> engine_run(const engine::ExperimentConfig& config, const std::string& out_dir,
                          const std::vector<pid_t>& children) {
  std::vector<double> child0;
  for (pid_t p : children) child0.push_back(proc_cpu_s(p));
  const double cpu0 = self_cpu_s();
  engine::RunOptions options;
  options.quiet = true;
  options.output_dir = out_dir;
  Stopwatch wall;
  FLIGHT_ASSIGN_OR_RETURN(engine::RunSummary summary, engine::run_experiment(config, options));
  Cost cost;
  cost.wall_s = wall.seconds();
  cost.cpu_s = self_cpu_s() - cpu0;
  for (size_t i = 0; i < children.size(); ++i) cost.cpu_s += proc_cpu_s(children[i]) - child0[i];
  cost.accuracy = summary.final_accuracy;
  cost.model = std::move(summary.final_model);
  return cost;
}

// An untimed run of one round and one training step per worker: torch's
// kernels and allocator, and over REST the endpoints' job runtimes and
// datasets, are warm before either side is timed (a long-lived deployment
// pays those once, not per run), so neither side pays them for the other.
// (--side bare warms with the bare loop.)
Status warm_up(const engine::ExperimentConfig& config, const std::string& out_dir,
               const std::vector<pid_t>& children, bool bare = false) {
  engine::ExperimentConfig c = config;
  c.rounds = 1;
  c.train.max_steps = 1;
  return bare ? bare_loop(c).status() : engine_run(c, out_dir, children).status();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void emit_pair(const std::string& control, const std::vector<Cost>& eng,
               const std::vector<Cost>& bare, const json& params, const std::string& command) {
  bool same = !eng.empty() && !bare.empty();
  for (const Cost& e : eng) same = same && same_model(e.model, bare.front().model);
  for (const char* what : {"cpu", "wall"}) {
    const bool cpu = std::string(what) == "cpu";
    std::vector<double> vs, bs;
    for (const Cost& c : eng) vs.push_back(cpu ? c.cpu_s : c.wall_s);
    for (const Cost& c : bare) bs.push_back(cpu ? c.cpu_s : c.wall_s);
    const double v = median(vs), b = median(bs);
    BenchRecord r;
    r.bench = "overhead";
    r.case_name = control + "_" + what;
    r.params = params;
    r.value = v;
    r.unit = "s";
    r.baseline = "bare_learning_loop";
    r.baseline_value = b;
    r.higher_is_better = false;
    r.extra = {{"overhead", b > 0 ? (v - b) / b : 0.0},
               {"target_overhead", control == "embedded" ? 0.05 : 0.15},
               {"engine_s", vs},
               {"bare_s", bs},
               {"engine_accuracy", eng.front().accuracy},
               {"bare_accuracy", bare.front().accuracy},
               {"same_model", same},
               {"command", command}};
    emit_bench(r);
  }
}

// --side: one side's times, for profiling it alone.
void print_side(const std::string& side, const Cost& c) {
  std::cout << json{{"side", side},
                    {"cpu_s", c.cpu_s},
                    {"wall_s", c.wall_s},
                    {"accuracy", c.accuracy}}
                   .dump()
            << std::endl;
}

int run_overhead(const OverheadArgs& a) {
  if (a.rounds < 1) return usage_error("--rounds must be >= 1");
  if (a.repeats < 1) return usage_error("--repeats must be >= 1");
  if (a.endpoints < 2) return usage_error("--endpoints must be >= 2 (one for aggregators)");
  if (a.side != "both" && a.side != "engine" && a.side != "bare") {
    return usage_error("--side: unknown '" + a.side + "' (both, engine, bare)");
  }
  bool local = false, rest = false;
  for (const auto& c : split(a.controls, ',')) {
    if (trim(c) == "local") {
      local = true;
    } else if (trim(c) == "rest") {
      rest = true;
    } else {
      return usage_error("--controls: unknown '" + c + "' (local, rest)");
    }
  }
  TempDir dir("flight-bench-overhead");
  auto base = engine::ExperimentConfig::load(
      a.config, {"rounds=" + std::to_string(a.rounds), "clock=virtual", "output.checkpoint_every=0",
                 "output.save_model=false"});
  if (!base.is_ok()) return fail("bench overhead: " + base.status().message());
  // Neither side pays the dataset load.
  if (auto warm = learning::load_dataset(base->data); !warm.is_ok()) {
    return fail("bench overhead: " + warm.status().message());
  }
  std::string command = "flight bench overhead --config " + a.config + " --rounds " +
                        std::to_string(a.rounds) + " --controls " + a.controls;
  if (rest) command += " --endpoints " + std::to_string(a.endpoints);
  if (a.repeats > 1) command += " --repeats " + std::to_string(a.repeats);
  const json params{{"config", a.config},
                    {"rounds", a.rounds},
                    {"threads", base->threads},
                    {"repeats", a.repeats}};
  int64_t engine_runs = 0;
  auto next_dir = [&] { return dir.path() + "/run-" + std::to_string(engine_runs++); };

  if (a.side != "both") {
    // One side alone: the engine over REST + Redis with --controls rest.
    const bool over_rest = a.side == "engine" && rest && !local;
    std::unique_ptr<RestDeployment> d;
    engine::ExperimentConfig config = *base;
    if (over_rest) {
      auto deployed = deploy(dir.path(), a.endpoints, base->threads);
      if (!deployed.is_ok()) return fail("bench overhead: " + deployed.status().message());
      d = std::move(deployed).value();
      auto c = over_rest_config(*base, *d, dir.path());
      if (!c.is_ok()) return fail("bench overhead: " + c.status().message());
      config = std::move(c).value();
    }
    if (Status st = warm_up(config, next_dir(), {}, a.side == "bare"); !st.is_ok()) {
      return fail("bench overhead: warm-up: " + st.message());
    }
    for (int64_t i = 0; i < a.repeats; ++i) {
      auto c = a.side == "bare"
                   ? bare_loop(config)
                   : engine_run(config, next_dir(), d ? d->pids() : std::vector<pid_t>{});
      if (!c.is_ok()) return fail("bench overhead: " + a.side + ": " + c.status().message());
      print_side(over_rest ? "engine_rest_redis" : a.side, *c);
    }
    return kExitOk;
  }

  if (Status st = warm_up(*base, next_dir(), {}); !st.is_ok()) {
    return fail("bench overhead: warm-up: " + st.message());
  }
  // Pairs in alternating order: the side that runs second finds warmer caches.
  std::vector<Cost> bare, eng;
  for (int64_t i = 0; i < a.repeats; ++i) {
    for (int side = 0; side < 2; ++side) {
      if ((side == 0) == (i % 2 == 0) && local) {
        auto c = engine_run(*base, next_dir(), {});
        if (!c.is_ok()) return fail("bench overhead: engine run: " + c.status().message());
        eng.push_back(std::move(c).value());
      } else if ((side == 0) != (i % 2 == 0)) {
        auto c = bare_loop(*base);
        if (!c.is_ok()) return fail("bench overhead: bare loop: " + c.status().message());
        bare.push_back(std::move(c).value());
      }
    }
  }
  if (local) emit_pair("embedded", eng, bare, params, command);
  if (!rest) return kExitOk;

  auto d = deploy(dir.path(), a.endpoints, base->threads);
  if (!d.is_ok()) return fail("bench overhead: " + d.status().message());
  auto rest_config = over_rest_config(*base, **d, dir.path());
  if (!rest_config.is_ok()) return fail("bench overhead: " + rest_config.status().message());
  if (Status st = warm_up(*rest_config, next_dir(), (*d)->pids()); !st.is_ok()) {
    return fail("bench overhead: REST warm-up: " + st.message());
  }
  std::vector<Cost> over_rest;
  for (int64_t i = 0; i < a.repeats; ++i) {
    auto c = engine_run(*rest_config, next_dir(), (*d)->pids());
    if (!c.is_ok()) return fail("bench overhead: REST run: " + c.status().message());
    over_rest.push_back(std::move(c).value());
  }
  json rest_params = params;
  rest_params["endpoints"] = a.endpoints;
  emit_pair("rest_redis", over_rest, bare, rest_params, command);
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(bench_overhead,
             {"overhead",
              "Framework overhead: the main job for a few rounds through the engine vs a bare "
              "learning loop doing the same trainings and evaluations (embedded, REST + Redis)",
              [](CLI::App* app) {
                auto a = std::make_shared<OverheadArgs>();
                app->add_option("--config", a->config, "Experiment config")->capture_default_str();
                app->add_option("--rounds", a->rounds, "Rounds")->capture_default_str();
                app->add_option("--controls", a->controls, "local,rest")->capture_default_str();
                app->add_option("--repeats", a->repeats,
                                "(engine, bare) pairs, alternating which goes first; medians")
                    ->capture_default_str();
                app->add_option("--side", a->side,
                                "both, or engine / bare alone (for profiling one side)")
                    ->capture_default_str();
                app->add_option("--endpoints", a->endpoints,
                                "REST: endpoint processes (1 for aggregators, the rest workers)")
                    ->capture_default_str();
                return [a] { return run_overhead(*a); };
              }});

}  // namespace flight::bench
