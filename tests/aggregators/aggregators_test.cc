// Strategies: options and registry, selection, the weighted-mean fold and its
// errors, hierarchical equivalence, FedProx's gradient, server optimizers
// against the paper's rules, and the conformance suite every strategy passes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "aggregators/strategy.h"
#include "flight/params/param_ops.h"
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
  if (!options.is_ok()) return nullptr;
  auto s = make_strategy(*options);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// ---------------------------------------------------------------- param ops

TEST(ParamOps, FusedKernelsMatchHandValues) {
  ParamSet acc = params({{"w", f32({1, 2, 3})}, {"d", f64({1, 1})}, {"n", i64({3, 9})}});
  ParamSet x = params({{"w", f32({10, 20, 30})}, {"d", f64({2, 4})}, {"n", i64({5, 1})}});
  ASSERT_TRUE(add_scaled(acc, x, 0.5).is_ok());
  EXPECT_EQ(values(acc[0].tensor), (std::vector<double>{6, 12, 18}));
  EXPECT_EQ(values(acc[1].tensor), (std::vector<double>{2, 3}));
  EXPECT_EQ(values(acc[2].tensor), (std::vector<double>{5, 9}));  // max, not averaged
  ASSERT_TRUE(axpby(acc, 2, x, -1).is_ok());
  EXPECT_EQ(values(acc[0].tensor), (std::vector<double>{2, 4, 6}));
  EXPECT_EQ(values(acc[1].tensor), (std::vector<double>{2, 2}));
  scale(acc, 0.25);
  EXPECT_EQ(values(acc[0].tensor), (std::vector<double>{0.5, 1, 1.5}));
  EXPECT_EQ(values(acc[2].tensor), (std::vector<double>{5, 9}));
  auto diff = subtract(x, acc);
  ASSERT_TRUE(diff.is_ok()) << diff.status();
  EXPECT_EQ(values((*diff)[0].tensor), (std::vector<double>{9.5, 19, 28.5}));
  auto d2 = squared_distance(x, acc);
  ASSERT_TRUE(d2.is_ok());
  EXPECT_DOUBLE_EQ(*d2, 9.5 * 9.5 + 19 * 19 + 28.5 * 28.5 + 1.5 * 1.5 + 3.5 * 3.5);
  ParamSet z = zeros_like(x);
  EXPECT_EQ(values(z[0].tensor), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(z[2].tensor.scalar_type(), at::kLong);
}

TEST(ParamOps, BoolIsOredAndHalfIsAccumulatedWide) {
  at::Tensor mask = at::tensor(std::vector<uint8_t>{0, 1, 0}, at::kByte).to(at::kBool);
  at::Tensor other = at::tensor(std::vector<uint8_t>{1, 0, 0}, at::kByte).to(at::kBool);
  add_scaled_(mask, other, 123.0);
  EXPECT_EQ(values(mask.to(at::kLong)), (std::vector<double>{1, 1, 0}));
  at::Tensor acc = at::zeros({2}, at::kFloat);
  add_scaled_(acc, f32({1.5, 2.5}).to(at::kHalf), 2.0);
  EXPECT_EQ(values(acc), (std::vector<double>{3, 5}));
}

TEST(ParamOps, ParallelPathMatchesATen) {
  // Large enough to be split across the intra-op threads.
  at::Tensor acc = at::randn({1 << 19});
  at::Tensor x = at::randn({1 << 19});
  at::Tensor expected = acc + 0.375 * x;
  at::Tensor got = acc.clone();
  add_scaled_(got, x, 0.375);
  EXPECT_TRUE(at::allclose(got, expected, 1e-6, 1e-6));
  at::Tensor y = acc.clone();
  axpby_(y, 0.25, x, 0.5);
  EXPECT_TRUE(at::allclose(y, 0.25 * acc + 0.5 * x, 1e-6, 1e-6));
  divide_(y, 3.0);
  EXPECT_TRUE(at::allclose(y, (0.25 * acc + 0.5 * x) / 3.0, 1e-6, 1e-6));
  ParamSet a = params({{"t", acc}});
  ParamSet b = params({{"t", x}});
  auto d2 = squared_distance(a, b);
  ASSERT_TRUE(d2.is_ok());
  double ref = (acc.to(at::kDouble) - x.to(at::kDouble)).pow(2).sum().item<double>();
  EXPECT_NEAR(*d2, ref, 1e-6 * ref);  // float32 differences, float lanes per block
}

TEST(ParamOps, ParallelChunksCoverTheRangeOnceAndRethrow) {
  const int64_t n = (1 << 20) + 17;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  parallel_chunks(n, 1024, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mu);
    ranges.emplace_back(b, e);
  });
  std::sort(ranges.begin(), ranges.end());
  ASSERT_FALSE(ranges.empty());
  EXPECT_EQ(ranges.front().first, 0);
  EXPECT_EQ(ranges.back().second, n);
  for (size_t i = 0; i + 1 < ranges.size(); ++i) {
    EXPECT_EQ(ranges[i].second, ranges[i + 1].first);  // tiles [0, n), no overlap
    EXPECT_GE(ranges[i].second - ranges[i].first, 1024);
  }
  EXPECT_EQ(ranges.size() > 1, param_ops_threads() > 1);
  EXPECT_THROW(parallel_chunks(n, 1024,
                               [&](int64_t b, int64_t) {
                                 if (b > 0) throw std::runtime_error("chunk failed");
                               }),
               std::runtime_error);
}

