#include "flight/engine/sync_driver.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <unordered_map>
#include <unordered_set>

#include "flight/base/logging.h"
#include "flight/base/time.h"
#include "flight/engine/devices.h"
#include "flight/engine/output.h"
#include "flight/engine/run_context.h"

namespace flight::engine {

using topology::NodeKind;

namespace {

std::string round_scope(int64_t round) { return "round-" + std::to_string(round); }

bool by_node(const ChildUpdate& a, const ChildUpdate& b) { return a.node < b.node; }

// Per-node bookkeeping of one round, for the coordinator and aggregators.
struct NodeState {
  size_t pending = 0;  // children that have not reported
  std::vector<ChildUpdate> updates;
  std::vector<std::string> failures;
  bool launched = false;
};

}  // namespace

struct SyncDriver::RoundState {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, NodeState> nodes;         // aggregators and the root
  std::unordered_map<std::string, std::string> task_node;   // task id -> node
  std::unordered_map<std::string, faas::TaskResult> early;  // results before their id was known
  std::unordered_set<std::string> waiting_workers;          // train tasks not yet reported
  std::unordered_map<std::string, int64_t> attempts;        // worker -> train attempts
  bool root_done = false;
  bool closed = false;  // deadline passed: late worker results are dropped
  int64_t stragglers = 0, failed = 0;
  std::vector<std::string> failures;  // every failed task, e.g. worker w3: why
  double train_loss_sum = 0, train_weight_sum = 0, train_seconds_max = 0, busy = 0;
  uint64_t bytes_put = 0, bytes_fetched = 0;
  std::vector<uint64_t> bytes_up_by_tier;
  std::vector<TaskRow> rows;
  transport::Ref model_ref;  // this round's global model
  double virtual_span = 0;   // clock: virtual — the slowest returned worker's task
};

// A finished task's result read into its typed message. A result from another
// process is input like any other: a malformed one becomes a failure of that
// task, never an exception on an invoker thread (which would leave the round
// waiting forever).
struct SyncDriver::Parsed {
  faas::TaskResult raw;              // state, error and times (result JSON dropped once read)
  std::optional<TrainResult> train;  // a worker's, when ok
  std::optional<AggregateResult> aggregate;  // an aggregator's, when ok
  bool ok() const { return raw.ok(); }
};

SyncDriver::Parsed SyncDriver::parse(const faas::TaskResult& raw, bool is_worker) {
  Parsed p;
  p.raw.task_id = raw.task_id;
  p.raw.state = raw.state;
  p.raw.error = raw.error;
  p.raw.submitted_at = raw.submitted_at;
  p.raw.started_at = raw.started_at;
  p.raw.finished_at = raw.finished_at;
  if (!raw.ok()) return p;
  Status st;
  if (is_worker) {
    auto r = result_of<TrainResult>(raw);
    if (r.is_ok()) p.train = std::move(r).value();
    st = r.status();
  } else {
    auto r = result_of<AggregateResult>(raw);
    if (r.is_ok()) p.aggregate = std::move(r).value();
    st = r.status();
  }
  if (!st.is_ok()) {
    p.raw.state = faas::TaskState::kFailed;
    p.raw.error = "malformed result: " + st.message();
  }
  return p;
}

StatusOr<RunSummary> SyncDriver::run() {
  RunSummary summary;
  int64_t ran = 0;
  const ExperimentConfig& config = ctx_.config;
  for (int64_t round = ctx_.first_round; round <= config.rounds; ++round) {
    FLIGHT_ASSIGN_OR_RETURN(RoundRow row, run_round(round));
    output_.add_round(row);
    progress(row);
    if (ctx_.options.on_round) ctx_.options.on_round(row);
    const int64_t every = config.output.checkpoint_every;
    const bool checkpointed = every > 0 && (round % every == 0 || round == config.rounds);
    if (checkpointed) FLIGHT_RETURN_IF_ERROR(output_.checkpoint(round));
    summary.bytes_put += row.bytes_put;
    summary.bytes_fetched += row.bytes_fetched;
    ++ran;
    const bool stop_requested =
        round < config.rounds && ctx_.options.should_stop && ctx_.options.should_stop();
    // A stop between checkpoint_every rounds still leaves this round resumable.
    if (stop_requested && !checkpointed) FLIGHT_RETURN_IF_ERROR(output_.checkpoint(round));
    if (stop_requested || (ctx_.options.stop_after_rounds > 0 &&
                           ran >= ctx_.options.stop_after_rounds && round < config.rounds)) {
      // As if killed: no final outputs.
      summary.stopped = true;
      summary.rounds_completed = round;
      summary.output_dir = ctx_.out_dir;
      summary.final_model = ctx_.global;
      summary.seconds = ctx_.now();
      (void)ctx_.invoker->close();
      return summary;
    }
  }
  FLIGHT_RETURN_IF_ERROR(ctx_.invoker->close());
  summary.rounds_completed = config.rounds;
  summary.seconds = ctx_.now();
  const bool virtual_clock = config.clock == Clock::kVirtual;
  summary.makespan_s = virtual_clock ? virtual_time_ : summary.seconds;
  for (const auto& r : output_.rounds()) {
    if (r.test_accuracy >= 0) {
      summary.final_accuracy = r.test_accuracy;
      summary.final_loss = r.test_loss;
      summary.best_accuracy = std::max(summary.best_accuracy, r.test_accuracy);
    }
  }
  FLIGHT_RETURN_IF_ERROR(output_.finish(
      &summary, devices_, virtual_clock ? virtual_time_ : summary.seconds - ctx_.elapsed_offset));
  return summary;
}

StatusOr<RoundRow> SyncDriver::run_round(int64_t round) {
  const FaultsConfig& faults = ctx_.config.faults;
  RoundRow row;
  row.round = round;
  row.start = ctx_.now();
  const int64_t max_attempts =
      faults.on_insufficient == OnInsufficient::kRetry ? 1 + faults.max_round_retries : 1;
  for (int64_t attempt = 1;; ++attempt) {
    auto rs = std::make_shared<RoundState>();
    rs->bytes_up_by_tier.assign(ctx_.tiers, 0);
    std::vector<std::string> selected;
    Status st = run_attempt(round, rs, &selected);
    output_.add_tasks(rs->rows);
    FLIGHT_RETURN_IF_ERROR(st);

    const auto needed = static_cast<int64_t>(
        std::ceil(faults.min_fraction * static_cast<double>(selected.size()) - 1e-9));
    row.attempts = attempt;
    fill_row(*rs, selected.size(), &row);
    if (row.returned == 0 || row.returned < needed) {
      const std::string why = insufficient(round, *rs, selected.size(), needed);
      for (const auto& u : rs->nodes.at(ctx_.topology->root().id).updates) {
        if (u.owned) (void)ctx_.store->evict(u.update);
      }
      (void)ctx_.store->evict_scope(round_scope(round));
      if (attempt < max_attempts) {
        spdlog::warn("{}; retrying the round (attempt {} of {})", why, attempt + 1, max_attempts);
        continue;
      }
      return failed_precondition(why);
    }
    FLIGHT_RETURN_IF_ERROR(fold_root(round, *rs, &row));
    // A synchronous round lasts as long as its slowest returned worker.
    virtual_time_ += rs->virtual_span;
    break;
  }

  if (round % ctx_.config.eval.every == 0 || round == ctx_.config.rounds) {
    Stopwatch eval_clock;
    FLIGHT_ASSIGN_OR_RETURN(auto eval, ctx_.evaluate_global());
    row.test_loss = eval.first;
    row.test_accuracy = eval.second;
    row.eval_seconds = eval_clock.seconds();
  }
  row.end = ctx_.now();
  return row;
}

void SyncDriver::fill_row(const RoundState& rs, size_t selected, RoundRow* row) const {
  int64_t returned = 0;
  for (const auto& u : rs.nodes.at(ctx_.topology->root().id).updates) returned += u.count;
  row->selected = static_cast<int64_t>(selected);
  row->returned = returned;
  row->stragglers = rs.stragglers;
  row->failed = rs.failed;
  row->bytes_put = rs.bytes_put;
  row->bytes_fetched = rs.bytes_fetched;
  row->bytes_up_by_tier = rs.bytes_up_by_tier;
  row->train_seconds_max = rs.train_seconds_max;
  row->busy_seconds = rs.busy;
  row->train_loss = rs.train_weight_sum > 0 ? rs.train_loss_sum / rs.train_weight_sum : 0;
}

std::string SyncDriver::insufficient(int64_t round, const RoundState& rs, size_t selected,
                                     int64_t needed) const {
  const NodeState& root = rs.nodes.at(ctx_.topology->root().id);
  int64_t returned = 0;
  for (const auto& u : root.updates) returned += u.count;
  std::string why = "round " + std::to_string(round) + ": " + std::to_string(returned) + " of " +
                    std::to_string(selected) +
                    " selected workers returned an update (min_fraction " +
                    std::to_string(ctx_.config.faults.min_fraction) + " needs " +
                    std::to_string(std::max<int64_t>(needed, 1)) + ")";
  if (!rs.failures.empty())
    why += "; first failure: " + rs.failures.front();
  else if (!root.failures.empty())
    why += "; " + root.failures.front();
  return why;
}

// The coordinator's own fold over its children, in canonical order, then the
// strategy's server step.
Status SyncDriver::fold_root(int64_t round, const RoundState& rs, RoundRow* row) {
  const NodeState& root = rs.nodes.at(ctx_.topology->root().id);
  std::vector<const ChildUpdate*> children;
  children.reserve(root.updates.size());
  for (const auto& u : root.updates) children.push_back(&u);
  std::sort(children.begin(), children.end(),
            [](const ChildUpdate* a, const ChildUpdate* b) { return a->node < b->node; });
  auto fold = ctx_.strategy->begin();
  // Children that hand up the same object (debug mode: the global model) are
  // resolved once.
  const transport::Ref* last = nullptr;
  ParamSet p;
  for (const ChildUpdate* c : children) {
    if (!last || c->update != *last) {
      FLIGHT_ASSIGN_OR_RETURN(p, ctx_.store->get(c->update));
      last = &c->update;
    }
    row->coordinator_ingress += c->update.size;
    FLIGHT_RETURN_IF_ERROR(
        fold->accumulate(p, c->weight)
            .with_context("round " + std::to_string(round) + ": coordinator folding " + c->node));
    if (c->owned) (void)ctx_.store->evict(c->update);
  }
  row->bytes_fetched += row->coordinator_ingress;
  FLIGHT_ASSIGN_OR_RETURN(auto aggregate, fold->finalize());
  FLIGHT_ASSIGN_OR_RETURN(ctx_.global, ctx_.strategy->server_update(ctx_.global, aggregate));
  (void)ctx_.store->evict_scope(round_scope(round));
  return Status::ok();
}

Status SyncDriver::run_attempt(int64_t round, const RoundPtr& rs,
                               std::vector<std::string>* selected) {
  select(round, rs, selected);
  if (selected->empty()) return internal_error("strategy selected no workers");
  FLIGHT_ASSIGN_OR_RETURN(rs->model_ref,
                          ctx_.store->put(ctx_.global, {{}, round_scope(round), {}}));
  for (const auto& w : *selected) {
    rs->waiting_workers.insert(w);
    rs->attempts[w] = 1;
  }
  submit_trains(round, rs, *selected);
  wait_for_root(round, rs);
  return Status::ok();
}

void SyncDriver::select(int64_t round, const RoundPtr& rs, std::vector<std::string>* selected) {
  const auto picks = ctx_.strategy->select(ctx_.workers.size(), round, ctx_.rng);
  for (size_t i : picks) selected->push_back(ctx_.workers.at(i));
  // The induced subtree, as pending-children counts: walk up from each selected
  // worker until an ancestor already counted (O(selected x depth), no copy of
  // the topology).
  for (const auto& w : *selected) {
    const std::string* child = &w;
    while (const auto& parent = ctx_.topology->node(*child).parent) {
      auto [it, fresh] = rs->nodes.try_emplace(*parent);
      it->second.pending++;
      if (!fresh) break;
      child = &it->first;
    }
  }
}

// Submitted in chunks: with the embedded invoker's bounded queue this is
// backpressure, so 100,000 workers are never 100,000 task specs in memory,
// and results that race ahead of their id (rs->early) stay within a chunk.
void SyncDriver::submit_trains(int64_t round, const RoundPtr& rs,
                               const std::vector<std::string>& selected) {
  constexpr size_t kSubmitChunk = 1024;
  for (size_t begin = 0; begin < selected.size(); begin += kSubmitChunk) {
    const size_t end = std::min(selected.size(), begin + kSubmitChunk);
    std::vector<faas::TaskSpec> specs;
    specs.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) specs.push_back(train_spec(rs, round, selected[i]));
    auto handles = ctx_.invoker->submit_batch(
        std::move(specs),
        [this, rs, round](const faas::TaskResult& r) { on_task_done(rs, round, r); });
    Later after;
    {
      std::lock_guard<std::mutex> lock(rs->mu);
      for (size_t i = 0; i < handles.size(); ++i)
        rs->task_node[handles[i].id()] = selected[begin + i];
      take_early(rs, round, &after);
    }
    // Only ids were needed: a finished task's result should not stay alive in
    // its handle's future until the round ends.
    handles.clear();
    for (auto& f : after) f();
  }
}

