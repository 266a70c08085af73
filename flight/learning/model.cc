#include "flight/learning/model.h"

#include <ATen/core/Dict.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "flight/base/ids.h"
#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/learning/model_internal.h"

namespace flight::learning {

StatusOr<ModelSpec> ModelSpec::from_json(const nlohmann::json& j) {
  const std::string where = "model";
  ModelSpec spec;
  // A bare string is a built-in name: `model: lenet5`.
  if (j.is_string()) {
    spec.name = j.get<std::string>();
    FLIGHT_RETURN_IF_ERROR(spec.validate());
    return spec;
  }
  OptionReader r(j, where);
  r.optional("name", &spec.name)
      .optional("torchscript", &spec.torchscript)
      .optional("seed", &spec.seed)
      .optional("options", &spec.options);
  if (!spec.options.is_object())
    r.fail("options", "expected a mapping, got " + spec.options.dump());
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  return spec;
}

nlohmann::json ModelSpec::to_json() const {
  if (!torchscript.empty()) return {{"torchscript", torchscript}};
  return {{"name", name}, {"options", options}, {"seed", seed}};
}

Status ModelSpec::validate() const {
  if (!torchscript.empty()) return Status::ok();
  if (name.empty()) return invalid_argument("model: needs a name or a torchscript path");
  if (!options.is_object()) {
    return invalid_argument("model.options: expected an object, got " + options.dump());
  }
  if (!model_registry().contains(name)) {
    // create() gives the did-you-mean message.
    auto m = model_registry().create(name, options, seed);
    return m.status();
  }
  return Status::ok();
}

ModelRegistry& model_registry() {
  static ModelRegistry* registry = [] {
    auto* r = new ModelRegistry("model");
    detail::register_builtin_models(*r);
    return r;
  }();
  return *registry;
}

StatusOr<std::unique_ptr<Model>> make_model(const ModelSpec& spec) {
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  if (!spec.torchscript.empty()) return detail::load_torchscript_model(spec.torchscript);
  auto model = model_registry().create(spec.name, spec.options, spec.seed);
  if (!model.is_ok()) return model.status().with_context("model '" + spec.name + "'");
  return model;
}

namespace detail {

Status copy_state_into(const ParamSet& live, const ParamSet& params, const std::string& what) {
  for (const auto& e : params) {
    if (live.find(e.name) == nullptr) {
      return invalid_argument(what + " has no tensor named '" + e.name + "'");
    }
  }
  for (const auto& e : live) {
    const at::Tensor* src = params.find(e.name);
    if (src == nullptr) {
      return invalid_argument("state for " + what + " lacks tensor '" + e.name + "' (" +
                              describe_tensor(e.tensor) + ")");
    }
    if (src->scalar_type() != e.tensor.scalar_type() || src->sizes() != e.tensor.sizes()) {
      return invalid_argument("tensor '" + e.name + "' of " + what + " is " +
                              describe_tensor(e.tensor) + " but the state holds " +
                              describe_tensor(*src));
    }
  }
  at::NoGradGuard no_grad;
  for (const auto& e : live) {
    at::Tensor dst = e.tensor;
    dst.copy_(*params.find(e.name));
  }
  return Status::ok();
}

Status write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp-" + random_hex(8);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return not_found("cannot create '" + tmp + "' (does the directory exist?)");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return unavailable("cannot write '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return unavailable("cannot rename '" + tmp + "' to '" + path + "'");
  }
  return Status::ok();
}

}  // namespace detail

Status save_state_file(const ParamSet& params, const std::string& path) {
  // torch.save's format: a zip archive with a pickled dict and one record per
  // storage; c10::Dict keeps insertion order, so Python sees our order.
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& e : params) dict.insert(e.name, e.tensor.detach().contiguous());
  std::vector<char> bytes;
  try {
    bytes = torch::jit::pickle_save(c10::IValue(dict));
  } catch (const std::exception& e) {
    return internal_error("cannot serialise model state for '" + path + "': " + e.what());
  }
  return detail::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

StatusOr<ParamSet> load_state_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("model state file '" + path + "' not found");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const c10::Error& e) {
    return data_loss("'" + path + "' is not a torch.save file: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return data_loss("'" + path + "' is not a torch.save file: " + e.what());
  }
  if (!value.isGenericDict()) {
    return invalid_argument("'" + path + "' holds a " + value.tagKind() +
                            ", not a dict of tensors");
  }
  ParamSet out;
  for (const auto& kv : value.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor()) {
      return invalid_argument("'" + path + "' is not a dict of name -> tensor (entry of kinds " +
                              kv.key().tagKind() + " -> " + kv.value().tagKind() + ")");
    }
    out.add(kv.key().toStringRef(), kv.value().toTensor());
  }
  return out;
}

}  // namespace flight::learning
