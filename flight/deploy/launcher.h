// Launchers: how the host processes of a run start and stop. One option
// (`deploy.launcher`, or `flight run --launcher`) picks one from a registry:
//
//   embedded   everything in this process (LocalInvoker); placement only names endpoints
//   processes  this machine: the coordinator (with the REST service and, when the data
//              plane is `memory`, a private redis-server) in this process, one
//              `flight endpoint` child per host. With deploy.emulate every host runs
//              in its own network namespace behind a capped link (emulated_hosts.h)
//              and weights travel over `tcp` connectors bound inside the namespaces.
//   slurm      inside an allocation (SLURM_JOB_ID set): endpoints through `srun`;
//              outside one: an sbatch script written to the output directory,
//              submitted with `sbatch`, cancelled with `scancel` when the run ends
//   mpi        under `mpirun -np N flight run CONFIG --launcher mpi`: rank 0 is the
//              coordinator, ranks 1..N-1 are hosts 0..N-2
//
// Every launcher tears down what it started on success, failure and SIGINT /
// SIGTERM. The same config and seed give the same model whichever launcher ran
// it (the fold order is canonical and every task's seed is its (worker, round)).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flight/base/status.h"
#include "flight/deploy/deploy_options.h"
#include "flight/deploy/emulated_hosts.h"
#include "flight/deploy/placement.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"

namespace flight::deploy {

struct LaunchRequest {
  engine::ExperimentConfig config;
  engine::RunOptions run;  // run.placement is filled in from `placement`
  DeployOptions deploy;
  Placement placement;
  std::string output_dir;     // resolved: run.output_dir or config.output.dir
  std::string flight_binary;  // the `flight` executable the hosts run
  // processes launcher with deploy.emulate: namespaces made by the caller (a
  // bench reading the link counters); nullptr = the launcher makes its own.
  EmulatedHosts* emulated = nullptr;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Runs the experiment on the hosts it starts; returns the coordinator's
  // summary. Only the coordinator's process returns (mpi: rank 0; other ranks
  // serve as hosts until rank 0 is done and return an empty summary).
  virtual StatusOr<engine::RunSummary> run(LaunchRequest request) = 0;
};

std::vector<std::string> launcher_names();
StatusOr<std::unique_ptr<Launcher>> make_launcher(const std::string& name);

// What `flight run` calls. `launcher` / `hosts` / `placement` override the
// config's deploy section when not empty / 0.
struct DeployOverrides {
  std::string launcher;
  int64_t hosts = 0;
  std::string placement;
};

// The deploy options of `config` with `overrides` applied, validated.
StatusOr<DeployOptions> resolve_options(const engine::ExperimentConfig& config,
                                        const DeployOverrides& overrides);

// The placement a run would use (for --list-endpoints and --dry-run).
StatusOr<Placement> plan(const engine::ExperimentConfig& config, const DeployOptions& options);

// `emulated`: namespaces the caller made for deploy.emulate (else the
// launcher makes and removes its own).
StatusOr<engine::RunSummary> run_deployed(const engine::ExperimentConfig& config,
                                          engine::RunOptions run, const DeployOptions& options,
                                          EmulatedHosts* emulated = nullptr);

}  // namespace flight::deploy
