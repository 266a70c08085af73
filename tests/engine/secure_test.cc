// Secure aggregation in the sync engine (privacy.secure_aggregation): real
// rounds on Fashion-MNIST — the unmasked total against plain FedAvg within
// the fixed-point bound, flat == 3-tier bit for bit, workers dropped after
// masking (10 %, 30 %, simulated dropout) recovered through Shamir reveals,
// resume from a checkpoint, a clean failure below the threshold naming the
// worker, what an aggregator sees (uniform bytes; a plain partial is not), DP
// and fp16 composition, the config errors, and one run over the REST control
// plane.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <vector>

#include <signal.h>

#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/engine/secagg_worker.h"
#include "flight/engine/secure_options.h"
#include "flight/engine/task_process.h"
#include "flight/engine/tasks.h"
#include "flight/faas/functions.h"
#include "flight/faas/service.h"
#include "flight/privacy/secagg.h"
#include "tests/engine/interrupted_run.h"
#include "tests/engine/params_diff.h"
#include "tests/engine/run_rows.h"
#include "tests/engine/topologies.h"
#include "tests/support/process.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using nlohmann::json;

const char* kSecure = "privacy:\n  secure_aggregation: {fractional_bits: 20}\n";

// The critical value of chi-square(255) at p = 0.001 (Wilson–Hilferty).
constexpr double kChiCritical = 330.5;

class SecureTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  }

  // MLP on Fashion-MNIST, 15 SGD steps a task. `topology` is a file's text or,
  // starting with '{', a generator spec.
  StatusOr<ExperimentConfig> load(const std::string& topology, const std::string& name,
                                  const std::string& extra,
                                  std::vector<std::string> overrides = {}) {
    std::string topo_line;
    if (topology[0] == '{') {
      topo_line = "topology: " + topology + "\n";
    } else {
      write("topo-" + name + ".yaml", topology);
      topo_line = "topology: topo-" + name + ".yaml\n";
    }
    const std::string text = "name: " + name + "\nseed: 7\n" + topo_line + R"(model: {name: mlp}
data:
  dataset: fashion_mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 15}
strategy: {name: fedavg, participation: 1.0}
rounds: 1
threads: 2
)" + extra;
    overrides.push_back("output.dir=" + dir_.file("out-" + name));
    return ExperimentConfig::load(write(name + ".yaml", text), overrides);
  }

  ExperimentConfig config(const std::string& topology, const std::string& name,
                          const std::string& extra, std::vector<std::string> overrides = {}) {
    auto c = load(topology, name, extra, std::move(overrides));
    EXPECT_TRUE(c.is_ok()) << c.status();
    return c.is_ok() ? *c : ExperimentConfig{};
  }

  static RunOptions quiet() {
    RunOptions o;
    o.quiet = true;
    return o;
  }

  // The fixed-point bound of a secure total of `terms` workers (no dropouts:
  // divided by a weight fraction of 1), plus float32 rounding of global +
  // delta and of the plain fold.
  static double bound(size_t terms) { return privacy::FixedPoint(20).error_bound(terms) + 2e-6; }

  testing::TempDir dir_;
};

// A function registry with the real functions, whose `train` on the named
// workers runs (so the worker masks and puts its vector) and then fails: a
// worker dropping out after masking.
class DropAfterMasking {
 public:
  explicit DropAfterMasking(std::set<std::string> drop) : drop_(std::move(drop)) {
    faas::add_builtin_functions(registry_);
    register_functions(registry_);
    real_ = *registry_.find("train");
    registry_.add("train", [this](const json& args, const faas::TaskContext& ctx) {
      auto out = real_(args, ctx);
      if (out.is_ok() && drop_.count(args.at("node").get<std::string>())) {
        ++dropped_;
        return StatusOr<json>(unavailable("dropped out after masking"));
      }
      return out;
    });
  }
  faas::FunctionRegistry& registry() { return registry_; }
  int dropped() const { return dropped_; }

 private:
  std::set<std::string> drop_;
  faas::FunctionRegistry registry_;
  faas::Function real_;
  std::atomic<int> dropped_{0};
};

