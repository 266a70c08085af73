// Models: built-ins and TorchScript — ParamSet views, round trips, forward
// shapes, seeded init, errors, and files Python can load.
#include <gtest/gtest.h>

#include <ATen/ops/equal.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "flight/learning/model.h"
#include "tests/learning/learning_test_util.h"
#include "tests/support/process.h"

namespace flight::learning {
namespace {

using flight::learning::testing::python_torch_available;
using flight::learning::testing::run_python;
using flight::learning::testing::test_data;

std::unique_ptr<Model> must_make(const nlohmann::json& spec_json) {
  auto spec = ModelSpec::from_json(spec_json);
  EXPECT_TRUE(spec.is_ok()) << spec.status();
  auto model = make_model(*spec);
  EXPECT_TRUE(model.is_ok()) << model.status();
  return std::move(model).value();
}

// A state with every value changed, same names, dtypes and shapes.
ParamSet perturbed(const ParamSet& s) {
  ParamSet out;
  for (const auto& e : s) {
    at::Tensor t = e.tensor.clone();
    if (at::isFloatingType(t.scalar_type())) {
      // Small positive changes: batch-norm variances stay valid and deep nets finite.
      t.mul_(at::rand(t.sizes(), t.options()).mul_(0.1).add_(1));
      t.add_(at::rand(t.sizes(), t.options()).mul_(0.01));
    } else {
      t.add_(7);
    }
    out.add(e.name, t);
  }
  return out;
}

struct BuiltinCase {
  const char* name;
  int64_t min_params, max_params;
  size_t n_buffers;
};

void PrintTo(const BuiltinCase& c, std::ostream* os) { *os << c.name; }

class BuiltinModels : public ::testing::TestWithParam<BuiltinCase> {};

TEST_P(BuiltinModels, StateRoundTripsExactlyAndForwardHasLogitShape) {
  const BuiltinCase& c = GetParam();
  auto model = must_make({{"name", c.name}});
  ASSERT_NE(model, nullptr);
  ParamSet state = model->state();
  ParamSet trainable = model->trainable();
  EXPECT_GE(trainable.numel(), c.min_params) << model->describe();
  EXPECT_LE(trainable.numel(), c.max_params) << model->describe();
  EXPECT_EQ(state.size() - trainable.size(), c.n_buffers);
  // Parameters come first, in the same order as trainable(), then buffers.
  for (size_t i = 0; i < trainable.size(); ++i) EXPECT_EQ(state[i].name, trainable[i].name);
  for (const auto& e : trainable) EXPECT_TRUE(e.tensor.requires_grad()) << e.name;

  // Round trip: load a different state, read it back bit for bit.
  ParamSet target = perturbed(state);
  ASSERT_FALSE(target.equal(state.clone()));
  ASSERT_TRUE(model->load_state(target).is_ok());
  EXPECT_TRUE(model->state().equal(target));
  // state() shares storage with the model: the view now holds the new values.
  EXPECT_TRUE(state.equal(target));

  // A second instance loaded from the first's state computes the same function.
  auto other = must_make({{"name", c.name}, {"seed", 99}});
  ASSERT_TRUE(other->load_state(model->state()).is_ok());
  model->train(false);
  other->train(false);
  at::Tensor x = at::randn({3, 1, 28, 28});
  at::Tensor y = model->forward(x);
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{3, 10}));
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_TRUE(at::equal(y, other->forward(x)));
}

INSTANTIATE_TEST_SUITE_P(
    All, BuiltinModels,
    ::testing::Values(BuiltinCase{"mlp", 199210, 199210,
                                  0},  // 784*200+200 + 200*200+200 + 200*10+10
                      BuiltinCase{"lenet5", 61706, 61706, 0}, BuiltinCase{"cnn", 400000, 450000, 0},
                      // CIFAR ResNet-18, 1 input channel: 20 batch norms x 3 buffers.
                      BuiltinCase{"resnet18", 11000000, 11200000, 60},
                      BuiltinCase{"tiny", 3190, 3190, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Models, SeedDeterminesInitialWeights) {
  auto a = must_make({{"name", "lenet5"}, {"seed", 5}});
  auto b = must_make({{"name", "lenet5"}, {"seed", 5}});
  auto c = must_make({{"name", "lenet5"}, {"seed", 6}});
  EXPECT_TRUE(a->state().equal(b->state()));
  EXPECT_FALSE(a->state().equal(c->state()));
}

TEST(Models, OptionsShapeTheArchitecture) {
  auto mlp = must_make({{"name", "mlp"}, {"options", {{"hidden", {32}}, {"classes", 3}}}});
  ParamSet s = mlp->state();
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].name, "fc1.weight");
  EXPECT_EQ(s[0].tensor.sizes(), (at::IntArrayRef{32, 784}));
  EXPECT_EQ(s[3].name, "fc2.bias");
  EXPECT_EQ(mlp->forward(at::zeros({2, 1, 28, 28})).sizes(), (at::IntArrayRef{2, 3}));

  auto rgb =
      must_make({{"name", "resnet18"}, {"options", {{"in_channels", 3}, {"image_size", 32}}}});
  rgb->train(false);
  EXPECT_EQ(rgb->forward(at::zeros({2, 3, 32, 32})).sizes(), (at::IntArrayRef{2, 10}));
  ASSERT_NE(rgb->state().find("layer2.0.downsample.1.running_var"), nullptr);
}

