// `flight bench privacy`: what secure aggregation's arithmetic costs.
//
// Cases (one JSON line each, DESIGN.md "Benchmarks"), single thread:
//   mask_expand     GB/s of adding one mask to a --numel uint32 vector
//                   (apply_mask: AES-128-CTR keystream through OpenSSL's EVP,
//                   AES-NI, added mod 2^32 a cache-sized chunk at a time; the
//                   key derivation from the seed is included).
//                   Baseline `memcpy`: copying the same bytes between two
//                   buffers, one thread. Target: >= 1 GB/s per core.
//   unmask          GB/s of mask bytes the coordinator removes in one round of
//                   --workers workers with --drop of them dropped after masking
//                   (Shamir rebuilds + self masks of survivors + pair masks
//                   with the dropped), over --numel words. Baseline `memcpy`.
//   secure_round    seconds for the aggregation side of one round of --workers
//                   workers x --numel parameters: keys, shares, every worker's
//                   fixed-point encode + masks, the mod-2^32 sum, unmasking and
//                   decoding. Baseline `plain_round`: the float weighted sum and
//                   division of the same updates (the fold it replaces);
//                   ratio = plain / secure. Neither includes training, so this
//                   is the crypto overhead against the cheapest possible round,
//                   not against a whole FL round.
//   engine_round    wall seconds of one sync round of the real engine
//                   (flight/engine, privacy.secure_aggregation): --workers
//                   workers under sqrt(workers) aggregators, an MLP of
//                   1.07M parameters (hidden 1024, 256) on 28x28 synthetic
//                   data, `debug: true` — no training, but every
//                   worker fetches the model and puts its own update, so the
//                   round is all framework: key exchange tasks, fixed-point
//                   encoding and masking at the workers, mod-2^32 folds,
//                   reveals and unmasking. Baseline `plain_round`: the same
//                   round without secure aggregation, measured in the same
//                   run; ratio = plain / secure. Round 2 of 3 (round 1 warms up).
//   engine_train_round  the same with training (--engine-steps SGD steps of
//                   batch 32 per worker), the cost a user sees.
// Times are thread CPU seconds (this machine is shared: wall time measures
// the neighbours; "per core" is what the targets ask), best of --repeat runs;
// every record also carries the wall seconds of its best run. The engine
// cases are wall time of --engine-threads invoker threads, one run each.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "flight/base/process.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/privacy/prg.h"
#include "flight/privacy/secagg.h"

namespace flight::bench {
namespace {

using namespace flight::privacy;

struct PrivacyBenchArgs {
  int64_t numel = 1000000;
  int workers = 100;
  double drop = 0.1;
  int repeat = 3;
  std::string cases = "mask_expand,unmask,secure_round,engine_round,engine_train_round";
  int engine_threads = 2;
  int engine_steps = 5;
};

// One run of the engine (3 rounds); returns round 2's wall seconds and row.
StatusOr<engine::RoundRow> engine_round(const PrivacyBenchArgs& a, bool secure, bool train) {
  TempDir dir("flight-bench-privacy");
  const auto aggregators =
      std::max<int64_t>(1, std::llround(std::sqrt(static_cast<double>(a.workers))));
  nlohmann::json cfg{
      {"name", "bench-privacy"},
      {"seed", 1},
      {"topology", {{"generate", "tiers"}, {"aggregators", {aggregators}}, {"workers", a.workers}}},
      {"model", {{"name", "mlp"}, {"options", {{"hidden", {1024, 256}}}}}},
      {"data",
       {{"dataset", "synthetic"}, {"synthetic_samples", 6400}, {"synthetic_test_samples", 100}}},
      {"strategy", {{"name", "fedavg"}}},
      {"rounds", 3},
      {"threads", a.engine_threads},
      {"eval", {{"every", 3}, {"batch_size", 100}}},
      {"output", {{"dir", dir.path() + "/run"}, {"checkpoint_every", 0}, {"save_model", false}}}};
  if (train) {
    cfg["train"] = {{"batch_size", 32}, {"max_steps", a.engine_steps}};
  } else {
    cfg["debug"] = true;
  }
  if (secure) cfg["privacy"] = {{"secure_aggregation", nlohmann::json::object()}};
  FLIGHT_ASSIGN_OR_RETURN(engine::ExperimentConfig config,
                          engine::ExperimentConfig::from_json(cfg, "bench-privacy", dir.path()));
  engine::RunOptions options;
  options.quiet = true;
  std::vector<engine::RoundRow> rows;
  options.on_round = [&](const engine::RoundRow& r) { rows.push_back(r); };
  FLIGHT_ASSIGN_OR_RETURN(auto summary, engine::run_experiment(config, options));
  (void)summary;
  if (rows.size() < 2) return internal_error("the run reported fewer than 2 rounds");
  return rows[1];
}

// CPU time of the calling thread.
class CpuStopwatch {
 public:
  CpuStopwatch() : start_(now()) {}
  double seconds() const { return now() - start_; }

