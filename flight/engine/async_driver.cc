#include "flight/engine/async_driver.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>

#include "flight/base/logging.h"
#include "flight/base/time.h"
#include "flight/engine/devices.h"
#include "flight/engine/output.h"
#include "flight/engine/run_context.h"

namespace flight::engine {

namespace {
constexpr const char* kScope = "async";
}  // namespace

Status VersionBook::publish(const ParamSet& global) {
  FLIGHT_ASSIGN_OR_RETURN(refs_[version_], store_.put(global, {{}, scope_, {}}));
  return Status::ok();
}

Status VersionBook::advance(const ParamSet& global) {
  const int64_t previous = version_++;
  FLIGHT_RETURN_IF_ERROR(publish(global));
  maybe_drop(previous);
  return Status::ok();
}

int64_t VersionBook::use() {
  users_[version_]++;
  return version_;
}

void VersionBook::release(int64_t v) {
  --users_[v];
  maybe_drop(v);
}

// Evicts version v once no task or pending update uses it and it is not current.
void VersionBook::maybe_drop(int64_t v) {
  if (v == version_ || users_[v] > 0) return;
  users_.erase(v);
  auto it = refs_.find(v);
  if (it != refs_.end()) {
    (void)store_.evict(it->second);
    refs_.erase(it);
  }
}

// Completions arrive on invoker threads; the driver takes them here.
struct AsyncDriver::Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, faas::TaskResult> by_id;  // virtual clock: looked up by id
  std::deque<std::string> order;                  // real clock: arrival order

  void put(const faas::TaskResult& r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      by_id[r.task_id] = r;
      order.push_back(r.task_id);
    }
    cv.notify_all();
  }
};

AsyncDriver::AsyncDriver(RunContext& ctx, SimulatedDevices& devices, RunOutput& output)
    : ctx_(ctx),
      devices_(devices),
      output_(output),
      virtual_clock_(ctx.config.clock == Clock::kVirtual),
      versions_(*ctx.store, kScope),
      inbox_(std::make_shared<Inbox>()) {}

AsyncDriver::~AsyncDriver() = default;

double AsyncDriver::time_now() const { return virtual_clock_ ? vnow_ : ctx_.now(); }

StatusOr<RunSummary> AsyncDriver::run() {
  if (!ctx_.strategy->is_async()) {
    return invalid_argument(
        "mode: async needs an asynchronous strategy (fedasync or fedbuff), "
        "not '" +
        ctx_.strategy->name() + "'");
  }
  // Participation is decided once: the selected workers train continuously.
  for (size_t i : ctx_.strategy->select(ctx_.workers.size(), 1, ctx_.rng)) {
    active_.push_back(ctx_.workers[i]);
  }
  for (const auto& w : active_) workers_[w].planned = devices_.planned(w);
  next_eval_ = ctx_.config.async.eval_every;
  FLIGHT_RETURN_IF_ERROR(versions_.publish(ctx_.global));
  FLIGHT_RETURN_IF_ERROR(output_.open_updates());

  for (const auto& w : active_) start_task(w);
  spdlog::info("async: {} workers training continuously ({} clock)", active_.size(),
               to_string(ctx_.config.clock));
  Status loop_status = loop();
  stop_workers();
  FLIGHT_RETURN_IF_ERROR(ctx_.invoker->close());
  FLIGHT_RETURN_IF_ERROR(loop_status);
  return finish();
}

Status AsyncDriver::loop() {
  const AsyncConfig& ac = ctx_.config.async;
  while (merged_ < ac.max_updates) {
    if (ac.max_seconds > 0 && time_now() >= ac.max_seconds) break;
    if (ctx_.options.should_stop && ctx_.options.should_stop()) {
      stopped_ = true;
      break;
    }
    faas::TaskResult r;
    const std::string w = next_completion(&r);
    FLIGHT_RETURN_IF_ERROR(on_result(w, r));
  }
  return Status::ok();
}

void AsyncDriver::start_task(const std::string& w) {
  auto& s = workers_.at(w);
  s.version = versions_.use();
  s.task++;
  s.vstart = vnow_;
  s.vfinish = vnow_ + s.planned;
  s.real_start = ctx_.now();
  TrainArgs a;
  a.job = ctx_.job_ref();
  a.round = s.task;
  a.node = w;
  a.worker_index = ctx_.worker_index.at(w);
  a.model = versions_.ref(s.version);
  a.put = ctx_.put_target(w, kScope);
  faas::TaskSpec spec = ctx_.task(w, "train", std::move(a));
  const double extra = virtual_clock_ ? 0.0 : devices_.slowdown(w);
  faas::TaskHandle h = ctx_.invoker->submit(
      std::move(spec), [inbox = inbox_, devices = &devices_, extra](const faas::TaskResult& r) {
        // Real clock: a slow device's result joins the inbox after its extra
        // time (simulated time already accounts for speed).
        if (!r.ok() || extra <= 1e-9) return inbox->put(r);
        devices->delay(train_seconds_of(r) * extra, [inbox, r] { inbox->put(r); });
      });
  s.task_id = h.id();
  task_worker_[h.id()] = w;
}