TEST(Models, BadSpecsAreClearErrors) {
  auto unknown = make_model(*ModelSpec::from_json({{"torchscript", ""}, {"name", "lenet5"}}));
  EXPECT_TRUE(unknown.is_ok());

  auto typo = ModelSpec::from_json({{"name", "lenet"}});
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("did you mean 'lenet5'"), std::string::npos)
      << typo.status();

  auto key = ModelSpec::from_json({{"name", "mlp"}, {"optoins", nlohmann::json::object()}});
  ASSERT_FALSE(key.is_ok());
  EXPECT_NE(key.status().message().find("'optoins'"), std::string::npos) << key.status();

  ModelSpec bad_option;
  bad_option.name = "mlp";
  bad_option.options = {{"hiden", {10}}};
  auto m = make_model(bad_option);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("'hiden'"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("did you mean 'hidden'"), std::string::npos) << m.status();

  bad_option.options = {{"hidden", {10, -1}}};
  EXPECT_FALSE(make_model(bad_option).is_ok());

  ModelSpec missing;
  missing.torchscript = "/nonexistent/model.pt";
  auto ts = make_model(missing);
  ASSERT_FALSE(ts.is_ok());
  EXPECT_EQ(ts.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ts.status().message().find("/nonexistent/model.pt"), std::string::npos);

  flight::testing::TempDir dir;
  std::ofstream(dir.file("junk.pt")) << "not a model";
  missing.torchscript = dir.file("junk.pt");
  ts = make_model(missing);
  ASSERT_FALSE(ts.is_ok());
  EXPECT_NE(ts.status().message().find("junk.pt"), std::string::npos) << ts.status();
}

TEST(Models, LoadStateNamesTheOffendingTensor) {
  auto model = must_make({{"name", "lenet5"}});
  ParamSet wrong_shape;
  for (const auto& e : model->state()) {
    wrong_shape.add(e.name, e.name == "fc2.weight" ? at::zeros({3, 3}) : e.tensor.clone());
  }
  Status s = model->load_state(wrong_shape);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("fc2.weight"), std::string::npos) << s;

  ParamSet missing;
  for (const auto& e : model->state()) {
    if (e.name != "conv1.bias") missing.add(e.name, e.tensor.clone());
  }
  s = model->load_state(missing);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("conv1.bias"), std::string::npos) << s;

  ParamSet extra = model->state().clone();
  extra.add("fc9.weight", at::zeros({1}));
  s = model->load_state(extra);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("fc9.weight"), std::string::npos) << s;

  // Order does not matter, names do.
  ParamSet reversed;
  ParamSet target = perturbed(model->state());
  for (size_t i = target.size(); i-- > 0;) reversed.add(target[i].name, target[i].tensor);
  ASSERT_TRUE(model->load_state(reversed).is_ok());
  EXPECT_TRUE(model->state().equal(target));
}

TEST(Models, TorchScriptModelExposesParametersAndBuffers) {
  ModelSpec spec;
  spec.torchscript = test_data("tiny_cnn.pt");
  auto model = make_model(spec);
  ASSERT_TRUE(model.is_ok()) << model.status();
  ParamSet state = (*model)->state();
  ParamSet trainable = (*model)->trainable();
  // conv.{weight,bias}, bn.{weight,bias}, fc.{weight,bias}; bn running stats.
  EXPECT_EQ(trainable.size(), 6u);
  EXPECT_EQ(trainable.numel(), 4026);
  EXPECT_EQ(state.size(), 9u);
  ASSERT_NE(state.find("bn.running_mean"), nullptr);
  ASSERT_NE(state.find("bn.num_batches_tracked"), nullptr);
  EXPECT_EQ(state.find("bn.num_batches_tracked")->scalar_type(), at::kLong);

  ParamSet target = perturbed(state);
  ASSERT_TRUE((*model)->load_state(target).is_ok());
  EXPECT_TRUE((*model)->state().equal(target));
  (*model)->train(false);
  EXPECT_EQ((*model)->forward(at::zeros({4, 1, 28, 28})).sizes(), (at::IntArrayRef{4, 10}));

  // Two models from one file are independent.
  auto fresh = make_model(spec);
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_FALSE((*fresh)->state().equal((*model)->state()));
}

