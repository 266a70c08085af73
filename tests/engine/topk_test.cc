// Top-k sparsification with error feedback (compression: {encoding: topk};
// flight/engine/error_feedback.h): the error-feedback invariant at the
// worker, the residual rules (retry, undelivered send, unknown round), the
// config errors, and short real runs on Fashion-MNIST — fraction 1.0 against
// the float32 run, flat against 3-tier, resume against an uninterrupted run,
// and the bytes the sparse updates save.
#include <gtest/gtest.h>

#include <ATen/ops/add.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "flight/engine/config.h"
#include "flight/engine/error_feedback.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/params/param_ops.h"
#include "tests/engine/params_diff.h"
#include "tests/engine/run_rows.h"
#include "tests/engine/topologies.h"
#include "tests/support/process.h"

namespace flight::engine {
namespace {

using nlohmann::json;

transport::EncodeOptions topk(double fraction) {
  transport::EncodeOptions o;
  o.encoding = transport::Encoding::kTopK;
  o.topk_fraction = fraction;
  return o;
}

ParamSet layout(const at::Tensor& a, const at::Tensor& b) {
  ParamSet p;
  p.add("a", a);
  p.add("b", b);
  return p;
}

TrainArgs args_for(int64_t worker, int64_t round, std::optional<int64_t> delivered) {
  TrainArgs a;
  a.node = "w" + std::to_string(worker);
  a.worker_index = worker;
  a.round = round;
  a.ef_round = delivered;
  return a;
}

int64_t nonzeros(const ParamSet& p) {
  int64_t n = 0;
  for (const auto& e : p) n += e.tensor.ne(0).sum().item<int64_t>();
  return n;
}

TEST(ErrorFeedback, SentPlusResidualIsExactlyTheSumOfTheTrueDeltas) {
  // Dyadic deltas (multiples of 2^-8 below 2^8): every float sum here is
  // exact, so the identity must hold bit for bit, not approximately.
  at::manual_seed(3);
  const std::string job = "job-topk-invariant";
  const ParamSet global = layout(at::zeros({300}), at::zeros({20, 10}));
  ParamSet sent_sum = layout(at::zeros({300}), at::zeros({20, 10}));
  ParamSet delta_sum = sent_sum.clone();
  int64_t delivered = 0;
  for (int64_t round = 1; round <= 6; ++round) {
    const ParamSet trained = layout(at::randint(-2048, 2048, {300}).div(256.0),
                                    at::randint(-2048, 2048, {20, 10}).div(256.0));
    auto sent =
        error_feedback_delta(job, args_for(0, round, delivered), topk(0.05), global, trained);
    ASSERT_TRUE(sent.is_ok()) << sent.status();
    // k = ceil(0.05 n) per tensor: 15 + 10 (ties may make a kept value 0).
    EXPECT_LE(nonzeros(*sent), 25);
    ASSERT_TRUE(add_scaled(sent_sum, *sent, 1.0).is_ok());
    ASSERT_TRUE(add_scaled(delta_sum, trained, 1.0).is_ok());
    delivered = round;
  }
  ParamSet total = sent_sum.clone();
  ASSERT_TRUE(add_scaled(total, residual_for(job, 0, delivered), 1.0).is_ok());
  EXPECT_TRUE(total.equal(delta_sum));
}

TEST(ErrorFeedback, EachRoundSplitsDeltaPlusResidualExactly) {
  // Any float values: sent + new residual == delta + old residual, bit for
  // bit, every round (each element is in exactly one of the two).
  at::manual_seed(4);
  const std::string job = "job-topk-split";
  const ParamSet global = layout(at::randn({1000}), at::randn({10, 30}));
  int64_t delivered = 0;
  for (int64_t round = 1; round <= 4; ++round) {
    const ParamSet trained = layout(at::add(global[0].tensor, at::randn({1000}), 0.01),
                                    at::add(global[1].tensor, at::randn({10, 30}), 0.01));
    const ParamSet before = residual_for(job, 1, delivered);
    auto sent =
        error_feedback_delta(job, args_for(1, round, delivered), topk(0.01), global, trained);
    ASSERT_TRUE(sent.is_ok()) << sent.status();
    ParamSet expect = *subtract(trained, global);
    if (!before.empty()) ASSERT_TRUE(add_scaled(expect, before, 1.0).is_ok());
    ParamSet got = sent->clone();
    ASSERT_TRUE(add_scaled(got, residual_for(job, 1, round), 1.0).is_ok());
    EXPECT_TRUE(got.equal(expect)) << "round " << round;
    EXPECT_EQ(nonzeros(*sent), 10 + 3);
    delivered = round;
  }
}

TEST(ErrorFeedback, UndeliveredSendsAreRolledBackAndUnknownRoundsStartFromZero) {
  at::manual_seed(5);
  const std::string job = "job-topk-rollback";
  const ParamSet global = layout(at::zeros({100}), at::zeros({4, 5}));
  auto trained = [](int seed) {
    at::manual_seed(seed);
    return layout(at::randn({100}), at::randn({4, 5}));
  };
  auto r1 = error_feedback_delta(job, args_for(2, 1, 0), topk(0.1), global, trained(1));
  ASSERT_TRUE(r1.is_ok());
  // Round 2 twice from delivered round 1 (a retried attempt): the same send.
  auto r2 = error_feedback_delta(job, args_for(2, 2, 1), topk(0.1), global, trained(2));
  auto r2_again = error_feedback_delta(job, args_for(2, 2, 1), topk(0.1), global, trained(2));
  ASSERT_TRUE(r2.is_ok() && r2_again.is_ok());
  EXPECT_TRUE(r2->equal(*r2_again));
  // Round 3 while the coordinator still says round 1 (round 2's update was
  // dropped): continues from round 1's residual, as if round 2 never sent.
  const ParamSet after_one = residual_for(job, 2, 1);
  ASSERT_FALSE(after_one.empty());
  auto r3 = error_feedback_delta(job, args_for(2, 3, 1), topk(0.1), global, trained(3));
  ASSERT_TRUE(r3.is_ok());
  ParamSet expect = *subtract(trained(3), global);
  ASSERT_TRUE(add_scaled(expect, after_one, 1.0).is_ok());
  ParamSet got = r3->clone();
  ASSERT_TRUE(add_scaled(got, residual_for(job, 2, 3), 1.0).is_ok());
  EXPECT_TRUE(got.equal(expect));
  // A round this process never saw: zero residual, i.e. top-k of the delta.
  auto fresh = error_feedback_delta(job, args_for(7, 5, 4), topk(0.1), global, trained(5));
  auto plain = error_feedback_delta(job, args_for(8, 5, 0), topk(0.1), global, trained(5));
  ASSERT_TRUE(fresh.is_ok() && plain.is_ok());
  EXPECT_TRUE(fresh->equal(*plain));
  EXPECT_TRUE(residual_for(job, 9, 3).empty());
}

class TopKTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  }

