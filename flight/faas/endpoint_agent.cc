#include "flight/faas/endpoint_agent.h"

#include <unistd.h>

#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/time.h"
#include "flight/faas/http_client.h"
#include "flight/faas/invoker.h"
#include "flight/faas/shared_json.h"
#include "flight/faas/token_file.h"

namespace flight::faas {

Status EndpointAgentOptions::validate() const {
  FLIGHT_RETURN_IF_ERROR(check_service_url(service_url, "endpoint"));
  if (token.empty() && token_file.empty()) {
    return invalid_argument("endpoint: a bearer token is required (token or token_file)");
  }
  if (name.empty()) return invalid_argument("endpoint: name must not be empty");
  if (threads < 1) return invalid_argument("endpoint: threads must be >= 1");
  if (!(poll_wait_s > 0)) return invalid_argument("endpoint: poll_wait_s must be > 0");
  if (!(max_backoff_s > 0)) return invalid_argument("endpoint: max_backoff_s must be > 0");
  if (grace_s < 0) return invalid_argument("endpoint: grace_s must be >= 0");
  if (!(request_timeout_s > 0)) return invalid_argument("endpoint: request_timeout_s must be > 0");
  return Status::ok();
}

StatusOr<EndpointAgentOptions> EndpointAgentOptions::from_json(const nlohmann::json& j) {
  const std::string w = "endpoint options";
  OptionReader reader(j, w);
  EndpointAgentOptions o;
  reader.required("service_url", &o.service_url);
  reader.optional("token", &o.token);
  reader.optional("token_file", &o.token_file);
  reader.optional("ca_file", &o.ca_file);
  reader.required("name", &o.name);
  reader.optional("threads", &o.threads);
  reader.optional("prefetch", &o.prefetch);
  reader.optional("poll_wait_s", &o.poll_wait_s);
  reader.optional("max_backoff_s", &o.max_backoff_s);
  reader.optional("grace_s", &o.grace_s);
  reader.optional("request_timeout_s", &o.request_timeout_s);
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json EndpointAgentOptions::to_json() const {
  return {{"service_url", service_url}, {"token_file", token_file},
          {"ca_file", ca_file},         {"name", name},
          {"threads", threads},         {"prefetch", prefetch},
          {"poll_wait_s", poll_wait_s}, {"max_backoff_s", max_backoff_s},
          {"grace_s", grace_s},         {"request_timeout_s", request_timeout_s}};
}

namespace {

// POST /v1/results body for `batch` (moved in): what the results have in
// common (e.g. the connector config of every update Ref) goes once, as
// "shared". unpack_results() gives the batch back (to resend it later).
nlohmann::json pack_results(std::vector<nlohmann::json> batch) {
  std::vector<nlohmann::json*> docs;
  for (auto& r : batch) {
    auto it = r.find("result");
    if (it != r.end() && it->is_object()) docs.push_back(&*it);
  }
  nlohmann::json body = nlohmann::json::object();
  nlohmann::json shared = factor_shared(docs);
  if (!shared.is_null()) {
    for (auto& r : batch) {
      auto it = r.find("result");
      if (it != r.end() && it->is_object()) r["shared"] = "r";
    }
    body["shared"] = {{"r", std::move(shared)}};
  }
  body["results"] = std::move(batch);
  return body;
}

std::vector<nlohmann::json> unpack_results(nlohmann::json body) {
  std::vector<nlohmann::json> batch = std::move(body["results"]).get<std::vector<nlohmann::json>>();
  auto shared = body.find("shared");
  if (shared == body.end()) return batch;
  for (auto& r : batch) {
    if (r.contains("shared")) {
      r.erase("shared");
      r["result"] = merge_shared((*shared)["r"], std::move(r["result"]));
    }
  }
  return batch;
}

}  // namespace

EndpointAgent::EndpointAgent(EndpointAgentOptions options, FunctionRegistry& functions)
    : options_(std::move(options)), functions_(functions) {}

EndpointAgent::~EndpointAgent() {
  stop();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return !running_run_; });
}

void EndpointAgent::stop() {
  stop_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

std::string EndpointAgent::endpoint_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return endpoint_id_;
}

void EndpointAgent::backoff_wait(double* backoff) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double>(*backoff), [this] { return stop_.load(); });
  *backoff = std::min(options_.max_backoff_s, *backoff * 2);
}

