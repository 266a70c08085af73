// The process's jobs (job.h) by id, and what each implies for the tasks run
// here: the datasets, the partitions and a strategy instance — built once per
// process, on the first task that needs them, and kept in a byte-bounded LRU
// cache (CacheOptions), so a long-lived endpoint serving job after job holds
// the recent ones only — and one model per (thread, job) for the few jobs a
// thread ran last.
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

// The process caches' budgets: `flight endpoint --job-cache / --dataset-cache`
// (and any host of task functions) read them with OptionReader. Keys:
//   job_bytes:     1GiB   job runtimes (job_cache_bytes of each)
//   dataset_bytes: 1GiB   loaded datasets (learning::dataset_bytes of each)
// (bytes: a number or "256MiB", "1G", ...). Both bound what stays cached once
// no task uses it; entries in use are kept whatever the budget. A runtime
// counts the dataset it holds, so the two budgets together bound the memory.
struct CacheOptions {
  uint64_t job_bytes = 1ull << 30;
  uint64_t dataset_bytes = learning::kDefaultDatasetCacheBytes;

  [[nodiscard]] static StatusOr<CacheOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] Status validate() const;
};

// Applies `options` to this process's caches (shrinking evicts at once).
void configure_caches(const CacheOptions& options);

// Everything a process derives from one job: parsed once, shared by tasks.
struct JobRuntime {
  std::string id;  // job_id(job's JSON)
  Job job;
  learning::DatasetPair data;
  std::vector<std::vector<int64_t>> partitions;
  std::unique_ptr<aggregators::Strategy> strategy;  // const use only: weights, hooks, folds
  uint64_t json_bytes = 0;                          // size of the job's JSON text
};

// The bytes a runtime holds: its job's JSON, its partitions' index lists and
// the dataset it keeps alive (learning::dataset_bytes; a dataset shared by
// several cached jobs counts in each, so the budget is never exceeded).
uint64_t job_cache_bytes(const JobRuntime& runtime);

struct JobCacheStats {
  uint64_t capacity = 0;  // bytes
  uint64_t bytes = 0;     // held by cached runtimes (in-use ones included)
  size_t entries = 0;
  uint64_t evictions = 0;  // since the process started
  uint64_t builds = 0;     // runtimes built (a miss, first or after an eviction)
};
JobCacheStats job_cache_stats();

// Makes `job` known to this process, so tasks run here may carry only its id;
// returns job_id(job). Registering twice is harmless. Registered JSON (a run
// in this process names its job by id) is kept for the process's life; its
// runtime is cached like any other.

std::string register_job(const nlohmann::json& job);

// The runtime of a task's job: a lookup by id (the common case), built from
// the job JSON the first time — registered, carried by the task, or fetched
// once from where the task says it is (JobRef::at).
StatusOr<std::shared_ptr<JobRuntime>> job_runtime(const JobRef& job);

// This thread's model for `runtime` (models are not thread-safe, and building
// one per task would dominate small tasks). A thread keeps the models of the
// last few jobs it ran; the pointer is valid until its next call.
StatusOr<learning::Model*> thread_model(const JobRuntime& runtime);

}  // namespace flight::engine