// Waits for the next completion: the earliest in simulated time (virtual
// clock) or the first to arrive (real clock). Returns the worker.
std::string AsyncDriver::next_completion(faas::TaskResult* out) {
  Inbox& inbox = *inbox_;
  std::unique_lock<std::mutex> lock(inbox.mu);
  if (virtual_clock_) {
    const std::string* best = nullptr;
    for (const auto& w : active_) {
      const auto& s = workers_.at(w);
      if (!best || s.vfinish < workers_.at(*best).vfinish ||
          (s.vfinish == workers_.at(*best).vfinish &&
           ctx_.worker_index.at(w) < ctx_.worker_index.at(*best))) {
        best = &w;
      }
    }
    const std::string id = workers_.at(*best).task_id;
    inbox.cv.wait(lock, [&] { return inbox.by_id.count(id) > 0; });
    *out = std::move(inbox.by_id.at(id));
    inbox.by_id.erase(id);
    vnow_ = workers_.at(*best).vfinish;
    return *best;
  }
  while (true) {
    inbox.cv.wait(lock, [&] { return !inbox.order.empty(); });
    const std::string id = inbox.order.front();
    inbox.order.pop_front();
    auto it = inbox.by_id.find(id);
    if (it == inbox.by_id.end()) continue;
    *out = std::move(it->second);
    inbox.by_id.erase(it);
    return task_worker_.at(id);
  }
}

Status AsyncDriver::on_result(const std::string& w, const faas::TaskResult& raw) {
  auto& s = workers_.at(w);
  const int64_t trained_from = s.version;
  std::optional<TrainResult> tr;
  std::string error = raw.error;
  if (raw.ok()) {
    auto parsed = result_of<TrainResult>(raw);
    if (parsed.is_ok())
      tr = std::move(parsed).value();
    else
      error = "malformed result: " + parsed.status().message();
  }
  const bool ok = tr.has_value();
  const double busy = virtual_clock_ ? s.planned : (ok ? devices_.busy(w, tr->train_seconds) : 0.0);
  const bool lost = ok && devices_.drops(w, s.task);
  devices_.count_task(w, busy, lost, !ok);
  if (!ok || lost) {
    if (!ok) {
      ++failed_;
      spdlog::warn("async: worker {}: {}", w, error);
    } else {
      ++dropped_;
      if (tr->owned) (void)ctx_.store->evict(tr->update);
    }
    versions_.release(trained_from);
    if (failed_ > static_cast<int64_t>(active_.size()) * 10) {
      return failed_precondition("async: too many failed tasks (last: worker " + w + ": " + error +
                                 ")");
    }
    start_task(w);
    return Status::ok();
  }
  bytes_put_ += tr->bytes_put;
  bytes_fetched_ += tr->bytes_fetched;
  Pending u;
  u.child.node = w;
  u.child.update = tr->update;
  u.child.owned = tr->owned;
  u.child.base = versions_.ref(trained_from);
  u.child.base_owned = false;  // workers' bases are global versions, shared
  u.child.weight = tr->weight;
  u.child.count = 1;
  u.base_version = static_cast<double>(trained_from);
  u.versions = {trained_from};
  FLIGHT_RETURN_IF_ERROR(deliver(*ctx_.topology->node(w).parent, std::move(u)));
  start_task(w);  // with the newest global model
  return Status::ok();
}

// Buffers at aggregators; a full buffer is folded by an `aggregate` task and
// forwarded upward.
Status AsyncDriver::deliver(const std::string& parent, Pending u) {
  if (parent == ctx_.topology->root().id) return merge(std::move(u));
  auto& buf = buffers_[parent];
  buf.push_back(std::move(u));
  if (static_cast<int64_t>(buf.size()) < ctx_.config.async.aggregator_buffer) return Status::ok();
  std::vector<Pending> kids = std::move(buf);
  buf.clear();
  Pending out;
  FLIGHT_RETURN_IF_ERROR(aggregate(parent, std::move(kids), &out));
  return deliver(*ctx_.topology->node(parent).parent, std::move(out));
}

Status AsyncDriver::aggregate(const std::string& node, std::vector<Pending> kids, Pending* out) {
  AggregateArgs a;
  a.job = ctx_.job_ref();
  a.round = 0;
  a.node = node;
  a.put = ctx_.put_target(node, kScope);
  double wsum = 0, vsum = 0;
  out->child.node = node;
  out->child.count = 0;
  for (auto& k : kids) {
    wsum += k.child.weight;
    vsum += k.child.weight * k.base_version;
    out->child.count += k.child.count;
    out->versions.insert(out->versions.end(), k.versions.begin(), k.versions.end());
    a.children.push_back(std::move(k.child));
  }
  faas::TaskSpec spec = ctx_.task(node, "aggregate", std::move(a));
  // Aggregations are short; waiting here keeps every decision on this thread.
  faas::TaskResult r = ctx_.invoker->submit(std::move(spec)).wait();
  if (!r.ok()) return internal_error("aggregator " + node + ": " + r.error);
  auto res = result_of<AggregateResult>(r);
  if (!res.is_ok()) return res.status().with_context("aggregator " + node + ": malformed result");
  if (!res->base) return internal_error("aggregator " + node + ": result has no 'base'");
  out->child.update = res->update;
  out->child.base = res->base;
  out->child.owned = true;
  out->child.base_owned = true;
  out->child.weight = res->weight;
  out->base_version = wsum > 0 ? vsum / wsum : 0;
  bytes_put_ += res->bytes_put;
  bytes_fetched_ += res->bytes_fetched;
  return Status::ok();
}

