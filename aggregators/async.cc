// Async strategies: fedasync (Xie et al., "Asynchronous Federated
// Optimization", 2019) and fedbuff (Nguyen et al., "Federated Learning with
// Buffered Asynchronous Aggregation", 2022).
//
// Both aggregate synchronously like fedavg (the weighted-mean fold), so an
// aggregator tier can fold updates before they reach the coordinator; the
// async behaviour lives in merge().
#include <ATen/ops/zeros.h>

#include <cmath>

#include "aggregators/internal.h"
#include "flight/base/strings.h"
#include "flight/params/param_ops.h"

namespace flight::aggregators {
namespace {

Status check_staleness(int64_t s) {
  if (s < 0) return invalid_argument("async update has staleness " + std::to_string(s) + " < 0");
  return Status::ok();
}

// y = a*y + b*x over a copy of `base`, computed in the accumulator dtype (so
// float16 models are mixed in float32) and converted back.
ParamSet mix(const ParamSet& base, double a, const ParamSet& x, double b) {
  ParamSet out;
  for (size_t i = 0; i < base.size(); ++i) {
    const at::Tensor& g = base[i].tensor;
    const at::ScalarType dt = accumulator_dtype(g.scalar_type());
    at::Tensor y = g.to(dt, /*non_blocking=*/false, /*copy=*/true).contiguous();
    axpby_(y, a, x[i].tensor, b);  // max for non-floating tensors
    out.add(base[i].name, y.scalar_type() == g.scalar_type() ? y : y.to(g.scalar_type()));
  }
  return out;
}

// ---------------------------------------------------------------- fedasync

// w <- (1 - alpha_s) w + alpha_s w_k with alpha_s = alpha * s(staleness):
//   constant:   s = 1
//   polynomial: s = (1 + staleness)^-a
//   hinge:      s = 1 if staleness <= b, else 1 / (a (staleness - b) + 1)
// The update's weight is not used (the paper mixes by alpha only).
class FedAsync : public Strategy {
 public:
  FedAsync(StrategyOptions o, double alpha, std::string fn, double a, double b)
      : Strategy(std::move(o)), alpha_(alpha), fn_(std::move(fn)), a_(a), b_(b) {}

  bool is_async() const override { return true; }

  nlohmann::json params_json() const override {
    nlohmann::json j = {{"alpha", alpha_}, {"staleness", fn_}};
    if (fn_ != "constant") j["a"] = a_;
    if (fn_ == "hinge") j["b"] = b_;
    return j;
  }

  double mixing(int64_t staleness) const {
    const double s = static_cast<double>(staleness);
    if (fn_ == "polynomial") return alpha_ * std::pow(1 + s, -a_);
    if (fn_ == "hinge") return s <= b_ ? alpha_ : alpha_ / (a_ * (s - b_) + 1);
    return alpha_;
  }

  StatusOr<MergeResult> merge(const ParamSet& global, const AsyncUpdate& update) override {
    FLIGHT_RETURN_IF_ERROR(check_staleness(update.staleness));
    Status s = global.check_compatible(update.model);
    if (!s.is_ok()) return s.with_context("async update does not match the global model");
    FLIGHT_RETURN_IF_ERROR(check_supported(global));
    const double alpha_s = mixing(update.staleness);
    MergeResult r;
    r.model = mix(global, 1 - alpha_s, update.model, alpha_s);
    r.applied = true;
    ++merges_;
    return r;
  }

  // Used synchronously (a round's aggregate instead of one update): the same
  // mixing with staleness 0.
  StatusOr<ParamSet> server_update(const ParamSet& global, const Weighted& aggregate) override {
    Status s = global.check_compatible(aggregate.params);
    if (!s.is_ok()) return s.with_context("aggregate does not match the global model");
    FLIGHT_RETURN_IF_ERROR(check_supported(global));
    return mix(global, 1 - alpha_, aggregate.params, alpha_);
  }

  nlohmann::json state_json() const override { return {{"strategy", name()}, {"merges", merges_}}; }
  Status load_state(const nlohmann::json& state, const ParamSet& tensors) override {
    FLIGHT_RETURN_IF_ERROR(Strategy::load_state(state, tensors));
    OptionReader r(state, "strategy 'fedasync' state");
    r.known({"strategy"}).at_least("merges", &merges_, int64_t{0}, true);
    return r.finish();
  }