// Handles the results that raced ahead of the id map and whose id is now
// known. Called with rs->mu held.
void SyncDriver::take_early(const RoundPtr& rs, int64_t round, Later* after) {
  std::vector<faas::TaskResult> early;
  for (auto& kv : rs->early) early.push_back(std::move(kv.second));
  rs->early.clear();
  for (const auto& r : early) {
    auto it = rs->task_node.find(r.task_id);
    if (it != rs->task_node.end())
      handle_result(rs, round, it->second, r, after);
    else
      rs->early.emplace(r.task_id, r);
  }
}

void SyncDriver::wait_for_root(int64_t round, const RoundPtr& rs) {
  std::unique_lock<std::mutex> lock(rs->mu);
  const double deadline_s = ctx_.config.faults.round_deadline_s;
  if (deadline_s > 0) {
    const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                   std::chrono::duration<double>(deadline_s));
    if (!rs->cv.wait_until(lock, deadline, [&] { return rs->root_done; })) {
      close_at_deadline(round, rs, &lock);
    }
  }
  rs->cv.wait(lock, [&] { return rs->root_done; });
}

// Deadline: stop waiting for the workers still training. Their parents
// aggregate what they have; aggregations already running are awaited.
void SyncDriver::close_at_deadline(int64_t round, const RoundPtr& rs,
                                   std::unique_lock<std::mutex>* lock) {
  rs->closed = true;
  std::vector<std::string> late(rs->waiting_workers.begin(), rs->waiting_workers.end());
  std::sort(late.begin(), late.end());
  std::vector<std::string> cancel_ids;
  for (const auto& kv : rs->task_node) {
    if (rs->waiting_workers.count(kv.second)) cancel_ids.push_back(kv.first);
  }
  Later launches;
  for (const auto& w : late) {
    rs->waiting_workers.erase(w);
    rs->stragglers++;
    report(rs, round, *ctx_.topology->node(w).parent, std::nullopt,
           "worker " + w + ": missed the round deadline", &launches);
  }
  lock->unlock();
  for (const auto& id : cancel_ids) ctx_.invoker->cancel(id);
  for (auto& f : launches) f();
  lock->lock();
}

