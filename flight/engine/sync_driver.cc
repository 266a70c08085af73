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
#include "flight/engine/child_fold.h"
#include "flight/engine/devices.h"
#include "flight/engine/output.h"
#include "flight/engine/run_context.h"
#include "flight/engine/secagg_worker.h"
#include "flight/engine/secure_round.h"

namespace flight::engine {

namespace {

std::string round_scope(int64_t round) { return "round-" + std::to_string(round); }

// Per-node bookkeeping of one round, for the coordinator and aggregators.
struct NodeState {
  size_t pending = 0;                      // children that have not reported
  std::vector<NodeTable::Index> children;  // the selected children in canonical (id) order
  // Per position: 1 while a worker's update has arrived and is not yet
  // folded; it holds one of the round's train-result credits.
  std::vector<uint8_t> holds_credit;
  size_t settled = 0;             // positions [0, settled) are folded or skipped
  std::vector<ChildUpdate> mail;  // arrived, not yet handed to the fold
  std::vector<int64_t> skips;     // positions that will not report, not yet handed over
  std::vector<std::string> failures;
  int64_t returned = 0;      // worker updates behind the children that arrived
  bool sent_update = false;  // an update was handed to the fold
  bool in_flight = false;    // aggregator: an aggregate task is running
  bool final_sent = false;   // aggregator: the task bringing the last position is out
  bool finished = false;     // reported upward (aggregator) or its fold failed (root)
  // Aggregator: the tasks.csv row of its streaming tasks so far (one row per
  // aggregator and round: first submission to last answer, bytes summed).
  std::optional<TaskRow> row;
};

// Accumulates a streaming aggregate task's row into its node's one row.
void merge_rows(NodeState* ns, TaskRow row) {
  if (!ns->row) {
    ns->row = std::move(row);
    return;
  }
  ns->row->finished = row.finished;
  ns->row->bytes_fetched += row.bytes_fetched;
}

}  // namespace

// A node's part in one round, by node index (NodeTable). 16 bytes per node of
// the topology, selected or not: a round allocates one flat vector instead
// of a map node per selected worker.
struct NodeRound {
  static constexpr uint32_t kNone = NodeTable::kNone;
  uint32_t position = kNone;  // in its parent's canonical order
  uint32_t agg = kNone;       // coordinator / aggregator: its slot in RoundState::aggs
  uint32_t order = kNone;     // worker: its place in RoundState::order
  uint16_t attempts = 0;      // worker: train tasks submitted (0: not yet)
  bool waiting = false;       // worker: selected and not yet reported
};

struct SyncDriver::RoundState {
  std::mutex mu;
  std::condition_variable cv;   // the driving thread waits on it
  std::vector<NodeRound> node;  // by node index
  std::vector<NodeState> aggs;  // the aggregating nodes taking part (root first)
  // Flow control: the selected workers depth-first in canonical order (the
  // submission order, so each node's children come in its fold order), how
  // many were submitted, and the credits (train results outstanding).
  std::vector<NodeTable::Index> order;
  // Per place in `order`: the id of the worker's latest train task (for
  // cancelling stragglers at the deadline).
  std::vector<std::string> task_ids;
  size_t next_submit = 0;
  size_t submit_end = 0;  // order[submit_end, end) are never submitted (secure: left out)
  size_t outstanding = 0;
  size_t budget = 0;  // max outstanding
  size_t refill = 1;  // the driver refills once this many credits are free
  size_t window = 1;  // fold window of every node
  bool driver_waiting = false;
  std::string session;  // streaming aggregate session of this attempt
  bool closed = false;  // deadline passed: late worker results are dropped
  int64_t waiting = 0;  // workers with node[w].waiting
  int64_t stragglers = 0, failed = 0;
  std::vector<std::string> failures;  // every failed task, e.g. worker w3: why
  double train_seconds_max = 0, busy = 0;
  // Per worker: (id rank, loss × samples, samples), summed in id order when
  // the row is filled so that the mean train loss does not depend on arrival
  // order (summed as results arrived it differed between identical runs in
  // the last digit; scripts/chaos.sh compares rounds.csv).
  struct Loss {
    uint32_t rank;
    double weighted, samples;
  };
  std::vector<Loss> train_losses;
  std::vector<int64_t> delivered;  // topk: ledger keys (error_feedback.h) of updates taken
  uint64_t bytes_put = 0, bytes_fetched = 0;
  std::vector<uint64_t> bytes_up_by_tier;
  std::vector<TaskRow> rows;
  transport::Ref model_ref;                  // this round's global model
  std::string scope;                         // the round's store scope
  std::optional<DpTask> dp;                  // privacy.dp: what each train task is told
  int64_t dp_reports = 0, dp_unclipped = 0;  // workers' clip bits (adaptive clipping)
  double virtual_span = 0;  // clock: virtual — the slowest returned worker's task
  // The coordinator's fold: used by the driving thread only, outside `mu`.
  std::unique_ptr<ChildFold> root_fold;
  Status root_status;  // its first error
  uint64_t coordinator_ingress = 0;
  int64_t attempt = 1;
  // privacy.secure_aggregation: the coordinator's side of the round; per
  // node, whether its parent took its update (to name the survivors); and
  // whether the round failed for too few secure-aggregation answers (an
  // insufficient round: retried or stopped like one).
  std::unique_ptr<SecureRound> secure;
  std::vector<uint8_t> taken;
  bool secure_insufficient = false;

