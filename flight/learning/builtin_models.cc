// The built-in architectures. Parameter names follow PyTorch conventions
// (conv1.weight, layer1.0.bn1.running_mean, ...) so a state saved here reads
// naturally in Python.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>

#include <cmath>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/learning/model_internal.h"

namespace flight::learning::detail {
namespace {

// A built-in network: a torch::nn::Module with a tensor -> tensor forward.
class Net : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

class BuiltinModel final : public Model {
 public:
  BuiltinModel(std::string name, std::shared_ptr<Net> net)
      : name_(std::move(name)), net_(std::move(net)) {
    // Parameter and buffer tensors are fixed objects owned by the module
    // (load_state copies into them), so the views can be built once.
    for (const auto& kv : net_->named_parameters(true)) {
      live_.add(kv.key(), kv.value().detach());
      if (kv.value().requires_grad()) trainable_.add(kv.key(), kv.value());
    }
    for (const auto& kv : net_->named_buffers(true)) live_.add(kv.key(), kv.value().detach());
  }

  ParamSet state() const override { return live_; }
  Status load_state(const ParamSet& params) override {
    return copy_state_into(live_, params, "model '" + name_ + "'");
  }
  ParamSet trainable() const override { return trainable_; }
  at::Tensor forward(const at::Tensor& x) override { return net_->forward(x); }
  void train(bool on) override { net_->train(on); }
  Status save(const std::string& path) const override { return save_state_file(live_, path); }
  std::string describe() const override {
    return name_ + " (" + std::to_string(trainable_.numel()) + " parameters)";
  }

 private:
  std::string name_;
  std::shared_ptr<Net> net_;
  ParamSet live_;
  ParamSet trainable_;
};

// PyTorch's default init for Linear and Conv2d (kaiming_uniform with a=sqrt(5)
// is uniform(+-1/sqrt(fan_in)), bias the same), drawn from a private generator
// so that model creation neither reads nor advances the global torch RNG.
void init_weights(Net& net, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  auto init = [&](at::Tensor& weight, at::Tensor& bias) {
    int64_t fan_in = weight.numel() / weight.size(0);
    double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weight.uniform_(-bound, bound, gen);
    if (bias.defined()) bias.uniform_(-bound, bound, gen);
  };
  for (const auto& m : net.modules(/*include_self=*/false)) {
    if (auto* linear = m->as<torch::nn::Linear>()) {
      init(linear->weight, linear->bias);
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      init(conv->weight, conv->bias);
    }
  }
}

// Options every built-in accepts.
struct Common {
  int64_t classes = 10;
  int64_t in_channels = 1;
  int64_t image_size = 28;
};

// Reads the options every built-in accepts; the caller reads its own from the
// same reader and finishes it.
void read_common(OptionReader& r, Common* c) {
  r.at_least("classes", &c->classes, int64_t{1})
      .at_least("in_channels", &c->in_channels, int64_t{1})
      .at_least("image_size", &c->image_size, int64_t{1});
}

// A size or a list of sizes, each >= 1.
void read_sizes(OptionReader& r, const char* key, std::vector<int64_t>* out) {
  const auto& j = r.value();
  if (j.is_object() && j.contains(key) && j[key].is_number()) {
    int64_t one = 0;
    r.optional(key, &one);
    *out = {one};
  } else {
    r.optional(key, out);
  }
  for (int64_t v : *out) {
    if (v < 1) r.fail(key, "sizes must be >= 1, got " + std::to_string(v));
  }
}

// ---- mlp / tiny: flatten, Linear + ReLU per hidden size, Linear to classes.
class MlpNet final : public Net {
 public:
  MlpNet(int64_t in, const std::vector<int64_t>& hidden, int64_t classes) {
    int64_t prev = in;
    for (size_t i = 0; i <= hidden.size(); ++i) {
      int64_t next = i < hidden.size() ? hidden[i] : classes;
      layers_.push_back(
          register_module("fc" + std::to_string(i + 1), torch::nn::Linear(prev, next)));
      prev = next;
    }
  }
  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = input.flatten(1);
    for (size_t i = 0; i + 1 < layers_.size(); ++i) x = at::relu(layers_[i]->forward(x));
    return layers_.back()->forward(x);
  }

 private:
  std::vector<torch::nn::Linear> layers_;
};

StatusOr<std::unique_ptr<Model>> make_mlp(const std::string& name, const nlohmann::json& options,
                                          uint64_t seed, std::vector<int64_t> hidden) {
  const std::string where = "model." + name + ".options";
  Common c;
  OptionReader r(options, where);
  read_common(r, &c);
  read_sizes(r, "hidden", &hidden);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  auto net =
      std::make_shared<MlpNet>(c.in_channels * c.image_size * c.image_size, hidden, c.classes);
  init_weights(*net, seed);
  return std::unique_ptr<Model>(std::make_unique<BuiltinModel>(name, net));
}

// ---- lenet5: LeCun et al. 1998 with ReLU and max pooling; padding 2 on the
// first conv so 28x28 inputs keep the classic 5x5x16 feature map.
class LeNet5 final : public Net {
 public:
  LeNet5(const Common& c) {
    conv1_ = register_module(
        "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, 6, 5).padding(2)));
    conv2_ = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 16, 5)));
    int64_t s = (c.image_size / 2 - 4) / 2;
    fc1_ = register_module("fc1", torch::nn::Linear(16 * s * s, 120));
    fc2_ = register_module("fc2", torch::nn::Linear(120, 84));
    fc3_ = register_module("fc3", torch::nn::Linear(84, c.classes));
  }
  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = at::max_pool2d(at::relu(conv1_->forward(input)), {2, 2});
    x = at::max_pool2d(at::relu(conv2_->forward(x)), {2, 2});
    x = x.flatten(1);
    x = at::relu(fc1_->forward(x));
    x = at::relu(fc2_->forward(x));
    return fc3_->forward(x);
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
};

