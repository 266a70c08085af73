#include "flight/faas/service_state.h"

#include <algorithm>
#include <sstream>

#include "flight/base/ids.h"
#include "flight/base/json.h"
#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/time.h"
#include "flight/faas/shared_json.h"

namespace flight::faas {

namespace {

constexpr double kLatencyBounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,    1,     2.5,   5,     10,   30,    60,   300, 1800};
constexpr size_t kNumBounds = sizeof(kLatencyBounds) / sizeof(kLatencyBounds[0]);

bool valid_task_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

std::string prom_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

ServiceState::ServiceState(StateLimits limits, std::unique_ptr<StateBackend> backend)
    : limits_(limits), backend_(std::move(backend)), latency_buckets_(kNumBounds, 0) {}

// ---------------------------------------------------------------------------
// helpers (all called with mu_ held)

nlohmann::json ServiceState::view(const TaskRecord& t, bool with_args) const {
  nlohmann::json j = view_of(t, effective_result(t));
  if (with_args) j["args"] = effective_args(t);
  return j;
}

nlohmann::json ServiceState::view_of(const TaskRecord& t, nlohmann::json result) const {
  nlohmann::json j = {{"id", t.id},
                      {"endpoint", t.endpoint},
                      {"function", t.function},
                      {"state", task_state_name(t.state)},
                      {"result", std::move(result)},
                      {"error", t.error},
                      {"deadline_s", t.deadline_s},
                      {"submitted_at", t.submitted_at},
                      {"started_at", t.started_at},
                      {"finished_at", t.finished_at},
                      {"attempts", t.attempts}};
  if (t.state == TaskState::kRunning) {
    j["lease"] = {{"endpoint_id", t.lease_endpoint},
                  {"expires_in_s", std::max(0.0, t.lease_expires - wall_seconds())}};
  } else {
    j["lease"] = nullptr;
  }
  return j;
}

nlohmann::json ServiceState::view_sharing(const TaskRecord& t, nlohmann::json* shared) const {
  if (!t.result_shared) return view(t, false);
  nlohmann::json j = view_of(t, t.result);
  const std::string& id = t.result_shared->id;
  j["result_shared"] = id;
  if (!shared->contains(id)) (*shared)[id] = t.result_shared->value;
  return j;
}

nlohmann::json ServiceState::effective_args(const TaskRecord& t) {
  if (!t.shared) return t.args;
  return merge_shared(t.shared->value, t.args);
}

nlohmann::json ServiceState::effective_result(const TaskRecord& t) {
  if (!t.result_shared) return t.result;
  return merge_shared(t.result_shared->value, t.result);
}

Status ServiceState::may_read(const Principal& who, const TaskRecord& t) {
  switch (who.role) {
    case Role::kAdmin:
      return Status::ok();
    case Role::kClient:
      if (t.owner == who.name) return Status::ok();
      return permission_denied("task '" + t.id + "' was submitted by another client");
    case Role::kEndpoint:
      if (t.endpoint == who.name) return Status::ok();
      return permission_denied("task '" + t.id + "' is addressed to another endpoint name");
  }
  return permission_denied("unknown role");
}

Status ServiceState::may_act_as(const Principal& who, const EndpointRecord& e) {
  if (who.role == Role::kAdmin) return Status::ok();
  if (who.role == Role::kEndpoint && e.name == who.name) return Status::ok();
  return permission_denied("endpoint '" + e.id + "' ('" + e.name + "') belongs to another " +
                           (who.role == Role::kEndpoint ? "endpoint name" : "principal"));
}

StatusOr<ServiceState::EndpointRecord*> ServiceState::endpoint_for(const std::string& id,
                                                                   const Principal& who) {
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) {
    return not_found("endpoint '" + id + "' is not registered (register again)");
  }
  FLIGHT_RETURN_IF_ERROR(may_act_as(who, it->second));
  return &it->second;
}

std::string ServiceState::persist_doc(const TaskRecord& t) const {
  nlohmann::json j = view(t, true);
  j["client"] = t.client;
  j["owner"] = t.owner;
  j["seq"] = t.seq;
  j["lease_endpoint"] = t.lease_endpoint;
  j["lease_expires"] = t.lease_expires;
  j["last_lease_endpoint"] = t.last_lease_endpoint;
  return dump_json(j);
}

