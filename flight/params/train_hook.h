// TrainHook: a strategy's say in local training, without learning/ and
// aggregators/ knowing each other. A strategy (e.g. FedProx) returns one; the
// trainer adds penalty() to every step's loss and back-propagates through it.
//
// Thread safety: one hook per training task; not shared across threads.
#pragma once

#include <ATen/core/Tensor.h>

#include "flight/params/param_set.h"

namespace flight {

class TrainHook {
 public:
  virtual ~TrainHook() = default;

  // Called once before training with the global model the worker received.
  virtual void begin(const ParamSet& global) = 0;

  // A scalar added to the loss. `current` holds the live trainable parameters
  // (requires_grad, same names as the model's); the result must be built from
  // them with autograd so that it contributes a real gradient.
  virtual at::Tensor penalty(const ParamSet& current) = 0;
};

}  // namespace flight
