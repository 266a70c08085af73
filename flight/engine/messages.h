// The typed task messages of a round: what the drivers send to the task
// functions (tasks.h) and what those send back. Weights never travel in them,
// only transport::Refs, so each message is a few hundred bytes.
//
//   train      TrainArgs      {job, round, node, worker_index, model: Ref, put,
//                              dp?: {clip_norm, noise_stddev, seeded}, ef_round?}
//              TrainResult    {update: Ref, owned, n_samples, weight, loss, accuracy,
//                              train_seconds, bytes_fetched, bytes_put, dp_unclipped?}
//   aggregate  AggregateArgs  {job, round, node, children: [ChildUpdate], put,
//                              stream?: FoldStream, ef_round?}
//              AggregateResult{done, folded, update: Ref, owned, weight, count,
//                              base?: Ref, bytes_fetched, bytes_put}
//   evaluate   EvaluateArgs   {job, model: Ref, batch_size, begin, end?}
//              EvaluateResult {loss, accuracy, n}
//
// Secure aggregation (privacy.secure_aggregation; secure_round.h), per
// selected worker, before and after its train task (whose TrainArgs carry
// `secure`); binary values are hex strings:
//   secagg_advertise  SecAggAdvertiseArgs {job, node, worker_index, plan, index, uniform_weight}
//                     SecAggAdvertiseResult {public_key, weight}
//   secagg_share      SecAggShareArgs {job, node, plan, index, keys: [{index, key}]}
//                     SecAggShareResult {shares: [{to, box}]}
//   secagg_reveal     SecAggRevealArgs {job, node, plan, index, survivors: [index]}
//                     SecAggRevealResult {shares: [{owner, self_mask, share}]}
//
// to_json() gives the wire form (the JSON keys above, stable: `flight
// endpoint` processes of the same version read them); from_json() checks
// every field with the options reader (flight/base/options.h) and names the
// bad one (unknown keys are errors too), because a message from another process
// is input like any other: a malformed one is a failed task, never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "transport/ref.h"

namespace flight {
class OptionReader;
}

namespace flight::engine {

// Which job a task belongs to: its id (job.h) and, for a process that may not
// know it yet, where to get it — `at` {connector, key}: the job's JSON put
// once in the data plane (REST runs), fetched once per process — or the job
// itself.
struct JobRef {
  std::string id;
  nlohmann::json at;   // null, or {connector: config, key}
  nlohmann::json job;  // null unless the task carries the job

  // Writes "job_id" (and "job_at", "job") into `out`, the task's args object.
  void to_json(nlohmann::json* out) const;
  // From the task's args (read through the args' reader, which then reports
  // any problem): `job_id` with optional `job_at`, and/or `job`.
  static JobRef from_json(OptionReader& args);
};

// Where a task puts what it produces.
struct PutTarget {
  transport::ConnectorConfig connector;  // connector config (transport::Store::create), shared
  std::string scope;                     // store scope the object belongs to, evicted with it

  nlohmann::json to_json() const;
  static StatusOr<PutTarget> from_json(const nlohmann::json& j);
};

// Differential privacy of one train task (privacy.dp, dp_hooks.h): the worker
// clips its update's delta (trained - global) to L2 norm clip_norm and adds
// Gaussian noise of standard deviation noise_stddev to it (0 when the
// coordinator adds the noise). Per task, not in the Job, because adaptive
// clipping changes clip_norm every round.
struct DpTask {
  double clip_norm = 1.0;
  double noise_stddev = 0;
  bool seeded = true;  // noise drawn from the run seed (reproducible), else from the OS

  nlohmann::json to_json() const;
  static StatusOr<DpTask> from_json(const nlohmann::json& j);
};

// The public parameters of one secure round, the same for every party
// (privacy::SecAggRound on the wire). `id` separates the keys and keystreams of
// rounds and retried attempts.
struct SecAggPlan {
  uint64_t id = 0;
  int64_t num_workers = 0;
  int64_t neighbours = 0;
  int64_t threshold = 0;
  int64_t fractional_bits = 20;
  uint64_t graph_seed = 0;

