// Differential privacy in the engine (privacy.dp): the worker's clipping hook,
// the config errors, and short real runs on Fashion-MNIST — epsilon in
// rounds.csv and summary.json, every update's norm bounded by C as the fold
// receives it, the epsilon budget stop, determinism, and resume keeping the
// accountant and the adaptive clip norm.
#include <gtest/gtest.h>

#include <ATen/ops/full.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <fstream>
#include <mutex>

#include "flight/engine/config.h"
#include "flight/engine/dp_hooks.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/engine/task_process.h"
#include "flight/engine/tasks.h"
#include "flight/faas/functions.h"
#include "flight/params/param_ops.h"
#include "flight/privacy/rdp_accountant.h"
#include "tests/engine/interrupted_run.h"
#include "tests/engine/run_rows.h"
#include "tests/engine/topologies.h"
#include "tests/support/process.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using nlohmann::json;

ParamSet two_tensors(double fill_a, double fill_b) {
  ParamSet p;
  p.add("a", at::full({100}, fill_a));
  p.add("b", at::full({10, 10}, fill_b));
  p.add("steps", at::zeros({1}, at::kLong));
  return p;
}

TEST(DpHook, ClipsTheDeltaToTheClipNormAndReportsTheBit) {
  const ParamSet global = two_tensors(1.0, -1.0);
  // delta: 0.1 on 200 elements: norm 0.1 * sqrt(200) = 1.414.
  ParamSet update = two_tensors(1.1, -0.9);
  DpTask dp;
  dp.clip_norm = 0.5;
  auto unclipped = privatize_update(dp, 1, 0, 1, global, &update);
  ASSERT_TRUE(unclipped.is_ok()) << unclipped.status();
  EXPECT_FALSE(*unclipped);
  EXPECT_NEAR(std::sqrt(*squared_distance(update, global)), 0.5, 1e-5);
  // The direction is kept: every element moved by the same amount.
  EXPECT_NEAR(update[0].tensor[0].item<float>(), 1.0 + 0.5 / std::sqrt(200.0), 1e-6);

  ParamSet small = two_tensors(1.01, -0.99);  // norm 0.141 < 0.5: unchanged
  ParamSet before = small.clone();
  unclipped = privatize_update(dp, 1, 0, 1, global, &small);
  ASSERT_TRUE(unclipped.is_ok());
  EXPECT_TRUE(*unclipped);
  EXPECT_LT(std::sqrt(*squared_distance(small, before)), 1e-6);
}

TEST(DpHook, WorkerNoiseIsSeededByRunWorkerAndRound) {
  const ParamSet global = two_tensors(0, 0);
  DpTask dp;
  dp.clip_norm = 1;
  dp.noise_stddev = 0.3;
  auto noised = [&](uint64_t seed, int64_t worker, int64_t round) {
    ParamSet u = global.clone();
    EXPECT_TRUE(privatize_update(dp, seed, worker, round, global, &u).is_ok());
    return u;
  };
  const ParamSet a = noised(7, 3, 2);
  EXPECT_TRUE(a.equal(noised(7, 3, 2)));
  EXPECT_FALSE(a.equal(noised(7, 4, 2)));
  EXPECT_FALSE(a.equal(noised(7, 3, 3)));
  EXPECT_FALSE(a.equal(noised(8, 3, 2)));
  // 200 N(0, 0.09) draws: sum of squares 18 +- 1.8 (standard error), and
  // the integer tensor is untouched.
  const double sq = *squared_distance(a, global);
  EXPECT_NEAR(sq, 200 * 0.09, 4 * 1.8);
  EXPECT_EQ(a[2].tensor.item<int64_t>(), 0);
}

class DpTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  }

  // MLP on Fashion-MNIST, 8 workers in two aggregators, 15 SGD steps a task.
  std::string config_text(const std::string& name, const std::string& extra) {
    write("topo.yaml", kThreeTier);
    return "name: " + name + R"(
seed: 5
topology: topo.yaml
model: {name: mlp}
data:
  dataset: fashion_mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 15}
strategy: {name: fedavg, participation: 0.5}
rounds: 2
threads: 2
)" + extra;
  }

  StatusOr<ExperimentConfig> load(const std::string& name, const std::string& extra,
                                  std::vector<std::string> overrides = {}) {
    overrides.push_back("output.dir=" + dir_.file("out-" + name));
    return ExperimentConfig::load(write(name + ".yaml", config_text(name, extra)), overrides);
  }

  ExperimentConfig config(const std::string& name, const std::string& extra,
                          std::vector<std::string> overrides = {}) {
    auto c = load(name, extra, std::move(overrides));
    EXPECT_TRUE(c.is_ok()) << c.status();
    return c.is_ok() ? *c : ExperimentConfig{};
  }

  static RunOptions quiet() {
    RunOptions o;
    o.quiet = true;
    return o;
  }

  static json summary_json(const RunSummary& s) {
    std::ifstream in(s.output_dir + "/summary.json");
    return json::parse(in);
  }

  static double epsilon_after(int rounds, double q, double z, double delta = 1e-5) {
    privacy::RdpAccountant a;
    EXPECT_TRUE(a.compose(q, z, rounds).is_ok());
    return a.epsilon(delta);
  }

  testing::TempDir dir_;
};

