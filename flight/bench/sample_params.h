// Deterministic, model-shaped ParamSets for tests, benchmarks and the two-process
// checks: the same (bytes, seed) gives bitwise the same ParamSet in any process.
#pragma once

#include <cstdint>

#include "flight/params/param_set.h"

namespace flight::bench {

// About `bytes` bytes of tensor data (within 8 bytes + one int64 scalar): float32
// "layerN.weight"/"layerN.bias" tensors of a few shapes, plus a 0-dim int64 "step".
// Values are a cheap function of the element index and `seed`.
ParamSet sample_params(uint64_t bytes, uint64_t seed);

}  // namespace flight::bench
