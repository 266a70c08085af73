// OrderedFold: random arrival orders give a result bit-identical to folding
// the sorted list; failed children are skipped in order; at most `window`
// updates are alive (counted by the tensors' own deleters, not by the fold's
// bookkeeping); children beyond the window are not fetched until their turn.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "aggregators/ordered_fold.h"
#include "aggregators/strategy.h"
#include "flight/params/param_ops.h"
#include "tests/aggregators/test_util.h"

namespace flight::aggregators {
namespace {

using testing::random_model;

std::unique_ptr<Strategy> strategy(const std::string& name) {
  StrategyOptions o;
  o.name = name;
  auto s = make_strategy(o);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return std::move(s).value();
}

// Copies `p` into fresh tensors; the first one's storage reports its death,
// so `live` counts the decoded updates that exist, whoever holds them.
ParamSet counted_copy(const ParamSet& p, std::atomic<int>* live) {
  ParamSet out;
  live->fetch_add(1);
  for (size_t i = 0; i < p.size(); ++i) {
    at::Tensor src = p[i].tensor.contiguous();
    const size_t bytes = src.nbytes();
    void* mem = std::malloc(std::max<size_t>(bytes, 1));
    std::memcpy(mem, src.data_ptr(), bytes);
    std::atomic<int>* counter = i == 0 ? live : nullptr;
    out.add(p[i].name, at::from_blob(
                           mem, src.sizes(),
                           [counter](void* q) {
                             std::free(q);
                             if (counter) counter->fetch_sub(1);
                           },
                           src.options()));
  }
  return out;
}

// An update offered as an EncodedUpdate (what the engine does with a child's
// bytes), backed by a ParamSet: lets the weighted mean take runs of them in
// one accumulate_encoded_batch. Same kernels as accumulate(): same bits.
class ParamUpdate : public EncodedUpdate {
 public:
  explicit ParamUpdate(ParamSet p) : p_(std::move(p)) {
    for (const auto& e : p_) {
      layout_.push_back({e.name, e.tensor.scalar_type(), e.tensor.sizes().vec()});
    }
  }
  const std::vector<TensorMeta>& layout() const override { return layout_; }
  Status add_to(ParamSet& acc, double w, bool assign) const override {
    for (size_t i = 0; i < p_.size(); ++i) {
      if (assign) {
        assign_scaled_(acc[i].tensor, p_[i].tensor, w);
      } else {
        add_scaled_(acc[i].tensor, p_[i].tensor, w);
      }
    }
    return Status::ok();
  }
  bool folds_batches() const override { return true; }
  Status add_batch_to(ParamSet& acc, const std::vector<const EncodedUpdate*>& batch,
                      const std::vector<double>& w, bool assign) const override {
    ++batches;
    for (size_t j = 0; j < batch.size(); ++j) {
      FLIGHT_RETURN_IF_ERROR(batch[j]->add_to(acc, w[j], assign && j == 0));
    }
    return Status::ok();
  }
  StatusOr<ParamSet> decode() const override { return p_; }
  static inline std::atomic<int> batches{0};

 private:
  ParamSet p_;
  std::vector<TensorMeta> layout_;
};

struct Children {
  std::vector<ParamSet> models;
  std::vector<double> weights;
};

Children make_children(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Children c;
  for (size_t i = 0; i < n; ++i) {
    c.models.push_back(random_model(rng, 8, 17, static_cast<double>(i % 5)));
    c.weights.push_back(static_cast<double>(1 + rng() % 100));
  }
  return c;
}

// The reference: the strategy's fold over the sorted list, skipped ones left out.
Weighted batch_fold(const Strategy& s, const Children& c, const std::vector<bool>& skipped) {
  auto fold = s.begin();
  for (size_t i = 0; i < c.models.size(); ++i) {
    if (!skipped[i]) {
      EXPECT_TRUE(fold->accumulate(c.models[i], c.weights[i]).is_ok());
    }
  }
  auto r = fold->finalize();
  EXPECT_TRUE(r.is_ok()) << r.status();
  return std::move(r).value();
}

// Bitwise equality of every tensor (NaN-safe, dtype-exact).
bool bit_identical(const ParamSet& a, const ParamSet& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].tensor.scalar_type() != b[i].tensor.scalar_type() ||
        a[i].tensor.sizes() != b[i].tensor.sizes()) {
      return false;
    }
    at::Tensor x = a[i].tensor.contiguous(), y = b[i].tensor.contiguous();
    if (std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0) return false;
  }
  return true;
}