bool EndpointAgent::register_with(HttpClient& http) {
  nlohmann::json body = {
      {"name", options_.name},
      {"functions", functions_.names()},
      {"meta", {{"pid", static_cast<int64_t>(getpid())}, {"threads", options_.threads}}}};
  auto r = http.post_json("/v1/endpoints", body, {}, options_.request_timeout_s);
  if (!r.is_ok()) {
    if (!stop_)
      spdlog::warn("endpoint '{}': cannot register: {}", options_.name, r.status().to_string());
    return false;
  }
  if (!r->ok()) {
    spdlog::warn("endpoint '{}': {}", options_.name,
                 status_from_response(*r, "register").to_string());
    return false;
  }
  std::string id;
  double lease_s = 30;
  auto j = reply_object(*r, "registration reply");
  Status st = j.status();
  if (st.is_ok()) {
    OptionReader reply(*j, "registration reply");
    reply.ignore_unknown().required("id", &id).optional("lease_s", &lease_s);
    if (id.empty()) reply.fail("id", "must not be empty");
    if (!(lease_s > 0)) reply.fail("lease_s", "must be > 0");
    st = reply.finish();
  }
  if (!st.is_ok()) {
    spdlog::warn("endpoint '{}': {}", options_.name, st.to_string());
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  endpoint_id_ = id;
  lease_s_ = lease_s;
  spdlog::info("endpoint '{}' registered as {} (lease {} s)", options_.name, endpoint_id_,
               lease_s_);
  cv_.notify_all();
  return true;
}

void EndpointAgent::release(HttpClient& http, const std::vector<std::string>& ids) {
  std::string id = endpoint_id();
  if (ids.empty() || id.empty()) return;
  auto r = http.post_json("/v1/endpoints/" + id + "/release", {{"task_ids", ids}}, {},
                          options_.request_timeout_s);
  if (!r.is_ok() || !r->ok()) {
    spdlog::warn("endpoint '{}': could not hand back {} leases (they expire instead)",
                 options_.name, ids.size());
  }
}

Status EndpointAgent::run() {
  FLIGHT_RETURN_IF_ERROR(options_.validate());
  token_ = options_.token;
  if (token_.empty()) {
    FLIGHT_ASSIGN_OR_RETURN(token_, read_token_file(options_.token_file));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    FLIGHT_CHECK(!running_run_, "EndpointAgent::run() called twice");
    running_run_ = true;
  }
  const size_t capacity =
      options_.threads + (options_.prefetch ? options_.prefetch : options_.threads);
  std::vector<std::thread> workers;
  for (size_t i = 0; i < options_.threads; ++i) workers.emplace_back([this] { work(); });
  std::thread poster([this] { post_loop(); });

  HttpClient http(options_.service_url, token_, options_.ca_file);
  http.set_abort_flag(&stop_);
  double backoff = 0.05;
  while (!stop_) {
    std::string id = endpoint_id();
    if (id.empty()) {
      if (register_with(http)) {
        backoff = 0.05;
      } else {
        backoff_wait(&backoff);
      }
      continue;
    }
    size_t free_slots = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || queue_.size() + running_.size() < capacity; });
      if (stop_) break;
      free_slots = capacity - queue_.size() - running_.size();
    }
    auto r =
        http.get("/v1/endpoints/" + id + "/tasks?wait=" + std::to_string(options_.poll_wait_s) +
                     "&max=" + std::to_string(free_slots),
                 options_.poll_wait_s + options_.request_timeout_s);
    if (stop_) {
      if (r.is_ok() && r->ok()) {
        // Leased just as we stopped: hand them straight back below.
        auto j = reply_object(*r, "lease reply");
        auto tasks = j.is_ok() ? reply_array(*j, "tasks", "lease reply") : j.status();
        std::lock_guard<std::mutex> lock(mu_);
        if (tasks.is_ok()) {
          for (const auto& t : *tasks) {
            std::string tid;
            OptionReader task(t, "lease reply.tasks[]");
            task.ignore_unknown().required("id", &tid);
            if (task.finish().is_ok()) queue_.push_back(Leased{tid, "", "", nullptr, 0, nullptr});
          }
        }
      }
      break;
    }
    if (!r.is_ok()) {
      spdlog::warn("endpoint '{}': {}; retrying in {:.2f} s", options_.name, r.status().to_string(),
                   backoff);
      backoff_wait(&backoff);
      continue;
    }
    if (r->status == 404) {
      spdlog::warn("endpoint '{}': the service forgot {}; registering again", options_.name, id);
      std::lock_guard<std::mutex> lock(mu_);
      endpoint_id_.clear();
      continue;
    }
    if (!r->ok()) {
      spdlog::warn("endpoint '{}': {}", options_.name,
                   status_from_response(*r, "lease").to_string());
      backoff_wait(&backoff);
      continue;
    }
    auto j = reply_object(*r, "lease reply");
    auto tasks = j.is_ok() ? reply_array(*j, "tasks", "lease reply") : j.status();
    if (!tasks.is_ok()) {
      spdlog::error("endpoint '{}': {}; retrying in {:.2f} s", options_.name,
                    tasks.status().to_string(), backoff);
      backoff_wait(&backoff);
      continue;
    }
    backoff = 0.05;
    // Args common to several tasks come once per reply ("shared"); a task
    // naming one runs with those args and its own set on top.
    const nlohmann::json* shared = nullptr;
    if (auto sh = j->find("shared"); sh != j->end() && sh->is_object()) shared = &*sh;
    std::vector<Leased> got;
    for (size_t i = 0; i < tasks->size(); ++i) {
      nlohmann::json& t = (*tasks)[i];
      const std::string where = "lease reply.tasks[" + std::to_string(i) + "]";
      Leased l;
      l.endpoint = options_.name;
      std::string shared_name;
      OptionReader task(t, where);
      task.ignore_unknown()
          .required("id", &l.id)
          .required("function", &l.function)
          .optional("endpoint", &l.endpoint)
          .optional("deadline_at", &l.deadline_at)
          .optional("shared", &shared_name);
      auto own = t.is_object() ? t.find("args") : t.end();
      const bool has_own = own != t.end() && !own->is_null();
      if (task.has("shared")) {
        const nlohmann::json* base = nullptr;
        if (shared) {
          auto b = shared->find(shared_name);
          if (b != shared->end() && b->is_object()) base = &*b;
        }
        if (!base) {
          task.fail("shared", "'" + shared_name + "' is not in the reply's \"shared\" object");
        } else if (has_own && !own->is_object()) {
          task.fail("args", "must be an object with \"shared\"");
        } else {
          l.args = merge_shared(*base, has_own ? std::move(*own) : nlohmann::json::object());
        }
      } else {
        l.args = has_own ? std::move(*own) : nlohmann::json::object();
      }
      Status st = task.finish();
      if (!st.is_ok()) {
        // Not runnable: its lease expires and the service redelivers or fails it.
        spdlog::error("endpoint '{}': skipping a malformed leased task: {}", options_.name,
                      st.to_string());
        continue;
      }
      l.cancelled = std::make_shared<std::atomic<bool>>(false);
      got.push_back(std::move(l));
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& l : got) queue_.push_back(std::move(l));
    cv_.notify_all();
  }

  // --- graceful stop ---
  HttpClient closing(options_.service_url, token_, options_.ca_file);
  std::vector<std::string> unstarted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& l : queue_) unstarted.push_back(l.id);
    queue_.clear();
  }
  release(closing, unstarted);
  bool finished = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    finished = cv_.wait_for(lock, std::chrono::duration<double>(options_.grace_s),
                            [this] { return running_.empty(); });
    workers_stop_ = true;
    if (!finished) {
      std::vector<std::string> ids;
      for (auto& kv : running_) {
        kv.second->store(true);
        ids.push_back(kv.first);
      }
      lock.unlock();
      spdlog::warn("endpoint '{}': {} tasks still running after {} s; handing them back",
                   options_.name, ids.size(), options_.grace_s);
      release(closing, ids);
      lock.lock();
    }
    cv_.notify_all();
  }
  // Every thread is joined: the running tasks were asked to stop (their
  // leases are handed back), and a function polls its TaskContext.
  for (auto& w : workers) w.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    poster_stop_ = true;
    cv_.notify_all();
  }
  poster.join();
  std::string id = endpoint_id();
  if (!id.empty())
    (void)closing.request("DELETE", "/v1/endpoints/" + id, "", {}, options_.request_timeout_s);
  spdlog::info("endpoint '{}' stopped after {} tasks", options_.name, tasks_run_.load());
  std::lock_guard<std::mutex> lock(mu_);
  running_run_ = false;
  done_cv_.notify_all();
  return Status::ok();
}