const char* kCoordinatorDp = R"(privacy:
  dp: {clip_norm: 0.5, noise_multiplier: 1.0, placement: coordinator, delta: 1.0e-5}
)";

TEST_F(DpTest, ConfigErrorsNameTheFieldTheLineAndWhy) {
  auto median = load("median", kCoordinatorDp, {"strategy.name=median"});
  ASSERT_FALSE(median.is_ok());
  EXPECT_NE(median.status().message().find("median.yaml:13: privacy.dp: strategy median"),
            std::string::npos)
      << median.status();
  EXPECT_NE(median.status().message().find("sensitivity"), std::string::npos);

  auto async = load("async", kCoordinatorDp, {"mode=async", "strategy.name=fedasync"});
  ASSERT_FALSE(async.is_ok());
  EXPECT_NE(async.status().message().find("privacy.dp: needs mode: sync"), std::string::npos)
      << async.status();

  auto local_adaptive = load("la", R"(privacy:
  dp: {placement: local, adaptive: true}
)");
  ASSERT_FALSE(local_adaptive.is_ok());
  EXPECT_NE(local_adaptive.status().message().find("local DP does not trust"), std::string::npos)
      << local_adaptive.status();

  auto delta = load("delta", R"(privacy:
  dp:
    clip_norm: 1
    delta: 2
)");
  ASSERT_FALSE(delta.is_ok());
  EXPECT_NE(delta.status().message().find("delta.yaml:15: privacy.dp.delta: must be in (0, 1)"),
            std::string::npos)
      << delta.status();

  auto placement = load("placement", R"(privacy:
  dp: {placement: sideways}
)");
  ASSERT_FALSE(placement.is_ok());
  EXPECT_NE(placement.status().message().find("privacy.dp.placement"), std::string::npos);

  auto typo = load("typo", R"(privacy:
  dp: {clip_nrom: 1}
)");
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("clip_norm"), std::string::npos) << typo.status();

  // Defaults are documented and round-trip through the resolved config.
  auto c = load("ok", "privacy: {dp: {}}\n");
  ASSERT_TRUE(c.is_ok()) << c.status();
  ASSERT_TRUE(c->dp.has_value());
  EXPECT_EQ(c->dp->clip_norm, 1.0);
  EXPECT_EQ(c->dp->placement, privacy::NoisePlacement::kCoordinator);
  auto back = ExperimentConfig::from_json(c->to_json());
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->to_json(), c->to_json());
  auto off = load("nodp", "");
  ASSERT_TRUE(off.is_ok()) << off.status();
  EXPECT_FALSE(off->dp.has_value());
}

TEST_F(DpTest, EpsilonGoesIntoRoundsCsvAndSummaryAndRerunsAreIdentical) {
  auto c = config("eps", kCoordinatorDp);
  auto a = run_experiment(c, quiet());
  ASSERT_TRUE(a.is_ok()) << a.status();
  ASSERT_EQ(a->rounds_completed, 2);
  auto rows = rounds(*a);
  ASSERT_EQ(rows.size(), 2u);
  // 4 of 8 workers a round (q = 0.5), z = 1: the accountant's own figures.
  EXPECT_DOUBLE_EQ(rows[0].epsilon, epsilon_after(1, 0.5, 1.0));
  EXPECT_DOUBLE_EQ(rows[1].epsilon, epsilon_after(2, 0.5, 1.0));
  EXPECT_LT(rows[0].epsilon, rows[1].epsilon);
  const json s = summary_json(*a);
  EXPECT_DOUBLE_EQ(s["privacy"]["epsilon"].get<double>(), rows[1].epsilon);
  EXPECT_EQ(s["privacy"]["rounds_accounted"], 2);
  EXPECT_EQ(s["privacy"]["placement"], "coordinator");
  EXPECT_EQ(s["stop_reason"], "");

  RunOptions again = quiet();
  again.output_dir = dir_.file("eps-again");
  auto b = run_experiment(c, again);
  ASSERT_TRUE(b.is_ok()) << b.status();
  EXPECT_TRUE(a->final_model.equal(b->final_model));

  // The noise is real: without it the model differs.
  auto plain =
      run_experiment(config("eps0", kCoordinatorDp, {"privacy.dp.noise_multiplier=0"}), quiet());
  ASSERT_TRUE(plain.is_ok()) << plain.status();
  EXPECT_FALSE(plain->final_model.equal(a->final_model));
  EXPECT_TRUE(std::isinf(rounds(*plain)[0].epsilon));
}

