// flight run CONFIG [--output DIR] [--set key=value ...] [--quiet]
//                   [--launcher L] [--hosts N] [--placement P] [--list-endpoints] [--dry-run]
// flight run --resume DIR [CONFIG] [--set key=value ...] [--allow-changes] [...]
//   --resume DIR alone continues the run with DIR/config.yaml; a CONFIG or
//   --set that changes any setting is refused (naming each) unless
//   --allow-changes.
#include <iostream>
#include <memory>

#include "flight/cli/command.h"
#include "flight/deploy/launcher.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "topology/topology.h"

namespace flight::cli {
namespace {

struct RunArgs {
  std::string config;
  std::string output;
  std::string resume;
  std::vector<std::string> overrides;
  bool allow_changes = false;
  int64_t crash_after_checkpoints = 0;
  bool quiet = false;
  bool list_endpoints = false;
  bool dry_run = false;
  deploy::DeployOverrides deploy;
};

int run(const RunArgs& a) {
  if (a.config.empty() && a.resume.empty()) {
    return usage_error("a CONFIG is required (or --resume DIR to continue a run)");
  }
  if (a.allow_changes && a.resume.empty()) return usage_error("--allow-changes needs --resume DIR");
  // --resume DIR alone: the run's own config (its config.yaml).
  auto config = a.config.empty() ? engine::load_run_config(a.resume, a.overrides)
                                 : engine::ExperimentConfig::load(a.config, a.overrides);
  if (!config.is_ok()) return usage_error(config.status().message());
  auto deployment = deploy::resolve_options(*config, a.deploy);
  if (!deployment.is_ok()) return usage_error(deployment.status().message());
  if (a.list_endpoints || a.dry_run) {
    auto topology = engine::load_experiment_topology(*config);
    if (!topology.is_ok()) return fail(topology.status().message());
    auto placement =
        deploy::place(*topology, deployment->placement, static_cast<size_t>(deployment->hosts));
    if (!placement.is_ok()) return fail(placement.status().message());
    if (a.dry_run) std::cout << "# deploy: " << deployment->to_json().dump() << "\n";
    // One line per endpoint process to start: its name first (scripts read
    // the first column), then the nodes it hosts.
    std::cout << placement->describe(*topology);
    return kExitOk;
  }
  engine::RunOptions options;
  options.output_dir = !a.resume.empty() ? a.resume : a.output;
  options.resume = !a.resume.empty();
  options.allow_changes = a.allow_changes;
  options.crash_after_checkpoints = a.crash_after_checkpoints;
  options.quiet = a.quiet;
  auto summary = deploy::run_deployed(*config, options, *deployment);
  if (!summary.is_ok()) return fail(summary.status().message());
  if (summary->output_dir.empty()) return kExitOk;  // an mpi host rank: rank 0 reports
  std::cout << "results: " << summary->output_dir << "\n"
            << "final test accuracy: " << summary->final_accuracy << " (best "
            << summary->best_accuracy << ") after ";
  if (summary->updates_merged > 0) {
    std::cout << summary->updates_merged << " merged updates (" << summary->model_versions
              << " model versions)";
  } else {
    std::cout << summary->rounds_completed << " rounds";
  }
  std::cout << " in " << summary->seconds << " s\n";
  if (!summary->model_path.empty()) std::cout << "model: " << summary->model_path << "\n";
  return kExitOk;
}

FLIGHT_COMMAND(run, {"", "run", "Run a federated learning experiment from a YAML config",
                     [](CLI::App* app) {
                       auto a = std::make_shared<RunArgs>();
                       app->add_option("config", a->config,
                                       "experiment config (YAML); with --resume optional (the "
                                       "run directory's config.yaml is used)")
                           ->check(CLI::ExistingFile);
                       app->add_option("-o,--output", a->output,
                                       "output directory (default: output.dir of the config)");
                       app->add_option("--resume", a->resume,
                                       "continue the run in this output directory from its last "
                                       "checkpoint, with its own settings (DIR/config.yaml)");
                       app->add_flag("--allow-changes", a->allow_changes,
                                     "with --resume: continue even though CONFIG or --set "
                                     "change settings of the run (refused otherwise, naming "
                                     "each changed key)");
                       app->add_option("--crash-after-checkpoint", a->crash_after_checkpoints,
                                       "fault injection for tests: SIGKILL this process right "
                                       "after its N-th checkpoint")
                           ->group("Testing");
                       app->add_option(
                              "--set", a->overrides,
                              "override a config key, e.g. --set rounds=5 --set train.lr=0.1")
                           ->take_all();
                       app->add_flag("-q,--quiet", a->quiet, "no progress line");
                       app->add_flag("--list-endpoints", a->list_endpoints,
                                     "print the placement: one line per endpoint process a "
                                     "distributed deployment needs (name first, then its "
                                     "nodes) and exit");
                       app->add_flag("--dry-run", a->dry_run,
                                     "print the resolved deploy options and the placement, "
                                     "start nothing");
                       app->add_option("--launcher", a->deploy.launcher,
                                       "how host processes start: embedded | processes | slurm "
                                       "| mpi (default: deploy.launcher of the config)");
                       app->add_option("--hosts", a->deploy.hosts,
                                       "host processes to place the topology on (default: "
                                       "deploy.hosts)");
                       app->add_option("--placement", a->deploy.placement,
                                       "subtree | round_robin (default: deploy.placement)");
                       return [a] { return run(*a); };
                     }});

}  // namespace
}  // namespace flight::cli
