// The REST service's task tables, independent of HTTP: endpoints, per-name
// task queues with leases, results, idempotency keys, per-client completion
// streams, long-poll waiters, metrics. service.cc maps routes onto it.
//
// Tasks are addressed to an endpoint NAME; every endpoint process registered
// under that name leases from the same queue. A lease expires unless renewed
// (heartbeat); an expired lease puts the task back at the front of its queue,
// up to max_attempts leases, after which the task fails with the reason.
//
// Long polls: the *_or_wait methods either return a response body or, when
// nothing is ready and a Waiter is given, register the waiter atomically with
// the check (no lost wake-ups) and return nullopt. A change that may satisfy a
// waiter unregisters it and calls Waiter::wake() after the lock is released;
// the caller then simply asks again.
//
// Access: methods that touch one caller's tasks or endpoints take the
// Principal that asked (flight/faas/auth.h). A client sees only tasks whose
// owner is its name; an endpoint only endpoints and tasks of its own name.
// Violations are PermissionDenied (403). Admins see everything.
//
// Thread safety: all methods may be called concurrently (one mutex). The
// backend is written through under that mutex.
#pragma once

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/faas/auth.h"
#include "flight/faas/invoker.h"
#include "flight/faas/state_backend.h"

namespace flight::faas {

struct StateLimits {
  double lease_s = 30;                     // lease length; endpoints renew at lease_s / 3
  int max_attempts = 3;                    // leases per task before it fails
  size_t max_queue_per_endpoint = 100000;  // pending tasks per endpoint name (429 beyond)
  double result_ttl_s = 3600;              // finished tasks are forgotten after this
  double client_ttl_s = 600;  // completion streams not polled for this long are dropped
  size_t max_completions_per_client = 1000000;
};

// The shared part of a batch of task args or results (shared_json.h), sent
// once per request: a task's args (result) are merge_shared(shared, own).
// Immutable; tasks hold it by shared_ptr, so it lives as long as one needs it.
struct SharedJson {
  std::string id;        // service-unique, names it in lease and completion replies
  nlohmann::json value;  // an object
};
using SharedJsonPtr = std::shared_ptr<const SharedJson>;

struct Waiter {
  std::function<void()> wake;     // must not block (it posts to the waiting session)
  std::vector<std::string> keys;  // guarded by the state's mutex
};
using WaiterPtr = std::shared_ptr<Waiter>;

class ServiceState {
 public:
  ServiceState(StateLimits limits, std::unique_ptr<StateBackend> backend);

  // Restores the backend's snapshot (call once, before serving).
  Status load();
  const StateBackend& backend() const { return *backend_; }
  const StateLimits& limits() const { return limits_; }

  struct Submission {
    std::string id;  // optional client-chosen id ([A-Za-z0-9._-], <= 128 chars)
    TaskSpec spec;   // spec.args: the task's own args (an object when shared is set)
    std::shared_ptr<SharedJson> shared;  // null, or its submission's shared args (id set here)
  };
  struct SubmitOutcome {
    std::vector<std::string> ids;
    bool replayed = false;  // same Idempotency-Key and body as before: nothing new queued
  };
  // Errors: AlreadyExists (id taken, or key reused with another body),
  // ResourceExhausted (an endpoint's queue is full), Unavailable (backend).
  // `owner`: Principal::owner() of the submitter.
  StatusOr<SubmitOutcome> submit(std::vector<Submission> tasks, const std::string& idempotency_key,
                                 const std::string& body_digest, const std::string& client,
                                 const std::string& owner = "");

  // body: {"name", "functions": [...], "meta": {...}} (validated by the caller).
  nlohmann::json register_endpoint(const std::string& name,
                                   const std::vector<std::string>& functions,
                                   const nlohmann::json& meta);
  Status deregister_endpoint(const std::string& id, const Principal& who = {});
  StatusOr<nlohmann::json> get_endpoint(const std::string& id, const Principal& who = {});

  // {"tasks": [{"id","function","args","endpoint","deadline_at","attempt",
  // "shared"?}], "shared"?: {id: args}}: a task with "shared" takes the args
  // of that entry with its own "args" set on top (each entry sent once per
  // reply). Leases are written through before they are handed out; when the backend
  // refuses, nothing is leased (Unavailable).
  StatusOr<std::optional<nlohmann::json>> lease_or_wait(const std::string& endpoint_id, size_t max,
                                                        const WaiterPtr& waiter,
                                                        const Principal& who = {});
  // The task's view once it is terminal (or at once without a waiter).
  StatusOr<std::optional<nlohmann::json>> task_or_wait(const std::string& id,
                                                       const WaiterPtr& waiter,
                                                       const Principal& who = {});
  // {"tasks": [terminal views], "pending": [ids], "unknown": [ids]} as soon as
  // one id is terminal or unknown (or at once without a waiter). Tasks the
  // caller may not see are reported unknown.
  std::optional<nlohmann::json> wait_tasks_or_wait(const std::vector<std::string>& ids, size_t max,
                                                   const WaiterPtr& waiter,
                                                   const Principal& who = {});
  // Pops up to max finished tasks submitted by `client`: {"tasks": [views]}.
  std::optional<nlohmann::json> completions_or_wait(const std::string& client, size_t max,
                                                    const WaiterPtr& waiter);
  void remove_waiter(const WaiterPtr& waiter);
  void clear_waiters();

