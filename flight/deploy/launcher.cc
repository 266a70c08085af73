#include "flight/deploy/launcher.h"

#include "flight/base/process.h"
#include "flight/base/registry.h"
#include "flight/deploy/launchers.h"
#include "topology/topology.h"

namespace flight::deploy {
namespace {

using LauncherRegistry = Registry<Launcher>;

// Everything in this process: the placement only renames endpoints, which the
// embedded invoker ignores, so this is the reference every launcher must match.
class EmbeddedLauncher : public Launcher {
 public:
  StatusOr<engine::RunSummary> run(LaunchRequest r) override {
    return engine::run_experiment(r.config, r.run);
  }
};

template <typename T>
LauncherRegistry::Factory factory() {
  return [] { return StatusOr<std::unique_ptr<Launcher>>(std::make_unique<T>()); };
}

LauncherRegistry& launchers() {
  static LauncherRegistry* r = [] {
    auto* reg = new LauncherRegistry("launcher");
    reg->add("embedded", factory<EmbeddedLauncher>());
    reg->add("processes", factory<ProcessesLauncher>());
    reg->add("slurm", factory<SlurmLauncher>());
    reg->add("mpi", factory<MpiLauncher>());
    return reg;
  }();
  return *r;
}

}  // namespace

std::vector<std::string> launcher_names() { return launchers().names(); }

StatusOr<std::unique_ptr<Launcher>> make_launcher(const std::string& name) {
  return launchers().create(name);
}

StatusOr<DeployOptions> resolve_options(const engine::ExperimentConfig& config,
                                        const DeployOverrides& overrides) {
  FLIGHT_ASSIGN_OR_RETURN(DeployOptions o, DeployOptions::from_json(config.deploy, &config.lines));
  if (!overrides.launcher.empty()) o.launcher = overrides.launcher;
  if (overrides.hosts > 0) o.hosts = overrides.hosts;
  if (!overrides.placement.empty()) o.placement = overrides.placement;
  if (o.threads == 0) o.threads = config.threads;
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

StatusOr<Placement> plan(const engine::ExperimentConfig& config, const DeployOptions& options) {
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology t, engine::load_experiment_topology(config));
  return place(t, options.placement, static_cast<size_t>(options.hosts));
}

StatusOr<engine::RunSummary> run_deployed(const engine::ExperimentConfig& config,
                                          engine::RunOptions run, const DeployOptions& options,
                                          EmulatedHosts* emulated) {
  FLIGHT_RETURN_IF_ERROR(config.validate());
  if (options.emulate && options.launcher != "processes") {
    return invalid_argument(
        "deploy.emulate needs launcher processes (emulated hosts are "
        "network namespaces on this machine), not " +
        options.launcher);
  }
  FLIGHT_ASSIGN_OR_RETURN(auto launcher, make_launcher(options.launcher));
  LaunchRequest r;
  r.config = config;
  r.deploy = options;
  FLIGHT_ASSIGN_OR_RETURN(r.placement, plan(config, options));
  r.run = std::move(run);
  // Launchers point the control and data planes at what they start; the run
  // directory records (and --resume compares) the config as given.
  if (!r.run.config_as_given) r.run.config_as_given = config;
  r.run.placement = r.placement.assigned;
  r.output_dir = r.run.output_dir.empty() ? config.output.dir : r.run.output_dir;
  r.flight_binary = self_executable();
  r.emulated = emulated;
  return launcher->run(std::move(r));
}

}  // namespace flight::deploy