void EndpointAgent::work() {
  while (true) {
    Leased l;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return workers_stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      l = std::move(queue_.front());
      queue_.pop_front();
      running_[l.id] = l.cancelled;
    }
    nlohmann::json out;
    if (l.deadline_at > 0 && wall_seconds() >= l.deadline_at) {
      out = nullptr;  // expired before it started: the service already failed it
    } else {
      TaskContext ctx;
      ctx.task_id = l.id;
      ctx.endpoint = l.endpoint;
      ctx.cancelled = [flag = l.cancelled, deadline = l.deadline_at] {
        return flag->load() || (deadline > 0 && wall_seconds() >= deadline);
      };
      ctx.deadline_at = l.deadline_at;
      double started = wall_seconds();
      auto r = run_function(functions_, l.function, l.args, ctx);
      out = {{"task_id", l.id},
             {"started_at", started},
             {"finished_at", wall_seconds()},
             {"state", task_state_name(final_state(r.status()))}};
      if (r.is_ok()) {
        out["result"] = std::move(r).value();
      } else {
        out["error"] = r.status().message();
      }
      tasks_run_.fetch_add(1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(l.id);
    if (!out.is_null()) results_.push_back(std::move(out));
    cv_.notify_all();
  }
}

void EndpointAgent::post_loop() {
  HttpClient http(options_.service_url, token_, options_.ca_file);
  double backoff = 0.05;
  auto last_heartbeat = SteadyClock::now();
  int final_attempts = 0;
  while (true) {
    std::vector<nlohmann::json> batch;
    std::vector<std::string> leased;
    std::string id;
    bool heartbeat = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // lease_s_ is learnt at registration (which notifies cv_), so the
      // heartbeat deadline is recomputed on every wake-up.
      auto interval = [this] {
        return std::chrono::duration_cast<SteadyClock::duration>(
            std::chrono::duration<double>(std::max(0.05, lease_s_ / 3)));
      };
      while (!poster_stop_ && results_.empty() &&
             SteadyClock::now() < last_heartbeat + interval()) {
        cv_.wait_until(lock, last_heartbeat + interval());
      }
      if (poster_stop_ && (results_.empty() || final_attempts >= 3)) return;
      batch.swap(results_);
      id = endpoint_id_;
      heartbeat = SteadyClock::now() >= last_heartbeat + interval();
      if (heartbeat) {
        for (const auto& l : queue_) leased.push_back(l.id);
        for (const auto& kv : running_) leased.push_back(kv.first);
      }
    }
    if (!batch.empty()) {
      nlohmann::json body = pack_results(std::move(batch));
      auto r = http.post_json("/v1/results", body, {}, options_.request_timeout_s);
      if (!r.is_ok() || r->status >= 500) {
        // Service away: keep the results (first result wins, so resending is safe).
        std::unique_lock<std::mutex> lock(mu_);
        batch = unpack_results(std::move(body));
        results_.insert(results_.begin(), std::make_move_iterator(batch.begin()),
                        std::make_move_iterator(batch.end()));
        if (poster_stop_) ++final_attempts;
        cv_.wait_for(lock, std::chrono::duration<double>(backoff), [this] { return poster_stop_; });
        backoff = std::min(options_.max_backoff_s, backoff * 2);
        continue;
      }
      if (!r->ok()) {
        spdlog::warn("endpoint '{}': results rejected: {}", options_.name,
                     status_from_response(*r, "POST /v1/results").to_string());
      }
      backoff = 0.05;
    }
    if (heartbeat) {
      last_heartbeat = SteadyClock::now();
      if (id.empty() || leased.empty()) continue;
      auto r = http.post_json("/v1/endpoints/" + id + "/heartbeat", {{"task_ids", leased}}, {},
                              options_.request_timeout_s);
      if (!r.is_ok() || !r->ok()) continue;
      auto j = reply_object(*r, "heartbeat reply");
      std::vector<std::string> cancelled;
      Status st = j.status();
      if (st.is_ok()) {
        OptionReader reply(*j, "heartbeat reply");
        st = reply.ignore_unknown().optional("cancelled", &cancelled).finish();
      }
      if (!st.is_ok()) {
        spdlog::warn("endpoint '{}': {}", options_.name, st.to_string());
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& tid : cancelled) {
        auto it = running_.find(tid);
        if (it != running_.end()) it->second->store(true);
        for (auto q = queue_.begin(); q != queue_.end(); ++q) {
          if (q->id == tid) {
            queue_.erase(q);
            break;
          }
        }
      }
      cv_.notify_all();
    }
  }
}

}  // namespace flight::faas