TEST_F(SecureTest, ConfigErrorsSayWhy) {
  auto expect_error = [&](const std::string& name, const std::string& extra,
                          std::vector<std::string> overrides, const std::string& want) {
    auto c = load(kFlat, name, extra, std::move(overrides));
    ASSERT_FALSE(c.is_ok()) << name;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << c.status();
  };
  expect_error("async", kSecure, {"mode=async", "strategy.name=fedasync"},
               "privacy.secure_aggregation: needs mode: sync");
  for (const char* robust : {"median", "trimmed_mean", "krum", "multi_krum"}) {
    expect_error(robust, kSecure, {std::string("strategy.name=") + robust},
                 std::string("strategy ") + robust + " does not fold a weighted sum");
  }
  // topk is refused here whatever the compression layer accepts on its own.
  expect_error("topk", kSecure + std::string("compression: {encoding: topk}\n"), {}, "topk");
  ExperimentConfig topk = config(kFlat, "topk-check", kSecure);
  topk.compression.encoding = transport::Encoding::kTopK;
  EXPECT_NE(secure_conflict(topk).find("compression topk: the sparsity pattern"),
            std::string::npos);
  expect_error("dispatch", kSecure, {"debug=dispatch"}, "nothing to mask");
  // Field errors name the file, the line and the field.
  expect_error("threshold", "privacy:\n  secure_aggregation:\n    threshold: 2\n", {},
               "threshold.yaml:14: privacy.secure_aggregation.threshold: must be in (0, 1]");
  expect_error("bits", "privacy:\n  secure_aggregation: {fractional_bits: 31}\n", {},
               "privacy.secure_aggregation.fractional_bits");
  expect_error("typo", "privacy:\n  secure_aggregation: {neighbors: 4}\n", {}, "neighbours");
  expect_error("line", kSecure, {"strategy.name=median"},
               "line.yaml:13: privacy.secure_aggregation");

  // Allowed: DP in every placement, fp16/int8, `true` for the defaults.
  for (const char* placement : {"coordinator", "distributed", "local"}) {
    auto c = load(kFlat, std::string("dp-") + placement,
                  kSecure + std::string("  dp: {placement: ") + placement + "}\n");
    EXPECT_TRUE(c.is_ok()) << c.status();
  }
  auto int8 = load(kFlat, "int8", kSecure + std::string("compression: {encoding: int8}\n"));
  EXPECT_TRUE(int8.is_ok()) << int8.status();
  auto defaults = load(kFlat, "defaults", "privacy: {secure_aggregation: true}\n");
  ASSERT_TRUE(defaults.is_ok()) << defaults.status();
  ASSERT_TRUE(defaults->secure.has_value());
  EXPECT_EQ(defaults->secure->neighbours, 0);
  EXPECT_EQ(defaults->secure->threshold, 0.5);
  EXPECT_EQ(defaults->secure->fractional_bits, 20);
  auto back = ExperimentConfig::from_json(defaults->to_json());
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->to_json(), defaults->to_json());
  auto off = load(kFlat, "disabled", "privacy: {secure_aggregation: false}\n");
  ASSERT_TRUE(off.is_ok()) << off.status();
  EXPECT_FALSE(off->secure.has_value());
}

TEST_F(SecureTest, UnmaskedTotalEqualsPlainFedAvgWithinTheFixedPointBound) {
  auto plain = run_experiment(config(kFlat, "plain", ""), quiet());
  ASSERT_TRUE(plain.is_ok()) << plain.status();
  auto secure = run_experiment(config(kFlat, "secure", kSecure), quiet());
  ASSERT_TRUE(secure.is_ok()) << secure.status();
  const double diff = max_abs_diff(plain->final_model, secure->final_model);
  EXPECT_LE(diff, bound(8));
  EXPECT_GT(diff, 0);  // it is the fixed-point path, not the plain one
  const auto row = rounds(*secure).at(0);
  EXPECT_EQ(row.returned, 8);
  EXPECT_NEAR(row.test_accuracy, rounds(*plain).at(0).test_accuracy, 0.002);
  EXPECT_EQ(secagg_secrets_held(), 0u);  // every worker revealed; its secrets are gone
}