TEST(ParamOps, ConcurrentFoldsAreIndependentAndMatchOneThread) {
  // Several aggregator tasks fold at once (the engine runs them on a pool);
  // each result must equal the single-threaded fold bit for bit.
  std::mt19937_64 rng(9);
  std::vector<ParamSet> updates;
  for (int i = 0; i < 6; ++i) {
    updates.push_back(params({{"w", at::randn({300000})}, {"b", at::randn({7})}}));
  }
  auto fold = [&](int offset) {
    auto s = make_strategy(StrategyOptions{});
    auto agg = (*s)->begin();
    for (size_t i = 0; i < updates.size(); ++i) {
      EXPECT_TRUE(agg->accumulate(updates[(i + offset) % updates.size()], 1.0 + i).is_ok());
    }
    return std::move(agg->finalize().value().params);
  };
  set_param_ops_threads(1);
  std::vector<ParamSet> serial;
  for (int t = 0; t < 4; ++t) serial.push_back(fold(t));
  set_param_ops_threads(0);
  EXPECT_GE(param_ops_threads(), 1);
  std::vector<ParamSet> parallel(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { parallel[t] = fold(t); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(parallel[t].equal(serial[t])) << t;
}

TEST(ParamOps, IncompatibleOperandsNameTheTensorAndLeaveTheDestination) {
  ParamSet acc = params({{"a", f32({1, 2})}, {"b", f32({1, 2})}});
  ParamSet x = params({{"a", f32({1, 2})}, {"b", f32({1, 2, 3})}});
  Status s = add_scaled(acc, x, 1.0);
  ASSERT_FALSE(s.is_ok());
  EXPECT_TRUE(contains(s.message(), "'b'")) << s;
  EXPECT_EQ(values(acc[0].tensor), (std::vector<double>{1, 2}));
  ParamSet c = params({{"z", at::zeros({2}, at::kComplexFloat)}});
  Status cs = add_scaled(c, c, 1.0);
  ASSERT_FALSE(cs.is_ok());
  EXPECT_TRUE(contains(cs.message(), "'z'")) << cs;
}

// ---------------------------------------------------------------- options & registry

TEST(StrategyOptions, ParsesDefaultsShorthandAndRoundTrips) {
  auto d = StrategyOptions::from_json(nlohmann::json::object());
  ASSERT_TRUE(d.is_ok()) << d.status();
  EXPECT_EQ(d->name, "fedavg");
  EXPECT_EQ(d->participation, 1.0);
  EXPECT_EQ(d->min_workers, 1);
  auto s = StrategyOptions::from_json("median");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->name, "median");
  nlohmann::json j = {{"name", "fedadam"},
                      {"participation", 0.25},
                      {"min_workers", 3},
                      {"params", {{"server_lr", 0.5}}}};
  auto o = StrategyOptions::from_json(j);
  ASSERT_TRUE(o.is_ok()) << o.status();
  EXPECT_EQ(o->to_json(), j);
  auto back = StrategyOptions::from_json(o->to_json());
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->to_json(), j);
}

TEST(StrategyOptions, RejectsBadInputWithTheKeyNamed) {
  auto unknown = StrategyOptions::from_json({{"name", "fedavg"}, {"participaton", 0.5}});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_TRUE(contains(unknown.status().message(), "participaton")) << unknown.status();
  EXPECT_TRUE(contains(unknown.status().message(), "did you mean 'participation'"))
      << unknown.status();
  for (const nlohmann::json& bad :
       {nlohmann::json{{"participation", 0}}, nlohmann::json{{"participation", -1}},
        nlohmann::json{{"participation", 2.5}}, nlohmann::json{{"participation", "all"}},
        nlohmann::json{{"min_workers", 0}}, nlohmann::json{{"min_workers", 1.5}},
        nlohmann::json{{"name", 3}}, nlohmann::json{{"params", 3}}, nlohmann::json(42)}) {
    auto r = StrategyOptions::from_json(bad);
    EXPECT_FALSE(r.is_ok()) << bad.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad.dump();
  }
}

