// debug: true — a worker's update without training: the global model
// perturbed deterministically, + (worker_index + 1) x 2^-20 on every floating
// element (other tensors copied), so every worker puts its own distinct copy
// and a round moves the bytes of a trained one.
#pragma once

#include <cstdint>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/codec.h"

namespace flight::engine {

// The perturbed model as tensors, in this thread's scratch ParamSet (reused
// while the layout matches, so a task costs no fresh pages). Valid until
// this thread's next call. For a consumer of tensors (secure aggregation
// masks them).
const ParamSet& perturbed_copy(const ParamSet& global, int64_t worker_index);

// The raw encoding of perturbed_copy(global, worker_index), bit for bit,
// produced straight into the buffer that will be put: one read of `global`
// and one (streaming) write of the update, checksummed chunk by chunk while
// in L1, where perturbed_copy + encode read and write the model twice.
StatusOr<transport::SealedBytes> encode_perturbed(const ParamSet& global, int64_t worker_index);

}  // namespace flight::engine