// batch 1 folds each child as its turn comes; batch 2 and `window` fold runs
// of encoded updates (the weighted mean's accumulate_encoded_batch).
TEST(OrderedFold, RandomArrivalOrdersAreBitIdenticalToTheSortedFold) {
  for (const std::string name : {"fedavg", "fedsgd", "median"}) {
    auto s = strategy(name);
    for (uint64_t trial = 0; trial < 36; ++trial) {
      const size_t n = 1 + trial * 7 % 40;
      const size_t window = 1 + trial % 6;
      const size_t batch = trial < 12 ? 1 : trial < 24 ? std::min<size_t>(2, window) : window;
      const bool encoded = batch > 1 && name != "median";
      Children c = make_children(n, 100 + trial);
      std::mt19937_64 rng(trial);
      std::vector<bool> skipped(n, false);
      for (size_t i = 0; i < n; ++i) skipped[i] = rng() % 5 == 0;
      skipped[rng() % n] = false;  // at least one child folds
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);

      std::atomic<int> live{0};
      std::vector<size_t> fetched, folded_order;
      OrderedFold fold(
          s->begin(), n, window,
          [&](size_t k) {
            fetched.push_back(k);
            if (encoded) {
              return OrderedFold::ready(StatusOr<OrderedFold::Encoded>(
                  std::make_shared<const ParamUpdate>(counted_copy(c.models[k], &live))));
            }
            return OrderedFold::ready(counted_copy(c.models[k], &live));
          },
          [&](size_t k) { folded_order.push_back(k); }, batch);
      for (size_t k : order) {
        Status st = skipped[k] ? fold.skip(k) : fold.arrive(k, c.weights[k]);
        ASSERT_TRUE(st.is_ok()) << st;
        EXPECT_LE(fold.resolved(), window);
        if (name != "median") {
          EXPECT_LE(live.load(), static_cast<int>(window)) << name;
        }
      }
      ASSERT_TRUE(fold.complete());
      EXPECT_LE(fold.peak_resolved(), window);
      EXPECT_EQ(fold.folded() + fold.skipped(), n);
      // Folded in canonical order, each child once.
      EXPECT_TRUE(std::is_sorted(folded_order.begin(), folded_order.end()));
      EXPECT_EQ(folded_order.size(),
                static_cast<size_t>(std::count(skipped.begin(), skipped.end(), false)));
      auto got = fold.finalize();
      ASSERT_TRUE(got.is_ok()) << got.status();
      Weighted want = batch_fold(*s, c, skipped);
      EXPECT_TRUE(bit_identical(got->params, want.params))
          << name << " trial " << trial << " batch " << batch;
      EXPECT_EQ(got->weight, want.weight);
    }
  }
  EXPECT_GT(ParamUpdate::batches.load(), 0) << "some runs were folded as batches";
}