TEST(Registry, KnowsEveryStrategyAndSuggestsNames) {
  std::vector<std::string> expected = {
      "fedadagrad", "fedadam", "fedasync", "fedavg", "fedavgm",    "fedbuff",     "fedprox",
      "fedsgd",     "fedyogi", "krum",     "median", "multi_krum", "trimmed_mean"};
  EXPECT_EQ(strategy_names(), expected);
  StrategyOptions o;
  o.name = "fedavgg";
  auto s = make_strategy(o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(s.status().message(), "did you mean 'fedavg'")) << s.status();
}

TEST(Registry, ValidatesStrategyParams) {
  struct Case {
    nlohmann::json options;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{{"name", "fedadam"}, {"params", {{"beta_1", 0.9}}}}, "did you mean 'beta1'"},
      {{{"name", "fedavg"}, {"params", {{"mu", 0.1}}}}, "unknown key 'mu'"},
      {{{"name", "fedprox"}, {"params", {{"mu", "big"}}}}, "params.mu: expected a finite number"},
      {{{"name", "fedprox"}, {"params", {{"mu", -1}}}}, "params.mu: must be >= 0"},
      {{{"name", "fedadam"}, {"params", {{"beta2", 1.0}}}}, "params.beta2"},
      {{{"name", "fedadagrad"}, {"params", {{"beta2", 0.9}}}}, "unknown key 'beta2'"},
      {{{"name", "fedyogi"}, {"params", {{"tau", 0}}}}, "params.tau"},
      {{{"name", "fedavgm"}, {"params", {{"momentum", 1.5}}}}, "params.momentum"},
      {{{"name", "fedasync"}, {"params", {{"staleness", "hinj"}}}}, "did you mean 'hinge'"},
      {{{"name", "fedasync"}, {"params", {{"alpha", 0}}}}, "params.alpha"},
      {{{"name", "fedasync"}, {"params", {{"staleness", "polynomial"}, {"b", 2}}}}, "params.b"},
      {{{"name", "fedbuff"}, {"params", {{"buffer_size", 0}}}}, "params.buffer_size"},
      {{{"name", "fedbuff"}, {"params", {{"buffer_size", 2.5}}}}, "expected an integer"},
      {{{"name", "trimmed_mean"}, {"params", {{"beta", 0.5}}}}, "params.beta"},
      {{{"name", "krum"}, {"params", {{"m", 2}}}}, "unknown key 'm'"},
      {{{"name", "multi_krum"}, {"params", {{"f", -1}}}}, "params.f"},
  };
  for (const auto& c : cases) {
    auto o = StrategyOptions::from_json(c.options);
    ASSERT_TRUE(o.is_ok()) << o.status();
    auto s = make_strategy(*o);
    ASSERT_FALSE(s.is_ok()) << c.options.dump();
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(s.status().message(), c.needle))
        << c.options.dump() << " -> " << s.status();
  }
  auto adam = must_make({{"name", "fedadam"}});
  EXPECT_EQ(adam->params_json(), (nlohmann::json{{"server_lr", 0.01},
                                                 {"beta1", 0.9},
                                                 {"beta2", 0.99},
                                                 {"tau", 1e-3},
                                                 {"initial_accumulator", 1e-6}}));
}

// ---------------------------------------------------------------- selection

TEST(Select, FractionCountMinimumAndReproducibility) {
  std::mt19937_64 rng(7);
  auto frac = must_make({{"participation", 0.3}});
  auto picked = frac->select(10, 0, rng);
  EXPECT_EQ(picked.size(), 3u);
  EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
  EXPECT_EQ(std::set<size_t>(picked.begin(), picked.end()).size(), 3u);
  for (size_t i : picked) EXPECT_LT(i, 10u);
  EXPECT_EQ(frac->select(1, 0, rng).size(), 1u);  // at least one
  EXPECT_TRUE(frac->select(0, 0, rng).empty());

  auto count = must_make({{"participation", 4}});
  EXPECT_EQ(count->select(100, 0, rng).size(), 4u);
  EXPECT_EQ(count->select(3, 0, rng).size(), 3u);  // capped at what exists
  auto min5 = must_make({{"participation", 0.1}, {"min_workers", 5}});
  EXPECT_EQ(min5->select(20, 0, rng).size(), 5u);
  auto all = must_make({{"participation", 1.0}});
  EXPECT_EQ(all->select(6, 0, rng), (std::vector<size_t>{0, 1, 2, 3, 4, 5}));

  std::mt19937_64 a(99), b(99);
  EXPECT_EQ(frac->select(1000, 3, a), frac->select(1000, 3, b));
}

