#include "flight/learning/trainer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"

namespace flight::learning {
namespace {

// torch errors carry a C++ backtrace in what(); the message alone is enough.
std::string torch_message(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o,
                                                        const ParamSet& trainable) {
  std::vector<at::Tensor> params;
  params.reserve(trainable.size());
  for (const auto& e : trainable) params.push_back(e.tensor);
  if (o.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
}

int64_t count_correct(const at::Tensor& logits, const at::Tensor& labels) {
  return logits.argmax(1).eq(labels).sum().item<int64_t>();
}

}  // namespace

StatusOr<TrainOptions> TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  OptionReader r(j, "train");
  r.optional("epochs", &o.epochs)
      .optional("batch_size", &o.batch_size)
      .optional("optimizer", &o.optimizer)
      .optional("lr", &o.lr)
      .optional("momentum", &o.momentum)
      .optional("weight_decay", &o.weight_decay)
      .optional("max_steps", &o.max_steps);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json TrainOptions::to_json() const {
  return {
      {"epochs", epochs},     {"batch_size", batch_size},     {"optimizer", optimizer}, {"lr", lr},
      {"momentum", momentum}, {"weight_decay", weight_decay}, {"max_steps", max_steps}};
}

Status TrainOptions::validate() const {
  if (epochs < 1)
    return invalid_argument("train.epochs must be >= 1, got " + std::to_string(epochs));
  if (batch_size < 1) {
    return invalid_argument("train.batch_size must be >= 1, got " + std::to_string(batch_size));
  }
  const std::vector<std::string> known = {"sgd", "adam"};
  if (optimizer != "sgd" && optimizer != "adam") {
    return invalid_argument("train.optimizer: unknown optimizer '" + optimizer + "'" +
                            did_you_mean(optimizer, known) + " (known: sgd, adam)");
  }
  if (!(lr > 0) || !std::isfinite(lr)) {
    return invalid_argument("train.lr must be > 0, got " + std::to_string(lr));
  }
  if (!(momentum >= 0 && momentum < 1)) {
    return invalid_argument("train.momentum must be in [0, 1), got " + std::to_string(momentum));
  }
  if (momentum != 0 && optimizer != "sgd") {
    return invalid_argument("train.momentum applies to optimizer 'sgd' only");
  }
  if (!(weight_decay >= 0)) {
    return invalid_argument("train.weight_decay must be >= 0, got " + std::to_string(weight_decay));
  }
  if (max_steps < 0) {
    return invalid_argument("train.max_steps must be >= 0 (0 = no cap), got " +
                            std::to_string(max_steps));
  }
  return Status::ok();
}

StatusOr<TrainResult> train(Model& model, const ParamSet& global, const Dataset& data,
                            const std::vector<int64_t>& indices, const TrainOptions& options,
                            uint64_t seed, TrainHook* hook, const StopCheck& stop) {
  Stopwatch watch;
  FLIGHT_RETURN_IF_ERROR(options.validate());
  const int64_t n_data = data.size();
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= n_data) {
      return out_of_range("train: index " + std::to_string(indices[i]) + " at position " +
                          std::to_string(i) + " is outside the dataset of " +
                          std::to_string(n_data) + " samples");
    }
  }
  if (!global.empty()) {
    FLIGHT_RETURN_IF_ERROR(model.load_state(global).with_context("train"));
  }

  TrainResult result;
  result.n_samples = static_cast<int64_t>(indices.size());
  const int64_t per_epoch = (result.n_samples + options.batch_size - 1) / options.batch_size;
  result.planned_steps = per_epoch * options.epochs;
  if (options.max_steps > 0)
    result.planned_steps = std::min(result.planned_steps, options.max_steps);
  if (indices.empty()) {
    result.state = model.state().clone();
    result.seconds = watch.seconds();
    return result;
  }

  try {
    at::AutoGradMode grad_on(true);
    if (hook != nullptr) hook->begin(global.empty() ? model.state() : global);
    model.train(true);
    const ParamSet trainable = model.trainable();
    auto optimizer = make_optimizer(options, trainable);

    std::vector<int64_t> order = indices;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, steps = 0;
    bool capped = false, stopped = false;
    for (int64_t epoch = 0; epoch < options.epochs && !capped && !stopped; ++epoch) {
      // The shuffle depends on (seed, epoch) only: same seed, same batches.
      std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                        static_cast<uint32_t>(epoch), 0x7a11u};
      std::mt19937_64 rng(seq);
      for (size_t i = order.size(); i > 1; --i) {
        std::swap(order[i - 1], order[static_cast<size_t>(rng() % i)]);
      }
      for (size_t start = 0; start < order.size(); start += options.batch_size) {
        if (options.max_steps > 0 && steps >= options.max_steps) {
          capped = true;
          break;
        }
        // Before the batch, so a stop costs at most the batch already running.
        if (stop && stop()) {
          stopped = true;
          break;
        }
        const int64_t b =
            std::min<int64_t>(options.batch_size, static_cast<int64_t>(order.size() - start));
        // A view of our index vector; index_select gathers the batch from the
        // shared dataset without copying anything else.
        at::Tensor idx = at::from_blob(order.data() + start, {b}, at::kLong);
        at::Tensor x = data.images.index_select(0, idx);
        at::Tensor y = data.labels.index_select(0, idx);

        optimizer->zero_grad();
        at::Tensor logits = model.forward(x);
        at::Tensor loss = at::cross_entropy_loss(logits, y);
        at::Tensor objective = loss;
        if (hook != nullptr) objective = loss + hook->penalty(trainable);
        objective.backward();
        optimizer->step();

        loss_sum += loss.item<double>() * static_cast<double>(b);
        correct += count_correct(logits.detach(), y);
        seen += b;
        ++steps;
      }
    }
    if (!std::isfinite(loss_sum)) {
      return failed_precondition("train: loss of " + model.describe() +
                                 " diverged (non-finite); lower train.lr");
    }
    result.loss = seen > 0 ? loss_sum / static_cast<double>(seen) : 0.0;
    result.accuracy = seen > 0 ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    result.steps = steps;
    result.samples_processed = seen;
    result.stopped = stopped;
    if (!stopped) result.state = model.state().clone();
  } catch (const std::exception& e) {
    return invalid_argument("train: " + model.describe() + " failed: " + torch_message(e));
  }
  result.seconds = watch.seconds();
  return result;
}

StatusOr<EvalResult> evaluate(Model& model, const ParamSet& params, const Dataset& data,
                              int64_t batch_size) {
  if (batch_size < 1) {
    return invalid_argument("evaluate: batch_size must be >= 1, got " + std::to_string(batch_size));
  }
  const int64_t n = data.size();
  if (n == 0) return invalid_argument("evaluate: the dataset is empty");
  if (!params.empty()) FLIGHT_RETURN_IF_ERROR(model.load_state(params).with_context("evaluate"));
  EvalResult result;
  try {
    model.train(false);
    c10::InferenceMode inference;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = 0; start < n; start += batch_size) {
      const int64_t b = std::min(batch_size, n - start);
      // Contiguous slices of the shared tensors: views, no copy.
      at::Tensor x = data.images.narrow(0, start, b);
      at::Tensor y = data.labels.narrow(0, start, b);
      at::Tensor logits = model.forward(x);
      loss_sum += at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
      correct += count_correct(logits, y);
    }
    result.n = n;
    result.loss = loss_sum / static_cast<double>(n);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  } catch (const std::exception& e) {
    return invalid_argument("evaluate: " + model.describe() + " failed: " + torch_message(e));
  }
  return result;
}

}  // namespace flight::learning
