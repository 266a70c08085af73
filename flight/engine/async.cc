// mode: async — every participating worker trains continuously. A finished
// update goes to its parent: an aggregator buffers `async.aggregator_buffer`
// child updates, folds them (models and the models they started from, with
// the same weights) and forwards one weighted partial update with its mean
// base version; the coordinator merges with the strategy's rule (fedasync,
// fedbuff) at the exact staleness `version now − version trained from`, and
// the worker is handed the newest global model at once.
//
// All decisions are taken on the driving thread, one completion at a time.
// With `clock: virtual` the next completion is the one with the smallest
// simulated finish time (planned from the worker's sample count and speed),
// so the order of events — and so the result — does not depend on machine
// load; with `clock: real` completions are taken as they arrive.
#include <ATen/core/Tensor.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include "flight/base/logging.h"
#include "flight/engine/federation_internal.h"
#include "flight/engine/functions.h"
#include "flight/faas/invoker.h"

namespace flight::engine::detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kScope = "async";

// An update on its way up the tree.
struct Pending {
  std::string from;  // worker or aggregator
  json update;       // model Ref
  json base;         // Ref of the model(s) it started from
  bool owned = true;
  bool base_owned = false;  // workers' bases are global versions, shared
  double weight = 0;
  int64_t count = 1;        // worker updates inside
  double base_version = 0;  // (weighted mean) global version trained from
  std::vector<int64_t> versions;  // versions referenced by the workers inside
};

struct WorkerState {
  int64_t version = 0;  // version of the model it is training from
  int64_t task = 0;     // tasks started so far (the training seed's "round")
  std::string task_id;
  double vstart = 0, vfinish = 0;  // virtual clock
  double planned = 0;              // virtual duration of one task
  double real_start = 0;
};

// Completions arrive on invoker threads; the driver takes them here.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, faas::TaskResult> by_id;  // virtual clock: looked up by id
  std::deque<std::string> order;                  // real clock: arrival order
};

}  // namespace

