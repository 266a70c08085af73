#include "flight/engine/job_cache.h"

#include <future>
#include <mutex>
#include <unordered_map>

#include "transport/registry.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using RuntimeFuture = std::shared_future<StatusOr<std::shared_ptr<JobRuntime>>>;

// The process's jobs by id: the JSON each was registered with (register_job or
// a task carrying `job`) and, once a task asked, its runtime.
struct JobCache {
  struct Entry {
    json job;  // null until known
    RuntimeFuture runtime;
  };
  std::mutex mu;
  std::unordered_map<std::string, Entry> entries;
};

JobCache& job_cache() {
  static JobCache* cache = new JobCache();  // leaked: tasks may run during exit
  return *cache;
}

StatusOr<std::shared_ptr<JobRuntime>> build_runtime(const json& job_json) {
  auto rt = std::make_shared<JobRuntime>();
  FLIGHT_ASSIGN_OR_RETURN(rt->job, Job::from_json(job_json));
  FLIGHT_ASSIGN_OR_RETURN(rt->data, learning::load_dataset(rt->job.data));
  FLIGHT_ASSIGN_OR_RETURN(
      rt->partitions,
      learning::worker_partitions(rt->data, static_cast<size_t>(rt->job.n_workers),
                                  rt->job.data.partition, rt->job.seed));
  FLIGHT_ASSIGN_OR_RETURN(rt->strategy, aggregators::make_strategy(rt->job.strategy));
  return rt;
}

// The job JSON a task points at in the data plane (JobRef::at), checked
// against the task's job id.
StatusOr<json> fetch_job(const JobRef& ref) {
  const std::string where = "job " + ref.id + " at " + ref.at.dump();
  FLIGHT_ASSIGN_OR_RETURN(auto connector, transport::shared_connector(ref.at.at("connector")));
  FLIGHT_ASSIGN_OR_RETURN(auto bytes, connector->get(ref.at.at("key").get<std::string>()));
  if (!bytes) return not_found(where + ": not in the data plane (the run has ended?)");
  json job = json::parse((*bytes)->data(), (*bytes)->data() + (*bytes)->size(), nullptr, false);
  if (job.is_discarded()) return data_loss(where + ": not JSON");
  if (job_id(job) != ref.id) return data_loss(where + ": its id is " + job_id(job));
  return job;
}

// The future of `id`'s runtime. *build is set when this caller must build it
// (from *job_json) and fulfil *promise.
StatusOr<RuntimeFuture> lookup(const std::string& id, const json& carried,
                               std::promise<StatusOr<std::shared_ptr<JobRuntime>>>* promise,
                               json* to_build) {
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  JobCache::Entry& e = cache.entries[id];
  if (e.runtime.valid()) return e.runtime;
  if (e.job.is_null() && !carried.is_null()) e.job = carried;
  if (e.job.is_null()) {
    cache.entries.erase(id);
    return not_found("job " + id +
                     " is not known to this process and the task does not carry its 'job'");
  }
  *to_build = e.job;
  e.runtime = promise->get_future().share();
  return e.runtime;
}

}  // namespace

std::string register_job(const json& job) {
  std::string id = job_id(job);
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  JobCache::Entry& e = cache.entries[id];
  if (e.job.is_null()) e.job = job;
  return id;
}

StatusOr<std::shared_ptr<JobRuntime>> job_runtime(const JobRef& ref) {
  const std::string id = ref.id.empty() ? job_id(ref.job) : ref.id;
  // Tasks of one job run back to back on a thread: skip the shared map.
  thread_local std::string last_id;
  thread_local std::shared_ptr<JobRuntime> last;
  if (last && id == last_id) return last;

  std::promise<StatusOr<std::shared_ptr<JobRuntime>>> promise;
  json to_build;
  StatusOr<RuntimeFuture> found = lookup(id, ref.job, &promise, &to_build);
  if (!found.is_ok() && found.status().code() == StatusCode::kNotFound && !ref.at.is_null()) {
    // First task of this job in this process: get the job from the data plane.
    FLIGHT_ASSIGN_OR_RETURN(json job, fetch_job(ref));
    register_job(job);
    found = lookup(id, ref.job, &promise, &to_build);
  }
  FLIGHT_ASSIGN_OR_RETURN(RuntimeFuture fut, std::move(found));
  if (!to_build.is_null()) {
    // Built outside the lock: loading a dataset takes a while and other jobs
    // should not wait for it; tasks of this job wait on the shared future.
    StatusOr<std::shared_ptr<JobRuntime>> made = build_runtime(to_build);
    if (!made.is_ok()) {
      JobCache& cache = job_cache();
      std::lock_guard<std::mutex> lock(cache.mu);
      // Let a later task retry (e.g. after the dataset appears).
      cache.entries[id].runtime = RuntimeFuture();
    }
    promise.set_value(made);
  }
  StatusOr<std::shared_ptr<JobRuntime>> got = fut.get();
  if (got.is_ok()) {
    last_id = id;
    last = *got;
  }
  return got;
}

StatusOr<learning::Model*> thread_model(const JobRuntime& rt) {
  thread_local std::unordered_map<const JobRuntime*, std::unique_ptr<learning::Model>> models;
  auto it = models.find(&rt);
  if (it == models.end()) {
    FLIGHT_ASSIGN_OR_RETURN(auto model, learning::make_model(rt.job.model));
    it = models.emplace(&rt, std::move(model)).first;
  }
  return it->second.get();
}

}  // namespace flight::engine
