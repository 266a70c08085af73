#include "flight/engine/federation.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "aggregators/strategy.h"
#include "flight/base/logging.h"
#include "flight/base/time.h"
#include "flight/engine/checkpoint.h"
#include "flight/engine/delay_queue.h"
#include "flight/engine/functions.h"
#include "flight/engine/yaml_json.h"
#include "flight/engine/federation_internal.h"
#include "flight/faas/functions.h"
#include "flight/faas/invoker.h"
#include "flight/faas/local_invoker.h"
#include "flight/faas/rest_invoker.h"
#include "flight/learning/model.h"
#include "topology/topology.h"
#include "transport/store.h"

namespace flight::engine {
namespace detail {

namespace fs = std::filesystem;

// `topology: {generate: KIND, ...}` in a config.
static StatusOr<Topology> generate_topology(const json& spec) {
  auto num = [&](const char* key) -> StatusOr<size_t> {
    if (!spec.contains(key) || !spec[key].is_number_integer() || spec[key].get<int64_t>() < 1) {
      return invalid_argument(std::string("topology.generate needs a positive integer '") + key +
                              "'");
    }
    return static_cast<size_t>(spec[key].get<int64_t>());
  };
  const std::string kind = spec.value("generate", std::string());
  const std::vector<std::string> kinds = {"flat", "balanced", "by_leaves", "tiers"};
  auto check_keys = [&](std::vector<std::string> known) -> Status {
    known.push_back("generate");
    for (auto it = spec.begin(); it != spec.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        return invalid_argument("topology: unknown key '" + it.key() + "' for generate: " + kind +
                                did_you_mean(it.key(), known));
      }
    }
    return Status::ok();
  };
  if (kind == "flat") {
    FLIGHT_RETURN_IF_ERROR(check_keys({"workers"}));
    FLIGHT_ASSIGN_OR_RETURN(size_t w, num("workers"));
    return topology::generate::flat(w);
  }
  if (kind == "balanced") {
    FLIGHT_RETURN_IF_ERROR(check_keys({"branching", "height"}));
    FLIGHT_ASSIGN_OR_RETURN(size_t b, num("branching"));
    FLIGHT_ASSIGN_OR_RETURN(size_t h, num("height"));
    return topology::generate::balanced(b, h);
  }
  if (kind == "by_leaves") {
    FLIGHT_RETURN_IF_ERROR(check_keys({"leaves", "height"}));
    FLIGHT_ASSIGN_OR_RETURN(size_t l, num("leaves"));
    FLIGHT_ASSIGN_OR_RETURN(size_t h, num("height"));
    return topology::generate::by_leaves(l, h);
  }
  if (kind == "tiers") {
    FLIGHT_RETURN_IF_ERROR(check_keys({"aggregators", "workers", "seed"}));
    FLIGHT_ASSIGN_OR_RETURN(size_t w, num("workers"));
    std::vector<size_t> aggs;
    try {
      aggs = spec.value("aggregators", std::vector<size_t>{});
    } catch (const json::exception&) {
      return invalid_argument("topology.aggregators must be a list of counts, e.g. [4]");
    }
    return topology::generate::tiers(aggs, w, spec.value("seed", uint64_t{0}));
  }
  return invalid_argument("topology: unknown generator '" + kind + "'" + did_you_mean(kind, kinds) +
                          " (use flat, balanced, by_leaves or tiers)");
}

StatusOr<Topology> load_topology(const TopologyConfig& t) {
  if (!t.file.empty()) return Topology::load(t.file);
  return generate_topology(t.generate);
}


Status Federation::setup() {
  out_dir_ = options_.output_dir.empty() ? config_.output.dir : options_.output_dir;
  std::error_code ec;
  fs::create_directories(out_dir_, ec);
  if (ec) return unavailable("cannot create output directory '" + out_dir_ + "': " + ec.message());

  // Topology: a file or a generator.
  FLIGHT_ASSIGN_OR_RETURN(Topology topology, load_topology(config_.topology));
  topology_ = std::make_unique<Topology>(std::move(topology));
  workers_ = topology_->workers();
  for (size_t i = 0; i < workers_.size(); ++i) worker_index_[workers_[i]] = static_cast<int64_t>(i);
  std::mt19937_64 speed_rng(task_seed(config_.seed, -1, -1));
  std::lognormal_distribution<double> spread(0.0, config_.heterogeneity.speed_sigma);
  for (const auto& n : topology_->nodes()) {
    if (n.is_worker()) {
      const double s = n.speed * (config_.heterogeneity.speed_sigma > 0 ? spread(speed_rng) : 1.0);
      speed_[n.id] = s;
      max_speed_ = std::max(max_speed_, s);
    }
    tier_[n.id] = static_cast<int64_t>(topology_->tier(n.id));
    tiers_ = std::max(tiers_, topology_->tier(n.id) + 1);
  }

  // Local training runs one task per invoker thread; one intra-op thread each
  // keeps `threads` tasks from oversubscribing the cores.
  configure_task_threads();
  at::manual_seed(config_.seed);  // model initialisation

  Job job;
  job.model = config_.model;
  job.data = config_.data;
  job.train = config_.train;
  job.strategy = config_.strategy;
  job.seed = config_.seed;
  job.n_workers = static_cast<int64_t>(workers_.size());
  job.debug = config_.debug;
  job_ = job.to_json();
  // Embedded: the functions run in this process, so the job is registered once
  // here and tasks carry only its id (no per-task copy, dump or parse).
  job_id_ = config_.control.kind == "local" ? register_job(job_) : job_id(job_);

  FLIGHT_ASSIGN_OR_RETURN(strategy_, aggregators::make_strategy(config_.strategy));
  FLIGHT_ASSIGN_OR_RETURN(model_, learning::make_model(config_.model));
  FLIGHT_ASSIGN_OR_RETURN(data_, learning::load_dataset(config_.data));
  global_ = model_->state().clone();
  {
    // Simulated task durations, from the partition sizes every process derives alike.
    FLIGHT_ASSIGN_OR_RETURN(auto parts, learning::partition(data_.train->labels, workers_.size(),
                                                            config_.data.partition, config_.seed));
    for (size_t i = 0; i < workers_.size(); ++i) {
      double samples = static_cast<double>(parts[i].size() * config_.train.epochs);
      if (config_.train.max_steps > 0) {
        samples = std::min(samples, static_cast<double>(config_.train.max_steps *
                                                        config_.train.batch_size));
      }
      planned_[workers_[i]] =
          std::max(samples, 1.0) / (speed_.at(workers_[i]) * config_.virtual_sample_rate);
    }
  }
  rng_.seed(config_.seed);

  FLIGHT_ASSIGN_OR_RETURN(store_, store_for(node_connector(topology_->root().id)));

  if (config_.control.kind == "local") {
    faas::FunctionRegistry* functions = options_.functions;
    if (!functions) {
      configure_task_process();
      functions = &faas::default_functions();
    }
    faas::LocalInvokerOptions lo;
    lo.threads = static_cast<size_t>(config_.threads);
    // Backpressure on submissions from the driving thread (callbacks are
    // never blocked): tasks waiting to start stay a few thousand specs.
    lo.max_queue = 4096;
    invoker_ = faas::make_local_invoker(lo, *functions);
  } else {
    faas::RestInvokerOptions ro;
    ro.url = config_.control.url;
    ro.token_file = config_.control.token_file;
    FLIGHT_RETURN_IF_ERROR(ro.validate());
    FLIGHT_ASSIGN_OR_RETURN(invoker_, faas::make_rest_invoker(ro));
  }

  if (options_.resume) {
    FLIGHT_RETURN_IF_ERROR(resume_from_checkpoint());
  } else {
    // A fresh run owns its outputs: earlier rows and checkpoints would mix
    // with this run's and make --resume continue the wrong run.
    for (const char* f : {"rounds.csv", "tasks.csv", "summary.json", "model.pt", "accuracy.svg"}) {
      fs::remove(fs::path(out_dir_) / f, ec);
    }
    fs::remove_all(fs::path(out_dir_) / "checkpoints", ec);
  }
  delays_ = std::make_unique<DelayQueue>();

  {
    std::ofstream cfg(out_dir_ + "/config.yaml", std::ios::trunc);
    cfg << "# Resolved configuration of this run (every default filled in).\n"
        << json_to_yaml(config_.to_json());
  }
  FLIGHT_RETURN_IF_ERROR(rounds_csv_.open(out_dir_ + "/rounds.csv", round_header(tiers_)));
  FLIGHT_RETURN_IF_ERROR(tasks_csv_.open(out_dir_ + "/tasks.csv", task_header()));
  return Status::ok();
}

Status Federation::resume_from_checkpoint() {
  FLIGHT_ASSIGN_OR_RETURN(auto ckpt, load_latest_checkpoint(out_dir_));
  if (!ckpt) {
    return not_found("--resume: no checkpoint in '" + out_dir_ + "/checkpoints' to resume from");
  }
  FLIGHT_RETURN_IF_ERROR(global_.check_compatible(ckpt->global)
                             .with_context("--resume: checkpoint model does not match config"));
  global_ = std::move(ckpt->global);
  FLIGHT_RETURN_IF_ERROR(strategy_->load_state(ckpt->strategy_state, ckpt->strategy_tensors));
  std::istringstream rng_in(ckpt->rng_state);
  rng_in >> rng_;
  if (!rng_in) return data_loss("--resume: checkpoint RNG state is unreadable");
  first_round_ = ckpt->round + 1;
  elapsed_offset_ = ckpt->elapsed_s;
  // Rows written after the checkpoint belong to rounds that will run again.
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(out_dir_ + "/rounds.csv", ckpt->round));
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(out_dir_ + "/tasks.csv", ckpt->round));
  auto rows = read_rounds_csv(out_dir_ + "/rounds.csv");
  if (rows.is_ok()) rows_ = std::move(rows).value();
  spdlog::info("resuming {} after round {}", out_dir_, ckpt->round);
  return Status::ok();
}