  NodeState& agg(NodeTable::Index i) { return aggs[node[i].agg]; }
  const NodeState& agg(NodeTable::Index i) const { return aggs[node[i].agg]; }
  NodeState& root() { return aggs.front(); }
  const NodeState& root() const { return aggs.front(); }
};

// A finished task's result read into its typed message. A result from another
// process is input like any other: a malformed one becomes a failure of that
// task, never an exception on an invoker thread (which would leave the round
// waiting forever).
//
// In process the typed result is read where it is (the task's message), not
// copied; only a result from JSON is kept here. So a Parsed lives no longer
// than the TaskResult it reads, and is not copied or moved.
struct SyncDriver::Parsed {
  const faas::TaskResult* raw = nullptr;  // id and times
  bool ok_ = false;
  std::string error;                           // why, when !ok()
  const TrainResult* train = nullptr;          // a worker's, when ok
  const AggregateResult* aggregate = nullptr;  // an aggregator's, when ok
  std::optional<TrainResult> train_read;       // read from JSON (another process)
  std::optional<AggregateResult> aggregate_read;

  Parsed() = default;
  Parsed(const Parsed&) = delete;
  Parsed& operator=(const Parsed&) = delete;
  bool ok() const { return ok_; }
};

// The typed result in `r`'s message, or read from its JSON into `storage`.
template <typename Result>
static Status read_result(const faas::TaskResult& r, const Result** out,
                          std::optional<Result>* storage) {
  if (const Result* typed = faas::message_as<Result>(r.message)) {
    *out = typed;
    return Status::ok();
  }
  StatusOr<Result> read = Result::from_json(r.result);
  FLIGHT_RETURN_IF_ERROR(read.status());
  *storage = std::move(read).value();
  *out = &**storage;
  return Status::ok();
}

void SyncDriver::parse(const faas::TaskResult& raw, bool is_worker, Parsed* p) {
  p->raw = &raw;
  p->ok_ = raw.ok();
  if (!raw.ok()) {
    p->error = raw.error;
    return;
  }
  const Status st = is_worker ? read_result(raw, &p->train, &p->train_read)
                              : read_result(raw, &p->aggregate, &p->aggregate_read);
  if (!st.is_ok()) {
    p->ok_ = false;
    p->train = nullptr;
    p->aggregate = nullptr;
    p->error = "malformed result: " + st.message();
  }
}

SyncDriver::SyncDriver(RunContext& ctx, SimulatedDevices& devices, RunOutput& output)
    : ctx_(ctx), devices_(devices), output_(output), nodes_(*ctx.topology, ctx.workers) {
  endpoints_.reserve(nodes_.size());
  put_connectors_.reserve(nodes_.size());
  // Keyed by the node's own `connector:` setting (null: the default).
  std::unordered_map<std::string, transport::ConnectorConfig> shared;
  for (Node i = 0; i < nodes_.size(); ++i) {
    const std::string& id = nodes_.id(i);
    endpoints_.push_back(ctx_.endpoint_of(id));
    auto [it, fresh] = shared.try_emplace(ctx_.topology->nodes()[i].connector.dump());
    if (fresh) it->second = ctx_.node_connector(id);
    put_connectors_.push_back(it->second);
  }
}

SyncDriver::~SyncDriver() = default;

template <typename Args>
faas::TaskSpec SyncDriver::spec(Node node, const char* function, Args args) const {
  // Null JSON args (the message is the args): no JSON object per task.
  return faas::TaskSpec{
      endpoints_[node], function,
      nlohmann::json(),
      /*deadline_s=*/0, std::make_shared<faas::TypedMessage<Args>>(std::move(args)),
      /*tag=*/node};
}

StatusOr<RunSummary> SyncDriver::run() {
  RunSummary summary;
  int64_t ran = 0;
  const ExperimentConfig& config = ctx_.config;
  int64_t last = ctx_.first_round - 1;  // last completed round
  for (int64_t round = ctx_.first_round; round <= config.rounds; ++round) {
    if (ctx_.dp) {
      // The privacy budget is checked before the round that would spend it.
      std::mt19937_64 probe = ctx_.rng;
      const auto cohort =
          static_cast<int64_t>(ctx_.strategy->select(ctx_.workers.size(), round, probe).size());
      summary.stop_reason = ctx_.dp->over_budget(round, cohort);
      if (!summary.stop_reason.empty()) {
        spdlog::warn("{}", summary.stop_reason);
        const int64_t every = config.output.checkpoint_every;
        if (last >= ctx_.first_round && !(every > 0 && last % every == 0)) {
          FLIGHT_RETURN_IF_ERROR(output_.checkpoint(last));
        }
        break;
      }
    }
    FLIGHT_ASSIGN_OR_RETURN(RoundRow row, run_round(round));
    last = round;
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
  summary.rounds_completed = last;
  if (ctx_.dp) summary.privacy = ctx_.dp->summary();
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
    rs->session = "r" + std::to_string(round) + "." + std::to_string(attempt);
    rs->scope = round_scope(round);
    rs->attempt = attempt;
    Status st = run_attempt(round, rs);
    output_.add_tasks(rs->rows);
    if (!st.is_ok()) {
      rs->root_fold.reset();
      if (rs->secure_insufficient && attempt < max_attempts) {
        spdlog::warn("{}; retrying the round (attempt {} of {})", st.message(), attempt + 1,
                     max_attempts);
        continue;
      }
      return st;
    }

    const auto needed = static_cast<int64_t>(
        std::ceil(faults.min_fraction * static_cast<double>(rs->order.size()) - 1e-9));
    row.attempts = attempt;
    fill_row(*rs, &row);
    if (row.returned == 0 || row.returned < needed) {
      const std::string why = insufficient(round, *rs, needed);
      rs->root_fold.reset();  // evicts what it held
      (void)ctx_.store->evict_scope(round_scope(round));
      if (attempt < max_attempts) {
        spdlog::warn("{}; retrying the round (attempt {} of {})", why, attempt + 1, max_attempts);
        continue;
      }
      return failed_precondition(why);
    }
    st = finish_root(round, *rs);
    if (!st.is_ok() && rs->secure_insufficient && attempt < max_attempts) {
      spdlog::warn("{}; retrying the round (attempt {} of {})", st.message(), attempt + 1,
                   max_attempts);
      continue;
    }
    FLIGHT_RETURN_IF_ERROR(st);
    if (ctx_.dp) row.epsilon = ctx_.dp->epsilon();
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

void SyncDriver::fill_row(const RoundState& rs, RoundRow* row) const {
  row->selected = static_cast<int64_t>(rs.order.size());
  row->returned = rs.root().returned;
  row->stragglers = rs.stragglers;
  row->failed = rs.failed;
  row->bytes_put = rs.bytes_put;
  row->coordinator_ingress = rs.coordinator_ingress;
  row->bytes_fetched = rs.bytes_fetched + rs.coordinator_ingress;
  row->bytes_up_by_tier = rs.bytes_up_by_tier;
  row->train_seconds_max = rs.train_seconds_max;
  row->busy_seconds = rs.busy;
  std::vector<RoundState::Loss> losses = rs.train_losses;
  std::sort(losses.begin(), losses.end(),
            [](const RoundState::Loss& a, const RoundState::Loss& b) { return a.rank < b.rank; });
  double loss_sum = 0, weight_sum = 0;
  for (const auto& loss : losses) {
    loss_sum += loss.weighted;
    weight_sum += loss.samples;
  }
  row->train_loss = weight_sum > 0 ? loss_sum / weight_sum : 0;
}

std::string SyncDriver::insufficient(int64_t round, const RoundState& rs, int64_t needed) const {
  const NodeState& root = rs.root();
  const size_t selected = rs.order.size();
  std::string why = "round " + std::to_string(round) + ": " + std::to_string(root.returned) +
                    " of " + std::to_string(selected) +
                    " selected workers returned an update (min_fraction " +
                    std::to_string(ctx_.config.faults.min_fraction) + " needs " +
                    std::to_string(std::max<int64_t>(needed, 1)) + ")";
  if (!rs.failures.empty())
    why += "; first failure: " + rs.failures.front();
  else if (!root.failures.empty())
    why += "; " + root.failures.front();
  return why;
}

// The coordinator's fold is complete (it folded its children as they
// reported, in canonical order): its result and the strategy's server step.
Status SyncDriver::finish_root(int64_t round, RoundState& rs) {
  StatusOr<aggregators::Weighted> aggregate =
      rs.root_status.is_ok() ? rs.root_fold->finalize() : rs.root_status;
  rs.root_fold.reset();
  if (!aggregate.is_ok()) {
    (void)ctx_.store->evict_scope(round_scope(round));
    return aggregate.status().with_context("round " + std::to_string(round) + ": coordinator fold");
  }
  if (rs.secure) {
    // The masked total of the survivors: their reveals remove the masks.
    std::unordered_set<std::string> taken;
    for (Node i = 0; i < rs.taken.size(); ++i) {
      if (rs.taken[i]) taken.insert(nodes_.id(i));
    }
    const auto survivors = rs.secure->survivors(taken);
    rs.dp_reports = static_cast<int64_t>(survivors.size());
    aggregate =
        rs.secure->finish(ctx_.global, std::move(aggregate).value(), survivors, &rs.dp_unclipped);
    if (!aggregate.is_ok()) {
      (void)ctx_.store->evict_scope(round_scope(round));
      rs.secure_insufficient = aggregate.status().code() == StatusCode::kFailedPrecondition;
      return aggregate.status().with_context("round " + std::to_string(round) +
                                             ": secure aggregation");
    }
  }
  if (ctx_.dp) {
    Status st = ctx_.dp->finish_round(round, ctx_.global, static_cast<int64_t>(rs.order.size()),
                                      rs.dp_reports, rs.dp_unclipped, &*aggregate);
    if (!st.is_ok()) {
      (void)ctx_.store->evict_scope(round_scope(round));
      return st.with_context("round " + std::to_string(round) + ": privacy.dp");
    }
  }
  if (ctx_.ef) {
    // topk: the fold is the mean delta; the workers that reported sent theirs.
    Status st = apply_mean_delta(ctx_.global, &*aggregate);
    if (!st.is_ok()) {
      (void)ctx_.store->evict_scope(round_scope(round));
      return st.with_context("round " + std::to_string(round) + ": topk");
    }
    for (int64_t w : rs.delivered) ctx_.ef->commit(w, round);
  }
  FLIGHT_ASSIGN_OR_RETURN(ctx_.global, ctx_.strategy->server_update(ctx_.global, *aggregate));
  (void)ctx_.store->evict_scope(round_scope(round));
  return Status::ok();
}

Status SyncDriver::run_attempt(int64_t round, const RoundPtr& rs) {
  select(round, *rs);
  if (rs->order.empty()) return internal_error("strategy selected no workers");
  FLIGHT_ASSIGN_OR_RETURN(rs->model_ref, ctx_.store->put(ctx_.global, {{}, rs->scope, {}}));
  if (ctx_.dp) rs->dp = ctx_.dp->task(static_cast<int64_t>(rs->order.size()));
  if (ctx_.config.secure) FLIGHT_RETURN_IF_ERROR(start_secure(round, rs));
  rs->window = static_cast<size_t>(ctx_.config.fold.window_for(rs->model_ref.size));
  // Embedded: every update lives in this process until folded, so at most a
  // window of them may be outstanding. REST: they live in the connectors'
  // servers; submit everything (the invoker batches).
  rs->budget = ctx_.is_local() ? rs->window : rs->submit_end;
  rs->refill = std::max<size_t>(1, rs->budget / 4);
  rs->root_fold = std::make_unique<ChildFold>(rs->secure ? masked_sum() : ctx_.strategy->begin(),
                                              *ctx_.store, rs->root().children.size(), rs->window);
  drive(round, rs);
  return Status::ok();
}

void SyncDriver::select(int64_t round, RoundState& rs) {
  const auto picks = ctx_.strategy->select(ctx_.workers.size(), round, ctx_.rng);
  rs.node.assign(nodes_.size(), NodeRound());
  // The induced subtree, as each node's selected children: walk up from each
  // selected worker until an ancestor already counted (O(selected x depth),
  // no copy of the topology). The root's slot is aggs[0].
  rs.aggs.emplace_back();
  rs.node[NodeTable::root()].agg = 0;
  for (size_t k : picks) {
    Node child = nodes_.worker(k);
    rs.node[child].waiting = true;
    ++rs.waiting;
    Node parent = nodes_.parent(child);
    while (parent != NodeTable::kNone) {
      NodeRound& p = rs.node[parent];
      const bool fresh = p.agg == NodeRound::kNone;
      if (fresh) {
        p.agg = static_cast<uint32_t>(rs.aggs.size());
        rs.aggs.emplace_back();
      }
      NodeState& ns = rs.aggs[p.agg];
      ns.children.push_back(child);
      ns.pending++;
      if (!fresh) break;
      child = parent;
      parent = nodes_.parent(child);
    }
  }
  // Canonical fold order: sorted ids (by rank: the same order, integer
  // compares), so aggregates do not depend on arrival order.
  for (NodeState& ns : rs.aggs) {
    std::sort(ns.children.begin(), ns.children.end(),
              [this](Node a, Node b) { return nodes_.rank(a) < nodes_.rank(b); });
    ns.holds_credit.assign(ns.children.size(), 0);
    for (size_t i = 0; i < ns.children.size(); ++i) {
      rs.node[ns.children[i]].position = static_cast<uint32_t>(i);
    }
  }
  // Submission order: depth-first, children in canonical order, so that each
  // node receives its children (nearly) in the order it folds them.
  rs.order.reserve(picks.size());
  std::vector<Node> stack{NodeTable::root()};
  while (!stack.empty()) {
    const Node id = stack.back();
    stack.pop_back();
    if (rs.node[id].agg == NodeRound::kNone) {
      rs.node[id].order = static_cast<uint32_t>(rs.order.size());
      rs.order.push_back(id);  // a worker
      continue;
    }
    const auto& kids = rs.agg(id).children;
    for (auto k = kids.rbegin(); k != kids.rend(); ++k) stack.push_back(*k);
  }
  rs.task_ids.resize(rs.order.size());
  rs.submit_end = rs.order.size();
  rs.train_losses.reserve(rs.order.size());
  rs.rows.reserve(rs.order.size() + rs.aggs.size());
}

// The driving thread's loop: submits train tasks as credits allow, folds the
// coordinator's children as they report, and closes the round at its
// deadline; returns once every child of the root has reported.
void SyncDriver::drive(int64_t round, const RoundPtr& rs) {
  constexpr size_t kSubmitChunk = 1024;
  const double deadline_s = ctx_.config.faults.round_deadline_s;
  const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                 std::chrono::duration<double>(deadline_s));
  const Node root_id = NodeTable::root();
  std::unique_lock<std::mutex> lock(rs->mu);
  NodeState& root = rs->root();
  auto can_submit = [&](size_t free) {
    return !rs->closed && rs->next_submit < rs->submit_end && rs->outstanding + free <= rs->budget;
  };
  while (true) {
    if (can_submit(1)) {
      const size_t n =
          std::min({rs->budget - rs->outstanding, kSubmitChunk, rs->submit_end - rs->next_submit});
      const size_t first = rs->next_submit;
      rs->next_submit += n;
      rs->outstanding += n;
      for (size_t i = first; i < first + n; ++i) rs->node[rs->order[i]].attempts = 1;
      lock.unlock();
      submit_trains(round, rs, first, n);
      lock.lock();
      continue;
    }
    if (!root.mail.empty() || !root.skips.empty()) {
      std::vector<ChildUpdate> mail = std::move(root.mail);
      std::vector<int64_t> skips = std::move(root.skips);
      root.mail.clear();
      root.skips.clear();
      root.sent_update = root.sent_update || !mail.empty();
      lock.unlock();
      fold_at_root(round, *rs, std::move(mail), skips);
      lock.lock();
      if (!rs->root_status.is_ok() && !root.finished) {
        // The round fails; release every credit so the driver can drain it.
        root.finished = true;
        settle(*rs, root_id, root.children.size());
      } else if (rs->root_status.is_ok()) {
        settle(*rs, root_id, rs->root_fold->next());
      }
      continue;
    }
    if (root.pending == 0) break;
    auto ready = [&] {
      return !root.mail.empty() || !root.skips.empty() || root.pending == 0 ||
             can_submit(rs->refill);
    };
    rs->driver_waiting = true;
    if (deadline_s > 0 && !rs->closed) {
      if (!rs->cv.wait_until(lock, deadline, ready)) close_at_deadline(round, rs, &lock);
    } else {
      rs->cv.wait(lock, ready);
    }
    rs->driver_waiting = false;
  }
}

// The coordinator's fold of children that reported (driving thread, without
// rs.mu: only this thread touches root_fold).
void SyncDriver::fold_at_root(int64_t round, RoundState& rs, std::vector<ChildUpdate> mail,
                              const std::vector<int64_t>& skips) {
  for (const auto& c : mail) rs.coordinator_ingress += c.update.size;
  Status st = rs.root_fold->add(std::move(mail));
  for (int64_t k : skips) {
    if (st.is_ok()) st = rs.root_fold->skip(static_cast<size_t>(k));
  }
  if (!st.is_ok() && rs.root_status.is_ok()) {
    rs.root_status = st.with_context("round " + std::to_string(round) + ": coordinator folding");
  }
}

// Workers [first, first + n) of the submission order. Submitted as one batch:
// with the embedded invoker's bounded queue this is backpressure.
void SyncDriver::submit_trains(int64_t round, const RoundPtr& rs, size_t first, size_t n) {
  std::vector<faas::TaskSpec> specs;
  specs.reserve(n);
  for (size_t i = first; i < first + n; ++i) specs.push_back(train_spec(*rs, round, rs->order[i]));
  auto handles = ctx_.invoker->submit_batch(
      std::move(specs),
      [this, rs, round](const faas::TaskResult& r) { on_task_done(rs, round, r); });
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    for (size_t i = 0; i < handles.size(); ++i) {
      // A retry that raced ahead already wrote its own, newer id.
      std::string& id = rs->task_ids[first + i];
      if (id.empty()) id = handles[i].id();
    }
  }
  // Only ids were needed: a finished task's result should not stay alive in
  // its handle's future until the round ends.
  handles.clear();
}

// Deadline: stop waiting for the workers still training (or not yet
// submitted). Their parents aggregate what they have; aggregations already
// running are awaited.
void SyncDriver::close_at_deadline(int64_t round, const RoundPtr& rs,
                                   std::unique_lock<std::mutex>* lock) {
  rs->closed = true;
  // Workers still waiting, in id order (as the failures were always listed).
  std::vector<Node> late;
  std::vector<std::string> cancel_ids;
  for (size_t k = 0; k < rs->order.size(); ++k) {
    const Node w = rs->order[k];
    if (!rs->node[w].waiting) continue;
    late.push_back(w);
    if (!rs->task_ids[k].empty()) cancel_ids.push_back(rs->task_ids[k]);
  }
  std::sort(late.begin(), late.end(),
            [this](Node a, Node b) { return nodes_.rank(a) < nodes_.rank(b); });
  Later launches;
  for (const Node w : late) {
    rs->node[w].waiting = false;
    --rs->waiting;
    rs->stragglers++;
    report(rs, round, nodes_.parent(w), w, std::nullopt,
           "worker " + nodes_.id(w) + ": missed the round deadline", &launches);
  }
  lock->unlock();
  for (const auto& id : cancel_ids) ctx_.invoker->cancel(id);
  for (auto& f : launches) f();
  lock->lock();
}

// privacy.secure_aggregation: the key exchange before training
// (secure_round.h). Workers that did not complete it are left out of the
// round: reported as failed to their parents, never trained.
Status SyncDriver::start_secure(int64_t round, const RoundPtr& rs) {
  std::vector<std::string> selected;
  selected.reserve(rs->order.size());
  for (const Node w : rs->order) selected.push_back(nodes_.id(w));
  auto secure = SecureRound::start(ctx_, round, rs->attempt, selected);
  if (!secure.is_ok()) {
    rs->secure_insufficient = secure.status().code() == StatusCode::kFailedPrecondition;
    (void)ctx_.store->evict_scope(rs->scope);
    return secure.status();
  }
  rs->secure = std::move(secure).value();
  rs->taken.assign(nodes_.size(), 0);
  if (rs->secure->left_out().empty()) return Status::ok();
  Later after;
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    for (const auto& [id, why] : rs->secure->left_out()) {
      const Node w = nodes_.index_of(id);
      rs->node[w].waiting = false;
      --rs->waiting;
      rs->failed++;
      const std::string failure = "worker " + id + ": " + why;
      rs->failures.push_back(failure);
      spdlog::warn("round {}: {}", round, failure);
      report(rs, round, nodes_.parent(w), w, std::nullopt, failure, &after);
    }
    // Still selected (they count against min_fraction), never submitted:
    // moved past submit_end.
    std::stable_partition(rs->order.begin(), rs->order.end(),
                          [&](Node w) { return rs->node[w].waiting; });
    for (size_t k = 0; k < rs->order.size(); ++k) {
      rs->node[rs->order[k]].order = static_cast<uint32_t>(k);
    }
    rs->submit_end = rs->order.size() - rs->secure->left_out().size();
  }
  for (auto& f : after) f();
  return Status::ok();
}