TEST(Select, SamplesUniformly) {
  auto s = must_make({{"participation", 0.2}});
  std::mt19937_64 rng(1234);
  std::vector<int> hits(10, 0);
  const int rounds = 5000;
  for (int r = 0; r < rounds; ++r) {
    for (size_t i : s->select(10, r, rng)) ++hits[i];
  }
  // Each worker is picked with probability 0.2: 1000 expected, sd ~ 28.
  for (int h : hits) {
    EXPECT_GT(h, 850);
    EXPECT_LT(h, 1150);
  }
}

// ---------------------------------------------------------------- the fold

TEST(WeightedMean, HandComputedFedAvgAndFedSgd) {
  auto fedavg = must_make({{"name", "fedavg"}});
  auto agg = fedavg->begin();
  ParamSet u1 = params({{"w", f32({1, 2})}, {"n", i64({4})}});
  ParamSet u2 = params({{"w", f32({3, 4})}, {"n", i64({7})}});
  ASSERT_TRUE(agg->accumulate(u1, fedavg->worker_weight(10)).is_ok());
  ASSERT_TRUE(agg->accumulate(u2, fedavg->worker_weight(30)).is_ok());
  EXPECT_EQ(agg->count(), 2u);
  auto r = agg->finalize();
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_EQ(r->weight, 40);
  EXPECT_EQ(values(r->params[0].tensor), (std::vector<double>{2.5, 3.5}));  // (1*10+3*30)/40
  EXPECT_EQ(r->params[1].tensor.scalar_type(), at::kLong);
  EXPECT_EQ(values(r->params[1].tensor), (std::vector<double>{7}));  // max
  // The inputs are untouched.
  EXPECT_EQ(values(u1[0].tensor), (std::vector<double>{1, 2}));

  auto fedsgd = must_make({{"name", "fedsgd"}});
  EXPECT_EQ(fedsgd->worker_weight(10), 1.0);
  auto a2 = fedsgd->begin();
  ASSERT_TRUE(a2->accumulate(u1, fedsgd->worker_weight(10)).is_ok());
  ASSERT_TRUE(a2->accumulate(u2, fedsgd->worker_weight(30)).is_ok());
  auto r2 = a2->finalize();
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ(values(r2->params[0].tensor), (std::vector<double>{2, 3}));
  EXPECT_EQ(r2->weight, 2);
  auto next = fedavg->server_update(u1, *r);
  ASSERT_TRUE(next.is_ok());
  EXPECT_TRUE(next->equal(r->params));
}

TEST(WeightedMean, HalfPrecisionModelsStayHalf) {
  auto s = must_make({{"name", "fedavg"}});
  auto agg = s->begin();
  ASSERT_TRUE(agg->accumulate(params({{"w", f32({1, 2}).to(at::kHalf)}}), 1).is_ok());
  ASSERT_TRUE(agg->accumulate(params({{"w", f32({2, 5}).to(at::kHalf)}}), 3).is_ok());
  auto r = agg->finalize();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->params[0].tensor.scalar_type(), at::kHalf);
  EXPECT_EQ(values(r->params[0].tensor), (std::vector<double>{1.75, 4.25}));
}