json Federation::node_connector(const std::string& node) const {
  const auto& n = topology_->node(node);
  json c = n.connector.is_null() ? config_.data_plane.connector : n.connector;
  if (c.is_string()) {
    const std::string name = c.get<std::string>();
    if (config_.data_plane.connectors.contains(name)) return config_.data_plane.connectors[name];
  }
  return c;
}

std::string Federation::endpoint_of(const std::string& node) const {
  const auto& n = topology_->node(node);
  return n.endpoint ? *n.endpoint : n.id;
}

json Federation::put_args(const std::string& node, int64_t round) const {
  return json{{"connector", node_connector(node)}, {"scope", "round-" + std::to_string(round)}};
}

void Federation::report(const std::shared_ptr<RoundState>& rs, int64_t round,
                        const std::string& parent, std::optional<ChildUpdate> update,
                        const std::string& failure, std::vector<std::function<void()>>* after) {
  NodeState& ns = rs->nodes.at(parent);
  if (update) ns.updates.push_back(std::move(*update));
  if (!failure.empty()) ns.failures.push_back(failure);
  FLIGHT_CHECK(ns.pending > 0, "node " + parent + " got more reports than children");
  if (--ns.pending > 0 || ns.launched) return;
  ns.launched = true;
  if (parent == topology_->root().id) {
    rs->root_done = true;
    rs->cv.notify_all();
    return;
  }
  const std::string grand = *topology_->node(parent).parent;
  if (ns.updates.empty()) {
    // Nothing to aggregate: say so upward instead of hanging the round.
    std::string why = "aggregator " + parent + ": all children failed or were dropped";
    if (!ns.failures.empty()) why += " (first: " + ns.failures.front() + ")";
    report(rs, round, grand, std::nullopt, why, after);
    return;
  }
  std::vector<ChildUpdate> children = std::move(ns.updates);
  // Canonical fold order, so that aggregates do not depend on arrival order.
  std::sort(children.begin(), children.end(),
            [](const ChildUpdate& a, const ChildUpdate& b) { return a.node < b.node; });
  after->push_back([this, rs, round, parent, children = std::move(children)]() mutable {
    launch_aggregate(rs, round, parent, std::move(children));
  });
}

