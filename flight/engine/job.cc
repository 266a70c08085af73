#include "flight/engine/job.h"

#include <cstdio>

namespace flight::engine {

using nlohmann::json;

json compression_to_json(const transport::EncodeOptions& o, double aggregator_fraction) {
  return json{{"encoding", transport::encoding_name(o.encoding)},
              {"block_size", o.block_size},
              {"topk_fraction", o.topk_fraction},
              {"stochastic_rounding", o.stochastic_rounding},
              {"aggregator_fraction", aggregator_fraction}};
}

Status read_compression(OptionReader& r, transport::EncodeOptions* o, double* aggregator_fraction) {
  using transport::Encoding;
  r.choice("encoding", &o->encoding,
           {{"raw", Encoding::kRaw},
            {"fp16", Encoding::kFp16},
            {"bf16", Encoding::kBf16},
            {"int8", Encoding::kInt8},
            {"topk", Encoding::kTopK}})
      .in_range("block_size", &o->block_size, int64_t{8}, int64_t{1} << 20)
      .optional("topk_fraction", &o->topk_fraction)
      .optional("stochastic_rounding", &o->stochastic_rounding)
      .in_range("aggregator_fraction", aggregator_fraction, 0.0, 1.0);
  if (*aggregator_fraction > 0 && o->encoding != Encoding::kTopK) {
    r.fail("aggregator_fraction", "only with encoding: topk");
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  Status v = o->validate();
  if (!v.is_ok()) return r.error(v.message());
  return Status::ok();
}

json Job::to_json() const {
  return json{{"model", model.to_json()},
              {"data", data.to_json()},
              {"train", train.to_json()},
              {"strategy", strategy.to_json()},
              {"seed", seed},
              {"n_workers", n_workers},
              {"debug", debug_mode_to_json(debug)},
              {"compression", compression_to_json(compression, aggregator_fraction)}};
}

StatusOr<Job> Job::from_json(const json& j) {
  Job job;
  json model, data, train, strategy, debug;
  OptionReader r(j, "job");
  r.required("model", &model)
      .required("data", &data)
      .required("train", &train)
      .required("strategy", &strategy)
      .required("seed", &job.seed)
      .required("n_workers", &job.n_workers)
      .optional("debug", &debug);
  OptionReader compression = r.child("compression");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_ASSIGN_OR_RETURN(job.model, learning::ModelSpec::from_json(model));
  FLIGHT_ASSIGN_OR_RETURN(job.data, learning::DataSpec::from_json(data));
  FLIGHT_ASSIGN_OR_RETURN(job.train, learning::TrainOptions::from_json(train));
  FLIGHT_ASSIGN_OR_RETURN(job.strategy, aggregators::StrategyOptions::from_json(strategy));
  if (!debug.is_null()) {
    FLIGHT_ASSIGN_OR_RETURN(job.debug, debug_mode_from_json(debug));
  }
  FLIGHT_RETURN_IF_ERROR(read_compression(compression, &job.compression, &job.aggregator_fraction));
  if (job.n_workers < 1) return invalid_argument("job.n_workers must be >= 1");
  return job;
}

std::string job_id(const json& job) {
  // FNV-1a over the canonical dump (nlohmann objects are key-sorted).
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : job.dump()) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof(buf), "job-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

uint64_t task_seed(uint64_t seed, int64_t worker_index, int64_t round) {
  // splitmix64 over the three inputs.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(worker_index)) ^ static_cast<uint64_t>(round));
}

}  // namespace flight::engine
