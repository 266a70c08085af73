#include "flight/faas/rest_invoker.h"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "flight/base/ids.h"
#include "flight/base/json.h"
#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/time.h"
#include "flight/faas/deadline_timer.h"
#include "flight/faas/http_client.h"
#include "flight/faas/shared_json.h"
#include "flight/faas/token_file.h"

namespace flight::faas {

Status RestInvokerOptions::validate() const {
  FLIGHT_RETURN_IF_ERROR(check_service_url(url, "rest invoker"));
  if (token.empty() && token_file.empty()) {
    return invalid_argument("rest invoker: a bearer token is required (token or token_file)");
  }
  if (!(request_timeout_s > 0))
    return invalid_argument("rest invoker: request_timeout_s must be > 0");
  if (max_retries < 0) return invalid_argument("rest invoker: max_retries must be >= 0");
  if (retry_timeout_s < 0) return invalid_argument("rest invoker: retry_timeout_s must be >= 0");
  if (retry_backoff_s < 0) return invalid_argument("rest invoker: retry_backoff_s must be >= 0");
  if (queue_full_timeout_s < 0)
    return invalid_argument("rest invoker: queue_full_timeout_s must be >= 0");
  if (!(poll_wait_s > 0)) return invalid_argument("rest invoker: poll_wait_s must be > 0");
  if (max_batch < 1) return invalid_argument("rest invoker: max_batch must be >= 1");
  if (close_timeout_s < 0) return invalid_argument("rest invoker: close_timeout_s must be >= 0");
  return Status::ok();
}

StatusOr<RestInvokerOptions> RestInvokerOptions::from_json(const nlohmann::json& j) {
  const std::string w = "rest invoker options";
  OptionReader reader(j, w);
  RestInvokerOptions o;
  reader.required("url", &o.url);
  reader.optional("token", &o.token);
  reader.optional("token_file", &o.token_file);
  reader.optional("ca_file", &o.ca_file);
  reader.optional("request_timeout_s", &o.request_timeout_s);
  reader.optional("max_retries", &o.max_retries);
  reader.optional("retry_timeout_s", &o.retry_timeout_s);
  reader.optional("retry_backoff_s", &o.retry_backoff_s);
  reader.optional("queue_full_timeout_s", &o.queue_full_timeout_s);
  reader.optional("poll_wait_s", &o.poll_wait_s);
  reader.optional("max_batch", &o.max_batch);
  reader.optional("close_timeout_s", &o.close_timeout_s);
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json RestInvokerOptions::to_json() const {
  return {{"url", url},
          {"token_file", token_file},
          {"ca_file", ca_file},
          {"request_timeout_s", request_timeout_s},
          {"max_retries", max_retries},
          {"retry_timeout_s", retry_timeout_s},
          {"retry_backoff_s", retry_backoff_s},
          {"queue_full_timeout_s", queue_full_timeout_s},
          {"poll_wait_s", poll_wait_s},
          {"max_batch", max_batch},
          {"close_timeout_s", close_timeout_s}};
}

namespace {

thread_local const void* t_rest_thread_of = nullptr;

class RestInvoker final : public Invoker {
 public:
  RestInvoker(RestInvokerOptions options, std::string token)
      : options_(std::move(options)),
        token_(std::move(token)),
        client_id_(new_id("client")),
        timer_([this] { t_rest_thread_of = this; }) {
    poller_ = std::thread([this] { poll_loop(); });
  }

  ~RestInvoker() override { (void)close(); }

  TaskHandle submit(TaskSpec spec, ResultCallback on_done) override {
    std::vector<TaskSpec> one;
    one.push_back(std::move(spec));
    return submit_batch(std::move(one), std::move(on_done)).front();
  }

  std::vector<TaskHandle> submit_batch(std::vector<TaskSpec> specs,
                                       ResultCallback on_done) override {
    std::vector<TaskHandle> handles;
    handles.reserve(specs.size());
    const double now = wall_seconds();
    std::vector<std::shared_ptr<TaskCompletion>> cs;
    cs.reserve(specs.size());
    const SharedCallback shared =
        on_done ? std::make_shared<const ResultCallback>(std::move(on_done)) : nullptr;
    for (size_t i = 0; i < specs.size(); ++i) {
      cs.push_back(std::make_shared<TaskCompletion>(new_id("task"), now, shared, specs[i].tag));
      handles.emplace_back(cs.back());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_ && t_rest_thread_of != this) {
        for (auto& c : cs) c->complete(make_terminal(TaskState::kFailed, "rest invoker is closed"));
        return handles;
      }
      for (auto& c : cs) {
        outstanding_.emplace(c->id(), c);
        // Until the service acknowledges the POST it cannot know the id, so
        // reconcile() must not take "unknown" for "lost".
        in_flight_submits_.insert(c->id());
      }
    }
    cv_.notify_all();
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].deadline_s > 0) {
        std::weak_ptr<TaskCompletion> weak = cs[i];
        double d = specs[i].deadline_s;
        timer_.schedule_after(d, [this, weak, d] {
          if (auto c = weak.lock()) {
            forget(c->id());
            c->request_cancel();
            c->complete(make_terminal(TaskState::kDeadlineExceeded,
                                      "deadline of " + std::to_string(d) + " s exceeded"));
          }
        });
      }
    }
    for (size_t start = 0; start < specs.size(); start += options_.max_batch) {
      size_t end = std::min(specs.size(), start + options_.max_batch);
      // What the tasks' args have in common (a round's job, model, put
      // target) travels once per request, not once per task.
      std::vector<nlohmann::json> args;
      std::vector<nlohmann::json*> docs;
      args.reserve(end - start);
      for (size_t i = start; i < end; ++i) args.push_back(specs[i].json_args());
      for (auto& a : args) docs.push_back(&a);
      nlohmann::json shared = factor_shared(docs);
      nlohmann::json tasks = nlohmann::json::array();
      for (size_t i = start; i < end; ++i) {
        nlohmann::json t = {{"endpoint", specs[i].endpoint},
                            {"function", specs[i].function},
                            {"args", std::move(args[i - start])},
                            {"deadline_s", specs[i].deadline_s},
                            {"id", cs[i]->id()}};
        if (!shared.is_null()) t["shared"] = "s";
        tasks.push_back(std::move(t));
      }
      nlohmann::json body = {{"tasks", std::move(tasks)}};
      if (!shared.is_null()) body["shared"] = {{"s", std::move(shared)}};
      Status st = post_tasks(body);
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = start; i < end; ++i) in_flight_submits_.erase(cs[i]->id());
      }
      if (!st.is_ok()) {
        for (size_t i = start; i < end; ++i) {
          forget(cs[i]->id());
          cs[i]->complete(make_terminal(TaskState::kFailed, "submission failed: " + st.message()));
        }
      }
    }
    return handles;
  }

  void cancel(const std::string& task_id) override {
    std::shared_ptr<TaskCompletion> c = forget(task_id);
    if (!c) return;
    c->request_cancel();
    c->complete(make_terminal(TaskState::kCancelled, "cancelled by the caller"));
    auto client = acquire_client();
    auto r = client->post_json("/v1/tasks/" + task_id + "/cancel", nlohmann::json::object(), {},
                               options_.request_timeout_s);
    if (!r.is_ok()) spdlog::warn("cancel {}: {}", task_id, r.status().to_string());
    release_client(std::move(client));
  }

  Status close() override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (closed_) return Status::ok();
      FLIGHT_CHECK(t_rest_thread_of != this, "close() called from an invoker thread");
      closing_ = true;
      cv_.notify_all();
      bool drained = cv_.wait_for(lock, std::chrono::duration<double>(options_.close_timeout_s),
                                  [this] { return outstanding_.empty(); });
      if (!drained)
        spdlog::warn("rest invoker: closing with {} tasks outstanding", outstanding_.size());
      closed_ = true;
      abort_ = true;
    }
    cv_.notify_all();
    if (poller_.joinable()) poller_.join();
    timer_.stop();
    std::unordered_map<std::string, std::shared_ptr<TaskCompletion>> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      left.swap(outstanding_);
    }
    for (auto& kv : left) {
      kv.second->complete(
          make_terminal(TaskState::kCancelled, "invoker closed before the task finished"));
    }
    return Status::ok();
  }

 private:
  std::unique_ptr<HttpClient> acquire_client() {
    {
      std::lock_guard<std::mutex> lock(clients_mu_);
      if (!clients_.empty()) {
        auto c = std::move(clients_.back());
        clients_.pop_back();
        return c;
      }
    }
    return std::make_unique<HttpClient>(options_.url, token_, options_.ca_file);
  }

  void release_client(std::unique_ptr<HttpClient> c) {
    std::lock_guard<std::mutex> lock(clients_mu_);
    if (clients_.size() < 16) clients_.push_back(std::move(c));
  }

  std::shared_ptr<TaskCompletion> forget(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end()) return nullptr;
    auto c = std::move(it->second);
    outstanding_.erase(it);
    if (outstanding_.empty()) cv_.notify_all();
    return c;
  }

  Status post_tasks(const nlohmann::json& body) {
    const std::string payload = dump_json(body);
    const std::vector<std::string> headers = {"Idempotency-Key: " + random_hex(32),
                                              "X-Flight-Client: " + client_id_};
    auto client = acquire_client();
    double backoff = options_.retry_backoff_s;
    int failures = 0;
    Stopwatch queue_full;
    std::optional<Stopwatch> failing;  // since the first network error / 5xx
    Status last;
    auto retry_failure = [&] {
      if (!failing) failing.emplace();
      return ++failures <= options_.max_retries || failing->seconds() < options_.retry_timeout_s;
    };
    while (true) {
      auto r = client->request("POST", "/v1/tasks", payload, headers, options_.request_timeout_s);
      if (r.is_ok() && r->ok()) {
        release_client(std::move(client));
        return Status::ok();
      }
      bool retry = false;
      if (!r.is_ok()) {
        last = r.status();
        retry = r.status().code() == StatusCode::kUnavailable && retry_failure();
      } else {
        last = status_from_response(*r, "POST /v1/tasks");
        if (r->status == 429) {
          retry = queue_full.seconds() < options_.queue_full_timeout_s;
        } else if (r->status >= 500) {
          retry = retry_failure();
        }
      }
      if (!retry) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(2.0, std::max(0.001, backoff * 2));
    }
    release_client(std::move(client));
    return last;
  }

  // `shared`: the reply's shared result parts (a view with "result_shared"
  // names one), or null.
  void deliver(nlohmann::json& tasks, const nlohmann::json* shared = nullptr) {
    for (auto& t : tasks) {
      // The result is moved out rather than copied by from_json.
      nlohmann::json result;
      if (auto it = t.is_object() ? t.find("result") : t.end(); it != t.end()) {
        result = std::move(*it);
        *it = nullptr;
      }
      if (auto it = t.is_object() ? t.find("result_shared") : t.end(); it != t.end()) {
        const nlohmann::json* base = nullptr;
        if (it->is_string() && shared && shared->is_object()) {
          auto b = shared->find(it->get<std::string>());
          if (b != shared->end()) base = &*b;
        }
        if (!base) {
          spdlog::warn(
              "rest invoker: ignoring a task view whose result_shared is not in the reply");
          continue;
        }
        result = merge_shared(*base, std::move(result));
        t.erase(it);
      }
      auto r = TaskResult::from_json(t);
      if (!r.is_ok()) {
        spdlog::warn("rest invoker: ignoring a malformed task view: {}", r.status().to_string());
        continue;
      }
      if (!is_terminal(r->state)) continue;
      r->result = std::move(result);
      if (auto c = forget(r->task_id)) c->complete(std::move(r).value());
    }
  }

  // After an outage the completion stream may have lost entries: ask for the
  // outstanding ids directly. Ids the service no longer knows failed.
  void reconcile(HttpClient& client) {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& kv : outstanding_) {
        if (!in_flight_submits_.count(kv.first)) ids.push_back(kv.first);
      }
    }
    for (size_t start = 0; start < ids.size(); start += 5000) {
      std::vector<std::string> chunk(ids.begin() + start,
                                     ids.begin() + std::min(ids.size(), start + 5000));
      auto r = client.post_json("/v1/tasks/wait", {{"ids", chunk}, {"wait", 0}}, {},
                                options_.request_timeout_s);
      if (!r.is_ok() || !r->ok()) return;
      auto j = reply_object(*r, "reconcile reply");
      auto tasks = j.is_ok() ? reply_array(*j, "tasks", "reconcile reply") : j.status();
      std::vector<std::string> unknown;
      Status st = tasks.status();
      if (st.is_ok()) {
        OptionReader reply(*j, "reconcile reply");
        st = reply.ignore_unknown().optional("unknown", &unknown).finish();
      }
      if (!st.is_ok()) {
        spdlog::warn("rest invoker: {}", st.to_string());
        return;
      }
      deliver(*tasks);
      for (const auto& id : unknown) {
        if (auto c = forget(id)) {
          c->complete(make_terminal(TaskState::kFailed,
                                    "the service no longer knows this task (lost in a restart "
                                    "without durable state?)"));
        }
      }
    }
  }

  void poll_loop() {
    t_rest_thread_of = this;
    HttpClient client(options_.url, token_, options_.ca_file);
    client.set_abort_flag(&abort_);
    const std::string path = "/v1/clients/" + client_id_ +
                             "/completions?max=10000&wait=" + std::to_string(options_.poll_wait_s);
    double backoff = options_.retry_backoff_s;
    bool need_reconcile = false;
    Stopwatch since_reconcile;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return closed_ || !outstanding_.empty(); });
        if (closed_) return;
      }
      if (need_reconcile || since_reconcile.seconds() > 30) {
        reconcile(client);
        need_reconcile = false;
        since_reconcile.reset();
      }
      auto r = client.get(path, options_.poll_wait_s + options_.request_timeout_s);
      Status st;
      if (r.is_ok() && r->ok()) {
        auto j = reply_object(*r, "completions reply");
        auto tasks = j.is_ok() ? reply_array(*j, "tasks", "completions reply") : j.status();
        if (tasks.is_ok()) {
          backoff = options_.retry_backoff_s;
          auto shared = j->find("shared");
          deliver(*tasks, shared != j->end() ? &*shared : nullptr);
          continue;
        }
        st = tasks.status();  // a garbled reply may have carried completions: reconcile
      } else if (r.is_ok()) {
        st = status_from_response(*r, "completions");
      } else {
        st = r.status();
      }
      if (abort_) return;
      spdlog::warn("rest invoker: {}; retrying in {:.2f} s", st.to_string(), backoff);
      need_reconcile = true;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::duration<double>(backoff), [this] { return closed_; });
      backoff = std::min(2.0, std::max(0.01, backoff * 2));
    }
  }

  const RestInvokerOptions options_;
  const std::string token_;
  const std::string client_id_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::shared_ptr<TaskCompletion>> outstanding_;
  std::unordered_set<std::string> in_flight_submits_;  // ids whose POST has not returned
  bool closing_ = false, closed_ = false;
  std::atomic<bool> abort_{false};

  std::mutex clients_mu_;
  std::vector<std::unique_ptr<HttpClient>> clients_;

  DeadlineTimer timer_;
  std::thread poller_;
};

}  // namespace

StatusOr<std::unique_ptr<Invoker>> make_rest_invoker(const RestInvokerOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  std::string token = options.token;
  if (token.empty()) {
    FLIGHT_ASSIGN_OR_RETURN(token, read_token_file(options.token_file));
  }
  HttpClient probe(options.url, token, options.ca_file);
  auto r = probe.get("/v1/healthz", options.request_timeout_s);
  if (!r.is_ok()) return r.status().with_context("rest invoker: service not reachable");
  if (!r->ok()) return status_from_response(*r, "rest invoker: healthz");
  return std::unique_ptr<Invoker>(std::make_unique<RestInvoker>(options, token));
}

}  // namespace flight::faas
