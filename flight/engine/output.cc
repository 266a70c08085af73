#include "flight/engine/output.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flight/base/logging.h"
#include "flight/engine/checkpoint.h"
#include "flight/engine/devices.h"
#include "flight/engine/run_context.h"
#include "flight/engine/yaml_json.h"

namespace flight::engine {

namespace fs = std::filesystem;
using nlohmann::json;

Status RunOutput::open() {
  std::error_code ec;
  if (ctx_.options.resume) {
    FLIGHT_RETURN_IF_ERROR(resume());
  } else {
    // A fresh run owns its outputs: earlier rows and checkpoints would mix
    // with this run's and make --resume continue the wrong run.
    for (const char* f : {"rounds.csv", "tasks.csv", "summary.json", "model.pt", "accuracy.svg"}) {
      fs::remove(fs::path(ctx_.out_dir) / f, ec);
    }
    fs::remove_all(fs::path(ctx_.out_dir) / "checkpoints", ec);
  }
  {
    const ExperimentConfig& given =
        ctx_.options.config_as_given ? *ctx_.options.config_as_given : ctx_.config;
    std::ofstream cfg(ctx_.out_dir + "/config.yaml", std::ios::trunc);
    cfg << "# Resolved configuration of this run (every default filled in); `flight run\n"
        << "# --resume " << ctx_.out_dir << "` continues with it.\n"
        << json_to_yaml(given.to_json());
    if (!cfg) return unavailable("cannot write '" + ctx_.out_dir + "/config.yaml'");
  }
  FLIGHT_RETURN_IF_ERROR(rounds_csv_.open(ctx_.out_dir + "/rounds.csv", round_header(ctx_.tiers)));
  return tasks_csv_.open(ctx_.out_dir + "/tasks.csv", task_header());
}

Status RunOutput::resume() {
  const std::string& dir = ctx_.out_dir;
  FLIGHT_ASSIGN_OR_RETURN(auto ckpt, load_latest_checkpoint(dir));
  if (!ckpt)
    return not_found("--resume: no checkpoint in '" + dir + "/checkpoints' to resume from");
  FLIGHT_RETURN_IF_ERROR(check_resume_config());
  const bool async_checkpoint = ckpt->extra.contains("async");
  if (async_checkpoint != (ctx_.config.mode == Mode::kAsync)) {
    return failed_precondition("--resume: the checkpoint in '" + dir + "' was written by a " +
                               (async_checkpoint ? "mode: async" : "mode: sync") +
                               " run; this config has mode: " + to_string(ctx_.config.mode));
  }
  FLIGHT_RETURN_IF_ERROR(ctx_.global.check_compatible(ckpt->global)
                             .with_context("--resume: checkpoint model does not match config"));
  ctx_.global = std::move(ckpt->global);
  FLIGHT_RETURN_IF_ERROR(ctx_.strategy->load_state(ckpt->strategy_state, ckpt->strategy_tensors));
  std::istringstream rng_in(ckpt->rng_state);
  rng_in >> ctx_.rng;
  if (!rng_in) return data_loss("--resume: checkpoint RNG state is unreadable");
  if (ctx_.dp) {
    FLIGHT_RETURN_IF_ERROR(
        ctx_.dp->load_state(ckpt->extra.value("dp", json(nullptr))).with_context("--resume"));
  }
  if (ctx_.ef) {
    auto residuals = ckpt->params.find("topk_residuals");
    FLIGHT_RETURN_IF_ERROR(
        ctx_.ef
            ->load_state(ckpt->extra.value("topk", json(nullptr)),
                         ctx_.is_local() ? ctx_.job_id : std::string(),
                         residuals == ckpt->params.end() ? ParamSet() : residuals->second)
            .with_context("--resume"));
  }
  ctx_.first_round = ckpt->round + 1;
  ctx_.elapsed_offset = ckpt->elapsed_s;
  // Rows written after the checkpoint belong to rounds that will run again.
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(dir + "/rounds.csv", ckpt->round));
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(dir + "/tasks.csv", ckpt->round));
  auto rows = read_rounds_csv(dir + "/rounds.csv");
  if (rows.is_ok()) rows_ = std::move(rows).value();
  spdlog::info("resuming {} after {} {}", dir, async_checkpoint ? "evaluation" : "round",
               ckpt->round);
  resumed_ = std::move(ckpt);
  return Status::ok();
}