void Federation::launch_aggregate(const std::shared_ptr<RoundState>& rs, int64_t round,
                                  const std::string& node, std::vector<ChildUpdate> children) {
  json kids = json::array();
  for (const auto& c : children) {
    kids.push_back(json{{"node", c.node}, {"update", c.update}, {"owned", c.owned},
                        {"weight", c.weight}, {"count", c.count}});
  }
  faas::TaskSpec spec;
  spec.endpoint = endpoint_of(node);
  spec.function = "aggregate";
  spec.args = job_args();
  spec.args["round"] = round;
  spec.args["node"] = node;
  spec.args["children"] = std::move(kids);
  spec.args["put"] = put_args(node, round);
  submit_task(rs, round, node, std::move(spec));
}

faas::TaskSpec Federation::train_spec(const std::shared_ptr<RoundState>& rs, int64_t round,
                                      const std::string& worker) const {
  faas::TaskSpec spec;
  spec.endpoint = endpoint_of(worker);
  spec.function = "train";
  spec.args = job_args();
  spec.args["round"] = round;
  spec.args["node"] = worker;
  spec.args["worker_index"] = worker_index_.at(worker);
  spec.args["model"] = rs->model_ref;
  spec.args["put"] = put_args(worker, round);
  return spec;
}

json Federation::job_args() const {
  json args{{"job_id", job_id_}};
  if (config_.control.kind != "local") args["job"] = job_;
  return args;
}

// Submits one task for `node`. Must be called without rs->mu held: the
// invoker may complete the task (and run its callback) before submit returns,
// in which case the result waits in rs->early until the id is known.
void Federation::submit_task(const std::shared_ptr<RoundState>& rs, int64_t round,
                             const std::string& node, faas::TaskSpec spec) {
  faas::TaskHandle h = invoker_->submit(
      std::move(spec), [this, rs, round](const faas::TaskResult& r) { on_task_done(rs, round, r); });
  std::vector<std::function<void()>> after;
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    rs->task_node[h.id()] = node;
    auto early = rs->early.find(h.id());
    if (early != rs->early.end()) {
      faas::TaskResult r = std::move(early->second);
      rs->early.erase(early);
      handle_result(rs, round, node, r, &after);
    }
  }
  for (auto& f : after) f();
}