  // MLP on Fashion-MNIST, 8 workers (flat, or in two aggregators), 15 SGD
  // steps a task, half of them selected a round.
  std::string config_text(const std::string& name, const std::string& extra, bool flat) {
    write(name + "-topo.yaml", flat ? kFlat : kThreeTier);
    return "name: " + name + "\ntopology: " + name + "-topo.yaml\n" + R"(seed: 5
model: {name: mlp}
data:
  dataset: fashion_mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 15}
strategy: {name: fedavg, participation: 0.5}
rounds: 3
threads: 2
output: {checkpoint_every: 1}
)" + extra;
  }

  StatusOr<ExperimentConfig> load(const std::string& name, const std::string& extra,
                                  std::vector<std::string> overrides = {}, bool flat = false) {
    overrides.push_back("output.dir=" + dir_.file("out-" + name));
    return ExperimentConfig::load(write(name + ".yaml", config_text(name, extra, flat)), overrides);
  }

  RunSummary run(const std::string& name, const std::string& extra,
                 std::vector<std::string> overrides = {}, bool flat = false) {
    auto c = load(name, extra, std::move(overrides), flat);
    EXPECT_TRUE(c.is_ok()) << c.status();
    if (!c.is_ok()) return RunSummary{};
    RunOptions o;
    o.quiet = true;
    auto s = run_experiment(*c, o);
    EXPECT_TRUE(s.is_ok()) << s.status();
    return s.is_ok() ? *s : RunSummary{};
  }

  // Runs `c` uninterrupted into `name`-full, then stopped after `stop_after`
  // rounds and resumed into `name`-split; returns both final models.
  std::pair<ParamSet, ParamSet> full_and_resumed(const ExperimentConfig& c, const std::string& name,
                                                 int64_t stop_after) {
    RunOptions full_options;
    full_options.quiet = true;
    full_options.output_dir = dir_.file(name + "-full");
    auto full = run_experiment(c, full_options);
    EXPECT_TRUE(full.is_ok()) << full.status();
    RunOptions first = full_options;
    first.output_dir = dir_.file(name + "-split");
    first.stop_after_rounds = stop_after;
    EXPECT_TRUE(run_experiment(c, first).is_ok());
    // The checkpoint carries the residuals the workers continue from.
    bool residuals = false;
    namespace fs = std::filesystem;
    for (const auto& f : fs::recursive_directory_iterator(first.output_dir + "/checkpoints")) {
      residuals |= f.path().filename().string().find("topk_residuals") != std::string::npos;
    }
    EXPECT_TRUE(residuals);
    RunOptions rest = first;
    rest.stop_after_rounds = 0;
    rest.resume = true;
    // The resumed run reads the residuals from the checkpoint: load_state
    // replaces whatever this process's table holds for the job.
    auto resumed = run_experiment(c, rest);
    EXPECT_TRUE(resumed.is_ok()) << resumed.status();
    if (!full.is_ok() || !resumed.is_ok()) return {};
    last_full_ = full->output_dir;
    return {full->final_model, resumed->final_model};
  }

  testing::TempDir dir_;
  std::string last_full_;  // output dir of full_and_resumed's uninterrupted run
};

