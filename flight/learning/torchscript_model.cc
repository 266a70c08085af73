// A user's TorchScript model, trained through torch::jit::Module.
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "flight/learning/model_internal.h"
#include "flight/learning/torchscript_module.h"

namespace flight::learning {
namespace detail {
namespace {

class TorchScriptModel final : public Model {
 public:
  // `path` is the file it came from, or a name for an in-memory module.
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
  return make_torchscript_model(std::move(module), path);
}

}  // namespace detail

StatusOr<std::unique_ptr<Model>> make_torchscript_model(torch::jit::Module module,
                                                        const std::string& what) {
  if (module.find_method("forward") == c10::nullopt) {
    return invalid_argument("TorchScript model '" + what + "' has no forward() method");
  }
  auto model = std::make_unique<detail::TorchScriptModel>(what, std::move(module));
  if (model->trainable().empty()) {
    return invalid_argument("TorchScript model '" + what + "' has no trainable parameters");
  }
  return std::unique_ptr<Model>(std::move(model));
}

namespace {

// A deep copy whose parameters are leaves again: Module::clone copies tensors
// with autograd on, which would make every parameter a non-leaf the
// optimizer refuses. Cloning without grad and re-flagging keeps which ones train.
torch::jit::Module clone_module(const torch::jit::Module& module) {
  torch::jit::Module copy;
  {
    // Module::clone registers the copy's methods in the compilation unit the
    // modules share, which is not thread-safe: two invoker threads cloning at
    // once failed with "method ... already defined".
    static std::mutex clone_mu;
    std::lock_guard<std::mutex> lock(clone_mu);
    at::NoGradGuard no_grad;
    copy = module.clone();
  }
  std::unordered_map<std::string, bool> trains;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    trains[p.name] = p.value.requires_grad();
  }
  for (const auto& p : copy.named_parameters(/*recurse=*/true)) {
    p.value.detach_().requires_grad_(trains[p.name]);
  }
  return copy;
}

}  // namespace

Status register_torchscript_module(const std::string& name, const torch::jit::Module& module) {
  if (name.empty()) return invalid_argument("register_torchscript_module: empty name");
  if (model_registry().contains(name)) {
    return already_exists("model '" + name + "' is already registered");
  }
  // Validate once here, so a bad module fails at registration, not in a task.
  FLIGHT_RETURN_IF_ERROR(make_torchscript_model(clone_module(module), name).status());
  model_registry().add(name, [module, name](const nlohmann::json&, uint64_t) {
    return make_torchscript_model(clone_module(module), name);
  });
  return Status::ok();
}

void unregister_torchscript_module(const std::string& name) { model_registry().remove(name); }

}  // namespace flight::learning
