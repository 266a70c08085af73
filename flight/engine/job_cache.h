// The process's jobs (job.h) by id, and what each implies for the tasks run
// here: the datasets, the partitions and a strategy instance — built once per
// process, on the first task that needs them — and one model per (thread, job).
//
// Thread safety: every function may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/engine/job.h"
#include "flight/engine/messages.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"

namespace flight::engine {

// Everything a process derives from one job: parsed once, shared by tasks.
struct JobRuntime {
  Job job;
  learning::DatasetPair data;
  std::vector<std::vector<int64_t>> partitions;
  std::unique_ptr<aggregators::Strategy> strategy;  // const use only: weights, hooks, folds
};

// Makes `job` known to this process, so tasks run here may carry only its id;
// returns job_id(job). Registering twice is harmless.
std::string register_job(const nlohmann::json& job);

// The runtime of a task's job: a lookup by id (the common case), built from
// the job JSON the first time — registered, carried by the task, or fetched
// once from where the task says it is (JobRef::at).
StatusOr<std::shared_ptr<JobRuntime>> job_runtime(const JobRef& job);

// This thread's model for `runtime` (models are not thread-safe, and building
// one per task would dominate small tasks).
StatusOr<learning::Model*> thread_model(const JobRuntime& runtime);

}  // namespace flight::engine
