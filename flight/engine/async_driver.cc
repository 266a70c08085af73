#include "flight/engine/async_driver.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>

#include "flight/base/logging.h"
#include "flight/base/time.h"
#include "flight/engine/checkpoint.h"
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

std::vector<int64_t> VersionBook::live() const {
  std::vector<int64_t> out;
  for (const auto& [v, ref] : refs_) out.push_back(v);
  return out;
}

Status VersionBook::restore(int64_t current, const std::map<int64_t, ParamSet>& models) {
  if (models.count(current) == 0) {
    return data_loss("checkpoint has no tensors for the current model version " +
                     std::to_string(current));
  }
  for (const auto& [v, model] : models) {
    FLIGHT_ASSIGN_OR_RETURN(refs_[v], store_.put(model, {{}, scope_, {}}));
  }
  version_ = current;
  return Status::ok();
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
  const Checkpoint* resumed = output_.resumed();
  if (resumed) {
    FLIGHT_RETURN_IF_ERROR(restore(*resumed));
  } else {
    // Participation is decided once: the selected workers train continuously.
    for (size_t i : ctx_.strategy->select(ctx_.workers.size(), 1, ctx_.rng)) {
      active_.push_back(ctx_.workers[i]);
    }
    for (const auto& w : active_) workers_[w].planned = devices_.planned(w);
    next_eval_ = ctx_.config.async.eval_every;
    FLIGHT_RETURN_IF_ERROR(versions_.publish(ctx_.global));
  }
  FLIGHT_RETURN_IF_ERROR(output_.open_updates(update_no_));

  for (const auto& w : active_) resumed ? submit_task(w) : start_task(w);
  spdlog::info("async: {} workers training continuously ({} clock){}", active_.size(),
               to_string(ctx_.config.clock), resumed ? ", resumed" : "");
  Status loop_status = loop();
  stop_workers();
  FLIGHT_RETURN_IF_ERROR(ctx_.invoker->close());
  FLIGHT_RETURN_IF_ERROR(loop_status);
  if (killed_) {
    // As if killed: no final outputs; --resume continues from the checkpoint.
    RunSummary summary;
    summary.stopped = true;
    summary.rounds_completed = eval_index_;
    summary.updates_merged = merged_;
    summary.model_versions = versions_.current();
    summary.output_dir = ctx_.out_dir;
    summary.final_model = ctx_.global;
    summary.seconds = ctx_.now();
    return summary;
  }
  return finish();
}

Status AsyncDriver::loop() {
  const AsyncConfig& ac = ctx_.config.async;
  while (merged_ < ac.max_updates) {
    if (ac.max_seconds > 0 && time_now() >= ac.max_seconds) break;
    if (ctx_.options.should_stop && ctx_.options.should_stop()) {
      stopped_ = true;
      // Resumable from here, as a sync run stopped between rounds.
      FLIGHT_RETURN_IF_ERROR(checkpoint());
      break;
    }
    faas::TaskResult r;
    const std::string w = next_completion(&r);
    FLIGHT_RETURN_IF_ERROR(on_result(w, r));
    // Between two completions every decision so far is taken and every
    // running task is known: a consistent cut.
    const int64_t every = ctx_.config.output.checkpoint_every;
    if (every > 0 && eval_index_ / every > last_checkpoint_ / every && merged_ < ac.max_updates) {
      FLIGHT_RETURN_IF_ERROR(checkpoint());
      if (ctx_.options.stop_after_rounds > 0 &&
          eval_index_ - first_eval_ >= ctx_.options.stop_after_rounds) {
        killed_ = true;
        break;
      }
    }
  }
  return Status::ok();
}

void AsyncDriver::start_task(const std::string& w) {
  auto& s = workers_.at(w);
  s.version = versions_.use();
  s.task++;
  s.vstart = vnow_;
  s.vfinish = vnow_ + s.planned;
  submit_task(w);
}