// A registry whose `train` is the real one, and which measures, as the fold
// will receive it, how far each worker's update is from the global model.
class MeasuringTrain {
 public:
  MeasuringTrain() {
    faas::add_builtin_functions(registry_);
    register_functions(registry_);
    real_ = *registry_.find("train");
    registry_.add("train", [this](const json& args, const faas::TaskContext& ctx) {
      auto out = real_(args, ctx);
      if (out.is_ok()) check(args, *out);
      return out;
    });
  }
  faas::FunctionRegistry& registry() { return registry_; }
  double worst_ratio() const { return worst_; }
  int clipped() const { return clipped_; }
  int updates() const { return updates_; }

 private:
  void check(const json& args_json, const json& result_json) {
    auto args = TrainArgs::from_json(args_json);
    auto result = TrainResult::from_json(result_json);
    ASSERT_TRUE(args.is_ok() && result.is_ok());
    ASSERT_TRUE(args->dp.has_value()) << "train task without its dp part";
    auto store = store_for(args->put.connector);
    ASSERT_TRUE(store.is_ok());
    auto global = (*store)->get(args->model);
    auto update = (*store)->get(result->update);
    ASSERT_TRUE(global.is_ok() && update.is_ok());
    const double norm = std::sqrt(*squared_distance(*update, *global));
    std::lock_guard<std::mutex> lock(mu_);
    worst_ = std::max(worst_, norm / args->dp->clip_norm);
    clipped_ += result->dp_unclipped == false;
    EXPECT_EQ(result->weight, 1.0);
    ++updates_;
  }

  faas::FunctionRegistry registry_;
  faas::Function real_;
  std::mutex mu_;
  double worst_ = 0;
  int clipped_ = 0, updates_ = 0;
};

TEST_F(DpTest, EveryUpdateTheFoldReceivesIsWithinTheClipNorm) {
  MeasuringTrain train;
  RunOptions o = quiet();
  o.functions = &train.registry();
  // Clip far below the trained deltas' norms, so the bound is what holds them.
  auto s = run_experiment(config("clip", R"(privacy:
  dp: {clip_norm: 0.05, noise_multiplier: 0.5}
)"),
                          o);
  ASSERT_TRUE(s.is_ok()) << s.status();
  EXPECT_EQ(train.updates(), 8);
  EXPECT_EQ(train.clipped(), 8);
  EXPECT_LE(train.worst_ratio(), 1 + 1e-4);
  EXPECT_GT(train.worst_ratio(), 0.99);
}

TEST_F(DpTest, BudgetStopsBeforeTheRoundThatWouldExceedIt) {
  const double one = epsilon_after(1, 0.5, 1.0), two = epsilon_after(2, 0.5, 1.0);
  auto s = run_experiment(
      config("budget", kCoordinatorDp,
             {"rounds=3", "privacy.dp.epsilon_budget=" + std::to_string((one + two) / 2)}),
      quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  EXPECT_EQ(s->rounds_completed, 1);
  EXPECT_NE(s->stop_reason.find("privacy.dp.epsilon_budget: round 2 would bring epsilon"),
            std::string::npos)
      << s->stop_reason;
  EXPECT_EQ(rounds(*s).size(), 1u);
  const json j = summary_json(*s);
  EXPECT_EQ(j["rounds_completed"], 1);
  EXPECT_EQ(j["stop_reason"], s->stop_reason);
  EXPECT_LE(j["privacy"]["epsilon"].get<double>(), (one + two) / 2);
  EXPECT_TRUE(std::ifstream(s->output_dir + "/model.pt").good());
}

TEST_F(DpTest, ResumeKeepsTheAccountantAndTheAdaptiveClipNorm) {
  // Distributed noise and adaptive clipping: the workers' noise and the clip
  // norm both depend on the state carried across the checkpoint.
  const std::string dp = R"(privacy:
  dp:
    clip_norm: 0.2
    noise_multiplier: 1.0
    placement: distributed
    adaptive: {target_quantile: 0.5, learning_rate: 0.5, count_noise_fraction: 0.5}
)";
  auto c = config("resume", dp, {"rounds=3"});
  RunOptions full_options = quiet();
  full_options.output_dir = dir_.file("full");
  auto full = run_experiment(c, full_options);
  ASSERT_TRUE(full.is_ok()) << full.status();
  const json full_summary = summary_json(*full);
  EXPECT_NE(full_summary["privacy"]["final_clip_norm"].get<double>(), 0.2);

  RunOptions split = quiet();
  split.output_dir = dir_.file("split");
  auto resumed = run_interrupted(c, split, 1);
  ASSERT_TRUE(resumed.is_ok()) << resumed.status();
  EXPECT_TRUE(resumed->final_model.equal(full->final_model));
  const json resumed_summary = summary_json(*resumed);
  EXPECT_EQ(resumed_summary["privacy"]["epsilon"], full_summary["privacy"]["epsilon"]);
  EXPECT_EQ(resumed_summary["privacy"]["final_clip_norm"],
            full_summary["privacy"]["final_clip_norm"]);
  EXPECT_EQ(resumed_summary["privacy"]["rounds_accounted"], 3);
}

}  // namespace
}  // namespace flight::engine