faas::TaskSpec SyncDriver::train_spec(const RoundState& rs, int64_t round, Node worker) const {
  const std::string& id = nodes_.id(worker);
  TrainArgs a;
  a.job = ctx_.job_ref();
  a.round = round;
  a.node = id;
  a.worker_index = nodes_.worker_index(worker);
  a.model = rs.model_ref;
  a.put.connector = put_connectors_[worker];
  a.put.scope = rs.scope;
  a.dp = rs.dp;
  if (ctx_.ef) a.ef_round = ctx_.ef->delivered(a.worker_index);
  if (rs.secure) a.secure = rs.secure->train_part(id);
  return spec(worker, "train", std::move(a));
}

// Hands an aggregator's mail (children that arrived, positions skipped) to
// its fold in a streaming `aggregate` task, unless one is in flight (its
// result launches the next) or there is nothing worth a task yet (skips
// alone wait for an update or the last report). Called with rs->mu held; the
// task is submitted later, by `after`.
void SyncDriver::maybe_launch(const RoundPtr& rs, int64_t round, Node node, Later* after) {
  NodeState& ns = rs->agg(node);
  if (ns.in_flight || ns.final_sent || ns.finished) return;
  const bool last = ns.pending == 0;
  if (ns.mail.empty() && !last) return;
  // A streaming fold keeps its partial sum in the aggregator's process
  // between tasks, so it needs every task of the node to run there: true
  // in-process. A REST endpoint name may be served by several processes
  // (twins that take over each other's leases), so over REST the aggregator
  // gets one task with every child once all have reported, folded in the
  // same canonical order (bit-identical) with a bounded fetch window.
  const bool streaming = ctx_.is_local();
  if (!streaming && !last) return;
  if (last && ns.mail.empty() && !ns.sent_update) {
    // Nothing to aggregate: say so upward instead of hanging the round.
    ns.finished = true;
    std::string why = "aggregator " + nodes_.id(node) + ": all children failed or were dropped";
    if (!ns.failures.empty()) why += " (first: " + ns.failures.front() + ")";
    report(rs, round, nodes_.parent(node), node, std::nullopt, why, after);
    return;
  }
  AggregateArgs a;
  a.job = ctx_.job_ref();
  a.round = round;
  a.node = nodes_.id(node);
  a.children = std::move(ns.mail);
  ns.mail.clear();
  a.put.connector = put_connectors_[node];
  a.put.scope = rs->scope;
  if (ctx_.ef && ctx_.config.aggregator_fraction > 0) {
    a.ef_round = ctx_.ef->delivered(aggregator_key(a.node));
  }
  a.masked = rs->secure != nullptr;
  ns.sent_update = true;
  ns.in_flight = true;
  ns.final_sent = last;
  if (!streaming) {
    std::sort(a.children.begin(), a.children.end(),
              [](const ChildUpdate& x, const ChildUpdate& y) { return x.index < y.index; });
    ns.skips.clear();
    after->push_back([this, rs, round, node, a = std::move(a)]() mutable {
      submit_task(rs, round, spec(node, "aggregate", std::move(a)));
    });
    return;
  }
  FoldStream stream;
  stream.session = rs->session;
  stream.total = static_cast<int64_t>(ns.children.size());
  stream.window = static_cast<int64_t>(rs->window);
  stream.skipped = std::move(ns.skips);
  ns.skips.clear();
  a.stream = std::move(stream);
  after->push_back([this, rs, round, node, a = std::move(a)]() mutable {
    submit_task(rs, round, spec(node, "aggregate", std::move(a)));
  });
}