// Modular addition is associative: whatever the tree, the coordinator
// unmasks the same integer total, so the models are identical bit for bit.
TEST_F(SecureTest, FlatAndThreeTierGiveTheSameModelBitForBit) {
  auto flat = run_experiment(config(kFlat, "flat", kSecure, {"rounds=2"}), quiet());
  ASSERT_TRUE(flat.is_ok()) << flat.status();
  auto tree = run_experiment(config(kThreeTier, "tree", kSecure, {"rounds=2"}), quiet());
  ASSERT_TRUE(tree.is_ok()) << tree.status();
  EXPECT_TRUE(flat->final_model.equal(tree->final_model));
}

// Stopped after round 1 (as if killed) and resumed from its checkpoint: the
// model of an uninterrupted run, bit for bit. The round plans (ids, masking
// graphs) derive from the run seed and the round, and the workers' fresh keys
// cancel out of the total, so the checkpoint needs no secure-aggregation state.
TEST_F(SecureTest, AResumedRunGivesTheUninterruptedModel) {
  auto c = config(kThreeTier, "resume", kSecure, {"rounds=3"});
  RunOptions full_options = quiet();
  full_options.output_dir = dir_.file("full");
  auto full = run_experiment(c, full_options);
  ASSERT_TRUE(full.is_ok()) << full.status();

  RunOptions split = quiet();
  split.output_dir = dir_.file("split");
  auto resumed = run_interrupted(c, split, 1);
  ASSERT_TRUE(resumed.is_ok()) << resumed.status();
  EXPECT_TRUE(resumed->final_model.equal(full->final_model));
  EXPECT_EQ(rounds(*resumed).size(), 3u);
  EXPECT_EQ(secagg_secrets_held(), 0u);
}

// 20 workers (masking graph k = 18, t = 9); 2 and 6 of them drop after
// masking. The survivors' mean equals plain FedAvg over the survivors.
TEST_F(SecureTest, TenAndThirtyPercentDroppedAfterMaskingAreRecovered) {
  const std::string topo = "{generate: tiers, aggregators: [4], workers: 20}";
  for (const std::set<std::string>& drop :
       {std::set<std::string>{"worker-3", "worker-17"},
        std::set<std::string>{"worker-1", "worker-4", "worker-8", "worker-11", "worker-15",
                              "worker-19"}}) {
    const std::string tag = std::to_string(drop.size());
    DropAfterMasking secure_fns(drop), plain_fns(drop);
    RunOptions o = quiet();
    o.functions = &secure_fns.registry();
    auto secure =
        run_experiment(config(topo, "drop-secure-" + tag, kSecure, {"faults.min_fraction=0.5"}), o);
    ASSERT_TRUE(secure.is_ok()) << secure.status();
    EXPECT_EQ(secure_fns.dropped(), static_cast<int>(drop.size()));
    const auto row = rounds(*secure).at(0);
    EXPECT_EQ(row.selected, 20);
    EXPECT_EQ(row.returned, 20 - static_cast<int64_t>(drop.size()));
    RunOptions p = quiet();
    p.functions = &plain_fns.registry();
    auto plain =
        run_experiment(config(topo, "drop-plain-" + tag, "", {"faults.min_fraction=0.5"}), p);
    ASSERT_TRUE(plain.is_ok()) << plain.status();
    // Survivors' weight fraction >= 0.6 here, so the bound at most doubles.
    EXPECT_LE(max_abs_diff(plain->final_model, secure->final_model), 2 * bound(20)) << tag;
  }
}

