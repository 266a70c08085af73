// Checkpoints: everything needed to continue a run bit-for-bit — the global
// model, the strategy's server state, the selection RNG and the round — written
// atomically (a complete directory is renamed into place, then the LATEST
// pointer is replaced by rename), so a run killed at any instant leaves either
// the previous checkpoint or the new one, never half of one. Tensors are stored
// with the transport codec, whose checksum catches a corrupt file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/params/param_set.h"

namespace flight::engine {

struct Checkpoint {
  int64_t round = 0;  // last completed round
  ParamSet global;
  nlohmann::json strategy_state;
  ParamSet strategy_tensors;
  std::string rng_state;  // std::mt19937_64 text form
  double elapsed_s = 0;   // run time up to this checkpoint
  nlohmann::json extra = nlohmann::json::object();
  // Further tensors by name (async: the model versions and buffered updates
  // still in use), one checksummed file each. Names: [A-Za-z0-9_.-]+.
  std::map<std::string, ParamSet> params;
};

// Writes OUTPUT/checkpoints/round-NNNNNN/ and points OUTPUT/checkpoints/LATEST
// at it; older checkpoint directories are removed afterwards.
Status save_checkpoint(const std::string& output_dir, const Checkpoint& checkpoint);

// nullopt when the directory has no checkpoint; an error when it has a broken one.
StatusOr<std::optional<Checkpoint>> load_latest_checkpoint(const std::string& output_dir);

// ParamSet <-> file through the transport codec (checksummed).
Status write_params_file(const std::string& path, const ParamSet& params);
StatusOr<ParamSet> read_params_file(const std::string& path);

}  // namespace flight::engine