// Submits one task (its tag names its node). Must be called without rs->mu
// held: the invoker may complete the task (and run its callback) before
// submit returns.
void SyncDriver::submit_task(const RoundPtr& rs, int64_t round, faas::TaskSpec spec) {
  const Node node = static_cast<Node>(spec.tag);
  // With large updates (>= 1 MiB) an aggregation runs before queued
  // training, since its children's updates wait in memory, holding
  // flow-control credits, until it folds them. Small ones cost little to
  // hold; FIFO then lets a later aggregate task fold more children at once
  // (with priority, 10,000 x tiny 3-tier ran an aggregate task per child).
  constexpr uint64_t kUrgentFoldBytes = 1 << 20;
  if (!nodes_.is_worker(node) && rs->model_ref.size >= kUrgentFoldBytes) spec.priority = 1;
  faas::TaskHandle h = ctx_.invoker->submit(
      std::move(spec),
      [this, rs, round](const faas::TaskResult& r) { on_task_done(rs, round, r); });
  if (!nodes_.is_worker(node)) return;
  // A worker's retry: the id to cancel at the deadline is now this one.
  std::lock_guard<std::mutex> lock(rs->mu);
  rs->task_ids[rs->node[node].order] = h.id();
}

void SyncDriver::on_task_done(const RoundPtr& rs, int64_t round, const faas::TaskResult& result) {
  const Node node = static_cast<Node>(result.tag);
  // clock: virtual — device time is simulated (SimulatedDevices::busy), so a
  // slow device's result is not held back in real time (that only left the
  // cores idle while the round waited for it).
  const double extra = nodes_.is_worker(node) && ctx_.config.clock != Clock::kVirtual
                           ? devices_.slowdown(static_cast<size_t>(nodes_.worker_index(node)))
                           : 0.0;
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
  Later after;
  {
    std::lock_guard<std::mutex> lock(rs->mu);
    handle_result(rs, round, node, result, &after);
  }
  for (auto& f : after) f();
}