TEST(WeightedMean, ErrorsAreClearAndRejectedUpdatesChangeNothing) {
  auto s = must_make({{"name", "fedavg"}});
  {
    auto agg = s->begin();
    auto r = agg->finalize();
    ASSERT_FALSE(r.is_ok());
    EXPECT_TRUE(contains(r.status().message(), "no updates")) << r.status();
  }
  {
    auto agg = s->begin();
    ASSERT_TRUE(agg->accumulate(params({{"w", f32({1})}}), 0).is_ok());
    ASSERT_TRUE(agg->accumulate(params({{"w", f32({2})}}), 0).is_ok());
    auto r = agg->finalize();
    ASSERT_FALSE(r.is_ok());
    EXPECT_TRUE(contains(r.status().message(), "total weight of zero")) << r.status();
  }
  {
    auto agg = s->begin();
    Status neg = agg->accumulate(params({{"w", f32({1})}}), -1);
    EXPECT_FALSE(neg.is_ok());
    EXPECT_TRUE(contains(neg.message(), "weight")) << neg;
    EXPECT_FALSE(agg->accumulate(params({{"w", f32({1})}}), std::nan("")).is_ok());
    EXPECT_EQ(agg->count(), 0u);
  }
  auto agg = s->begin();
  ParamSet good = params({{"conv.weight", f32({1, 1})}, {"conv.bias", f32({2})}});
  ASSERT_TRUE(agg->accumulate(good, 1).is_ok());
  struct Bad {
    ParamSet update;
    std::vector<std::string> needles;
  };
  std::vector<Bad> bad;
  bad.push_back({params({{"conv.weight", f32({1, 1, 1})}, {"conv.bias", f32({2})}}),
                 {"'conv.weight'", "Float[3]", "Float[2]"}});
  bad.push_back({params({{"conv.weight", f64({1, 1})}, {"conv.bias", f32({2})}}),
                 {"'conv.weight'", "Double[2]"}});
  bad.push_back({params({{"conv.weight", f32({1, 1})}, {"fc.bias", f32({2})}}),
                 {"'fc.bias'", "'conv.bias'"}});
  bad.push_back({params({{"conv.weight", f32({1, 1})}}), {"missing tensor 'conv.bias'"}});
  bad.push_back({params({{"conv.weight", f32({1, 1})}, {"conv.bias", f32({2})}, {"x", f32({0})}}),
                 {"extra tensor 'x'"}});
  for (const auto& b : bad) {
    Status st = agg->accumulate(b.update, 1);
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(st.message(), "update 1")) << st;
    for (const auto& n : b.needles) EXPECT_TRUE(contains(st.message(), n)) << st << " / " << n;
  }
  ASSERT_TRUE(
      agg->accumulate(params({{"conv.weight", f32({3, 5})}, {"conv.bias", f32({4})}}), 1).is_ok());
  EXPECT_EQ(agg->count(), 2u);
  auto r = agg->finalize();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values(r->params[0].tensor), (std::vector<double>{2, 3}));
  EXPECT_FALSE(agg->finalize().is_ok());
  EXPECT_FALSE(agg->accumulate(good, 1).is_ok());
}

// ---------------------------------------------------------------- hierarchical equivalence

// A random tree of the given depth: an inner node has 1-4 children, each
// either a worker (leaf) or, above the last level, another aggregator.
struct Node {
  std::vector<Node> children;
  ParamSet model;  // workers only
  int64_t n_samples = 0;
};

Node random_tree(std::mt19937_64& rng, int depth, int max_depth) {
  Node node;
  const int n_children = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n_children; ++i) {
    // The first child of each node at depth < max_depth recurses, so the tree
    // really has the requested depth.
    const bool inner = depth + 1 < max_depth && (i == 0 || rng() % 2 == 0);
    if (inner) {
      node.children.push_back(random_tree(rng, depth + 1, max_depth));
    } else {
      Node leaf;
      leaf.model = random_model(rng, 8, 25, (rng() % 3 == 0) ? 0.0 : 0.5);
      leaf.n_samples = 1 + static_cast<int64_t>(rng() % 5000);
      node.children.push_back(std::move(leaf));
    }
  }
  return node;
}

void collect_leaves(const Node& n, std::vector<const Node*>& out) {
  if (n.children.empty()) {
    out.push_back(&n);
    return;
  }
  for (const auto& c : n.children) collect_leaves(c, out);
}

StatusOr<Weighted> fold_tree(const Strategy& s, const Node& n) {
  auto agg = s.begin();
  for (const auto& c : n.children) {
    if (c.children.empty()) {
      FLIGHT_RETURN_IF_ERROR(agg->accumulate(c.model, s.worker_weight(c.n_samples)));
    } else {
      FLIGHT_ASSIGN_OR_RETURN(Weighted partial, fold_tree(s, c));
      FLIGHT_RETURN_IF_ERROR(agg->accumulate(partial.params, partial.weight));
    }
  }
  return agg->finalize();
}

