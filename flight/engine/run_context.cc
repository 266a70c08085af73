#include "flight/engine/run_context.h"

#include <ATen/Context.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "flight/base/options.h"
#include "flight/engine/job.h"
#include "flight/engine/job_cache.h"
#include "flight/engine/task_process.h"
#include "flight/faas/functions.h"
#include "flight/faas/local_invoker.h"
#include "flight/faas/rest_invoker.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using topology::Topology;

enum class Generator { kFlat, kBalanced, kByLeaves, kTiers };
const EnumNames<Generator> kGeneratorNames = {{"flat", Generator::kFlat},
                                              {"balanced", Generator::kBalanced},
                                              {"by_leaves", Generator::kByLeaves},
                                              {"tiers", Generator::kTiers}};

// `topology: {generate: KIND, ...}` in a config.
StatusOr<Topology> generate_topology(const json& spec) {
  OptionReader r(spec, "topology");
  Generator kind = Generator::kFlat;
  r.choice("generate", &kind, kGeneratorNames, /*required=*/true);
  int64_t workers = 0, branching = 0, height = 0, leaves = 0;
  std::vector<int64_t> aggregators;
  uint64_t seed = 0;
  switch (kind) {
    case Generator::kFlat:
      r.at_least("workers", &workers, int64_t{1}, true);
      break;
    case Generator::kBalanced:
      r.at_least("branching", &branching, int64_t{1}, true)
          .at_least("height", &height, int64_t{1}, true);
      break;
    case Generator::kByLeaves:
      r.at_least("leaves", &leaves, int64_t{1}, true).at_least("height", &height, int64_t{1}, true);
      break;
    case Generator::kTiers:
      r.at_least("workers", &workers, int64_t{1}, true)
          .optional("aggregators", &aggregators)
          .optional("seed", &seed);
      break;
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  auto n = [](int64_t v) { return static_cast<size_t>(v); };
  switch (kind) {
    case Generator::kFlat:
      return topology::generate::flat(n(workers));
    case Generator::kBalanced:
      return topology::generate::balanced(n(branching), n(height));
    case Generator::kByLeaves:
      return topology::generate::by_leaves(n(leaves), n(height));
    case Generator::kTiers:
      break;
  }
  std::vector<size_t> counts;
  for (int64_t c : aggregators) {
    if (c < 1) return r.error("aggregators: counts must be >= 1, e.g. [4]");
    counts.push_back(n(c));
  }
  return topology::generate::tiers(counts, n(workers), seed);
}

Status load_tree(RunContext* ctx) {
  FLIGHT_ASSIGN_OR_RETURN(Topology topology, load_topology(ctx->config.topology));
  ctx->topology = std::make_unique<Topology>(std::move(topology));
  ctx->workers = ctx->topology->workers();
  for (size_t i = 0; i < ctx->workers.size(); ++i) {
    ctx->worker_index[ctx->workers[i]] = static_cast<int64_t>(i);
  }
  for (const auto& n : ctx->topology->nodes()) {
    ctx->tier[n.id] = static_cast<int64_t>(ctx->topology->tier(n.id));
    ctx->tiers = std::max(ctx->tiers, ctx->topology->tier(n.id) + 1);
  }
  return Status::ok();
}

Status make_invoker(RunContext* ctx) {
  if (ctx->is_local()) {
    faas::FunctionRegistry* functions = ctx->options.functions;
    if (!functions) {
      configure_task_process();
      functions = &faas::default_functions();
    }
    faas::LocalInvokerOptions lo;
    lo.threads = static_cast<size_t>(ctx->config.threads);
    // Backpressure on submissions from the driving thread (callbacks are
    // never blocked): tasks waiting to start stay a few thousand specs.
    lo.max_queue = 4096;
    ctx->invoker = faas::make_local_invoker(lo, *functions);
    return Status::ok();
  }
  faas::RestInvokerOptions ro;
  ro.url = ctx->config.control.url;
  ro.token_file = ctx->config.control.token_file;
  FLIGHT_RETURN_IF_ERROR(ro.validate());
  FLIGHT_ASSIGN_OR_RETURN(ctx->invoker, faas::make_rest_invoker(ro));
  return Status::ok();
}

// REST runs: the job's JSON goes into the data plane once, so tasks carry
// its id and this address instead of the whole job. A memory connector is
// private to this process: then tasks carry the job itself.
Status publish_job(RunContext* ctx) {
  const json& connector = ctx->store->connector_config();
  if (connector.value("kind", std::string()) == "memory") return Status::ok();
  const std::string bytes = ctx->job.dump();
  FLIGHT_ASSIGN_OR_RETURN(std::string key, ctx->store->connector().put(bytes));
  ctx->job_at = json{{"connector", connector}, {"key", key}};
  return Status::ok();
}

}  // namespace

double train_seconds_of(const faas::TaskResult& r) {
  if (const TrainResult* typed = faas::message_as<TrainResult>(r.message)) {
    return typed->train_seconds;
  }
  if (!r.result.is_object()) return 0.0;
  auto it = r.result.find("train_seconds");
  return it != r.result.end() && it->is_number() ? it->get<double>() : 0.0;
}

StatusOr<Topology> load_topology(const TopologyConfig& t) {
  if (!t.file.empty()) return Topology::load(t.file);
  return generate_topology(t.generate);
}

