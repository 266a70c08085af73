#include "flight/engine/job_cache.h"

#include <future>
#include <mutex>
#include <unordered_map>

#include "flight/base/lru_cache.h"
#include "flight/base/options.h"
#include "transport/registry.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using RuntimePtr = std::shared_ptr<JobRuntime>;
using RuntimeFuture = std::shared_future<StatusOr<RuntimePtr>>;

// Models a thread keeps (one per job it ran last): a thread usually runs one
// job at a time; a few cover runs interleaved on a shared endpoint.
constexpr uint64_t kModelsPerThread = 4;

// The process's jobs: registered JSON, runtimes built and being built.
struct JobCache {
  std::mutex mu;
  std::unordered_map<std::string, json> registered;  // register_job
  // A runtime is in use while a task (or a thread's last-job shortcut) holds it.
  ByteLru<RuntimePtr> runtimes{CacheOptions().job_bytes,
                               [](const RuntimePtr& rt) { return rt.use_count() > 1; }};
  // Builds in progress (single flight: tasks of the job wait on the future).
  std::unordered_map<std::string, RuntimeFuture> building;
  uint64_t builds = 0;
};

JobCache& job_cache() {
  static JobCache* cache = new JobCache();  // leaked: tasks may run during exit
  return *cache;
}

StatusOr<RuntimePtr> build_runtime(const std::string& id, const json& job_json) {
  auto rt = std::make_shared<JobRuntime>();
  rt->id = id;
  FLIGHT_ASSIGN_OR_RETURN(rt->job, Job::from_json(job_json));
  FLIGHT_ASSIGN_OR_RETURN(rt->data, learning::load_dataset(rt->job.data));
  FLIGHT_ASSIGN_OR_RETURN(
      rt->partitions, learning::worker_partitions(rt->data, static_cast<size_t>(rt->job.n_workers),
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

// Builds `id`'s runtime from the JSON the process knows, the task carries or
// (neither) the data plane holds.
StatusOr<RuntimePtr> build_for(const std::string& id, json job_json, const JobRef& ref) {
  if (job_json.is_null()) {
    if (ref.at.is_null()) {
      return not_found("job " + id +
                       " is not known to this process and the task does not carry its 'job'");
    }
    FLIGHT_ASSIGN_OR_RETURN(job_json, fetch_job(ref));
  }
  FLIGHT_ASSIGN_OR_RETURN(RuntimePtr rt, build_runtime(id, job_json));
  rt->json_bytes = job_json.dump().size();
  return rt;
}

}  // namespace

StatusOr<CacheOptions> CacheOptions::from_json(const json& j) {
  CacheOptions o;
  OptionReader r(j, "caches");
  r.bytes("job_bytes", &o.job_bytes).bytes("dataset_bytes", &o.dataset_bytes);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

json CacheOptions::to_json() const {
  return {{"job_bytes", job_bytes}, {"dataset_bytes", dataset_bytes}};
}

Status CacheOptions::validate() const {
  // 0 is valid: nothing stays cached once no task uses it.
  return Status::ok();
}

void configure_caches(const CacheOptions& options) {
  learning::set_dataset_cache_bytes(options.dataset_bytes);
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.runtimes.set_capacity(options.job_bytes);
}

uint64_t job_cache_bytes(const JobRuntime& rt) {
  uint64_t n = rt.json_bytes + learning::dataset_bytes(rt.data);
  for (const auto& p : rt.partitions) n += p.size() * sizeof(int64_t);
  return n;
}

JobCacheStats job_cache_stats() {
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  return {cache.runtimes.capacity(), cache.runtimes.bytes(), cache.runtimes.size(),
          cache.runtimes.evictions(), cache.builds};
}

std::string register_job(const json& job) {
  std::string id = job_id(job);
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.registered.emplace(id, job);
  return id;
}

StatusOr<std::shared_ptr<JobRuntime>> job_runtime(const JobRef& ref) {
  std::string derived;  // only when the task carries the job without its id
  if (ref.id.empty()) derived = job_id(ref.job);
  const std::string& id = ref.id.empty() ? derived : ref.id;
  // Tasks of one job run back to back on a thread: skip the shared map. (This
  // keeps the thread's last runtime in use, so it is not evicted under it.)
  thread_local std::string last_id;
  thread_local RuntimePtr last;
  if (last && id == last_id) return last;

  JobCache& cache = job_cache();
  std::promise<StatusOr<RuntimePtr>> promise;
  RuntimeFuture fut;
  bool build = false;
  json known;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    if (std::optional<RuntimePtr> hit = cache.runtimes.get(id)) {
      last_id = id;
      last = *hit;
      return last;
    }
    auto b = cache.building.find(id);
    if (b != cache.building.end()) {
      fut = b->second;
    } else {
      auto r = cache.registered.find(id);
      known = r != cache.registered.end() ? r->second : ref.job;
      fut = promise.get_future().share();
      cache.building.emplace(id, fut);
      build = true;
    }
  }
  if (build) {
    // Built outside the lock: loading a dataset takes a while and other jobs
    // should not wait for it; tasks of this job wait on the shared future.
    StatusOr<RuntimePtr> made = build_for(id, std::move(known), ref);
    {
      std::lock_guard<std::mutex> lock(cache.mu);
      cache.building.erase(id);
      // Failures are not cached: a later task retries (e.g. after the
      // dataset appears). `made` is held here, so the put cannot evict it.
      if (made.is_ok()) {
        ++cache.builds;
        cache.runtimes.put(id, *made, job_cache_bytes(**made));
      }
    }
    promise.set_value(std::move(made));
  }
  StatusOr<RuntimePtr> got = fut.get();
  if (got.is_ok()) {
    last_id = id;
    last = *got;
  }
  return got;
}

StatusOr<learning::Model*> thread_model(const JobRuntime& rt) {
  thread_local ByteLru<std::shared_ptr<learning::Model>> models(kModelsPerThread);
  if (auto hit = models.get(rt.id)) return hit->get();
  FLIGHT_ASSIGN_OR_RETURN(std::unique_ptr<learning::Model> made,
                          learning::make_model(rt.job.model));
  std::shared_ptr<learning::Model> model = std::move(made);
  models.put(rt.id, model, 1);
  return model.get();
}

}  // namespace flight::engine
