#include "flight/engine/functions.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "flight/base/time.h"
#include "flight/faas/functions.h"
#include "flight/faas/invoker.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using nlohmann::json;

// Everything a process derives from one job: parsed once, shared by tasks.
struct JobRuntime {
  Job job;
  learning::DatasetPair data;
  std::vector<std::vector<int64_t>> partitions;
  std::unique_ptr<aggregators::Strategy> strategy;  // const use only: weights, hooks, folds
};

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
      learning::partition(rt->data.train->labels, static_cast<size_t>(rt->job.n_workers),
                          rt->job.data.partition, rt->job.seed));
  FLIGHT_ASSIGN_OR_RETURN(rt->strategy, aggregators::make_strategy(rt->job.strategy));
  return rt;
}

// The runtime of the task's job: args carry `job_id` (cheap: the common case
// is one lookup) and/or the `job` JSON itself (needed the first time a process
// sees the job, unless it was registered with register_job).
StatusOr<std::shared_ptr<JobRuntime>> job_runtime(const json& args) {
  const auto id_it = args.find("job_id");
  const auto job_it = args.find("job");
  const json* job_json = job_it != args.end() ? &*job_it : nullptr;
  std::string id;
  if (id_it != args.end() && id_it->is_string()) {
    id = id_it->get<std::string>();
  } else if (job_json) {
    id = job_id(*job_json);
  } else {
    return invalid_argument("missing argument 'job' (or 'job_id')");
  }
  // Tasks of one job run back to back on a thread: skip the shared map.
  thread_local std::string last_id;
  thread_local std::shared_ptr<JobRuntime> last;
  if (last && id == last_id) return last;

  JobCache& cache = job_cache();
  std::promise<StatusOr<std::shared_ptr<JobRuntime>>> promise;
  RuntimeFuture fut;
  json to_build;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    JobCache::Entry& e = cache.entries[id];
    if (e.runtime.valid()) {
      fut = e.runtime;
    } else {
      if (e.job.is_null() && job_json) e.job = *job_json;
      if (e.job.is_null()) {
        cache.entries.erase(id);
        return not_found("job " + id +
                         " is not known to this process and the task does not carry its 'job'");
      }
      to_build = e.job;
      fut = promise.get_future().share();
      e.runtime = fut;
    }
  }
  if (!to_build.is_null()) {
    // Built outside the lock: loading a dataset takes a while and other jobs
    // should not wait for it; tasks of this job wait on the shared future.
    StatusOr<std::shared_ptr<JobRuntime>> made = build_runtime(to_build);
    if (!made.is_ok()) {
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

// One model per (thread, job): models are not thread-safe and building one per
// task would dominate small tasks.
StatusOr<learning::Model*> thread_model(const JobRuntime& rt) {
  thread_local std::unordered_map<const JobRuntime*, std::unique_ptr<learning::Model>> models;
  auto it = models.find(&rt);
  if (it == models.end()) {
    FLIGHT_ASSIGN_OR_RETURN(auto model, learning::make_model(rt.job.model));
    it = models.emplace(&rt, std::move(model)).first;
  }
  return it->second.get();
}

template <typename T>
Status read(const json& args, const char* key, T* out) {
  if (!args.contains(key)) return invalid_argument(std::string("missing argument '") + key + "'");
  try {
    *out = args.at(key).get<T>();
  } catch (const json::exception& e) {
    return invalid_argument(std::string("argument '") + key + "': " + e.what());
  }
  return Status::ok();
}

// A required argument, by reference (no copy).
StatusOr<const json*> arg(const json& args, const char* key) {
  auto it = args.find(key);
  if (it == args.end()) return invalid_argument(std::string("missing argument '") + key + "'");
  return &*it;
}

transport::PutOptions put_options(const json& put) {
  transport::PutOptions o;
  o.scope = put.value("scope", std::string());
  return o;
}

// A small process-wide pool that fetches Refs ahead of an aggregator's fold:
// a few threads for the whole process instead of a thread per child. Fetch
// jobs never wait on other tasks, so sharing the pool cannot deadlock.
class FetchPool {
 public:
  static FetchPool& instance() {
    static FetchPool* pool = new FetchPool(kFetchThreads);  // leaked: see below
    return *pool;
  }
  std::future<StatusOr<ParamSet>> submit(transport::Store* store, const transport::Ref* ref) {
    std::packaged_task<StatusOr<ParamSet>()> job([store, ref] { return store->get(*ref); });
    auto fut = job.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return fut;
  }

 private:
  static constexpr int kFetchThreads = 2;
  explicit FetchPool(int n) {
    // Detached and never destroyed: at exit no fetch is in flight (every
    // aggregate waits for its own), and idle threads just stop with the process.
    for (int i = 0; i < n; ++i) std::thread([this] { work(); }).detach();
  }
  void work() {
    while (true) {
      std::packaged_task<StatusOr<ParamSet>()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<StatusOr<ParamSet>()>> queue_;
};

// Children's updates in order, up to kPrefetchDepth fetched ahead. Refs of a
// memory connector are fetched inline: they are a lookup in this process, with
// no latency to hide. The destructor waits for fetches still in flight (they
// point into `refs`).
class Prefetcher {
 public:
  static constexpr size_t kPrefetchDepth = 2;
  Prefetcher(transport::Store& store, const std::vector<transport::Ref>& refs)
      : store_(store), refs_(refs), ahead_(refs.size()) {}
  ~Prefetcher() {
    for (auto& f : ahead_) {
      if (f.valid()) f.wait();
    }
  }
  StatusOr<ParamSet> take(size_t i) {
    for (size_t j = i + 1; j < refs_.size() && j <= i + kPrefetchDepth; ++j) {
      if (!ahead_[j].valid() && !local(refs_[j])) {
        ahead_[j] = FetchPool::instance().submit(&store_, &refs_[j]);
      }
    }
    if (ahead_[i].valid()) return ahead_[i].get();
    return store_.get(refs_[i]);
  }

 private:
  static bool local(const transport::Ref& ref) {
    return ref.connector.is_object() && ref.connector.value("kind", std::string()) == "memory";
  }
  transport::Store& store_;
  const std::vector<transport::Ref>& refs_;
  std::vector<std::future<StatusOr<ParamSet>>> ahead_;
};

StatusOr<json> train_fn(const json& args, const faas::TaskContext& ctx) {
  (void)ctx;
  int64_t round = 0, worker_index = 0;
  std::string node;
  FLIGHT_RETURN_IF_ERROR(read(args, "round", &round));
  FLIGHT_RETURN_IF_ERROR(read(args, "node", &node));
  FLIGHT_RETURN_IF_ERROR(read(args, "worker_index", &worker_index));
  FLIGHT_ASSIGN_OR_RETURN(const json* model_arg, arg(args, "model"));
  FLIGHT_ASSIGN_OR_RETURN(const json* put_arg, arg(args, "put"));
  const json& model_json = *model_arg;
  const json& put = *put_arg;
  if (!put.is_object() || !put.contains("connector")) {
    return invalid_argument("argument 'put' must be {connector, scope}");
  }
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args));
  if (worker_index < 0 || worker_index >= static_cast<int64_t>(rt->partitions.size())) {
    return invalid_argument("worker " + node + ": worker_index " + std::to_string(worker_index) +
                            " outside [0, " + std::to_string(rt->partitions.size()) + ")");
  }
  const auto& indices = rt->partitions[static_cast<size_t>(worker_index)];
  FLIGHT_ASSIGN_OR_RETURN(auto model_ref, transport::Ref::from_json(model_json));
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(put.at("connector")));

  json out;
  out["n_samples"] = static_cast<int64_t>(indices.size());
  out["weight"] = rt->strategy->worker_weight(static_cast<int64_t>(indices.size()));
  out["bytes_fetched"] = model_ref.size;
  if (rt->job.debug) {
    // Framework-only measurement: the update is the model it was given.
    out["update"] = model_json;
    out["owned"] = false;
    out["loss"] = 0.0;
    out["accuracy"] = 0.0;
    out["train_seconds"] = 0.0;
    out["bytes_put"] = 0;
    return out;
  }
  FLIGHT_ASSIGN_OR_RETURN(ParamSet global, store->get(model_ref));
  FLIGHT_ASSIGN_OR_RETURN(learning::Model * model, thread_model(*rt));
  auto hook = rt->strategy->worker_hook();
  FLIGHT_ASSIGN_OR_RETURN(
      auto res, learning::train(*model, global, *rt->data.train, indices, rt->job.train,
                                task_seed(rt->job.seed, worker_index, round), hook.get()));
  FLIGHT_ASSIGN_OR_RETURN(auto ref, store->put(res.state, put_options(put)));
  out["update"] = ref.to_json();
  out["owned"] = true;
  out["loss"] = res.loss;
  out["accuracy"] = res.accuracy;
  out["train_seconds"] = res.seconds;
  out["bytes_put"] = ref.size;
  return out;
}

StatusOr<json> aggregate_fn(const json& args, const faas::TaskContext& ctx) {
  (void)ctx;
  std::string node;
  FLIGHT_RETURN_IF_ERROR(read(args, "node", &node));
  FLIGHT_ASSIGN_OR_RETURN(const json* children_arg, arg(args, "children"));
  FLIGHT_ASSIGN_OR_RETURN(const json* put_arg, arg(args, "put"));
  const json& children = *children_arg;
  const json& put = *put_arg;
  if (!children.is_array() || children.empty()) {
    return invalid_argument("aggregator " + node + ": no child updates to aggregate");
  }
  if (!put.is_object() || !put.contains("connector")) {
    return invalid_argument("argument 'put' must be {connector, scope}");
  }
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args));
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(put.at("connector")));

  std::vector<transport::Ref> refs;
  std::vector<double> weights;
  std::vector<bool> owned;
  refs.reserve(children.size());
  weights.reserve(children.size());
  owned.reserve(children.size());
  int64_t count = 0;
  uint64_t fetched = 0;
  try {
    for (const auto& c : children) {
      FLIGHT_ASSIGN_OR_RETURN(auto ref, transport::Ref::from_json(c.at("update")));
      fetched += ref.size;
      refs.push_back(std::move(ref));
      weights.push_back(c.at("weight").get<double>());
      owned.push_back(c.value("owned", true));
      count += c.value("count", int64_t{1});
    }
  } catch (const json::exception& e) {
    return invalid_argument("aggregator " + node + ": malformed child: " + e.what());
  }
  // Fold in list order (the engine sorts children by id, so results are
  // bit-reproducible), fetching up to kPrefetchDepth children ahead on the
  // shared fetch pool, so memory stays O(model) plus the updates in flight.
  auto fold = rt->strategy->begin();
  Prefetcher prefetch(*store, refs);
  for (size_t i = 0; i < refs.size(); ++i) {
    StatusOr<ParamSet> cur = prefetch.take(i);
    if (!cur.is_ok()) {
      return cur.status().with_context("aggregator " + node + ": child " +
                                       children[i].value("node", std::string("?")));
    }
    Status st = fold->accumulate(*cur, weights[i]);
    if (!st.is_ok()) return st.with_context("aggregator " + node);
    // The consumer owns a child's update: evicting it as soon as it is folded
    // keeps a round's footprint at O(tree width), not O(workers).
    if (owned[i]) (void)store->evict(refs[i]);
  }
  FLIGHT_ASSIGN_OR_RETURN(auto result, fold->finalize());
  FLIGHT_ASSIGN_OR_RETURN(auto ref, store->put(result.params, put_options(put)));
  json out;
  out["update"] = ref.to_json();
  out["owned"] = true;
  out["weight"] = result.weight;
  out["count"] = count;
  out["bytes_fetched"] = fetched;
  out["bytes_put"] = ref.size;
  // Async updates carry the model each was trained from; folding the bases
  // with the same weights keeps mean(model) - mean(base) = mean(delta).
  if (children[0].contains("base")) {
    auto base_fold = rt->strategy->begin();
    for (const auto& c : children) {
      FLIGHT_ASSIGN_OR_RETURN(auto base_ref, transport::Ref::from_json(c.at("base")));
      FLIGHT_ASSIGN_OR_RETURN(ParamSet base, store->get(base_ref));
      FLIGHT_RETURN_IF_ERROR(base_fold->accumulate(base, c.at("weight").get<double>())
                                 .with_context("aggregator " + node + ": base of " +
                                               c.value("node", std::string("?"))));
      out["bytes_fetched"] = out["bytes_fetched"].get<uint64_t>() + base_ref.size;
      if (c.value("base_owned", false)) (void)store->evict(base_ref);
    }
    FLIGHT_ASSIGN_OR_RETURN(auto base_mean, base_fold->finalize());
    FLIGHT_ASSIGN_OR_RETURN(auto base_out, store->put(base_mean.params, put_options(put)));
    out["base"] = base_out.to_json();
    out["bytes_put"] = out["bytes_put"].get<uint64_t>() + base_out.size;
  }
  return out;
}