  nlohmann::json to_json() const;
  static StatusOr<SecAggPlan> from_json(const nlohmann::json& j,
                                        const std::string& path = "secagg plan");
};

// A sealed share of one worker's secrets for another (privacy::SealedShare):
// `box` is XSalsa20-Poly1305 under the pair's key, opaque to the coordinator.
struct SecAggSealed {
  int64_t from = -1;
  int64_t to = -1;
  std::vector<uint8_t> box;

  nlohmann::json to_json() const;
  static StatusOr<SecAggSealed> from_json(const nlohmann::json& j, const std::string& path);
};

// What a train task needs to mask its update: the round, the worker's index
// in it, 1 / (the selected workers' total weight) and the shares its
// neighbours sealed for it.
struct SecAggTrain {
  SecAggPlan plan;
  int64_t index = 0;
  double weight_scale = 1;
  std::vector<SecAggSealed> inbox;

  nlohmann::json to_json() const;
  static StatusOr<SecAggTrain> from_json(const nlohmann::json& j);
};

struct TrainArgs {
  JobRef job;
  int64_t round = 0;  // the training seed's round (async: the worker's task number)
  std::string node;
  int64_t worker_index = 0;  // the worker's data partition
  transport::Ref model;      // the global model to start from
  PutTarget put;
  std::optional<DpTask> dp;  // privacy.dp: clip (and noise) the update
  // compression topk: the round of this worker's last delivered update (0:
  // none), whose error-feedback residual it continues from (error_feedback.h).
  std::optional<int64_t> ef_round;
  // privacy.secure_aggregation: put the masked fixed-point update instead.
  std::optional<SecAggTrain> secure;

  nlohmann::json to_json() const;
  static StatusOr<TrainArgs> from_json(const nlohmann::json& j);
};

struct TrainResult {
  transport::Ref update;
  bool owned = true;  // false: update is not the worker's (debug: the global model)
  int64_t n_samples = 0;
  double weight = 0;  // the strategy's worker weight for n_samples
  double loss = 0, accuracy = 0, train_seconds = 0;
  uint64_t bytes_fetched = 0, bytes_put = 0;
  // privacy.dp: whether the update's delta was within the clip norm (the bit
  // adaptive clipping counts); absent without DP.
  std::optional<bool> dp_unclipped;

  nlohmann::json to_json() const;
  static StatusOr<TrainResult> from_json(const nlohmann::json& j);
};

// One child's update, handed to its parent's aggregate task.
struct ChildUpdate {
  std::string node;
  transport::Ref update;
  bool owned = true;  // the consumer evicts it once folded
  double weight = 0;
  int64_t count = 1;  // worker updates folded into it
  // Streaming aggregate (FoldStream): the child's position in its parent's
  // canonical order; -1 otherwise.
  int64_t index = -1;
  // async: the model(s) the update started from, folded with the same weights.
  std::optional<transport::Ref> base;
  bool base_owned = false;

  nlohmann::json to_json() const;
  static StatusOr<ChildUpdate> from_json(const nlohmann::json& j,
                                         const std::string& path = "child update");
};

// An aggregator's fold spread over several `aggregate` tasks (sync rounds):
// the driver hands each child's update over as it arrives, and the aggregator
// folds in canonical order as soon as it can (aggregators/ordered_fold.h),
// keeping the partial fold in its process between tasks (fold_session.h).
// The driver keeps one such task in flight per aggregator, so tasks of one
// session never race; the task that brings the last position completes the
// fold and answers done: true with the partial aggregate.
struct FoldStream {
  std::string session;           // unique per node and round attempt
  int64_t total = 0;             // children of the fold, positions [0, total)
  int64_t window = 8;            // updates resolved ahead of the fold (>= 1)
  std::vector<int64_t> skipped;  // positions that will not report (failed, late, dropped)