nlohmann::json ServiceState::endpoint_view(const EndpointRecord& e) const {
  return {{"id", e.id},
          {"name", e.name},
          {"functions", e.functions},
          {"meta", e.meta},
          {"registered_at", e.registered_at},
          {"last_seen", e.last_seen},
          {"lease_s", limits_.lease_s}};
}

void ServiceState::persist(const TaskRecord& t) {
  if (backend_->durable()) dirty_.emplace_back(t.id, persist_doc(t));
}

void ServiceState::set_state(TaskRecord& t, TaskState s) {
  --count_by_state_[static_cast<int>(t.state)];
  if (t.state == TaskState::kPending) --pending_by_name_[t.endpoint];
  if (t.state == TaskState::kRunning) running_.erase(t.id);
  t.state = s;
  ++count_by_state_[static_cast<int>(s)];
  if (s == TaskState::kPending) ++pending_by_name_[t.endpoint];
  if (s == TaskState::kRunning) running_.insert(t.id);
}

void ServiceState::finish(TaskRecord& t, TaskState s, nlohmann::json result, std::string error,
                          double started, double finished, Wakes& wakes,
                          SharedJsonPtr result_shared) {
  set_state(t, s);
  t.result = std::move(result);
  t.result_shared = std::move(result_shared);
  t.error = std::move(error);
  if (started > 0) t.started_at = started;
  t.finished_at = finished > 0 ? finished : wall_seconds();
  t.lease_endpoint.clear();
  t.lease_expires = 0;
  ++finished_total_[static_cast<int>(s)];
  if (s == TaskState::kSucceeded || s == TaskState::kFailed) {
    double latency = std::max(0.0, t.finished_at - t.submitted_at);
    for (size_t i = 0; i < kNumBounds; ++i) {
      if (latency <= kLatencyBounds[i]) ++latency_buckets_[i];
    }
    latency_sum_ += latency;
    ++latency_count_;
  }
  finished_order_.emplace_back(wall_seconds(), t.id);
  if (!t.client.empty()) {
    auto& stream = clients_[t.client];
    if (stream.last_poll == 0) stream.last_poll = wall_seconds();
    if (stream.done.size() >= limits_.max_completions_per_client) stream.done.pop_front();
    stream.done.push_back(t.id);
    wake_key("client:" + t.client, wakes);
  }
  wake_key("task:" + t.id, wakes);
  persist(t);
}

void ServiceState::requeue_front(TaskRecord& t, Wakes& wakes) {
  set_state(t, TaskState::kPending);
  t.lease_endpoint.clear();
  t.lease_expires = 0;
  queues_[t.endpoint].push_front(t.id);
  wake_key("ep:" + t.endpoint, wakes);
  persist(t);
}

void ServiceState::wake_key(const std::string& key, Wakes& wakes) {
  auto it = waiters_.find(key);
  if (it == waiters_.end()) return;
  std::vector<WaiterPtr> ws = std::move(it->second);
  waiters_.erase(it);
  for (auto& w : ws) {
    unregister_locked(w);
    wakes.push_back(std::move(w));
  }
}

void ServiceState::add_waiter(const WaiterPtr& w, const std::string& key) {
  waiters_[key].push_back(w);
  w->keys.push_back(key);
}

void ServiceState::unregister_locked(const WaiterPtr& w) {
  for (const auto& key : w->keys) {
    auto it = waiters_.find(key);
    if (it == waiters_.end()) continue;
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), w), v.end());
    if (v.empty()) waiters_.erase(it);
  }
  w->keys.clear();
}

void ServiceState::fire(Wakes& wakes) {
  for (auto& w : wakes) {
    if (w->wake) w->wake();
  }
  wakes.clear();
}

// ---------------------------------------------------------------------------

