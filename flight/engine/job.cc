#include "flight/engine/job.h"

#include <cstdio>

namespace flight::engine {

using nlohmann::json;

json Job::to_json() const {
  return json{
      {"model", model.to_json()},          {"data", data.to_json()}, {"train", train.to_json()},
      {"strategy", strategy.to_json()},    {"seed", seed},           {"n_workers", n_workers},
      {"debug", debug_mode_to_json(debug)}};
}

StatusOr<Job> Job::from_json(const json& j) {
  Job job;
  try {
    FLIGHT_ASSIGN_OR_RETURN(job.model, learning::ModelSpec::from_json(j.at("model")));
    FLIGHT_ASSIGN_OR_RETURN(job.data, learning::DataSpec::from_json(j.at("data")));
    FLIGHT_ASSIGN_OR_RETURN(job.train, learning::TrainOptions::from_json(j.at("train")));
    FLIGHT_ASSIGN_OR_RETURN(job.strategy,
                            aggregators::StrategyOptions::from_json(j.at("strategy")));
    job.seed = j.at("seed").get<uint64_t>();
    job.n_workers = j.at("n_workers").get<int64_t>();
    if (j.contains("debug")) {
      FLIGHT_ASSIGN_OR_RETURN(job.debug, debug_mode_from_json(j.at("debug")));
    }
  } catch (const json::exception& e) {
    return invalid_argument(std::string("malformed job: ") + e.what());
  }
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
