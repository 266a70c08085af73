// flight run CONFIG [--output DIR] [--resume DIR] [--set key=value ...] [--quiet]
#include <iostream>
#include <memory>

#include "flight/cli/command.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"

namespace flight::cli {
namespace {

struct RunArgs {
  std::string config;
  std::string output;
  std::string resume;
  std::vector<std::string> overrides;
  bool quiet = false;
  bool list_endpoints = false;
};

int run(const RunArgs& a) {
  auto config = engine::ExperimentConfig::load(a.config, a.overrides);
  if (!config.is_ok()) return usage_error(config.status().message());
  if (a.list_endpoints) {
    auto names = engine::endpoint_names(*config);
    if (!names.is_ok()) return fail(names.status().message());
    for (const auto& n : *names) std::cout << n << "\n";
    return kExitOk;
  }
  engine::RunOptions options;
  options.output_dir = !a.resume.empty() ? a.resume : a.output;
  options.resume = !a.resume.empty();
  options.quiet = a.quiet;
  auto summary = engine::run_experiment(*config, options);
  if (!summary.is_ok()) return fail(summary.status().message());
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
                       app->add_option("config", a->config, "experiment config (YAML)")
                           ->required()
                           ->check(CLI::ExistingFile);
                       app->add_option("-o,--output", a->output,
                                       "output directory (default: output.dir of the config)");
                       app->add_option("--resume", a->resume,
                                       "continue the run in this output directory from its last "
                                       "checkpoint");
                       app->add_option("--set", a->overrides,
                                       "override a config key, e.g. --set rounds=5 --set train.lr=0.1")
                           ->take_all();
                       app->add_flag("-q,--quiet", a->quiet, "no progress line");
                       app->add_flag("--list-endpoints", a->list_endpoints,
                                     "print the endpoint names a distributed deployment needs "
                                     "(one `flight endpoint --name N` each) and exit");
                       return [a] { return run(*a); };
                     }});

}  // namespace
}  // namespace flight::cli