faas::TaskSpec SyncDriver::train_spec(const RoundPtr& rs, int64_t round,
                                      const std::string& worker) const {
  TrainArgs a;
  a.job = ctx_.job_ref();
  a.round = round;
  a.node = worker;
  a.worker_index = ctx_.worker_index.at(worker);
  a.model = rs->model_ref;
  a.put = ctx_.put_target(worker, round_scope(round));
  return ctx_.task(worker, "train", std::move(a));
}

void SyncDriver::launch_aggregate(const RoundPtr& rs, int64_t round, const std::string& node,
                                  std::vector<ChildUpdate> children) {
  AggregateArgs a;
  a.job = ctx_.job_ref();
  a.round = round;
  a.node = node;
  a.children = std::move(children);
  a.put = ctx_.put_target(node, round_scope(round));
  submit_task(rs, round, node, ctx_.task(node, "aggregate", std::move(a)));
}

// Submits one task for `node`. Must be called without rs->mu held: the
// invoker may complete the task (and run its callback) before submit returns,
// in which case the result waits in rs->early until the id is known.
void SyncDriver::submit_task(const RoundPtr& rs, int64_t round, const std::string& node,
                             faas::TaskSpec spec) {
  faas::TaskHandle h = ctx_.invoker->submit(
      std::move(spec),
      [this, rs, round](const faas::TaskResult& r) { on_task_done(rs, round, r); });
  Later after;
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

void SyncDriver::on_task_done(const RoundPtr& rs, int64_t round, const faas::TaskResult& result) {
  Later after;
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    auto it = rs->task_node.find(result.task_id);
    if (it == rs->task_node.end()) {
      // The invoker finished the task before submit() returned its id.
      rs->early.emplace(result.task_id, result);
      return;
    }
    const std::string node = it->second;
    const double extra = ctx_.topology->node(node).is_worker() ? devices_.slowdown(node) : 0.0;
    if (result.ok() && extra > 1e-9) {
      // A simulated slow device: hold the result back for the extra time the
      // device would have needed, without keeping a compute thread.
      const double delay = train_seconds_of(result) * extra;
      devices_.delay(delay, [this, rs, round, node, r = result]() mutable {
        r.finished_at = wall_seconds();
        Later later;
        {
          std::lock_guard<std::mutex> lock(rs->mu);
          handle_result(rs, round, node, r, &later);
        }
        for (auto& f : later) f();
      });
      return;
    }
    handle_result(rs, round, node, result, &after);
  }
  for (auto& f : after) f();
}