void Federation::on_task_done(const std::shared_ptr<RoundState>& rs, int64_t round,
                              const faas::TaskResult& result) {
  std::vector<std::function<void()>> after;
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    auto it = rs->task_node.find(result.task_id);
    if (it == rs->task_node.end()) {
      // The invoker finished the task before submit() returned its id.
      rs->early.emplace(result.task_id, result);
      return;
    }
    std::string node = it->second;
    const auto& n = topology_->node(node);
    const double extra = n.is_worker() ? slowdown(node) : 0.0;
    if (result.ok() && extra > 1e-9) {
      // A simulated slow device: hold the result back for the extra time the
      // device would have needed, without keeping a compute thread.
      const double delay = result.result.value("train_seconds", 0.0) * extra;
      delays_->post(delay, [this, rs, round, node, r = result]() mutable {
        faas::TaskResult result = std::move(r);
        result.finished_at = wall_seconds();
        std::vector<std::function<void()>> later;
        {
          std::lock_guard<std::mutex> lock(rs->mu);
          handle_result(rs, round, node, result, &later);
        }
        for (auto& f : later) f();
      });
      return;
    }
    handle_result(rs, round, node, result, &after);
  }
  for (auto& f : after) f();
}

// Called with rs->mu held.
// A result from another process is input like any other: a malformed one is
// a failure of that task, never an exception on an invoker thread (which
// would leave the round waiting forever).
static std::string malformed_result(const json& r, bool is_worker) {
  if (!r.is_object()) return "result is not a JSON object";
  if (!r.contains("update") || !r["update"].is_object()) return "result has no 'update' Ref";
  if (!r.contains("weight") || !r["weight"].is_number()) return "result has no numeric 'weight'";
  for (const char* k : {"bytes_fetched", "bytes_put", "n_samples", "count"}) {
    if (r.contains(k) && !r[k].is_number_integer()) return std::string("'") + k + "' is not an integer";
  }
  for (const char* k : {"loss", "accuracy", "train_seconds"}) {
    if (r.contains(k) && !r[k].is_number()) return std::string("'") + k + "' is not a number";
  }
  if (r.contains("owned") && !r["owned"].is_boolean()) return "'owned' is not a boolean";
  (void)is_worker;
  return "";
}

void Federation::handle_result(const std::shared_ptr<RoundState>& rs, int64_t round,
                               const std::string& node, const faas::TaskResult& raw,
                               std::vector<std::function<void()>>* after) {
  const auto& n = topology_->node(node);
  faas::TaskResult result = raw;
  if (result.ok()) {
    const std::string why = malformed_result(result.result, n.is_worker());
    if (!why.empty()) {
      result.state = faas::TaskState::kFailed;
      result.error = "malformed result: " + why;
      result.result = nullptr;
    }
  }
  const bool is_worker = n.kind == NodeKind::kWorker;
  TaskRow row;
  row.round = round;
  row.task_id = result.task_id;
  row.node = node;
  row.parent = n.parent.value_or("");
  row.kind = is_worker ? "train" : "aggregate";
  row.endpoint = endpoint_of(node);
  row.tier = tier_.at(node);
  row.status = result.ok() ? "ok" : "failed";
  // Task times are wall-clock; convert to run-relative seconds.
  const double origin = wall_seconds() - now();
  row.submitted = result.submitted_at - origin;
  row.started = result.started_at > 0 ? result.started_at - origin : 0;
  row.finished = result.finished_at > 0 ? result.finished_at - origin : now();
  if (result.started_at > 0 && result.finished_at > 0) {
    rs->busy += result.finished_at - result.started_at;
  }

  if (is_worker) {
    if (!rs->waiting_workers.count(node)) {
      // Dropped at the deadline: the late result is counted, not used.
      row.status = "late";
      rs->rows.push_back(row);
      if (result.ok() && result.result.value("owned", false)) {
        auto ref = transport::Ref::from_json(result.result.at("update"));
        if (ref.is_ok()) (void)store_->evict(*ref);
      }
      return;
    }
    if (!result.ok() && rs->attempts[node] <= config_.faults.task_retries && !rs->closed) {
      row.status = "retried";
      row.error = result.error;
      rs->rows.push_back(row);
      rs->attempts[node]++;
      spdlog::warn("round {}: worker {} failed ({}); retrying", round, node, result.error);
      after->push_back([this, rs, round, node] {
        submit_task(rs, round, node, train_spec(rs, round, node));
      });
      return;
    }
    rs->waiting_workers.erase(node);
  }

  std::optional<ChildUpdate> update;
  std::string failure;
  if (is_worker) {
    const bool dropped = result.ok() && drops(node, round);
    double busy = 0;
    if (result.ok()) {
      busy = config_.clock == "virtual"
                 ? planned_.at(node)
                 : result.result.value("train_seconds", 0.0) * (1 + slowdown(node));
    }
    count_worker_task(node, busy, dropped, !result.ok());
    if (result.ok()) rs->virtual_span = std::max(rs->virtual_span, planned_.at(node));
    if (dropped) {
      row.status = "dropped";
      row.error = "dropped out (simulated availability)";
      rs->failed++;
      rs->failures.push_back("worker " + node + ": dropped out (simulated availability)");
      if (result.result.value("owned", false)) {
        auto ref = transport::Ref::from_json(result.result.at("update"));
        if (ref.is_ok()) (void)store_->evict(*ref);
      }
      rs->rows.push_back(std::move(row));
      report(rs, round, *n.parent, std::nullopt, "worker " + node + ": dropped out", after);
      return;
    }
  }
  if (result.ok()) {
    const json& r = result.result;
    ChildUpdate u;
    u.node = node;
    u.update = r.at("update");
    u.owned = r.value("owned", true);
    u.weight = r.at("weight").get<double>();
    u.count = r.value("count", int64_t{1});
    update = std::move(u);
    row.bytes_fetched = r.value("bytes_fetched", uint64_t{0});
    row.bytes_put = r.value("bytes_put", uint64_t{0});
    rs->bytes_fetched += row.bytes_fetched;
    rs->bytes_put += row.bytes_put;
    if (static_cast<size_t>(row.tier) < rs->bytes_up_by_tier.size()) {
      rs->bytes_up_by_tier[static_cast<size_t>(row.tier)] += row.bytes_put;
    }
    if (is_worker) {
      row.samples = r.value("n_samples", int64_t{0});
      row.train_loss = r.value("loss", 0.0);
      row.train_accuracy = r.value("accuracy", 0.0);
      row.train_seconds = r.value("train_seconds", 0.0);
      rs->train_loss_sum += row.train_loss * static_cast<double>(row.samples);
      rs->train_weight_sum += static_cast<double>(row.samples);
      rs->train_seconds_max = std::max(rs->train_seconds_max, row.train_seconds);
    }
  } else {
    failure = (is_worker ? "worker " : "aggregator ") + node + ": " + result.error;
    row.error = result.error;
    if (is_worker) rs->failed++;
    rs->failures.push_back(failure);
    spdlog::warn("round {}: {}", round, failure);
  }
  rs->rows.push_back(std::move(row));
  report(rs, round, *n.parent, std::move(update), failure, after);
}