TEST(HierarchicalEquivalence, RandomTreesEqualTheFlatFold) {
  std::mt19937_64 rng(2024);
  for (const std::string name : {"fedavg", "fedsgd", "fedprox"}) {
    auto s = must_make({{"name", name}});
    for (int trial = 0; trial < 24; ++trial) {
      const int depth = 1 + trial % 4;
      Node root = random_tree(rng, 0, depth);
      std::vector<const Node*> leaves;
      collect_leaves(root, leaves);
      auto flat_agg = s->begin();
      double total = 0;
      for (const Node* l : leaves) {
        ASSERT_TRUE(flat_agg->accumulate(l->model, s->worker_weight(l->n_samples)).is_ok());
        total += s->worker_weight(l->n_samples);
      }
      auto flat = flat_agg->finalize();
      ASSERT_TRUE(flat.is_ok()) << flat.status();
      auto tree = fold_tree(*s, root);
      ASSERT_TRUE(tree.is_ok()) << tree.status();
      EXPECT_DOUBLE_EQ(tree->weight, total);
      EXPECT_DOUBLE_EQ(flat->weight, total);
      const double err = relative_error(tree->params, flat->params);
      EXPECT_LE(err, 1e-6) << name << " depth " << depth << " leaves " << leaves.size();
      // Integer tensors: the max over all workers, through any tree.
      int64_t max_counter = 0;
      for (const Node* l : leaves) {
        max_counter = std::max(max_counter, l->model[3].tensor.item<int64_t>());
      }
      EXPECT_EQ(tree->params[3].tensor.item<int64_t>(), max_counter);
      // And both agree with the exact (float64) weighted mean.
      at::Tensor exact = at::zeros({8, 25}, at::kDouble);
      for (const Node* l : leaves) {
        exact += s->worker_weight(l->n_samples) * l->model[0].tensor.to(at::kDouble);
      }
      exact /= total;
      const double exact_err =
          (flat->params[0].tensor.to(at::kDouble) - exact).abs().max().item<double>() /
          exact.abs().max().item<double>();
      EXPECT_LE(exact_err, 1e-6) << name;
    }
  }
}

// ---------------------------------------------------------------- fedprox

TEST(FedProx, PenaltyHasTheRealGradient) {
  auto s = must_make({{"name", "fedprox"}, {"params", {{"mu", 0.5}}}});
  EXPECT_EQ(s->params_json(), (nlohmann::json{{"mu", 0.5}}));
  auto hook = s->worker_hook();
  ASSERT_NE(hook, nullptr);
  ParamSet global = params({{"w", f32({1, 2, 3})}, {"b", f32({0.5})}, {"n", i64({3})}});
  hook->begin(global);
  // Training mutates the global's storage in place in some trainers: the hook
  // must have kept its own anchor.
  at::Tensor w = f32({2, 0, 3}).requires_grad_(true);
  at::Tensor b = f32({1.5}).requires_grad_(true);
  global[0].tensor.add_(100);
  ParamSet current = params({{"w", w}, {"b", b}});
  at::Tensor penalty = hook->penalty(current);
  // mu/2 * ((2-1)^2 + (0-2)^2 + 0 + (1.5-0.5)^2) = 0.25 * 6
  EXPECT_DOUBLE_EQ(penalty.item<double>(), 1.5);
  // A loss plus the penalty: the gradient is the loss's plus mu (w - w_global).
  at::Tensor loss = (w * f32({1, 1, 1})).sum() + penalty;
  loss.backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{1 + 0.5, 1 - 1.0, 1 + 0}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{0.5}));

  auto zero = must_make({{"name", "fedprox"}, {"params", {{"mu", 0}}}})->worker_hook();
  zero->begin(global);
  EXPECT_EQ(zero->penalty(current).item<double>(), 0.0);
  EXPECT_EQ(must_make({{"name", "fedavg"}})->worker_hook(), nullptr);
}

// ---------------------------------------------------------------- server optimizers

// The paper's rules on plain doubles, one coordinate at a time.
struct Reference {
  std::string kind;
  double lr, b1, b2, tau, v0;
  std::vector<double> m, v;
  std::vector<double> step(const std::vector<double>& x, const std::vector<double>& agg) {
    if (m.empty()) {
      m.assign(x.size(), 0);
      v.assign(x.size(), v0);
    }
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = agg[i] - x[i];
      if (kind == "fedavgm") {
        m[i] = b1 * m[i] + d;
        out[i] = x[i] + lr * m[i];
        continue;
      }
      m[i] = b1 * m[i] + (1 - b1) * d;
      if (kind == "fedadam") v[i] = b2 * v[i] + (1 - b2) * d * d;
      if (kind == "fedadagrad") v[i] = v[i] + d * d;
      if (kind == "fedyogi") {
        const double diff = v[i] - d * d;
        const double sign = diff > 0 ? 1 : (diff < 0 ? -1 : 0);
        v[i] = v[i] - (1 - b2) * d * d * sign;
      }
      out[i] = x[i] + lr * m[i] / (std::sqrt(v[i]) + tau);
    }
    return out;
  }
};

