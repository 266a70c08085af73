// `flight bench faas`: control-plane throughput and latency with no-op tasks,
// in-process (LocalInvoker) and over REST (1 `flight serve` + 2 `flight
// endpoint` processes on loopback, spawned from this very binary), and over
// REST with tasks shaped like real train tasks (train_shaped()).
//
// Baselines, measured in the same run:
//   local_*        a bare mutex/condvar thread pool with a promise per task, fed
//                  in the same batches as the invoker case
//   rest_throughput  LocalInvoker with the same batch (what REST costs on top)
//   rest_throughput_train_shaped  REST no-op tasks with the same batch
//   rest_latency   one HTTP round trip (GET /v1/healthz) on a kept-alive connection
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "flight/base/ids.h"
#include "flight/base/logging.h"
#include "flight/base/process.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/faas/http_client.h"
#include "flight/faas/local_invoker.h"
#include "flight/faas/rest_invoker.h"

namespace flight::bench {
namespace {

struct BenchArgs {
  size_t tasks = 20000;
  size_t rounds = 1000;
  size_t threads = 2;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The practical floor for LocalInvoker: a minimal pool, same thread count.
class BarePool {
 public:
  explicit BarePool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        while (true) {
          std::function<void()> f;
          {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return stop_ || !q_.empty(); });
            if (q_.empty()) return;
            f = std::move(q_.front());
            q_.pop_front();
          }
          f();
        }
      });
    }
  }
  ~BarePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::future<int> submit() {
    auto p = std::make_shared<std::promise<int>>();
    auto f = p->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back([p] { p->set_value(0); });
    }
    cv_.notify_one();
    return f;
  }
  // k tasks under one lock and one wake-up per thread: the floor for a
  // batched submit (LocalInvoker::submit_batch does the same).
  void submit_batch(size_t k, std::vector<std::future<int>>* out) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < k; ++i) {
        auto p = std::make_shared<std::promise<int>>();
        out->push_back(p->get_future());
        q_.push_back([p] { p->set_value(0); });
      }
    }
    if (k == 1) {
      cv_.notify_one();
    } else {
      cv_.notify_all();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Tasks/s of the bare pool, `batch` tasks per submit (the same batching as
// the invoker case it is the baseline of).
double bare_throughput(size_t threads, size_t n, size_t batch) {
  BarePool pool(threads);
  std::vector<std::future<int>> fs;
  fs.reserve(n);
  Stopwatch sw;
  for (size_t done = 0; done < n; done += batch) pool.submit_batch(std::min(batch, n - done), &fs);
  for (auto& f : fs) f.get();
  return n / sw.seconds();
}

std::vector<double> bare_latency_ms(size_t threads, size_t rounds) {
  BarePool pool(threads);
  std::vector<double> ms;
  for (size_t i = 0; i < rounds; ++i) {
    Stopwatch sw;
    pool.submit().get();
    ms.push_back(sw.seconds() * 1e3);
  }
  return ms;
}

faas::TaskSpec noop() {
  faas::TaskSpec s;
  s.endpoint = "bench";
  s.function = "noop";
  return s;
}

// An `echo` task whose args have the shape and size of a real train task
// over REST + Redis (engine TrainArgs::to_json: the job referenced in the
// data plane, the global model's Ref, the put target; ≈ 760 bytes), so the
// result is as large as a TrainResult. What a batch of them shares (all but
// node and worker_index) the REST wire carries once per request.
faas::TaskSpec train_shaped(size_t i) {
  const nlohmann::json redis = {{"chunk_bytes", 4194304},
                                {"db", 0},
                                {"host", "127.0.0.1"},
                                {"kind", "redis"},
                                {"max_object_bytes", 68719476736},
                                {"pool_size", 8},
                                {"port", 6379},
                                {"prefix", "flight:"},
                                {"timeout_s", 30.0},
                                {"window", 4}};
  faas::TaskSpec s;
  s.endpoint = "bench";
  s.function = "echo";
  s.args = {{"job_id", "job-e076d6411387585e"},
            {"job_at", {{"connector", redis}, {"key", "a88eec4ae9d185dde880d1e4"}}},
            {"model",
             {{"checksum", "08a40a7b"},
              {"connector", redis},
              {"key", "57782c8a998582420ee87a61"},
              {"size", 13096}}},
            {"node", "worker-" + std::to_string(i + 1)},
            {"worker_index", i},
            {"put",
             {{"connector", {{"host", "127.0.0.1"}, {"kind", "redis"}, {"port", 6379}}},
              {"scope", "round-1"}}},
            {"round", 1}};
  return s;
}

// Tasks/s for `n` tasks made by `make` submitted `batch` at a time, all in flight.
StatusOr<double> invoker_throughput(faas::Invoker& inv, size_t n, size_t batch,
                                    faas::TaskSpec (*make)(size_t) = nullptr) {
  std::vector<faas::TaskHandle> handles;
  handles.reserve(n);
  Stopwatch sw;
  for (size_t done = 0; done < n; done += batch) {
    size_t k = std::min(batch, n - done);
    std::vector<faas::TaskSpec> specs;
    for (size_t i = 0; i < k; ++i) specs.push_back(make ? make(done + i) : noop());
    if (k == 1) {
      handles.push_back(inv.submit(std::move(specs.front())));
    } else {
      auto hs = inv.submit_batch(std::move(specs));
      handles.insert(handles.end(), hs.begin(), hs.end());
    }
  }
  for (auto& h : handles) {
    auto r = h.wait();
    if (!r.ok())
      return internal_error("task " + r.task_id + " " + faas::task_state_name(r.state) + ": " +
                            r.error);
  }
  return n / sw.seconds();
}

StatusOr<std::vector<double>> invoker_latency_ms(faas::Invoker& inv, size_t rounds) {
  std::vector<double> ms;
  for (size_t i = 0; i < rounds; ++i) {
    Stopwatch sw;
    auto r = inv.submit(noop()).wait();
    if (!r.ok()) return internal_error("task " + r.task_id + ": " + r.error);
    ms.push_back(sw.seconds() * 1e3);
  }
  return ms;
}

int run_bench(const BenchArgs& a) {
  const size_t n = a.tasks;
  // --- local ---
  faas::LocalInvokerOptions lo;
  lo.threads = a.threads;
  auto local = faas::make_local_invoker(lo);
  double local_tp[2] = {0, 0};
  const size_t batches[2] = {1, 100};
  for (int b = 0; b < 2; ++b) {
    auto tp = invoker_throughput(*local, n, batches[b]);
    if (!tp.is_ok()) return fail("local_throughput: " + tp.status().message());
    const double bare = bare_throughput(a.threads, n, batches[b]);
    local_tp[b] = *tp;
    BenchRecord r;
    r.bench = "faas";
    r.case_name = "local_throughput";
    r.params = {{"batch", batches[b]}, {"tasks", n}, {"threads", a.threads}};
    r.value = *tp;
    r.unit = "tasks/s";
    r.baseline = "bare_thread_pool";
    r.baseline_value = bare;
    emit_bench(r);
  }
  {
    auto bare_ms = bare_latency_ms(a.threads, a.rounds);
    auto ms = invoker_latency_ms(*local, a.rounds);
    if (!ms.is_ok()) return fail("local_latency: " + ms.status().message());
    BenchRecord r;
    r.bench = "faas";
    r.case_name = "local_latency";
    r.params = {{"rounds", a.rounds}, {"threads", a.threads}};
    r.value = percentile(*ms, 0.5);
    r.unit = "ms";
    r.baseline = "bare_thread_pool";
    r.baseline_value = percentile(bare_ms, 0.5);
    r.higher_is_better = false;
    r.extra = {{"p99", percentile(*ms, 0.99)}};
    emit_bench(r);
  }
  (void)local->close();

  // --- REST: 1 service + 2 endpoints ---
  TempDir tmp("flight-bench-faas");
  const std::string dir = tmp.path();
  const std::string token = random_hex(32);
  { std::ofstream(dir + "/token") << token << "\n"; }
  auto service = Process::spawn(self_command({"--log-level", "warn", "serve", "--port", "0",
                                              "--token-file", dir + "/token", "--threads", "2"},
                                             dir + "/serve.out"));
  if (!service.is_ok()) return fail("cannot spawn flight serve: " + service.status().message());
  auto listening = (*service)->wait_for_line("listening on ", std::chrono::seconds(30));
  if (!listening.is_ok())
    return fail("flight serve did not start: " + listening.status().message());
  const std::string url = trim(listening->substr(listening->find("listening on ") + 13));
  std::vector<std::unique_ptr<Process>> endpoints;
  for (int i = 0; i < 2; ++i) {
    auto ep = Process::spawn(self_command(
        {"--log-level", "warn", "endpoint", "--service", url, "--token-file", dir + "/token",
         "--name", "bench", "--threads", std::to_string(a.threads), "--prefetch", "256"},
        dir + "/endpoint" + std::to_string(i) + ".out"));
    if (!ep.is_ok()) return fail("cannot spawn flight endpoint: " + ep.status().message());
    endpoints.push_back(std::move(*ep));
  }
  faas::RestInvokerOptions ro;
  ro.url = url;
  ro.token = token;
  auto rest = faas::make_rest_invoker(ro);
  if (!rest.is_ok()) return fail(rest.status().message());
  // Warm-up: both endpoints registered and connections open.
  {
    auto tp = invoker_throughput(**rest, 200, 100);
    if (!tp.is_ok()) return fail("rest warm-up: " + tp.status().message());
  }
  double rest_noop_batched = 0;
  for (int b = 0; b < 2; ++b) {
    size_t count = batches[b] == 1 ? std::max<size_t>(n / 10, 100) : n;
    auto tp = invoker_throughput(**rest, count, batches[b]);
    if (!tp.is_ok()) return fail("rest_throughput: " + tp.status().message());
    if (batches[b] == 100) rest_noop_batched = *tp;
    BenchRecord r;
    r.bench = "faas";
    r.case_name = "rest_throughput";
    r.params = {
        {"batch", batches[b]}, {"tasks", count}, {"endpoints", 2}, {"endpoint_threads", a.threads}};
    r.value = *tp;
    r.unit = "tasks/s";
    r.baseline = "local_invoker";
    r.baseline_value = local_tp[b];
    r.extra = {{"target", batches[b] == 100 ? 5000 : 0}};
    if (batches[b] == 1) r.extra.erase("target");
    emit_bench(r);
  }
  {
    // Train-shaped tasks (train_shaped()), batched like the no-op ones: what
    // real arguments and results cost over the no-op floor.
    auto tp = invoker_throughput(**rest, n, 100, train_shaped);
    if (!tp.is_ok()) return fail("rest_train_shaped: " + tp.status().message());
    BenchRecord r;
    r.bench = "faas";
    r.case_name = "rest_throughput_train_shaped";
    r.params = {{"batch", 100}, {"tasks", n}, {"endpoints", 2}, {"endpoint_threads", a.threads}};
    r.value = *tp;
    r.unit = "tasks/s";
    r.baseline = "rest_noop";
    r.baseline_value = rest_noop_batched;
    emit_bench(r);
  }
  {
    faas::HttpClient http(url, token);
    std::vector<double> rtt;
    for (size_t i = 0; i < a.rounds; ++i) {
      Stopwatch sw;
      auto h = http.get("/v1/healthz");
      if (!h.is_ok() || !h->ok()) return fail("healthz failed during the benchmark");
      rtt.push_back(sw.seconds() * 1e3);
    }
    auto ms = invoker_latency_ms(**rest, a.rounds);
    if (!ms.is_ok()) return fail("rest_latency: " + ms.status().message());
    BenchRecord r;
    r.bench = "faas";
    r.case_name = "rest_latency";
    r.params = {{"rounds", a.rounds}, {"endpoints", 2}};
    r.value = percentile(*ms, 0.5);
    r.unit = "ms";
    r.baseline = "http_roundtrip";
    r.baseline_value = percentile(rtt, 0.5);
    r.higher_is_better = false;
    r.extra = {{"p99", percentile(*ms, 0.99)}, {"target_p50", 2.0}};
    emit_bench(r);
  }
  (void)(*rest)->close();
  endpoints.clear();
  service->reset();
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(
    bench_faas,
    {"faas",
     "Control plane: no-op task throughput and latency, LocalInvoker and REST (1 service, 2 "
     "endpoints)",
     [](CLI::App* app) {
       auto a = std::make_shared<BenchArgs>();
       app->add_option("--tasks", a->tasks, "Tasks per throughput case")->capture_default_str();
       app->add_option("--rounds", a->rounds, "Sequential tasks per latency case")
           ->capture_default_str();
       app->add_option("--threads", a->threads, "Pool threads (local) and per endpoint (REST)")
           ->capture_default_str();
       return [a] {
         if (a->tasks < 100 || a->rounds < 10 || a->threads < 1) {
           return usage_error("--tasks >= 100, --rounds >= 10, --threads >= 1");
         }
         return run_bench(*a);
       };
     }});

}  // namespace flight::bench