TaskRow SyncDriver::task_row(RoundState& rs, int64_t round, Node node, const Parsed& parsed) const {
  const faas::TaskResult& result = *parsed.raw;
  TaskRow row;
  row.round = round;
  row.task_id = result.task_id;
  row.node = nodes_.id(node);
  const Node parent = nodes_.parent(node);
  if (parent != NodeTable::kNone) row.parent = nodes_.id(parent);
  row.kind = nodes_.is_worker(node) ? "train" : "aggregate";
  row.endpoint = endpoints_[node];
  row.tier = nodes_.tier(node);
  row.status = parsed.ok() ? "ok" : "failed";
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
void SyncDriver::handle_result(const RoundPtr& rs, int64_t round, Node node,
                               const faas::TaskResult& raw, Later* after) {
  const bool is_worker = nodes_.is_worker(node);
  Parsed result;
  parse(raw, is_worker, &result);
  TaskRow row = task_row(*rs, round, node, result);
  if (is_worker && (worker_gate(rs, round, node, result, row, after) ||
                    worker_dropped(rs, round, node, result, row, after))) {
    return;
  }
  if (!is_worker && aggregate_progress(rs, round, node, result, row, after)) return;
  std::optional<ChildUpdate> update;
  std::string failure;
  if (result.ok()) {
    update = take_update(*rs, node, result, &row);
  } else {
    failure = (is_worker ? "worker " : "aggregator ") + nodes_.id(node) + ": " + result.error;
    row.error = result.error;
    if (is_worker) rs->failed++;
    rs->failures.push_back(failure);
    spdlog::warn("round {}: {}", round, failure);
  }
  rs->rows.push_back(std::move(row));
  report(rs, round, nodes_.parent(node), node, std::move(update), failure, after);
}

// An aggregator's streaming task answered. Partial progress (done: false)
// settles the positions folded so far and launches the next task; returns
// true when it was handled here. A final answer or a failure ends the node's
// fold: its credits are settled and it reports upward (by the caller).
bool SyncDriver::aggregate_progress(const RoundPtr& rs, int64_t round, Node node,
                                    const Parsed& result, TaskRow& row, Later* after) {
  NodeState& ns = rs->agg(node);
  ns.in_flight = false;
  if (result.ok() && !result.aggregate->done && !ns.final_sent) {
    rs->bytes_fetched += result.aggregate->bytes_fetched;
    row.bytes_fetched = result.aggregate->bytes_fetched;
    merge_rows(&ns, std::move(row));
    settle(*rs, node,
           static_cast<size_t>(std::clamp<int64_t>(result.aggregate->folded, 0,
                                                   static_cast<int64_t>(ns.children.size()))));
    maybe_launch(rs, round, node, after);
    return true;
  }
  ns.finished = true;
  if (ns.row) {
    // Earlier streaming tasks of this node: one row for the whole fold.
    TaskRow last = std::move(row);
    row = *std::move(ns.row);
    ns.row.reset();
    row.task_id = last.task_id;
    row.status = last.status;
    row.error = last.error;
    row.finished = last.finished;
  }
  if (result.ok() && !result.aggregate->done) {
    // The task that brought the last position must complete the fold.
    rs->rows.push_back(row);
    report(rs, round, nodes_.parent(node), node, std::nullopt,
           "aggregator " + nodes_.id(node) + ": its last aggregate task did not complete the fold",
           after);
  }
  // Done or failed: nothing more is folded here. Unsent updates are evicted.
  for (const auto& c : ns.mail) {
    if (c.owned) (void)ctx_.store->evict(c.update);
  }
  ns.mail.clear();
  settle(*rs, node, ns.children.size());
  return result.ok() && !result.aggregate->done;
}

// A worker's result that does not count: late (after the deadline) or failed
// with retries left. Returns true when it was handled here.
bool SyncDriver::worker_gate(const RoundPtr& rs, int64_t round, Node node, const Parsed& result,
                             TaskRow& row, Later* after) {
  NodeRound& nr = rs->node[node];
  if (!nr.waiting) {
    // Dropped at the deadline: the late result is counted, not used.
    row.status = "late";
    rs->rows.push_back(row);
    if (result.train) evict_update(*result.train);
    return true;
  }
  if (!result.ok() && nr.attempts <= ctx_.config.faults.task_retries && !rs->closed) {
    row.status = "retried";
    row.error = result.error;
    rs->rows.push_back(row);
    nr.attempts++;
    spdlog::warn("round {}: worker {} failed ({}); retrying", round, nodes_.id(node), result.error);
    after->push_back(
        [this, rs, round, node] { submit_task(rs, round, train_spec(*rs, round, node)); });
    return true;
  }
  nr.waiting = false;
  --rs->waiting;
  return false;
}

// Device accounting of a worker's result, and simulated dropout (returns true
// when the result is lost).
bool SyncDriver::worker_dropped(const RoundPtr& rs, int64_t round, Node node, const Parsed& result,
                                TaskRow& row, Later* after) {
  const auto w = static_cast<size_t>(nodes_.worker_index(node));
  const bool dropped = result.ok() && devices_.drops(w, round);
  const double busy = result.ok() ? devices_.busy(w, result.train->train_seconds) : 0.0;
  devices_.count_task(w, busy, dropped, !result.ok());
  if (result.ok()) rs->virtual_span = std::max(rs->virtual_span, devices_.planned(w));
  if (!dropped) return false;
  row.status = "dropped";
  row.error = "dropped out (simulated availability)";
  rs->failed++;
  rs->failures.push_back("worker " + nodes_.id(node) + ": dropped out (simulated availability)");
  evict_update(*result.train);
  rs->rows.push_back(std::move(row));
  report(rs, round, nodes_.parent(node), node, std::nullopt,
         "worker " + nodes_.id(node) + ": dropped out", after);
  return true;
}

std::optional<ChildUpdate> SyncDriver::take_update(RoundState& rs, Node node, const Parsed& result,
                                                   TaskRow* row) const {
  ChildUpdate u;
  u.node = nodes_.id(node);
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
    const auto samples = static_cast<double>(row->samples);
    rs.train_losses.push_back({nodes_.rank(node), row->train_loss * samples, samples});
    if (ctx_.ef) rs.delivered.push_back(nodes_.worker_index(node));
    rs.train_seconds_max = std::max(rs.train_seconds_max, row->train_seconds);
    if (r.dp_unclipped) {
      rs.dp_reports++;
      rs.dp_unclipped += *r.dp_unclipped ? 1 : 0;
    }
  } else {
    const AggregateResult& r = *result.aggregate;
    u.update = r.update;
    u.owned = r.owned;
    u.weight = r.weight;
    u.count = r.count;
    if (ctx_.ef && ctx_.config.aggregator_fraction > 0) {
      rs.delivered.push_back(aggregator_key(nodes_.id(node)));
    }
    row->bytes_fetched += r.bytes_fetched;  // after its earlier streaming tasks'
    row->bytes_put = r.bytes_put;
  }
  rs.bytes_fetched += result.train ? result.train->bytes_fetched : result.aggregate->bytes_fetched;
  rs.bytes_put += row->bytes_put;
  if (static_cast<size_t>(row->tier) < rs.bytes_up_by_tier.size()) {
    rs.bytes_up_by_tier[static_cast<size_t>(row->tier)] += row->bytes_put;
  }
  return u;
}