TEST(ServerOptimizers, FirstThreeStepsFollowThePaper) {
  const std::vector<std::vector<double>> aggregates = {
      {1.0, -2.0, 0.5, 0.0}, {1.5, -1.0, 0.25, 0.125}, {0.0, 3.0, -0.5, 0.25}};
  for (const std::string kind : {"fedavgm", "fedadam", "fedyogi", "fedadagrad"}) {
    nlohmann::json p = kind == "fedavgm"
                           ? nlohmann::json{{"server_lr", 0.7}, {"momentum", 0.8}}
                           : nlohmann::json{{"server_lr", 0.1}, {"beta1", 0.8}, {"tau", 0.01}};
    if (kind == "fedadam" || kind == "fedyogi") p["beta2"] = 0.95;
    auto s = must_make({{"name", kind}, {"params", p}});
    Reference ref{kind,
                  p["server_lr"].get<double>(),
                  kind == "fedavgm" ? 0.8 : 0.8,
                  kind == "fedadam" || kind == "fedyogi" ? 0.95 : 0,
                  kind == "fedavgm" ? 0 : 0.01,
                  kind == "fedavgm" ? 0 : 0.01 * 0.01,
                  {},
                  {}};
    std::vector<double> x = {0.5, 0.5, -0.25, 0.0};
    std::vector<double> expected = x;
    at::Tensor g64 = at::tensor(x, at::kDouble);
    ParamSet global = params({{"w", g64}, {"w32", g64.to(at::kFloat)}, {"n", i64({2})}});
    for (int step = 0; step < 3; ++step) {
      expected = ref.step(expected, aggregates[step]);
      at::Tensor a = at::tensor(aggregates[step], at::kDouble);
      Weighted agg{params({{"w", a}, {"w32", a.to(at::kFloat)}, {"n", i64({step * 2})}}), 10};
      auto next = s->server_update(global, agg);
      ASSERT_TRUE(next.is_ok()) << next.status();
      std::vector<double> got = values((*next)[0].tensor);
      std::vector<double> got32 = values((*next)[1].tensor);
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_NEAR(got[i], expected[i], 1e-12) << kind << " step " << step << " coord " << i;
        EXPECT_NEAR(got32[i], expected[i], 1e-5) << kind << " step " << step << " coord " << i;
      }
      EXPECT_EQ((*next)[0].tensor.scalar_type(), at::kDouble);
      EXPECT_EQ((*next)[1].tensor.scalar_type(), at::kFloat);
      EXPECT_EQ((*next)[2].tensor.item<int64_t>(), std::max<int64_t>(2, step * 2));
      global = std::move(next).value();
    }
    EXPECT_EQ(s->state_json()["step"], 3);
  }
}

TEST(ServerOptimizers, FedAvgMWithoutMomentumIsFedAvg) {
  auto s = must_make({{"name", "fedavgm"}, {"params", {{"momentum", 0.0}, {"server_lr", 1.0}}}});
  ParamSet global = params({{"w", f32({1, 2})}});
  Weighted agg{params({{"w", f32({3, -1})}}), 5};
  auto next = s->server_update(global, agg);
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(values((*next)[0].tensor), (std::vector<double>{3, -1}));
}

TEST(ServerOptimizers, StateMismatchIsAnError) {
  auto s = must_make({{"name", "fedadam"}});
  ASSERT_TRUE(s->server_update(params({{"w", f32({1})}}), {params({{"w", f32({2})}}), 1}).is_ok());
  auto bad = s->server_update(params({{"v", f32({1})}}), {params({{"v", f32({2})}}), 1});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_TRUE(contains(bad.status().message(), "'v'")) << bad.status();
  auto mismatch = s->server_update(params({{"w", f32({1})}}), {params({{"w", f32({2, 3})}}), 1});
  ASSERT_FALSE(mismatch.is_ok());
  EXPECT_TRUE(contains(mismatch.status().message(), "'w'")) << mismatch.status();
}

// ---------------------------------------------------------------- conformance

class Conformance : public ::testing::TestWithParam<std::string> {};

