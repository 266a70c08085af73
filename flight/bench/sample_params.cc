#include "flight/bench/sample_params.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/scalar_tensor.h>

#include <algorithm>

namespace flight::bench {

ParamSet sample_params(uint64_t bytes, uint64_t seed) {
  ParamSet p;
  int64_t floats = static_cast<int64_t>(bytes / 4);
  // Shares of a small model: two big weights, a smaller one, a bias.
  int64_t a = floats * 6 / 10;
  int64_t b = floats * 3 / 10;
  int64_t bias = std::min<int64_t>(floats - a - b, 64);
  int64_t c = floats - a - b - bias;
  int64_t parts[] = {a, b, c, bias};
  const char* names[] = {"layer1.weight", "layer2.weight", "layer3.weight", "layer3.bias"};
  double offset = static_cast<double>(seed % 1000);
  for (int i = 0; i < 4; ++i) {
    int64_t n = parts[i];
    if (n <= 0) continue;
    at::Tensor t = at::arange(n, at::kFloat).mul_(1e-3).add_(offset + i);
    // 2-D where the count allows, like a weight matrix.
    if (n % 16 == 0 && n >= 256) t = t.view({n / 16, 16});
    p.add(names[i], t);
  }
  p.add("step", at::scalar_tensor(static_cast<int64_t>(seed), at::kLong));
  return p;
}

}  // namespace flight::bench