StatusOr<RoundRow> Federation::run_round(int64_t round) {
  RoundRow row;
  row.round = round;
  row.start = now();
  const int64_t max_attempts = config_.faults.on_insufficient == "retry"
                                   ? 1 + config_.faults.max_round_retries
                                   : 1;
  for (int64_t attempt = 1;; ++attempt) {
    auto rs = std::make_shared<RoundState>();
    rs->bytes_up_by_tier.assign(tiers_, 0);
    std::vector<std::string> selected;
    Status st = run_round_attempt(round, rs, &selected);
    // One flush per round, not per row: at 10,000 tasks a round, a write
    // syscall per row costs more than the tasks themselves.
    for (const auto& t : rs->rows) tasks_csv_.write(task_cells(t), /*flush=*/false);
    tasks_csv_.flush();
    FLIGHT_RETURN_IF_ERROR(st);

    const NodeState& root = rs->nodes.at(topology_->root().id);
    int64_t returned = 0;
    for (const auto& u : root.updates) returned += u.count;
    const auto needed = static_cast<int64_t>(
        std::ceil(config_.faults.min_fraction * static_cast<double>(selected.size()) - 1e-9));
    row.attempts = attempt;
    row.selected = static_cast<int64_t>(selected.size());
    row.returned = returned;
    row.stragglers = rs->stragglers;
    row.failed = rs->failed;
    row.bytes_put = rs->bytes_put;
    row.bytes_fetched = rs->bytes_fetched;
    row.bytes_up_by_tier = rs->bytes_up_by_tier;
    row.train_seconds_max = rs->train_seconds_max;
    row.busy_seconds = rs->busy;
    row.train_loss = rs->train_weight_sum > 0 ? rs->train_loss_sum / rs->train_weight_sum : 0;

    if (returned == 0 || returned < needed) {
      std::string why = "round " + std::to_string(round) + ": " + std::to_string(returned) +
                        " of " + std::to_string(selected.size()) +
                        " selected workers returned an update (min_fraction " +
                        std::to_string(config_.faults.min_fraction) + " needs " +
                        std::to_string(std::max<int64_t>(needed, 1)) + ")";
      if (!rs->failures.empty()) why += "; first failure: " + rs->failures.front();
      else if (!root.failures.empty()) why += "; " + root.failures.front();
      for (const auto& u : root.updates) {
        if (u.owned) {
          auto ref = transport::Ref::from_json(u.update);
          if (ref.is_ok()) (void)store_->evict(*ref);
        }
      }
      (void)store_->evict_scope("round-" + std::to_string(round));
      if (attempt < max_attempts) {
        spdlog::warn("{}; retrying the round (attempt {} of {})", why, attempt + 1, max_attempts);
        continue;
      }
      return failed_precondition(why);
    }

    // The coordinator's own fold over its children, in canonical order.
    std::vector<const ChildUpdate*> children;
    children.reserve(root.updates.size());
    for (const auto& u : root.updates) children.push_back(&u);
    std::sort(children.begin(), children.end(),
              [](const ChildUpdate* a, const ChildUpdate* b) { return a->node < b->node; });
    auto fold = strategy_->begin();
    // Children that hand up the same object (debug mode: the global model)
    // are parsed and resolved once.
    const json* last_update = nullptr;
    transport::Ref ref;
    ParamSet p;
    for (const ChildUpdate* child : children) {
      const ChildUpdate& c = *child;
      if (!last_update || c.update != *last_update) {
        FLIGHT_ASSIGN_OR_RETURN(ref, transport::Ref::from_json(c.update));
        FLIGHT_ASSIGN_OR_RETURN(p, store_->get(ref));
        last_update = &c.update;
      }
      row.coordinator_ingress += ref.size;
      FLIGHT_RETURN_IF_ERROR(fold->accumulate(p, c.weight).with_context(
          "round " + std::to_string(round) + ": coordinator folding " + c.node));
      if (c.owned) (void)store_->evict(ref);
    }
    row.bytes_fetched += row.coordinator_ingress;
    FLIGHT_ASSIGN_OR_RETURN(auto aggregate, fold->finalize());
    FLIGHT_ASSIGN_OR_RETURN(global_, strategy_->server_update(global_, aggregate));
    (void)store_->evict_scope("round-" + std::to_string(round));
    // A synchronous round lasts as long as its slowest returned worker.
    virtual_time_ += rs->virtual_span;
    break;
  }

  if (round % config_.eval.every == 0 || round == config_.rounds) {
    Stopwatch eval_clock;
    FLIGHT_ASSIGN_OR_RETURN(auto eval, evaluate_global());
    row.test_loss = eval.first;
    row.test_accuracy = eval.second;
    row.eval_seconds = eval_clock.seconds();
  }
  row.end = now();
  return row;
}