TEST_F(SecureTest, SimulatedDropoutIsRecovered) {
  auto s =
      run_experiment(config("{generate: tiers, aggregators: [4], workers: 20}", "simdrop", kSecure,
                            {"rounds=3", "heterogeneity.dropout=0.2", "faults.min_fraction=0.5"}),
                     quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  int64_t dropped = 0;
  for (const auto& r : rounds(*s)) {
    dropped += r.failed;
    EXPECT_EQ(r.returned + r.failed, 20);
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(s->final_accuracy, 0.5);
}

TEST_F(SecureTest, BelowTheThresholdTheRoundFailsCleanlyNamingTheWorker) {
  // t = k: every survivor needs all of its neighbours' shares, so one worker
  // dropping after masking leaves its neighbours' self masks unrecoverable.
  DropAfterMasking fns({"w5"});
  RunOptions o = quiet();
  o.functions = &fns.registry();
  auto s = run_experiment(
      config(kThreeTier, "below", "privacy:\n  secure_aggregation: {threshold: 1.0}\n",
             {"faults.min_fraction=0.5", "faults.on_insufficient=retry",
              "faults.max_round_retries=1"}),
      o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status();
  const std::string& m = s.status().message();
  EXPECT_NE(m.find("secure aggregation cannot unmask: worker w"), std::string::npos) << m;
  EXPECT_NE(m.find("threshold 7 of 7"), std::string::npos) << m;
  EXPECT_EQ(fns.dropped(), 2);  // the round was retried once, as faults asked
}

// What an aggregator receives and forwards: masked sums whose bytes look
// uniform; the same aggregator's partial in a plain run, in fixed point, does not.
class AggregatorView {
 public:
  AggregatorView() {
    faas::add_builtin_functions(registry_);
    register_functions(registry_);
    real_ = *registry_.find("aggregate");
    registry_.add("aggregate", [this](const json& args, const faas::TaskContext& ctx) {
      auto out = real_(args, ctx);
      if (out.is_ok() && out->value("done", true)) record(args, *out);
      return out;
    });
  }
  faas::FunctionRegistry& registry() { return registry_; }
  std::vector<ParamSet> partials() {
    std::lock_guard<std::mutex> lock(mu_);
    return partials_;
  }

 private:
  void record(const json& args, const json& result) {
    auto a = AggregateArgs::from_json(args);
    auto r = AggregateResult::from_json(result);
    ASSERT_TRUE(a.is_ok() && r.is_ok());
    auto store = store_for(a->put.connector);
    ASSERT_TRUE(store.is_ok());
    auto p = (*store)->get(r->update);
    ASSERT_TRUE(p.is_ok()) << p.status();
    std::lock_guard<std::mutex> lock(mu_);
    partials_.push_back(p->clone());
  }

  faas::FunctionRegistry registry_;
  faas::Function real_;
  std::mutex mu_;
  std::vector<ParamSet> partials_;
};

TEST_F(SecureTest, AnAggregatorsViewPassesAUniformityTestAndAPlainOneFails) {
  AggregatorView secure_view, plain_view;
  RunOptions o = quiet();
  o.functions = &secure_view.registry();
  ASSERT_TRUE(run_experiment(config(kThreeTier, "view", kSecure), o).is_ok());
  auto masked = secure_view.partials();
  ASSERT_EQ(masked.size(), 2u);
  for (const auto& p : masked) {
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].name, kMaskedTensor);
    ASSERT_EQ(p[0].tensor.scalar_type(), at::kInt);
    const auto* words = reinterpret_cast<const uint32_t*>(p[0].tensor.data_ptr<int32_t>());
    EXPECT_LT(privacy::byte_chi_square(words, static_cast<size_t>(p[0].tensor.numel())),
              kChiCritical);
  }
  o.functions = &plain_view.registry();
  ASSERT_TRUE(run_experiment(config(kThreeTier, "view-plain", ""), o).is_ok());
  auto plain = plain_view.partials();
  ASSERT_EQ(plain.size(), 2u);
  // The plain partial mean in the same fixed point: the test has power.
  const privacy::FixedPoint fp(20);
  for (const auto& p : plain) {
    std::vector<uint32_t> words;
    for (const auto& e : p) {
      std::vector<uint32_t> part(static_cast<size_t>(e.tensor.numel()));
      fp.encode(e.tensor.data_ptr<float>(), part.size(), 1.0, part.data());
      words.insert(words.end(), part.begin(), part.end());
    }
    EXPECT_GT(privacy::byte_chi_square(words.data(), words.size()), 10 * kChiCritical);
  }
}

// Distributed DP: each worker adds its share of the noise before masking.
// Seeded noise makes the plain DP run the reference: the same model within
// the bound, the same adaptive clip norm (the clip bits travel masked) and ε.
TEST_F(SecureTest, DistributedDpComposesWithSecureAggregation) {
  const std::string dp = R"(  dp:
    clip_norm: 0.5
    noise_multiplier: 1.0
    placement: distributed
    adaptive: {target_quantile: 0.5, learning_rate: 0.5, count_noise_fraction: 0.5}
)";
  auto plain = run_experiment(config(kThreeTier, "dp-plain", "privacy:\n" + dp), quiet());
  ASSERT_TRUE(plain.is_ok()) << plain.status();
  auto secure = run_experiment(config(kThreeTier, "dp-secure", kSecure + dp), quiet());
  ASSERT_TRUE(secure.is_ok()) << secure.status();
  EXPECT_LE(max_abs_diff(plain->final_model, secure->final_model), bound(8));
  auto summary = [](const RunSummary& s) {
    std::ifstream in(s.output_dir + "/summary.json");
    return json::parse(in);
  };
  EXPECT_EQ(summary(*plain)["privacy"]["final_clip_norm"],
            summary(*secure)["privacy"]["final_clip_norm"]);
  EXPECT_EQ(summary(*plain)["privacy"]["epsilon"], summary(*secure)["privacy"]["epsilon"]);
}