Status build_run_context(const ExperimentConfig& config, const RunOptions& options,
                         RunContext* ctx) {
  ctx->config = config;
  ctx->options = options;
  ctx->out_dir = options.output_dir.empty() ? config.output.dir : options.output_dir;
  std::error_code ec;
  std::filesystem::create_directories(ctx->out_dir, ec);
  if (ec) {
    return unavailable("cannot create output directory '" + ctx->out_dir + "': " + ec.message());
  }
  FLIGHT_RETURN_IF_ERROR(load_tree(ctx));

  // Local training runs one task per invoker thread; one intra-op thread each
  // keeps `threads` tasks from oversubscribing the cores.
  configure_task_threads();
  at::manual_seed(config.seed);  // model initialisation

  Job job;
  job.model = config.model;
  job.data = config.data;
  job.train = config.train;
  job.strategy = config.strategy;
  job.seed = config.seed;
  job.n_workers = static_cast<int64_t>(ctx->workers.size());
  job.debug = config.debug;
  job.compression = config.compression;
  job.aggregator_fraction = config.aggregator_fraction;
  ctx->job = job.to_json();
  if (sends_deltas(job)) ctx->ef = std::make_unique<DeltaLedger>();
  // Embedded: the functions run in this process, so the job is registered once
  // here and tasks carry only its id (no per-task copy, dump or parse).
  ctx->job_id = ctx->is_local() ? register_job(ctx->job) : job_id(ctx->job);

  FLIGHT_ASSIGN_OR_RETURN(ctx->strategy, aggregators::make_strategy(config.strategy));
  FLIGHT_ASSIGN_OR_RETURN(ctx->model, learning::make_model(config.model));
  FLIGHT_ASSIGN_OR_RETURN(ctx->data, learning::load_dataset(config.data));
  ctx->global = ctx->model->state().clone();
  ctx->rng.seed(config.seed);
  if (config.dp) {
    // The cohort a round selects (the strategy's count for this many workers).
    std::mt19937_64 probe(config.seed);
    const auto n = static_cast<int64_t>(ctx->workers.size());
    const auto cohort =
        static_cast<int64_t>(ctx->strategy->select(ctx->workers.size(), 1, probe).size());
    FLIGHT_ASSIGN_OR_RETURN(ctx->dp, DpServer::create(*config.dp, n, cohort, config.seed));
  }
  FLIGHT_ASSIGN_OR_RETURN(ctx->store, store_for(ctx->node_connector(ctx->topology->root().id)));
  if (!ctx->is_local()) FLIGHT_RETURN_IF_ERROR(publish_job(ctx));
  return make_invoker(ctx);
}

JobRef RunContext::job_ref() const {
  JobRef r;
  r.id = job_id;
  if (!job_at.is_null())
    r.at = job_at;
  else if (!is_local())
    r.job = job;
  return r;
}

void RunContext::release_job() {
  if (job_at.is_null()) return;
  (void)store->connector().evict(job_at.at("key").get<std::string>());
  job_at = nullptr;
}

json RunContext::node_connector(const std::string& node) const {
  const auto& n = topology->node(node);
  json c = n.connector.is_null() ? config.data_plane.connector : n.connector;
  if (c.is_string()) {
    const std::string name = c.get<std::string>();
    if (config.data_plane.connectors.contains(name)) return config.data_plane.connectors[name];
  }
  return c;
}

PutTarget RunContext::put_target(const std::string& node, const std::string& scope) const {
  PutTarget p;
  p.connector = node_connector(node);
  p.scope = scope;
  return p;
}

std::string RunContext::endpoint_of(const std::string& node) const {
  const auto& n = topology->node(node);
  if (n.endpoint) return *n.endpoint;
  auto placed = options.placement.find(node);
  return placed != options.placement.end() ? placed->second : n.id;
}

StatusOr<std::pair<double, double>> RunContext::evaluate_global() {
  return evaluate_sharded(*model, config.model, global, *data.test, config.threads,
                          config.eval.batch_size);
}

StatusOr<std::pair<double, double>> evaluate_sharded(learning::Model& model,
                                                     const learning::ModelSpec& spec,
                                                     const ParamSet& params,
                                                     const learning::Dataset& test, int64_t threads,
                                                     int64_t batch_size) {
  const int64_t n = test.size();
  const int64_t shards = std::max<int64_t>(1, std::min<int64_t>(threads, n / 256 + 1));
  std::vector<StatusOr<learning::EvalResult>> results(static_cast<size_t>(shards),
                                                      internal_error("not run"));
  std::vector<std::thread> pool;
  for (int64_t s = 0; s < shards; ++s) {
    pool.emplace_back([&, s] {
      const int64_t b = n * s / shards, e = n * (s + 1) / shards;
      learning::Dataset shard;
      shard.images = test.images.narrow(0, b, e - b);
      shard.labels = test.labels.narrow(0, b, e - b);
      shard.num_classes = test.num_classes;
      if (s == 0) {
        results[0] = learning::evaluate(model, params, shard, batch_size);
        return;
      }
      auto m = learning::make_model(spec);
      if (!m.is_ok()) {
        results[static_cast<size_t>(s)] = m.status();
        return;
      }
      results[static_cast<size_t>(s)] = learning::evaluate(**m, params, shard, batch_size);
    });
  }
  for (auto& t : pool) t.join();
  double loss = 0, correct = 0;
  int64_t total = 0;
  for (auto& r : results) {
    FLIGHT_RETURN_IF_ERROR(r.status());
    loss += r->loss * static_cast<double>(r->n);
    correct += r->accuracy * static_cast<double>(r->n);
    total += r->n;
  }
  if (total == 0) return failed_precondition("the test set is empty");
  return std::make_pair(loss / static_cast<double>(total), correct / static_cast<double>(total));
}

}  // namespace flight::engine