 private:
  double alpha_;
  std::string fn_;
  double a_, b_;
  int64_t merges_ = 0;
};

// ---------------------------------------------------------------- fedbuff

// Buffers deltas d_k = model_k - base_k, each scaled by the update's weight
// and a staleness factor s(staleness) ("none": 1, "polynomial": (1+s)^-a, the
// paper's default with a = 0.5). After buffer_size updates:
//   w <- w + server_lr * (sum_k weight_k s_k d_k) / (sum_k weight_k)
// With weights = sample counts, staleness 0, server_lr 1 and buffer_size = the
// number of workers, this is exactly one FedAvg round. Memory: one
// accumulator the size of the model. Non-floating tensors: max over the
// buffered models and the global model.
class FedBuff : public Strategy {
 public:
  FedBuff(StrategyOptions o, int64_t k, double lr, std::string fn, double a)
      : Strategy(std::move(o)), k_(k), lr_(lr), fn_(std::move(fn)), a_(a) {}

  bool is_async() const override { return true; }

  nlohmann::json params_json() const override {
    nlohmann::json j = {{"buffer_size", k_}, {"server_lr", lr_}, {"staleness", fn_}};
    if (fn_ == "polynomial") j["a"] = a_;
    return j;
  }

  StatusOr<MergeResult> merge(const ParamSet& global, const AsyncUpdate& update) override {
    FLIGHT_RETURN_IF_ERROR(check_staleness(update.staleness));
    FLIGHT_RETURN_IF_ERROR(check_weight(update.weight, count_));
    if (update.base.empty() && !update.model.empty()) {
      return invalid_argument(
          "fedbuff needs AsyncUpdate.base (the model the worker started from) to form its delta");
    }
    Status s = global.check_compatible(update.model);
    if (!s.is_ok()) return s.with_context("async update does not match the global model");
    s = update.model.check_compatible(update.base);
    if (!s.is_ok()) return s.with_context("async update's model and base differ");
    FLIGHT_RETURN_IF_ERROR(check_supported(global));
    if (count_ > 0) FLIGHT_RETURN_IF_ERROR(check_buffer(update.model));

    const double factor =
        fn_ == "polynomial" ? std::pow(1 + static_cast<double>(update.staleness), -a_) : 1.0;
    const double w = update.weight * factor;
    if (count_ == 0) {
      buffer_ = ParamSet();
      for (const auto& e : update.model) {
        if (is_floating(e.tensor)) {
          auto opts = e.tensor.options().dtype(accumulator_dtype(e.tensor.scalar_type()));
          buffer_.add(e.name, at::zeros(e.tensor.sizes(), opts));
        } else {
          buffer_.add(e.name, e.tensor.clone(at::MemoryFormat::Contiguous));
        }
      }
    }
    for (size_t i = 0; i < buffer_.size(); ++i) {
      at::Tensor& b = buffer_[i].tensor;
      add_scaled_(b, update.model[i].tensor, w);  // max for non-floating
      if (is_floating(b)) add_scaled_(b, update.base[i].tensor, -w);
    }
    weight_sum_ += update.weight;
    ++count_;

    MergeResult r;
    if (count_ < k_) {
      r.model = global;
      r.buffered = static_cast<size_t>(count_);
      return r;
    }
    const double total = weight_sum_;
    ParamSet buffer = std::move(buffer_);
    clear();
    if (!(total > 0)) {
      return invalid_argument("fedbuff: the " + std::to_string(k_) +
                              " buffered updates have a total weight of zero; buffer dropped");
    }
    r.model = mix(global, 1.0, buffer, lr_ / total);
    r.applied = true;
    ++applied_;
    return r;
  }

  // Used synchronously: w + server_lr (aggregate - w).
  StatusOr<ParamSet> server_update(const ParamSet& global, const Weighted& aggregate) override {
    Status s = global.check_compatible(aggregate.params);
    if (!s.is_ok()) return s.with_context("aggregate does not match the global model");
    FLIGHT_RETURN_IF_ERROR(check_supported(global));
    return mix(global, 1 - lr_, aggregate.params, lr_);
  }

  nlohmann::json state_json() const override {
    return {{"strategy", name()},
            {"buffered", count_},
            {"weight_sum", weight_sum_},
            {"applied", applied_}};
  }

  ParamSet state_tensors() const override {
    ParamSet out;
    for (const auto& e : buffer_) out.add("buffer/" + e.name, e.tensor);
    return out;
  }