Status ServiceState::load() {
  FLIGHT_ASSIGN_OR_RETURN(auto snap, backend_->load());
  std::lock_guard<std::mutex> lock(mu_);
  const double now = wall_seconds();
  std::vector<TaskRecord*> pending;
  for (const auto& doc : snap.tasks) {
    nlohmann::json j = nlohmann::json::parse(doc, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      spdlog::warn("state backend: skipping an unreadable task document");
      continue;
    }
    TaskRecord t;
    try {
      t.id = j.at("id").get<std::string>();
      t.endpoint = j.at("endpoint").get<std::string>();
      t.function = j.at("function").get<std::string>();
      t.client = j.value("client", "");
      t.owner = j.value("owner", "");
      t.args = j.value("args", nlohmann::json::object());
      t.deadline_s = j.value("deadline_s", 0.0);
      auto st = parse_task_state(j.at("state").get<std::string>());
      if (!st.is_ok()) continue;
      t.state = *st;
      t.result = j.value("result", nlohmann::json());
      t.error = j.value("error", "");
      t.submitted_at = j.value("submitted_at", 0.0);
      t.started_at = j.value("started_at", 0.0);
      t.finished_at = j.value("finished_at", 0.0);
      t.attempts = j.value("attempts", 0);
      t.seq = j.value("seq", uint64_t{0});
      t.lease_endpoint = j.value("lease_endpoint", "");
      t.last_lease_endpoint = j.value("last_lease_endpoint", "");
    } catch (const std::exception& e) {
      spdlog::warn("state backend: skipping a task document: {}", e.what());
      continue;
    }
    // A task leased before the restart keeps its lease for a fresh period:
    // its endpoint may still be running it and will renew or post.
    if (t.state == TaskState::kRunning) t.lease_expires = now + limits_.lease_s;
    next_seq_ = std::max(next_seq_, t.seq + 1);
    auto& slot = tasks_[t.id];
    slot = std::move(t);
    ++count_by_state_[static_cast<int>(slot.state)];
    if (slot.state == TaskState::kPending) {
      ++pending_by_name_[slot.endpoint];
      pending.push_back(&slot);
    } else if (slot.state == TaskState::kRunning) {
      running_.insert(slot.id);
    } else {
      finished_order_.emplace_back(slot.finished_at, slot.id);
    }
    if (!is_terminal(slot.state) && slot.deadline_s > 0) {
      deadlines_.emplace(slot.submitted_at + slot.deadline_s, slot.id);
    }
  }
  std::sort(pending.begin(), pending.end(),
            [](const TaskRecord* a, const TaskRecord* b) { return a->seq < b->seq; });
  for (auto* t : pending) queues_[t->endpoint].push_back(t->id);
  std::sort(finished_order_.begin(), finished_order_.end());
  for (const auto& doc : snap.endpoints) {
    nlohmann::json j = nlohmann::json::parse(doc, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    try {
      EndpointRecord e;
      e.id = j.at("id").get<std::string>();
      e.name = j.at("name").get<std::string>();
      e.functions = j.value("functions", std::vector<std::string>{});
      e.meta = j.value("meta", nlohmann::json::object());
      e.registered_at = j.value("registered_at", 0.0);
      e.last_seen = now;
      endpoints_[e.id] = std::move(e);
    } catch (const std::exception& e) {
      spdlog::warn("state backend: skipping an endpoint document: {}", e.what());
    }
  }
  for (const auto& [key, doc] : snap.idempotency) {
    nlohmann::json j = nlohmann::json::parse(doc, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    IdempotencyRecord r;
    r.created = now;
    // Journal documents are input like any other (found by fuzz_state_loader).
    OptionReader reader(j, "idempotency record");
    reader.ignore_unknown()
        .optional("digest", &r.digest)
        .optional("ids", &r.ids)
        .optional("created", &r.created);
    if (Status st = reader.finish(); !st.is_ok()) {
      spdlog::warn("state backend: skipping {}", st.to_string());
      continue;
    }
    idempotency_order_.emplace_back(r.created, key);
    idempotency_[key] = std::move(r);
  }
  std::sort(idempotency_order_.begin(), idempotency_order_.end());
  if (!tasks_.empty() || !endpoints_.empty()) {
    spdlog::info("state {}: restored {} tasks ({} pending, {} running), {} endpoints",
                 backend_->describe(), tasks_.size(),
                 count_by_state_[static_cast<int>(TaskState::kPending)], running_.size(),
                 endpoints_.size());
  }
  return Status::ok();
}

StatusOr<ServiceState::SubmitOutcome> ServiceState::submit(std::vector<Submission> tasks,
                                                           const std::string& idempotency_key,
                                                           const std::string& body_digest,
                                                           const std::string& client,
                                                           const std::string& owner) {
  Wakes wakes;
  SubmitOutcome out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idempotency_key.empty()) {
      auto it = idempotency_.find(idempotency_key);
      if (it != idempotency_.end()) {
        if (it->second.digest != body_digest) {
          return already_exists("Idempotency-Key '" + idempotency_key +
                                "' was already used with a different request body");
        }
        out.ids = it->second.ids;
        out.replayed = true;
        return out;
      }
    }
    // Validate everything before changing anything: a batch is all or nothing.
    std::map<std::string, size_t> per_name;
    std::unordered_set<std::string> seen;
    for (size_t i = 0; i < tasks.size(); ++i) {
      auto& s = tasks[i];
      if (!s.id.empty()) {
        if (!valid_task_id(s.id)) {
          return invalid_argument("tasks[" + std::to_string(i) + "].id: '" + s.id +
                                  "' must be 1-128 characters of [A-Za-z0-9._-]");
        }
        if (tasks_.count(s.id) || !seen.insert(s.id).second) {
          return already_exists("tasks[" + std::to_string(i) + "].id: task '" + s.id +
                                "' already exists");
        }
      }
      ++per_name[s.spec.endpoint];
    }
    for (const auto& [name, n] : per_name) {
      size_t depth = pending_by_name_.count(name) ? pending_by_name_[name] : 0;
      if (depth + n > limits_.max_queue_per_endpoint) {
        return resource_exhausted("endpoint '" + name + "' queue is full (" +
                                  std::to_string(depth) + " pending + " + std::to_string(n) +
                                  " submitted > limit " +
                                  std::to_string(limits_.max_queue_per_endpoint) + ")");
      }
    }
    const double now = wall_seconds();
    std::vector<TaskRecord> records;
    records.reserve(tasks.size());
    for (auto& s : tasks) {
      // Service-unique names: one lease reply may carry several submissions'.
      if (s.shared && s.shared->id.empty()) s.shared->id = "sh-" + std::to_string(next_shared_++);
    }
    for (auto& s : tasks) {
      TaskRecord t;
      t.shared = std::move(s.shared);
      t.id = s.id.empty() ? new_id("task") : std::move(s.id);
      t.endpoint = std::move(s.spec.endpoint);
      t.function = std::move(s.spec.function);
      t.args = std::move(s.spec.args);
      t.deadline_s = s.spec.deadline_s;
      t.client = client;
      t.owner = owner;
      t.submitted_at = now;
      t.seq = next_seq_++;
      out.ids.push_back(t.id);
      records.push_back(std::move(t));
    }
    // Durable first: a 201 means the tasks survive a restart.
    if (backend_->durable()) {
      std::vector<std::pair<std::string, std::string>> docs;
      for (const auto& t : records) docs.emplace_back(t.id, persist_doc(t));
      Status st = backend_->put_tasks(docs);
      if (st.is_ok() && !idempotency_key.empty()) {
        nlohmann::json doc = {{"digest", body_digest}, {"ids", out.ids}, {"created", now}};
        st = backend_->put_idempotency(idempotency_key, dump_json(doc));
      }
      if (!st.is_ok()) return st;
    }
    if (!idempotency_key.empty()) {
      idempotency_[idempotency_key] = IdempotencyRecord{body_digest, out.ids, now};
      idempotency_order_.emplace_back(now, idempotency_key);
    }
    for (auto& t : records) {
      ++count_by_state_[static_cast<int>(TaskState::kPending)];
      ++pending_by_name_[t.endpoint];
      queues_[t.endpoint].push_back(t.id);
      if (t.deadline_s > 0) deadlines_.emplace(t.submitted_at + t.deadline_s, t.id);
      std::string id = t.id;
      tasks_.emplace(std::move(id), std::move(t));
    }
    for (const auto& [name, n] : per_name) wake_key("ep:" + name, wakes);
  }
  fire(wakes);
  return out;
}

