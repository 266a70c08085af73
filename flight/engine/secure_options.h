// The `privacy.secure_aggregation` section of the experiment config: secure
// aggregation (SecAgg+, flight/privacy/secagg.h) in the sync engine's rounds
// (secure_round.h drives them, secagg_worker.h is the worker's side).
//
//   privacy:
//     secure_aggregation:          # absent = off; `true` = every default
//       neighbours: 0              # k: masking-graph neighbours per worker; 0 = automatic,
//                                  #   min(n - 1, 2 * ceil(2 * log2 n)) for n selected workers
//       threshold: 0.5             # Shamir threshold t = ceil(threshold * k): a worker's masks
//                                  #   can be removed if t of its neighbours answer; t - 1
//                                  #   colluding neighbours learn nothing of its secrets
//       fractional_bits: 20        # fixed point: a value v travels as round(v * 2^bits) mod
//                                  #   2^32; workers encode weight-normalised update deltas,
//                                  #   so the unmasked total (a weighted mean of deltas) must
//                                  #   stay within +-2^(31 - bits) (+-2048 at 20)
//
// Allowed: mode: sync with a strategy whose fold is the weighted mean
// (fedavg, fedsgd, fedprox, fedavgm, fedadam, fedyogi, fedadagrad); privacy.dp
// with any placement (coordinator: noise after unmasking; distributed: each
// worker's share of the noise is added before masking, so nobody sees an
// un-noised sum; local); compression fp16/bf16/int8 (the worker quantises and
// dequantises its model as a plain compressed run would, then encodes it in
// fixed point: the wire carries 32-bit masked words whatever the encoding, so
// only the values, not the bytes, are those of the compressed run). Rejected
// with the reason: see secure_conflict().
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/options.h"
#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/privacy/secagg.h"

namespace flight::engine {

// The section (the reader is at `secure_aggregation`), with the documented
// defaults; errors name the field and its line.
Status read_secure_options(OptionReader& r, privacy::SecAggOptions* o);
nlohmann::json secure_options_to_json(const privacy::SecAggOptions& o);

// Why privacy.secure_aggregation cannot run with config `c`, or "".
std::string secure_conflict(const ExperimentConfig& c);

}  // namespace flight::engine
