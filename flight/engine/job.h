// Job: what every task of one run shares — the model, data, partition,
// training options and strategy — sent to a process once and referenced by
// its id (job_id) in every task message (messages.h). Also the per-task
// training seed, which the drivers (simulated dropout) and the train function
// derive alike.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/options.h"
#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "flight/learning/trainer.h"
#include "transport/update_encoding.h"

namespace flight::engine {

struct Job {
  learning::ModelSpec model;
  learning::DataSpec data;  // with data.partition
  learning::TrainOptions train;
  aggregators::StrategyOptions strategy;
  uint64_t seed = 0;
  int64_t n_workers = 0;              // partitions are computed for this many workers
  DebugMode debug = DebugMode::kOff;  // no-training modes (config.h)
  // Encoding of the workers' updates on the data plane (codec.h); raw by default.
  transport::EncodeOptions compression;
  // topk: aggregators top-k their partial sums too (with error feedback) to
  // this fraction; 0 = partials travel exactly (error_feedback.h).
  double aggregator_fraction = 0;

  nlohmann::json to_json() const;
  static StatusOr<Job> from_json(const nlohmann::json& j);
};

// compression: {encoding: raw|fp16|bf16|int8|topk, block_size: 256, topk_fraction: 0.01,
// stochastic_rounding: true, aggregator_fraction: 0}; topk sends error-feedback
// deltas (error_feedback.h); aggregator_fraction (topk only, in [0, 1]) has
// aggregators top-k their partial sums too.
nlohmann::json compression_to_json(const transport::EncodeOptions& o, double aggregator_fraction);
Status read_compression(OptionReader& r, transport::EncodeOptions* o, double* aggregator_fraction);

// A short id of `job` ("job-" + 16 hex): a hash of its canonical JSON, the
// same in every process.
std::string job_id(const nlohmann::json& job);

// Seed of worker `worker_index`'s training in `round`: a hash, so that
// neighbouring workers and rounds get unrelated streams.
uint64_t task_seed(uint64_t seed, int64_t worker_index, int64_t round);

}  // namespace flight::engine