nlohmann::json ServiceState::register_endpoint(const std::string& name,
                                               const std::vector<std::string>& functions,
                                               const nlohmann::json& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  EndpointRecord e;
  e.id = new_id("ep");
  e.name = name;
  e.functions = functions;
  e.meta = meta;
  e.registered_at = e.last_seen = wall_seconds();
  nlohmann::json v = endpoint_view(e);
  if (backend_->durable()) {
    Status st = backend_->put_endpoint(e.id, dump_json(v));
    if (!st.is_ok()) spdlog::warn("endpoint {} not persisted: {}", e.id, st.to_string());
  }
  endpoints_[e.id] = std::move(e);
  return v;
}

Status ServiceState::deregister_endpoint(const std::string& id, const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  FLIGHT_RETURN_IF_ERROR(endpoint_for(id, who).status());
  endpoints_.erase(id);
  if (backend_->durable()) {
    Status st = backend_->erase_endpoint(id);
    if (!st.is_ok()) spdlog::warn("endpoint {} removal not persisted: {}", id, st.to_string());
  }
  return Status::ok();
}

StatusOr<nlohmann::json> ServiceState::get_endpoint(const std::string& id, const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  FLIGHT_ASSIGN_OR_RETURN(EndpointRecord * e, endpoint_for(id, who));
  nlohmann::json v = endpoint_view(*e);
  v["queue_depth"] = pending_by_name_.count(e->name) ? pending_by_name_[e->name] : 0;
  return v;
}