Status Federation::run_round_attempt(int64_t round, const std::shared_ptr<RoundState>& rs,
                                     std::vector<std::string>* selected) {
  const auto picks = strategy_->select(workers_.size(), round, rng_);
  if (picks.empty()) return internal_error("strategy selected no workers");
  for (size_t i : picks) selected->push_back(workers_.at(i));
  // The induced subtree, as pending-children counts: walk up from each selected
  // worker until an ancestor already counted (O(selected x depth), no copy of
  // the topology).
  for (const auto& w : *selected) {
    const std::string* child = &w;
    while (const auto& parent = topology_->node(*child).parent) {
      auto [it, fresh] = rs->nodes.try_emplace(*parent);
      it->second.pending++;
      if (!fresh) break;
      child = &it->first;
    }
  }

  FLIGHT_ASSIGN_OR_RETURN(auto model_ref,
                          store_->put(global_, {{}, "round-" + std::to_string(round), {}}));
  rs->model_ref = model_ref.to_json();

  for (const auto& w : *selected) {
    rs->waiting_workers.insert(w);
    rs->attempts[w] = 1;
  }
  // Submitted in chunks: with the embedded invoker's bounded queue this is
  // backpressure, so 100,000 workers are never 100,000 task specs in memory,
  // and results that race ahead of their id (rs->early) stay within a chunk.
  constexpr size_t kSubmitChunk = 1024;
  for (size_t begin = 0; begin < selected->size(); begin += kSubmitChunk) {
    const size_t end = std::min(selected->size(), begin + kSubmitChunk);
    std::vector<faas::TaskSpec> specs;
    specs.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) specs.push_back(train_spec(rs, round, (*selected)[i]));
    auto handles = invoker_->submit_batch(std::move(specs), [this, rs, round](
                                                                const faas::TaskResult& r) {
      on_task_done(rs, round, r);
    });
    std::vector<std::function<void()>> after;
    {
      std::lock_guard<std::mutex> lock(rs->mu);
      for (size_t i = 0; i < handles.size(); ++i) {
        rs->task_node[handles[i].id()] = (*selected)[begin + i];
      }
      // Results that raced ahead of the id map.
      std::vector<faas::TaskResult> early;
      for (auto& kv : rs->early) early.push_back(std::move(kv.second));
      rs->early.clear();
      for (const auto& r : early) {
        auto it = rs->task_node.find(r.task_id);
        if (it != rs->task_node.end()) handle_result(rs, round, it->second, r, &after);
        else rs->early.emplace(r.task_id, r);
      }
    }
    // Only ids were needed: a finished task's result should not stay alive in
    // its handle's future until the round ends.
    handles.clear();
    for (auto& f : after) f();
  }

  std::unique_lock<std::mutex> lock(rs->mu);
  if (config_.faults.round_deadline_s > 0) {
    const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                   std::chrono::duration<double>(
                                                       config_.faults.round_deadline_s));
    if (!rs->cv.wait_until(lock, deadline, [&] { return rs->root_done; })) {
      // Deadline: stop waiting for the workers still training. Their parents
      // aggregate what they have; aggregations already running are awaited.
      rs->closed = true;
      std::vector<std::string> late(rs->waiting_workers.begin(), rs->waiting_workers.end());
      std::sort(late.begin(), late.end());
      std::vector<std::string> cancel_ids;
      for (const auto& kv : rs->task_node) {
        if (rs->waiting_workers.count(kv.second)) cancel_ids.push_back(kv.first);
      }
      std::vector<std::function<void()>> launches;
      for (const auto& w : late) {
        rs->waiting_workers.erase(w);
        rs->stragglers++;
        report(rs, round, *topology_->node(w).parent, std::nullopt,
               "worker " + w + ": missed the round deadline", &launches);
      }
      lock.unlock();
      for (const auto& id : cancel_ids) invoker_->cancel(id);
      for (auto& f : launches) f();
      lock.lock();
    }
  }
  rs->cv.wait(lock, [&] { return rs->root_done; });
  return Status::ok();
}