StatusOr<std::unique_ptr<Model>> make_lenet5(const nlohmann::json& options, uint64_t seed) {
  const std::string where = "model.lenet5.options";
  Common c;
  OptionReader r(options, where);
  read_common(r, &c);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (c.image_size < 12) return invalid_argument(where + ".image_size must be >= 12 for lenet5");
  auto net = std::make_shared<LeNet5>(c);
  init_weights(*net, seed);
  return std::unique_ptr<Model>(std::make_unique<BuiltinModel>("lenet5", net));
}

// ---- cnn: two 3x3 conv + ReLU + 2x2 max-pool stages, then a hidden Linear.
class SmallCnn final : public Net {
 public:
  SmallCnn(const Common& c, const std::vector<int64_t>& channels, int64_t hidden) {
    conv1_ = register_module(
        "conv1",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, channels[0], 3).padding(1)));
    conv2_ = register_module(
        "conv2",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels[0], channels[1], 3).padding(1)));
    int64_t s = c.image_size / 4;
    fc1_ = register_module("fc1", torch::nn::Linear(channels[1] * s * s, hidden));
    fc2_ = register_module("fc2", torch::nn::Linear(hidden, c.classes));
  }
  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = at::max_pool2d(at::relu(conv1_->forward(input)), {2, 2});
    x = at::max_pool2d(at::relu(conv2_->forward(x)), {2, 2});
    return fc2_->forward(at::relu(fc1_->forward(x.flatten(1))));
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};

StatusOr<std::unique_ptr<Model>> make_cnn(const nlohmann::json& options, uint64_t seed) {
  const std::string where = "model.cnn.options";
  Common c;
  std::vector<int64_t> channels = {32, 64};
  int64_t hidden = 128;
  OptionReader r(options, where);
  read_common(r, &c);
  read_sizes(r, "channels", &channels);
  if (channels.size() != 2) {
    r.fail("channels", "expected 2 sizes, got " + std::to_string(channels.size()));
  }
  r.at_least("hidden", &hidden, int64_t{1});
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (c.image_size < 4) return invalid_argument(where + ".image_size must be >= 4 for cnn");
  auto net = std::make_shared<SmallCnn>(c, channels, hidden);
  init_weights(*net, seed);
  return std::unique_ptr<Model>(std::make_unique<BuiltinModel>("cnn", net));
}

// ---- resnet18, CIFAR-style (He et al. 2016; 3x3 stem, no max-pool), names as
// in torchvision (layerN.M.conv1, ..., layerN.0.downsample.{0,1}).
class BasicBlock final : public torch::nn::Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride) {
    conv1_ = register_module(
        "conv1", torch::nn::Conv2d(
                     torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(out));
    conv2_ = register_module(
        "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {
      downsample_ = register_module(
          "downsample",
          torch::nn::Sequential(
              torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
              torch::nn::BatchNorm2d(out)));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    return at::relu(y + (downsample_.is_empty() ? x : downsample_->forward(x)));
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};

class ResNet18 final : public Net {
 public:
  explicit ResNet18(const Common& c) {
    conv1_ = register_module(
        "conv1",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, 64, 3).padding(1).bias(false)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
    int64_t in = 64;
    const int64_t widths[4] = {64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      torch::nn::Sequential layer;
      for (int b = 0; b < 2; ++b) {
        int64_t stride = (i > 0 && b == 0) ? 2 : 1;
        auto block = std::make_shared<BasicBlock>(in, widths[i], stride);
        layer->push_back(std::to_string(b), block);
        layer_blocks_[i].push_back(block);
        in = widths[i];
      }
      register_module("layer" + std::to_string(i + 1), layer);
    }
    fc_ = register_module("fc", torch::nn::Linear(512, c.classes));
  }
  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = at::relu(bn1_->forward(conv1_->forward(input)));
    for (auto& layer : layer_blocks_) {
      for (auto& block : layer) x = block->forward(x);
    }
    x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc_->forward(x);
  }

 private:
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<std::shared_ptr<BasicBlock>> layer_blocks_[4];
  torch::nn::Linear fc_{nullptr};
};

StatusOr<std::unique_ptr<Model>> make_resnet18(const nlohmann::json& options, uint64_t seed) {
  Common c;
  OptionReader r(options, "model.resnet18.options");
  read_common(r, &c);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  auto net = std::make_shared<ResNet18>(c);
  init_weights(*net, seed);
  return std::unique_ptr<Model>(std::make_unique<BuiltinModel>("resnet18", net));
}

}  // namespace

void register_builtin_models(ModelRegistry& registry) {
  registry.add("mlp", [](const nlohmann::json& o, uint64_t seed) {
    return make_mlp("mlp", o, seed, {200, 200});
  });
  // 784-4-10: 3,190 parameters, for scale tests with thousands of workers.
  registry.add("tiny", [](const nlohmann::json& o, uint64_t seed) {
    return make_mlp("tiny", o, seed, {4});
  });
  registry.add("lenet5", make_lenet5);
  registry.add("cnn", make_cnn);
  registry.add("resnet18", make_resnet18);
}

}  // namespace flight::learning::detail
