// EndpointAgent: the edge-device side of `flight serve`, run by
// `flight endpoint`. It connects outward only (works behind NAT):
//   register (POST /v1/endpoints) → long-poll leases
//   (GET /v1/endpoints/{id}/tasks?wait&max) → run functions from its
//   FunctionRegistry on `threads` workers → post results in batches
//   (POST /v1/results), renewing leases with heartbeats every lease_s / 3
//   (the heartbeat answer also says which tasks were cancelled).
// When the service is away it retries with exponential backoff (up to
// max_backoff_s) and registers again if the service forgot it.
// stop() (e.g. on SIGTERM): stop leasing, hand back leased tasks that have not
// started, let running ones finish for up to grace_s (then ask them to stop
// and hand their leases back), post the last results, deregister.
//
// Thread safety: run() on one thread; stop() from any thread (not from a
// signal handler: use a sigwait thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/faas/functions.h"

namespace flight::faas {

struct EndpointAgentOptions {
  std::string service_url;  // "http://host:port" or "https://host:port"; required
  std::string token;        // bearer token, or:
  std::string token_file;
  std::string ca_file;      // PEM CA bundle for https ("" = system CAs)
  std::string name;         // endpoint name tasks are addressed to; required
  size_t threads = 2;       // concurrent function executions
  size_t prefetch = 0;      // leased-but-not-started tasks beyond `threads`; 0 = threads
  double poll_wait_s = 20;  // long-poll wait
  double max_backoff_s = 5;
  double grace_s = 30;
  double request_timeout_s = 30;

  Status validate() const;
  static StatusOr<EndpointAgentOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;  // without the token
};

class EndpointAgent {
 public:
  // `functions` must outlive the agent.
  explicit EndpointAgent(EndpointAgentOptions options,
                         FunctionRegistry& functions = default_functions());
  ~EndpointAgent();  // stop() and wait for run() to return
  EndpointAgent(const EndpointAgent&) = delete;
  EndpointAgent& operator=(const EndpointAgent&) = delete;

  // Serves until stop(). Errors only for unusable options / token file.
  Status run();
  void stop();
  std::string endpoint_id() const;  // "" until registered
  uint64_t tasks_run() const { return tasks_run_.load(); }

 private:
  struct Leased {
    std::string id, function, endpoint;
    nlohmann::json args;
    double deadline_at = 0;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };

  void work();
  void post_loop();
  bool register_with(class HttpClient& http);
  void backoff_wait(double* backoff);
  void release(class HttpClient& http, const std::vector<std::string>& ids);

  EndpointAgentOptions options_;
  FunctionRegistry& functions_;
  std::string token_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // queue / capacity / results / stop
  std::condition_variable done_cv_;  // run() finished
  std::atomic<bool> stop_{false};
  bool running_run_ = false;
  bool workers_stop_ = false, poster_stop_ = false;
  std::string endpoint_id_;
  double lease_s_ = 30;
  std::deque<Leased> queue_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;
  std::vector<nlohmann::json> results_;
  std::atomic<uint64_t> tasks_run_{0};
};

}  // namespace flight::faas
