// Robust strategies (median, trimmed_mean, krum, multi_krum) and async ones
// (fedasync, fedbuff): hand-computed values, poisoning, NaN, the documented
// non-equivalence of hierarchical robust folds, and the async contracts.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "aggregators/strategy.h"
#include "tests/aggregators/test_util.h"

namespace flight::aggregators {
namespace {

using testing::f32;
using testing::f64;
using testing::i64;
using testing::params;
using testing::random_model;
using testing::relative_error;
using testing::values;

std::unique_ptr<Strategy> must_make(const nlohmann::json& j) {
  auto options = StrategyOptions::from_json(j);
  EXPECT_TRUE(options.is_ok()) << options.status();
  auto s = make_strategy(*options);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return std::move(s).value();
}

StatusOr<Weighted> fold(const Strategy& s, const std::vector<ParamSet>& updates,
                        const std::vector<double>& weights = {}) {
  auto agg = s.begin();
  for (size_t i = 0; i < updates.size(); ++i) {
    FLIGHT_RETURN_IF_ERROR(agg->accumulate(updates[i], weights.empty() ? 1.0 : weights[i]));
  }
  return agg->finalize();
}

std::vector<ParamSet> scalars(const std::vector<float>& v) {
  std::vector<ParamSet> out;
  for (float x : v) out.push_back(params({{"w", at::full({1}, x, at::kFloat)}}));
  return out;
}

double scalar(const Weighted& w) { return w.params[0].tensor.item<double>(); }

// ---------------------------------------------------------------- median / trimmed mean

TEST(Median, HandValuesOddEvenNanAndIntegers) {
  auto s = must_make({{"name", "median"}});
  EXPECT_TRUE(s->needs_all_updates());
  std::vector<ParamSet> u = {
      params({{"w", f32({1, 10})}, {"d", f64({1})}, {"n", i64({3})}}),
      params({{"w", f32({5, -2})}, {"d", f64({7})}, {"n", i64({8})}}),
      params({{"w", f32({3, 4})}, {"d", f64({2})}, {"n", i64({1})}}),
  };
  auto r = fold(*s, u, {100, 1, 1});  // weights do not move a median
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_EQ(values(r->params[0].tensor), (std::vector<double>{3, 4}));
  EXPECT_EQ(values(r->params[1].tensor), (std::vector<double>{2}));
  EXPECT_EQ(values(r->params[2].tensor), (std::vector<double>{8}));
  EXPECT_EQ(r->weight, 3);  // partial weight = count

  auto even = fold(*s, scalars({1, 2, 10, 20}));
  ASSERT_TRUE(even.is_ok());
  EXPECT_EQ(scalar(*even), 6);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto with_nan = fold(*s, scalars({1, nan, 2}));
  ASSERT_TRUE(with_nan.is_ok());
  EXPECT_EQ(scalar(*with_nan), 2);
}

TEST(TrimmedMean, HandValues) {
  auto s = must_make({{"name", "trimmed_mean"}, {"params", {{"beta", 0.2}}}});
  auto r = fold(*s, scalars({100, 2, 4, 1, 3}));  // trim 1 each side: mean(2, 3, 4)
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_DOUBLE_EQ(scalar(*r), 3);
  auto none = must_make({{"name", "trimmed_mean"}, {"params", {{"beta", 0.0}}}});
  auto mean = fold(*none, scalars({1, 2, 6}));
  ASSERT_TRUE(mean.is_ok());
  EXPECT_DOUBLE_EQ(scalar(*mean), 3);
  auto small = fold(*s, scalars({1, 2, 9}));  // floor(0.2 * 3) = 0 trimmed
  ASSERT_TRUE(small.is_ok());
  EXPECT_DOUBLE_EQ(scalar(*small), 4);
}

TEST(Robust, MedianAndTrimmedMeanMatchASortReferenceForManyCounts) {
  // Exercises the sorting network for every count up to 20 and a few larger
  // ones, with a coordinate count that leaves a partial block.
  std::mt19937_64 rng(123);
  auto median = must_make({{"name", "median"}});
  auto trimmed = must_make({{"name", "trimmed_mean"}, {"params", {{"beta", 0.25}}}});
  std::vector<int> counts;
  for (int k = 1; k <= 20; ++k) counts.push_back(k);
  for (int k : {31, 33, 64}) counts.push_back(k);
  for (int k : counts) {
    std::vector<ParamSet> updates;
    std::vector<at::Tensor> rows;
    for (int i = 0; i < k; ++i) {
      // Few distinct values, so ties are common.
      at::Tensor t = at::randint(-5, 6, {3, 67}, at::kLong).to(at::kFloat) +
                     static_cast<float>(rng() % 3) * 0.25f;
      updates.push_back(params({{"w", t}}));
      rows.push_back(t.reshape({-1}).to(at::kDouble));
    }
    at::Tensor sorted = std::get<0>(at::stack(rows).sort(0));
    at::Tensor expected_median = k % 2 ? sorted[k / 2] : (sorted[k / 2 - 1] + sorted[k / 2]) / 2;
    const int trim = static_cast<int>(std::floor(0.25 * k));
    at::Tensor expected_trimmed = sorted.slice(0, trim, k - trim).mean(0);
    auto m = fold(*median, updates);
    auto t = fold(*trimmed, updates);
    ASSERT_TRUE(m.is_ok() && t.is_ok());
    EXPECT_TRUE(at::allclose(m->params[0].tensor.reshape({-1}).to(at::kDouble), expected_median))
        << "k=" << k;
    EXPECT_TRUE(at::allclose(t->params[0].tensor.reshape({-1}).to(at::kDouble), expected_trimmed,
                             1e-6, 1e-6))
        << "k=" << k;
  }
}

// ---------------------------------------------------------------- krum

TEST(Krum, HandComputedScoresAndSelection) {
  // Squared distances, f = 1, n - f - 2 = 2 nearest neighbours:
  //   0: {1, 4, 100, 121} -> 5     1: {1, 1, 81, 100} -> 2     2: {4, 1, 64, 81} -> 5
  //   10: {100, 81, 64, 1} -> 65   11: {121, 100, 81, 1} -> 82
  std::vector<ParamSet> u = scalars({0, 1, 2, 10, 11});
  auto krum = must_make({{"name", "krum"}, {"params", {{"f", 1}}}});
  auto r = fold(*krum, u);
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_EQ(scalar(*r), 1);
  EXPECT_EQ(r->weight, 5);
  // multi-krum, m = 3: updates 0, 1, 2 (scores 5, 2, 5), averaged by weight.
  auto multi = must_make({{"name", "multi_krum"}, {"params", {{"f", 1}, {"m", 3}}}});
  auto mr = fold(*multi, u, {1, 1, 2, 1, 1});
  ASSERT_TRUE(mr.is_ok()) << mr.status();
  EXPECT_DOUBLE_EQ(scalar(*mr), (0 + 1 + 2 * 2) / 4.0);
  // Default m = n - f = 4 adds update 10 (score 65).
  auto multi_default = must_make({{"name", "multi_krum"}, {"params", {{"f", 1}}}});
  auto md = fold(*multi_default, u);
  ASSERT_TRUE(md.is_ok());
  EXPECT_DOUBLE_EQ(scalar(*md), (0 + 1 + 2 + 10) / 4.0);
}

TEST(Krum, TooFewUpdatesIsAClearError) {
  auto krum = must_make({{"name", "krum"}, {"params", {{"f", 1}}}});
  auto r = fold(*krum, scalars({0, 1, 2, 3}));
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(r.status().message().find("more than 2f + 2 = 4") != std::string::npos) << r.status();
  auto multi = must_make({{"name", "multi_krum"}, {"params", {{"f", 0}, {"m", 9}}}});
  auto m = fold(*multi, scalars({0, 1, 2}));
  ASSERT_FALSE(m.is_ok());
  EXPECT_TRUE(m.status().message().find("m = 9") != std::string::npos) << m.status();
}

TEST(Robust, PoisonedUpdatesStayOutOfTheResult) {
  std::mt19937_64 rng(77);
  const int honest = 11;
  const int f = 2;
  std::vector<ParamSet> updates;
  for (int i = 0; i < honest; ++i) updates.push_back(random_model(rng, 6, 10, 0.0));
  // Poison: huge values of both signs, and NaN.
  ParamSet big = random_model(rng, 6, 10, 0.0);
  for (size_t t = 0; t < 3; ++t) big[t].tensor.fill_(1e6);
  ParamSet bad = random_model(rng, 6, 10, 0.0);
  for (size_t t = 0; t < 3; ++t) bad[t].tensor.fill_(std::numeric_limits<double>::quiet_NaN());
  bad[0].tensor[0][0] = -1e6;
  updates.push_back(big);
  updates.push_back(bad);

  const std::vector<nlohmann::json> strategies = {
      {{"name", "median"}},
      {{"name", "trimmed_mean"}, {"params", {{"beta", 0.2}}}},  // trims floor(0.2*13) = 2
      {{"name", "krum"}, {"params", {{"f", f}}}},
      {{"name", "multi_krum"}, {"params", {{"f", f}}}},
  };
  for (const auto& j : strategies) {
    auto s = must_make(j);
    auto r = fold(*s, updates);
    ASSERT_TRUE(r.is_ok()) << j.dump() << r.status();
    for (size_t t = 0; t < 3; ++t) {
      at::Tensor lo = updates[0][t].tensor.to(at::kDouble), hi = lo.clone();
      for (int i = 1; i < honest; ++i) {
        lo = at::minimum(lo, updates[i][t].tensor.to(at::kDouble));
        hi = at::maximum(hi, updates[i][t].tensor.to(at::kDouble));
      }
      at::Tensor v = r->params[t].tensor.to(at::kDouble);
      EXPECT_FALSE(at::any(at::isnan(v)).item<bool>()) << j.dump();
      EXPECT_TRUE(at::all(v >= lo - 1e-6).item<bool>()) << j.dump() << " tensor " << t;
      EXPECT_TRUE(at::all(v <= hi + 1e-6).item<bool>()) << j.dump() << " tensor " << t;
    }
  }
  // The mean, for contrast, is dragged far outside.
  auto avg = fold(*must_make({{"name", "fedavg"}}), {updates[0], updates[1], big});
  ASSERT_TRUE(avg.is_ok());
  EXPECT_GT(avg->params[0].tensor.abs().max().item<double>(), 1e5);
}

TEST(Robust, HierarchicalMedianIsAMedianOfMediansNotTheFlatMedian) {
  auto s = must_make({{"name", "median"}});
  std::vector<std::vector<float>> groups = {{1, 2, 9}, {3, 4, 10}, {5, 6, 11}};
  auto root = s->begin();
  std::vector<float> all;
  for (const auto& g : groups) {
    auto partial = fold(*s, scalars(g));
    ASSERT_TRUE(partial.is_ok());
    EXPECT_EQ(partial->weight, 3);
    ASSERT_TRUE(root->accumulate(partial->params, partial->weight).is_ok());
    all.insert(all.end(), g.begin(), g.end());
  }
  auto tree = root->finalize();
  auto flat = fold(*s, scalars(all));
  ASSERT_TRUE(tree.is_ok() && flat.is_ok());
  EXPECT_EQ(scalar(*tree), 4);  // median of {2, 4, 6}
  EXPECT_EQ(scalar(*flat), 5);  // median of all nine
}

// ---------------------------------------------------------------- fedasync

TEST(FedAsync, AlphaOneWithoutStalenessTakesTheLatestUpdate) {
  auto s =
      must_make({{"name", "fedasync"}, {"params", {{"alpha", 1.0}, {"staleness", "constant"}}}});
  ASSERT_TRUE(s->is_async());
  std::mt19937_64 rng(3);
  ParamSet global = random_model(rng);
  for (int i = 0; i < 3; ++i) {
    ParamSet update = random_model(rng);
    update[3].tensor.fill_(global[3].tensor.item<int64_t>() + 1);  // counters grow
    auto r = s->merge(global, AsyncUpdate{update, ParamSet(), 50, 0});
    ASSERT_TRUE(r.is_ok()) << r.status();
    EXPECT_TRUE(r->applied);
    EXPECT_TRUE(r->model.equal(update));
    global = r->model;
  }
  EXPECT_EQ(s->state_json()["merges"], 3);
}

TEST(FedAsync, StalenessFunctionsHandValues) {
  ParamSet global = params({{"w", f32({0, 4})}});
  ParamSet model = params({{"w", f32({4, 8})}});
  auto check = [&](const nlohmann::json& p, int64_t staleness, double alpha_s) {
    auto s = must_make({{"name", "fedasync"}, {"params", p}});
    auto r = s->merge(global, AsyncUpdate{model, ParamSet(), 1, staleness});
    ASSERT_TRUE(r.is_ok()) << r.status();
    std::vector<double> got = values(r->model[0].tensor);
    EXPECT_NEAR(got[0], 4 * alpha_s, 1e-6) << p.dump() << " s=" << staleness;
    EXPECT_NEAR(got[1], 4 + 4 * alpha_s, 1e-6) << p.dump() << " s=" << staleness;
  };
  check({{"alpha", 0.5}, {"staleness", "constant"}}, 7, 0.5);
  check({{"alpha", 0.5}, {"staleness", "polynomial"}, {"a", 0.5}}, 3, 0.25);  // 0.5 * 4^-0.5
  check({{"alpha", 0.8}, {"staleness", "polynomial"}, {"a", 1.0}}, 0, 0.8);
  check({{"alpha", 0.6}, {"staleness", "hinge"}, {"a", 10}, {"b", 4}}, 4, 0.6);
  check({{"alpha", 0.6}, {"staleness", "hinge"}, {"a", 10}, {"b", 4}}, 6, 0.6 / 21);
  auto s = must_make({{"name", "fedasync"}});
  EXPECT_FALSE(s->merge(global, AsyncUpdate{model, ParamSet(), 1, -1}).is_ok());
  auto wrong = s->merge(global, AsyncUpdate{params({{"v", f32({1, 1})}}), ParamSet(), 1, 0});
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_TRUE(wrong.status().message().find("'v'") != std::string::npos) << wrong.status();
}

// ---------------------------------------------------------------- fedbuff

TEST(FedBuff, FullBufferWithoutStalenessIsOneFedAvgRound) {
  std::mt19937_64 rng(11);
  const int workers = 6;
  auto buff =
      must_make({{"name", "fedbuff"}, {"params", {{"buffer_size", workers}, {"server_lr", 1.0}}}});
  auto fedavg = must_make({{"name", "fedavg"}});
  ParamSet global = random_model(rng, 8, 20, 0.3);
  std::vector<ParamSet> trained;
  std::vector<double> weights;
  for (int i = 0; i < workers; ++i) {
    trained.push_back(random_model(rng, 8, 20, 0.3));
    weights.push_back(buff->worker_weight(100 + 37 * i));
  }
  ParamSet current = global;
  for (int i = 0; i < workers; ++i) {
    auto r = buff->merge(current, AsyncUpdate{trained[i], global, weights[i], 0});
    ASSERT_TRUE(r.is_ok()) << r.status();
    if (i + 1 < workers) {
      EXPECT_FALSE(r->applied);
      EXPECT_EQ(r->buffered, static_cast<size_t>(i + 1));
      EXPECT_TRUE(r->model.equal(global));
    } else {
      EXPECT_TRUE(r->applied);
      EXPECT_EQ(r->buffered, 0u);
    }
    current = r->model;
  }
  auto round = fold(*fedavg, trained, weights);
  ASSERT_TRUE(round.is_ok());
  auto sync = fedavg->server_update(global, *round);
  ASSERT_TRUE(sync.is_ok());
  EXPECT_LE(relative_error(current, *sync), 1e-6);
  // Counters: max over the buffered models and the global.
  int64_t max_counter = global[3].tensor.item<int64_t>();
  for (const auto& t : trained) max_counter = std::max(max_counter, t[3].tensor.item<int64_t>());
  EXPECT_EQ(current[3].tensor.item<int64_t>(), max_counter);
}

TEST(FedBuff, StalenessScalingServerLrAndCheckpointMidBuffer) {
  auto make = [] {
    return must_make(
        {{"name", "fedbuff"}, {"params", {{"buffer_size", 2}, {"server_lr", 0.5}, {"a", 1.0}}}});
  };
  auto s = make();
  ParamSet global = params({{"w", f32({1})}});
  ParamSet base = params({{"w", f32({0})}});
  auto first = s->merge(global, AsyncUpdate{params({{"w", f32({2})}}), base, 1, 0});
  ASSERT_TRUE(first.is_ok()) << first.status();
  EXPECT_FALSE(first->applied);
  // Restart between the two updates: the buffer is part of the checkpoint.
  auto restored = make();
  ASSERT_TRUE(restored->load_state(s->state_json(), s->state_tensors().clone()).is_ok());
  // Second update: delta 8, staleness 3 -> factor (1 + 3)^-1 = 0.25 -> 2, weight 3.
  // w = 1 + 0.5 * (1 * 2 + 3 * 2) / (1 + 3) = 2.
  for (auto* strategy : {s.get(), restored.get()}) {
    auto second = strategy->merge(global, AsyncUpdate{params({{"w", f32({8})}}), base, 3, 3});
    ASSERT_TRUE(second.is_ok()) << second.status();
    EXPECT_TRUE(second->applied);
    EXPECT_DOUBLE_EQ(second->model[0].tensor.item<double>(), 2.0);
  }
  auto missing = s->merge(global, AsyncUpdate{params({{"w", f32({2})}}), ParamSet(), 1, 0});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_TRUE(missing.status().message().find("base") != std::string::npos) << missing.status();
  EXPECT_FALSE(
      s->load_state({{"strategy", "fedbuff"}, {"buffered", 5}, {"weight_sum", 1}, {"applied", 0}},
                    ParamSet())
          .is_ok());
  // A damaged checkpoint names the field, and a misspelt one gets a "did you mean".
  Status negative = s->load_state(
      {{"strategy", "fedbuff"}, {"buffered", 0}, {"weight_sum", 0}, {"applied", -1}}, ParamSet());
  EXPECT_NE(negative.message().find("strategy 'fedbuff' state.applied"), std::string::npos)
      << negative;
  Status misspelt = s->load_state(
      {{"strategy", "fedbuff"}, {"buffered", 0}, {"weight_sum", 0}, {"aplied", 0}}, ParamSet());
  EXPECT_NE(misspelt.message().find("did you mean 'applied'"), std::string::npos) << misspelt;
}

TEST(FedBuff, ZeroTotalWeightIsAnErrorAndDropsTheBuffer) {
  auto s = must_make({{"name", "fedbuff"}, {"params", {{"buffer_size", 2}}}});
  ParamSet g = params({{"w", f32({1})}});
  ASSERT_TRUE(s->merge(g, AsyncUpdate{g, g, 0, 0}).is_ok());
  auto r = s->merge(g, AsyncUpdate{g, g, 0, 0});
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(r.status().message().find("total weight of zero") != std::string::npos) << r.status();
  EXPECT_EQ(s->state_json()["buffered"], 0);
}

TEST(AsyncStrategies, SynchronousServerStepMixes) {
  ParamSet global = params({{"w", f32({0, 2})}});
  Weighted agg{params({{"w", f32({4, 6})}}), 3};
  auto fa = must_make({{"name", "fedasync"}, {"params", {{"alpha", 0.25}}}});
  auto r = fa->server_update(global, agg);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values((*r)[0].tensor), (std::vector<double>{1, 3}));
  auto fb = must_make({{"name", "fedbuff"}, {"params", {{"server_lr", 0.5}}}});
  auto rb = fb->server_update(global, agg);
  ASSERT_TRUE(rb.is_ok());
  EXPECT_EQ(values((*rb)[0].tensor), (std::vector<double>{2, 4}));
}

}  // namespace
}  // namespace flight::aggregators