StatusOr<std::optional<nlohmann::json>> ServiceState::lease_or_wait(const std::string& endpoint_id,
                                                                    size_t max,
                                                                    const WaiterPtr& waiter,
                                                                    const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  FLIGHT_ASSIGN_OR_RETURN(EndpointRecord * ep, endpoint_for(endpoint_id, who));
  const double now = wall_seconds();
  ep->last_seen = now;
  const std::string& name = ep->name;
  nlohmann::json leased = nlohmann::json::array();
  nlohmann::json shared = nlohmann::json::object();
  auto qit = queues_.find(name);
  if (qit != queues_.end()) {
    auto& q = qit->second;
    while (!q.empty() && leased.size() < max) {
      std::string id = std::move(q.front());
      q.pop_front();
      auto tit = tasks_.find(id);
      if (tit == tasks_.end() || tit->second.state != TaskState::kPending) continue;  // stale
      TaskRecord& t = tit->second;
      set_state(t, TaskState::kRunning);
      ++t.attempts;
      t.started_at = now;
      t.lease_endpoint = endpoint_id;
      t.last_lease_endpoint = endpoint_id;
      t.lease_expires = now + limits_.lease_s;
      persist(t);
      leased.push_back({{"id", t.id},
                        {"function", t.function},
                        {"args", t.args},
                        {"endpoint", t.endpoint},
                        {"deadline_at", t.deadline_s > 0 ? t.submitted_at + t.deadline_s : 0.0},
                        {"attempt", t.attempts}});
      if (t.shared) {
        leased.back()["shared"] = t.shared->id;
        if (!shared.contains(t.shared->id)) shared[t.shared->id] = t.shared->value;
      }
    }
    if (q.empty()) queues_.erase(qit);
  }
  if (!dirty_.empty()) {
    Status st = backend_->put_tasks(dirty_);
    dirty_.clear();
    if (!st.is_ok()) {
      // A lease the journal does not hold would be handed out again by a
      // successor replica: put them back and lease nothing.
      spdlog::warn("leases not persisted, handing them back: {}", st.to_string());
      Wakes ignored;
      for (auto it = leased.rbegin(); it != leased.rend(); ++it) {
        TaskRecord& t = tasks_.at((*it)["id"].get<std::string>());
        --t.attempts;
        requeue_front(t, ignored);
      }
      dirty_.clear();
      return st;
    }
  }
  if (leased.empty() && waiter) {
    unregister_locked(waiter);
    add_waiter(waiter, "ep:" + name);
    return std::optional<nlohmann::json>();
  }
  nlohmann::json reply{{"tasks", std::move(leased)}};
  if (!shared.empty()) reply["shared"] = std::move(shared);
  return std::optional<nlohmann::json>(std::move(reply));
}