TEST_P(Conformance, FoldServerStepStateAndErrors) {
  const std::string name = GetParam();
  auto s = must_make({{"name", name}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->name(), name);
  EXPECT_TRUE(s->params_json().is_object());
  std::mt19937_64 rng(5);
  ParamSet global = random_model(rng, 4, 6);
  std::vector<ParamSet> updates;
  for (int i = 0; i < 7; ++i) updates.push_back(random_model(rng, 4, 6, 0.1 * i));

  auto agg = s->begin();
  for (size_t i = 0; i < updates.size(); ++i) {
    ASSERT_TRUE(
        agg->accumulate(updates[i], s->worker_weight(10 + static_cast<int64_t>(i))).is_ok());
  }
  EXPECT_EQ(agg->count(), updates.size());
  auto r = agg->finalize();
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_GT(r->weight, 0);
  EXPECT_TRUE(r->params.check_compatible(global).is_ok());
  // Every floating coordinate of the aggregate lies within the updates' range,
  // and the integer counter is one of the updates' counters or their max.
  for (size_t t = 0; t < 3; ++t) {
    at::Tensor lo = updates[0][t].tensor.to(at::kDouble), hi = lo.clone();
    for (const auto& u : updates) {
      lo = at::minimum(lo, u[t].tensor.to(at::kDouble));
      hi = at::maximum(hi, u[t].tensor.to(at::kDouble));
    }
    at::Tensor v = r->params[t].tensor.to(at::kDouble);
    EXPECT_TRUE(at::all(v >= lo - 1e-5).item<bool>()) << name;
    EXPECT_TRUE(at::all(v <= hi + 1e-5).item<bool>()) << name;
  }
  EXPECT_FALSE(agg->finalize().is_ok());

  auto empty = s->begin()->finalize();
  ASSERT_FALSE(empty.is_ok());
  EXPECT_TRUE(contains(empty.status().message(), "no updates")) << empty.status();

  auto mismatched = s->begin();
  ASSERT_TRUE(mismatched->accumulate(updates[0], 1).is_ok());
  ParamSet wrong = random_model(rng, 4, 7);
  Status ms = mismatched->accumulate(wrong, 1);
  ASSERT_FALSE(ms.is_ok());
  EXPECT_TRUE(contains(ms.message(), "'fc.weight'")) << ms;

  // Server step, then checkpoint and restore: a restored strategy continues
  // exactly like the original.
  auto next = s->server_update(global, *r);
  ASSERT_TRUE(next.is_ok()) << next.status();
  EXPECT_TRUE(next->check_compatible(global).is_ok());
  if (s->is_async()) {
    AsyncUpdate u{updates[1], global, 3, 1};
    auto m = s->merge(*next, u);
    ASSERT_TRUE(m.is_ok()) << m.status();
    EXPECT_TRUE(m->model.check_compatible(global).is_ok());
  } else {
    auto m = s->merge(global, AsyncUpdate{updates[1], global, 1, 0});
    ASSERT_FALSE(m.is_ok());
    EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition);
  }
  nlohmann::json state = s->state_json();
  ParamSet tensors = s->state_tensors().clone();
  EXPECT_EQ(state["strategy"], name);
  auto restored = must_make({{"name", name}});
  Status ls = restored->load_state(nlohmann::json::parse(state.dump()), tensors);
  ASSERT_TRUE(ls.is_ok()) << ls;
  EXPECT_EQ(restored->state_json(), state);
  auto a = s->server_update(*next, *r);
  auto b = restored->server_update(*next, *r);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_TRUE(a->equal(*b)) << name;
  if (s->is_async()) {
    AsyncUpdate u{updates[2], global, 5, 0};
    auto ma = s->merge(*a, u);
    auto mb = restored->merge(*b, u);
    ASSERT_TRUE(ma.is_ok() && mb.is_ok());
    EXPECT_EQ(ma->applied, mb->applied);
    EXPECT_TRUE(ma->model.equal(mb->model)) << name;
  }
  Status wrong_name =
      restored->load_state({{"strategy", name == "fedavg" ? "median" : "fedavg"}}, ParamSet());
  EXPECT_FALSE(wrong_name.is_ok());
  EXPECT_FALSE(restored->load_state(nlohmann::json(3), ParamSet()).is_ok());

  EXPECT_EQ(s->worker_hook() != nullptr, name == "fedprox");
  const bool robust =
      name == "median" || name == "trimmed_mean" || name == "krum" || name == "multi_krum";
  EXPECT_EQ(s->needs_all_updates(), robust);
  EXPECT_EQ(s->is_async(), name == "fedasync" || name == "fedbuff");
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, Conformance, ::testing::ValuesIn(strategy_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flight::aggregators
