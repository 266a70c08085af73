// AsyncDriver: mode: async — every participating worker trains continuously.
// A finished update goes to its parent: an aggregator buffers
// `async.aggregator_buffer` child updates, folds them (models and the models
// they started from, with the same weights) and forwards one weighted partial
// update with its mean base version; the coordinator merges with the
// strategy's rule (fedasync, fedbuff) at the exact staleness `version now −
// version trained from`, and the worker is handed the newest global model at
// once.
//
// All decisions are taken on the driving thread, one completion at a time.
// With `clock: virtual` the next completion is the one with the smallest
// simulated finish time (planned from the worker's sample count and speed),
// so the order of events — and so the result — does not depend on machine
// load; with `clock: real` completions are taken as they arrive.
//
// Checkpoints (every `output.checkpoint_every` evaluations, between two
// completions): the global model and every version still in use, the
// strategy's state, the aggregators' buffers (their updates' tensors), the
// in-flight tasks (worker, version trained from, task number, virtual start
// and finish), the virtual clock and the counters. --resume puts the versions
// and buffered updates back into the store and re-issues every in-flight task
// as it was issued (same version, same task number, so the same training
// seed and the same virtual finish time): under `clock: virtual` the resumed
// run takes the same completions in the same order as an uninterrupted one
// and ends with the same model, bit for bit. Under `clock: real` it continues
// correctly but, as any real-clock async run, not reproducibly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/engine/federation.h"
#include "flight/engine/messages.h"
#include "flight/faas/invoker.h"
#include "transport/store.h"

namespace flight::engine {

struct RunContext;
class SimulatedDevices;
class RunOutput;
struct Checkpoint;

// The global model's versions in the store, each kept while the current one
// or while a task or a pending update still uses it.
class VersionBook {
 public:
  VersionBook(transport::Store& store, std::string scope)
      : store_(store), scope_(std::move(scope)) {}

  int64_t current() const { return version_; }
  const transport::Ref& ref(int64_t v) const { return refs_.at(v); }
  // Puts `global` as the current version.
  Status publish(const ParamSet& global);
  // Puts `global` as the next version; the previous one goes once unused.
  Status advance(const ParamSet& global);
  // The current version, with one more user.
  int64_t use();
  // One more user of version v (restoring a checkpoint's tasks and buffers).
  void retain(int64_t v) { users_[v]++; }
  void release(int64_t v);
  // The versions kept in the store (the current one and those in use).
  std::vector<int64_t> live() const;
  // --resume: puts `models` (version -> model) back with `current` as the
  // current version; users are added with retain().
  Status restore(int64_t current, const std::map<int64_t, ParamSet>& models);

 private:
  void maybe_drop(int64_t v);

  transport::Store& store_;
  const std::string scope_;
  int64_t version_ = 0;
  std::map<int64_t, transport::Ref> refs_;
  std::map<int64_t, int64_t> users_;
};

class AsyncDriver {
 public:
  AsyncDriver(RunContext& ctx, SimulatedDevices& devices, RunOutput& output);
  ~AsyncDriver();

  StatusOr<RunSummary> run();

 private:
  struct Inbox;
  // An update on its way up the tree.
  struct Pending {
    ChildUpdate child;        // node = the worker or aggregator it comes from; base always set
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

  Status loop();
  // A new task for the worker from the current version...
  void start_task(const std::string& worker);
  // ...or, on --resume, the task it had in flight, issued again.
  void submit_task(const std::string& worker);
  Status checkpoint();
  Status restore(const Checkpoint& checkpoint);
  StatusOr<nlohmann::json> pending_to_json(const Pending& p, const std::string& name,
                                           std::map<std::string, ParamSet>* params);
  StatusOr<Pending> pending_from_json(const nlohmann::json& j,
                                      const std::map<std::string, ParamSet>& params);
  std::string next_completion(faas::TaskResult* out);
  Status on_result(const std::string& worker, const faas::TaskResult& result);
  Status deliver(const std::string& parent, Pending update);
  Status aggregate(const std::string& node, std::vector<Pending> kids, Pending* out);
  Status merge(Pending update);
  Status evaluate_row();
  void stop_workers();
  StatusOr<RunSummary> finish();
  double time_now() const;

  RunContext& ctx_;
  SimulatedDevices& devices_;
  RunOutput& output_;
  const bool virtual_clock_;
  VersionBook versions_;
  std::shared_ptr<Inbox> inbox_;
  std::vector<std::string> active_;  // participating workers
  std::unordered_map<std::string, WorkerState> workers_;
  std::unordered_map<std::string, std::string> task_worker_;       // task id -> worker
  std::unordered_map<std::string, std::vector<Pending>> buffers_;  // aggregator -> updates
  double vnow_ = 0;
  int64_t merged_ = 0, next_eval_ = 0, eval_index_ = 0, failed_ = 0, dropped_ = 0;
  bool stopped_ = false;  // ended by RunOptions::should_stop
  bool killed_ = false;   // ended by RunOptions::stop_after_rounds: as if killed
  int64_t last_checkpoint_ = 0, first_eval_ = 0;  // evaluation numbers
  int64_t update_no_ = 0;
  double last_eval_time_ = 0;
  uint64_t bytes_put_ = 0, bytes_fetched_ = 0, ingress_ = 0;
};

}  // namespace flight::engine
