#include "flight/engine/secure_options.h"

namespace flight::engine {

using nlohmann::json;

Status read_secure_options(OptionReader& r, privacy::SecAggOptions* o) {
  r.at_least("neighbours", &o->neighbours, 0)
      .optional("threshold", &o->threshold)
      .in_range("fractional_bits", &o->fractional_bits, 0, 30);
  if (r.has("threshold") && !(o->threshold > 0 && o->threshold <= 1)) {
    r.fail("threshold", "must be in (0, 1]");
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  Status v = o->validate();
  if (!v.is_ok()) return r.error(v.message());
  return Status::ok();
}

json secure_options_to_json(const privacy::SecAggOptions& o) {
  return json{{"neighbours", o.neighbours},
              {"threshold", o.threshold},
              {"fractional_bits", o.fractional_bits}};
}

std::string secure_conflict(const ExperimentConfig& c) {
  if (!c.secure) return "";
  if (c.mode == Mode::kAsync) {
    return "needs mode: sync (masks cancel only in the sum of one synchronous round's cohort, "
           "unmasked once every surviving worker's vector is in; async merges one update at a "
           "time, and one masked update cannot be unmasked without revealing it)";
  }
  auto strategy = aggregators::make_strategy(c.strategy);
  if (strategy.is_ok() && ((*strategy)->needs_all_updates() || (*strategy)->is_async())) {
    return "strategy " + c.strategy.name +
           " does not fold a weighted sum: it needs the updates one by one (a median, trimmed "
           "mean or krum score, or an async merge), and secure aggregation only ever reveals "
           "their sum (use fedavg, fedprox, fedsgd, fedavgm, fedadam, fedyogi or fedadagrad)";
  }
  if (c.compression.encoding == transport::Encoding::kTopK) {
    return "compression topk: the sparsity pattern (which coordinates a worker sends) leaks "
           "which coordinates it changed most, and masked vectors must be dense for the masks "
           "to cancel (use raw, fp16, bf16 or int8)";
  }
  if (c.debug == DebugMode::kDispatch) {
    return "debug: dispatch moves no updates, so there is nothing to mask (use debug: true, "
           "which moves a real round's bytes)";
  }
  return "";
}

}  // namespace flight::engine
