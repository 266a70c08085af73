// Trainer and evaluator on real Fashion-MNIST and the shipped TorchScript model.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/zeros.h>

#include <numeric>

#include "flight/learning/trainer.h"
#include "tests/learning/learning_test_util.h"

namespace flight::learning {
namespace {

const DatasetPair& fashion() {
  static const DatasetPair pair = [] {
    auto p = load_dataset(DataSpec{});
    FLIGHT_CHECK(p.is_ok(), p.status().to_string());
    return *p;
  }();
  return pair;
}

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

std::unique_ptr<Model> builtin(const std::string& name, uint64_t seed = 0) {
  ModelSpec spec;
  spec.name = name;
  spec.seed = seed;
  auto m = make_model(spec);
  FLIGHT_CHECK(m.is_ok(), m.status().to_string());
  return std::move(m).value();
}

double squared_distance(const ParamSet& a, const ParamSet& b) {
  double d = 0;
  for (const auto& e : a) d += (e.tensor - *b.find(e.name)).pow(2).sum().item<double>();
  return d;
}

// The bar: LeNet-5, 10,000 real training images, one epoch, >= 0.70
// accuracy on the real 10,000-image test set.
TEST(Trainer, LeNet5ReachesSeventyPercentOnFashionMnist) {
  const DatasetPair& d = fashion();
  auto model = builtin("lenet5", 1);
  ParamSet init = model->state().clone();

  auto before = evaluate(*model, init, *d.test);
  ASSERT_TRUE(before.is_ok()) << before.status();
  EXPECT_LT(before->accuracy, 0.3);  // an untrained net is near chance

  TrainOptions opt;
  opt.batch_size = 32;
  opt.lr = 0.05;
  opt.momentum = 0.9;
  auto r = train(*model, init, *d.train, range(0, 10000), opt, /*seed=*/7, nullptr);
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_EQ(r->n_samples, 10000);
  EXPECT_EQ(r->samples_processed, 10000);
  EXPECT_EQ(r->steps, 313);  // ceil(10000 / 32)
  EXPECT_GT(r->accuracy, 0.5);
  EXPECT_GT(r->seconds, 0.0);

  auto after = evaluate(*model, r->state, *d.test);
  ASSERT_TRUE(after.is_ok()) << after.status();
  EXPECT_EQ(after->n, 10000);
  EXPECT_GE(after->accuracy, 0.70) << "test loss " << after->loss;
  EXPECT_LT(after->loss, before->loss);
}

TEST(Trainer, DeterministicForASeedAndResultIsIndependent) {
  at::set_num_threads(1);
  const DatasetPair& d = fashion();
  auto model = builtin("mlp");
  ParamSet global = model->state().clone();
  TrainOptions opt;
  opt.max_steps = 20;
  opt.optimizer = "adam";
  opt.lr = 1e-3;
  std::vector<int64_t> idx = range(1000, 3000);
  auto a = train(*model, global, *d.train, idx, opt, 5, nullptr);
  auto b = train(*model, global, *d.train, idx, opt, 5, nullptr);
  auto c = train(*model, global, *d.train, idx, opt, 6, nullptr);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  EXPECT_EQ(a->steps, 20);
  EXPECT_EQ(a->samples_processed, 20 * 32);
  EXPECT_EQ(a->n_samples, 2000);
  EXPECT_TRUE(a->state.equal(b->state));
  EXPECT_DOUBLE_EQ(a->loss, b->loss);
  EXPECT_FALSE(a->state.equal(c->state));  // another seed, other batches
  EXPECT_FALSE(a->state.equal(global));
  // The result does not alias the model: training again leaves it unchanged.
  ParamSet snapshot = a->state.clone();
  ASSERT_TRUE(train(*model, global, *d.train, range(0, 100), opt, 9, nullptr).is_ok());
  EXPECT_TRUE(a->state.equal(snapshot));
}

// FedProx's proximal term, as a strategy would supply it.
class ProximalHook : public TrainHook {
 public:
  explicit ProximalHook(double mu) : mu_(mu) {}
  void begin(const ParamSet& global) override {
    global_ = global.clone();
    began_ = true;
  }
  at::Tensor penalty(const ParamSet& current) override {
    at::Tensor sum = at::zeros({});
    for (const auto& e : current) sum = sum + (e.tensor - *global_.find(e.name)).pow(2).sum();
    ++calls_;
    return sum * (mu_ / 2);
  }
  bool began_ = false;
  int calls_ = 0;

