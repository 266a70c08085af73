// launcher: slurm — the hosts are Slurm tasks. Inside an allocation they are
// one `srun` step; outside one, a batch job this run writes, submits and
// cancels. Either way one srun step with --multi-prog runs task i as host i, so
// host names need no per-rank logic in `flight endpoint`.
//
// Assumes what Slurm clusters provide: the output directory (token file, step
// configuration, logs) is on a file system the compute nodes share, and the
// compute nodes reach the coordinator's address.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "flight/base/logging.h"
#include "flight/base/process.h"
#include "flight/base/strings.h"
#include "flight/deploy/launchers.h"
#include "flight/deploy/run_command.h"

namespace flight::deploy {
namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f) return unavailable("cannot write " + path);
  return Status::ok();
}

}  // namespace

StatusOr<engine::RunSummary> SlurmLauncher::run(LaunchRequest r) {
  const char* job = std::getenv("SLURM_JOB_ID");
  const bool inside = job != nullptr && *job != '\0';
  FLIGHT_ASSIGN_OR_RETURN(std::string address, coordinator_address(r.deploy.address, false));
  const std::string dir = std::filesystem::absolute(r.output_dir + "/deploy").string();
  FLIGHT_ASSIGN_OR_RETURN(auto plane, ControlPlane::start(r.config, address, dir));

  // One srun task per host: line i of the multi-prog file is host i.
  const auto names = r.placement.endpoint_names();
  std::string conf;
  for (size_t i = 0; i < names.size(); ++i) {
    conf += std::to_string(i);
    for (const auto& a : plane->endpoint_argv(r.flight_binary, names[i], r.deploy.threads)) {
      conf += " " + shell_quote(a);
    }
    conf += "\n";
  }
  FLIGHT_RETURN_IF_ERROR(write_file(dir + "/endpoints.conf", conf));
  const SlurmOptions& s = r.deploy.slurm;
  std::vector<std::string> step = {"srun", "--ntasks=" + std::to_string(names.size()),
                                   "--kill-on-bad-exit=0", "--output=" + dir + "/endpoint-%t.log"};
  if (s.nodes > 0) step.push_back("--nodes=" + std::to_string(s.nodes));
  if (s.tasks_per_node > 0) step.push_back("--ntasks-per-node=" + std::to_string(s.tasks_per_node));
  step.push_back("--multi-prog");
  step.push_back(dir + "/endpoints.conf");

  std::unique_ptr<Process> srun;
  std::string batch_job;
  std::function<Status()> alive;
  if (inside) {
    ProcessOptions po;
    po.argv = step;
    po.out = Redirect::file(dir + "/srun.log", true);
    po.err = Redirect::file(dir + "/srun.log", true);
    po.new_process_group = true;
    FLIGHT_ASSIGN_OR_RETURN(srun, Process::spawn(std::move(po)));
    spdlog::info("deploy: slurm job {}: srun step with {} hosts", job, names.size());
    alive = [&]() -> Status {
      if (srun->running()) return Status::ok();
      return unavailable("deploy: srun exited with " + std::to_string(srun->wait()) + " (see " +
                         dir + "/srun.log)");
    };
  } else {
    std::string script =
        "#!/bin/bash\n# Written by `flight run --launcher slurm`: the endpoint hosts of " +
        r.config.name + ".\n# Resubmit by hand with: sbatch " + dir + "/endpoints.sbatch\n";
    script += "#SBATCH --job-name=flight-" + r.config.name + "\n";
    script += "#SBATCH --ntasks=" + std::to_string(names.size()) + "\n";
    if (s.nodes > 0) script += "#SBATCH --nodes=" + std::to_string(s.nodes) + "\n";
    if (s.tasks_per_node > 0) {
      script += "#SBATCH --ntasks-per-node=" + std::to_string(s.tasks_per_node) + "\n";
    }
    if (!s.partition.empty()) script += "#SBATCH --partition=" + s.partition + "\n";
    if (!s.time.empty()) script += "#SBATCH --time=" + s.time + "\n";
    script += "#SBATCH --output=" + dir + "/slurm-%j.out\n";
    for (const auto& e : s.extra) script += "#SBATCH " + e + "\n";
    script += "exec";
    for (const auto& a : step) script += " " + shell_quote(a);
    script += "\n";
    FLIGHT_RETURN_IF_ERROR(write_file(dir + "/endpoints.sbatch", script));
    FLIGHT_ASSIGN_OR_RETURN(
        batch_job,
        run_command({"sbatch", "--parsable", dir + "/endpoints.sbatch"}, dir + "/sbatch.log"));
    // "ID\n", or "ID;cluster\n" on federations.
    batch_job = batch_job.substr(0, batch_job.find_first_of(";\n"));
    spdlog::info("deploy: submitted slurm job {} ({}/endpoints.sbatch)", batch_job, dir);
    auto last = std::chrono::steady_clock::now();
    alive = [&, last]() mutable -> Status {
      // A pending job is fine; one that has left the queue will never register.
      if (std::chrono::steady_clock::now() - last < std::chrono::seconds(2)) return Status::ok();
      last = std::chrono::steady_clock::now();
      auto state = run_command({"squeue", "-h", "-j", batch_job, "-o", "%T"}, dir + "/squeue.log");
      if (state.is_ok() && !state->empty()) return Status::ok();
      return unavailable("deploy: slurm job " + batch_job + " is no longer queued (see " + dir +
                         "/slurm-" + batch_job + ".out)");
    };
  }

  auto teardown = [&] {
    if (srun) srun->terminate();
    if (!batch_job.empty()) {
      auto st = run_command({"scancel", batch_job}, dir + "/scancel.log");
      if (!st.is_ok()) spdlog::warn("deploy: {}", st.status().to_string());
      batch_job.clear();
    }
    plane->stop();
  };
  return run_coordinator(*plane, names, r, alive, teardown);
}

}  // namespace flight::deploy