StatusOr<std::optional<nlohmann::json>> ServiceState::task_or_wait(const std::string& id,
                                                                   const WaiterPtr& waiter,
                                                                   const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return not_found("task '" + id + "' is unknown (or expired)");
  FLIGHT_RETURN_IF_ERROR(may_read(who, it->second));
  if (!is_terminal(it->second.state) && waiter) {
    unregister_locked(waiter);
    add_waiter(waiter, "task:" + id);
    return std::optional<nlohmann::json>();
  }
  return std::optional<nlohmann::json>(view(it->second, true));
}

std::optional<nlohmann::json> ServiceState::wait_tasks_or_wait(const std::vector<std::string>& ids,
                                                               size_t max, const WaiterPtr& waiter,
                                                               const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json done = nlohmann::json::array(), pending = nlohmann::json::array(),
                 unknown = nlohmann::json::array();
  for (const auto& id : ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !may_read(who, it->second).is_ok()) {
      unknown.push_back(id);
    } else if (is_terminal(it->second.state) && done.size() < max) {
      done.push_back(view(it->second, false));
    } else {
      pending.push_back(id);
    }
  }
  if (done.empty() && unknown.empty() && waiter && !ids.empty()) {
    unregister_locked(waiter);
    for (const auto& id : ids) add_waiter(waiter, "task:" + id);
    return std::nullopt;
  }
  return nlohmann::json{
      {"tasks", std::move(done)}, {"pending", std::move(pending)}, {"unknown", std::move(unknown)}};
}

std::optional<nlohmann::json> ServiceState::completions_or_wait(const std::string& client,
                                                                size_t max,
                                                                const WaiterPtr& waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& stream = clients_[client];
  stream.last_poll = wall_seconds();
  nlohmann::json out = nlohmann::json::array();
  nlohmann::json shared = nlohmann::json::object();
  while (!stream.done.empty() && out.size() < max) {
    auto it = tasks_.find(stream.done.front());
    stream.done.pop_front();
    if (it != tasks_.end()) out.push_back(view_sharing(it->second, &shared));
  }
  if (out.empty() && waiter) {
    unregister_locked(waiter);
    add_waiter(waiter, "client:" + client);
    return std::nullopt;
  }
  nlohmann::json reply{{"tasks", std::move(out)}};
  if (!shared.empty()) reply["shared"] = std::move(shared);
  return reply;
}

void ServiceState::remove_waiter(const WaiterPtr& waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  unregister_locked(waiter);
}

void ServiceState::clear_waiters() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : waiters_) {
    for (auto& w : kv.second) w->keys.clear();
  }
  waiters_.clear();
}

StatusOr<std::vector<std::string>> ServiceState::post_results(std::vector<ResultIn> results,
                                                              const Principal& who) {
  Status persisted;
  Wakes wakes;
  std::vector<std::string> outcome;
  outcome.reserve(results.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : results) {
      auto it = tasks_.find(r.task_id);
      if (it == tasks_.end()) {
        outcome.push_back("unknown task");
        continue;
      }
      TaskRecord& t = it->second;
      if (Status st = may_read(who, t); !st.is_ok() || who.role == Role::kClient) {
        outcome.push_back(st.is_ok() ? "forbidden: clients may not post results" : st.message());
        continue;
      }
      if (is_terminal(t.state)) {
        outcome.push_back(std::string("ignored: task already ") + task_state_name(t.state));
        continue;
      }
      if (r.shared && r.shared->id.empty()) r.shared->id = "sh-" + std::to_string(next_shared_++);
      finish(t, r.state, std::move(r.result), std::move(r.error), r.started_at, r.finished_at,
             wakes, std::move(r.shared));
      outcome.push_back("accepted");
    }
    if (!dirty_.empty()) {
      persisted = backend_->put_tasks(dirty_);
      if (!persisted.is_ok()) spdlog::error("results not persisted: {}", persisted.to_string());
      dirty_.clear();
    }
  }
  fire(wakes);
  if (!persisted.is_ok()) return persisted;
  return outcome;
}

bool ServiceState::task_exists(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.count(id) != 0;
}