TaskRow SyncDriver::task_row(RoundState& rs, int64_t round, const std::string& node,
                             const faas::TaskResult& result) const {
  const auto& n = ctx_.topology->node(node);
  TaskRow row;
  row.round = round;
  row.task_id = result.task_id;
  row.node = node;
  row.parent = n.parent.value_or("");
  row.kind = n.kind == NodeKind::kWorker ? "train" : "aggregate";
  row.endpoint = ctx_.endpoint_of(node);
  row.tier = ctx_.tier.at(node);
  row.status = result.ok() ? "ok" : "failed";
  // Task times are wall-clock; convert to run-relative seconds.
  const double origin = wall_seconds() - ctx_.now();
  row.submitted = result.submitted_at - origin;
  row.started = result.started_at > 0 ? result.started_at - origin : 0;
  row.finished = result.finished_at > 0 ? result.finished_at - origin : ctx_.now();
  if (result.started_at > 0 && result.finished_at > 0) {
    rs.busy += result.finished_at - result.started_at;
  }
  return row;
}

void SyncDriver::evict_update(const TrainResult& r) {
  if (r.owned) (void)ctx_.store->evict(r.update);
}

// Called with rs->mu held.
void SyncDriver::handle_result(const RoundPtr& rs, int64_t round, const std::string& node,
                               const faas::TaskResult& raw, Later* after) {
  const auto& n = ctx_.topology->node(node);
  const bool is_worker = n.kind == NodeKind::kWorker;
  const Parsed result = parse(raw, is_worker);
  TaskRow row = task_row(*rs, round, node, result.raw);
  if (is_worker && (worker_gate(rs, round, node, result, row, after) ||
                    worker_dropped(rs, round, node, result, row, after))) {
    return;
  }
  std::optional<ChildUpdate> update;
  std::string failure;
  if (result.ok()) {
    update = take_update(*rs, node, result, &row);
  } else {
    failure = (is_worker ? "worker " : "aggregator ") + node + ": " + result.raw.error;
    row.error = result.raw.error;
    if (is_worker) rs->failed++;
    rs->failures.push_back(failure);
    spdlog::warn("round {}: {}", round, failure);
  }
  rs->rows.push_back(std::move(row));
  report(rs, round, *n.parent, std::move(update), failure, after);
}