// The coordinator's merge of one (possibly partial) update.
Status AsyncDriver::merge(Pending u) {
  Stopwatch sw;
  const ChildUpdate& c = u.child;
  FLIGHT_ASSIGN_OR_RETURN(ParamSet model, ctx_.store->get(c.update));
  FLIGHT_ASSIGN_OR_RETURN(ParamSet base, ctx_.store->get(*c.base));
  ingress_ += c.update.size;
  bytes_fetched_ += c.update.size + c.base->size;
  aggregators::AsyncUpdate au;
  au.model = std::move(model);
  au.base = std::move(base);
  au.weight = c.weight;
  au.staleness = std::max<int64_t>(
      0, static_cast<int64_t>(
             std::llround(static_cast<double>(versions_.current()) - u.base_version)));
  FLIGHT_ASSIGN_OR_RETURN(auto res, ctx_.strategy->merge(ctx_.global, au));
  ctx_.global = std::move(res.model);
  const int64_t merged_into = versions_.current();
  if (res.applied) FLIGHT_RETURN_IF_ERROR(versions_.advance(ctx_.global));
  if (c.owned) (void)ctx_.store->evict(c.update);
  if (c.base_owned) (void)ctx_.store->evict(*c.base);
  for (int64_t v : u.versions) versions_.release(v);
  merged_ += c.count;
  UpdateRow row;
  row.update = ++update_no_;
  row.time_s = time_now();
  row.from = c.node;
  row.count = c.count;
  row.weight = c.weight;
  row.base_version = u.base_version;
  row.merged_into = merged_into;
  row.staleness = au.staleness;
  row.applied = res.applied;
  row.merge_s = sw.seconds();
  output_.add_update(row);
  while (merged_ >= next_eval_) {
    FLIGHT_RETURN_IF_ERROR(evaluate_row());
    next_eval_ += ctx_.config.async.eval_every;
  }
  return Status::ok();
}

Status AsyncDriver::evaluate_row() {
  RoundRow row;
  row.round = ++eval_index_;
  row.start = last_eval_time_;
  row.end = time_now();
  last_eval_time_ = row.end;
  FLIGHT_ASSIGN_OR_RETURN(auto eval, ctx_.evaluate_global());
  row.test_loss = eval.first;
  row.test_accuracy = eval.second;
  row.selected = static_cast<int64_t>(active_.size());
  row.returned = merged_;
  row.failed = failed_ + dropped_;
  row.bytes_put = bytes_put_;
  row.bytes_fetched = bytes_fetched_;
  row.coordinator_ingress = ingress_;
  output_.add_round(row);
  if (!ctx_.options.quiet) {
    std::fprintf(
        stderr, "async  %lld/%lld updates merged  version %lld  acc %.4f  loss %.4f  %.1fs\n",
        static_cast<long long>(merged_), static_cast<long long>(ctx_.config.async.max_updates),
        static_cast<long long>(versions_.current()), row.test_accuracy, row.test_loss, ctx_.now());
  }
  if (ctx_.options.on_round) ctx_.options.on_round(row);
  return Status::ok();
}

// Stop: in-flight tasks are cancelled; their results are not used. Their
// devices were busy until now all the same (an async worker is never idle).
void AsyncDriver::stop_workers() {
  for (const auto& w : active_) {
    const auto& s = workers_.at(w);
    devices_.add_busy(w, virtual_clock_ ? std::max(0.0, vnow_ - s.vstart)
                                        : std::max(0.0, ctx_.now() - s.real_start));
  }
  for (const auto& w : active_) ctx_.invoker->cancel(workers_.at(w).task_id);
}

StatusOr<RunSummary> AsyncDriver::finish() {
  const auto& rows = output_.rounds();
  if (rows.empty() || rows.back().returned != merged_) FLIGHT_RETURN_IF_ERROR(evaluate_row());
  (void)ctx_.store->evict_scope(kScope);

  RunSummary summary;
  summary.rounds_completed = eval_index_;
  summary.seconds = ctx_.now();
  summary.bytes_put = bytes_put_;
  summary.bytes_fetched = bytes_fetched_;
  summary.final_accuracy = rows.back().test_accuracy;
  summary.final_loss = rows.back().test_loss;
  for (const auto& row : rows)
    summary.best_accuracy = std::max(summary.best_accuracy, row.test_accuracy);
  summary.updates_merged = merged_;
  summary.model_versions = versions_.current();
  summary.stopped = stopped_;
  summary.makespan_s = time_now();
  FLIGHT_RETURN_IF_ERROR(output_.finish(&summary, devices_, time_now()));
  return summary;
}

}  // namespace flight::engine
