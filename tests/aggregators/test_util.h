// Helpers for the aggregator suites: small ParamSets from literals, seeded
// random models, and error measures.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "flight/params/param_set.h"

namespace flight::aggregators::testing {

inline at::Tensor f32(std::initializer_list<float> v) {
  return at::tensor(std::vector<float>(v), at::kFloat);
}
inline at::Tensor f64(std::initializer_list<double> v) {
  return at::tensor(std::vector<double>(v), at::kDouble);
}
inline at::Tensor i64(std::initializer_list<int64_t> v) {
  return at::tensor(std::vector<int64_t>(v), at::kLong);
}

inline ParamSet params(std::vector<std::pair<std::string, at::Tensor>> entries) {
  ParamSet p;
  for (auto& e : entries) p.add(e.first, e.second);
  return p;
}

// A model-shaped ParamSet: float32 matrix + bias, a float64 tensor, and an
// integer counter (like BatchNorm's num_batches_tracked). Values ~ N(mean, 1).
inline ParamSet random_model(std::mt19937_64& rng, int64_t rows = 16, int64_t cols = 33,
                             double mean = 0.0) {
  std::normal_distribution<double> normal(mean, 1.0);
  at::Tensor w = at::empty({rows, cols}, at::kFloat);
  at::Tensor b = at::empty({rows}, at::kFloat);
  at::Tensor d = at::empty({5}, at::kDouble);
  for (auto* t : {&w, &b}) {
    float* p = t->data_ptr<float>();
    for (int64_t i = 0; i < t->numel(); ++i) p[i] = static_cast<float>(normal(rng));
  }
  double* pd = d.data_ptr<double>();
  for (int64_t i = 0; i < d.numel(); ++i) pd[i] = normal(rng);
  at::Tensor counter = at::full({}, static_cast<int64_t>(rng() % 1000), at::kLong);
  ParamSet p;
  p.add("fc.weight", w);
  p.add("fc.bias", b);
  p.add("scale", d);
  p.add("bn.num_batches_tracked", counter);
  return p;
}

// max |a - b| / max |b| over the floating tensors (the infinity-norm relative
// error of a against the reference b).
inline double relative_error(const ParamSet& a, const ParamSet& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!at::isFloatingType(b[i].tensor.scalar_type())) continue;
    at::Tensor x = a[i].tensor.to(at::kDouble);
    at::Tensor y = b[i].tensor.to(at::kDouble);
    num = std::max(num, (x - y).abs().max().item<double>());
    den = std::max(den, y.abs().max().item<double>());
  }
  return den > 0 ? num / den : num;
}

inline std::vector<double> values(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace flight::aggregators::testing