const char* kTopK = "compression: {encoding: topk, topk_fraction: 0.01}\n";

TEST_F(TopKTest, ConfigErrorsNameTheFieldTheLineAndWhy) {
  auto median = load("median", kTopK, {"strategy.name=median"});
  ASSERT_FALSE(median.is_ok());
  EXPECT_NE(median.status().message().find("median.yaml:13: compression.encoding: topk does not "
                                           "fit strategy median"),
            std::string::npos)
      << median.status();
  auto krum = load("krum", kTopK, {"strategy.name=krum"});
  ASSERT_FALSE(krum.is_ok());
  EXPECT_NE(krum.status().message().find("krum's distances"), std::string::npos) << krum.status();

  auto async = load("async", kTopK, {"mode=async", "strategy.name=fedasync"});
  ASSERT_FALSE(async.is_ok());
  EXPECT_NE(async.status().message().find("topk needs mode: sync"), std::string::npos)
      << async.status();

  auto dp = load("dp", std::string(kTopK) + "privacy: {dp: {clip_norm: 1.0}}\n");
  ASSERT_FALSE(dp.is_ok());
  EXPECT_NE(dp.status().message().find("no longer bounded by clip_norm"), std::string::npos)
      << dp.status();

  auto fraction = load("fraction", "compression: {encoding: topk, topk_fraction: 1.5}\n");
  ASSERT_FALSE(fraction.is_ok());
  EXPECT_NE(fraction.status().message().find("topk_fraction"), std::string::npos)
      << fraction.status();

  // Server optimizers fold a weighted mean: accepted, and round-trip.
  auto adam = load("adam", kTopK, {"strategy.name=fedadam"});
  ASSERT_TRUE(adam.is_ok()) << adam.status();
  EXPECT_EQ(adam->compression.encoding, transport::Encoding::kTopK);
  auto back = ExperimentConfig::from_json(adam->to_json());
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->to_json(), adam->to_json());
  // The same check on a config built in code (validate()).
  ExperimentConfig bad = *adam;
  bad.strategy.name = "trimmed_mean";
  EXPECT_NE(bad.validate().message().find("compression.encoding: topk does not fit strategy "
                                          "trimmed_mean"),
            std::string::npos)
      << bad.validate();
}