// fp16: the worker quantises and dequantises as a plain fp16 run does, then
// encodes in fixed point.
TEST_F(SecureTest, Fp16CompressionComposes) {
  const std::string fp16 = "compression: {encoding: fp16}\n";
  auto plain = run_experiment(config(kThreeTier, "fp16-plain", fp16), quiet());
  ASSERT_TRUE(plain.is_ok()) << plain.status();
  auto secure = run_experiment(config(kThreeTier, "fp16-secure", fp16 + kSecure), quiet());
  ASSERT_TRUE(secure.is_ok()) << secure.status();
  // The plain run also rounds its partial aggregates to fp16 on the way up.
  EXPECT_LE(max_abs_diff(plain->final_model, secure->final_model), 2e-3);
}

// One secure run over the REST control plane — a service, one `flight
// endpoint` process per edge, weights through redis — gives the embedded
// run's model bit for bit.
TEST_F(SecureTest, SecureRoundsOverRestMatchTheEmbeddedRun) {
  testing::RedisServer redis;
  const std::string token_file = write("token", "s3cret-token\n");
  faas::ServiceOptions so;
  so.token = "s3cret-token";
  faas::Service service(so);
  ASSERT_TRUE(service.start().is_ok());
  std::vector<std::unique_ptr<testing::Subprocess>> endpoints;
  for (const char* name : {"edge-a", "edge-b"}) {
    testing::Subprocess::Options po;
    po.stderr_path = dir_.file(std::string("endpoint-") + name + ".log");
    endpoints.push_back(std::make_unique<testing::Subprocess>(
        std::vector<std::string>{FLIGHT_BINARY, "endpoint", "--service", service.url(),
                                 "--token-file", token_file, "--name", name, "--threads", "1"},
        po));
  }
  auto local = run_experiment(config(kThreeTier, "local", kSecure, {"rounds=2"}), quiet());
  ASSERT_TRUE(local.is_ok()) << local.status();
  auto dist = run_experiment(
      config(
          kThreeTier, "dist", kSecure,
          {"rounds=2", "control.rest.url=" + service.url(), "control.rest.token_file=" + token_file,
           "data_plane.connector.kind=redis", "data_plane.connector.host=127.0.0.1",
           "data_plane.connector.port=" + std::to_string(redis.port())}),
      quiet());
  ASSERT_TRUE(dist.is_ok()) << dist.status();
  EXPECT_TRUE(local->final_model.equal(dist->final_model));
  for (const auto& r : rounds(*dist)) EXPECT_EQ(r.returned, 8);
  for (auto& e : endpoints) e->signal(SIGTERM);
  for (auto& e : endpoints) EXPECT_NE(e->wait_for(std::chrono::seconds(30)), -1);
}

}  // namespace
}  // namespace flight::engine
