// Test helper: how far apart two models are.
#pragma once

#include <gtest/gtest.h>

#include <ATen/ops/abs.h>
#include <ATen/ops/max.h>
#include <ATen/ops/sub.h>

#include <algorithm>

#include "flight/params/param_set.h"

namespace flight::engine {

// max over tensors of max|a − b| / max|a| (the names, shapes and dtypes must match).
inline double max_rel_diff(const ParamSet& a, const ParamSet& b) {
  EXPECT_TRUE(a.check_compatible(b).is_ok());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    auto d = at::max(at::abs(at::sub(a[i].tensor, b[i].tensor))).item().toDouble();
    auto m = at::max(at::abs(a[i].tensor)).item().toDouble();
    worst = std::max(worst, d / std::max(m, 1e-12));
  }
  return worst;
}

// max over tensors of max|a − b| (the names, shapes and dtypes must match).
inline double max_abs_diff(const ParamSet& a, const ParamSet& b) {
  EXPECT_TRUE(a.check_compatible(b).is_ok());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, at::max(at::abs(at::sub(a[i].tensor, b[i].tensor))).item().toDouble());
  }
  return worst;
}

}  // namespace flight::engine
