// run_experiment: builds the run's parts — the shared context (run_context.h),
// the simulated devices (devices.h), the output writer (output.h) — and hands
// them to the driver of the configured mode (sync_driver.h, async_driver.h).
#include "flight/engine/federation.h"

#include <set>

#include "flight/engine/async_driver.h"
#include "flight/engine/devices.h"
#include "flight/engine/output.h"
#include "flight/engine/run_context.h"
#include "flight/engine/sync_driver.h"

namespace flight::engine {
namespace {

template <typename Driver>
StatusOr<RunSummary> drive(RunContext& ctx, SimulatedDevices& devices, RunOutput& output) {
  Driver driver(ctx, devices, output);
  StatusOr<RunSummary> summary = driver.run();
  // Nothing may call into the driver once it is gone: on an early error tasks
  // may still be running (their callbacks point at it), and delayed deliveries
  // of slow devices may be pending.
  (void)ctx.invoker->close();
  devices.stop();
  ctx.release_job();
  return summary;
}

}  // namespace

nlohmann::json RunSummary::to_json() const {
  return nlohmann::json{{"output_dir", output_dir},         {"rounds_completed", rounds_completed},
                        {"final_accuracy", final_accuracy}, {"final_loss", final_loss},
                        {"best_accuracy", best_accuracy},   {"seconds", seconds},
                        {"bytes_put", bytes_put},           {"bytes_fetched", bytes_fetched},
                        {"model_path", model_path},         {"makespan_s", makespan_s},
                        {"updates_merged", updates_merged}, {"model_versions", model_versions},
                        {"stop_reason", stop_reason},       {"privacy", privacy}};
}

StatusOr<RunSummary> run_experiment(const ExperimentConfig& config, const RunOptions& options) {
  FLIGHT_RETURN_IF_ERROR(config.validate());
  RunContext ctx;
  FLIGHT_RETURN_IF_ERROR(build_run_context(config, options, &ctx));
  FLIGHT_ASSIGN_OR_RETURN(auto devices, SimulatedDevices::create(ctx));
  RunOutput output(ctx);
  FLIGHT_RETURN_IF_ERROR(output.open());
  return config.mode == Mode::kAsync ? drive<AsyncDriver>(ctx, *devices, output)
                                     : drive<SyncDriver>(ctx, *devices, output);
}

StatusOr<topology::Topology> load_experiment_topology(const ExperimentConfig& config) {
  return load_topology(config.topology);
}

StatusOr<std::vector<std::string>> endpoint_names(const ExperimentConfig& config) {
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology t, load_topology(config.topology));
  std::set<std::string> names;
  for (const auto& n : t.nodes()) {
    if (!n.is_coordinator()) names.insert(n.endpoint ? *n.endpoint : n.id);
  }
  return std::vector<std::string>(names.begin(), names.end());
}

}  // namespace flight::engine