// A worker's result that does not count: late (after the deadline) or failed
// with retries left. Returns true when it was handled here.
bool SyncDriver::worker_gate(const RoundPtr& rs, int64_t round, const std::string& node,
                             const Parsed& result, TaskRow& row, Later* after) {
  if (!rs->waiting_workers.count(node)) {
    // Dropped at the deadline: the late result is counted, not used.
    row.status = "late";
    rs->rows.push_back(row);
    if (result.train) evict_update(*result.train);
    return true;
  }
  if (!result.ok() && rs->attempts[node] <= ctx_.config.faults.task_retries && !rs->closed) {
    row.status = "retried";
    row.error = result.raw.error;
    rs->rows.push_back(row);
    rs->attempts[node]++;
    spdlog::warn("round {}: worker {} failed ({}); retrying", round, node, result.raw.error);
    after->push_back(
        [this, rs, round, node] { submit_task(rs, round, node, train_spec(rs, round, node)); });
    return true;
  }
  rs->waiting_workers.erase(node);
  return false;
}

// Device accounting of a worker's result, and simulated dropout (returns true
// when the result is lost).
bool SyncDriver::worker_dropped(const RoundPtr& rs, int64_t round, const std::string& node,
                                const Parsed& result, TaskRow& row, Later* after) {
  const bool dropped = result.ok() && devices_.drops(node, round);
  const double busy = result.ok() ? devices_.busy(node, result.train->train_seconds) : 0.0;
  devices_.count_task(node, busy, dropped, !result.ok());
  if (result.ok()) rs->virtual_span = std::max(rs->virtual_span, devices_.planned(node));
  if (!dropped) return false;
  row.status = "dropped";
  row.error = "dropped out (simulated availability)";
  rs->failed++;
  rs->failures.push_back("worker " + node + ": dropped out (simulated availability)");
  evict_update(*result.train);
  rs->rows.push_back(std::move(row));
  report(rs, round, *ctx_.topology->node(node).parent, std::nullopt,
         "worker " + node + ": dropped out", after);
  return true;
}