 private:
  double mu_;
  ParamSet global_;
};

TEST(Trainer, HookPenaltyContributesARealGradient) {
  const DatasetPair& d = fashion();
  auto model = builtin("lenet5");
  ParamSet global = model->state().clone();
  TrainOptions opt;
  opt.lr = 0.05;
  opt.max_steps = 30;
  auto free = train(*model, global, *d.train, range(0, 2000), opt, 1, nullptr);
  ProximalHook hook(5.0);
  auto prox = train(*model, global, *d.train, range(0, 2000), opt, 1, &hook);
  ASSERT_TRUE(free.is_ok() && prox.is_ok());
  EXPECT_TRUE(hook.began_);
  EXPECT_EQ(hook.calls_, 30);
  // The proximal term pulls the weights toward the global model.
  EXPECT_LT(squared_distance(prox->state, global), 0.5 * squared_distance(free->state, global));
}

TEST(Trainer, TorchScriptModelTrainsAndLossFalls) {
  const DatasetPair& d = fashion();
  ModelSpec spec;
  spec.torchscript = testing::test_data("tiny_cnn.pt");
  auto model = make_model(spec);
  ASSERT_TRUE(model.is_ok()) << model.status();
  ParamSet init = (*model)->state().clone();
  auto before = evaluate(**model, init, *d.test, 2048);
  ASSERT_TRUE(before.is_ok()) << before.status();

  TrainOptions opt;
  opt.lr = 0.05;
  opt.momentum = 0.9;
  auto first = train(**model, init, *d.train, range(0, 3000), opt, 1, nullptr);
  ASSERT_TRUE(first.is_ok()) << first.status();
  auto second = train(**model, first->state, *d.train, range(3000, 6000), opt, 2, nullptr);
  ASSERT_TRUE(second.is_ok()) << second.status();
  EXPECT_LT(second->loss, first->loss);
  // Batch norm running statistics are buffers and they were updated too.
  EXPECT_GT(second->state.find("bn.num_batches_tracked")->item<int64_t>(),
            init.find("bn.num_batches_tracked")->item<int64_t>());

  auto after = evaluate(**model, second->state, *d.test);
  ASSERT_TRUE(after.is_ok()) << after.status();
  EXPECT_LT(after->loss, before->loss);
  EXPECT_GT(after->accuracy, before->accuracy + 0.3);
}

TEST(Trainer, EdgeCasesAndErrors) {
  const DatasetPair& d = fashion();
  auto model = builtin("tiny");
  ParamSet global = model->state().clone();
  TrainOptions opt;

  // No samples: the loaded state comes back, no steps.
  auto empty = train(*model, global, *d.train, {}, opt, 0, nullptr);
  ASSERT_TRUE(empty.is_ok()) << empty.status();
  EXPECT_EQ(empty->n_samples, 0);
  EXPECT_EQ(empty->steps, 0);
  EXPECT_TRUE(empty->state.equal(global));

  auto bad_index = train(*model, global, *d.train, {0, 60000}, opt, 0, nullptr);
  ASSERT_FALSE(bad_index.is_ok());
  EXPECT_NE(bad_index.status().message().find("index 60000"), std::string::npos);

  auto lenet = builtin("lenet5");
  auto wrong_model = train(*lenet, global, *d.train, {0, 1}, opt, 0, nullptr);
  ASSERT_FALSE(wrong_model.is_ok());
  EXPECT_NE(wrong_model.status().message().find("conv1.weight"), std::string::npos)
      << wrong_model.status();

  // A model that does not fit the data: torch's error becomes a Status.
  ModelSpec rgb;
  rgb.name = "cnn";
  rgb.options = {{"in_channels", 3}};
  auto cnn = make_model(rgb);
  ASSERT_TRUE(cnn.is_ok());
  auto mismatch = train(**cnn, {}, *d.train, {0, 1, 2}, opt, 0, nullptr);
  ASSERT_FALSE(mismatch.is_ok());
  EXPECT_NE(mismatch.status().message().find("cnn"), std::string::npos) << mismatch.status();
  auto eval_mismatch = evaluate(**cnn, {}, *d.test);
  EXPECT_FALSE(eval_mismatch.is_ok());

  EXPECT_FALSE(evaluate(*model, global, *d.test, 0).is_ok());
  Dataset nothing;
  EXPECT_FALSE(evaluate(*model, global, nothing).is_ok());

  TrainOptions bad;
  bad.optimizer = "adamw";
  EXPECT_NE(bad.validate().message().find("did you mean 'adam'"), std::string::npos);
  EXPECT_FALSE(train(*model, global, *d.train, {0}, bad, 0, nullptr).is_ok());
}

// A stop request (a cancelled task, a passed deadline) is seen before the
// next batch: with the check saying stop on its 6th call, exactly 5 of the
// 10 epochs x 313 batches on real Fashion-MNIST run, and nothing more.
TEST(Trainer, StopCheckEndsTrainingBeforeTheNextBatch) {
  const DatasetPair& d = fashion();
  auto model = builtin("mlp");
  ParamSet global = model->state().clone();
  TrainOptions opt;
  opt.epochs = 10;
  int64_t checks = 0;
  StopCheck stop = [&checks] { return ++checks >= 6; };
  auto r = train(*model, global, *d.train, range(0, 10000), opt, 3, nullptr, stop);
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->steps, 5);
  EXPECT_EQ(checks, 6);  // polled once per batch, never again after saying stop
  EXPECT_EQ(r->planned_steps, 3130);
  EXPECT_EQ(r->samples_processed, 5 * 32);
  EXPECT_TRUE(r->state.empty());               // a stopped task's model is not copied
  EXPECT_FALSE(model->state().equal(global));  // the 5 batches did train

