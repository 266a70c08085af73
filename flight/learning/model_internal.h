// Internal to flight/learning: pieces shared by model.cc, builtin_models.cc and
// torchscript_model.cc. Not part of the public API.
#pragma once

#include <memory>
#include <string>

#include "flight/base/status.h"
#include "flight/learning/model.h"
#include "flight/params/param_set.h"

namespace flight::learning::detail {

// Adds mlp, lenet5, cnn, resnet18 and tiny to `registry`.
void register_builtin_models(ModelRegistry& registry);

// Loads a TorchScript model from `path`.
StatusOr<std::unique_ptr<Model>> load_torchscript_model(const std::string& path);

// Model::load_state for any model: copies `params` into `live` (the model's
// state() views) by name, checking dtype and shape; `what` names the model.
Status copy_state_into(const ParamSet& live, const ParamSet& params, const std::string& what);

// Writes bytes to `path` through a temporary file in the same directory and a rename.
Status write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace flight::learning::detail