  nlohmann::json to_json() const;
  static StatusOr<FoldStream> from_json(const nlohmann::json& j,
                                        const std::string& path = "aggregate stream");
};

struct AggregateArgs {
  JobRef job;
  int64_t round = 0;
  std::string node;
  // Without `stream`: the whole fold, in this order, in one task (async
  // driver). With it: the children that arrived since the last task, each
  // with its `index`; may be empty when the task only brings skips.
  std::vector<ChildUpdate> children;
  PutTarget put;
  std::optional<FoldStream> stream;
  // compression topk with aggregator_fraction: the round of this aggregator's
  // last delivered partial (0: none), whose residual it continues from.
  std::optional<int64_t> ef_round;
  // Secure aggregation: the children are masked uint32 vectors; they are only
  // added modulo 2^32 (secagg_worker.h, masked_sum), never read as floats.
  bool masked = false;

  nlohmann::json to_json() const;
  static StatusOr<AggregateArgs> from_json(const nlohmann::json& j);
};

struct AggregateResult {
  // Streaming: false while positions are still to come (update, weight and
  // count are then unset); always true for a one-task fold.
  bool done = true;
  int64_t folded = 0;  // streaming: positions [0, folded) are folded or skipped
  transport::Ref update;
  bool owned = true;
  double weight = 0;
  int64_t count = 0;
  std::optional<transport::Ref> base;  // when the children carried one
  uint64_t bytes_fetched = 0, bytes_put = 0;

  nlohmann::json to_json() const;
  static StatusOr<AggregateResult> from_json(const nlohmann::json& j);
};

struct EvaluateArgs {
  JobRef job;
  transport::Ref model;
  int64_t batch_size = 1024;
  int64_t begin = 0;           // test-set slice [begin, end), clamped
  std::optional<int64_t> end;  // nullopt: to the end of the test set

  nlohmann::json to_json() const;
  static StatusOr<EvaluateArgs> from_json(const nlohmann::json& j);
};

struct EvaluateResult {
  double loss = 0, accuracy = 0;
  int64_t n = 0;

  nlohmann::json to_json() const;
  static StatusOr<EvaluateResult> from_json(const nlohmann::json& j);
};

struct SecAggAdvertiseArgs {
  JobRef job;
  std::string node;
  int64_t worker_index = 0;  // its data partition (the weight is its size's)
  SecAggPlan plan;
  int64_t index = 0;            // position among the round's selected workers
  bool uniform_weight = false;  // privacy.dp: every worker weighs 1

  nlohmann::json to_json() const;
  static StatusOr<SecAggAdvertiseArgs> from_json(const nlohmann::json& j);
};

struct SecAggAdvertiseResult {
  std::array<uint8_t, 32> public_key{};
  double weight = 0;  // the strategy's worker weight (what its update will carry)

  nlohmann::json to_json() const;
  static StatusOr<SecAggAdvertiseResult> from_json(const nlohmann::json& j);
};

struct SecAggShareArgs {
  JobRef job;
  std::string node;
  SecAggPlan plan;
  int64_t index = 0;
  // The advertised keys of the worker's neighbours in the masking graph.
  std::vector<std::pair<int64_t, std::array<uint8_t, 32>>> keys;

  nlohmann::json to_json() const;
  static StatusOr<SecAggShareArgs> from_json(const nlohmann::json& j);
};

struct SecAggShareResult {
  std::vector<SecAggSealed> shares;

  nlohmann::json to_json() const;
  static StatusOr<SecAggShareResult> from_json(const nlohmann::json& j);
};

struct SecAggRevealArgs {
  JobRef job;
  std::string node;
  SecAggPlan plan;
  int64_t index = 0;
  std::vector<int64_t> survivors;  // indices whose masked vectors are in the total

  nlohmann::json to_json() const;
  static StatusOr<SecAggRevealArgs> from_json(const nlohmann::json& j);
};

// One revealed Shamir share (privacy::RevealedShare): of `owner`'s self-mask
// seed when it survived, else of its secret key; `share` is its 44 bytes.
struct SecAggRevealed {
  int64_t owner = -1;
  bool self_mask = false;
  std::vector<uint8_t> share;
};

struct SecAggRevealResult {
  std::vector<SecAggRevealed> shares;

  nlohmann::json to_json() const;
  static StatusOr<SecAggRevealResult> from_json(const nlohmann::json& j);
};

}  // namespace flight::engine
