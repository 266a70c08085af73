// Test helper: a run stopped after some rounds (as if killed) and resumed
// from its checkpoint, for the resume tests of the engine's features.
#pragma once

#include <cstdint>

#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"

namespace flight::engine {

// Runs `config` into options.output_dir for `first_rounds` rounds, then
// resumes it there to the end; returns the resumed run's summary (or the
// first failure).
inline StatusOr<RunSummary> run_interrupted(const ExperimentConfig& config, RunOptions options,
                                            int64_t first_rounds) {
  options.stop_after_rounds = first_rounds;
  options.resume = false;
  FLIGHT_ASSIGN_OR_RETURN(auto stopped, run_experiment(config, options));
  (void)stopped;
  options.stop_after_rounds = 0;
  options.resume = true;
  return run_experiment(config, options);
}

}  // namespace flight::engine
