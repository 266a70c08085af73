// Models: what a worker trains and the coordinator evaluates.
//
// A model is either a built-in architecture chosen by name (`mlp`, `lenet5`,
// `cnn`, `resnet18`, `tiny`; registry in model_registry()) or a user's
// TorchScript file exported from Python with `torch.jit.script(m).save(path)`.
// Every model exposes its state as a ParamSet (named parameters first, then
// named buffers, in a fixed order), so aggregators and transport never see
// torch::nn or torch::jit.
//
// Inputs: built-ins take float32 images [N, C, H, W] (default C=1, H=W=28, the
// shape of Dataset::images) and return logits [N, classes].
//
// Thread safety: a Model is NOT thread-safe; use one per training task/thread.
// make_model() and model_registry() may be called concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/registry.h"
#include "flight/base/status.h"
#include "flight/params/param_set.h"

namespace flight::learning {

// `model:` in a config. JSON: {"name": "lenet5", "options": {...}, "seed": 0}
// or {"torchscript": "path/to/model.pt"}.
struct ModelSpec {
  // Built-in architecture name; ignored when `torchscript` is set.
  std::string name = "lenet5";
  // Path of a TorchScript file; when set, the model is loaded from it and
  // `name`, `options` and `seed` are ignored (the file carries its own weights).
  std::string torchscript;
  // Architecture options of the built-in, checked by its factory (unknown keys
  // are errors):
  //   all built-ins: classes (10), in_channels (1), image_size (28)
  //   mlp: hidden ([200, 200])      cnn: channels ([32, 64]), hidden (128)
  //   tiny: hidden (4)              lenet5, resnet18: no extra options
  nlohmann::json options = nlohmann::json::object();
  // Seed of the initial weights of a built-in (PyTorch's default uniform
  // +-1/sqrt(fan_in) init, drawn from a private generator: the global torch
  // RNG is neither used nor changed). Same seed, same initial weights.
  uint64_t seed = 0;

  [[nodiscard]] static StatusOr<ModelSpec> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] Status validate() const;
};

// A trainable model. Not thread-safe: one per training task / thread.
class Model {
 public:
  virtual ~Model() = default;

  // Named parameters, then named buffers, in a fixed order (the same for every
  // instance of the same spec). The tensors are detached views sharing storage
  // with the model: writing into them changes the model. Clone to keep a copy.
  virtual ParamSet state() const = 0;

  // Copies values into the model. Every model tensor must be present by name
  // with the same dtype and shape, and no extra names may be present;
  // otherwise InvalidArgument naming the tensor. Order does not matter.
  [[nodiscard]] virtual Status load_state(const ParamSet& params) = 0;

  // The live parameters with requires_grad (no buffers), for optimizers and
  // TrainHook::penalty. Same names as in state().
  virtual ParamSet trainable() const = 0;

  // Logits for a batch. Torch errors (e.g. a wrong input shape) throw
  // c10::Error; train()/evaluate() turn them into Statuses.
  virtual at::Tensor forward(const at::Tensor& x) = 0;

  // Training mode (true) or evaluation mode (false): batch norm statistics.
  virtual void train(bool on) = 0;

  // Writes the model so that Python can load it: TorchScript models with
  // torch.jit.save (load with torch.jit.load); built-ins as a pickled
  // dict name -> tensor in torch.save's zip format (load with torch.load).
  // Written to a temporary file and renamed, so readers never see half a file.
  [[nodiscard]] virtual Status save(const std::string& path) const = 0;

  // "lenet5 (61706 parameters)" — for logs and error messages.
  virtual std::string describe() const = 0;
};

// Built-in factories: (options, seed) -> model.
using ModelRegistry = Registry<Model, const nlohmann::json&, uint64_t>;

// The registry of built-in architectures (mlp, lenet5, cnn, resnet18, tiny).
// Another layer may add its own architectures by name.
ModelRegistry& model_registry();

// A new model for the spec (validated first). Unknown names → NotFound with a
// "did you mean"; a missing or broken TorchScript file → an error naming it.
[[nodiscard]] StatusOr<std::unique_ptr<Model>> make_model(const ModelSpec& spec);

// Writes `params` as a pickled dict name -> tensor that Python's torch.load
// reads (what Model::save writes for built-ins). Atomic (temp file + rename).
[[nodiscard]] Status save_state_file(const ParamSet& params, const std::string& path);

// Reads a file written by save_state_file (or by Python's torch.save of a dict
// of tensors, e.g. a state_dict) back into a ParamSet, in the file's order.
[[nodiscard]] StatusOr<ParamSet> load_state_file(const std::string& path);

}  // namespace flight::learning