StatusOr<std::pair<double, double>> Federation::evaluate_global() {
  // Shard the test set over `threads` threads, each with its own model: the
  // intra-op pool is pinned to one thread for the virtual workers.
  const learning::Dataset& test = *data_.test;
  const int64_t n = test.size();
  const int64_t shards = std::max<int64_t>(1, std::min<int64_t>(config_.threads, n / 256 + 1));
  std::vector<StatusOr<learning::EvalResult>> results(static_cast<size_t>(shards),
                                                      internal_error("not run"));
  std::vector<std::thread> threads;
  for (int64_t s = 0; s < shards; ++s) {
    threads.emplace_back([&, s] {
      const int64_t b = n * s / shards, e = n * (s + 1) / shards;
      learning::Dataset shard;
      shard.images = test.images.narrow(0, b, e - b);
      shard.labels = test.labels.narrow(0, b, e - b);
      shard.num_classes = test.num_classes;
      if (s == 0) {
        results[0] = learning::evaluate(*model_, global_, shard, config_.eval.batch_size);
        return;
      }
      auto model = learning::make_model(config_.model);
      if (!model.is_ok()) {
        results[static_cast<size_t>(s)] = model.status();
        return;
      }
      results[static_cast<size_t>(s)] =
          learning::evaluate(**model, global_, shard, config_.eval.batch_size);
    });
  }
  for (auto& t : threads) t.join();
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

Status Federation::write_checkpoint(int64_t round) {
  Checkpoint c;
  c.round = round;
  c.global = global_;
  c.strategy_state = strategy_->state_json();
  c.strategy_tensors = strategy_->state_tensors();
  std::ostringstream rng;
  rng << rng_;
  c.rng_state = rng.str();
  c.elapsed_s = now();
  return save_checkpoint(out_dir_, c);
}

void Federation::progress(const RoundRow& row) {
  if (options_.quiet) return;
  const double elapsed = now();
  const int64_t done = row.round - first_round_ + 1;
  const double per_round = (clock_.seconds()) / static_cast<double>(std::max<int64_t>(done, 1));
  const double eta = per_round * static_cast<double>(config_.rounds - row.round);
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "round %lld/%lld  acc %.4f  loss %.4f  returned %lld/%lld  %.1fs elapsed  ETA %.0fs",
                static_cast<long long>(row.round), static_cast<long long>(config_.rounds),
                row.test_accuracy, row.test_loss, static_cast<long long>(row.returned),
                static_cast<long long>(row.selected), elapsed, eta);
  std::cerr << buf << std::endl;
}

Status Federation::write_outputs(RunSummary* summary) {
  summary->output_dir = out_dir_;
  summary->final_model = global_;
  if (config_.output.save_model) {
    FLIGHT_RETURN_IF_ERROR(model_->load_state(global_));
    summary->model_path = out_dir_ + "/model.pt";
    FLIGHT_RETURN_IF_ERROR(model_->save(summary->model_path));
  }
  FLIGHT_RETURN_IF_ERROR(write_accuracy_svg(out_dir_ + "/accuracy.svg", rows_, config_.name));
  json s = summary->to_json();
  s["name"] = config_.name;
  s["topology"] = {{"nodes", topology_->size()}, {"workers", workers_.size()}, {"tiers", tiers_}};
  s["control"] = config_.control.kind;
  s["model"] = config_.model.to_json();
  s["strategy"] = config_.strategy.name;
  std::string tmp = out_dir_ + "/summary.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << s.dump(2) << "\n";
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  fs::rename(tmp, out_dir_ + "/summary.json");
  return Status::ok();
}

StatusOr<RunSummary> Federation::run() {
  FLIGHT_RETURN_IF_ERROR(setup());
  return config_.mode == "async" ? run_async() : run_sync();
}

double Federation::slowdown(const std::string& worker) const {
  auto it = speed_.find(worker);
  return it == speed_.end() || it->second <= 0 ? 0.0 : max_speed_ / it->second - 1.0;
}