// Child `child` of `parent` reported (an update, or a failure). The update
// joins the parent's mail for its ordered fold: the coordinator's driving
// thread takes the root's; an aggregator's goes out in its next streaming
// task. Called with rs->mu held; tasks are submitted later, by `after`.
void SyncDriver::report(const RoundPtr& rs, int64_t round, Node parent, Node child,
                        std::optional<ChildUpdate> update, const std::string& failure,
                        Later* after) {
  NodeState& ns = rs->agg(parent);
  FLIGHT_CHECK(ns.pending > 0, "node " + nodes_.id(parent) + " got more reports than children");
  --ns.pending;
  if (!failure.empty()) ns.failures.push_back(failure);
  const bool worker = nodes_.is_worker(child);
  // A worker that was submitted holds a credit; one cut off by the deadline
  // before submission does not.
  const bool submitted = worker && rs->node[child].attempts > 0;
  const size_t pos = rs->node[child].position;
  if (ns.finished) {
    // Its fold already ended (failed): the update is not needed.
    if (update && update->owned) (void)ctx_.store->evict(update->update);
    if (submitted) credit(*rs, 1);
  } else if (update) {
    if (rs->secure) rs->taken[child] = 1;
    ns.returned += update->count;
    if (worker) ns.holds_credit[pos] = 1;  // until the parent folds it
    update->index = static_cast<int64_t>(pos);
    ns.mail.push_back(std::move(*update));
  } else {
    ns.skips.push_back(static_cast<int64_t>(pos));
    if (submitted) credit(*rs, 1);
  }
  if (parent == NodeTable::root()) {
    if (rs->driver_waiting) rs->cv.notify_one();
    return;
  }
  maybe_launch(rs, round, parent, after);
}