  Status load_state(const nlohmann::json& state, const ParamSet& tensors) override {
    FLIGHT_RETURN_IF_ERROR(Strategy::load_state(state, ParamSet()));
    int64_t buffered = 0, applied = 0;
    double weight_sum = 0;
    OptionReader r(state, "strategy 'fedbuff' state");
    r.known({"strategy"})
        .at_least("buffered", &buffered, int64_t{0}, true)
        .at_least("applied", &applied, int64_t{0}, true)
        .required("weight_sum", &weight_sum);
    FLIGHT_RETURN_IF_ERROR(r.finish());
    if (buffered >= k_) {
      return invalid_argument("strategy 'fedbuff' state has " + std::to_string(buffered) +
                              " buffered updates but buffer_size is " + std::to_string(k_));
    }
    ParamSet buffer;
    for (const auto& e : tensors) {
      if (!starts_with(e.name, "buffer/")) {
        return invalid_argument("strategy 'fedbuff' state has an unexpected tensor '" + e.name +
                                "'");
      }
      buffer.add(e.name.substr(7), e.tensor.clone(at::MemoryFormat::Contiguous));
    }
    if (buffered > 0 && buffer.empty()) {
      return invalid_argument("strategy 'fedbuff' state has buffered updates but no buffer");
    }
    if (buffered == 0 && !buffer.empty()) {
      return invalid_argument("strategy 'fedbuff' state has a buffer but no buffered updates");
    }
    buffer_ = std::move(buffer);
    count_ = buffered;
    weight_sum_ = weight_sum;
    applied_ = applied;
    return Status::ok();
  }

 private:
  // The buffer (possibly restored from a checkpoint) must have the update's
  // names and shapes, in accumulator dtypes.
  Status check_buffer(const ParamSet& model) const {
    if (model.size() != buffer_.size()) {
      return invalid_argument("fedbuff: update has " + std::to_string(model.size()) +
                              " tensors but the buffered updates have " +
                              std::to_string(buffer_.size()));
    }
    for (size_t i = 0; i < model.size(); ++i) {
      const at::Tensor& m = model[i].tensor;
      const at::Tensor& b = buffer_[i].tensor;
      if (model[i].name != buffer_[i].name || m.sizes() != b.sizes() ||
          accumulator_dtype(m.scalar_type()) != b.scalar_type()) {
        return invalid_argument("fedbuff: update tensor '" + model[i].name + "' is " +
                                describe_tensor(m) + " but the buffer holds '" + buffer_[i].name +
                                "' as " + describe_tensor(b));
      }
    }
    return Status::ok();
  }

  void clear() {
    buffer_ = ParamSet();
    count_ = 0;
    weight_sum_ = 0;
  }

  int64_t k_;
  double lr_;
  std::string fn_;
  double a_;
  ParamSet buffer_;
  int64_t count_ = 0;
  double weight_sum_ = 0;
  int64_t applied_ = 0;
};

}  // namespace

void register_async_strategies(StrategyRegistry& registry) {
  registry.add("fedasync", [](const StrategyOptions& o) -> StatusOr<std::unique_ptr<Strategy>> {
    OptionReader r(o.params, "strategy.params");
    double alpha = 0.6;
    r.optional("alpha", &alpha);
    std::string fn = "polynomial";
    r.choice("staleness", &fn, {"constant", "polynomial", "hinge"});
    double a = fn == "hinge" ? 10.0 : 0.5;
    r.optional("a", &a);
    double b = 4.0;
    r.optional("b", &b);
    if (!(alpha > 0 && alpha <= 1)) r.fail("alpha", "must be in (0, 1]");
    if (a < 0) r.fail("a", "must be >= 0");
    if (b < 0) r.fail("b", "must be >= 0");
    if (fn == "constant" && r.has("a"))
      r.fail("a", "applies only to staleness 'polynomial' or 'hinge'");
    if (fn != "hinge" && r.has("b")) r.fail("b", "applies only to staleness 'hinge'");
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return std::make_unique<FedAsync>(o, alpha, fn, a, b);
  });
  registry.add("fedbuff", [](const StrategyOptions& o) -> StatusOr<std::unique_ptr<Strategy>> {
    OptionReader r(o.params, "strategy.params");
    int64_t k = 10;
    r.optional("buffer_size", &k);
    double lr = 1.0;
    r.optional("server_lr", &lr);
    std::string fn = "polynomial";
    r.choice("staleness", &fn, {"none", "polynomial"});
    double a = 0.5;
    r.optional("a", &a);
    if (k < 1) r.fail("buffer_size", "must be >= 1");
    if (!(lr > 0)) r.fail("server_lr", "must be > 0");
    if (a < 0) r.fail("a", "must be >= 0");
    if (fn == "none" && r.has("a")) r.fail("a", "applies only to staleness 'polynomial'");
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return std::make_unique<FedBuff>(o, k, lr, fn, a);
  });
}

}  // namespace flight::aggregators