StatusOr<RunSummary> Federation::run_async() {
  if (!strategy_->is_async()) {
    return invalid_argument("mode: async needs an asynchronous strategy (fedasync or fedbuff), "
                            "not '" + strategy_->name() + "'");
  }
  const AsyncConfig& ac = config_.async;
  const bool virtual_clock = config_.clock == "virtual";

  // Participation is decided once: the selected workers train continuously.
  std::vector<std::string> active;
  for (size_t i : strategy_->select(workers_.size(), 1, rng_)) active.push_back(workers_[i]);
  const Topology sub = topology_->induced(active);

  std::unordered_map<std::string, WorkerState> ws;
  for (const auto& w : active) ws[w].planned = planned_.at(w);

  // Global versions in the store, kept while a task or a pending update uses them.
  int64_t version = 0;
  std::map<int64_t, json> version_ref;
  std::map<int64_t, int64_t> version_users;
  auto put_version = [&]() -> Status {
    FLIGHT_ASSIGN_OR_RETURN(auto ref, store_->put(global_, {{}, kScope, {}}));
    version_ref[version] = ref.to_json();
    return Status::ok();
  };
  // Evicts version v once no task or pending update uses it and it is not current.
  auto maybe_drop = [&](int64_t v) {
    if (v == version || version_users[v] > 0) return;
    version_users.erase(v);
    auto it = version_ref.find(v);
    if (it != version_ref.end()) {
      auto ref = transport::Ref::from_json(it->second);
      if (ref.is_ok()) (void)store_->evict(*ref);
      version_ref.erase(it);
    }
  };
  auto release = [&](int64_t v) {
    --version_users[v];
    maybe_drop(v);
  };
  FLIGHT_RETURN_IF_ERROR(put_version());

  auto inbox = std::make_shared<Inbox>();
  std::unordered_map<std::string, std::string> task_worker;
  auto on_done = [inbox](const faas::TaskResult& r) {
    {
      std::lock_guard<std::mutex> lock(inbox->mu);
      inbox->by_id[r.task_id] = r;
      inbox->order.push_back(r.task_id);
    }
    inbox->cv.notify_all();
  };
  // Real clock: a slow device's result joins the inbox after its extra time.
  auto on_done_delayed = [this, inbox, on_done](const faas::TaskResult& r,
                                                const std::string& worker) {
    const double extra = slowdown(worker);
    if (!r.ok() || extra <= 1e-9) return on_done(r);
    delays_->post(r.result.value("train_seconds", 0.0) * extra, [on_done, r] { on_done(r); });
  };

  double vnow = 0;
  auto start_task = [&](const std::string& w) {
    auto& s = ws.at(w);
    s.version = version;
    version_users[version]++;
    s.task++;
    s.vstart = vnow;
    s.vfinish = vnow + s.planned;
    s.real_start = now();
    faas::TaskSpec spec;
    spec.endpoint = endpoint_of(w);
    spec.function = "train";
    spec.args = job_args();
    spec.args["round"] = s.task;
    spec.args["node"] = w;
    spec.args["worker_index"] = worker_index_.at(w);
    spec.args["model"] = version_ref.at(version);
    spec.args["put"] = json{{"connector", node_connector(w)}, {"scope", kScope}};
    faas::TaskHandle h = invoker_->submit(
        std::move(spec), [on_done_delayed, w, virtual_clock, on_done](const faas::TaskResult& r) {
          if (virtual_clock) on_done(r);  // simulated time already accounts for speed
          else on_done_delayed(r, w);
        });
    s.task_id = h.id();
    task_worker[h.id()] = w;
  };

  // Waits for the next completion: the earliest in simulated time (virtual
  // clock) or the first to arrive (real clock). Returns the worker.
  auto next_completion = [&](faas::TaskResult* out) -> std::string {
    std::unique_lock<std::mutex> lock(inbox->mu);
    if (virtual_clock) {
      const std::string* best = nullptr;
      for (const auto& w : active) {
        const auto& s = ws.at(w);
        if (!best || s.vfinish < ws.at(*best).vfinish ||
            (s.vfinish == ws.at(*best).vfinish && worker_index_.at(w) < worker_index_.at(*best))) {
          best = &w;
        }
      }
      const std::string id = ws.at(*best).task_id;
      inbox->cv.wait(lock, [&] { return inbox->by_id.count(id) > 0; });
      *out = std::move(inbox->by_id.at(id));
      inbox->by_id.erase(id);
      vnow = ws.at(*best).vfinish;
      return *best;
    }
    while (true) {
      inbox->cv.wait(lock, [&] { return !inbox->order.empty(); });
      const std::string id = inbox->order.front();
      inbox->order.pop_front();
      auto it = inbox->by_id.find(id);
      if (it == inbox->by_id.end()) continue;
      *out = std::move(it->second);
      inbox->by_id.erase(it);
      return task_worker.at(id);
    }
  };

  CsvLog updates_csv;
  {
    std::error_code ec;
    fs::remove(out_dir_ + "/updates.csv", ec);
  }
  FLIGHT_RETURN_IF_ERROR(updates_csv.open(
      out_dir_ + "/updates.csv", {"update", "time_s", "from", "count", "weight", "base_version",
                                  "merged_into", "staleness", "applied", "merge_s"}));

  int64_t merged = 0, next_eval = ac.eval_every, eval_index = 0, failed = 0, dropped = 0;
  int64_t update_no = 0;
  double last_eval_time = 0;
  uint64_t bytes_put = 0, bytes_fetched = 0, ingress = 0;
  auto time_now = [&] { return virtual_clock ? vnow : now(); };

  auto evaluate_row = [&]() -> Status {
    RoundRow row;
    row.round = ++eval_index;
    row.start = last_eval_time;
    row.end = time_now();
    last_eval_time = row.end;
    FLIGHT_ASSIGN_OR_RETURN(auto eval, evaluate_global());
    row.test_loss = eval.first;
    row.test_accuracy = eval.second;
    row.selected = static_cast<int64_t>(active.size());
    row.returned = merged;
    row.failed = failed + dropped;
    row.bytes_put = bytes_put;
    row.bytes_fetched = bytes_fetched;
    row.coordinator_ingress = ingress;
    rounds_csv_.write(round_cells(row, tiers_));
    rows_.push_back(row);
    if (!options_.quiet) {
      std::fprintf(stderr, "async  %lld/%lld updates merged  version %lld  acc %.4f  loss %.4f  %.1fs\n",
                   static_cast<long long>(merged), static_cast<long long>(ac.max_updates),
                   static_cast<long long>(version), row.test_accuracy, row.test_loss, now());
    }
    if (options_.on_round) options_.on_round(row);
    return Status::ok();
  };

  // The coordinator's merge of one (possibly partial) update.
  auto merge = [&](Pending u) -> Status {
    Stopwatch sw;
    FLIGHT_ASSIGN_OR_RETURN(auto ref, transport::Ref::from_json(u.update));
    FLIGHT_ASSIGN_OR_RETURN(auto base_ref, transport::Ref::from_json(u.base));
    FLIGHT_ASSIGN_OR_RETURN(ParamSet model, store_->get(ref));
    FLIGHT_ASSIGN_OR_RETURN(ParamSet base, store_->get(base_ref));
    ingress += ref.size;
    bytes_fetched += ref.size + base_ref.size;
    aggregators::AsyncUpdate au;
    au.model = std::move(model);
    au.base = std::move(base);
    au.weight = u.weight;
    au.staleness = std::max<int64_t>(
        0, static_cast<int64_t>(std::llround(static_cast<double>(version) - u.base_version)));
    FLIGHT_ASSIGN_OR_RETURN(auto res, strategy_->merge(global_, au));
    global_ = std::move(res.model);
    const int64_t merged_into = version;
    if (res.applied) {
      ++version;
      FLIGHT_RETURN_IF_ERROR(put_version());
      maybe_drop(merged_into);  // the previous version, if nobody uses it any more
    }
    if (u.owned) (void)store_->evict(ref);
    if (u.base_owned) (void)store_->evict(base_ref);
    for (int64_t v : u.versions) release(v);
    merged += u.count;
    char w[32], bv[32], t[32], ms[32];
    std::snprintf(w, sizeof(w), "%.6g", u.weight);
    std::snprintf(bv, sizeof(bv), "%.6g", u.base_version);
    std::snprintf(t, sizeof(t), "%.9g", time_now());
    std::snprintf(ms, sizeof(ms), "%.6g", sw.seconds());
    updates_csv.write({std::to_string(++update_no), t, u.from, std::to_string(u.count), w, bv,
                       std::to_string(merged_into), std::to_string(au.staleness),
                       res.applied ? "1" : "0", ms});
    while (merged >= next_eval) {
      FLIGHT_RETURN_IF_ERROR(evaluate_row());
      next_eval += ac.eval_every;
    }
    return Status::ok();
  };

  // Buffers at aggregators; a full buffer is folded by an `aggregate` task.
  std::unordered_map<std::string, std::vector<Pending>> buffers;
  std::function<Status(const std::string&, Pending)> deliver =
      [&](const std::string& parent, Pending u) -> Status {
    if (parent == topology_->root().id) return merge(std::move(u));
    auto& buf = buffers[parent];
    buf.push_back(std::move(u));
    if (static_cast<int64_t>(buf.size()) < ac.aggregator_buffer) return Status::ok();
    std::vector<Pending> kids = std::move(buf);
    buf.clear();
    json children = json::array();
    double wsum = 0, vsum = 0;
    Pending out;
    out.from = parent;
    out.count = 0;
    for (const auto& k : kids) {
      children.push_back(json{{"node", k.from}, {"update", k.update}, {"owned", k.owned},
                              {"weight", k.weight}, {"count", k.count}, {"base", k.base},
                              {"base_owned", k.base_owned}});
      wsum += k.weight;
      vsum += k.weight * k.base_version;
      out.count += k.count;
      out.versions.insert(out.versions.end(), k.versions.begin(), k.versions.end());
    }
    faas::TaskSpec spec;
    spec.endpoint = endpoint_of(parent);
    spec.function = "aggregate";
    spec.args = job_args();
    spec.args["round"] = 0;
    spec.args["node"] = parent;
    spec.args["children"] = std::move(children);
    spec.args["put"] = json{{"connector", node_connector(parent)}, {"scope", kScope}};
    // Aggregations are short; waiting here keeps every decision on this thread.
    faas::TaskResult r = invoker_->submit(std::move(spec)).wait();
    if (!r.ok()) return internal_error("aggregator " + parent + ": " + r.error);
    out.update = r.result.at("update");
    out.base = r.result.at("base");
    out.owned = true;
    out.base_owned = true;
    out.weight = r.result.at("weight").get<double>();
    out.base_version = wsum > 0 ? vsum / wsum : 0;
    bytes_put += r.result.value("bytes_put", uint64_t{0});
    bytes_fetched += r.result.value("bytes_fetched", uint64_t{0});
    return deliver(*topology_->node(parent).parent, std::move(out));
  };

  for (const auto& w : active) start_task(w);
  spdlog::info("async: {} workers training continuously ({} clock)", active.size(), config_.clock);
  Status loop_status;
  while (merged < ac.max_updates) {
    if (ac.max_seconds > 0 && time_now() >= ac.max_seconds) break;
    faas::TaskResult r;
    const std::string w = next_completion(&r);
    auto& s = ws.at(w);
    const int64_t trained_from = s.version;
    const double busy = virtual_clock ? s.planned
                                      : (r.ok() ? r.result.value("train_seconds", 0.0) *
                                                      (1 + slowdown(w))
                                                : 0.0);
    const bool lost = r.ok() && drops(w, s.task);
    count_worker_task(w, busy, lost, !r.ok());
    if (!r.ok() || lost) {
      if (!r.ok()) {
        ++failed;
        spdlog::warn("async: worker {}: {}", w, r.error);
      } else {
        ++dropped;
        if (r.result.value("owned", false)) {
          auto ref = transport::Ref::from_json(r.result.at("update"));
          if (ref.is_ok()) (void)store_->evict(*ref);
        }
      }
      release(trained_from);
      if (failed > static_cast<int64_t>(active.size()) * 10) {
        loop_status = failed_precondition("async: too many failed tasks (last: worker " + w +
                                          ": " + r.error + ")");
        break;
      }
      start_task(w);
      continue;
    }
    bytes_put += r.result.value("bytes_put", uint64_t{0});
    bytes_fetched += r.result.value("bytes_fetched", uint64_t{0});
    Pending u;
    u.from = w;
    u.update = r.result.at("update");
    u.owned = r.result.value("owned", true);
    u.base = version_ref.at(trained_from);
    u.base_owned = false;
    u.weight = r.result.at("weight").get<double>();
    u.count = 1;
    u.base_version = static_cast<double>(trained_from);
    u.versions = {trained_from};
    loop_status = deliver(*topology_->node(w).parent, std::move(u));
    if (!loop_status.is_ok()) break;
    start_task(w);  // with the newest global model
  }

  // Stop: in-flight tasks are cancelled; their results are not used. Their
  // devices were busy until now all the same (an async worker is never idle).
  {
    std::lock_guard<std::mutex> lock(worker_stats_mu_);
    for (const auto& w : active) {
      const auto& s = ws.at(w);
      worker_stats_[w].busy_s += virtual_clock ? std::max(0.0, vnow - s.vstart)
                                               : std::max(0.0, now() - s.real_start);
    }
  }
  for (const auto& w : active) invoker_->cancel(ws.at(w).task_id);
  FLIGHT_RETURN_IF_ERROR(invoker_->close());
  FLIGHT_RETURN_IF_ERROR(loop_status);
  if (rows_.empty() || rows_.back().returned != merged) FLIGHT_RETURN_IF_ERROR(evaluate_row());
  (void)store_->evict_scope(kScope);

  RunSummary summary;
  summary.rounds_completed = eval_index;
  summary.seconds = now();
  summary.bytes_put = bytes_put;
  summary.bytes_fetched = bytes_fetched;
  summary.final_accuracy = rows_.back().test_accuracy;
  summary.final_loss = rows_.back().test_loss;
  for (const auto& row : rows_) {
    summary.best_accuracy = std::max(summary.best_accuracy, row.test_accuracy);
  }
  summary.updates_merged = merged;
  summary.model_versions = version;
  summary.makespan_s = time_now();
  FLIGHT_RETURN_IF_ERROR(write_outputs(&summary));
  FLIGHT_RETURN_IF_ERROR(write_workers_csv(time_now()));
  return summary;
}

}  // namespace flight::engine::detail
