// In-memory TorchScript modules as models: for a torch::jit::Module that
// already lives in the process (the Python front end hands over the C++ side
// of a torch.jit.script result, no file in between).
//
// Kept out of model.h: the JIT headers are heavy and only the code that holds
// a Module needs them.
//
// Thread safety: register/unregister may be called concurrently with
// make_model(); each model built is an independent deep copy.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <memory>
#include <string>

#include "flight/base/status.h"
#include "flight/learning/model.h"

namespace flight::learning {

// A Model over `module` (owned from now on; clone() first to keep the caller's
// weights apart). `what` names it in messages. Errors: no forward(), no
// trainable parameters.
[[nodiscard]] StatusOr<std::unique_ptr<Model>> make_torchscript_model(torch::jit::Module module,
                                                                      const std::string& what);

// Registers `name` in model_registry(): every model made from it (the
// coordinator's and one per training thread) is a deep copy of `module`
// (Module::clone), so training never writes into the caller's module. The
// checks of make_torchscript_model run here, once. `model: {name: NAME}` in a
// config then selects it; options and seed are ignored (the module carries its
// own initial weights).
[[nodiscard]] Status register_torchscript_module(const std::string& name,
                                                 const torch::jit::Module& module);

// Removes a name added by register_torchscript_module. Unknown: no-op.
void unregister_torchscript_module(const std::string& name);

}  // namespace flight::learning
