#include "aggregators/strategy.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "aggregators/internal.h"
#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/params/param_ops.h"

namespace flight::aggregators {
namespace {

std::string json_type(const nlohmann::json& j) { return j.type_name(); }

// Unbiased integer in [0, bound) from the generator's raw output (std's
// distributions are implementation-defined; this keeps selections identical
// across standard libraries for a given seed).
uint64_t bounded(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % bound;
}

}  // namespace

// ---------------------------------------------------------------- options

Status StrategyOptions::validate() const {
  if (name.empty()) return invalid_argument("strategy.name must not be empty");
  if (!std::isfinite(participation) || participation <= 0) {
    return invalid_argument(
        "strategy.participation must be a fraction in (0, 1] or a count > 1, got " +
        std::to_string(participation));
  }
  if (participation > 1 && participation != std::floor(participation)) {
    return invalid_argument(
        "strategy.participation above 1 is a worker count and must be a whole number, got " +
        std::to_string(participation));
  }
  if (min_workers < 1) {
    return invalid_argument("strategy.min_workers must be >= 1, got " +
                            std::to_string(min_workers));
  }
  if (!params.is_object() && !params.is_null()) {
    return invalid_argument("strategy.params must be an object, got " + json_type(params));
  }
  return Status::ok();
}

StatusOr<StrategyOptions> StrategyOptions::from_json(const nlohmann::json& j) {
  StrategyOptions o;
  if (j.is_string()) {  // shorthand: `strategy: fedavg`
    o.name = j.get<std::string>();
    FLIGHT_RETURN_IF_ERROR(o.validate());
    return o;
  }
  if (!j.is_object()) {
    return invalid_argument("strategy options must be an object or a name, got " + json_type(j));
  }
  OptionReader r(j, "strategy");
  r.optional("name", &o.name)
      .optional("participation", &o.participation)
      .optional("min_workers", &o.min_workers)
      .optional("params", &o.params);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json StrategyOptions::to_json() const {
  return {{"name", name},
          {"participation", participation},
          {"min_workers", min_workers},
          {"params", params.is_null() ? nlohmann::json::object() : params}};
}

// ---------------------------------------------------------------- layout

std::vector<TensorMeta> layout_of(const ParamSet& p) {
  std::vector<TensorMeta> out;
  out.reserve(p.size());
  for (const auto& e : p) {
    out.push_back({e.name, e.tensor.scalar_type(),
                   std::vector<int64_t>(e.tensor.sizes().begin(), e.tensor.sizes().end())});
  }
  return out;
}

namespace {
std::string describe_meta(const TensorMeta& m) {
  std::string s = std::string(c10::toString(m.dtype)) + "[";
  for (size_t i = 0; i < m.sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(m.sizes[i]);
  return s + "]";
}
}  // namespace

Status check_layout(const std::vector<TensorMeta>& layout, const ParamSet& update, size_t index) {
  return check_layout(layout, layout_of(update), index);
}

Status check_layout(const std::vector<TensorMeta>& layout, const std::vector<TensorMeta>& update,
                    size_t index) {
  const std::string where = "update " + std::to_string(index) + ": ";
  for (size_t i = 0; i < std::min(layout.size(), update.size()); ++i) {
    const auto& m = layout[i];
    const auto& e = update[i];
    if (e.name != m.name) {
      return invalid_argument(where + "tensor " + std::to_string(i) + " is named '" + e.name +
                              "' but earlier updates have '" + m.name + "' there");
    }
    if (e.dtype != m.dtype || e.sizes != m.sizes) {
      return invalid_argument(where + "tensor '" + e.name + "' is " + describe_meta(e) +
                              " but earlier updates have " + describe_meta(m));
    }
  }
  if (update.size() != layout.size()) {
    std::string detail = update.size() > layout.size()
                             ? "extra tensor '" + update[layout.size()].name + "'"
                             : "missing tensor '" + layout[update.size()].name + "'";
    return invalid_argument(where + "has " + std::to_string(update.size()) +
                            " tensors but earlier updates have " + std::to_string(layout.size()) +
                            " (" + detail + ")");
  }
  return Status::ok();
}

Status check_weight(double w, size_t index) {
  if (!std::isfinite(w) || w < 0) {
    return invalid_argument("update " + std::to_string(index) + " has weight " + std::to_string(w) +
                            "; weights must be finite and >= 0");
  }
  return Status::ok();
}

at::ScalarType accumulator_dtype(at::ScalarType t) {
  if (t == at::kDouble) return at::kDouble;
  if (at::isFloatingType(t)) return at::kFloat;
  return t;
}

// ---------------------------------------------------------------- weighted mean

Status WeightedMeanAggregation::accumulate(const ParamSet& update, double weight) {
  if (finalized_) return failed_precondition("accumulate after finalize");
  FLIGHT_RETURN_IF_ERROR(check_weight(weight, count_));
  if (count_ == 0) {
    FLIGHT_RETURN_IF_ERROR(check_supported(update));
    layout_ = layout_of(update);
    // The first update initialises the accumulator with w * x: one write pass
    // instead of zero-fill followed by a read-modify-write.
    ParamSet acc;
    for (const auto& e : update) {
      at::Tensor a = at::empty(e.tensor.sizes(),
                               e.tensor.options().dtype(accumulator_dtype(e.tensor.scalar_type())));
      assign_scaled_(a, e.tensor, weight);
      acc.add(e.name, std::move(a));
    }
    acc_ = std::move(acc);
  } else {
    FLIGHT_RETURN_IF_ERROR(check_layout(layout_, update, count_));
    for (size_t i = 0; i < acc_.size(); ++i) add_scaled_(acc_[i].tensor, update[i].tensor, weight);
  }
  total_ += weight;
  ++count_;
  return Status::ok();
}

Status Aggregation::accumulate_encoded(const EncodedUpdate& update, double weight) {
  FLIGHT_ASSIGN_OR_RETURN(ParamSet decoded, update.decode());
  return accumulate(decoded, weight);
}

Status EncodedUpdate::add_batch_to(ParamSet& acc, const std::vector<const EncodedUpdate*>& batch,
                                   const std::vector<double>& w, bool assign) const {
  for (size_t j = 0; j < batch.size(); ++j) {
    FLIGHT_RETURN_IF_ERROR(batch[j]->add_to(acc, w[j], assign && j == 0));
  }
  return Status::ok();
}

Status Aggregation::accumulate_encoded_batch(const std::vector<const EncodedUpdate*>& updates,
                                             const std::vector<double>& weights) {
  FLIGHT_CHECK(updates.size() == weights.size(), "accumulate_encoded_batch: sizes differ");
  for (size_t j = 0; j < updates.size(); ++j) {
    FLIGHT_RETURN_IF_ERROR(accumulate_encoded(*updates[j], weights[j]));
  }
  return Status::ok();
}

// As accumulate(), reading the encoding in place: the same kernels' arithmetic
// (EncodedUpdate::add_to), so the fold's bits do not depend on the path.
Status WeightedMeanAggregation::accumulate_encoded(const EncodedUpdate& update, double weight) {
  return accumulate_encoded_batch({&update}, {weight});
}

// A batch in one pass over the accumulator (EncodedUpdate::add_batch_to).
// Weights and layouts are checked before anything is folded.
Status WeightedMeanAggregation::accumulate_encoded_batch(
    const std::vector<const EncodedUpdate*>& updates, const std::vector<double>& weights) {
  FLIGHT_CHECK(updates.size() == weights.size(), "accumulate_encoded_batch: sizes differ");
  if (finalized_) return failed_precondition("accumulate after finalize");
  if (updates.empty()) return Status::ok();
  const bool first = count_ == 0;
  const std::vector<TensorMeta>& layout = first ? updates[0]->layout() : layout_;
  for (size_t j = 0; j < updates.size(); ++j) {
    FLIGHT_RETURN_IF_ERROR(check_weight(weights[j], count_ + j));
    if (!first || j > 0) {
      FLIGHT_RETURN_IF_ERROR(check_layout(layout, updates[j]->layout(), count_ + j));
    }
  }
  // One pass over acc when the updates can (all-or-nothing); otherwise one
  // by one, counting each as it is folded.
  const bool batched =
      updates.size() > 1 && std::all_of(updates.begin(), updates.end(),
                                        [](const EncodedUpdate* u) { return u->folds_batches(); });
  size_t j = 0;
  if (first) {
    ParamSet acc;
    for (const auto& m : layout) {
      if (at::isComplexType(m.dtype)) {
        return invalid_argument("tensor '" + m.name + "' is " + describe_meta(m) +
                                ": complex tensors cannot be aggregated");
      }
      acc.add(m.name, at::empty(m.sizes, at::TensorOptions().dtype(accumulator_dtype(m.dtype))));
    }
    if (batched) {
      FLIGHT_RETURN_IF_ERROR(updates[0]->add_batch_to(acc, updates, weights, /*assign=*/true));
      j = updates.size();
    } else {
      FLIGHT_RETURN_IF_ERROR(updates[0]->add_to(acc, weights[0], /*assign=*/true));
      j = 1;
    }
    layout_ = layout;
    acc_ = std::move(acc);
  } else if (batched) {
    FLIGHT_RETURN_IF_ERROR(updates[0]->add_batch_to(acc_, updates, weights, /*assign=*/false));
    j = updates.size();
  }
  for (size_t k = 0; k < j; ++k) total_ += weights[k];
  count_ += j;
  for (; j < updates.size(); ++j) {
    FLIGHT_RETURN_IF_ERROR(updates[j]->add_to(acc_, weights[j], /*assign=*/false));
    total_ += weights[j];
    ++count_;
  }
  return Status::ok();
}

StatusOr<Weighted> WeightedMeanAggregation::finalize() {
  if (finalized_) return failed_precondition("finalize called twice on one aggregation");
  if (count_ == 0) return failed_precondition("no updates to aggregate");
  if (!(total_ > 0)) {
    return invalid_argument("the " + std::to_string(count_) +
                            " updates have a total weight of zero; cannot form a weighted mean");
  }
  finalized_ = true;
  Weighted out;
  out.weight = total_;
  for (size_t i = 0; i < acc_.size(); ++i) {
    at::Tensor& a = acc_[i].tensor;
    divide_(a, total_);
    if (a.scalar_type() != layout_[i].dtype) a = a.to(layout_[i].dtype);
    out.params.add(acc_[i].name, a);
  }
  acc_ = ParamSet();
  return out;
}

// ---------------------------------------------------------------- strategy

std::vector<size_t> Strategy::select(size_t n_workers, int64_t /*round*/,
                                     std::mt19937_64& rng) const {
  if (n_workers == 0) return {};
  size_t want;
  if (options_.participation > 1) {
    want = static_cast<size_t>(options_.participation);
  } else {
    // Rounded up, with slack for fractions like 0.3 * 10 = 3.0000000000000004.
    want = static_cast<size_t>(std::ceil(options_.participation * n_workers - 1e-9));
  }
  want = std::max<size_t>(want, static_cast<size_t>(std::max<int64_t>(options_.min_workers, 1)));
  want = std::min(want, n_workers);
  std::vector<size_t> idx(n_workers);
  std::iota(idx.begin(), idx.end(), 0);
  if (want < n_workers) {
    // Partial Fisher-Yates: the first `want` slots are a uniform sample.
    for (size_t i = 0; i < want; ++i) {
      size_t j = i + static_cast<size_t>(bounded(rng, n_workers - i));
      std::swap(idx[i], idx[j]);
    }
    idx.resize(want);
    std::sort(idx.begin(), idx.end());
  }
  return idx;
}

std::unique_ptr<Aggregation> Strategy::begin() const {
  return std::make_unique<WeightedMeanAggregation>();
}

StatusOr<ParamSet> Strategy::server_update(const ParamSet& global, const Weighted& aggregate) {
  Status s = global.check_compatible(aggregate.params);
  if (!s.is_ok()) return s.with_context("aggregate does not match the global model");
  return aggregate.params;
}

StatusOr<MergeResult> Strategy::merge(const ParamSet& /*global*/, const AsyncUpdate& /*update*/) {
  return failed_precondition("strategy '" + name() +
                             "' is synchronous; async rounds need fedasync or fedbuff");
}

nlohmann::json Strategy::state_json() const { return {{"strategy", name()}}; }

Status Strategy::load_state(const nlohmann::json& state, const ParamSet& tensors) {
  // The subclass reads (and checks for unknown keys) the rest of the object.
  std::string saved_by;
  OptionReader r(state, "strategy state");
  r.required("strategy", &saved_by).ignore_unknown();
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (saved_by != name()) {
    return invalid_argument("strategy state was saved by '" + saved_by + "', not '" + name() + "'");
  }
  if (!tensors.empty()) {
    return invalid_argument("strategy '" + name() + "' keeps no tensor state but got " +
                            std::to_string(tensors.size()) + " tensors (first: '" +
                            tensors[0].name + "')");
  }
  return Status::ok();
}

// ---------------------------------------------------------------- registry

namespace {
const StrategyRegistry& registry() {
  static const StrategyRegistry* r = [] {
    auto* reg = new StrategyRegistry("strategy");
    register_linear_strategies(*reg);
    register_async_strategies(*reg);
    register_robust_strategies(*reg);
    return reg;
  }();
  return *r;
}
}  // namespace

StatusOr<std::unique_ptr<Strategy>> make_strategy(const StrategyOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  return registry().create(options.name, options);
}

std::vector<std::string> strategy_names() { return registry().names(); }

}  // namespace flight::aggregators