StatusOr<nlohmann::json> ServiceState::heartbeat(const std::string& endpoint_id,
                                                 const std::vector<std::string>& task_ids,
                                                 const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  FLIGHT_ASSIGN_OR_RETURN(EndpointRecord * ep, endpoint_for(endpoint_id, who));
  const double now = wall_seconds();
  ep->last_seen = now;
  nlohmann::json cancelled_ids = nlohmann::json::array();
  for (const auto& id : task_ids) {
    auto it = tasks_.find(id);
    // A task of another endpoint name is never renewed (nor re-leased) here.
    if (it == tasks_.end() || is_terminal(it->second.state) || it->second.endpoint != ep->name) {
      cancelled_ids.push_back(id);
      continue;
    }
    TaskRecord& t = it->second;
    if (t.state == TaskState::kPending) {
      // Its lease lapsed (e.g. across a service restart) but the endpoint is
      // still on it: hand it back rather than run it twice.
      set_state(t, TaskState::kRunning);  // the stale queue entry is skipped
    }
    t.lease_endpoint = endpoint_id;
    t.last_lease_endpoint = endpoint_id;
    t.lease_expires = now + limits_.lease_s;
  }
  return nlohmann::json{{"cancelled", std::move(cancelled_ids)}, {"lease_s", limits_.lease_s}};
}

StatusOr<nlohmann::json> ServiceState::release(const std::string& endpoint_id,
                                               const std::vector<std::string>& task_ids,
                                               const Principal& who) {
  Wakes wakes;
  nlohmann::json released = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = endpoints_.find(endpoint_id); it != endpoints_.end()) {
      FLIGHT_RETURN_IF_ERROR(may_act_as(who, it->second));
    }
    for (const auto& id : task_ids) {
      auto it = tasks_.find(id);
      if (it == tasks_.end()) continue;
      TaskRecord& t = it->second;
      if (t.state != TaskState::kRunning || t.lease_endpoint != endpoint_id) continue;
      if (!may_read(who, t).is_ok()) continue;
      if (t.attempts > 0) --t.attempts;  // a clean hand-back is not a failed attempt
      requeue_front(t, wakes);
      released.push_back(id);
    }
    if (!dirty_.empty()) {
      Status st = backend_->put_tasks(dirty_);
      if (!st.is_ok()) spdlog::warn("released leases not persisted: {}", st.to_string());
      dirty_.clear();
    }
  }
  fire(wakes);
  return nlohmann::json{{"released", std::move(released)}};
}

StatusOr<nlohmann::json> ServiceState::cancel(const std::string& task_id, const Principal& who) {
  Wakes wakes;
  nlohmann::json out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return not_found("task '" + task_id + "' is unknown (or expired)");
    if (who.role == Role::kEndpoint) return permission_denied("endpoints may not cancel tasks");
    FLIGHT_RETURN_IF_ERROR(may_read(who, it->second));
    TaskRecord& t = it->second;
    bool changed = false;
    if (!is_terminal(t.state)) {
      finish(t, TaskState::kCancelled, nullptr, "cancelled by the client", 0, 0, wakes);
      changed = true;
    }
    if (!dirty_.empty()) {
      Status st = backend_->put_tasks(dirty_);
      if (!st.is_ok()) spdlog::warn("cancellation not persisted: {}", st.to_string());
      dirty_.clear();
    }
    out = view(t, false);
    out["cancelled"] = changed;
  }
  fire(wakes);
  return out;
}