// The run directory's config.yaml is the run being continued: a config that
// differs would silently continue a different experiment (e.g. 20 rounds
// instead of the 6 it was started with).
Status RunOutput::check_resume_config() const {
  const std::string& dir = ctx_.out_dir;
  FLIGHT_ASSIGN_OR_RETURN(ExperimentConfig saved, load_run_config(dir));
  const ExperimentConfig& given =
      ctx_.options.config_as_given ? *ctx_.options.config_as_given : ctx_.config;
  const auto differences = config_differences(saved, given);
  if (differences.empty()) return Status::ok();
  if (ctx_.options.allow_changes) {
    for (const auto& d : differences) spdlog::warn("--resume {}: changed {}", dir, d);
    return Status::ok();
  }
  std::string m = "--resume " + dir + ": the config differs from the run's (" + dir +
                  "/config.yaml) in " + std::to_string(differences.size()) + " setting" +
                  (differences.size() == 1 ? "" : "s") + ":";
  for (const auto& d : differences) m += "\n  " + d;
  m += "\nresume with the run's own settings (`flight run --resume " + dir +
       "`, no CONFIG or --set), or pass --allow-changes to continue with the new ones";
  return failed_precondition(m);
}

Status RunOutput::open_updates(int64_t resumed_updates) {
  const std::string path = ctx_.out_dir + "/updates.csv";
  std::error_code ec;
  if (resumed_updates > 0) {
    // Rows after the checkpoint belong to updates that will be merged again.
    FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(path, resumed_updates));
  } else {
    fs::remove(path, ec);
  }
  return updates_csv_.open(path, {"update", "time_s", "from", "count", "weight", "base_version",
                                  "merged_into", "staleness", "applied", "merge_s"});
}

void RunOutput::add_round(const RoundRow& row) {
  rounds_csv_.write(round_cells(row, ctx_.tiers));
  rows_.push_back(row);
}

void RunOutput::add_tasks(const std::vector<TaskRow>& rows) {
  for (const auto& t : rows) write_task(tasks_csv_, t);
  tasks_csv_.flush();
}

void RunOutput::add_update(const UpdateRow& u) {
  updates_csv_.write({std::to_string(u.update), csv_number(u.time_s), u.from,
                      std::to_string(u.count), csv_number(u.weight), csv_number(u.base_version),
                      std::to_string(u.merged_into), std::to_string(u.staleness),
                      u.applied ? "1" : "0", csv_number(u.merge_s)});
}

Status RunOutput::checkpoint(int64_t round, nlohmann::json extra,
                             std::map<std::string, ParamSet> params) {
  Checkpoint c;
  c.round = round;
  c.extra = std::move(extra);
  c.params = std::move(params);
  c.global = ctx_.global;
  c.strategy_state = ctx_.strategy->state_json();
  c.strategy_tensors = ctx_.strategy->state_tensors();
  std::ostringstream rng;
  rng << ctx_.rng;
  c.rng_state = rng.str();
  c.elapsed_s = ctx_.now();
  if (ctx_.dp) c.extra["dp"] = ctx_.dp->state();
  if (ctx_.ef) {
    // Embedded, the workers' residuals are in this process (error_feedback.h).
    c.extra["topk"] = ctx_.ef->state();
    if (ctx_.is_local()) c.params["topk_residuals"] = ctx_.ef->residuals(ctx_.job_id);
  }
  FLIGHT_RETURN_IF_ERROR(save_checkpoint(ctx_.out_dir, c));
  if (ctx_.options.crash_after_checkpoints > 0 &&
      ++checkpoints_written_ == ctx_.options.crash_after_checkpoints) {
    spdlog::warn("crash_after_checkpoints: killing this process after checkpoint {}", round);
    spdlog::default_logger()->flush();
    ::kill(::getpid(), SIGKILL);
  }
  return Status::ok();
}

Status RunOutput::finish(RunSummary* summary, const SimulatedDevices& devices, double makespan_s) {
  const std::string& dir = ctx_.out_dir;
  summary->output_dir = dir;
  summary->final_model = ctx_.global;
  if (ctx_.config.output.save_model) {
    FLIGHT_RETURN_IF_ERROR(ctx_.model->load_state(ctx_.global));
    summary->model_path = dir + "/model.pt";
    FLIGHT_RETURN_IF_ERROR(ctx_.model->save(summary->model_path));
  }
  FLIGHT_RETURN_IF_ERROR(write_accuracy_svg(dir + "/accuracy.svg", rows_, ctx_.config.name));
  json s = summary->to_json();
  s["name"] = ctx_.config.name;
  s["topology"] = {
      {"nodes", ctx_.topology->size()}, {"workers", ctx_.workers.size()}, {"tiers", ctx_.tiers}};
  s["control"] = to_string(ctx_.config.control.kind);
  s["model"] = ctx_.config.model.to_json();
  s["strategy"] = ctx_.config.strategy.name;
  const std::string tmp = dir + "/summary.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << s.dump(2) << "\n";
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  fs::rename(tmp, dir + "/summary.json");
  return devices.write_csv(dir + "/workers.csv", makespan_s);
}

}  // namespace flight::engine
