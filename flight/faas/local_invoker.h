// LocalInvoker: the embedded default Invoker. One bounded thread pool runs the
// functions in-process for every virtual endpoint (the endpoint name is only a
// label here), so 10,000 virtual workers are 10,000 queued tasks, not threads.
//
// Order: queued tasks start by TaskSpec::priority (highest first), FIFO
// within a priority.
//
// Backpressure: the queue holds at most max_queue tasks that have not started.
//   - submit() from outside the pool blocks while the queue is full
//     (block_when_full = true, the default) or resolves the task kFailed with
//     "queue full" at once (block_when_full = false).
//   - submit() from an invoker thread (a result callback, e.g. the engine's
//     aggregation chain) never blocks: it is admitted past the bound, since
//     blocking a pool thread on its own queue could deadlock.
//
// Typed tasks: a TaskSpec carrying a Message whose function has a typed form
// (FunctionRegistry::add_typed) runs that form with the message as is, and its
// TaskResult carries the result Message instead of JSON; otherwise the JSON
// form runs on TaskSpec::json_args().
//
// close() rejects further submissions from outside the pool, lets queued and
// running tasks finish (callbacks may still chain new tasks), then joins.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/faas/functions.h"
#include "flight/faas/invoker.h"

namespace flight::faas {

struct LocalInvokerOptions {
  size_t threads = 2;         // pool threads, >= 1
  size_t max_queue = 100000;  // tasks waiting to start, >= 1
  bool block_when_full = true;

  Status validate() const;
  // Keys: threads, max_queue, block_when_full (unknown keys are an error).
  static StatusOr<LocalInvokerOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

// `functions` must outlive the invoker. Broken invariant on invalid options
// (validate() first when they come from users).
std::unique_ptr<Invoker> make_local_invoker(const LocalInvokerOptions& options,
                                            FunctionRegistry& functions = default_functions());

}  // namespace flight::faas