void ServiceState::sweep(double now) {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> expired;
    for (const auto& id : running_) {
      auto it = tasks_.find(id);
      if (it != tasks_.end() && it->second.lease_expires <= now) expired.push_back(id);
    }
    for (const auto& id : expired) {
      TaskRecord& t = tasks_.at(id);
      std::string holder = t.lease_endpoint;
      if (t.attempts >= limits_.max_attempts) {
        std::string name = endpoints_.count(holder) ? endpoints_[holder].name : t.endpoint;
        finish(t, TaskState::kFailed, nullptr,
               "lease expired " + std::to_string(t.attempts) + " time(s) without a result (last " +
                   "endpoint " + holder + " of '" + name +
                   "' stopped responding); retry limit of " + std::to_string(limits_.max_attempts) +
                   " attempts reached",
               0, now, wakes);
      } else {
        spdlog::info("task {}: lease held by {} expired; redelivering (attempt {} of {})", id,
                     holder, t.attempts + 1, limits_.max_attempts);
        requeue_front(t, wakes);
      }
    }
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      std::string id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      auto it = tasks_.find(id);
      if (it == tasks_.end() || is_terminal(it->second.state)) continue;
      finish(it->second, TaskState::kDeadlineExceeded, nullptr,
             "deadline of " + std::to_string(it->second.deadline_s) + " s exceeded", 0, now, wakes);
    }
    std::vector<std::string> forgotten;
    while (!finished_order_.empty() &&
           finished_order_.front().first + limits_.result_ttl_s <= now) {
      std::string id = std::move(finished_order_.front().second);
      finished_order_.pop_front();
      auto it = tasks_.find(id);
      if (it == tasks_.end() || !is_terminal(it->second.state)) continue;
      --count_by_state_[static_cast<int>(it->second.state)];
      tasks_.erase(it);
      forgotten.push_back(std::move(id));
    }
    std::vector<std::string> old_keys;
    while (!idempotency_order_.empty() &&
           idempotency_order_.front().first + limits_.result_ttl_s <= now) {
      old_keys.push_back(std::move(idempotency_order_.front().second));
      idempotency_order_.pop_front();
      idempotency_.erase(old_keys.back());
    }
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (it->second.last_poll + limits_.client_ttl_s <= now &&
          !waiters_.count("client:" + it->first)) {
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
    if (backend_->durable()) {
      Status st = backend_->put_tasks(dirty_);
      if (st.is_ok()) st = backend_->erase_tasks(forgotten);
      if (st.is_ok()) st = backend_->erase_idempotency(old_keys);
      if (!st.is_ok()) spdlog::warn("sweep not persisted: {}", st.to_string());
    }
    dirty_.clear();
  }
  fire(wakes);
}

std::string ServiceState::metrics_text() {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream os;
  os << "# HELP flight_tasks Tasks held by the service, by state.\n# TYPE flight_tasks gauge\n";
  for (int s = 0; s < 6; ++s) {
    os << "flight_tasks{state=\"" << task_state_name(static_cast<TaskState>(s)) << "\"} "
       << count_by_state_[s] << "\n";
  }
  os << "# HELP flight_tasks_finished_total Tasks that reached a terminal state.\n"
        "# TYPE flight_tasks_finished_total counter\n";
  for (int s = 2; s < 6; ++s) {
    os << "flight_tasks_finished_total{state=\"" << task_state_name(static_cast<TaskState>(s))
       << "\"} " << finished_total_[s] << "\n";
  }
  os << "# HELP flight_queue_depth Pending tasks per endpoint name.\n# TYPE flight_queue_depth "
        "gauge\n";
  for (const auto& [name, n] : pending_by_name_) {
    os << "flight_queue_depth{endpoint=\"" << prom_escape(name) << "\"} " << n << "\n";
  }
  std::map<std::string, size_t> eps;
  for (const auto& kv : endpoints_) ++eps[kv.second.name];
  os << "# HELP flight_endpoints Registered endpoint processes per name.\n"
        "# TYPE flight_endpoints gauge\n";
  for (const auto& [name, n] : eps) {
    os << "flight_endpoints{endpoint=\"" << prom_escape(name) << "\"} " << n << "\n";
  }
  os << "# HELP flight_task_latency_seconds Submission to result, for succeeded and failed tasks.\n"
        "# TYPE flight_task_latency_seconds histogram\n";
  for (size_t i = 0; i < kNumBounds; ++i) {
    os << "flight_task_latency_seconds_bucket{le=\"" << kLatencyBounds[i] << "\"} "
       << latency_buckets_[i] << "\n";
  }
  os << "flight_task_latency_seconds_bucket{le=\"+Inf\"} " << latency_count_ << "\n";
  os << "flight_task_latency_seconds_sum " << latency_sum_ << "\n";
  os << "flight_task_latency_seconds_count " << latency_count_ << "\n";
  return os.str();
}

}  // namespace flight::faas
