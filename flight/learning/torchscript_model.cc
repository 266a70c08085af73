// A user's TorchScript model, trained through torch::jit::Module.
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <fstream>
#include <sstream>

#include "flight/learning/model_internal.h"

namespace flight::learning::detail {
namespace {

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(std::string path, torch::jit::Module module)
      : path_(std::move(path)), module_(std::move(module)) {
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      live_.add(p.name, p.value.detach());
      if (p.value.requires_grad()) trainable_.add(p.name, p.value);
    }
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) {
      live_.add(b.name, b.value.detach());
    }
  }

  ParamSet state() const override { return live_; }
  Status load_state(const ParamSet& params) override {
    return copy_state_into(live_, params, "TorchScript model '" + path_ + "'");
  }
  ParamSet trainable() const override { return trainable_; }

  at::Tensor forward(const at::Tensor& x) override {
    c10::IValue out = module_.forward({x});
    // A forward returning a tuple or dict is a user-model mismatch, reported
    // like any other torch error (train/evaluate turn it into a Status).
    TORCH_CHECK(out.isTensor(), "forward() of TorchScript model '", path_, "' returned a ",
                out.tagKind(), ", expected a Tensor of logits");
    return out.toTensor();
  }

  void train(bool on) override { module_.train(on); }

  Status save(const std::string& path) const override {
    std::ostringstream os;
    try {
      module_.save(os);
    } catch (const c10::Error& e) {
      return internal_error("cannot save TorchScript model to '" + path +
                            "': " + e.what_without_backtrace());
    }
    return write_file_atomic(path, os.str());
  }

  std::string describe() const override {
    return "torchscript:" + path_ + " (" + std::to_string(trainable_.numel()) + " parameters)";
  }

 private:
  std::string path_;
  torch::jit::Module module_;
  ParamSet live_;
  ParamSet trainable_;
};

}  // namespace

StatusOr<std::unique_ptr<Model>> load_torchscript_model(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) return not_found("TorchScript model file '" + path + "' not found");
  probe.close();
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    return invalid_argument("'" + path +
                            "' is not a TorchScript model (export it with "
                            "torch.jit.script(model).save(path)): " +
                            e.what_without_backtrace());
  } catch (const std::exception& e) {
    return invalid_argument("'" + path + "' is not a TorchScript model: " + e.what());
  }
  if (module.find_method("forward") == c10::nullopt) {
    return invalid_argument("TorchScript model '" + path + "' has no forward() method");
  }
  auto model = std::make_unique<TorchScriptModel>(path, std::move(module));
  if (model->trainable().empty()) {
    return invalid_argument("TorchScript model '" + path + "' has no trainable parameters");
  }
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace flight::learning::detail