 private:
  static double now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  double start_;
};

// Runs f (which returns {cpu, wall} seconds) and keeps the run with the least CPU.
struct Timing {
  double cpu = 1e300;
  double wall = 0;
};
template <typename F>
Timing best_run(int reps, F&& f) {
  Timing best;
  for (int i = 0; i < reps; ++i) {
    Timing t = f();
    if (t.cpu < best.cpu) best = t;
  }
  return best;
}

// Everything a round's workers produce, built once; `fold` sees each masked
// vector as an aggregator would.
struct Round {
  SecAggRound plan;
  std::unique_ptr<SecAggCoordinator> coord;
  std::vector<SecAggWorker> workers;
};

StatusOr<Round> setup_round(int n, uint64_t seed) {
  Round r;
  FLIGHT_ASSIGN_OR_RETURN(r.plan, SecAggRound::plan(SecAggOptions{}, n, seed, seed));
  r.coord = std::make_unique<SecAggCoordinator>(r.plan);
  for (int i = 0; i < n; ++i) {
    FLIGHT_ASSIGN_OR_RETURN(SecAggWorker w, SecAggWorker::create(r.plan, i, random_seed()));
    FLIGHT_RETURN_IF_ERROR(r.coord->add_public_key(i, w.public_key()));
    r.workers.push_back(std::move(w));
  }
  for (auto& w : r.workers) {
    FLIGHT_ASSIGN_OR_RETURN(auto out, w.share_secrets(r.coord->public_keys()));
    FLIGHT_RETURN_IF_ERROR(r.coord->accept_shares(w.index(), std::move(out)));
  }
  for (auto& w : r.workers) FLIGHT_RETURN_IF_ERROR(w.receive_shares(r.coord->inbox(w.index())));
  return r;
}

std::vector<bool> survivors(int n, double drop) {
  std::vector<bool> s(static_cast<size_t>(n), true);
  const int dropped = static_cast<int>(drop * n + 0.5);
  for (int i = 0; i < dropped; ++i) s[static_cast<size_t>(i * n / std::max(dropped, 1))] = false;
  return s;
}

StatusOr<std::vector<Reveal>> reveals(const Round& r, const std::vector<bool>& alive) {
  std::vector<Reveal> out;
  for (const auto& w : r.workers) {
    if (!alive[w.index()]) continue;
    FLIGHT_ASSIGN_OR_RETURN(Reveal rv, w.reveal(alive));
    out.push_back(std::move(rv));
  }
  return out;
}

// Mask bytes unmask() removes: one self mask per survivor, one pair mask per
// (dropped, surviving neighbour) edge.
int64_t unmask_expansions(const SecAggRound& plan, const std::vector<bool>& alive) {
  int64_t e = 0;
  auto g = plan.graph();
  for (int i = 0; i < plan.num_workers; ++i) {
    if (alive[i]) {
      ++e;
      continue;
    }
    for (int j : g.neighbours(i)) e += alive[j];
  }
  return e;
}

int run(const PrivacyBenchArgs& a) {
  if (a.numel < 1) return usage_error("--numel must be >= 1");
  if (a.workers < 2) return usage_error("--workers must be >= 2");
  if (!(a.drop >= 0 && a.drop < 1)) return usage_error("--drop must be in [0, 1)");
  if (a.repeat < 1) return usage_error("--repeat must be >= 1");
  std::set<std::string> cases;
  for (size_t p = 0; p <= a.cases.size();) {
    size_t q = a.cases.find(',', p);
    if (q == std::string::npos) q = a.cases.size();
    std::string c = a.cases.substr(p, q - p);
    if (!c.empty()) {
      if (c != "mask_expand" && c != "unmask" && c != "secure_round" && c != "engine_round" &&
          c != "engine_train_round") {
        return usage_error("unknown case '" + c +
                           "' (known: mask_expand, unmask, secure_round, engine_round, "
                           "engine_train_round)");
      }
      cases.insert(c);
    }
    p = q + 1;
  }
  const size_t n = static_cast<size_t>(a.numel);
  const double bytes = static_cast<double>(n) * 4;
  std::vector<uint32_t> v(n, 1), w(n, 2);
  const Seed seed = random_seed();
  // Times f() in CPU and wall seconds.
  auto timed = [](auto&& f) {
    Stopwatch wall;
    CpuStopwatch cpu;
    f();
    return Timing{cpu.seconds(), wall.seconds()};
  };

  std::memcpy(w.data(), v.data(), n * 4);  // warm-up, pages faulted in
  const Timing copy =
      best_run(a.repeat, [&] { return timed([&] { std::memcpy(w.data(), v.data(), n * 4); }); });
  const double copy_gbs = bytes / copy.cpu / 1e9;

  if (cases.count("mask_expand")) {
    apply_mask(seed, 0, MaskSign::kAdd, v.data(), n);
    const Timing t = best_run(
        a.repeat, [&] { return timed([&] { apply_mask(seed, 1, MaskSign::kAdd, v.data(), n); }); });
    BenchRecord r;
    r.bench = "privacy";
    r.case_name = "mask_expand";
    r.params = {{"numel", a.numel}, {"threads", 1}};
    r.value = bytes / t.cpu / 1e9;
    r.unit = "GB/s";
    r.baseline = "memcpy";
    r.baseline_value = copy_gbs;
    r.extra = {{"cpu_seconds", t.cpu}, {"wall_seconds", t.wall}};
    emit_bench(r);
  }

  if (cases.count("unmask") || cases.count("secure_round")) {
    auto round = setup_round(a.workers, 1);
    if (!round.is_ok()) return fail("secure round setup failed: " + round.status().to_string());
    const auto alive = survivors(a.workers, a.drop);
    auto rv = reveals(*round, alive);
    if (!rv.is_ok()) return fail("reveal failed: " + rv.status().to_string());

    if (cases.count("unmask")) {
      Status err;
      const Timing t = best_run(a.repeat, [&] {
        return timed([&] {
          Status st = round->coord->unmask(v.data(), n, alive, *rv);
          if (!st.is_ok()) err = st;
        });
      });
      if (!err.is_ok()) return fail("unmask failed: " + err.to_string());
      const int64_t expansions = unmask_expansions(round->plan, alive);
      BenchRecord r;
      r.bench = "privacy";
      r.case_name = "unmask";
      r.params = {{"numel", a.numel},
                  {"workers", a.workers},
                  {"drop", a.drop},
                  {"neighbours", round->plan.neighbours},
                  {"threshold", round->plan.threshold},
                  {"threads", 1}};
      r.value = bytes * static_cast<double>(expansions) / t.cpu / 1e9;
      r.unit = "GB/s";
      r.baseline = "memcpy";
      r.baseline_value = copy_gbs;
      r.extra = {{"cpu_seconds", t.cpu}, {"wall_seconds", t.wall}, {"mask_expansions", expansions}};
      emit_bench(r);
    }

    if (cases.count("secure_round")) {
      // A small pool of distinct float updates, cycled (both rounds read the same ones).
      const int pool = std::min(a.workers, 8);
      std::vector<std::vector<float>> updates(static_cast<size_t>(pool), std::vector<float>(n));
      ChaChaRng rng(seed_from_u64(5));
      for (auto& u : updates) {
        for (auto& x : u) x = static_cast<float>(rng.uniform() * 0.02 - 0.01);
      }
      std::vector<float> out(n);
      const auto all = survivors(a.workers, 0);
      auto plain = [&] {
        std::vector<double> acc(n, 0.0);
        double wsum = 0;
        for (int i = 0; i < a.workers; ++i) {
          const double wt = 1.0 + i % 3;
          const float* u = updates[i % pool].data();
          for (size_t k = 0; k < n; ++k) acc[k] += wt * u[k];
          wsum += wt;
        }
        for (size_t k = 0; k < n; ++k) out[k] = static_cast<float>(acc[k] / wsum);
      };
      Status err;
      auto secure = [&] {
        auto r = setup_round(a.workers, 2);
        if (!r.is_ok()) {
          err = r.status();
          return;
        }
        FixedPoint fp(r->plan.fractional_bits);
        std::vector<uint32_t> sum(n + 1, 0), mine(n + 1);
        for (int i = 0; i < a.workers; ++i) {
          const double wt = 1.0 + i % 3;
          fp.encode(updates[i % pool].data(), n, wt, mine.data());
          mine[n] = fp.encode_scalar(wt);
          Status st = r->workers[i].mask(mine.data(), n + 1);
          if (!st.is_ok()) err = st;
          add_mod32(sum.data(), mine.data(), n + 1);
        }
        auto rv2 = reveals(*r, all);
        if (!rv2.is_ok()) {
          err = rv2.status();
          return;
        }
        Status st = r->coord->unmask(sum.data(), n + 1, all, *rv2);
        if (!st.is_ok()) err = st;
        fp.decode(sum.data(), n, fp.decode_scalar(sum[n]), out.data());
      };
      const Timing plain_t = best_run(a.repeat, [&] { return timed(plain); });
      const Timing secure_t = best_run(a.repeat, [&] { return timed(secure); });
      if (!err.is_ok()) return fail("secure round failed: " + err.to_string());
      BenchRecord r;
      r.bench = "privacy";
      r.case_name = "secure_round";
      r.params = {{"numel", a.numel},
                  {"workers", a.workers},
                  {"neighbours", round->plan.neighbours},
                  {"threads", 1}};
      r.value = secure_t.cpu;
      r.unit = "s";
      r.baseline = "plain_round";
      r.baseline_value = plain_t.cpu;
      r.higher_is_better = false;
      r.extra = {{"slowdown", secure_t.cpu / plain_t.cpu},
                 {"includes_training", false},
                 {"worker_mask_cpu_seconds", secure_t.cpu / a.workers},
                 {"wall_seconds", secure_t.wall},
                 {"plain_wall_seconds", plain_t.wall}};
      emit_bench(r);
    }
  }
  for (const bool train : {false, true}) {
    const char* name = train ? "engine_train_round" : "engine_round";
    if (!cases.count(name)) continue;
    auto plain = engine_round(a, false, train);
    if (!plain.is_ok())
      return fail(std::string(name) + " (plain) failed: " + plain.status().to_string());
    auto secure = engine_round(a, true, train);
    if (!secure.is_ok()) {
      return fail(std::string(name) + " (secure) failed: " + secure.status().to_string());
    }
    const double plain_s = plain->end - plain->start, secure_s = secure->end - secure->start;
    BenchRecord r;
    r.bench = "privacy";
    r.case_name = name;
    r.params = {
        {"workers", a.workers},
        {"numel", 784 * 1024 + 1024 + 1024 * 256 + 256 + 256 * 10 + 10},
        {"topology", "3tier"},
        {"threads", a.engine_threads},
        {"training", train ? "max_steps " + std::to_string(a.engine_steps) : "debug: true"}};
    r.value = secure_s;
    r.unit = "s";
    r.baseline = "plain_round";
    r.baseline_value = plain_s;
    r.higher_is_better = false;
    r.extra = {{"slowdown", secure_s / plain_s},
               {"returned", secure->returned},
               {"plain_bytes_put", plain->bytes_put},
               {"secure_bytes_put", secure->bytes_put}};
    emit_bench(r);
  }
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(
    bench_privacy,
    {"privacy",
     "Secure aggregation: mask expansion and unmasking GB/s vs memcpy, secure vs plain round",
     [](CLI::App* app) {
       auto a = std::make_shared<PrivacyBenchArgs>();
       app->add_option("--numel", a->numel, "Parameters (uint32 words) per vector")
           ->capture_default_str();
       app->add_option("--workers", a->workers, "Workers in the unmask and round cases")
           ->capture_default_str();
       app->add_option("--drop", a->drop, "Fraction of workers dropped after masking (unmask case)")
           ->capture_default_str();
       app->add_option("--repeat", a->repeat, "Runs per case; the best is reported")
           ->capture_default_str();
       app->add_option("--cases", a->cases,
                       "mask_expand,unmask,secure_round,engine_round,engine_train_round")
           ->capture_default_str();
       app->add_option("--engine-threads", a->engine_threads, "Invoker threads of the engine cases")
           ->capture_default_str();
       app->add_option("--engine-steps", a->engine_steps,
                       "SGD steps per worker in engine_train_round")
           ->capture_default_str();
       return [a] { return run(*a); };
     }});

}  // namespace flight::bench