// Fraction 1.0 sends the whole delta (residual 0): global + mean(trained -
// global) instead of mean(trained), the same up to float32 rounding.
TEST_F(TopKTest, FractionOneMatchesTheFloat32Run) {
  const RunSummary raw = run("raw", "");
  const RunSummary all = run("all", "compression: {encoding: topk, topk_fraction: 1.0}\n");
  ASSERT_FALSE(raw.final_model.empty());
  ASSERT_FALSE(all.final_model.empty());
  EXPECT_FALSE(all.final_model.equal(raw.final_model));  // deltas really were sent
  const double diff = max_rel_diff(all.final_model, raw.final_model);
  EXPECT_LE(diff, 1e-5) << "3 rounds; largest |weight| about 0.3";
  EXPECT_NEAR(all.final_accuracy, raw.final_accuracy, 0.002);
  // Dense deltas travel raw (the sparse encoding falls back): the same bytes.
  const auto r = rounds(raw), a = rounds(all);
  ASSERT_EQ(r.size(), a.size());
  EXPECT_EQ(a[0].bytes_put, r[0].bytes_put);
}

TEST_F(TopKTest, FlatEqualsThreeTierAndUpdatesAreSparse) {
  const RunSummary tree = run("tree", kTopK);
  const RunSummary flat = run("flat", kTopK, {}, /*flat=*/true);
  ASSERT_FALSE(tree.final_model.empty());
  ASSERT_FALSE(flat.final_model.empty());
  // The aggregators' partial means travel losslessly (sparse_varint), so only the
  // float32 summation order differs.
  EXPECT_LE(max_rel_diff(tree.final_model, flat.final_model), 1e-6);

  const RunSummary raw = run("dense", "");
  const auto t = rounds(tree), d = rounds(raw);
  ASSERT_EQ(t.size(), 3u);
  ASSERT_EQ(d.size(), 3u);
  for (size_t i = 0; i < t.size(); ++i) {
    // 4 workers at ~1 % (sparse_varint: ~5 bytes per kept value) and 2 partials of at
    // most 4x that.
    EXPECT_LT(t[i].bytes_put * 8, d[i].bytes_put) << "round " << i + 1;
    EXPECT_LT(t[i].coordinator_ingress * 8, d[i].coordinator_ingress) << "round " << i + 1;
  }
}

TEST_F(TopKTest, ResumeGivesTheUninterruptedModel) {
  auto c = load("resume", kTopK, {"rounds=4"});
  ASSERT_TRUE(c.is_ok()) << c.status();
  const auto [full, resumed] = full_and_resumed(*c, "resume", 2);
  ASSERT_FALSE(full.empty());
  EXPECT_TRUE(resumed.equal(full));
}

// compression.aggregator_fraction: the aggregators top-k their partial sums
// too, with their own residuals (keyed by node, kept in the ledger and the
// checkpoint like a worker's).
TEST_F(TopKTest, AggregatorFractionShrinksIngressAndResumesExactly) {
  auto bad = load("agg-raw", "compression: {encoding: int8, aggregator_fraction: 0.01}\n");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("aggregator_fraction: only with encoding: topk"),
            std::string::npos)
      << bad.status();

  const std::string agg =
      "compression: {encoding: topk, topk_fraction: 0.01, aggregator_fraction: 0.01}\n";
  auto c = load("agg", agg, {"rounds=3"});
  ASSERT_TRUE(c.is_ok()) << c.status();
  const auto [full, resumed] = full_and_resumed(*c, "agg", 1);
  ASSERT_FALSE(full.empty());
  EXPECT_TRUE(resumed.equal(full));

  const RunSummary exact = run("agg-exact", kTopK);
  RunSummary with_partials;
  with_partials.output_dir = last_full_;
  const auto f = rounds(with_partials), e = rounds(exact);
  ASSERT_EQ(f.size(), 3u);
  ASSERT_EQ(e.size(), 3u);
  for (size_t i = 0; i < f.size(); ++i) {
    // Each partial: ~1 % of the model instead of the union of its (about
    // two) selected workers' 1 %.
    EXPECT_LT(f[i].coordinator_ingress * 10, e[i].coordinator_ingress * 7) << "round " << i + 1;
  }
  EXPECT_FALSE(full.equal(exact.final_model));
}

}  // namespace
}  // namespace flight::engine