std::optional<ChildUpdate> SyncDriver::take_update(RoundState& rs, const std::string& node,
                                                   const Parsed& result, TaskRow* row) const {
  ChildUpdate u;
  u.node = node;
  if (result.train) {
    const TrainResult& r = *result.train;
    u.update = r.update;
    u.owned = r.owned;
    u.weight = r.weight;
    u.count = 1;
    row->bytes_fetched = r.bytes_fetched;
    row->bytes_put = r.bytes_put;
    row->samples = r.n_samples;
    row->train_loss = r.loss;
    row->train_accuracy = r.accuracy;
    row->train_seconds = r.train_seconds;
    rs.train_loss_sum += row->train_loss * static_cast<double>(row->samples);
    rs.train_weight_sum += static_cast<double>(row->samples);
    rs.train_seconds_max = std::max(rs.train_seconds_max, row->train_seconds);
  } else {
    const AggregateResult& r = *result.aggregate;
    u.update = r.update;
    u.owned = r.owned;
    u.weight = r.weight;
    u.count = r.count;
    row->bytes_fetched = r.bytes_fetched;
    row->bytes_put = r.bytes_put;
  }
  rs.bytes_fetched += row->bytes_fetched;
  rs.bytes_put += row->bytes_put;
  if (static_cast<size_t>(row->tier) < rs.bytes_up_by_tier.size()) {
    rs.bytes_up_by_tier[static_cast<size_t>(row->tier)] += row->bytes_put;
  }
  return u;
}

// A child of `parent` reported (an update, or a failure). When it was the last
// one, the parent aggregates (or, being the root, the round ends). Called with
// rs->mu held; the aggregate task is submitted later, by `after`.
void SyncDriver::report(const RoundPtr& rs, int64_t round, const std::string& parent,
                        std::optional<ChildUpdate> update, const std::string& failure,
                        Later* after) {
  NodeState& ns = rs->nodes.at(parent);
  if (update) ns.updates.push_back(std::move(*update));
  if (!failure.empty()) ns.failures.push_back(failure);
  FLIGHT_CHECK(ns.pending > 0, "node " + parent + " got more reports than children");
  if (--ns.pending > 0 || ns.launched) return;
  ns.launched = true;
  if (parent == ctx_.topology->root().id) {
    rs->root_done = true;
    rs->cv.notify_all();
    return;
  }
  const std::string grand = *ctx_.topology->node(parent).parent;
  if (ns.updates.empty()) {
    // Nothing to aggregate: say so upward instead of hanging the round.
    std::string why = "aggregator " + parent + ": all children failed or were dropped";
    if (!ns.failures.empty()) why += " (first: " + ns.failures.front() + ")";
    report(rs, round, grand, std::nullopt, why, after);
    return;
  }
  std::vector<ChildUpdate> children = std::move(ns.updates);
  // Canonical fold order, so that aggregates do not depend on arrival order.
  std::sort(children.begin(), children.end(), by_node);
  after->push_back([this, rs, round, parent, children = std::move(children)]() mutable {
    launch_aggregate(rs, round, parent, std::move(children));
  });
}

void SyncDriver::progress(const RoundRow& row) const {
  if (ctx_.options.quiet) return;
  const double elapsed = ctx_.now();
  const int64_t done = row.round - ctx_.first_round + 1;
  const double per_round = ctx_.clock.seconds() / static_cast<double>(std::max<int64_t>(done, 1));
  const double eta = per_round * static_cast<double>(ctx_.config.rounds - row.round);
  char buf[256];
  std::snprintf(
      buf, sizeof(buf),
      "round %lld/%lld  acc %.4f  loss %.4f  returned %lld/%lld  %.1fs elapsed  ETA %.0fs",
      static_cast<long long>(row.round), static_cast<long long>(ctx_.config.rounds),
      row.test_accuracy, row.test_loss, static_cast<long long>(row.returned),
      static_cast<long long>(row.selected), elapsed, eta);
  std::cerr << buf << std::endl;
}

}  // namespace flight::engine