StatusOr<json> evaluate_fn(const json& args, const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(const json* model_arg, arg(args, "model"));
  const json& model_json = *model_arg;
  int64_t batch = args.value("batch_size", int64_t{1024});
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args));
  FLIGHT_ASSIGN_OR_RETURN(auto ref, transport::Ref::from_json(model_json));
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(ref.connector));
  FLIGHT_ASSIGN_OR_RETURN(ParamSet params, store->get(ref));
  const learning::Dataset& test = *rt->data.test;
  int64_t begin = std::clamp<int64_t>(args.value("begin", int64_t{0}), 0, test.size());
  int64_t end = std::clamp<int64_t>(args.value("end", test.size()), begin, test.size());
  learning::Dataset shard;
  shard.images = test.images.narrow(0, begin, end - begin);
  shard.labels = test.labels.narrow(0, begin, end - begin);
  shard.num_classes = test.num_classes;
  FLIGHT_ASSIGN_OR_RETURN(learning::Model * model, thread_model(*rt));
  FLIGHT_ASSIGN_OR_RETURN(auto res, learning::evaluate(*model, params, shard, batch));
  return json{{"loss", res.loss}, {"accuracy", res.accuracy}, {"n", res.n}};
}

}  // namespace

nlohmann::json Job::to_json() const {
  return json{{"model", model.to_json()},
              {"data", data.to_json()},
              {"train", train.to_json()},
              {"strategy", strategy.to_json()},
              {"seed", seed},
              {"n_workers", n_workers},
              {"debug", debug}};
}