  struct ResultIn {
    std::string task_id;
    TaskState state = TaskState::kSucceeded;  // succeeded or failed (or cancelled)
    nlohmann::json result;                    // own part when `shared` is set
    std::shared_ptr<SharedJson> shared;       // the post's shared result part (id set here)
    std::string error;
    double started_at = 0;
    double finished_at = 0;
  };
  // One outcome per result: "accepted", "ignored: task already <state>",
  // "unknown task", or "forbidden: ..." (an endpoint posting for another name).
  // Unavailable when the backend did not take them: the poster must retry
  // (first result wins, so a retry is harmless).
  StatusOr<std::vector<std::string>> post_results(std::vector<ResultIn> results,
                                                  const Principal& who = {});
  bool task_exists(const std::string& id);

  // Renews leases of `task_ids` held by (or re-leases them to) the endpoint;
  // returns {"cancelled": [ids no longer wanted]}. NotFound for unknown endpoints.
  StatusOr<nlohmann::json> heartbeat(const std::string& endpoint_id,
                                     const std::vector<std::string>& task_ids,
                                     const Principal& who = {});
  // Puts leased tasks back at the front of their queue without counting the attempt.
  StatusOr<nlohmann::json> release(const std::string& endpoint_id,
                                   const std::vector<std::string>& task_ids,
                                   const Principal& who = {});
  StatusOr<nlohmann::json> cancel(const std::string& task_id, const Principal& who = {});

  // Expires leases and deadlines, forgets old results and idle clients.
  void sweep(double now);

  // Prometheus text exposition of the task metrics.
  std::string metrics_text();

 private:
  struct TaskRecord {
    std::string id, endpoint, function, client;
    std::string owner;    // submitting client's name ("" for admin submissions)
    nlohmann::json args;  // own args: the function gets merge_shared(shared->value, args)
    SharedJsonPtr shared;
    double deadline_s = 0;
    TaskState state = TaskState::kPending;
    nlohmann::json result;  // own result: merged with result_shared (effective_result)
    SharedJsonPtr result_shared;
    std::string error;
    double submitted_at = 0, started_at = 0, finished_at = 0;
    int attempts = 0;
    uint64_t seq = 0;
    std::string lease_endpoint;
    double lease_expires = 0;
    std::string last_lease_endpoint;
  };
  struct EndpointRecord {
    std::string id, name;
    std::vector<std::string> functions;
    nlohmann::json meta;
    double registered_at = 0, last_seen = 0;
  };
  struct IdempotencyRecord {
    std::string digest;
    std::vector<std::string> ids;
    double created = 0;
  };
  struct ClientStream {
    std::deque<std::string> done;
    double last_poll = 0;
  };
  using Wakes = std::vector<WaiterPtr>;

  nlohmann::json view(const TaskRecord& t, bool with_args) const;
  nlohmann::json view_of(const TaskRecord& t, nlohmann::json result) const;
  // The args the function runs with / the result it gave: shared part merged.
  static nlohmann::json effective_args(const TaskRecord& t);
  static nlohmann::json effective_result(const TaskRecord& t);
  // A view for a reply that carries shared parts once ("shared": {id: value}
  // in `shared`): the task's own result and "result_shared": id.
  nlohmann::json view_sharing(const TaskRecord& t, nlohmann::json* shared) const;
  // PermissionDenied unless `who` may see / post for `t`, or use endpoint `e`.
  static Status may_read(const Principal& who, const TaskRecord& t);
  static Status may_act_as(const Principal& who, const EndpointRecord& e);
  // The endpoint record of `id` that `who` may use (NotFound / PermissionDenied).
  StatusOr<EndpointRecord*> endpoint_for(const std::string& id, const Principal& who);
  std::string persist_doc(const TaskRecord& t) const;
  nlohmann::json endpoint_view(const EndpointRecord& e) const;
  void persist(const TaskRecord& t);
  void set_state(TaskRecord& t, TaskState s);
  void finish(TaskRecord& t, TaskState s, nlohmann::json result, std::string error, double started,
              double finished, Wakes& wakes, SharedJsonPtr result_shared = nullptr);
  void requeue_front(TaskRecord& t, Wakes& wakes);
  void wake_key(const std::string& key, Wakes& wakes);
  void add_waiter(const WaiterPtr& w, const std::string& key);
  void unregister_locked(const WaiterPtr& w);
  static void fire(Wakes& wakes);

  const StateLimits limits_;
  std::unique_ptr<StateBackend> backend_;

  std::mutex mu_;
  uint64_t next_seq_ = 1;
  uint64_t next_shared_ = 1;
  std::unordered_map<std::string, TaskRecord> tasks_;
  std::map<std::string, std::deque<std::string>> queues_;  // name -> pending ids (may hold stale)
  std::map<std::string, size_t> pending_by_name_;
  std::unordered_set<std::string> running_;
  std::multimap<double, std::string> deadlines_;  // deadline (wall) -> id
  std::deque<std::pair<double, std::string>> finished_order_;
  std::map<std::string, EndpointRecord> endpoints_;
  std::unordered_map<std::string, IdempotencyRecord> idempotency_;
  std::deque<std::pair<double, std::string>> idempotency_order_;
  std::unordered_map<std::string, ClientStream> clients_;
  std::unordered_map<std::string, std::vector<WaiterPtr>> waiters_;
  std::vector<std::pair<std::string, std::string>> dirty_;  // docs to write through

  std::array<size_t, 6> count_by_state_{};
  std::array<uint64_t, 6> finished_total_{};
  std::vector<uint64_t> latency_buckets_;
  double latency_sum_ = 0;
  uint64_t latency_count_ = 0;
};

}  // namespace flight::faas