// Returns `n` train-result credits; wakes the driving thread when enough are
// free for a refill. Called with rs.mu held.
void SyncDriver::credit(RoundState& rs, size_t n) const {
  FLIGHT_CHECK(n <= rs.outstanding, "more train results settled than submitted");
  const size_t before = rs.outstanding;
  rs.outstanding -= n;
  const size_t low = rs.budget - std::min(rs.budget, rs.refill);
  if (rs.driver_waiting && before > low && rs.outstanding <= low &&
      rs.next_submit < rs.submit_end) {
    rs.cv.notify_one();
  }
}

// Positions [settled, upto) of `node`'s fold are done: the workers' updates
// among them return their credits. Called with rs.mu held.
void SyncDriver::settle(RoundState& rs, Node node, size_t upto) const {
  NodeState& ns = rs.agg(node);
  size_t freed = 0;
  for (; ns.settled < upto; ++ns.settled) {
    if (ns.holds_credit[ns.settled]) {
      ns.holds_credit[ns.settled] = 0;
      ++freed;
    }
  }
  if (freed > 0) credit(rs, freed);
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
  std::string line = buf;
  if (row.epsilon >= 0) {
    std::snprintf(buf, sizeof(buf), "  eps %.3g (delta %.0e)", row.epsilon, ctx_.config.dp->delta);
    line += buf;
  }
  std::cerr << line << std::endl;
}

}  // namespace flight::engine