TEST(Models, SavedStateFileRoundTripsInCpp) {
  flight::testing::TempDir dir;
  auto model = must_make({{"name", "cnn"}, {"seed", 3}});
  ASSERT_TRUE(model->save(dir.file("cnn.pt")).is_ok());
  auto loaded = load_state_file(dir.file("cnn.pt"));
  ASSERT_TRUE(loaded.is_ok()) << loaded.status();
  EXPECT_TRUE(loaded->equal(model->state()));

  auto missing = load_state_file(dir.file("nope.pt"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("nope.pt"), std::string::npos);
  std::ofstream(dir.file("junk.pt")) << "garbage";
  EXPECT_FALSE(load_state_file(dir.file("junk.pt")).is_ok());
  EXPECT_FALSE(model->save(dir.file("no/such/dir/m.pt")).is_ok());
}

// Python reads the built-in model's file with torch.load into a dict of
// tensors, lists names/shapes/dtypes, and writes the same dict back with
// torch.save; we compare everything bit for bit.
TEST(ModelsPython, TorchLoadReadsBuiltinModel) {
  if (!python_torch_available()) {
    GTEST_SKIP() << "\n\n*** SKIPPED: /usr/bin/python3 with torch (python3-torch) is not "
                    "installed; run scripts/setup.sh ***\n";
  }
  flight::testing::TempDir dir;
  auto model = must_make({{"name", "resnet18"}, {"seed", 11}, {"options", {{"classes", 4}}}});
  ParamSet state = model->state();
  // Make buffers non-trivial so that their values are checked too.
  ASSERT_TRUE(model->load_state(perturbed(state)).is_ok());
  ASSERT_TRUE(model->save(dir.file("model.pt")).is_ok());

  const std::string script = R"(
import json, sys, torch
d = torch.load(sys.argv[1])
assert type(d) is dict, type(d)
assert all(isinstance(v, torch.Tensor) for v in d.values())
print(json.dumps([[k, list(v.shape), str(v.dtype)] for k, v in d.items()]))
torch.save(dict(d), sys.argv[2])
)";
  std::string out, err;
  int code = run_python(script, {dir.file("model.pt"), dir.file("back.pt")}, &out, &err);
  ASSERT_EQ(code, 0) << err;
  auto listed = nlohmann::json::parse(out);
  ASSERT_EQ(listed.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(listed[i][0], state[i].name);
    std::vector<int64_t> shape = listed[i][1];
    EXPECT_EQ(at::IntArrayRef(shape), state[i].tensor.sizes()) << state[i].name;
    EXPECT_EQ(listed[i][2],
              state[i].tensor.scalar_type() == at::kLong ? "torch.int64" : "torch.float32");
  }
  auto back = load_state_file(dir.file("back.pt"));
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_TRUE(back->equal(model->state()));
}

// A TorchScript model changed in Flight and saved is read by torch.jit.load,
// runs, and holds the values Flight gave it.
TEST(ModelsPython, TorchJitLoadReadsSavedTorchScriptModel) {
  if (!python_torch_available()) {
    GTEST_SKIP() << "\n\n*** SKIPPED: /usr/bin/python3 with torch (python3-torch) is not "
                    "installed; run scripts/setup.sh ***\n";
  }
  flight::testing::TempDir dir;
  ModelSpec spec;
  spec.torchscript = test_data("tiny_cnn.pt");
  auto model = make_model(spec);
  ASSERT_TRUE(model.is_ok()) << model.status();
  ASSERT_TRUE((*model)->load_state(perturbed((*model)->state())).is_ok());
  ASSERT_TRUE((*model)->save(dir.file("ts.pt")).is_ok());

  const std::string script = R"(
import sys, torch
m = torch.jit.load(sys.argv[1])
m.eval()
print(tuple(m(torch.zeros(5, 1, 28, 28)).shape))
torch.save(dict(m.state_dict()), sys.argv[2])
)";
  std::string out, err;
  int code = run_python(script, {dir.file("ts.pt"), dir.file("sd.pt")}, &out, &err);
  ASSERT_EQ(code, 0) << err;
  EXPECT_EQ(out, "(5, 10)\n");
  auto sd = load_state_file(dir.file("sd.pt"));
  ASSERT_TRUE(sd.is_ok()) << sd.status();
  ParamSet state = (*model)->state();
  ASSERT_EQ(sd->size(), state.size());
  for (const auto& e : state) {
    const at::Tensor* t = sd->find(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_TRUE(at::equal(*t, e.tensor)) << e.name;
  }
}

}  // namespace
}  // namespace flight::learning