StatusOr<Job> Job::from_json(const nlohmann::json& j) {
  Job job;
  try {
    FLIGHT_ASSIGN_OR_RETURN(job.model, learning::ModelSpec::from_json(j.at("model")));
    FLIGHT_ASSIGN_OR_RETURN(job.data, learning::DataSpec::from_json(j.at("data")));
    FLIGHT_ASSIGN_OR_RETURN(job.train, learning::TrainOptions::from_json(j.at("train")));
    FLIGHT_ASSIGN_OR_RETURN(job.strategy,
                            aggregators::StrategyOptions::from_json(j.at("strategy")));
    job.seed = j.at("seed").get<uint64_t>();
    job.n_workers = j.at("n_workers").get<int64_t>();
    job.debug = j.value("debug", false);
  } catch (const json::exception& e) {
    return invalid_argument(std::string("malformed job: ") + e.what());
  }
  if (job.n_workers < 1) return invalid_argument("job.n_workers must be >= 1");
  return job;
}

namespace {
StatusOr<transport::Store*> shared_store_for(const nlohmann::json& connector);
}  // namespace

StatusOr<transport::Store*> store_for(const nlohmann::json& connector) {
  // Every task asks; a thread sees few distinct connectors: compare the JSON
  // (no dump, no lock) against the ones this thread resolved before.
  thread_local std::vector<std::pair<nlohmann::json, transport::Store*>> seen;
  for (const auto& [config, store] : seen) {
    if (config == connector) return store;
  }
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, shared_store_for(connector));
  if (seen.size() < 16) seen.emplace_back(connector, store);
  return store;
}

namespace {
StatusOr<transport::Store*> shared_store_for(const nlohmann::json& connector) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<transport::Store>> stores;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = connector.dump();
  auto it = stores.find(key);
  if (it == stores.end()) {
    FLIGHT_ASSIGN_OR_RETURN(auto store, transport::Store::create(connector));
    it = stores.emplace(key, std::move(store)).first;
  }
  return it->second.get();
}
}  // namespace

std::string job_id(const nlohmann::json& job) {
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

std::string register_job(const nlohmann::json& job) {
  std::string id = job_id(job);
  JobCache& cache = job_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  JobCache::Entry& e = cache.entries[id];
  if (e.job.is_null()) e.job = job;
  return id;
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

void configure_task_threads() {
  at::set_num_threads(1);
  // Looked up at run time: libtorch may be linked against OpenBLAS or another BLAS.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
}

void configure_task_process() {
  configure_task_threads();
  register_functions(faas::default_functions());
}

void register_functions(faas::FunctionRegistry& registry) {
  registry.add("train", train_fn);
  registry.add("aggregate", aggregate_fn);
  registry.add("evaluate", evaluate_fn);
}

}  // namespace flight::engine