void AsyncDriver::submit_task(const std::string& w) {
  auto& s = workers_.at(w);
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

// A buffered update as checkpoint JSON; its tensors (and its base's, unless
// the base is a global version) go into `params` under `name`.
StatusOr<nlohmann::json> AsyncDriver::pending_to_json(const Pending& p, const std::string& name,
                                                      std::map<std::string, ParamSet>* params) {
  const ChildUpdate& c = p.child;
  FLIGHT_ASSIGN_OR_RETURN((*params)[name], ctx_.store->get(c.update));
  nlohmann::json j = {{"node", c.node},         {"weight", c.weight},
                      {"count", c.count},       {"base_version", p.base_version},
                      {"versions", p.versions}, {"update", name}};
  if (c.base_owned) {
    FLIGHT_ASSIGN_OR_RETURN((*params)[name + ".base"], ctx_.store->get(*c.base));
    j["base"] = name + ".base";
  } else {
    // A worker's update: its base is the global version it trained from.
    j["base_from_version"] = p.versions.at(0);
  }
  return j;
}

StatusOr<AsyncDriver::Pending> AsyncDriver::pending_from_json(
    const nlohmann::json& j, const std::map<std::string, ParamSet>& params) {
  auto tensors = [&](const std::string& name) -> StatusOr<const ParamSet*> {
    auto it = params.find(name);
    if (it == params.end()) return data_loss("checkpoint has no tensors '" + name + "'");
    return &it->second;
  };
  Pending p;
  ChildUpdate& c = p.child;
  c.node = j.at("node").get<std::string>();
  c.weight = j.at("weight").get<double>();
  c.count = j.at("count").get<int64_t>();
  p.base_version = j.at("base_version").get<double>();
  p.versions = j.at("versions").get<std::vector<int64_t>>();
  FLIGHT_ASSIGN_OR_RETURN(const ParamSet* update, tensors(j.at("update").get<std::string>()));
  FLIGHT_ASSIGN_OR_RETURN(c.update, ctx_.store->put(*update, {{}, kScope, {}}));
  c.owned = true;
  if (j.contains("base")) {
    FLIGHT_ASSIGN_OR_RETURN(const ParamSet* base, tensors(j.at("base").get<std::string>()));
    FLIGHT_ASSIGN_OR_RETURN(c.base, ctx_.store->put(*base, {{}, kScope, {}}));
    c.base_owned = true;
  } else {
    c.base = versions_.ref(j.at("base_from_version").get<int64_t>());
    c.base_owned = false;
  }
  return p;
}

Status AsyncDriver::checkpoint() {
  using nlohmann::json;
  std::map<std::string, ParamSet> params;
  json versions = json::array();
  for (int64_t v : versions_.live()) {
    FLIGHT_ASSIGN_OR_RETURN(params["version-" + std::to_string(v)],
                            ctx_.store->get(versions_.ref(v)));
    versions.push_back(v);
  }
  json workers = json::object();
  for (const auto& w : active_) {
    const auto& s = workers_.at(w);
    // The task in flight: issued again as it was on --resume.
    workers[w] = {
        {"version", s.version}, {"task", s.task}, {"vstart", s.vstart}, {"vfinish", s.vfinish}};
  }
  json buffers = json::object();
  size_t n = 0;  // tensor names by count: node ids may hold any character
  for (const auto& [node, buf] : buffers_) {
    if (buf.empty()) continue;
    json list = json::array();
    for (const auto& p : buf) {
      FLIGHT_ASSIGN_OR_RETURN(json pj,
                              pending_to_json(p, "buffered-" + std::to_string(n++), &params));
      list.push_back(std::move(pj));
    }
    buffers[node] = std::move(list);
  }
  json state = {{"active", active_},
                {"version", versions_.current()},
                {"versions", versions},
                {"workers", workers},
                {"buffers", buffers},
                {"vnow", vnow_},
                {"merged", merged_},
                {"next_eval", next_eval_},
                {"eval_index", eval_index_},
                {"failed", failed_},
                {"dropped", dropped_},
                {"update_no", update_no_},
                {"last_eval_time", last_eval_time_},
                {"bytes_put", bytes_put_},
                {"bytes_fetched", bytes_fetched_},
                {"ingress", ingress_},
                {"devices", devices_.stats_json()}};
  last_checkpoint_ = eval_index_;
  return output_.checkpoint(eval_index_, json{{"async", std::move(state)}}, std::move(params));
}

Status AsyncDriver::restore(const Checkpoint& c) {
  const std::string where = "--resume: async checkpoint of evaluation " + std::to_string(c.round);
  try {
    const nlohmann::json& a = c.extra.at("async");
    active_ = a.at("active").get<std::vector<std::string>>();
    for (const auto& w : active_) {
      if (ctx_.worker_index.count(w) == 0) {
        return failed_precondition(where + ": worker '" + w + "' is not in the topology");
      }
      auto& s = workers_[w];
      const auto& j = a.at("workers").at(w);
      s.planned = devices_.planned(w);
      s.version = j.at("version").get<int64_t>();
      s.task = j.at("task").get<int64_t>();
      s.vstart = j.at("vstart").get<double>();
      s.vfinish = j.at("vfinish").get<double>();
    }
    std::map<int64_t, ParamSet> models;
    for (const auto& v : a.at("versions")) {
      const std::string name = "version-" + std::to_string(v.get<int64_t>());
      auto it = c.params.find(name);
      if (it == c.params.end()) return data_loss(where + ": no tensors '" + name + "'");
      models[v.get<int64_t>()] = it->second;
    }
    FLIGHT_RETURN_IF_ERROR(versions_.restore(a.at("version").get<int64_t>(), models));
    for (const auto& w : active_) versions_.retain(workers_.at(w).version);
    for (const auto& [node, list] : a.at("buffers").items()) {
      if (!ctx_.topology->contains(node)) {
        return failed_precondition(where + ": aggregator '" + node + "' is not in the topology");
      }
      for (const auto& pj : list) {
        FLIGHT_ASSIGN_OR_RETURN(Pending p, pending_from_json(pj, c.params));
        for (int64_t v : p.versions) versions_.retain(v);
        buffers_[node].push_back(std::move(p));
      }
    }
    vnow_ = a.at("vnow").get<double>();
    merged_ = a.at("merged").get<int64_t>();
    next_eval_ = a.at("next_eval").get<int64_t>();
    eval_index_ = a.at("eval_index").get<int64_t>();
    failed_ = a.at("failed").get<int64_t>();
    dropped_ = a.at("dropped").get<int64_t>();
    update_no_ = a.at("update_no").get<int64_t>();
    last_eval_time_ = a.at("last_eval_time").get<double>();
    bytes_put_ = a.at("bytes_put").get<uint64_t>();
    bytes_fetched_ = a.at("bytes_fetched").get<uint64_t>();
    ingress_ = a.at("ingress").get<uint64_t>();
    FLIGHT_RETURN_IF_ERROR(devices_.restore_stats(a.at("devices")));
  } catch (const std::exception& e) {
    return data_loss(where + " is malformed: " + e.what());
  }
  last_checkpoint_ = first_eval_ = eval_index_;
  return Status::ok();
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
