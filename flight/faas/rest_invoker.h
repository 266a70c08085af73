// RestInvoker: the Invoker for distributed runs, a libcurl client of
// `flight serve`. Tasks run on `flight endpoint` processes registered under
// TaskSpec::endpoint.
//
//   - submit/submit_batch: POST /v1/tasks, at most max_batch tasks per request,
//     each request with its own Idempotency-Key that is reused on retries, so
//     a retried submit never duplicates tasks. Task ids are chosen here, so a
//     result can never race its own submission. 429 (queue full) is retried
//     with backoff for up to queue_full_timeout_s (backpressure: submit blocks).
//     If a submission finally fails, its handles resolve kFailed at once with
//     the reason (the callback runs on the submitting thread).
//   - results: one poller thread long-polls this client's completion stream
//     (GET /v1/clients/{id}/completions), so many outstanding tasks cost few
//     requests; after a connection error it reconciles with POST /v1/tasks/wait.
//     Callbacks run on the poller thread (deadlines: the timer thread).
//   - deadlines resolve locally at the deadline (the service enforces them too).
//   - cancel: resolves locally and tells the service (POST /v1/tasks/{id}/cancel).
//   - close(): waits up to close_timeout_s for outstanding tasks, then resolves
//     the rest kCancelled ("invoker closed"), and joins.
// Connections are kept alive and reused (one per thread).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/faas/invoker.h"

namespace flight::faas {

struct RestInvokerOptions {
  // "http(s)://host:port" of `flight serve`, or several replicas' URLs
  // separated by commas (failover: http_client.h); required.
  std::string url;
  std::string token;       // bearer token, or:
  std::string token_file;  // a file holding it
  std::string ca_file;     // PEM CA bundle for https ("" = system CAs)
  double request_timeout_s = 30;
  int max_retries = 5;            // per request on network errors / 5xx, and
  double retry_timeout_s = 30;    // at least this long (a replica failover)
  double retry_backoff_s = 0.05;  // doubles per retry, capped at 2 s
  double queue_full_timeout_s = 300;
  double poll_wait_s = 10;  // long-poll wait for completions
  size_t max_batch = 1000;  // tasks per POST /v1/tasks
  double close_timeout_s = 60;

  Status validate() const;
  static StatusOr<RestInvokerOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;  // without the token
};

// Validates options and reads the token; checks the service answers healthz.
StatusOr<std::unique_ptr<Invoker>> make_rest_invoker(const RestInvokerOptions& options);

}  // namespace flight::faas