bool Federation::drops(const std::string& worker, int64_t task) const {
  if (config_.heterogeneity.dropout <= 0) return false;
  const uint64_t h = task_seed(config_.seed ^ 0xd509u, worker_index_.at(worker), task);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < config_.heterogeneity.dropout;
}

void Federation::count_worker_task(const std::string& worker, double busy_s, bool dropped,
                                   bool failed) {
  std::lock_guard<std::mutex> lock(worker_stats_mu_);
  auto& w = worker_stats_[worker];
  w.tasks++;
  w.busy_s += busy_s;
  if (dropped) w.dropped++;
  if (failed) w.failed++;
}

Status Federation::write_workers_csv(double makespan_s) {
  CsvLog csv;
  const std::string path = out_dir_ + "/workers.csv";
  std::error_code ec;
  fs::remove(path, ec);
  FLIGHT_RETURN_IF_ERROR(csv.open(path, {"worker", "speed", "tasks", "dropped", "failed",
                                         "busy_s", "idle_fraction"}));
  std::lock_guard<std::mutex> lock(worker_stats_mu_);
  for (const auto& [id, w] : worker_stats_) {
    const double idle = makespan_s > 0 ? std::max(0.0, 1.0 - w.busy_s / makespan_s) : 0.0;
    char busy[32], idle_s[32], speed[32];
    std::snprintf(busy, sizeof(busy), "%.6g", w.busy_s);
    std::snprintf(idle_s, sizeof(idle_s), "%.6g", idle);
    std::snprintf(speed, sizeof(speed), "%.6g", speed_.count(id) ? speed_.at(id) : 1.0);
    csv.write({id, speed, std::to_string(w.tasks), std::to_string(w.dropped),
               std::to_string(w.failed), busy, idle_s});
  }
  return Status::ok();
}

StatusOr<RunSummary> Federation::run_sync() {
  RunSummary summary;
  int64_t ran = 0;
  for (int64_t round = first_round_; round <= config_.rounds; ++round) {
    FLIGHT_ASSIGN_OR_RETURN(RoundRow row, run_round(round));
    rounds_csv_.write(round_cells(row, tiers_));
    rows_.push_back(row);
    progress(row);
    if (options_.on_round) options_.on_round(row);
    const int64_t every = config_.output.checkpoint_every;
    if (every > 0 && (round % every == 0 || round == config_.rounds)) {
      FLIGHT_RETURN_IF_ERROR(write_checkpoint(round));
    }
    summary.bytes_put += row.bytes_put;
    summary.bytes_fetched += row.bytes_fetched;
    ++ran;
    if (options_.stop_after_rounds > 0 && ran >= options_.stop_after_rounds &&
        round < config_.rounds) {
      summary.rounds_completed = round;
      summary.output_dir = out_dir_;
      summary.final_model = global_;
      summary.seconds = now();
      (void)invoker_->close();
      return summary;
    }
  }
  FLIGHT_RETURN_IF_ERROR(invoker_->close());
  summary.rounds_completed = config_.rounds;
  summary.seconds = now();
  summary.makespan_s = config_.clock == "virtual" ? virtual_time_ : summary.seconds;
  for (const auto& r : rows_) {
    if (r.test_accuracy >= 0) {
      summary.final_accuracy = r.test_accuracy;
      summary.final_loss = r.test_loss;
      summary.best_accuracy = std::max(summary.best_accuracy, r.test_accuracy);
    }
  }
  FLIGHT_RETURN_IF_ERROR(write_outputs(&summary));
  FLIGHT_RETURN_IF_ERROR(write_workers_csv(config_.clock == "virtual"
                                                ? virtual_time_
                                                : summary.seconds - elapsed_offset_));
  return summary;
}

}  // namespace detail

nlohmann::json RunSummary::to_json() const {
  return nlohmann::json{{"output_dir", output_dir},         {"rounds_completed", rounds_completed},
              {"final_accuracy", final_accuracy}, {"final_loss", final_loss},
              {"best_accuracy", best_accuracy},   {"seconds", seconds},
              {"bytes_put", bytes_put},           {"bytes_fetched", bytes_fetched},
              {"model_path", model_path},         {"makespan_s", makespan_s},
              {"updates_merged", updates_merged}, {"model_versions", model_versions}};
}

StatusOr<RunSummary> run_experiment(const ExperimentConfig& config, const RunOptions& options) {
  FLIGHT_RETURN_IF_ERROR(config.validate());
  detail::Federation f(config, options);
  return f.run();
}

StatusOr<std::vector<std::string>> endpoint_names(const ExperimentConfig& config) {
  FLIGHT_ASSIGN_OR_RETURN(detail::Topology t, detail::load_topology(config.topology));
  std::set<std::string> names;
  for (const auto& n : t.nodes()) {
    if (!n.is_coordinator()) names.insert(n.endpoint ? *n.endpoint : n.id);
  }
  return std::vector<std::string>(names.begin(), names.end());
}

}  // namespace flight::engine