TEST(OrderedFold, ChildrenBeyondTheWindowStayUnresolvedUntilTheirTurn) {
  auto s = strategy("fedavg");
  Children c = make_children(10, 7);
  std::atomic<int> live{0};
  std::vector<size_t> fetched;
  OrderedFold fold(s->begin(), 10, 2, [&](size_t k) {
    fetched.push_back(k);
    return OrderedFold::ready(counted_copy(c.models[k], &live));
  });
  for (size_t k = 9; k >= 1; --k) ASSERT_TRUE(fold.arrive(k, c.weights[k]).is_ok());
  // Only child 1 lies within [next, next + window) = [0, 2).
  EXPECT_EQ(fetched, std::vector<size_t>{1});
  EXPECT_EQ(live.load(), 1);
  EXPECT_EQ(fold.next(), 0u);
  ASSERT_TRUE(fold.arrive(0, c.weights[0]).is_ok());
  EXPECT_TRUE(fold.complete());
  EXPECT_EQ(fetched, (std::vector<size_t>{1, 0, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(fold.peak_resolved(), 2u);
  EXPECT_EQ(live.load(), 0);
  std::vector<bool> none(10, false);
  auto got = fold.finalize();
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_TRUE(bit_identical(got->params, batch_fold(*s, c, none).params));
}

TEST(OrderedFold, ConcurrentFetchesCompletingInAnyOrderFoldInCanonicalOrder) {
  auto s = strategy("fedavg");
  const size_t n = 64, window = 8;
  Children c = make_children(n, 11);
  std::atomic<int> live{0};
  std::vector<size_t> folded_order;
  {
    OrderedFold fold(
        s->begin(), n, window,
        [&](size_t k) {
          return std::async(std::launch::async, [&c, &live, k]() -> StatusOr<ParamSet> {
            return counted_copy(c.models[k], &live);
          });
        },
        [&](size_t k) { folded_order.push_back(k); });
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(3);
    // Locally shuffled, as results of a FIFO pool arrive.
    for (size_t b = 0; b < n; b += 12) {
      std::shuffle(order.begin() + b, order.begin() + std::min(n, b + 12), rng);
    }
    for (size_t k : order) {
      ASSERT_TRUE(fold.arrive(k, c.weights[k]).is_ok());
      EXPECT_LE(live.load(), static_cast<int>(window));
    }
    ASSERT_TRUE(fold.complete());
    auto got = fold.finalize();
    ASSERT_TRUE(got.is_ok()) << got.status();
    EXPECT_TRUE(bit_identical(got->params, batch_fold(*s, c, std::vector<bool>(n)).params));
  }
  std::vector<size_t> want(n);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(folded_order, want);
  EXPECT_EQ(live.load(), 0);
}

TEST(OrderedFold, ErrorsNameTheChildAndStick) {
  auto s = strategy("fedavg");
  Children c = make_children(4, 5);
  auto fetch = [&](size_t k) -> OrderedFold::Pending {
    if (k == 2) return OrderedFold::ready(not_found("object 'abc' is not in the memory connector"));
    return OrderedFold::ready(c.models[k]);
  };
  OrderedFold fold(s->begin(), 4, 4, fetch);
  EXPECT_EQ(fold.arrive(4, 1.0).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(fold.arrive(1, 1.0).is_ok());
  Status twice = fold.skip(1);
  EXPECT_EQ(twice.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(twice.message().find("reported twice"), std::string::npos) << twice;
  auto early = fold.finalize();
  EXPECT_EQ(early.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(early.status().message().find("3 of 4 children have not reported"), std::string::npos)
      << early.status();
  ASSERT_TRUE(fold.arrive(2, 1.0).is_ok());  // resolved (within the window), not yet in turn
  Status failed = fold.arrive(0, 1.0);       // folds 0, 1, then 2's fetch error
  EXPECT_EQ(failed.code(), StatusCode::kNotFound);
  EXPECT_NE(failed.message().find("position 2"), std::string::npos) << failed;
  EXPECT_FALSE(fold.complete());
  EXPECT_EQ(fold.arrive(3, 1.0).code(), StatusCode::kNotFound);
  EXPECT_EQ(fold.finalize().status().code(), StatusCode::kNotFound);

  // A mismatched update fails the fold with the strategy's message.
  OrderedFold shapes(s->begin(), 2, 2, [&](size_t k) {
    std::mt19937_64 rng(k);
    return OrderedFold::ready(random_model(rng, k == 0 ? 8 : 9, 17));
  });
  ASSERT_TRUE(shapes.arrive(0, 1.0).is_ok());
  Status bad = shapes.arrive(1, 1.0);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument) << bad;
  EXPECT_NE(bad.message().find("position 1"), std::string::npos) << bad;
}

TEST(OrderedFold, AllSkippedAndNoChildren) {
  auto s = strategy("fedavg");
  OrderedFold fold(s->begin(), 3, 2, [](size_t) { return OrderedFold::ready(ParamSet()); });
  for (size_t k : {2, 0, 1}) ASSERT_TRUE(fold.skip(k).is_ok());
  EXPECT_TRUE(fold.complete());
  EXPECT_EQ(fold.skipped(), 3u);
  EXPECT_EQ(fold.finalize().status().code(), StatusCode::kFailedPrecondition);

  OrderedFold empty(s->begin(), 0, 1, [](size_t) { return OrderedFold::ready(ParamSet()); });
  EXPECT_TRUE(empty.complete());
  EXPECT_EQ(empty.finalize().status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace flight::aggregators