  // A check that never fires changes nothing: same steps, same model as none.
  opt.epochs = 1;
  opt.max_steps = 7;
  StopCheck never = [] { return false; };
  auto with = train(*model, global, *d.train, range(0, 1000), opt, 4, nullptr, never);
  auto without = train(*model, global, *d.train, range(0, 1000), opt, 4, nullptr);
  ASSERT_TRUE(with.is_ok() && without.is_ok());
  EXPECT_FALSE(with->stopped);
  EXPECT_EQ(with->steps, 7);
  EXPECT_EQ(with->planned_steps, 7);
  EXPECT_TRUE(with->state.equal(without->state));

  // Stopped before the first batch: no step at all.
  StopCheck at_once = [] { return true; };
  auto none = train(*model, global, *d.train, range(0, 1000), opt, 4, nullptr, at_once);
  ASSERT_TRUE(none.is_ok()) << none.status();
  EXPECT_TRUE(none->stopped);
  EXPECT_EQ(none->steps, 0);
}

TEST(Trainer, OptionsJson) {
  auto o = TrainOptions::from_json(
      {{"epochs", 2}, {"batch_size", 64}, {"optimizer", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}});
  ASSERT_TRUE(o.is_ok()) << o.status();
  EXPECT_EQ(o->epochs, 2);
  EXPECT_EQ(o->batch_size, 64);
  auto again = TrainOptions::from_json(o->to_json());
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->to_json(), o->to_json());
  auto key = TrainOptions::from_json({{"batchsize", 3}});
  ASSERT_FALSE(key.is_ok());
  EXPECT_NE(key.status().message().find("did you mean 'batch_size'"), std::string::npos);
  EXPECT_FALSE(TrainOptions::from_json({{"lr", 0}}).is_ok());
  EXPECT_FALSE(TrainOptions::from_json({{"epochs", 1.5}}).is_ok());
  EXPECT_FALSE(TrainOptions::from_json({{"optimizer", "adam"}, {"momentum", 0.9}}).is_ok());
}

}  // namespace
}  // namespace flight::learning
