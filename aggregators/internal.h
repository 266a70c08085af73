// Pieces shared by the strategy implementations; not part of the public API.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/options.h"
#include "flight/base/registry.h"

namespace flight::aggregators {

using StrategyRegistry = Registry<Strategy, const StrategyOptions&>;

// Registration functions, called once by the registry accessor (strategy.cc).
void register_linear_strategies(StrategyRegistry& registry);  // linear.cc
void register_async_strategies(StrategyRegistry& registry);   // async.cc
void register_robust_strategies(StrategyRegistry& registry);  // robust.cc

// Name, dtype and shape of each tensor of the first update of a fold
// (TensorMeta: strategy.h).
std::vector<TensorMeta> layout_of(const ParamSet& p);
// InvalidArgument naming update `index` and the first differing tensor.
Status check_layout(const std::vector<TensorMeta>& layout, const ParamSet& update, size_t index);
Status check_layout(const std::vector<TensorMeta>& layout, const std::vector<TensorMeta>& update,
                    size_t index);
// InvalidArgument unless w is finite and >= 0.
Status check_weight(double w, size_t index);

// The linear fold: sum of w * update in a float32 (float64 for float64
// tensors) accumulator, divided by the total weight at finalize().
class WeightedMeanAggregation : public Aggregation {
 public:
  Status accumulate(const ParamSet& update, double weight) override;
  bool folds_encoded() const override { return true; }
  Status accumulate_encoded(const EncodedUpdate& update, double weight) override;
  Status accumulate_encoded_batch(const std::vector<const EncodedUpdate*>& updates,
                                  const std::vector<double>& weights) override;
  size_t count() const override { return count_; }
  StatusOr<Weighted> finalize() override;

 private:
  std::vector<TensorMeta> layout_;
  ParamSet acc_;
  double total_ = 0;
  size_t count_ = 0;
  bool finalized_ = false;
};

// Accumulator dtype for a tensor dtype: float32 for float16/bfloat16/float32,
// float64 for float64, the dtype itself for non-floating tensors.
at::ScalarType accumulator_dtype(at::ScalarType t);

}  // namespace flight::aggregators
